"""Which tokenizer for your text? The same model trained with ``char``, GPT-2's BPE and BPEs learned from the text
at several vocabulary sizes, with the same training compute and several seeds, compared in bits per byte.

Equal training compute means here **the same bytes of training text seen**: every entry trains with the same batch
and context (in tokens), for as many steps as make ``steps × tokens per step × its bytes per token`` the race's
budget (``Budget``). A tokenizer whose tokens hold more bytes therefore takes fewer steps; its model is also bigger,
since every token of the vocabulary is a row of the embedding (and of the output layer), and each row is trained
by fewer occurrences of its token. The FLOPs each entry spent are shown beside the verdict, so the budget is plain.

A tokenizer race is read by the ladder race's own rules (``babygpt.lessons.race``): the same results per entry, the
same resolution and the same verdicts against the seed spread; only the comparison differs (every entry against the
best, instead of each rung against the one below). Reads no store: ``babygpt.orchestration.tokenizer_race`` plans
the runs and hands their rows here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import ValidationText
from babygpt.lessons.race import BITS_PER_BYTE, SPREAD_COLUMN, Band, LadderStep, RungResult, mean_column
from babygpt.model.sizing import flops_per_token, parameter_count

TOKENIZER_RACE = "tokenizer race"  # how its runs are named and its row in the Runs table is labelled
MIN_STEPS = 20  # fewer steps than this and an entry has barely evaluated: the budget is refused instead

WHAT_TO_SEE = (
    "A bigger vocabulary shortens the sequence: each token holds more bytes, so the same context window sees more "
    "text and the same budget of text takes fewer steps. It is not free: every token is a row of the embedding and "
    "of the output layer (more parameters), and the more tokens there are, the fewer times each one occurs in the "
    "text the model learns from. Which tokenizer wins depends on the text and on the budget: rerun the race with "
    "more text seen, or on another text, and the order can change.")

BUDGET_SENTENCE = (
    "Every entry trained the same model on the same bytes of text: the same batch and context in tokens, for as "
    "many steps as make steps × tokens per step × its bytes per token the race's budget.")


def tokenizer_name(config: dict[str, Any]) -> str:
    """An entry of a tokenizer race by its recorded tokenizer: "char", "gpt2", or "bpe 1024" (the size asked for)."""
    tokenizer = config.get("tokenizer") or {}
    kind = str(tokenizer.get("kind"))
    if kind != "bpe":
        return kind
    asked = tokenizer.get("asked")
    size = asked if isinstance(asked, int) and asked > 0 else (config.get("model") or {}).get("vocab_size")
    return f"bpe {size}"


def tokenizers_differ(configs: list[dict[str, Any]]) -> bool:
    """Whether a race's runs cut their text with different tokenizers (a tokenizer race; a ladder race shares one)."""
    return len({tokenizer_name(c) for c in configs}) > 1


