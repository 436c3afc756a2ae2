"""The ladder race: per-rung settings, seeds, bands, verdicts against the seed spread, one row per race."""

import os
import random
import statistics
import time

import pytest

from babygpt.errors import BabyGPTError
from babygpt.lessons.race import (
    EVAL_RESOLUTION,
    STEP_COLUMN,
    LadderStep,
    RungResult,
    group_races,
    ladder_steps,
    race_bands,
    race_results,
    race_table,
    spread_note,
    step_explanation,
)
from babygpt.orchestration.race import RUNG_SETTINGS, race_entries, race_plans, race_running
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from tests.helpers import plan_trainer
from tests.wording import says

LADDER = ["bigram", "single-head", "multi-head", "multi-head+ffn", "residual", "gpt"]


def test_differences_below_the_evaluations_resolution_are_within_noise():
    same = [RungResult("a", 1, 0.1, (2.000, 2.001), 2, 2), RungResult("b", 1, 0.1, (2.010, 2.011), 2, 2)]
    (step,) = ladder_steps(same)
    assert step.noise == EVAL_RESOLUTION and step.verdict.startswith("within")


def test_a_step_counts_only_when_it_beats_the_seed_spread():
    results = [RungResult("bigram", 10, 3e-2, (2.50, 2.52, 2.54), 3, 3),  # mean 2.52, spread 0.04
               RungResult("single-head", 20, 1e-2, (2.30, 2.31, 2.32), 3, 3),  # gain 0.21 > 0.04
               RungResult("multi-head", 30, 1e-2, (2.29, 2.33, 2.28), 3, 3),  # gain 0.01 < spread 0.05
               RungResult("multi-head+ffn", 40, 1e-2, (2.60, 2.61, 2.62), 3, 3)]  # worse by 0.31
    steps = ladder_steps(results)
    assert [(s.lower, s.upper) for s in steps] == [("bigram", "single-head"), ("single-head", "multi-head"),
                                                   ("multi-head", "multi-head+ffn")]
    assert steps[0].gain == pytest.approx(0.21) and steps[0].noise == pytest.approx(0.04)
    assert [s.verdict.split(",")[0] for s in steps] == ["better", "within the seed spread: no measured difference",
                                                        "worse"]
    assert LadderStep("a", "b", 0.0, 0.0).verdict.startswith("within")
    assert step_explanation(steps[0]) == ""
    assert "smaller than the spread between seeds (0.050)" in step_explanation(steps[1])
    assert "Without residual connections" in step_explanation(steps[2]) and "worse by 0.310" in step_explanation(steps[2])


def test_one_seed_measures_no_spread_and_the_race_claims_nothing_against_one():
    one_seed = [RungResult("bigram", 10, 3e-2, (2.50,), 1, 1), RungResult("single-head", 20, 1e-2, (2.30,), 1, 1),
                RungResult("multi-head", 30, 1e-2, (2.31,), 1, 1), RungResult("multi-head+ffn", 40, 1e-2, (2.60,), 1, 1),
                RungResult("residual", 50, 1e-2, (), 1, 0)]
    rows = race_table(one_seed)
    cells = [str(v) for row in rows for v in row.values()]
    assert not [c for c in cells if c.lower() in ("none", "nan", "")], cells
    assert [r["± spread (max−min)"] for r in rows] == ["one seed: not measured"] * 5
    assert rows[-1]["best val loss, mean"] == "not evaluated yet"
    verdicts = [r["against the rung below"] for r in rows]
    assert verdicts[0] == verdicts[-1] == "—" and len(verdicts) == 5
    says(verdicts[1], "better by 0.200", "no seed spread")
    says(verdicts[2], "within what the evaluation resolves (0.02)", "no measured difference")
    says(verdicts[3], "worse by 0.290", "no seed spread")
    steps = ladder_steps(one_seed)
    said = " ".join([spread_note(one_seed)] + [step_explanation(s) for s in steps])
    assert "more than the seed spread" not in said and "spread between seeds (" not in said
    assert "no spread between seeds was measured" in spread_note(one_seed)
    assert "worse by 0.290 with one seed" in step_explanation(steps[2])
    two = [RungResult("bigram", 10, 3e-2, (2.50, 2.52), 2, 2), RungResult("single-head", 20, 1e-2, (2.30,), 2, 1)]
    assert race_table(two)[1]["± spread (max−min)"] == "not measured yet (fewer than two seeds evaluated)"
    assert "no seed spread measured" in race_table(two)[1]["against the rung below"]


