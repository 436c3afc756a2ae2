"""Page tests with Streamlit's AppTest: every page renders, reacts, and shows the library's errors."""


import pytest
from streamlit.testing.v1 import AppTest

from babygpt.orchestration.runs import start_run
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from tests.conftest import ROOT
from tests.helpers import app, tiny_plan, wait_for

pytestmark = pytest.mark.usefixtures("fresh_resources")

PAGES = ["views/data.py", "views/train.py", "views/attention.py", "views/generate.py", "views/runs.py",
         "views/class_board.py"]




@pytest.fixture
def trained_run(small_text):
    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=10), name="tiny")
    trainer.run()
    return info


def test_every_page_renders_on_empty_store():
    at = app()
    assert not at.exception
    assert at.title[0].value == "Data"
    assert [m.label for m in at.metric][:3] == ["Characters", "Lines", "Distinct characters"]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, page
        assert not at.error, (page, [e.value for e in at.error])
    at.switch_page("views/attention.py").run()
    assert "No trained run yet" in at.info[0].value


def test_pages_show_charts_for_a_trained_run(trained_run):
    at = app()
    at.switch_page("views/attention.py").run()
    assert not at.exception and not at.error
    charts = [c.key for c in at.get("plotly_chart")]
    assert charts == ["attention_heatmap", "attention_grid", "attention_forming"], "map, all heads, heads over time"
    at.radio(key="attention_kind").set_value("raw").run()
    assert "Score range" in at.caption[0].value
    at.switch_page("views/generate.py").run()
    at.text_area(key="generate_prompt").input("the cat").run()
    at.number_input(key="gen_max_new").set_value(20).run()
    at.button(key="generate").click().run()
    assert not at.exception and not at.error
    code = at.code[0].value
    assert code.startswith("the cat") and len(code) == len("the cat") + 20
    assert len(at.get("plotly_chart")) == 1
    at.switch_page("views/runs.py").run()
    assert not at.exception
    assert "No runs yet" in at.info[0].value, "a command-line run is nobody's in the app: not in 'your runs'"
    at.toggle(key="runs_everyone").set_value(True).run()
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert table["label"].tolist() == [f"tiny · {trained_run.id[-4:]}"]
    assert table["owner"].tolist() == ["command line"]
    at.switch_page("views/train.py").run()
    assert not at.exception and len(at.get("plotly_chart")) == 1, "looking at someone's run does not follow it"
    at.switch_page("views/attention.py").run()
    next(b for b in at.button if b.label == "Make active").click().run()
    at.switch_page("views/train.py").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_bad_upload_shows_error():
    at = app()
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "text/plain").run()
    assert "looks binary" in at.error[0].value


def test_good_upload_becomes_corpus():
    at = app()
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("poem.txt", ("roses are red\nviolets are blue\n" * 50).encode(),
                                          "text/plain").run()
    assert not at.error
    assert at.subheader[0].value == "Current corpus: poem.txt"
    assert at.metric[2].value == str(len(set("roses are red\nviolets are blue\n")))


def test_the_data_page_shows_where_the_current_text_came_from_when_coming_back():
    at = app()
    assert at.radio(key="data_source").value == "A text that ships with Baby GPT"
    assert any("This is the text in use" in c.value for c in at.caption)  # no "Use" button for the text in use
    assert not [b for b in at.button if b.key == "use_shipped"]
    at.selectbox(key="shipped_name").set_value("tinyshakespeare").run()
    at.button(key="use_shipped").click().run()
    assert at.subheader[0].value == "Current corpus: tinyshakespeare"
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("poem.txt", ("roses are red\n" * 50).encode(), "text/plain").run()
    at.switch_page("views/train.py").run()
    at.switch_page("views/data.py").run()  # the radio's widget state is gone; it must follow the corpus
    assert at.radio(key="data_source").value == "Upload .txt files"
    assert at.subheader[0].value == "Current corpus: poem.txt"


