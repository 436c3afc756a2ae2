"""Speed and time left agree with the clock (``babygpt.pace``): each figure a page shows, tested against the
elapsed time of a clock the test keeps, never against how fast this machine is.

A simulated run logs its rows as the trainer does (a step row every ``log_interval`` steps, an evaluation that
pauses the steps every ``eval_interval``, a checkpoint after it), each row stamped with the wall seconds the run
has trained; the pages' read model (``LiveProgress``) then sees them arrive as a page would, tick by tick."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from babygpt.orchestration.runs import create_run, resume_run, start_run
from babygpt.pace import PACE_WINDOW_S, Trained, covered_seconds, group_tokens_per_second, seconds_per_step
from babygpt.server.progress import LiveProgress
from babygpt.status import RunStatus
from babygpt.store.corpora import persist_corpus
from babygpt.store.runs import MetricRow, RunStore
from tests.helpers import tiny_plan

TOKENS_PER_STEP = 8 * 16  # tiny_plan: batch 8 × block 16


@dataclass
class SimulatedRun:
    """What a trainer logs, on the test's own clock: rows with the wall time each was logged at."""

    max_iters: int = 1000
    step_s: float = 0.05
    eval_interval: int = 100
    eval_s: float = 4.0
    checkpoint_s: float = 0.5
    log_interval: int = 5
    slower_from: int | None = None  # from this step on, each step takes twice as long (fewer cores)

    def rows(self) -> list[MetricRow]:
        now = self.eval_s  # the first evaluation, at step 0, before any step
        rows = [MetricRow(0, "train_eval", 4.2, None, None, now), MetricRow(0, "val", 4.2, None, None, now)]
        for step in range(1, self.max_iters + 1):
            seconds = self.step_s * (2 if self.slower_from is not None and step > self.slower_from else 1)
            now += seconds
            due_eval = step % self.eval_interval == 0 or step == self.max_iters
            if step % self.log_interval == 0 or due_eval:  # the steps' own rate, as the trainer reports it
                rows.append(MetricRow(step, "train", 2.0, 1e-3, TOKENS_PER_STEP / seconds, now))
            if due_eval:
                now += self.eval_s
                rows += [MetricRow(step, "train_eval", 2.0, None, None, now), MetricRow(step, "val", 2.1, None, None, now)]
                now += self.checkpoint_s
        return rows

    def wall_pace(self, step: int) -> float:
        """The true wall seconds per step around ``step``: the step itself and its share of the pauses."""
        slow = self.slower_from is not None and step > self.slower_from
        return self.step_s * (2 if slow else 1) + (self.eval_s + self.checkpoint_s) / self.eval_interval


def watched(run: SimulatedRun, small_text: str, tick_s: float = 2.0):
    """The snapshots a page sees every ``tick_s`` of the run's wall clock, each with the time it was taken."""
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=run.max_iters, eval_interval=run.eval_interval)
    plan.corpus = persist_corpus(store, plan.corpus)
    info = create_run(store, plan, status=RunStatus.RUNNING)
    progress, rows = LiveProgress(store), run.rows()
    end, logged, now, seen = rows[-1].elapsed_s, 0, 0.0, []
    while now < end:
        now += tick_s
        arrived = [r for r in rows[logged:] if r.elapsed_s <= now]
        store.log_metrics(info.id, arrived)
        logged += len(arrived)
        seen.append((now, progress.snapshot(store.get(info.id), {info.id})))
    store.set_status(info.id, RunStatus.DONE)
    return seen, end, progress.snapshot(store.get(info.id), set())


def test_the_speed_shown_is_the_pace_of_the_step_counter_on_the_wall_clock(small_text):
    run = SimulatedRun()
    seen, _, _ = watched(run, small_text)
    shown = [(now, snap) for now, snap in seen if snap.tokens_per_sec]
    assert shown and shown[0][0] <= 10.0, "a speed within the first few seconds"
    true_rate = TOKENS_PER_STEP / run.wall_pace(0)  # 1,347 tokens/s; the steps alone run at 2,560
    for now, snap in shown:
        assert snap.tokens_per_sec == pytest.approx(true_rate, rel=0.1), (now, snap.step)
    first, last = shown[0], shown[-1]  # and it is what the step counter did between two looks at the page
    counter = (last[1].step - first[1].step) * TOKENS_PER_STEP / (last[0] - first[0])
    assert counter == pytest.approx(true_rate, rel=0.1)


def test_time_left_stays_consistent_through_evaluation_pauses(small_text):
    run = SimulatedRun()
    seen, end, _ = watched(run, small_text)
    finishes = [(now, now + snap.eta_s) for now, snap in seen if snap.eta_s is not None]
    assert finishes and finishes[0][0] <= 10.0
    for now, finish in finishes:  # when it will finish, asked every 2 s, is right within 10% of the run's length
        assert abs(finish - end) <= 0.1 * end, (now, finish, end)
    jumps = [b - a for (_, a), (_, b) in zip(finishes, finishes[1:], strict=False)]
    assert max(abs(j) for j in jumps) <= 0.05 * end, "no jump of the kind 8:17 → 22:41 → 36:29 → 21:51"


