"""Looking inside a trained model through one mechanism: an explicit pass over the run's own modules that keeps
what each layer read and wrote, and can knock a part out on the way.

``trace`` runs the same weights as ``GPT.forward`` (tests hold the logits equal) but one step at a time: the
residual stream before and after every block, each head's attention weights and output, each feed-forward's
output. What the views compute reads a ``Trace``:

* ``head_scores``: what each head does, by the known head types (previous token, first token or "sink", self,
  induction) and how spread its weights are;
* ``logit_lens``: what the model would predict if it stopped after each layer;
* ``Ablation``: a head, a layer's attention or a feed-forward replaced by zero or by its mean output, for the
  change in loss it causes.

Every number is from the model on screen; nothing here trains or builds a second model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import evaluating, require_layers, run_with_cache
from babygpt.model.gpt import LanguageModel
from babygpt.model.hooks import HookFn, hook_name


@dataclass(frozen=True)
class Ablation:
    """Parts knocked out of a pass. ``heads``: (layer, head) -> None for zero, or the head's mean output (hs,)
    to put in its place; ``attention``: layers whose whole attention update is removed (by mean: every head of
    the layer by its mean); ``feed_forward``: layer -> None to remove its update, or its mean update (C,) to put
    in its place. A removed update adds nothing to the stream; on the rungs before residual connections, where an
    update *is* the stream, the stream after it is zero."""

    heads: dict[tuple[int, int], torch.Tensor | None] = field(default_factory=dict)
    attention: frozenset[int] = frozenset()
    feed_forward: dict[int, torch.Tensor | None] = field(default_factory=dict)

    def hooks(self) -> list[tuple[str, HookFn]]:
        """The knock-outs as hooks on the explicit pass: heads at ``attn.hook_z``, updates at ``hook_attn_out`` and
        ``hook_mlp_out``."""
        by_layer: dict[int, dict[int, torch.Tensor | None]] = {}
        for (layer, head), replacement in self.heads.items():
            by_layer.setdefault(layer, {})[head] = replacement
        pairs = [(hook_name(layer, "attn.hook_z"), _replace_heads(heads)) for layer, heads in by_layer.items()]
        pairs += [(hook_name(layer, "hook_attn_out"), _replace_update(None)) for layer in self.attention]
        pairs += [(hook_name(layer, "hook_mlp_out"), _replace_update(r)) for layer, r in self.feed_forward.items()]
        return pairs


def _replace_heads(heads: dict[int, torch.Tensor | None]) -> HookFn:
    def replace(z: torch.Tensor, name: str) -> torch.Tensor:  # (B, T, nh, hs)
        z = z.clone()
        for head, replacement in heads.items():
            z[:, :, head] = 0.0 if replacement is None else replacement.to(z.dtype)
        return z
    return replace


def _replace_update(replacement: torch.Tensor | None) -> HookFn:
    def replace(update: torch.Tensor, name: str) -> torch.Tensor:  # (B, T, C)
        return torch.zeros_like(update) if replacement is None else replacement.to(update.dtype).expand_as(update)
    return replace


@dataclass
class Trace:
    """What one pass computed, per layer: ``residual[l]`` is the stream entering layer l (``residual[n_layer]``
    the stream the head reads); weights (B, nh, T, T); head outputs (B, nh, T, hs) before the projection; the
    feed-forward's update (B, T, C), None for a rung without one. Read off ``run_with_cache``."""

    residual: list[torch.Tensor]
    weights: list[torch.Tensor]
    head_outputs: list[torch.Tensor]
    ffn_updates: list[torch.Tensor | None]
    logits: torch.Tensor


TRACED = ("hook_resid_pre", "attn.hook_pattern", "attn.hook_z", "hook_mlp_out", "hook_resid_post")


def trace(model: LanguageModel, ids: torch.Tensor, ablation: Ablation | None = None) -> Trace:
    """The model's explicit pass in evaluation mode (no dropout), with ``ablation`` applied, read as a ``Trace``."""
    gpt = require_layers(model)
    n_layer = gpt.config.n_layer
    logits, cache = run_with_cache(gpt, ids, lambda name: name.endswith(TRACED),
                                   hooks=(ablation or Ablation()).hooks())
    at = lambda layer, point: cache.get(hook_name(layer, point))  # noqa: E731
    return Trace(residual=[at(layer, "hook_resid_pre") for layer in range(n_layer)]
                 + [at(n_layer - 1, "hook_resid_post")],
                 weights=[at(layer, "attn.hook_pattern") for layer in range(n_layer)],
                 head_outputs=[at(layer, "attn.hook_z").transpose(1, 2) for layer in range(n_layer)],
                 ffn_updates=[at(layer, "hook_mlp_out") for layer in range(n_layer)],
                 logits=logits)