def test_a_bad_file_among_uploads_is_named_and_the_good_ones_are_used():
    at = app()
    at.radio(key="data_source").set_value("Upload .txt files").run()
    uploader = at.file_uploader(key="uploads")
    uploader.upload("poem.txt", ("roses are red\nviolets are blue\n" * 50).encode(), "text/plain")
    uploader.upload("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "text/plain")
    uploader.upload("empty.txt", b"", "text/plain").run()
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert errors[0].startswith("**Not used:** photo.txt looks binary") and errors[0].count("photo.txt") == 1
    assert errors[1].startswith("**Not used:** empty.txt is empty") and errors[1].count("empty.txt") == 1
    assert at.subheader[0].value == "Current corpus: poem.txt"


def test_only_bad_uploads_keep_the_corpus_and_say_so():
    at = app()
    before = at.subheader[0].value
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "text/plain").run()
    assert at.subheader[0].value == before
    assert any("No file was used: the corpus is still" in c.value for c in at.caption)


def test_gpt2_tokenizer_on_the_bundled_corpus_shows_its_vocabulary():
    at = app()
    at.radio(key="tokenizer_radio").set_value("gpt2").run()
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Vocabulary size"].replace(",", "")) > 1000
    assert 2.0 < float(metrics["Characters per token"]) < 6.0


def test_bad_hyperparameters_show_error():
    at = app()
    at.switch_page("views/train.py").run()
    at.select_slider(key="hp_n_head").set_value(3).run()
    assert any("must be divisible by n_head" in e.value for e in at.error)
    assert at.button(key="start").disabled


def test_start_and_stop_training_job():
    at = app()
    at.switch_page("views/train.py").run()
    at.slider(key="hp_n_layer").set_value(1).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.select_slider(key="hp_block_size").set_value(16).run()
    at.number_input(key="hp_max_iters").set_value(100_000).run()
    at.number_input(key="hp_eval_interval").set_value(50).run()
    at.button(key="start").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.button(key="stop").disabled is False
    from ui.state import scheduler

    run_id = scheduler().running()[0].run_id
    wait_for(lambda: scheduler().snapshot(run_id).step >= 10, what="ten steps")  # the worker starts, then trains
    at.run()
    assert "Training: step" in at.main.get("progress")[-1].proto.text
    at.button(key="stop").click().run()
    wait_for(lambda: not scheduler().running(), 30, "the worker to stop")
    snap = scheduler().snapshot(run_id)
    assert snap.status == "stopped" and 0 < snap.step < 100_000
    assert RunStore().has_checkpoint(run_id), "stopping keeps the last checkpoint"
    at.run()
    assert "ETA" not in at.main.get("progress")[-1].proto.text, "a stopped run has no ETA"
    assert at.button(key="start").disabled is False
    assert at.button(key="resume").disabled is False
    stopped_at = RunStore().load_trainer_state(run_id)["step"]
    at.button(key="resume").click().run()
    assert not at.error, [e.value for e in at.error]
    wait_for(lambda: scheduler().snapshot(run_id).step > stopped_at + 5, what="the resumed run to train")
    scheduler().stop_all(wait=30)
    assert scheduler().snapshot(run_id).step > stopped_at, "resume continues the same run from its checkpoint"


