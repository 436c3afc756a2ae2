"""The ladder race: every rung on the same text with the same token budget, several seeds each.

This module reads a race's runs as rows (``RaceEntry``) and says what they show; starting the runs and reading
them out of the store is orchestration (``babygpt.orchestration.race``). A race teaches that each idea of the
Transformer lowers the loss, so it must not mistake an optimisation
failure or noise for a property of a rung. Each rung trains at the learning rate that suits it (a small
network without residual paths wants a higher rate than a deep one; the lecture tuned each step too), found by
``python -m bench.race_sweep`` on the bundled corpus and used unchanged on every text; every rung runs several
seeds, and a step up the ladder counts as a gain only when it is larger than the seeds' spread.

Losses are read in bits per byte (``babygpt.text.measured.ValidationText``), so a race on a BPE learned from the
text reads on the same scale as one on characters; a race recorded before runs kept their validation text's size is
read in nats per token, and says so.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any

from babygpt.config import PRESETS, ModelConfig, preset_switches
from babygpt.lessons.baselines import ValidationText
from babygpt.model.sizing import parameter_count
from babygpt.pace import Trained, group_tokens_per_second
from babygpt.status import RunStatus

NATS, BITS_PER_BYTE = "nats per token", "bits per byte"  # the units a race is read in
# The best val loss is measured on 20 batches of 12 × 32 tokens: its standard error is about 0.01 nats, so a
# difference under 0.02 is not resolved by the measurement, however close the seeds happen to agree.
EVAL_RESOLUTION = 0.02


def _number(value: float) -> str:
    """0.02 → '0.02', 0.0289 → '0.029': a resolution as few digits as it needs."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class RungResult:
    """A rung's best validation loss over its seeds (the loss the Runs table shows), while it trains too, in
    ``unit``; ``resolution`` is what one evaluation resolves in that unit (EVAL_RESOLUTION nats per token)."""

    preset: str
    parameters: int
    lr: float
    losses: tuple[float, ...]  # one per seed that has evaluated at least once
    seeds: int
    finished: int
    unit: str = NATS
    resolution: float = EVAL_RESOLUTION
    step_seconds: tuple[float, ...] = ()  # seconds per training step of each run that measured one
    curves: tuple[tuple[tuple[int, float], ...], ...] = ()  # each evaluated seed's (step, loss), in ``unit``

    @property
    def seconds_per_step(self) -> float | None:
        """The rung's cost per training step, evaluations excluded: the mean over its runs (``babygpt.pace``)."""
        return statistics.mean(self.step_seconds) if self.step_seconds else None

    @property
    def step_seconds_spread(self) -> float:
        """max − min of its runs' seconds per step: how much sharing the server's cores moved it (0.0 for one)."""
        return max(self.step_seconds) - min(self.step_seconds) if len(self.step_seconds) > 1 else 0.0

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.losses) if self.losses else None

    @property
    def spread(self) -> float:
        """max − min over the seeds: how much the seed alone moves this rung's loss (0.0 until two seeds have
        evaluated: see ``spread_measured``)."""
        return max(self.losses) - min(self.losses) if len(self.losses) > 1 else 0.0

    @property
    def spread_measured(self) -> bool:
        """A spread takes two seeds that have evaluated; one seed measures none."""
        return len(self.losses) > 1

    def spread_words(self) -> str:
        """The spread as the race's table shows it: a number only where one was measured."""
        if self.spread_measured:
            return f"{self.spread:.3f}"
        if self.seeds == 1:
            return "one seed: not measured"
        return "not measured yet (fewer than two seeds evaluated)"

    def mean_words(self) -> str:
        return "not evaluated yet" if self.mean is None else f"{self.mean:.3f}"