# --- what each head does -------------------------------------------------------------------------

@dataclass(frozen=True)
class HeadType:
    """One kind of head the scores measure: its key, its name in a few words, its title on a chart, how it is
    measured, and what a head of this type does (with ``{token}`` for the tokenizer's word for a token)."""

    key: str
    name: str
    title: str
    measured: str
    does: str = ""  # empty for spread: a shape of the weights, not a type


HEAD_TYPE_TABLE = (
    HeadType("previous", "previous token", "previous token", "mean weight on position t−1",
             "mostly looks at the previous {token}"),
    HeadType("first", "first token", "first token (sink)", "mean weight on position 0 (a \"sink\")",
             "mostly looks at the first {token} (a sink)"),
    HeadType("self", "self", "self", "mean weight on position t itself", "mostly looks at its own {token}"),
    HeadType("induction", "induction", "induction", "on random tokens repeated twice, mean weight from each token of "
             "the second copy to the token just after its earlier occurrence",
             "is an induction head: it looks at the {token} after an earlier occurrence of the current one"),
    HeadType("spread", "spread", "spread of the weights", "entropy of the weights over the visible positions, "
             "0 (one position) to 1 (uniform)"),
)
HEAD_TYPE_BY_KEY = {t.key: t for t in HEAD_TYPE_TABLE}
SCORED = tuple(t.key for t in HEAD_TYPE_TABLE)  # every score recorded per head
TYPES = tuple(t.key for t in HEAD_TYPE_TABLE if t.does)  # the scores that name a type
POSITIONAL = tuple(k for k in SCORED if k != "induction")  # measured on text; induction on repeated random tokens
HEAD_TYPES = {t.key: f"{t.name}: {t.measured}" for t in HEAD_TYPE_TABLE}  # each type, defined in a line
TYPE_THRESHOLD = 0.4  # a head is called by its type when its mean weight there is at least this


def position_scores(weights: torch.Tensor) -> dict[str, np.ndarray]:
    """Previous, first, self and spread for each head, averaged over the batch and the positions where they mean
    something (t ≥ 1 for previous, t ≥ 2 for first and spread: at t = 0 and 1 every head must look there).
    ``weights``: (B, nh, T, T) -> each (nh,)."""
    w = weights.float()
    t = w.size(-1)
    if t < 3:
        raise BabyGPTError("Head types need a probe of at least 3 tokens.")
    rows = torch.arange(t)
    previous = w[..., rows[1:], rows[:-1]].mean(dim=(0, 2))
    first = w[..., 2:, 0].mean(dim=(0, 2))
    self_weight = w[..., rows, rows][..., 2:].mean(dim=(0, 2))
    visible = (rows + 1).float()  # a causal row t sees t + 1 positions
    entropy = -(w.clamp_min(1e-12).log() * w).sum(-1)  # (B, nh, T)
    spread = (entropy[..., 2:] / visible[2:].log()).mean(dim=(0, 2))
    return {k: v.numpy() for k, v in {"previous": previous, "first": first, "self": self_weight,
                                      "spread": spread}.items()}