def test_full_server_queues_the_next_start(monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_JOBS", "1")
    at = app()
    at.switch_page("views/train.py").run()
    at.slider(key="hp_n_layer").set_value(1).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.number_input(key="hp_max_iters").set_value(100_000).run()
    at.button(key="start").click().run()
    other = app()  # a second browser: another user
    other.switch_page("views/train.py").run()
    other.slider(key="hp_n_layer").set_value(1).run()
    other.button(key="start").click().run()
    assert not other.error, [e.value for e in other.error]
    assert "Queued: position 1 in the queue" in other.main.get("progress")[-1].proto.text
    assert other.button(key="stop").label == "Cancel"
    other.button(key="stop").click().run()
    from ui.state import scheduler

    assert not scheduler().store.queued(), "cancel takes the run off the queue"


def test_a_queue_the_teacher_cleared_is_a_sentence_on_the_students_page(monkeypatch):
    """The student's page still shows Cancel when the teacher clears the queue: pressing it says what happened
    (no server path, no command), and the next refresh of the page drops the button and says it too."""
    from babygpt.plain_text import markdown_literal
    from babygpt.server.scheduler import CLEARED_BEFORE_START
    from babygpt.server.users import Actor
    from ui.state import classroom, scheduler

    monkeypatch.setenv("BABYGPT_MAX_JOBS", "1")
    first = app()
    first.switch_page("views/train.py").run()
    first.slider(key="hp_n_layer").set_value(1).run()
    first.number_input(key="hp_max_iters").set_value(100_000).run()
    first.button(key="start").click().run()
    student = app()
    student.switch_page("views/train.py").run()
    student.slider(key="hp_n_layer").set_value(1).run()
    student.button(key="start").click().run()
    assert student.button(key="stop").label == "Cancel" and not student.button(key="stop").disabled
    waiting = scheduler().store.queued()[0]
    assert classroom().clear_queue(Actor("teacher-key-0000000000", admin=True)) == 1
    student.button(key="stop").click().run()  # the button the page showed before it refreshed
    errors = [e.value for e in student.error]
    assert errors in ([CLEARED_BEFORE_START], [markdown_literal(CLEARED_BEFORE_START)]), errors
    assert not any(word in " ".join(errors) for word in ("/", "python -m", "runs list"))
    student.run()  # the next refresh
    assert student.button(key="stop").label == "Stop" and student.button(key="stop").disabled, "no Cancel left"
    said = " ".join(i.value for i in student.info)  # as Markdown source: the run's label stays text
    assert markdown_literal(f"The teacher cleared the queue; your run {waiting.label} was not started.") in said, said
    assert not student.button(key="start").disabled, "the student can start again"


def test_the_race_settings_come_back_after_a_reload():
    first = app()
    key = first.query_params["user"][0] if isinstance(first.query_params["user"], list) else first.query_params["user"]
    first.switch_page("views/lessons.py").run()
    first.number_input(key="race_steps").set_value(650).run()
    first.select_slider(key="race_seeds").set_value(2).run()
    first.slider(key="race_layers").set_value(3).run()
    first.selectbox(key="race_counterfactual").set_value("no-scale").run()

    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    again.query_params["user"] = key  # a reload: a new session, the same URL
    again.run()
    again.switch_page("views/lessons.py").run()
    assert again.number_input(key="race_steps").value == 650
    assert again.select_slider(key="race_seeds").value == 2
    assert again.slider(key="race_layers").value == 3
    assert again.selectbox(key="race_counterfactual").value == "no-scale"
    other = app()  # another user starts from the defaults
    other.switch_page("views/lessons.py").run()
    assert other.number_input(key="race_steps").value != 650


def test_a_reload_brings_back_the_users_choices_and_another_user_starts_fresh():
    first = app()
    key = first.query_params["user"][0] if isinstance(first.query_params["user"], list) else first.query_params["user"]
    first.radio(key="data_source").set_value("Upload .txt files").run()
    first.file_uploader(key="uploads").upload("poem.txt", ("roses are red\nviolets are blue\n" * 50).encode(),
                                              "text/plain").run()
    first.radio(key="tokenizer_radio").set_value("gpt2").run()
    first.switch_page("views/train.py").run()
    first.slider(key="hp_n_layer").set_value(1).run()

    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    again.query_params["user"] = key  # a reload: a new session, the same URL
    again.run()
    assert again.subheader[0].value == "Current corpus: poem.txt", "the upload comes back"
    assert again.radio(key="tokenizer_radio").value == "gpt2"
    again.switch_page("views/train.py").run()
    assert again.slider(key="hp_n_layer").value == 1

    stranger = app()  # no key in the URL and no cookie: another browser
    assert stranger.query_params["user"] != key
    assert stranger.subheader[0].value != "Current corpus: poem.txt"


def test_import_shows_the_run_at_once_and_errors_name_the_uploaded_file(trained_run):
    from babygpt.store.archive import export_bytes

    archive = export_bytes(RunStore(), trained_run.id)
    at = app()
    at.switch_page("views/runs.py").run()
    at.file_uploader(key="runs_import").upload("broken.zip", b"not a zip", "application/zip").run()
    assert "broken.zip is not a readable zip file" in at.error[0].value
    at.file_uploader(key="runs_import").upload("mine.zip", archive, "application/zip").run()
    assert not at.error, [e.value for e in at.error]
    assert any("Imported as tiny" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert table["owner"].tolist() == ["you"], "the import is the user's, listed without another click"
    (size,) = table["size"].tolist()  # babygpt.model.sizing.size_in_words, as the Class board writes it
    assert size.startswith("2×32, 2 heads · ") and size.endswith(" parameters")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_a_huge_alphabet_is_sized_and_refused_without_building_the_model():
    blocks = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3)]  # CJK and Hangul: ~38,700 characters
    text = "".join(chr(c) for lo, hi in blocks for c in range(lo, hi + 1))
    n = len(set(text))
    at = app()
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("cjk.txt", (text * 2).encode(), "text/plain").run()
    assert any(f"{n:,} distinct characters" in w.value and "bigram table alone" in w.value for w in at.warning)
    before = _rss_mb()
    at.switch_page("views/train.py").run()
    at.selectbox(key="hp_preset").set_value("bigram").run()
    assert not at.exception
    assert f"{n * n:,}" == at.metric[0].value  # the size is shown: arithmetic, not a model
    errors = [e.value for e in at.error]
    assert any("1.5 B parameters, over this server's limit" in e or "1.6 B parameters, over this server's limit" in e
               for e in errors), errors
    assert at.button(key="start").disabled
    assert _rss_mb() - before < 300, "no table of a billion parameters may be allocated"


