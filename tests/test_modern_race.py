"""The race of modern rungs against gpt: the library's presets and rates, the verdicts against gpt (per step and at
gpt's training time), each rung's cost per step, and the Lessons page that races the chosen rungs with several
seeds."""

import re
import time

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.errors import BabyGPTError
from babygpt.lessons.race import (
    BITS_PER_BYTE,
    MATCHED_COLUMN,
    STEP_COLUMN,
    RaceEntry,
    RungResult,
    gpt_budget,
    ladder_steps,
    race_results,
    race_table,
    step_cost,
    time_matched,
    time_note,
)
from babygpt.orchestration.race import (
    MODERN_RUNGS,
    RUNG_SETTINGS,
    modern_race,
    race_plans,
    race_running,
    rung_config,
)
from babygpt.orchestration.runs import create_run
from babygpt.pace import step_seconds
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.corpus import Corpus
from tests.conftest import ROOT


def test_a_modern_race_is_gpt_then_the_chosen_rungs_at_gpts_rate():
    assert modern_race(["modern", "gpt+rope"]) == ("gpt", "gpt+rope", "modern")
    assert MODERN_RUNGS[-1] == "modern" and "gpt+muon" in MODERN_RUNGS
    for preset in MODERN_RUNGS:
        assert rung_config(preset, 100, 1).lr == RUNG_SETTINGS["gpt"].lr
    with pytest.raises(BabyGPTError, match="Choose at least one modern rung"):
        modern_race([])
    with pytest.raises(BabyGPTError, match="'bigram' is not a modern rung"):
        modern_race(["bigram"])


def test_each_modern_rung_is_judged_against_gpt_and_the_lecture_ladder_against_the_rung_below():
    def result(preset: str, loss: float) -> RungResult:
        return RungResult(preset, 1000, 3e-3, (loss, loss + 0.01), 2, 2)

    steps = ladder_steps([result("gpt", 2.0), result("gpt+rope", 1.9), result("gpt+rmsnorm", 2.1), result("modern", 1.5)])
    assert [(s.lower, s.upper) for s in steps] == [("gpt", "gpt+rope"), ("gpt", "gpt+rmsnorm"), ("gpt", "modern")]
    assert [round(s.gain, 3) for s in steps] == [0.1, -0.1, 0.5]
    lecture = ladder_steps([result("residual", 2.2), result("gpt", 2.0)])
    assert [(s.lower, s.upper) for s in lecture] == [("residual", "gpt")]


def test_the_lessons_page_races_chosen_modern_rungs_against_gpt_with_several_seeds(fresh_resources):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/lessons.py").run()
    assert not at.exception and not at.error
    assert any("train all 6 rungs of the lecture's ladder" in c.value for c in at.caption)
    at.radio(key="race_ladder").set_value("modern").run()
    at.multiselect(key="race_modern").set_value([]).run()
    assert any("train nothing yet (choose at least one modern rung)" in c.value for c in at.caption)
    assert at.button(key="race_start").disabled, "nothing to race: the caption says what to choose"
    at.multiselect(key="race_modern").set_value(["modern", "gpt+rope"]).run()
    at.number_input(key="race_steps").set_value(50).run()
    at.select_slider(key="race_seeds").set_value(2).run()
    at.slider(key="race_layers").set_value(1).run()
    assert any("train gpt and gpt+rope, modern, each at gpt's learning rate and judged against gpt" in c.value
               for c in at.caption)
    at.button(key="race_start").click().run()
    assert not at.error
    from ui.state import RACE, scheduler

    group = at.session_state[RACE]
    infos = scheduler().store.list_runs(group)
    trained = sorted((i.record.model.preset, i.record.training.seed) for i in infos)
    assert trained == [(p, s) for p in ("gpt", "gpt+rope", "modern") for s in (1, 2)]
    assert {i.record.model.preset: i.record.model.positional for i in infos} == {
        "gpt": "learned", "gpt+rope": "rope", "modern": "rope"}
    deadline = time.time() + 400
    while race_running(scheduler().store, group):
        assert time.time() < deadline
        time.sleep(0.5)
    at.run()
    table = at.dataframe[0].value
    assert table["rung"].tolist() == ["gpt", "gpt+rope", "modern"]
    assert table["seeds"].tolist() == ["2/2 done"] * 3
    assert table["learning rate"].tolist() == ["3e-03"] * 3
    assert all(words.endswith("× gpt's step") for words in table[STEP_COLUMN].tolist()[1:]), table[STEP_COLUMN]
    assert table[STEP_COLUMN].tolist()[0].endswith(" ms") or table[STEP_COLUMN].tolist()[0].endswith(" s")
    matched = table[MATCHED_COLUMN].tolist()
    assert matched[0].startswith("the yardstick: its best in ")
    assert all(re.match(r"([+-]\d\.\d{3} \(\d\.\d{3} by step [\d,]+, in gpt's |no evaluation within gpt's )", m)
               for m in matched[1:]), matched
    cells = [str(v) for v in table.to_numpy().ravel()]
    assert not [c for c in cells if c.lower() in ("none", "nan", "")], cells
    assert any("measured on this server while the race trained" in c.value and "within one race" in c.value
               for c in at.caption)