def induction_probe(vocab_size: int, block_size: int, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Random tokens repeated twice, as long as the context allows: (batch, 2 × period) ids and the period. The
    tokens of one copy are distinct where the vocabulary allows, so "the token after its earlier occurrence" is
    one position, not several."""
    period = block_size // 2
    if period < 2:
        raise BabyGPTError("The induction test needs a context of at least 4 tokens.")
    generator = torch.Generator().manual_seed(seed)
    if vocab_size >= period:
        half = torch.stack([torch.randperm(vocab_size, generator=generator)[:period] for _ in range(batch)])
    else:
        half = torch.randint(vocab_size, (batch, period), generator=generator)
    return torch.cat([half, half], dim=1), period


def induction_scores(weights: torch.Tensor, period: int) -> np.ndarray:
    """Mean weight from each query t of the second copy to key t − period + 1 (the token after the earlier
    occurrence of the current one). ``weights``: (B, nh, T, T) on an ``induction_probe`` -> (nh,)."""
    queries = torch.arange(period, 2 * period - 1)
    return weights.float()[..., queries, queries - period + 1].mean(dim=(0, 2)).numpy()


@dataclass(frozen=True)
class HeadScores:
    """Every head's score on every type: each (n_layer, n_head)."""

    previous: np.ndarray
    first: np.ndarray
    self: np.ndarray
    spread: np.ndarray
    induction: np.ndarray
    text_shape: tuple[int, int] = (0, 0)  # (windows, tokens each) of text the positional types were measured on

    def strongest(self, layer: int, head: int) -> tuple[str, float]:
        """The type this head scores highest on, and that score (spread is a shape, not a type)."""
        scores = {kind: getattr(self, kind)[layer, head] for kind in TYPES}
        kind, value = max(scores.items(), key=lambda item: item[1])
        return kind, float(value)

    def kind(self, layer: int, head: int) -> str:
        """The head's type in a few words, or "" when it fits none."""
        kind, value = self.strongest(layer, head)
        return HEAD_TYPE_BY_KEY[kind].name if value >= TYPE_THRESHOLD else ""

    def reading(self, layer: int, head: int, token_word: str = "token") -> str:
        """One line that states only what the scores show."""
        kind, value = self.strongest(layer, head)
        where = f"layer {layer} head {head}"
        if value < TYPE_THRESHOLD:
            return (f"{where} fits no known type (its strongest score, {kind}, is {value:.2f}); its weights are "
                    f"{'spread out' if self.spread[layer, head] > 0.5 else 'concentrated'} "
                    f"(spread {self.spread[layer, head]:.2f}).")
        return f"{where} {HEAD_TYPE_BY_KEY[kind].does.format(token=token_word)}: {value:.2f}"


def head_scores(model: LanguageModel, text_ids: torch.Tensor, seed: int = 0) -> HeadScores:
    """Scores of every head: the positional types on ``text_ids`` (B, T: windows of the run's validation text),
    induction on random tokens repeated twice."""
    gpt = require_layers(model)
    on_text = [position_scores(w) for w in trace(gpt, text_ids).weights]
    probe, period = induction_probe(gpt.config.vocab_size, gpt.config.block_size, seed=seed)
    induction = [induction_scores(w, period) for w in trace(gpt, probe.to(text_ids.device)).weights]
    stack = {k: np.stack([s[k] for s in on_text]) for k in POSITIONAL}
    return HeadScores(induction=np.stack(induction), text_shape=(int(text_ids.size(0)), int(text_ids.size(1))),
                      **stack)


@dataclass(frozen=True)
class ProbeReading:
    """What training records of the probe prompt at one evaluation: its attention weights (n_layer, nh, T, T)
    and every head's scores by type, each (n_layer, n_head) as nested lists ({} for a probe under 3 tokens)."""

    weights: np.ndarray
    scores: dict[str, list]


def probe_reading(model: LanguageModel, probe_ids: list[int], seed: int = 0) -> ProbeReading:
    """One pass over the fixed probe prompt (the start of the validation text) gives both its attention and the
    positional types; one more over repeated random tokens (4 × block_size) gives induction."""
    gpt = require_layers(model)
    device = next(gpt.parameters()).device
    weights = [w[0].float().cpu() for w in trace(gpt, torch.tensor([probe_ids], device=device)).weights]
    stacked = torch.stack(weights).numpy()
    if len(probe_ids) < 3:
        return ProbeReading(stacked, {})
    on_probe = [position_scores(w[None]) for w in weights]
    probe, period = induction_probe(gpt.config.vocab_size, gpt.config.block_size, seed=seed)
    induction = [induction_scores(w.cpu(), period) for w in trace(gpt, probe.to(device)).weights]
    out = {k: [s[k].tolist() for s in on_probe] for k in POSITIONAL}
    out["induction"] = [row.tolist() for row in induction]
    return ProbeReading(stacked, out)


def scores_during_training(model: LanguageModel, probe_ids: list[int], seed: int = 0) -> dict[str, list]:
    """Every head's scores by type on the probe prompt, as training records them (``probe_reading``)."""
    return probe_reading(model, probe_ids, seed).scores


# --- what each layer predicts ------------------------------------------------------------------

def logit_lens(model: LanguageModel, ids: torch.Tensor) -> torch.Tensor:
    """Next-token probabilities if the model stopped after each layer: the stream at that point through the final
    norm (where the model has one) and the head. (n_layer + 1, T, V) for one sequence; row 0 is the embeddings
    alone, the last row the model's own prediction."""
    gpt = require_layers(model)
    streams = trace(gpt, ids[:1]).residual
    with evaluating(gpt):
        return torch.stack([F.softmax(gpt.lm_head(gpt.ln_f(s))[0].float(), dim=-1) for s in streams])


# --- what breaks without a part ----------------------------------------------------------------

def loss_of(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1)).item()


