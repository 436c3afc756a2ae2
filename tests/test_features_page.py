"""The Features page on a tiny run trained here with a tiny SAE: its figures are the library's, its refusals are
sentences, steering shows the two texts the library writes, a job starts from the page, and the page draws in
Chromium without layout problems."""

from __future__ import annotations

import os

import pytest

from babygpt.features import browser
from babygpt.features.collect import collect_activations
from babygpt.features.fit import fit_sae
from babygpt.features.metrics import all_figures
from babygpt.features.sae import SAEConfig
from babygpt.features.steering import steer
from babygpt.orchestration.plan import encode_corpus, plan_training
from babygpt.orchestration.runs import create_run, start_run
from babygpt.server.users import public_handle
from babygpt.status import RunStatus
from babygpt.store import features as stored
from babygpt.store.corpora import run_corpus
from babygpt.store.runs import RunStore
from babygpt.text.corpus import corpus_from_path, describe_token
from babygpt.training.sample import SamplingConfig
from tests.browser_support import StreamlitServer, launch, layout_problems, new_page, require_chromium, train_demo_run
from tests.helpers import app, tiny_config, tiny_plan, wait_for

PAGE = "views/features.py"


def store_sae(store: RunStore, run_id: str, config: SAEConfig, tokens: int = 4000) -> stored.StoredSAE:
    """Train an SAE on the run's own text, in this process, and keep it as a job would."""
    loaded = store.load(run_id)
    ids = encode_corpus(run_corpus(store, loaded.info), loaded.tokenizer)
    fitted = fit_sae(loaded.model, ids, config, tokens=tokens, eval_tokens=512)
    return stored.save(store, run_id, fitted.sae, fitted.figures, fitted.browse_windows, fitted.tokens,
                       fitted.elapsed_s, fitted.stopped, store.weights_version(run_id))


@pytest.fixture
def cats(small_text, tmp_path, fresh_resources):
    """A two-layer run on a text kept on disk, and a 64-feature SAE on its last layer."""
    path = tmp_path / "cats.txt"
    path.write_text(small_text * 3)
    plan = plan_training(corpus_from_path(path), "char", "gpt", tiny_config(max_iters=30, eval_interval=10,
                                                                             dtype="float32"),
                         n_layer=2, n_head=2, n_embd=16, block_size=16)
    store = RunStore()
    trainer, info = start_run(store, plan, name="cats")
    trainer.run()
    kept = store_sae(store, info.id, SAEConfig(d_in=16, n_features=64, k=4, layer=1, batch_size=256))
    return store, info, kept


