"""The race of modern rungs against gpt: the library's presets and rates, the verdicts against gpt, and the Lessons
page that races the chosen rungs with several seeds."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.errors import BabyGPTError
from babygpt.lessons.race import RungResult, ladder_steps
from babygpt.orchestration.race import MODERN_RUNGS, RUNG_SETTINGS, modern_race, race_running, rung_config
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
    at.button(key="race_start").click().run()
    assert [e.value for e in at.error] == ["Choose at least one modern rung to race against gpt."]
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
