"""Configuration dataclasses: the single source of a model's shape and a run's settings.

Validation lives here so every entry point (CLI, app, notebook) rejects the same bad
values with the same message before any tensor is allocated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from babygpt.errors import BabyGPTError

PRESETS: dict[str, str] = {
    "bigram": "A lookup table: each token's embedding row is read directly as the logits of the next token.",
    "single-head": "Adds position embeddings and one causal self-attention head, so tokens can look back.",
    "multi-head": "Several smaller heads attend in parallel; their outputs are concatenated and projected.",
    "multi-head+ffn": "Adds a position-wise feed-forward network so each token can think about what it gathered.",
    "residual": "Stacks n_layer blocks joined by residual connections, so deep models still train.",
    "gpt": "Adds pre-norm LayerNorm in each block and before the head, and allows dropout: the full GPT.",
    # after GPT-2: each rung is gpt with one switch (MODERN_SWITCHES says which and where it comes from)
    "gpt+rope": "Positions rotate each head's queries and keys instead of being added to the input (RoPE).",
    "gpt+rmsnorm": "RMSNorm instead of LayerNorm: scale by the root mean square, no mean subtracted, no bias.",
    "gpt+qk-norm": "Each head's queries and keys are RMS-normalised before their dot product, so scores cannot blow up.",
    "gpt+swiglu": "A gated feed-forward, SiLU(x·W_gate) ⊙ (x·W_up), at 8/3 the width for the same parameters.",
    "gpt+value-embeddings": "Each layer adds its own embedding of the input tokens to the attention values.",
    "gpt+soft-cap": "Logits pass through cap·tanh(logits / cap), so no token's logit can run away.",
    "gpt+muon": "Muon trains the 2-D hidden weights with orthogonalised momentum; AdamW keeps the rest.",
    # "modern": written from MODERN_SWITCHES below, so it names exactly the switches modern keeps
}
DEFAULT_PRESET = "gpt"
# the lecture's rungs, bigram to gpt: what the ladder race trains unless told which (the modern rungs are each gpt
# with one switch, raced against gpt on their own)
LECTURE_LADDER = ("bigram", "single-head", "multi-head", "multi-head+ffn", "residual", "gpt")
POSITIONAL_ENCODINGS = ("learned", "sinusoidal", "rope", "none")  # none: a counterfactual, see below
ACTIVATIONS = ("relu2", "gelu", "relu", "gelu_tanh", "swiglu")
NORMS = ("layernorm", "rmsnorm")
OPTIMIZERS = ("auto", "adamw", "muon")  # auto: the preset's (Muon for gpt+muon and modern, else AdamW)
SOFT_CAP = 15.0  # nanochat's cap on the logits (modded-nanogpt's record runs used 15 to 30)


@dataclass(frozen=True)
class ModernSwitch:
    """One idea from after GPT-2: the preset that adds it to ``gpt``, the settings that switch it on, the sentence
    it teaches, where it comes from, and whether ``modern`` keeps it. Presets, the docs' ladder table and the race
    read it from here."""

    preset: str
    settings: dict[str, Any]
    lesson: str
    source: str
    name: str  # the idea's short name, as a sentence lists it ("RoPE", "value embeddings")
    in_modern: bool = True
    train: bool = False  # the settings are TrainConfig's (the optimizer), not the model's


MODERN_SWITCHES = (
    ModernSwitch("gpt+rope", {"positional": "rope"},
                 "Position is a rotation of each query and key by an angle that grows with it, so a score depends "
                 "on how far apart two tokens are, not where they sit, and no position table is learned.",
                 "Su et al. 2021, RoFormer; Llama, nanochat", "RoPE"),
    ModernSwitch("gpt+rmsnorm", {"norm": "rmsnorm"},
                 "Dividing by the root mean square alone (no mean, no bias) normalises as well as LayerNorm "
                 "with one statistic instead of two.", "Zhang & Sennrich 2019; Llama, nanochat", "RMSNorm",
                 in_modern=False),
    ModernSwitch("gpt+qk-norm", {"qk_norm": True},
                 "Normalising each head's queries and keys bounds the attention scores, so a larger learning "
                 "rate does not saturate the softmax.", "Dehghani et al. 2023; modded-nanogpt, nanochat", "QK-norm"),
    ModernSwitch("gpt+swiglu", {"activation": "swiglu"},
                 "A gate multiplies the feed-forward's hidden units, at 8/3 the width to keep the parameters; "
                 "ReLU² (the gpt default) is the speedrun's cheaper alternative.",
                 "Shazeer 2020, GLU variants; Llama", "SwiGLU", in_modern=False),
    ModernSwitch("gpt+value-embeddings", {"value_embeddings": True},
                 "Each layer's values get their own embedding of the input tokens, so a head can move a token's "
                 "identity along without the residual stream carrying it.", "modded-nanogpt, nanochat",
                 "value embeddings", in_modern=False),
    ModernSwitch("gpt+soft-cap", {"logit_softcap": SOFT_CAP},
                 "Capping the logits with a tanh keeps the model from growing over-confident early.",
                 "Gemma 2; modded-nanogpt, nanochat", "a logit soft-cap", in_modern=False),
    ModernSwitch("gpt+muon", {"optimizer": "muon"},
                 "Orthogonalising each weight matrix's momentum (Newton–Schulz) makes every direction of the update "
                 "move at the same rate, which trains the hidden matrices in fewer steps than AdamW.",
                 "Jordan et al. 2024, Muon; modded-nanogpt, nanochat", "Muon", train=True),
)
MODERN_BY_PRESET = {s.preset: s for s in MODERN_SWITCHES}


def switch_names(switches: tuple[ModernSwitch, ...]) -> str:
    """The ideas' short names as a sentence lists them: "RoPE, QK-norm and Muon"."""
    names = [m.name for m in switches]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