def page_on(run_id: str, owned: bool = True):
    """The page on ``run_id``, for the run's owner (who may train SAEs on it) or, ``owned=False``, a classmate."""
    at = app()
    if owned:
        with RunStore()._connect() as db:
            db.execute("UPDATE runs SET owner = ? WHERE id = ?", (at.session_state["user_key"], run_id))
    at.session_state["active_run"] = run_id
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def frame(at, column: str):
    """The page's table that has ``column``."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, f"{len(found)} tables with a {column!r} column"
    return found[0]


def test_the_page_shows_the_librarys_figures_and_features(cats):
    store, info, kept = cats
    at = page_on(info.id)
    assert not at.error, [e.value for e in at.error]
    loaded = store.load(info.id)
    sae, windows = kept.load()
    held = collect_activations(loaded.model, windows, kept.config.hook_name)
    figures = all_figures(loaded.model, sae, held.acts, held.windows)  # the library, again, on the stored SAE
    shown = {m.label: m.value for m in at.metric}
    assert shown == {"Variance explained": f"{figures.variance_explained:.3f}",
                     "L0 (features per token)": f"{figures.l0:.1f}",
                     "Dead features": f"{figures.dead:,} of 64", "Dense features": f"{figures.dense:,} of 64",
                     "Loss recovered": f"{figures.loss_recovered:.3f}"}
    assert abs(figures.variance_explained - kept.figures.variance_explained) < 1e-9
    captions = " ".join(c.value for c in at.caption)
    assert "1 is a perfect copy" in captions and "as bad as removing the layer" in captions
    assert "Variance explained and loss recovered measure against different baselines" in captions, \
        "one sentence reconciles a low variance explained with a high loss recovered"
    assert f"between {figures.loss_zero_ablated:.3f} with the layer zeroed and {figures.loss_intact:.3f}" in captions

    data = browser.browser_data(loaded.model, sae, windows, loaded.tokenizer)
    picker = at.selectbox(key="features_feature")
    assert list(picker.options) == [f"#{f} · {data.labels[f]} · fires on {float(data.table.frequency[f]):.2%} of "
                                    "tokens" for f in data.order[:200]], "interesting first, as the library orders"
    first = data.order[0]
    passages = browser.top_passages(sae, data.activations, data.table, first, loaded.tokenizer)
    html = " ".join(h.proto.body for h in at.get("html"))
    assert html.count("<div") >= len(passages) > 0
    peak_token = passages[0].tokens[passages[0].peak]
    assert f'title="strength {peak_token.strength:.2f}"' in html, "the strongest token, with its strength"
    up, _ = browser.promoted_and_suppressed(data.effects, first, loaded.tokenizer)
    promotes = frame(at, "promotes")
    assert list(promotes["promotes"]) == [describe_token(e.text) for e in up]
    on_prompt = frame(at, "token")
    prompt = at.text_area(key="features_prompt").value
    assert list(on_prompt["token"]) == [loaded.tokenizer.token_text(t) for t in loaded.tokenizer.encode(prompt)][-16:]
    assert at.get("download_button"), "the SAELens export"


def test_steering_shows_the_two_texts_the_library_writes(cats):
    store, info, kept = cats
    at = page_on(info.id)
    feature = at.selectbox(key="features_feature").value
    at.number_input(key=f"features_strength_{feature}").set_value(8.0)
    at.number_input(key="features_new_tokens").set_value(40)
    at.toggle(key="features_steer").set_value(True).run()
    assert not at.exception and not at.error
    loaded = store.load(info.id)
    prompt = at.text_area(key="features_steer_prompt").value
    texts = steer(loaded.model, loaded.tokenizer, kept.load()[0], feature, 8.0, prompt,
                  SamplingConfig(max_new_tokens=40, seed=0))
    shown = [c.value for c in at.code]  # a code block drops a leading line break
    assert shown == [(prompt + texts.with_feature).strip("\n"), (prompt + texts.without_feature).strip("\n")]
    assert texts.with_feature != texts.without_feature, "the feature changed what was written"
    assert any(m.value == f"**With feature #{feature}** at +8" for m in at.markdown)


def test_the_refusals_are_sentences(cats, small_text):
    store, info, kept = cats
    at = page_on(info.id)
    at.number_input(key="features_k").set_value(5000).run()
    assert [w.value for w in at.warning] == ["Not started: k must be between 1 and the 128 features, got 5000."]
    assert at.button(key="features_start").disabled

    # an SAE still training (its worker alive) and none kept yet: the page says so instead of its figures
    stored.delete(store, info.id, kept.name)
    config = SAEConfig(d_in=16, n_features=128, k=32, layer=1)
    stored.write_job(stored.job_file(store, info.id, config), {"state": "running", "stage": "training", "step": 3,
                                                               "steps": 10, "pid": os.getpid(), "config": {}})
    at = page_on(info.id)
    assert "The SAE is still training; its figures and features appear here when it finishes." in \
        [i.value for i in at.info]
    assert not at.metric
    assert any("step 3/10" in p.proto.text for p in at.get("progress"))

    bigram = tiny_plan(small_text, preset="bigram", max_iters=2, eval_interval=2)
    trainer, bigram_run = start_run(store, bigram, name="table")
    trainer.run()
    at = page_on(bigram_run.id)
    assert [i.value for i in at.info] == ["The bigram model has no layers to read features from: pick a run with "
                                          "attention."]

    queued = create_run(store, tiny_plan(small_text), name="waiting", status=RunStatus.QUEUED)
    at = page_on(queued.id)
    assert f"Your active run {queued.label} has no saved weights yet, so there is no model to read features from; " \
        "pick a run with weights, or come back after its first checkpoint." in [i.value for i in at.info]


def test_start_trains_an_sae_as_a_job_with_progress(cats):
    store, info, kept = cats
    stored.delete(store, info.id, kept.name)
    at = page_on(info.id)
    at.select_slider(key="features_expansion").set_value(2)
    at.number_input(key="features_k").set_value(4)
    at.select_slider(key="features_tokens").set_value(50_000).run()
    assert not at.warning, [w.value for w in at.warning]
    at.button(key="features_start").click().run()
    assert not at.exception and not at.error
    key = f"{store.get(info.id).id}/L1-resid_post-32-k4"
    from ui.features_cache import sae_jobs

    done = wait_for(lambda: sae_jobs().status(key).state in ("done", "failed") and sae_jobs().status(key),
                    timeout=240, what="the SAE job")
    assert done.state == "done", done.message
    at.run()
    assert at.selectbox(key="features_sae").value == "L1-resid_post-32-k4"
    assert [m.label for m in at.metric][0] == "Variance explained"


def test_the_page_in_a_real_browser(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    require_chromium()
    home = tmp_path / "runs"
    train_demo_run(home, eval_interval=10)
    store = RunStore(home)
    run_id = store.list_runs()[0].id
    store_sae(store, run_id, SAEConfig(d_in=64, n_features=256, k=8, layer=1, batch_size=512))
    server = StreamlitServer(home).start()
    try:
        with playwright.sync_playwright() as p:
            chromium = launch(p)
            page = new_page(chromium)
            page.goto(f"{server.url}/features")
            page.get_by_role("heading", name="Features", level=1).wait_for()
            page.get_by_text("Variance explained").wait_for()
            page.get_by_text("What feature").first.wait_for()
            page.get_by_text("Strongest anywhere on the prompt").wait_for()
            page.wait_for_timeout(1500)
            assert page.locator("[data-testid='stMetric']").count() == 5
            assert layout_problems(page) == []
            chromium.close()
    finally:
        server.stop()



def test_a_waiting_sae_shows_its_place_in_the_queue_and_stop_takes_it_off(cats, small_text, monkeypatch):
    """One slot, taken by a training run: the SAE waits, the page says where, and Stop takes it off the queue."""
    from ui import state
    from ui.features_cache import sae_jobs

    store, info, kept = cats
    monkeypatch.setenv("BABYGPT_MAX_JOBS", "1")
    scheduler = state.scheduler()
    scheduler.submit("someone-else-0123456789", tiny_plan(small_text, max_iters=100_000, eval_interval=20))
    try:
        at = page_on(info.id)
        at.button(key="features_start").click().run()  # "Train again": the same settings as the kept SAE's default
        assert not at.exception and not at.error
        lines = [p.proto.text for p in at.get("progress")]
        name = stored.sae_name(SAEConfig(d_in=16, n_features=128, k=32, layer=1))
        assert f"{name}: waiting, position 1 in the SAE queue" in lines
        at.button(key=f"features_stop_{name}").click().run()
        assert not at.exception and not at.error
        assert sae_jobs().status(f"{info.id}/{name}").state == "stopped" and sae_jobs().queued() == []
        assert not [p for p in at.get("progress") if p.proto.text.startswith(name)], "nothing waits any more"
    finally:
        scheduler.stop_all(wait=30)


def test_a_passage_is_shown_as_text_never_markup():
    """The passages are the user's text: a token that looks like a tag is escaped, a line break is a mark."""
    from ui.features_cache import passage_html

    tokens = [browser.PassageToken("<b>", 0.0), browser.PassageToken("\n", 1.5), browser.PassageToken('"x"', 3.0)]
    html = passage_html(browser.Passage(tokens, 2), peak=3.0)
    assert "<b>" not in html and "&lt;b&gt;" in html and "&#34;x&#34;" in html and "↵" in html
    assert 'title="strength 3.00" style="background:rgba(234,88,12,1.00);text-decoration:underline 2px;' in html
    assert "rgba(234,88,12,0.50)" in html and "rgba(234,88,12,0.00)" in html, "shaded by strength over the peak"