@dataclass(frozen=True)
class RaceEntry:
    """One run of a race as the lesson reads it: its rung (in a tokenizer race, its tokenizer), its recorded
    config, whether it ended, and its validation curve (step → loss) so far, in nats per token as recorded or in
    bits per byte (``in_race_unit``; ``per_nat``: what one nat per token is in the curve's unit), and its seconds
    per training step (``babygpt.pace.step_seconds``; None until a step row has a rate)."""

    preset: str
    config: dict[str, Any]
    ended: bool
    val_curve: dict[int, float]
    unit: str = NATS
    per_nat: float = 1.0
    seconds_per_step: float | None = None


def in_race_unit(entries: list[RaceEntry]) -> tuple[list[RaceEntry], str]:
    """The race's curves in bits per byte, each run's by its own validation text, and the unit; in nats per token
    when a run does not know its validation text (recorded before runs kept it)."""
    if entries and all(e.unit == BITS_PER_BYTE for e in entries):
        return entries, BITS_PER_BYTE
    texts = [ValidationText.from_config(e.config) for e in entries]
    if not entries or any(t is None for t in texts):
        return entries, NATS
    return [dataclasses.replace(e, val_curve={step: t.bits_per_byte(v) for step, v in e.val_curve.items()},
                                unit=BITS_PER_BYTE, per_nat=t.bits_per_byte(1.0))
            for e, t in zip(entries, texts, strict=True)], BITS_PER_BYTE


def race_keys(entries: list[RaceEntry]) -> list[str]:
    """A race's entries in the order they are read: a ladder's rungs bottom up, then any other entry (a tokenizer
    race's, ``babygpt.lessons.tokenizer_race``) in the order its runs were queued."""
    named = dict.fromkeys(e.preset for e in entries)
    return [p for p in PRESETS if p in named] + [k for k in named if k not in PRESETS]


def race_results(entries: list[RaceEntry]) -> list[RungResult]:
    entries, unit = in_race_unit(entries)
    results = []
    for preset in race_keys(entries):
        mine = [e for e in entries if e.preset == preset]
        if not mine:
            continue
        losses = [min(e.val_curve.values()) for e in mine if e.val_curve]
        train = mine[0].config["train"]
        results.append(RungResult(preset, parameter_count(ModelConfig.from_dict(mine[0].config["model"])),
                                  train["lr"], tuple(losses), len(mine), sum(e.ended for e in mine), unit,
                                  EVAL_RESOLUTION * max(e.per_nat for e in mine),
                                  tuple(e.seconds_per_step for e in mine if e.seconds_per_step),
                                  tuple(tuple(sorted(e.val_curve.items())) for e in mine if e.val_curve)))
    return results


@dataclass(frozen=True)
class LadderStep:
    """One step up the ladder and whether its gain is larger than the noise of the two rungs' seeds."""

    lower: str
    upper: str
    gain: float  # mean loss of the lower rung minus the upper's: positive is better
    noise: float  # the larger of the two rungs' seed spreads, never below what the evaluation resolves
    spread_measured: bool = True  # False: a rung has one evaluated seed, so no seed spread stands behind ``noise``
    resolution: float = EVAL_RESOLUTION  # what one evaluation resolves, in the race's unit

    @property
    def verdict(self) -> str:
        if not self.spread_measured:  # only the evaluation's own resolution to go by: no claim about seeds
            if abs(self.gain) <= self.resolution:
                return f"within what the evaluation resolves ({_number(self.resolution)}): no measured difference"
            word = "better" if self.gain > 0 else "worse"
            return f"{word} by {abs(self.gain):.3f}, with no seed spread measured to compare it with"
        if self.gain > self.noise:
            return "better, by more than the seed spread"
        if -self.gain > self.noise:
            return "worse, by more than the seed spread"
        return "within the seed spread: no measured difference"