def test_races_fold_into_one_row_and_bands_span_the_seeds():
    rows = [{"id": "x1", "group_id": None, "preset": "gpt", "best_val_loss": 2.0, "tokens_per_sec": 100.0,
             "status": "done", "steps": 10, "created_at": 5.0, "label": "solo", "owner": "me"}]
    for i, (preset, status) in enumerate([("bigram", "done"), ("bigram", "done"), ("gpt", "running")]):
        rows.append({"id": f"r{i}", "group_id": "abcd1234", "preset": preset, "best_val_loss": 3.0 - i,
                     "tokens_per_sec": 50.0, "status": status, "steps": 20 + i, "created_at": 1.0 + i,
                     "label": f"ladder race: {preset}", "owner": "me"})
    folded = group_races(rows)
    assert [r["id"] for r in folded] == ["x1", "race:abcd1234"]
    race = folded[1]
    assert race["runs"] == 3 and race["status"] == "running" and race["best_val_loss"] == 1.0
    assert race["preset"] == "2 rungs × 1 seeds" and race["steps"] == 22


def markov_text(n_chars: int = 150_000, order: int = 2, seed: int = 0) -> str:
    """A random order-2 Markov chain over 10 symbols: the next symbol depends on the last two, so looking back
    past one token helps, and nothing in it resembles the corpus the race's settings were tuned on."""
    rng = random.Random(seed)
    symbols = "abcdefg .\n"
    table = {}
    out = list(rng.choices(symbols, k=order))
    for _ in range(n_chars):
        context = "".join(out[-order:])
        if context not in table:
            weights = [rng.random() ** 4 for _ in symbols]  # peaked: a few likely successors per context
            table[context] = weights
        out.append(rng.choices(symbols, weights=table[context])[0])
    return "".join(out)


def test_the_ladder_holds_on_a_text_the_settings_were_not_tuned_on():
    plans = race_plans(Corpus.from_text("markov.txt", markov_text()), "char", seeds=(1, 2))  # the page's race
    assert len(plans) == 6 * 2 and {p.train_config.lr for p, _ in plans} == {s.lr for s in RUNG_SETTINGS.values()}
    losses: dict[str, list[float]] = {}
    for plan, _ in plans:
        result = plan_trainer(plan).run()
        losses.setdefault(plan.model_config.preset, []).append(result.best_val_loss)
    results = [RungResult(p, 0, 0.0, tuple(losses[p]), 2, 2) for p in LADDER]
    steps = ladder_steps(results)
    report = {s.upper: (round(s.gain, 3), round(s.noise, 3)) for s in steps}
    assert not [s for s in steps if s.verdict.startswith("worse")], f"no rung may be worse than the one below: {report}"
    bigram, multi = statistics.mean(losses["bigram"]), statistics.mean(losses["multi-head"])
    assert multi < bigram - 0.2, f"heads that look back must beat the bigram table: {report}"
    assert statistics.mean(losses["gpt"]) < statistics.mean(losses["bigram"]) - 0.1, report
    assert not [s for s in steps if s.verdict.startswith("within") and not step_explanation(s)]


def test_a_race_runs_its_seeds_as_jobs_and_reads_as_bands(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    plans = race_plans(Corpus.from_text("tiny", small_text), "char", 30, dict(n_layer=1, n_head=2, n_embd=16,
                                                                              block_size=16), seeds=(1, 2))
    group = scheduler.submit_group("a" * 22, plans)
    assert len(scheduler.running()) == 2 and len(scheduler.store.queued()) == 10, "the race takes scheduler slots"
    assert all(job.pid != os.getpid() for job in scheduler.running()), "runs train outside the server process"
    with pytest.raises(BabyGPTError, match="ladder race is still running"):
        scheduler.submit_group("a" * 22, plans)  # a second tab cannot queue a second race
    deadline = time.time() + 240
    while race_running(scheduler.store, group):
        assert time.time() < deadline
        time.sleep(0.5)
    results = race_results(race_entries(scheduler.store, group))
    assert [r.preset for r in results] == LADDER
    assert all(r.finished == 2 and len(r.losses) == 2 for r in results)
    assert all(len(r.step_seconds) == 2 and r.seconds_per_step > 0 for r in results), "each run timed its steps"
    assert all(row[STEP_COLUMN].endswith(" ms") or row[STEP_COLUMN].endswith(" s") for row in race_table(results))
    summaries = {r.id: r.row() for r in scheduler.store.summaries()}
    assert {r.unit for r in results} == {"bits per byte"}
    for info in scheduler.store.list_runs(group):  # the race's loss is the one Runs shows, in bits per byte
        assert summaries[info.id]["best_val_bpb"] in next(r.losses for r in results if r.preset == info.preset)
    bands = race_bands(race_entries(scheduler.store, group))
    band = bands["gpt"]
    assert band.steps == [0, 6, 12, 18, 24, 30]
    assert all(lo <= m <= hi for lo, m, hi in zip(band.low, band.mean, band.high, strict=True))
    assert [r["id"] for r in group_races(list(summaries.values()))] == [f"race:{group}"]