MODERN_KEEPS = tuple(m for m in MODERN_SWITCHES if m.in_modern)
PRESETS["modern"] = (f"gpt with the ideas from after GPT-2 that earned their place on two texts (docs/modern.md): "
                     f"{switch_names(MODERN_KEEPS)}, with gpt's ReLU²; and a training recipe of its own, which the "
                     f"command line applies and the training settings offer as a button.")
# already in gpt's defaults, kept by modern: ReLU² (activation), a zero-initialised output projection of every
# block (zero_init_residual) and untied embeddings (tie_weights=False)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class IdeaSwitch:
    """One idea a run can be trained without: the ``ModelConfig`` settings that switch it off, and the idea's name
    as a run's name carries it everywhere it is shown ("… · without the causal mask"). The facts live here, beside
    the settings they name, so the store labels a run without the lessons, which add what each switch teaches
    (``babygpt.lessons.counterfactuals``)."""

    key: str
    idea: str
    switches: dict[str, Any]

    def applies_to(self, model_config: dict[str, Any]) -> bool:
        return all(model_config.get(k) == v for k, v in self.switches.items())


IDEA_SWITCHES = (
    IdeaSwitch("no-mask", "the causal mask", {"causal": False}),
    IdeaSwitch("no-scale", "1/√d scaling", {"scale_scores": False}),
    IdeaSwitch("no-positions", "positions", {"positional": "none"}),
)