CLASSMATE = "classmate-key-0123456789"


def test_a_classmates_run_is_browsed_but_its_sae_is_not_replaced_or_stopped(cats):
    """On a classmate's run the figures, features, steering and export are there; Train is off with the reason,
    and the SAE training there has no Stop."""
    store, info, kept = cats
    with store._connect() as db:
        db.execute("UPDATE runs SET owner = ? WHERE id = ?", (CLASSMATE, info.id))
    config = SAEConfig(d_in=16, n_features=32, k=4, layer=1)
    stored.write_job(stored.job_file(store, info.id, config), {"state": "running", "stage": "training", "step": 3,
                                                               "steps": 10, "pid": os.getpid(), "owner": CLASSMATE,
                                                               "config": config.to_dict()})
    at = page_on(info.id, owned=False)
    assert [w.value for w in at.warning] == [
        f"Not started: Run {info.label} belongs to {public_handle(CLASSMATE)}: only its owner, or the teacher with "
        "the admin token, can train or replace an SAE on it."]
    assert at.button(key="features_start").disabled
    assert any("step 3/10" in p.proto.text for p in at.get("progress"))
    assert "features_stop_L1-resid_post-32-k4" not in [b.key for b in at.button], "no Stop on a classmate's SAE"
    assert [m.label for m in at.metric][0] == "Variance explained" and at.get("download_button")
    feature = at.selectbox(key="features_feature").value
    at.toggle(key="features_steer").set_value(True).run()
    assert not at.exception and not at.error and len(at.code) == 2, f"steering with feature {feature}"

    at = page_on(info.id)  # its owner's page: Stop is there
    assert at.button(key="features_stop_L1-resid_post-32-k4")