def test_out_of_range_settings_are_named_and_block_start():
    at = app()
    at.switch_page("views/train.py").run()
    assert not at.button(key="start").disabled
    at.number_input(key="hp_max_iters").set_value(999_999_999).run()
    at.number_input(key="hp_lr").set_value(1e9).run()
    at.number_input(key="hp_warmup_iters").set_value(-50).run()
    [error] = [e.value for e in at.error]
    assert error.startswith("Not started until these are fixed:")
    for words in ("max_iters must be between 10 and 100,000, got 999,999,999.",
                  "lr must be between 1e-05 and 1, got 1e+09.", "warmup_iters must be between 0 and 10,000, got -50."):
        assert words in error
    assert at.button(key="start").disabled, "nothing trains with values the form refused"
    at.number_input(key="hp_max_iters").set_value(200).run()
    at.number_input(key="hp_lr").set_value(1e-3).run()
    at.number_input(key="hp_warmup_iters").set_value(10).run()
    assert not at.error and not at.button(key="start").disabled


def test_a_text_without_spaces_shows_a_bounded_token_view():
    """5,000 CJK symbols and no space: no short whole-word prefix, so the view caps the tokens and scrolls."""
    import random

    rng = random.Random(0)
    text = "".join(chr(0x4E00 + rng.randrange(6000)) for _ in range(5000))
    at = app()
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("cjk.txt", text.encode(), "text/plain").run()
    view = next(m.value for m in at.markdown if "title=\"id " in m.value)
    from babygpt.figures.viz import TOKEN_VIEW_ROWS

    assert view.count("<span") == 300 and f"max-height:{TOKEN_VIEW_ROWS * 28}px;overflow-y:auto" in view
    assert any(c.value.startswith("The first 300 tokens of the text.") for c in at.caption)
    assert at.metric[2].value == f"{len(set(text)):,}"  # counts read the same everywhere, with their comma


def test_the_val_loss_says_when_it_was_measured(auto_precision, trained_run):
    at = app()
    at.session_state["active_run"] = trained_run.id
    at.switch_page("views/train.py").run()
    metrics = {m.label: m.value for m in at.metric}
    last = [r for r in RunStore().metrics(trained_run.id) if r.split == "val"][-1]
    assert metrics["Last val loss"] == f"{last.loss:.3f}" and metrics["Device"] == "cpu"
    assert any(c.value.startswith(f"Val loss measured at step {last.step} (") and c.value.endswith(f" · {auto_precision}")
               for c in at.caption)


def test_every_status_has_its_word():
    from babygpt.status import RunStatus
    from ui.widgets import STATUS_WORDS

    assert set(STATUS_WORDS) == set(RunStatus)


def test_the_runs_page_builds_an_export_only_when_it_is_asked_for(trained_run, monkeypatch):
    """Rendering the Runs page (every rerun, every tick of a tab) never zips a run: the archive is the download
    button's callable, built when Export is pressed."""
    from babygpt.store import archive

    built = []
    real = archive.export_bytes
    monkeypatch.setattr(archive, "export_bytes", lambda store, run_id: built.append(run_id) or real(store, run_id))
    at = app()
    at.session_state["active_run"] = trained_run.id
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()
    at.run()
    assert not at.exception
    buttons = [b for b in at.get("download_button") if b.proto.label == "Export .zip"]
    assert len(buttons) == 1 and built == []


