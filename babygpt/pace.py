"""How fast a run trains and how long it has left, against the wall clock: one definition of each figure shown.

Every logged row of a run (a training step's, an evaluation's) carries ``elapsed_s``: the wall-clock seconds the
run has trained so far, across resumes, evaluations, samples and checkpoints included (the trainer's
``wall_seconds``). From those:

* **tokens/s of a training run** (its page, the sidebar, the class board) — training tokens per second of wall
  time over the run's recent *whole evaluation cycles*: the steps from one evaluation to the next together with
  the evaluation that ends them, at least ``PACE_WINDOW_S`` of them. That is the pace at which its step counter
  moves, pauses included; a figure of the steps alone ran 5× ahead of the counter on a page with frequent
  evaluations.
* **time left** — the steps left at that same pace, so it is the tokens left ÷ the tokens/s shown, and it only
  changes its mind at an evaluation (while the steps of a cycle run it counts down with them).
* **tokens/s of a run in the Runs table** — all its training tokens ÷ its wall-clock training time.
* **tokens/s of a ladder race** — all its runs' training tokens ÷ the wall-clock time during which any of them
  trained: the race's own speed, not a sum or a mean of its rungs' rates (which read 173,963 for a race whose
  runs together trained at a fraction of that).
* **seconds per training step of a run** (a race's cost per step, ``babygpt.lessons.race``) — the steps' own
  time, from each step row's rate, which the trainer measures over the steps since the row before it with
  evaluations, samples and checkpoints left out: what one step of this model costs, not how long a student waits.

Plain arithmetic on rows and numbers, so each figure is tested against a clock of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

PACE_WINDOW_S = 30.0  # the least wall time of whole evaluation cycles the pace is measured over

LIVE_SPEED_CAPTION = ("Tokens/s: training tokens per second of wall-clock time over the last evaluation cycles "
                      "(at least 30 s), evaluation pauses included: the pace of the step counter. Time left: the "
                      "steps left at that pace.")
SUMMARY_SPEED_CAPTION = ("tokens/s: a run's training tokens ÷ its wall-clock training time, evaluations included; "
                         "a race's: all its runs' tokens ÷ the wall-clock time during which any of them trained.")


@dataclass(frozen=True)
class Mark:
    """Where a run was at a moment: its step, and the wall seconds it had trained by then."""

    step: int
    wall_s: float


def _mark(row: dict[str, Any]) -> Mark | None:
    return None if row.get("elapsed_s") is None else Mark(int(row["step"]), float(row["elapsed_s"]))


def _backwards(rows: Sequence[dict[str, Any]]) -> Iterator[Mark]:
    """The rows' marks, newest first: a pace needs only the recent end of a long run's history."""
    return (m for m in map(_mark, reversed(rows)) if m is not None)


def _per_step(first: Mark, last: Mark) -> float | None:
    steps, seconds = last.step - first.step, last.wall_s - first.wall_s
    return seconds / steps if steps > 0 and seconds > 0 else None


def evaluation_pause(train: Sequence[dict[str, Any]], evals: Sequence[dict[str, Any]]) -> float | None:
    """Wall seconds the latest evaluation took: its row's time less the step row logged just before it at the
    same step (the first evaluation, at step 0, from when training began)."""
    latest = next(_backwards(evals), None)
    if latest is None:
        return None
    logged = next((m for m in _backwards(train) if m.step <= latest.step), None)
    before = 0.0 if latest.step == 0 else logged.wall_s if logged and logged.step == latest.step else None
    return latest.wall_s - before if before is not None and latest.wall_s >= before else None


def seconds_per_step(train: Sequence[dict[str, Any]], evals: Sequence[dict[str, Any]], eval_interval: int,
                     window_s: float = PACE_WINDOW_S) -> float | None:
    """Wall seconds per training step, evaluation pauses included (None until it can be measured).

    Over whole evaluation cycles, from the evaluation at least ``window_s`` before the latest one to the latest,
    so every step in the span has its share of exactly the evaluations that happened. Until a cycle is whole (a
    new run), the steps since the last evaluation plus the last evaluation's pause spread over ``eval_interval``
    steps. When the cycle under way has run for ``window_s`` at a slower pace than the whole ones (the job was
    given fewer cores), its pace wins: a slowdown shows within the window, not a cycle later. Rows are in the
    order they were logged; only the recent ones are read."""
    ends = [m for m in (next(_backwards(train), None), next(_backwards(evals), None)) if m is not None]
    if not ends:
        return None
    last = max(ends, key=lambda m: (m.step, m.wall_s))
    boundary = next(_backwards(evals), None)
    if boundary is not None and boundary.step <= last.step:
        since = boundary
    else:
        since = min((m for m in (_mark(train[0]) if train else None, _mark(evals[0]) if evals else None) if m),
                    key=lambda m: (m.step, m.wall_s))
    current = _per_step(since, last)
    if boundary is not None:
        earlier, older = None, _backwards(evals)
        next(older)  # the boundary itself
        for mark in older:
            earlier = mark
            if boundary.wall_s - mark.wall_s >= window_s:
                break
        whole = _per_step(earlier, boundary) if earlier is not None else None
        if whole is not None:
            if current is not None and last.wall_s - since.wall_s >= window_s:
                return max(whole, current)
            return whole
    if current is None:
        return None
    return current + (evaluation_pause(train, evals) or 0.0) / max(1, eval_interval)


def tokens_per_second(seconds_step: float | None, tokens_per_step: int) -> float:
    """The speed shown for a training run: 0.0 while unknown."""
    return tokens_per_step / seconds_step if seconds_step else 0.0


def seconds_left(seconds_step: float | None, step: int, max_iters: int) -> float | None:
    """Time left: the steps left at the pace shown (None while unknown)."""
    return None if seconds_step is None else max(0, max_iters - step) * seconds_step


def run_tokens_per_second(tokens: int, wall_s: float | None) -> float | None:
    """A run's speed in the Runs table: its training tokens ÷ its wall-clock training time."""
    return tokens / wall_s if tokens and wall_s else None