def test_a_refused_stop_says_why_after_the_page_redraws(cats):
    """An SAE whose worker this server does not watch (it was started before a restart) cannot be stopped from here:
    Stop says so, and the rerun after the click does not wipe the sentence."""
    store, info, kept = cats
    at = page_on(info.id)
    config = SAEConfig(d_in=16, n_features=32, k=4, layer=1)
    stored.write_job(stored.job_file(store, info.id, config), {"state": "running", "stage": "training", "step": 3,
                                                               "steps": 10, "pid": os.getpid(),
                                                               "owner": at.session_state["user_key"],
                                                               "config": config.to_dict()})
    at.run()
    at.button(key="features_stop_L1-resid_post-32-k4").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This SAE is not training."]


def test_k_is_a_whole_number_and_the_dictionary_goes_to_64x(cats):
    store, info, kept = cats
    at = page_on(info.id)
    assert list(at.select_slider(key="features_expansion").options)[-1] == "64× = 1,024 features", "as docs say"
    at.number_input(key="features_k").set_value(3.7).run()
    assert [w.value for w in at.warning] == ["Not started: k counts features, so it is a whole number, got 3.7."]
    assert at.button(key="features_start").disabled


def test_promoted_and_suppressed_tokens_show_spaces_and_line_breaks_by_name(cats):
    """A space or a line break is a token like any other: the tables show it by name, never as a blank cell."""
    store, info, kept = cats
    loaded = store.load(info.id)
    sae, windows = kept.load()
    data = browser.browser_data(loaded.model, sae, windows, loaded.tokenizer)
    feature, up, down = next((f, *browser.promoted_and_suppressed(data.effects, f, loaded.tokenizer))
                             for f in data.order[:200]
                             if any(e.text.isspace() for e in sum(browser.promoted_and_suppressed(
                                 data.effects, f, loaded.tokenizer), [])))
    at = page_on(info.id)
    at.selectbox(key="features_feature").set_value(feature).run()
    shown = list(frame(at, "promotes")["promotes"]) + list(frame(at, "suppresses")["suppresses"])
    assert shown == [describe_token(e.text) for e in up + down]
    assert all(cell.strip() for cell in shown), shown
    assert {"\\n", describe_token(" ")} & set(shown)


def test_a_finished_sae_is_not_refused_as_still_training_before_its_process_is_reaped(cats):
    """The worker writes "done" a moment before the server reaps its process; the page redraws at once and must
    offer Train again, not "Your SAE is still training or waiting"."""
    from types import SimpleNamespace

    from babygpt.server.sae_jobs import _Request
    from ui.features_cache import sae_jobs

    store, info, kept = cats
    at = page_on(info.id)  # its owner's page
    owner = at.session_state["user_key"]
    config = SAEConfig(d_in=16, n_features=32, k=4, layer=1)
    path = stored.job_file(store, info.id, config)
    stored.write_job(path, {"state": "running", "stage": "training", "pid": os.getpid(), "config": config.to_dict(),
                            "owner": owner})
    key = f"{info.id}/{stored.sae_name(config)}"
    jobs = sae_jobs()
    jobs._running[key] = SimpleNamespace(request=_Request(key, owner, store.get(info.id), config, 4000, None, path))
    try:
        at.run()
        assert "Not started: Your SAE is still training or waiting; stop it (or wait for it) before starting " \
            "another." in [w.value for w in at.warning], "while it trains, the refusal stands"
        stored.update_job(path, state="done", stage="")  # the worker's last write; its process not reaped yet
        at.run()
        assert not at.exception and not at.warning, [w.value for w in at.warning]
        assert not at.button(key="features_start").disabled
    finally:
        jobs._running.pop(key, None)


def test_a_job_line_says_the_measuring_batch_not_the_last_training_step():
    from babygpt.server.sae_jobs import SAEJobStatus
    from ui.features_cache import job_line

    measuring = SAEJobStatus("r/x", "r", "x", "running", "measuring · batch 2/8", step=12, steps=12)
    assert job_line(measuring)[1] == "x: measuring · batch 2/8"
    training = SAEJobStatus("r/x", "r", "x", "running", "training", step=3, steps=12, nmse=0.5)
    assert job_line(training)[1] == "x: training · step 3/12 · normalized error 0.500"