def test_the_runs_page_exports_to_hugging_face_only_what_gpt2_computes(small_text):
    store = RunStore()
    gpt, _ = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=10), name="gpt run")
    gpt.run()
    residual, _ = start_run(store, tiny_plan(small_text, preset="residual", max_iters=10, eval_interval=10),
                            name="residual run")
    residual.run()
    at = app()
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()
    at.radio(key="runs_export_kind").set_value("Hugging Face").run()
    ids = {r.name: r.id for r in store.list_runs()}
    at.selectbox(key="runs_target").set_value(ids["residual run"]).run()
    assert any("Not as GPT-2: This rung has no layer norm; GPT-2 always normalises." in c.value for c in at.caption)
    assert not [b for b in at.get("download_button") if b.proto.label == "Export .zip"]
    at.selectbox(key="runs_target").set_value(ids["gpt run"]).run()
    assert [b for b in at.get("download_button") if b.proto.label == "Export .zip"]
    assert not at.exception and not at.error


def test_a_hugging_face_zip_imports_and_fine_tunes_from_the_runs_page(small_text, tmp_path):
    from babygpt.store.huggingface import export_hf_zip

    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=10), name="source")
    trainer.run()
    at = app()
    at.switch_page("views/runs.py").run()
    at.file_uploader(key="runs_import").upload("source-transformers.zip", export_hf_zip(store, info.id),
                                               "application/zip").run()
    assert not at.error, [e.value for e in at.error]
    assert any("Imported as source-transformers" in s.value for s in at.success)
    imported = next(r for r in store.list_runs() if r.name == "source-transformers")
    assert imported.owner is not None and imported.config["data"]["name"].endswith("(imported)")
    at.selectbox(key="runs_target").set_value(imported.id).run()
    at.button(key="finetune_start").click().run()  # the current corpus has characters the model never saw
    assert "python-docs has" in at.error[0].value and "never saw" in at.error[0].value
    at.session_state["corpus"] = Corpus.from_text("cats", small_text)  # as if chosen on the Data page
    at.number_input(key="finetune_steps").set_value(20).run()
    at.button(key="finetune_start").click().run()
    assert not at.error, [e.value for e in at.error]
    tuned = wait_for(lambda: next((r for r in store.list_runs() if r.config.get("init")), None), 30, "the fine-tune")
    assert tuned.config["init"]["run"] == imported.id and tuned.owner == imported.owner
    said = next(s.value for s in at.success if "Model & training" in s.value)
    assert tuned.label.startswith("fine-tune of source-transformers") and tuned.label in said, said
    at.switch_page("views/train.py").run()  # where the sentence sends the student: the fine-tune, not its source
    progress = at.main.get("progress")[-1].proto.text
    assert progress.startswith(f"{tuned.label}: "), progress
    assert "Import a Hugging Face folder from this server's disk" not in [e.label for e in at.expander], \
        "a folder on the server's disk is the teacher's to import"


def test_an_imported_gpt2_opens_on_the_attention_and_generate_pages(tmp_path):
    """A GPT-2 made and saved by transformers, imported: the pages that look at a run show it like any other."""
    from babygpt.store.huggingface import import_hf
    from tests.helpers import LIMITS
    from tests.test_huggingface import gpt2_made_by_transformers

    gpt2_made_by_transformers(tmp_path / "gpt2")
    store = RunStore()
    info = import_hf(store, tmp_path / "gpt2", LIMITS)
    at = app()
    at.session_state["active_run"] = info.id
    at.switch_page("views/attention.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [c.key for c in at.get("plotly_chart")][:2] == ["attention_heatmap", "attention_grid"]
    at.switch_page("views/generate.py").run()
    at.text_area(key="generate_prompt").input("Hello").run()
    at.number_input(key="gen_max_new").set_value(8).run()
    at.button(key="generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.code[0].value.startswith("Hello")


@pytest.mark.parametrize("page", ["views/attention.py", "views/inside.py", "views/generate.py"])
def test_opening_a_page_never_makes_a_classmates_run_the_active_run(trained_run, page):
    """Only someone else's run has weights: the page shows it with a sentence and a Make active button, and the
    user's active run (which Model & training follows) changes only when they press it."""
    from ui.choices import RUN

    at = app()
    at.switch_page(page).run()
    assert not at.exception
    assert any("no trained run of your own" in i.value for i in at.info), [i.value for i in at.info]
    assert at.session_state[RUN] is None if RUN in at.session_state else True
    at.switch_page("views/train.py").run()
    assert (at.session_state[RUN] if RUN in at.session_state else None) is None
    at.switch_page(page).run()
    next(b for b in at.button if b.label == "Make active").click().run()
    assert at.session_state[RUN] == trained_run.id