def race_key(configs: list[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """What names a race's entries: the tokenizer in a tokenizer race, else the rung (the run's preset)."""
    if tokenizers_differ(configs):
        return tokenizer_name
    return lambda config: str((config.get("model") or {}).get("preset"))


# --- the budget ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """Equal training compute: ``text_bytes`` of training text seen by every entry, ``tokens_per_step`` at a time."""

    text_bytes: int
    tokens_per_step: int

    def steps(self, name: str, bytes_per_token: float) -> int:
        """The steps that make this entry see the budget's bytes; refused in a sentence below MIN_STEPS."""
        steps = round(self.text_bytes / (self.tokens_per_step * bytes_per_token))
        if steps < MIN_STEPS:
            least = MIN_STEPS * self.tokens_per_step * bytes_per_token
            raise BabyGPTError(f"With {self.text_bytes:,} bytes of text per entry, {name} ({bytes_per_token:.2f} "
                               f"bytes a token) would train only {steps} steps; give every entry at least "
                               f"{least:,.0f} bytes of text.")
        return steps


# --- what each entry cost ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EntryFacts:
    """What one entry of a tokenizer race trained with, read from a run's recorded config."""

    name: str
    vocab_size: int
    bytes_per_token: float  # on its training split (what set its steps), or where that text is gone its validation text
    steps: int
    tokens_per_step: int
    parameters: int
    vocab_parameters: int  # the embedding's rows and the output layer's: what the vocabulary costs
    flops_per_token: float

    measured_on_training: bool = True  # False: bytes per token of the validation text, the training text not here

    @classmethod
    def from_config(cls, config: dict[str, Any], training_bytes_per_token: float | None = None) -> EntryFacts | None:
        """From a run's config and its training split's bytes per token (``None`` when its text is not on this
        server: the validation text's, which the run keeps, stands in); None for a run that does not know its
        validation text (recorded before runs kept it)."""
        validation = ValidationText.from_config(config)
        if validation is None:
            return None
        model = ModelConfig.from_dict(config["model"])
        train = config["train"]
        tokens_per_step = int(train["batch_size"]) * model.block_size * int(train.get("grad_accum", 1))
        vocab_parameters = parameter_count(model) - parameter_count(dataclasses.replace(model, vocab_size=0))
        measured = training_bytes_per_token is not None
        return cls(tokenizer_name(config), model.vocab_size,
                   training_bytes_per_token if measured else validation.bytes_per_token, int(train["max_iters"]),
                   tokens_per_step, parameter_count(model), vocab_parameters, flops_per_token(model), measured)

    @property
    def tokens_seen(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def text_seen(self) -> float:
        """How many bytes of training text the entry saw (about that, measured on the validation text)."""
        return self.tokens_seen * self.bytes_per_token

    @property
    def tokens_per_vocab_entry(self) -> float:
        """How often each token of the vocabulary was seen in training, on average: the data a row learns from."""
        return self.tokens_seen / self.vocab_size

    @property
    def flops(self) -> float:
        return self.flops_per_token * self.tokens_seen


# --- the verdicts --------------------------------------------------------------------------------------------------

def against_best(results: list[RungResult]) -> dict[str, LadderStep]:
    """Every evaluated entry against the best (the lowest mean), the best against the next best, each judged by the
    ladder race's rule (``LadderStep.verdict``): a difference counts only beyond the seed spread."""
    done = sorted((r for r in results if r.losses), key=lambda r: r.mean)
    if len(done) < 2:
        return {}

    def step(lower: RungResult, upper: RungResult) -> LadderStep:
        return LadderStep(lower.preset, upper.preset, lower.mean - upper.mean,
                          max(lower.spread, upper.spread, lower.resolution, upper.resolution),
                          lower.spread_measured and upper.spread_measured, max(lower.resolution, upper.resolution))

    best, runner_up = done[0], done[1]
    return {best.preset: step(runner_up, best), **{r.preset: step(best, r) for r in done[1:]}}


def tokenizer_table(results: list[RungResult], facts: dict[str, EntryFacts]) -> list[dict[str, Any]]:
    """The race's table, one row per entry, every cell a number or words (never None)."""
    steps = against_best(results)
    best = min((r for r in results if r.losses), key=lambda r: r.mean, default=None)
    rows = []
    for r in results:
        f = facts.get(r.preset)
        verdict = "—"
        if r.preset in steps:
            side = "against the next best" if best is not None and r.preset == best.preset else "against the best"
            verdict = f"{side} ({steps[r.preset].lower}): {steps[r.preset].verdict}"
        rows.append({"tokenizer": r.preset, "vocabulary": f"{f.vocab_size:,}" if f else "—",
                     "bytes per token": f"{f.bytes_per_token:.2f}" if f else "—",
                     "steps": f"{f.steps:,}" if f else "—",
                     "text seen": (f"{f.text_seen / 1000:,.0f} kB" if f.measured_on_training
                                   else f"≈ {f.text_seen / 1000:,.0f} kB") if f else "—",
                     "parameters (vocabulary's)": f"{r.parameters:,} ({f.vocab_parameters:,})" if f else f"{r.parameters:,}",
                     "times each token was seen": f"{f.tokens_per_vocab_entry:,.0f}" if f else "—",
                     "training FLOPs": f"{f.flops:.2e}" if f else "—",
                     "seeds": f"{r.finished}/{r.seeds} done", mean_column(r.unit): r.mean_words(),
                     SPREAD_COLUMN: r.spread_words(), "verdict": verdict})
    return rows


def tokenizer_verdict(results: list[RungResult]) -> str:
    """The race's answer in one sentence: which tokenizer did best on this text and budget, and whether the race
    can tell it from the others."""
    done = sorted((r for r in results if r.losses), key=lambda r: r.mean)
    if len(done) < 2:
        return "Fewer than two tokenizers have evaluated yet: no comparison so far."
    unit = "bits per byte" if done[0].unit == BITS_PER_BYTE else "nats per token"
    best = done[0]
    steps = against_best(results)
    tied = [r.preset for r in done[1:] if steps[r.preset].verdict.startswith("within")]
    head = f"Lowest so far: {best.preset} ({best.mean:.3f} {unit})"
    if not steps[best.preset].spread_measured:
        return (f"{head}. With one seed no spread between seeds was measured, so this race cannot say whether its "
                "lead is more than a seed's luck: race two seeds or more.")
    if not tied:
        return f"{head}, better than every other tokenizer by more than the seed spread, on this text and budget."
    return (f"{head}; {', '.join(tied)} {'is' if len(tied) == 1 else 'are'} within the seed spread of it, so this "
            "race cannot tell them apart on this text and budget: more seeds or more text seen may.")


def tokenizer_note() -> str:
    """What the table rests on, in words under it."""
    return (BUDGET_SENTENCE + " Each run's lowest evaluated validation loss is read in bits per byte of its "
            "validation text; the mean and spread are over each tokenizer's seeds, and a difference counts only when "
            "it is larger than the spread (and than what one evaluation resolves).")


def bands_by_text_seen(bands: dict[str, Band], facts: dict[str, EntryFacts]) -> dict[str, Band]:
    """Each entry's validation band against the kilobytes of text it had seen at each evaluation (step × tokens per
    step × its bytes per token): at equal bytes the entries end at the same place, whatever their steps."""
    return {name: Band([s * f.tokens_per_step * f.bytes_per_token / 1000 for s in band.steps], band.mean, band.low,
                       band.high)
            for name, band in bands.items() if (f := facts.get(name)) is not None}