# Why a rung's gain can be small at the race's size, measured by bench/ladder_race (docs/lessons.md)
WITHIN_NOISE_REASONS = {
    "single-head": "One head mixes the tokens it looks at into a single weighted average, and with no residual path "
                   "the current token reaches the output only through that average; where the next token depends "
                   "on the exact pair of the last ones (a Markov-chain text, say), the average blurs the pair. "
                   "Several heads, the next rung, can look at each token separately.",
    "multi-head+ffn": "Without residual connections the feed-forward network's two layers lengthen the only path "
                      "from input to output, which slows learning: at 500 steps this rung was clearly worse, by "
                      "2000 it has caught up. The next rung's residual path is what lets the extra computation pay.",
    "gpt": "Layer norm mostly helps deeper models trained for longer (the race trains every rung without "
           "dropout); with 2 layers and 2000 steps its gain is about the size of the seed noise.",
}


def step_explanation(step: LadderStep) -> str:
    """Why a step up the ladder did not show a gain, in words a student can check (empty for a gain)."""
    if step.verdict.startswith("better"):
        return ""
    if not step.spread_measured:
        if step.verdict.startswith("within"):
            return (f"{step.lower} → {step.upper}: the difference ({step.gain:+.3f}) is smaller than what one "
                    f"evaluation resolves ({_number(step.resolution)}). With one seed no spread between seeds was measured: "
                    "race two seeds or more to tell a gain from a lucky seed.")
        return (f"{step.lower} → {step.upper}: worse by {-step.gain:.3f} with one seed. No spread between seeds was "
                "measured, so this race cannot say whether that is more than a seed's luck: race two seeds or more.")
    if step.verdict.startswith("within"):
        return (f"{step.lower} → {step.upper}: the difference ({step.gain:+.3f}) is smaller than the spread between "
                f"seeds ({step.noise:.3f}), so this race cannot tell the two apart on this text. "
                + WITHIN_NOISE_REASONS.get(step.upper, "More steps, more seeds or a longer text may."))
    if step.upper == "multi-head+ffn":
        return (f"{step.lower} → {step.upper}: worse by {-step.gain:.3f}. Without residual connections the "
                "feed-forward network's two layers sit in the only path from input to output, and such a deeper "
                "path learns more slowly: with a short budget it has not caught up yet (by 2000 steps it has, "
                "on the texts measured). The next rung, residual, adds the shortcut that fixes exactly this.")
    return (f"{step.lower} → {step.upper}: worse by {-step.gain:.3f}, more than the seed spread. A bigger model "
            "has more to learn and can lose to a smaller one in a short budget; try more steps.")


def ladder_steps(results: list[RungResult]) -> list[LadderStep]:
    """Each step up the ladder; its noise is the larger seed spread of the two rungs, and never less than what
    the evaluation itself resolves."""
    done = [r for r in results if r.losses]
    gpt = next((r for r in done if r.preset == "gpt"), None)
    # a modern rung is gpt with a switch: it is judged against gpt, not against the modern rung listed before it
    pairs = [(gpt if gpt is not None and preset_switches(b.preset) else a, b) for a, b in zip(done[:-1], done[1:], strict=True)]
    return [LadderStep(a.preset, b.preset, a.mean - b.mean, max(a.spread, b.spread, a.resolution, b.resolution),
                       a.spread_measured and b.spread_measured, max(a.resolution, b.resolution)) for a, b in pairs]


def _duration(seconds: float) -> str:
    """0.01234 → '12.3 ms', 41.23 → '41.2 s': a time in three figures."""
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s" if seconds < 100 else f"{seconds:,.0f} s"


def _modern(result: RungResult) -> bool:
    """A modern rung: gpt with switches, judged against gpt (``ladder_steps``)."""
    return bool(preset_switches(result.preset))


def _gpt(results: list[RungResult]) -> RungResult | None:
    return next((r for r in results if r.preset == "gpt"), None)


def step_cost(rung: RungResult, gpt: RungResult | None) -> float | None:
    """The cost of a rung's training step as a multiple of gpt's in the same race: 1.62 is 62% more seconds per
    step (None where either is unmeasured). Muon's orthogonalisation, QK-norm and the rest are not free at small
    widths, and only a ratio within one race compares like with like: both rungs trained on the same server at
    the same time, sharing its cores the same way."""
    if gpt is None or not rung.seconds_per_step or not gpt.seconds_per_step:
        return None
    return rung.seconds_per_step / gpt.seconds_per_step