# Hand-made races with known numbers: bits per byte as recorded, so the unit is the curves' own.
def entry(preset: str, seconds_per_step: float | None, curve: dict[int, float], ended: bool = True) -> RaceEntry:
    config = {"model": {"preset": preset, "vocab_size": 50, "block_size": 16, "n_layer": 1, "n_head": 2,
                        "n_embd": 16}, "train": {"lr": 3e-3}}
    return RaceEntry(preset, config, ended, curve, BITS_PER_BYTE, 1.0, seconds_per_step)


def by_rung(entries: list[RaceEntry]) -> dict[str, RungResult]:
    return {r.preset: r for r in race_results(entries)}


GPT = [entry("gpt", 0.010, {0: 4.0, 100: 2.6, 200: 2.3, 300: 2.1, 400: 2.00}),
       entry("gpt", 0.011, {0: 4.0, 100: 2.6, 200: 2.3, 300: 2.1, 400: 2.02})]  # best 2.01 ± 0.02 in 4.2 s


def test_a_slower_rung_that_wins_per_step_can_lose_per_second():
    muon = [entry("gpt+muon", 0.0168, {0: 4.0, 100: 2.40, 200: 2.20, 300: 1.95, 400: 1.85}),
            entry("gpt+muon", 0.0168, {0: 4.0, 100: 2.41, 200: 2.21, 300: 1.96, 400: 1.86})]
    results = by_rung(GPT + muon)
    gpt, rung = results["gpt"], results["gpt+muon"]
    assert gpt.seconds_per_step == pytest.approx(0.0105) and gpt_budget(gpt) == pytest.approx(4.2)
    assert step_cost(rung, gpt) == pytest.approx(1.6)
    (per_step,) = ladder_steps(list(results.values()))
    assert per_step.gain == pytest.approx(0.155) and per_step.verdict == "better, by more than the seed spread"
    # 300 steps take 3 × 1.58 s = 4.74 s even at its fastest pace the seeds allow (16.8 − 1.0 ms): past gpt's 4.2 s
    matched = time_matched(gpt, rung)
    assert matched.losses == pytest.approx((2.20, 2.21)) and matched.last_step == 200
    assert matched.step.gain == pytest.approx(2.01 - 2.205) and matched.step.noise == pytest.approx(0.02)
    assert matched.step.verdict == "worse, by more than the seed spread"
    rows = {row["rung"]: row for row in race_table(list(results.values()))}
    assert rows["gpt+muon"][STEP_COLUMN] == "16.8 ms, 1.60× gpt's step"
    assert rows["gpt"][STEP_COLUMN] == "10.5 ms"
    assert rows["gpt"][MATCHED_COLUMN] == "the yardstick: its best in 4.2 s of training"
    assert rows["gpt+muon"][MATCHED_COLUMN] == (
        "-0.195 (2.205 by step 200, in gpt's 4.2 s): worse, by more than the seed spread")
    assert rows["gpt+muon"]["against gpt"] == "better, by more than the seed spread"


def test_a_rung_as_fast_as_gpt_within_its_seeds_timing_keeps_its_last_evaluation():
    rope = [entry("gpt+rope", 0.0108, {0: 4.0, 200: 2.2, 400: 1.90}),  # 4.32 s by step 400, 0.12 s past gpt's
            entry("gpt+rope", 0.0109, {0: 4.0, 200: 2.2, 400: 1.92})]  # but its pace is within the 1 ms spread
    results = by_rung(GPT + rope)
    matched = time_matched(results["gpt"], results["gpt+rope"])
    assert matched.last_step == 400 and matched.step.gain == pytest.approx(0.1)
    assert matched.step.verdict == "better, by more than the seed spread"


def test_a_rung_with_no_evaluation_within_gpts_time_says_so():
    slow = [entry("modern", 0.05, {0: 4.0, 100: 1.5, 200: 1.2}), entry("modern", 0.05, {0: 4.0, 100: 1.5, 200: 1.2})]
    results = by_rung(GPT + slow)
    matched = time_matched(results["gpt"], results["modern"])
    assert matched.step is None and matched.losses == () and matched.first == (100, pytest.approx(5.0))
    row = race_table(list(results.values()))[1]
    assert row[MATCHED_COLUMN] == "no evaluation within gpt's 4.2 s of training: its first, at step 100, came after 5 s"
    assert row[STEP_COLUMN] == "50 ms, 4.76× gpt's step"