def overall_tokens_per_second(train: Sequence[dict[str, Any]], evals: Sequence[dict[str, Any]],
                              tokens_per_step: int) -> float | None:
    """A run's speed once it has stopped training (its page, like the Runs table): the tokens of its training
    steps ÷ the wall-clock seconds it trained, evaluations included (None when no row has a time)."""
    steps = max((int(r["step"]) for r in train), default=0)
    wall = max((float(r["elapsed_s"]) for r in [*train, *evals] if r.get("elapsed_s") is not None), default=None)
    return run_tokens_per_second(steps * tokens_per_step, wall)


OVERALL_SPEED_CAPTION = ("Overall tokens/s: the run's training tokens ÷ its wall-clock training time, evaluations "
                         "included (the Runs table's figure); while it trains, the page shows its recent pace.")


@dataclass(frozen=True)
class Trained:
    """What a run trained, for a race's speed: its tokens, and when it trained on the wall clock (``ended_at``, a
    Unix time, less ``wall_s`` of training)."""

    tokens: int
    wall_s: float
    ended_at: float


def step_seconds(train: Sequence[dict[str, Any]], tokens_per_step: int) -> float | None:
    """Wall seconds per training step, evaluations excluded: the seconds the steps alone took ÷ their number.

    Each step row's ``tokens_per_sec`` is the rate of the steps since the row before it (the trainer's
    ``StepMetrics``: its window restarts after every report, evaluation and checkpoint), so those steps took their
    tokens ÷ that rate. Rows are in the order they were logged; a row without a rate adds no steps (None when
    none has one), and a resumed run's rows continue from its checkpoint's step."""
    steps, seconds, before = 0, 0.0, 0
    for row in train:
        step, rate = int(row["step"]), row.get("tokens_per_sec")
        if step > before and rate and tokens_per_step:
            steps, seconds = steps + step - before, seconds + (step - before) * tokens_per_step / rate
        before = max(before, step)
    return seconds / steps if steps and seconds > 0 else None


def covered_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """The length of the union of (start, end) spans: wall time during which at least one of them was running."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total, reach = total + (end - start), end
        elif end > reach:
            total, reach = total + (end - reach), end
    return total


def group_tokens_per_second(runs: Iterable[Trained]) -> float | None:
    """A race's speed: all its runs' training tokens ÷ the wall time during which any of them trained."""
    runs = [r for r in runs if r.tokens and r.wall_s > 0]
    seconds = covered_seconds((r.ended_at - r.wall_s, r.ended_at) for r in runs)
    return sum(r.tokens for r in runs) / seconds if seconds > 0 else None