def step_cost_words(rung: RungResult, gpt: RungResult | None) -> str:
    """The race table's time per step: the rung's seconds per training step, and a modern rung's cost in gpt's."""
    if rung.seconds_per_step is None:
        return "not measured yet" if rung.finished < rung.seeds else "not measured: no step was timed"
    ratio = step_cost(rung, gpt) if _modern(rung) else None
    own = _duration(rung.seconds_per_step)
    return f"{own}, {ratio:.2f}× gpt's step" if ratio is not None else own


def gpt_budget(gpt: RungResult) -> float | None:
    """The training seconds gpt's runs took to their last evaluation (where their best was found): its seconds
    per step × that step, mean over its seeds; None until it is measured."""
    if gpt.seconds_per_step is None or not gpt.curves:
        return None
    return gpt.seconds_per_step * statistics.mean(curve[-1][0] for curve in gpt.curves)


@dataclass(frozen=True)
class TimeMatched:
    """A modern rung against gpt at equal training time (``time_matched``)."""

    upper: str
    budget_s: float  # gpt's training seconds (``gpt_budget``)
    losses: tuple[float, ...]  # each seed's best loss among its evaluations reached within the budget
    last_step: int | None  # the latest of those evaluations (None: no evaluation after step 0 was reached)
    first: tuple[int, float]  # the rung's first evaluation after step 0: its step, and its training seconds
    step: LadderStep | None  # the gain against gpt's best and its verdict (None: nothing to compare)


def time_matched(gpt: RungResult, rung: RungResult) -> TimeMatched | None:
    """The gain per second of wall time: the rung's validation loss when it has trained as long as gpt did, against
    gpt's best.

    A student with a clock cares how good the model is after the time they waited, not after a number of steps:
    a switch that lowers the loss per step but makes each step dearer can lose at equal time. So the rung's seconds
    per step turn its evaluations' steps into training seconds (evaluations excluded, ``babygpt.pace``), and each
    seed's figure is the best of its evaluations after step 0 reached within gpt's training seconds
    (``gpt_budget``): never a loss it had not shown by then. A step's time counts as within when the rung's pace
    is no slower than gpt's by more than either rung's seeds' step times spread (sharing the server's cores moves
    them), so a rung as fast as gpt is not docked its last evaluation for a timing wobble; with one seed there is
    no spread, and none is allowed. The verdict is the loss's own rule (``LadderStep``): the spread of these
    time-matched losses and gpt's, never less than what an evaluation resolves. None until every run of both
    rungs has ended with its steps timed and evaluated."""
    budget = gpt_budget(gpt)
    if (budget is None or rung.seconds_per_step is None or not rung.curves or gpt.mean is None
            or gpt.finished < gpt.seeds or rung.finished < rung.seeds):
        return None
    pace = max(0.0, rung.seconds_per_step - max(gpt.step_seconds_spread, rung.step_seconds_spread))
    first_step = min((step for curve in rung.curves for step, _ in curve if step > 0), default=None)
    if first_step is None:
        return None
    within = [[(step, loss) for step, loss in curve if step > 0 and step * pace <= budget] for curve in rung.curves]
    losses = tuple(min(loss for _, loss in seen) for seen in within if seen)
    first = (first_step, first_step * rung.seconds_per_step)
    if not losses:
        return TimeMatched(rung.preset, budget, (), None, first, None)
    spread = max(losses) - min(losses) if len(losses) > 1 else 0.0
    step = LadderStep(gpt.preset, rung.preset, gpt.mean - statistics.mean(losses),
                      max(gpt.spread, spread, gpt.resolution, rung.resolution),
                      gpt.spread_measured and len(losses) > 1, max(gpt.resolution, rung.resolution))
    return TimeMatched(rung.preset, budget, losses, max(s for seen in within for s, _ in seen), first, step)