def test_a_run_that_slows_down_shows_it_within_a_window_and_two_cycles(small_text):
    run = SimulatedRun(slower_from=400)  # another job started: half the cores
    seen, end, _ = watched(run, small_text)
    fast, slow = TOKENS_PER_STEP / run.wall_pace(400), TOKENS_PER_STEP / run.wall_pace(401)
    slow_at = next(now for now, snap in seen if snap.step > 400)
    cycle_s = run.eval_interval * run.wall_pace(401)
    for now, snap in seen:
        if not snap.tokens_per_sec:
            continue
        if now >= slow_at + PACE_WINDOW_S + 2 * cycle_s:
            assert snap.tokens_per_sec == pytest.approx(slow, rel=0.1), now
            assert abs(now + snap.eta_s - end) <= 0.1 * end, now
        else:  # on the way, between the two paces: never beyond either
            assert 0.9 * slow <= snap.tokens_per_sec <= 1.1 * fast, now


def test_no_speed_or_time_left_before_it_can_be_measured_or_after_the_end(small_text):
    assert seconds_per_step([], [], 100) is None
    assert seconds_per_step([], [{"step": 0, "elapsed_s": 3.0}], 100) is None, "only the first evaluation"
    seen, _, finished = watched(SimulatedRun(max_iters=20, eval_interval=10), small_text, tick_s=0.5)
    assert (seen[0][1].tokens_per_sec, seen[0][1].eta_s) == (0.0, None), "nothing logged yet"
    assert any(snap.tokens_per_sec and snap.eta_s is not None for _, snap in seen)
    assert finished.step == 20 and (finished.tokens_per_sec, finished.eta_s) == (0.0, None), "a finished run"


class StepClock:
    """The trainer's clock, moved by the test: each step takes ``step_s``, each evaluation ``eval_s``."""

    def __init__(self, step_s: float, eval_s: float):
        self.now, self.step_s, self.eval_s = 100.0, step_s, eval_s

    def perf_counter(self) -> float:
        return self.now

    def drive(self, trainer) -> None:
        train_step, estimate = trainer._train_step, trainer.estimate_loss

        def step(lr):
            self.now += self.step_s
            return train_step(lr)

        def evaluate(*args, **kwargs):
            self.now += self.eval_s
            return estimate(*args, **kwargs)

        trainer._train_step, trainer.estimate_loss = step, evaluate


def test_the_trainer_stamps_rows_with_wall_time_evaluations_included(small_text, monkeypatch):
    from babygpt.training import trainer as trainer_module

    clock = StepClock(step_s=0.02, eval_s=3.0)
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=40, eval_interval=10, sample_tokens=0)
    plan.corpus = persist_corpus(store, plan.corpus)
    trainer, info = start_run(store, plan, name="clocked")
    clock.drive(trainer)
    trainer.run()
    rows = store.metrics(info.id)
    val = {m.step: m.elapsed_s for m in rows if m.split == "val"}
    steps = {m.step: m.elapsed_s for m in rows if m.split == "train"}
    assert val[0] == pytest.approx(3.0), "the first evaluation, before any step"
    assert val[10] - steps[10] == pytest.approx(3.0), "an evaluation's row comes after its pause"
    assert steps[40] == pytest.approx(3.0 * 4 + 40 * 0.02), "the last step: every step and every pause before it"
    assert all(m.tokens_per_sec == pytest.approx(TOKENS_PER_STEP / 0.02) for m in rows if m.split == "train"), \
        "each row's own rate stays the steps' rate"
    train = [{"step": s, "elapsed_s": t} for s, t in sorted(steps.items())]
    evals = [{"step": s, "elapsed_s": t} for s, t in sorted(val.items())]
    assert seconds_per_step(train, evals, 10) == pytest.approx(0.02 + 3.0 / 10)
    summary = next(r for r in store.summaries() if r.id == info.id).row()
    wall = val[40]
    assert summary["tokens_per_sec"] == pytest.approx(40 * TOKENS_PER_STEP / wall), "the Runs table: tokens ÷ wall time"
    assert summary["trained_s"] == pytest.approx(wall)

    resumed, _ = resume_run(store, info.id, plan.corpus, max_iters=60)  # wall time goes on across a resume
    clock.drive(resumed)
    clock.now += 1000.0  # however long the run waited stopped
    resumed.run()
    later = {m.step: m.elapsed_s for m in store.metrics(info.id) if m.split == "val"}
    assert later[60] == pytest.approx(wall + 20 * 0.02 + 2 * 3.0)


def test_a_race_is_its_tokens_over_the_wall_time_any_of_its_runs_trained():
    assert covered_seconds([(0, 10), (5, 12), (20, 25)]) == 17
    assert covered_seconds([]) == 0
    # six rungs of 1,000 tokens, each 1 s of training, two at a time: 3 s of wall time
    two_at_a_time = [Trained(1000, 1.0, 100.0 + i // 2) for i in range(6)]
    assert group_tokens_per_second(two_at_a_time) == pytest.approx(2000.0)
    one_at_a_time = [Trained(1000, 1.0, 100.0 + i) for i in range(6)]
    assert group_tokens_per_second(one_at_a_time) == pytest.approx(1000.0)
    assert group_tokens_per_second([]) is None


def test_the_runs_table_gives_a_race_its_own_speed():
    from babygpt.lessons.race import group_races

    rows = [{"id": f"r{i}", "group_id": "abcd1234", "preset": p, "best_val_loss": 2.0, "best_val_bpc": None,
             "tokens_per_sec": 1000.0 * (i + 1) ** 2, "tokens": 1000, "trained_s": 1.0, "trained_until": 50.0 + i,
             "status": "done", "steps": 10, "created_at": 1.0, "label": p, "owner": "me"}
            for i, p in enumerate(["bigram", "single-head", "multi-head"])]  # one after the other: 3 s, 3,000 tokens
    race = group_races(rows)[0]
    assert race["tokens_per_sec"] == pytest.approx(1000.0), "not the mean of its rungs' rates (4,667)"
