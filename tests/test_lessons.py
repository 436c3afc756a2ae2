"""The lesson views: numbers they show are right, and every tab renders and reacts."""

import math
import time

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.config import LECTURE_LADDER
from babygpt.lessons.tabs import ModelScaling, char_class, first_step, model_scaling, scaling_demo, scaling_explanation
from babygpt.orchestration.race import race_running
from babygpt.orchestration.runs import start_run
from babygpt.store.corpora import persist_corpus
from babygpt.store.runs import RunStore
from tests.conftest import ROOT
from tests.helpers import tiny_plan


@pytest.mark.parametrize("head_size", [4, 16, 64, 256])
def test_scaled_variance_is_one_and_unscaled_is_head_size(head_size):
    demo = scaling_demo(head_size)
    assert demo.scaled_variance == pytest.approx(1.0, rel=0.1)
    assert demo.raw_variance == pytest.approx(head_size, rel=0.1)
    if head_size >= 64:
        assert demo.raw_mean_max_weight > 0.75, "unscaled scores collapse softmax towards one-hot"
        assert demo.scaled_mean_max_weight < 0.5


def test_the_scaling_explanation_uses_the_runs_own_numbers():
    trained = scaling_explanation(ModelScaling(32, 521.28, 16.29, 0.9, 0.6))
    assert trained.startswith("Dividing by √d divides the variance by d = 32: 521.28 / 32 = 16.29.")
    assert "not 1 because training grew the queries and keys" in trained and "16.3" in trained
    fresh = scaling_explanation(ModelScaling(32, 33.0, 1.03, 0.3, 0.2))
    assert "Close to 1, as at initialisation" in fresh


def test_char_classes():
    assert [char_class(c) for c in "aB7,  x"][:4] == ["vowel (lower)", "consonant (upper)", "digit", "punctuation"]
    assert char_class(" ") == "whitespace"


@pytest.fixture
def trained(small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=40, eval_interval=20)
    plan.corpus = persist_corpus(store, plan.corpus)  # as the app does: the text stays readable for the views
    trainer, info = start_run(store, plan, name="tiny")
    trainer.run()
    return store.load(info.id)


def test_model_scaling_and_first_step(trained):
    real = model_scaling(trained.model, trained.tokenizer, "the cat sat on the mat")
    assert real.head_size == 16
    assert real.scaled_variance == pytest.approx(real.raw_variance / 16, rel=1e-3)
    assert real.raw_max_weight >= real.scaled_max_weight
    step = first_step(trained.model, trained.tokenizer, "the cat", 2.9, 1.5)
    assert step.expected_initial_loss == pytest.approx(math.log(trained.model_config.vocab_size))
    assert step.untrained[0].prob < 3 / trained.model_config.vocab_size, "untrained is near uniform"
    assert step.trained[0].prob > step.untrained[0].prob


def test_lessons_page_renders_and_reacts(fresh_resources, trained):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/lessons.py").run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Variance of q·k/√d"]) == pytest.approx(1.0, rel=0.1)
    assert float(metrics["Variance of q·k"]) == pytest.approx(64, rel=0.1)
    at.select_slider(key="scale_head_size").set_value(16).run()
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Variance of q·k"]) == pytest.approx(16, rel=0.1)
    assert metrics["Expected initial loss ln(V)"] == f"{math.log(trained.model_config.vocab_size):.3f}"
    assert len(at.get("plotly_chart")) >= 8  # scaling, positions, embeddings, first step
    assert any(m.label.startswith("Mean loss on this stretch") for m in at.metric), "the surprise tab draws"
    at.number_input(key="race_steps").set_value(50).run()
    at.select_slider(key="race_seeds").set_value(1).run()
    at.slider(key="race_layers").set_value(1).run()
    at.button(key="race_start").click().run()
    assert not at.error
    from ui.state import RACE, scheduler

    deadline = time.time() + 240
    while race_running(scheduler().store, at.session_state[RACE]):
        assert time.time() < deadline
        time.sleep(0.5)
    at.run()
    table = at.dataframe[0].value
    assert table["rung"].tolist() == list(LECTURE_LADDER) and table["seeds"].tolist() == ["1/1 done"] * 6
    assert table["± spread (max−min)"].tolist() == ["one seed: not measured"] * 6, "one seed has no spread"
    shown = [str(v) for v in table.to_numpy().ravel()] + [c.value for c in at.caption] + [i.value for i in at.info]
    assert not [s for s in shown if s.lower() in ("none", "nan") or "more than the seed spread" in s], shown
    assert any("no spread between seeds was measured" in c.value for c in at.caption)


def test_presenter_mode_hides_advanced_controls(fresh_resources):
    normal = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    normal.switch_page("views/train.py").run()
    assert any(w.key == "hp_dropout" for w in normal.slider)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.sidebar.toggle(key="presenter_toggle").set_value(True).run()
    at.switch_page("views/train.py").run()
    assert not any(w.key == "hp_dropout" for w in at.slider), "advanced controls are hidden"


def test_two_runs_are_compared_side_by_side_on_the_surprise_tab(fresh_resources, trained, small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=10, eval_interval=10)
    plan.corpus = persist_corpus(store, plan.corpus)
    trainer, shorter = start_run(store, plan, name="shorter")
    trainer.run()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/lessons.py").run()
    at.selectbox(key="lessons_run").set_value(trained.info.id).run()
    at.selectbox(key="surprise_second").set_value(shorter.id).run()
    assert not at.exception and not at.error
    assert any(m.label == "The second run's mean loss" for m in at.metric)
    assert any("Where they differ" in m.value for m in at.markdown)


def test_the_surprise_tab_offers_a_run_on_the_same_text_by_content_not_name(fresh_resources, trained, small_text,
                                                                            tmp_path):
    """A second run trained on the same text read from a file (another name, another place) is offered; a run on
    another text cut by the same tokenizer is not."""
    from babygpt.text.corpus import corpus_from_path

    store = RunStore()
    path = tmp_path / "my copy.txt"
    path.write_text(small_text)
    same, reordered = tiny_plan(small_text, max_iters=10, eval_interval=10), tiny_plan(small_text[::-1], max_iters=10,
                                                                                       eval_interval=10)
    same.corpus = corpus_from_path(path)  # as the command line reads --data
    reordered.corpus = persist_corpus(store, reordered.corpus)
    assert same.tokenizer.to_dict() == reordered.tokenizer.to_dict() == trained.tokenizer.to_dict()
    ids = {}
    for name, plan in (("same text", same), ("other text", reordered)):
        trainer, info = start_run(store, plan, name=name)
        trainer.run()
        ids[name] = info.id
    assert store.get(ids["same text"]).data_name != trained.info.data_name
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/lessons.py").run()
    at.selectbox(key="lessons_run").set_value(trained.info.id).run()
    options = at.selectbox(key="surprise_second").options
    assert any("same text" in o for o in options) and not any("other text" in o for o in options), options