def test_one_seed_makes_no_spread_claims_at_equal_time_and_allows_no_timing_slack():
    gpt = [entry("gpt", 0.010, {0: 4.0, 100: 2.5, 200: 2.0})]
    rope = [entry("gpt+rope", 0.010, {0: 4.0, 100: 2.4, 200: 1.9})]
    slower = [entry("gpt+qk-norm", 0.0101, {0: 4.0, 100: 1.99, 200: 1.5})]  # 2.02 s for 200 steps: past gpt's 2 s
    results = by_rung(gpt + rope + slower)
    rows = {row["rung"]: row for row in race_table(list(results.values()))}
    assert rows["gpt+rope"][MATCHED_COLUMN] == (
        "+0.100 (1.900 by step 200, in gpt's 2 s): better by 0.100, with no seed spread measured to compare it with")
    assert rows["gpt+qk-norm"][MATCHED_COLUMN] == (
        "+0.010 (1.990 by step 100, in gpt's 2 s): within what the evaluation resolves (0.02): no measured "
        "difference")
    said = " ".join(str(v) for row in rows.values() for v in row.values())
    assert "more than the seed spread" not in said


def test_the_time_columns_say_what_is_missing_in_words():
    running = [entry("gpt", 0.01, {0: 4.0, 100: 2.0}), entry("gpt+rope", None, {0: 4.0}, ended=False)]
    rows = race_table(race_results(running))
    assert rows[1][STEP_COLUMN] == "not measured yet"
    assert rows[1][MATCHED_COLUMN] == "measured when its runs and gpt's have finished"
    untimed = [entry("gpt", 0.01, {0: 4.0, 100: 2.0}), entry("gpt+rope", None, {0: 4.0, 100: 1.9})]
    rows = race_table(race_results(untimed))
    assert rows[1][STEP_COLUMN] == rows[1][MATCHED_COLUMN] == "not measured: no step was timed"
    lecture = race_table(race_results([entry("residual", 0.02, {0: 4.0, 100: 2.2}), GPT[0]]))
    assert [row[STEP_COLUMN] for row in lecture] == ["20 ms", "10 ms"] and MATCHED_COLUMN not in lecture[0]
    assert "within one race" in time_note([]) and "At gpt's training time" not in time_note([])


def test_a_runs_seconds_per_step_come_from_its_step_rows_rates_evaluations_excluded():
    rows = [{"step": 5, "tokens_per_sec": 100.0}, {"step": 10, "tokens_per_sec": 50.0},  # 0.5 s, then 1 s
            {"step": 10, "tokens_per_sec": 1.0},  # resumed at its checkpoint: nothing new
            {"step": 15, "tokens_per_sec": None}, {"step": 20, "tokens_per_sec": 100.0}]  # no rate: not counted
    assert step_seconds(rows, 10) == pytest.approx((0.5 + 1.0 + 0.5) / 15)
    assert step_seconds([{"step": 5, "tokens_per_sec": None}], 10) is None and step_seconds(rows, 0) is None


def test_the_lessons_page_shows_each_rungs_step_time_and_its_gain_at_gpts_time(small_text, fresh_resources):
    """A finished race recorded with known step rates and curves, read by the page: both new columns, in words."""
    store, group = RunStore(), "modernrace1"
    plans = race_plans(Corpus.from_text("tiny", small_text), "char", 400, dict(n_layer=1, n_head=2, n_embd=16,
                       block_size=16), seeds=(1, 2), presets=("gpt", "gpt+muon", "modern"))
    seconds = {"gpt": (0.010, 0.011), "gpt+muon": (0.0168, 0.0168), "modern": (0.05, 0.05)}
    curves = {"gpt": ((2.6, 2.3, 2.1, 2.00), (2.6, 2.3, 2.1, 2.02)),
              "gpt+muon": ((2.40, 2.20, 1.95, 1.85), (2.41, 2.21, 1.96, 1.86)),
              "modern": ((1.5, 1.2, 1.1, 1.0), (1.5, 1.2, 1.1, 1.0))}
    for k, (plan, name) in enumerate(plans):
        preset, seed = plan.model_config.preset, k % 2
        info = create_run(store, plan, name, status=RunStatus.DONE, group_id=group)
        rate = info.readable.tokens_per_step / seconds[preset][seed]
        store.log_metrics(info.id, [MetricRow(0, "val", 4.0, None, None, 0.1)] + [
            row for i, loss in enumerate(curves[preset][seed], 1)
            for row in (MetricRow(100 * i, "train", loss, 3e-3, rate, 0.0), MetricRow(100 * i, "val", loss))])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.session_state["race_group"] = group
    at.switch_page("views/lessons.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (table,) = [d.value for d in at.dataframe if "rung" in d.value.columns]
    assert table["rung"].tolist() == ["gpt", "gpt+muon", "modern"]
    assert table[STEP_COLUMN].tolist() == ["10.5 ms", "16.8 ms, 1.60× gpt's step", "50 ms, 4.76× gpt's step"]
    gpt, muon, modern = table[MATCHED_COLUMN].tolist()
    assert gpt == "the yardstick: its best in 4.2 s of training"
    assert re.fullmatch(r"-0\.\d{3} \(\d\.\d{3} by step 200, in gpt's 4\.2 s\): worse, by more than the seed "
                        r"spread", muon), muon
    assert table["against gpt"].tolist()[1] == "better, by more than the seed spread"
    assert modern == "no evaluation within gpt's 4.2 s of training: its first, at step 100, came after 5 s"
    assert any("measured on this server while the race trained" in c.value and "within one race" in c.value
               for c in at.caption)