def time_matched_words(rung: RungResult, gpt: RungResult | None) -> str:
    """The race table's cell at gpt's training time: the gain and its verdict, or why there is none."""
    if gpt is None or not _modern(rung):
        return "—"
    matched = time_matched(gpt, rung)
    if matched is None:
        if max(gpt.seeds - gpt.finished, rung.seeds - rung.finished) > 0:
            return "measured when its runs and gpt's have finished"
        if rung.seconds_per_step is None or gpt.seconds_per_step is None:
            return "not measured: no step was timed"
        return "not measured: no evaluation after step 0"
    if matched.step is None:
        step, seconds = matched.first
        return (f"no evaluation within gpt's {_duration(matched.budget_s)} of training: its first, at step "
                f"{step:,}, came after {_duration(seconds)}")
    mean = statistics.mean(matched.losses)
    return (f"{matched.step.gain:+.3f} ({mean:.3f} by step {matched.last_step:,}, in gpt's "
            f"{_duration(matched.budget_s)}): {matched.step.verdict}")


SPREAD_COLUMN = "± spread (max−min)"


def verdict_column(modern: bool) -> str:
    """The verdict's column: each lecture rung is judged against the rung below it; in a race of modern rungs every
    rung is gpt with a switch, judged against gpt, and the header says so."""
    return "against gpt" if modern else "against the rung below"
STEP_COLUMN = "time per training step"
MATCHED_COLUMN = "against gpt at gpt's training time"


def race_table(results: list[RungResult]) -> list[dict[str, Any]]:
    """The race's table, one row per rung, every cell a number or words: a spread that was not measured says so
    (never an empty cell, ``None`` or ``nan``), and the verdict against the rung below claims nothing about a
    spread it does not have. Every rung's time per step; where modern rungs race, each one's gain at gpt's
    training time too (``time_matched``)."""
    steps_up = {s.upper: s for s in ladder_steps(results)}
    gpt, modern = _gpt(results), any(map(_modern, results))
    rows = []
    for r in results:
        row = {"rung": r.preset, "parameters": r.parameters, "learning rate": f"{r.lr:.0e}",
               "seeds": f"{r.finished}/{r.seeds} done", mean_column(r.unit): r.mean_words(),
               SPREAD_COLUMN: r.spread_words(),
               verdict_column(modern): steps_up[r.preset].verdict if r.preset in steps_up else "—",
               STEP_COLUMN: step_cost_words(r, gpt)}
        if modern:
            budget = gpt_budget(r) if r is gpt else None
            row[MATCHED_COLUMN] = (time_matched_words(r, gpt) if r is not gpt else "—" if budget is None
                                   else f"the yardstick: its best in {_duration(budget)} of training")
        rows.append(row)
    return rows


def time_note(results: list[RungResult]) -> str:
    """What the time columns rest on, in words under the table."""
    note = ("Time per training step: each run's seconds of training steps (evaluations excluded) over its steps, "
            "mean over the rung's seeds, measured on this server while the race trained; other runs share its "
            "cores, so compare these times within one race, not across races.")
    if any(map(_modern, results)):
        note += (" At gpt's training time: each seed's best validation loss among the evaluations it had reached "
                 "when it had trained as long as gpt (its steps × its time per step), against gpt's best, with the "
                 "same rule as the loss verdict: a gain per second of wall time.")
    return note


def mean_column(unit: str) -> str:
    return "best val bits per byte, mean" if unit == BITS_PER_BYTE else "best val loss, mean"