def broken_ideas(model_config: dict[str, Any]) -> list[str]:
    """What a run was trained without (its recorded model config), in the words its name carries."""
    return [s.idea for s in IDEA_SWITCHES if s.applies_to(model_config)]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BabyGPTError(message)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one model on the ladder; the ``use_*`` switches say which rungs are present."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    positional: str = "learned"
    use_attention: bool = True
    use_projection: bool = True
    use_ffn: bool = True
    use_residual: bool = True
    use_layernorm: bool = True
    tie_weights: bool = False
    activation: str = "relu2"  # relu2 (default), gelu (nanoGPT), relu (the lecture), gelu_tanh (GPT-2) or swiglu
    zero_init_residual: bool = True  # only meaningful with residual connections
    norm: str = "layernorm"  # or rmsnorm (with use_layernorm: which norm the blocks and the head use)
    qk_norm: bool = False  # RMS-normalise each head's queries and keys (with a learned gain) before the scores
    value_embeddings: bool = False  # each layer adds its own embedding of the input tokens to the values
    logit_softcap: float = 0.0  # >0: logits = cap·tanh(logits / cap); 0: off
    # Counterfactuals: switch off one idea to see what it was for (with positional="none")
    causal: bool = True  # False: every position also sees the tokens after it, the answer included
    scale_scores: bool = True  # False: softmax(q·k) without the 1/√d
    preset: str = DEFAULT_PRESET

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def validate(self) -> ModelConfig:
        _check_field_types(self)
        _check(self.preset in PRESETS, f"Unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}.")
        _check(self.vocab_size >= 2, f"The vocabulary has {self.vocab_size} token(s); a model needs at least 2.")
        _check(self.block_size >= 1, f"block_size must be a positive integer, got {self.block_size}.")
        _check(self.n_embd >= 1, f"n_embd must be a positive integer, got {self.n_embd}.")
        _check(self.n_head >= 1, f"n_head must be a positive integer, got {self.n_head}.")
        _check(self.n_layer >= 0, f"n_layer must be zero or more, got {self.n_layer}.")
        _check(
            self.n_embd % self.n_head == 0,
            f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) so every head gets "
            f"the same size; try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}.",
        )
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}.")
        _check(
            self.positional in POSITIONAL_ENCODINGS,
            f"positional must be one of {', '.join(POSITIONAL_ENCODINGS)}, got {self.positional!r}.",
        )
        _check(self.activation in ACTIVATIONS,
               f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}.")
        _check(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}.")
        _check(self.logit_softcap >= 0, f"logit_softcap must be zero (off) or a positive cap, got {self.logit_softcap}.")
        if self.use_attention:
            _check(self.n_layer >= 1, "A model with attention needs n_layer >= 1.")
        if self.positional == "rope":
            _check(self.head_size % 2 == 0, f"Rotary positions turn pairs of dimensions: the head size "
                   f"(n_embd / n_head = {self.head_size}) must be even.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**_known_fields(cls, data)).validate()


MODEL_FIELDS = frozenset(f.name for f in fields(ModelConfig))


def model_config_for_preset(preset: str, **sizes: Any) -> ModelConfig:
    """Build the ModelConfig of a ladder rung; sizes the rung does not use are pinned, not ignored silently.

    The lecture's early rungs are single-layer models without residuals or norms; pinning their
    switches here keeps the comparison between rungs honest.
    """
    _check(preset in PRESETS, f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    base = ModelConfig(**{k: v for k, v in sizes.items() if v is not None})
    switches: dict[str, Any]
    if preset == "bigram":
        switches = dict(use_attention=False, use_projection=False, use_ffn=False, use_residual=False,
                        use_layernorm=False, n_layer=0, n_head=1, dropout=0.0, tie_weights=False)
    elif preset == "single-head":
        switches = dict(n_head=1, n_layer=1, use_projection=False, use_ffn=False, use_residual=False,
                        use_layernorm=False, dropout=0.0)
    elif preset == "multi-head":
        switches = dict(n_layer=1, use_ffn=False, use_residual=False, use_layernorm=False, dropout=0.0)
    elif preset == "multi-head+ffn":
        # Without a residual path ReLU² squares tiny activations into vanishing gradients; use the lecture's ReLU.
        switches = dict(n_layer=1, use_residual=False, use_layernorm=False, dropout=0.0, activation="relu")
    elif preset == "residual":
        switches = dict(use_layernorm=False, dropout=0.0)
    else:  # modern keeps gpt's own ReLU², zero-initialised output projections and untied embeddings (its defaults)
        switches = {k: v for k, v in preset_settings(preset).items() if k in MODEL_FIELDS}
    # a counterfactual asked for wins over the preset's switch (no positions on a RoPE rung turns RoPE off too), so a
    # run named "without positions" is one
    broken = {k: v for idea in IDEA_SWITCHES for k, v in idea.switches.items() if sizes.get(k) == v}
    return replace(base, preset=preset, **{**switches, **broken}).validate()


def preset_switches(preset: str) -> tuple[ModernSwitch, ...]:
    """The ideas from after GPT-2 a preset switches on: its one for a ``gpt+…`` rung, ``modern``'s set, else none."""
    if preset == "modern":
        return MODERN_KEEPS
    return (MODERN_BY_PRESET[preset],) if preset in MODERN_BY_PRESET else ()


def preset_settings(preset: str) -> dict[str, Any]:
    """The settings a preset fixes, model and training ones (the optimizer): what a form must show as set, not
    offer as a choice."""
    return {k: v for m in preset_switches(preset) for k, v in m.settings.items()}


# How a preset trains where that differs from TrainConfig's defaults: what reaches a good model in the fewest
# seconds. Muon's orthogonalisation costs the same per step whatever the batch, so modern spends less of each step on
# it with 24 windows than with 12 and needs half the steps; a schedule that decays over 300 steps reaches a low loss
# sooner than one that decays over 2,000; and AdamW's part (the embeddings, the head) steps at twice TrainConfig's
# rate. The measurements behind each number, on two texts of different kinds, with their commands: docs/modern.md.
# Only what the person did not choose (``preset_train_config``).
PRESET_TRAINING: dict[str, dict[str, Any]] = {
    "modern": dict(batch_size=24, max_iters=300, warmup_iters=30, lr=2e-3, min_lr=2e-4, muon_lr=0.02, eval_interval=50),
}
TRAINING_WORDS = {"batch_size": "batch {}", "max_iters": "{} steps", "warmup_iters": "warm-up {}",
                  "lr": "learning rate {:g}", "min_lr": "decaying to {:g}", "muon_lr": "Muon's rate {:g}",
                  "eval_interval": "an evaluation every {} steps"}


def preset_training(preset: str) -> dict[str, Any]:
    """The training settings ``preset`` brings with it (none for the lecture's rungs and the single switches,
    which train as gpt does so that a race between them compares the idea, not the schedule)."""
    return dict(PRESET_TRAINING.get(preset, {}))


def preset_training_words(preset: str) -> str:
    """"batch 24 · 300 steps · warm-up 30 · an evaluation every 50 steps": the recipe in the form's words."""
    return " · ".join(TRAINING_WORDS[k].format(v) for k, v in preset_training(preset).items())


def preset_train_config(preset: str, **chosen: Any) -> TrainConfig:
    """The command line's training settings: TrainConfig's defaults, then the preset's recipe, then what was
    chosen."""
    return TrainConfig(**{**preset_training(preset), **chosen}).validate()


SWITCH_WORDS = {"rope": "rope (rotary positions: each head's queries and keys turned by position, no position "
                        "table)", "swiglu": "swiglu (gated SiLU)", "muon": "muon (Muon + AdamW)"}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return SWITCH_WORDS.get(value, value)
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def preset_switch_sentence(preset: str, muon_lr: float | None = None) -> str:
    """The settings a preset fixes, in one line for the form ("" for the lecture's rungs and gpt): every switch,
    the ones the form has no widget for included, so nothing the run uses is hidden; with Muon, which parameters
    follow which peak."""
    fixed = preset_settings(preset)
    if not fixed:
        return ""
    parts = [f"{name} = {_shown(value)}" for name, value in fixed.items()]
    line = f"{preset} fixes: " + " · ".join(parts) + "."
    if fixed.get("optimizer") == "muon":
        rate = f" ({TrainConfig.muon_lr if muon_lr is None else muon_lr:g})"  # the form's, else the default
        line += (f" Muon steps the blocks' 2-D weight matrices at muon_lr{rate}; AdamW steps the embeddings, head, "
                 "gains and biases at the learning rate below.")
    return line


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, schedule, evaluation and where to run."""

    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 20
    checkpoint_interval: int = 0  # 0: checkpoint at every evaluation
    log_interval: int = 10
    seed: int = 1337
    val_fraction: float = 0.1
    device: str = "auto"
    dtype: str = "auto"  # bfloat16 mixed precision where the hardware has it natively, else float32
    compile: bool = False
    cuda_graphs: bool = False  # replay the whole step as one CUDA graph (CUDA only; see training/step.py)
    threads: int = 0  # 0: let babygpt choose (physical cores)
    sample_tokens: int = 0  # >0: generate this many tokens at each evaluation
    until_val_loss: float = 0.0  # >0: stop at the first evaluation whose val loss is at or below it (0: off)
    optimizer: str = "auto"  # auto: the preset's (see optimizer_for), adamw, or muon for the 2-D hidden weights
    muon_lr: float = 0.02  # Muon's peak step for the hidden matrices; it follows lr's warm-up and decay
    # Copies of the weights kept along the way (0: none), at checkpoint steps spread evenly before the end (see
    # kept_steps). A count, not "every Nth checkpoint": its disk cost (count × the weights) is known before the run
    # trains, whatever its length, and the Features page trains one SAE per kept copy, so the count bounds that too.
    keep_checkpoints: int = 0

    def validate(self) -> TrainConfig:
        _check_field_types(self)
        for name in ("batch_size", "max_iters", "eval_iters", "eval_interval", "log_interval", "grad_accum"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value}.")
        _check(self.warmup_iters >= 0, f"warmup_iters must be zero or more, got {self.warmup_iters}.")
        _check(self.checkpoint_interval >= 0, "checkpoint_interval must be zero (at each evaluation) or more.")
        _check(math.isfinite(self.lr) and self.lr > 0, f"The learning rate must be positive, got {self.lr}.")
        _check(self.lr <= 1.0, f"A learning rate of {self.lr} is far too large for AdamW; try 1e-3 (range 1e-4..1e-2).")
        _check(0 <= self.min_lr <= self.lr, f"min_lr ({self.min_lr}) must be between 0 and lr ({self.lr}).")
        _check(
            self.eval_interval <= self.max_iters,
            f"eval_interval ({self.eval_interval}) is larger than max_iters ({self.max_iters}): the run would "
            "never be evaluated. Lower eval_interval or raise max_iters.",
        )
        _check(self.weight_decay >= 0, f"weight_decay must be zero or more, got {self.weight_decay}.")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1).")
        _check(self.grad_clip >= 0, f"grad_clip must be zero (off) or more, got {self.grad_clip}.")
        _check(0 < self.val_fraction < 1, f"val_fraction must be between 0 and 1, got {self.val_fraction}.")
        _check(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {self.device!r}.")
        _check(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
        _check(self.threads >= 0, f"threads must be zero (automatic) or more, got {self.threads}.")
        _check(self.optimizer in OPTIMIZERS,
               f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        _check(0 < self.muon_lr <= 1.0, f"muon_lr must be in (0, 1], got {self.muon_lr}.")
        _check(self.keep_checkpoints >= 0, "keep_checkpoints must be zero (keep only the latest checkpoint) or how "
               f"many earlier copies of the weights to keep, got {self.keep_checkpoints}.")
        _check(self.until_val_loss >= 0, "until_val_loss must be zero (off: train every step) or a validation "
               f"loss to stop at, got {self.until_val_loss}.")
        return self

    def optimizer_for(self, model_config: ModelConfig) -> str:
        """The optimizer this run uses: the one named, or with ``auto`` the preset's (Muon for ``gpt+muon`` and
        ``modern``, AdamW for every other rung; the bigram table has no hidden matrices for Muon)."""
        if self.optimizer != "auto":
            return self.optimizer
        wants_muon = model_config.preset in ("gpt+muon", "modern") and model_config.use_attention
        return "muon" if wants_muon else "adamw"

    @property
    def effective_checkpoint_interval(self) -> int:
        return self.checkpoint_interval or self.eval_interval

    def kept_steps(self) -> tuple[int, ...]:
        """The checkpoint steps whose weights are kept: ``keep_checkpoints`` of the checkpoints before the last,
        spread evenly (all of them when there are fewer). The last step is left out because the run's own weights
        are that model already. A pure function of the settings, so a resumed run keeps the same steps."""
        every = self.effective_checkpoint_interval
        candidates = list(range(every, self.max_iters, every))
        n, k = len(candidates), self.keep_checkpoints
        if k >= n:
            return tuple(candidates)
        return tuple(candidates[math.floor(i * (n + 1) / (k + 1) + 0.5) - 1] for i in range(1, k + 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if isinstance(data, dict) and "sample_chars" in data:  # its name in runs saved before it was renamed
            data = {("sample_tokens" if k == "sample_chars" else k): v for k, v in data.items()}
        return cls(**_known_fields(cls, data)).validate()


_KINDS = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text"}


def _check_field_types(config: Any) -> None:
    """A config read from a file, a link or a form can hold any value: each field must have its default's type."""
    for f in fields(config):
        value, kind = getattr(config, f.name), type(f.default)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        _check(ok, f"{f.name} must be {_KINDS.get(kind, kind.__name__)}, got {value!r}.")


@dataclass(frozen=True)
class Setting:
    """One value a person sets, with what the app's form, a lesson link and the command line all read from it:
    its section, the values the app offers (``choices``) or accepts (``low``..``high``), and the help that
    teaches what it does. ``ModelConfig``/``TrainConfig.validate`` still decide what is valid at all; a setting's
    range is what a browser may ask of a shared server."""

    name: str
    section: str  # "model" or "train"
    help: str
    choices: tuple = ()  # the values offered, in order (a select slider or a select box)
    low: float | None = None  # the range accepted, inclusive (a number input or a slider)
    high: float | None = None
    step: float | None = None  # a slider's or number input's step
    in_form: bool = True  # on the Model & training page (else: the command line only)
    level: int = 0  # 0: always on the form; 1: hidden in presenter mode; 2: also folded under "Advanced"
    label: str = ""  # the form's label, when it is not the name

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def kind(self) -> type:
        defaults = ModelConfig() if self.section == "model" else TrainConfig()
        return type(getattr(defaults, self.name))

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused, in words (None: it is accepted)."""
        if self.choices:
            if value not in self.choices:
                return f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}."
            return None
        if self.kind in (int, float):
            number_ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number_ok or (self.kind is int and value != int(value)):
                return f"{self.name} must be {_KINDS[self.kind]}, got {value!r}."
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"{self.name} must be between {_number(self.low)} and {_number(self.high)}, got {_number(value)}."
        return None


def _number(value: float | None) -> str:
    """A bound or a value as a sentence shows it: 100,000 or 1e-05, and a huge whole number (a link's
    ``max_iters=1e308``) in six figures, not three hundred digits."""
    if value is None:
        return "…"
    return f"{value:g}" if isinstance(value, float) or abs(value) >= 10**12 else f"{value:,}"


SETTINGS: tuple[Setting, ...] = (
    # the model: a rung's sizes (its switches come from the preset)
    Setting("n_layer", "model", "Number of Transformer blocks stacked (residual and gpt presets). Usual: 2–6 on a CPU.",
            low=1, high=8, step=1),
    Setting("n_head", "model", "Attention heads per block; each gets n_embd / n_head dimensions.",
            choices=(1, 2, 3, 4, 6, 8)),
    Setting("n_embd", "model", "Width of every token's vector. Must be divisible by n_head. Usual: 64–384.",
            choices=(16, 32, 48, 64, 96, 128, 192, 256, 384)),
    Setting("block_size", "model", "How many previous tokens the model can look at. Attention cost grows as its square.",
            choices=(8, 16, 32, 64, 128, 256), label="block_size (context)"),
    Setting("dropout", "model", "Randomly zero activations while training (gpt preset) to fight overfitting. 0–0.2.",
            low=0.0, high=0.5, step=0.05, level=1),
    Setting("positional", "model", "Learned: a trained vector per position. Sinusoidal: fixed waves. The gpt+rope and "
            "modern presets use rotary positions (RoPE) instead, fixed by the preset.",
            choices=("learned", "sinusoidal"), level=1,
            label="Positional encoding"),
    Setting("activation", "model", "The feed-forward non-linearity: relu2 (ReLU², the default), gelu (nanoGPT), "
            "relu (the lecture's gpt.py), gelu_tanh (GPT-2's tanh approximation of GELU), swiglu (Llama's gated "
            "SiLU at 8/3 the width).", choices=ACTIVATIONS, in_form=False),
    Setting("norm", "model", "layernorm (GPT-2) or rmsnorm (Llama, nanochat: no mean, no bias).", choices=NORMS,
            in_form=False),
    Setting("logit_softcap", "model", "Cap the logits at ±cap with cap·tanh(logits / cap) (0: off; nanochat: 15).",
            low=0.0, high=100.0, in_form=False),
    # training
    Setting("max_iters", "train", "Total optimisation steps. 1000 steps of the default model take about a minute.",
            low=10, high=100_000, step=100),
    Setting("batch_size", "train", "Windows per step. Larger = smoother gradients, slower steps. Usual: 8–64.",
            low=1, high=128, step=1),
    Setting("lr", "train", "Peak AdamW step size. 1e-3 suits small models; too high and the loss explodes.",
            low=1e-5, high=1.0, label="learning rate"),
    Setting("eval_interval", "train", "Steps between validation estimates (and checkpoints).", low=1, high=100_000),
    Setting("min_lr", "train", "Where the cosine decay ends; usually lr / 10.", low=0.0, high=1.0, level=1,
            label="min lr"),
    Setting("muon_lr", "train", "Muon's peak step size for the blocks' 2-D weight matrices, on the presets that "
            "train with Muon (gpt+muon, modern); the learning rate above steps the rest with AdamW. nanochat: 0.02. "
            "It warms up and decays with the learning rate, in proportion.", low=1e-4, high=1.0,
            label="Muon's learning rate"),
    Setting("warmup_iters", "train", "Steps of linear warm-up from 0 to lr, so early noisy gradients do no harm.",
            low=0, high=10_000, level=1),
    Setting("eval_iters", "train", "Batches averaged per loss estimate: more = less noisy, slower.",
            low=1, high=500, level=1),
    Setting("weight_decay", "train", "AdamW decay on weight matrices only. Usual: 0.1.", low=0.0, high=1.0,
            level=2),
    Setting("grad_clip", "train", "Clip the gradient norm to this (0 = off); guards against spikes.",
            low=0.0, high=10.0, level=2),
    Setting("seed", "train", "Same seed + same settings + same data = the same curve.", low=0, high=2**31 - 1,
            level=2),
    Setting("device", "train", "auto picks CUDA, then Apple MPS, then the CPU.", choices=DEVICES, level=2),
    Setting("dtype", "train", "auto: bfloat16 mixed precision where it measures faster than float32 on this CPU, "
            "or on a GPU that has it. float16 needs a GPU.", choices=DTYPES, level=2),
    Setting("keep_checkpoints", "train", "Keep this many earlier copies of the weights, at checkpoints spread "
            "evenly over the run (0: only the latest). Each copy takes the model's float32 size on disk and counts "
            "in your quota; the Features page trains an SAE on each to show when a feature appeared.",
            low=0, high=20, step=1, level=2, label="kept checkpoints"),
    Setting("until_val_loss", "train", "Stop at the first evaluation whose validation loss (nats per token) is at or "
            "below this, and keep that checkpoint. 0: off, train every step.", low=0.0, high=20.0,
            label="stop when validation loss ≤"),
    # the command line only
    Setting("beta1", "train", "AdamW's first-moment decay.", in_form=False),
    Setting("beta2", "train", "AdamW's second-moment decay.", in_form=False),
    Setting("grad_accum", "train", "Micro-batches whose gradients add up to one step.", in_form=False),
    Setting("checkpoint_interval", "train", "Steps between checkpoints (0: at every evaluation).", in_form=False),
    Setting("log_interval", "train", "Steps between progress lines.", in_form=False),
    Setting("val_fraction", "train", "The end of the text held out for validation.", in_form=False),
    Setting("threads", "train", "CPU threads (0: babygpt chooses).", in_form=False),
    Setting("sample_tokens", "train", "Tokens to generate at each evaluation (0: none).", in_form=False),
    Setting("optimizer", "train", "auto: Muon for the gpt+muon and modern presets, else AdamW; muon: Muon for the "
            "2-D hidden weights and AdamW for embeddings, head, gains and biases.", choices=OPTIMIZERS,
            in_form=False),
)
BY_NAME = {s.name: s for s in SETTINGS}
MODEL_SETTINGS = tuple(s.name for s in SETTINGS if s.section == "model")
TRAIN_SETTINGS = tuple(s.name for s in SETTINGS if s.section == "train")
FORM_SETTINGS = tuple(s for s in SETTINGS if s.in_form)
# The app's defaults differ from TrainConfig's on purpose: a run started from a browser should show its whole
# curve in about a minute on a 2-core laptop, with ten evaluations to watch; TrainConfig's (2000 steps, an
# evaluation every 250) aim at the lowest loss from a terminal in a few minutes.
# Every run the app starts logs every 5 steps (its progress bar and chart move smoothly) and writes 120 tokens at
# each evaluation (the sample the page shows as it trains).
APP_RUN = dict(log_interval=5, sample_tokens=120)
INTERACTIVE_TRAIN = dict(max_iters=1000, warmup_iters=50, eval_interval=100, eval_iters=10, **APP_RUN)
# A fine-tune starts from weights that already know a lot: fewer steps, a lower rate, no warm-up.
FINE_TUNE_STEPS, FINE_TUNE_LR = 300, 3e-4


def app_train_config(**chosen: Any) -> TrainConfig:
    """The training settings of a run started from the app's form: the interactive defaults, under what the person
    chose (the form's settings and the text's validation fraction)."""
    return TrainConfig(**{**INTERACTIVE_TRAIN, **chosen}).validate()


def fine_tune_config(steps: int, lr: float, batch_size: int, val_fraction: float) -> TrainConfig:
    """A fine-tune's training settings from the four the Runs page asks for: the rate decays to a tenth, with no
    warm-up, and five evaluations along the way."""
    return TrainConfig(max_iters=steps, lr=lr, min_lr=lr / 10, warmup_iters=0, eval_interval=max(1, steps // 5),
                       val_fraction=val_fraction, batch_size=batch_size, **APP_RUN).validate()


def form_settings(preset: str) -> tuple[Setting, ...]:
    """The form's settings as ``preset`` uses them: Muon's rate only where the preset trains with Muon (a number
    that changes nothing there would teach that it does). Only these are shown, checked, trained with and shared
    in a link: a value left on a hidden field can neither block Start nor travel."""
    muon = preset_settings(preset).get("optimizer") == "muon"
    return tuple(s for s in FORM_SETTINGS if s.name != "muon_lr" or muon)


def form_defaults() -> dict[str, Any]:
    """The values the app's form starts from: the library's model defaults and the interactive training ones."""
    model, train = ModelConfig(), TrainConfig(**INTERACTIVE_TRAIN)
    return {"preset": DEFAULT_PRESET, **{s.name: getattr(model if s.section == "model" else train, s.name)
                                         for s in FORM_SETTINGS}}


def tokens_per_step(model_config: ModelConfig, train_config: TrainConfig, world_size: int = 1) -> int:
    """Training tokens one optimiser step consumes: every window of every micro-batch on every process."""
    return train_config.batch_size * model_config.block_size * train_config.grad_accum * world_size


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    _check(isinstance(data, dict), f"The {cls.__name__} section must be a JSON object, got {type(data).__name__}.")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    _check(not unknown, f"Unknown {cls.__name__} field(s): {', '.join(unknown)}.")
    return dict(data)
