"""The look-inside views on a run trained here: what training records for them, the Inside page, the head types
beside the Attention page's picker, the Induction heads lesson (AppTest), and the Inside page in Chromium at the
usual size (presenter sizes: tests/test_classroom.py, which visits every page)."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from babygpt.interpret.inside import HEAD_TYPE_BY_KEY, scores_during_training
from babygpt.interpret.looking import formation_from_history, formation_reading
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.recorder import probe_prompt
from babygpt.orchestration.runs import resume_run, start_run
from babygpt.store.runs import RunStore
from babygpt.text.corpus import corpus_from_path
from tests.browser_support import StreamlitServer, launch, layout_problems, new_page, require_chromium, train_demo_run
from tests.helpers import app, tiny_config

HEAD_NAMES = {k: t.name for k, t in HEAD_TYPE_BY_KEY.items()}


@pytest.fixture
def cats_run(small_text, tmp_path, fresh_resources):
    """A two-layer run on a text kept on disk (as the app keeps uploads), evaluated six times."""
    path = tmp_path / "cats.txt"
    path.write_text(small_text)
    plan = plan_training(corpus_from_path(path), "char", "gpt", tiny_config(max_iters=50, eval_interval=10,
                                                                             dtype="float32"),
                         n_layer=2, n_head=2, n_embd=32, block_size=16)
    store = RunStore()
    trainer, info = start_run(store, plan, name="cats")
    trainer.run()
    return store, info, plan


def test_training_records_every_heads_scores_at_every_evaluation(cats_run):
    store, info, plan = cats_run
    history = store.head_score_history(info.id)
    assert [step for step, _ in history] == [0, 10, 20, 30, 40, 50]
    formation = formation_from_history(history)
    assert formation.scores["induction"].shape == (6, 2, 2) and formation.lacking == ()
    # the chart's last point is the stored checkpoint's: the same measurement on the final weights
    loaded = store.load(info.id)
    ids, _ = probe_prompt(plan.tokenizer, plan.split, plan.model_config.block_size)
    again = scores_during_training(loaded.model, ids)
    for kind, values in again.items():
        np.testing.assert_allclose(formation.scores[kind][-1], np.array(values), atol=1e-6, err_msg=kind)


def test_a_resume_records_scores_again_from_its_checkpoint_and_a_delete_removes_them(cats_run):
    store, info, plan = cats_run
    trainer, _ = resume_run(store, info.id, plan.corpus, max_iters=70)
    trainer.run()
    assert [step for step, _ in store.head_score_history(info.id)] == [0, 10, 20, 30, 40, 50, 60, 70]
    store.delete(info.id)
    assert store.head_score_history(info.id) == []


def page_on(run_id: str, page: str) -> AppTest:
    """The app on ``page`` with ``run_id`` as the active run, rendered without an exception."""
    at = app()
    at.session_state["active_run"] = run_id
    at.switch_page(page).run()
    assert not at.exception
    return at


def test_the_inside_page_measures_the_run_on_screen(cats_run):
    store, info, _ = cats_run
    at = page_on(info.id, "views/inside.py")
    assert not at.error, [e.value for e in at.error]
    assert [c.key for c in at.get("plotly_chart")] == ["inside_head_grid", "inside_formation", "inside_lens"]
    readings = [m.value for m in at.markdown if m.value.startswith("- layer ")]
    assert len(readings) == 4 and readings[0].startswith("- layer 0 head 0 ")
    assert any("induction head" in i.value for i in at.info), "the formation sentence says what happened"
    captions = [c.value for c in at.caption]
    assert any("windows of 16 characters of its validation text" in c for c in captions), "the list names its text"
    assert any("the first 16 characters of the validation text" in c for c in captions), "so does the chart"
    at.selectbox(key="inside_formation_kind").set_value("previous").run()
    formation = formation_from_history(store.head_score_history(info.id))
    assert formation_reading(formation, "previous", "previous token") in [c.value for c in at.caption], \
        "under the chart, the head its dashed line marks and where it stands at the end"
    at.toggle(key="inside_ablate").set_value(True).run()
    assert not at.exception and not at.error
    assert "inside_ablation_grid" in [c.key for c in at.get("plotly_chart")]
    assert any(c.value.startswith("Measured on ") and "nats without it" in c.value for c in at.caption)
    at.radio(key="inside_ablation_mode").set_value("mean").run()
    assert not at.exception
    intact, ablated = at.code[0].value, at.code[1].value
    assert intact != ablated, "the same seed with and without the head"


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_the_ablation_sentence_and_tables_follow_the_kind_chosen(cats_run, kind):
    """Grid, sentence, the parts table and the table of tokens hurt all show the knock-out the radio names."""
    from ui.run_cache import ablations

    store, info, _ = cats_run
    at = page_on(info.id, "views/inside.py")
    at.toggle(key="inside_ablate").set_value(True).run()
    at.radio(key="inside_ablation_mode").set_value(kind).run()
    assert not at.exception and not at.error
    view, _, _ = ablations(info.id)
    knocked = view.by(kind)
    layer, head = knocked.worst
    sentence = next(c.value for c in at.caption if "nats per token" in c.value)
    assert f"Knocked out by {kind}, the model needs layer {layer} head {head} most: " \
           f"{knocked.heads[layer, head]:+.3f} nats without it." in sentence
    grid = next(c for c in at.get("plotly_chart") if c.key == "inside_ablation_grid")
    assert f"({kind})" in grid.proto.spec
    tables = [d.value for d in at.dataframe]
    parts = next(t for t in tables if "layer" in t.columns)
    np.testing.assert_allclose(parts[f"without its attention ({kind})"], knocked.attention)
    np.testing.assert_allclose(parts[f"without its feed-forward ({kind})"], knocked.feed_forward)
    hurt = next(t for t in tables if "loss change" in t.columns)
    np.testing.assert_allclose(hurt["loss change"], [change for _, _, change in knocked.hurt])
    assert any(m.value == f"**Where layer {layer} head {head} mattered most** (knocked out by {kind})"
               for m in at.markdown)
    assert at.selectbox(key=f"inside_without_{kind}").value == knocked.worst
    from babygpt.interpret.inside import TYPES, heads_of_type
    from ui.run_cache import head_types, heads_together

    scores, _ = head_types(info.id)
    typed = [k for k in TYPES if heads_of_type(scores, k)]
    if not typed:
        assert any("no set of heads of one type" in c.value for c in at.caption)
    else:
        assert at.selectbox(key="inside_together_kind").options[0].startswith(HEAD_NAMES[typed[0]])
        shown = heads_together(info.id, typed[0], kind)
        assert shown.alone == tuple(float(knocked.heads[lh]) for lh in shown.heads)  # the grid's own numbers
        assert any(m.value.startswith(f"Knocked out together (by {kind})") and f"{shown.together:+.3f}" in m.value
                   for m in at.markdown)


def test_the_attention_picker_says_each_heads_type(cats_run):
    store, info, _ = cats_run
    at = page_on(info.id, "views/attention.py")
    from ui.run_cache import head_types

    scores, _ = head_types(info.id)
    options = at.selectbox(key="attention_head").options
    assert options == [f"{h} · {scores.kind(0, h)}" if scores.kind(0, h) else str(h) for h in range(2)]


def test_the_induction_lesson_says_what_formed(cats_run):
    store, info, _ = cats_run
    at = page_on(info.id, "views/lessons.py")
    assert any(i.value.startswith(("No induction head formed", "An induction head formed")) for i in at.info)
    assert "induction_formation" in [c.key for c in at.get("plotly_chart")]


def test_the_inside_page_in_a_real_browser(tmp_path):
    """The default rung at the usual size: every section draws, nothing is cut or overlapping."""
    playwright = pytest.importorskip("playwright.sync_api")
    require_chromium()
    home = tmp_path / "runs"
    train_demo_run(home, eval_interval=10)
    run_id = RunStore(home).list_runs()[0].id
    server = StreamlitServer(home).start()
    try:
        with playwright.sync_playwright() as p:
            browser = launch(p)
            page = new_page(browser)
            page.goto(f"{server.url}/inside")
            page.get_by_role("heading", name="Inside the model", level=1).wait_for()
            page.get_by_text("layer 1 head 1").first.wait_for()
            page.get_by_text("Logit lens: the top guess after each layer").wait_for()
            page.get_by_text("Measure (each head").click()
            page.get_by_text("nats without it").wait_for()
            page.wait_for_timeout(2000)
            assert page.locator(".js-plotly-plot").count() == 4
            assert layout_problems(page) == []
            browser.close()
    finally:
        server.stop()
    assert RunStore(home).get(run_id).status == "done"



def test_two_runs_side_by_side_and_a_refusal_with_its_reason(cats_run, tmp_path):
    store, info, plan = cats_run
    other = plan_training(plan.corpus, "char", "gpt", tiny_config(max_iters=20, eval_interval=10, dtype="float32"),
                          n_layer=1, n_head=2, n_embd=16, block_size=16)
    trainer, second = start_run(store, other, name="smaller")
    trainer.run()
    gpt2 = plan_training(plan.corpus, "gpt2", "gpt", tiny_config(max_iters=10, eval_interval=10, dtype="float32"),
                         n_layer=1, n_head=2, n_embd=16, block_size=16)
    trainer, third = start_run(store, gpt2, name="bpe")
    trainer.run()
    at = page_on(info.id, "views/inside.py")
    at.selectbox(key="inside_compare").set_value(second.id).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    keys = [c.key for c in at.get("plotly_chart")]
    for key in ("inside_compare_grid_this run", "inside_compare_grid_the other run", "inside_compare_curves",
                "inside_compare_map_this run", "inside_compare_lens_the other run"):
        assert key in keys, key
    at.selectbox(key="inside_compare").set_value(third.id).run()
    assert not at.exception
    assert any("cut text differently (char and gpt2)" in i.value for i in at.info)
    assert "inside_compare_map_this run" not in [c.key for c in at.get("plotly_chart")]