KINDS = ("zero", "mean")  # how a part is knocked out: its output replaced by nothing, or by its mean output


@dataclass(frozen=True)
class MeanOutputs:
    """What each part adds on average over a text: what knocking it out by mean puts in its place, so that only
    what it says about this context is removed. ``heads``: (n_head, hs) per layer; ``feed_forward``: (C,) per
    layer, None for a rung without one."""

    heads: list[torch.Tensor]
    feed_forward: list[torch.Tensor | None]


def mean_outputs(model: LanguageModel, ids: torch.Tensor) -> MeanOutputs:
    traced = trace(model, ids)
    return MeanOutputs([out.mean(dim=(0, 2)) for out in traced.head_outputs],
                       [None if u is None else u.mean(dim=(0, 1)) for u in traced.ffn_updates])


def means_for(model: LanguageModel, ids: torch.Tensor, kind: str) -> MeanOutputs | None:
    """The mean outputs a knock-out of ``kind`` needs (None for zero), after checking the kind."""
    if kind not in KINDS:
        raise BabyGPTError(f"Ablation is by zero or by mean, not {kind!r}.")
    return mean_outputs(model, ids) if kind == "mean" else None


def without_head(layer: int, head: int, means: MeanOutputs | None) -> Ablation:
    """One head knocked out: by zero (``means`` None) or by its mean output."""
    return Ablation(heads={(layer, head): None if means is None else means.heads[layer][head]})


def without_attention(layer: int, means: MeanOutputs | None) -> Ablation:
    """A layer's whole attention knocked out: its update removed, or every head replaced by its mean output
    (the projection is linear, so that is the update's mean)."""
    if means is None:
        return Ablation(attention=frozenset({layer}))
    return Ablation(heads={(layer, h): mean for h, mean in enumerate(means.heads[layer])})


def without_feed_forward(layer: int, means: MeanOutputs | None) -> Ablation:
    return Ablation(feed_forward={layer: None if means is None else means.feed_forward[layer]})


def head_ablation_losses(model: LanguageModel, ids: torch.Tensor, targets: torch.Tensor,
                         mode: str = "zero", intact: float | None = None,
                         means: MeanOutputs | None = None) -> np.ndarray:
    """The loss with each head knocked out, minus the intact loss: (n_layer, n_head), in nats per token.
    ``mode`` zero: the head's output is 0; mean: its mean output on this text (keeps what it always adds);
    ``means``: those outputs when the caller has them already."""
    gpt = require_layers(model)
    means = means if mode == "mean" and means is not None else means_for(gpt, ids, mode)
    intact = loss_of(trace(gpt, ids).logits, targets) if intact is None else intact
    deltas = np.zeros((gpt.config.n_layer, gpt.config.n_head))
    for layer in range(gpt.config.n_layer):
        for head in range(gpt.config.n_head):
            ablated = trace(gpt, ids, without_head(layer, head, means)).logits
            deltas[layer, head] = loss_of(ablated, targets) - intact
    return deltas


def without_heads(heads: list[tuple[int, int]], means: MeanOutputs | None) -> Ablation:
    """Several heads knocked out at once, each by zero (``means`` None) or by its own mean output."""
    return Ablation(heads={(layer, head): None if means is None else means.heads[layer][head]
                           for layer, head in heads})


def heads_of_type(scores: HeadScores, kind: str) -> list[tuple[int, int]]:
    """The heads called by type ``kind``: their strongest type, at ``TYPE_THRESHOLD`` or above."""
    if kind not in TYPES:
        raise BabyGPTError(f"Heads are typed as {', '.join(TYPES)}, not {kind!r}.")
    n_layer, n_head = scores.previous.shape
    return [(layer, head) for layer in range(n_layer) for head in range(n_head)
            if scores.kind(layer, head) == HEAD_TYPE_BY_KEY[kind].name]