def spread_note(results: list[RungResult]) -> str:
    """What the verdicts rest on, in words under the table."""
    what = ("Best val loss is the lowest evaluated validation loss of a run, the same as on the Runs page; the mean "
            "and spread are over the rung's seeds. ")
    if results and results[0].unit == BITS_PER_BYTE:
        what = ("Each run's lowest evaluated validation loss, in bits per byte of its validation text (the nats it "
                "pays for the text, in bits, per UTF-8 byte: the same scale whatever the tokenizer); the mean and "
                "spread are over the rung's seeds. ")
    elif results:
        what += "In nats per token: these runs were recorded before runs kept their validation text's size. "
    resolution = max((r.resolution for r in results), default=EVAL_RESOLUTION)
    if any(r.seeds == 1 for r in results):
        return what + (f"With one seed per rung no spread between seeds was measured: a verdict says which mean is "
                       f"lower when they differ by more than one evaluation resolves ({_number(resolution)}), never "
                       "whether that is more than a seed's luck. Race two seeds or more to tell.")
    return what + ("Where a step is *within the seed spread*, this race on this text cannot tell the two rungs "
                   "apart: more steps or seeds, or a longer text, may.")


@dataclass(frozen=True)
class Band:
    """A rung's validation curve over its seeds: mean, lowest and highest at every evaluated step."""

    steps: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]


def race_bands(entries: list[RaceEntry], unit: str | None = None) -> dict[str, Band]:
    """Steps evaluated by every seed of a rung so far (seeds evaluate at the same steps), in ``unit``: the race's own
    (``in_race_unit``) by default; none when the race cannot be read in the unit asked for."""
    if unit != NATS:
        entries, own = in_race_unit(entries)
        if unit is not None and own != unit:
            return {}
    bands = {}
    for preset in race_keys(entries):
        curves = [e.val_curve for e in entries if e.preset == preset and e.val_curve]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        bands[preset] = Band(steps, [statistics.mean(c[s] for c in curves) for s in steps],
                             [min(c[s] for c in curves) for s in steps], [max(c[s] for c in curves) for s in steps])
    return bands


def group_races(rows: list[dict]) -> list[dict]:
    """Runs-table rows with each race's runs folded into one row (``runs`` counts them): a race of six rungs
    and three seeds is one experiment, not eighteen lines among a student's own runs."""
    singles, races = [], {}
    for row in rows:
        if row.get("group_id"):
            races.setdefault(row["group_id"], []).append(row)
        else:
            singles.append(row)
    folded = []
    for group_id, members in races.items():
        losses = [m["best_val_loss"] for m in members if m["best_val_loss"] is not None]
        statuses = {m["status"] for m in members}
        status = next((s for s in (RunStatus.RUNNING, RunStatus.STARTING, RunStatus.QUEUED) if s in statuses), None) or (
            RunStatus.DONE if statuses == {RunStatus.DONE} else ", ".join(sorted(statuses)))
        tokenizers = len({(m.get("tokenizer"), m.get("vocab_size")) for m in members})
        kind, what = ("tokenizer race", "tokenizers") if tokenizers > 1 else ("ladder race", "rungs")
        rungs = tokenizers if tokenizers > 1 else len({m["preset"] for m in members})
        folded.append({**members[0], "id": f"race:{group_id}", "label": f"{kind} · {group_id[:4]}",
                       "preset": f"{rungs} {what} × {len(members) // max(1, rungs)} seeds", "status": status,
                       "steps": max(m["steps"] for m in members), "best_val_loss": min(losses) if losses else None,
                       "best_val_bpc": min((m["best_val_bpc"] for m in members if m.get("best_val_bpc")), default=None),
                       "best_val_bpb": min((m["best_val_bpb"] for m in members if m.get("best_val_bpb")), default=None),
                       "tokens_per_sec": group_tokens_per_second(  # the race's own speed, not its rungs' mean
                           Trained(m["tokens"], m["trained_s"], m["trained_until"]) for m in members
                           if m.get("tokens") and m.get("trained_s") and m.get("trained_until")),
                       "created_at": min(m["created_at"] for m in members), "runs": len(members)})
    return sorted(singles + folded, key=lambda r: r["created_at"], reverse=True)
