"""Screens that agree with themselves (issue 35): a student has one name on every page, a loss figure says which
one it is, and a table never shows "None"."""

import pytest

from babygpt.orchestration.runs import start_run
from babygpt.server.users import new_user_key, public_handle
from babygpt.store.runs import RunStore
from tests.helpers import app, tiny_plan

pytestmark = pytest.mark.usefixtures("fresh_resources")

ANA = new_user_key()


@pytest.fixture
def anas_run(small_text):
    """A finished run of a classmate who chose the name "Ana" for the board."""
    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=10), name="ana's run")
    trainer.run()
    with store._connect() as db:
        db.execute("UPDATE runs SET owner = ? WHERE id = ?", (ANA, info.id))
    store.set_handle(ANA, "Ana *bold*")
    return info


def test_a_classmate_has_her_board_name_in_the_runs_table_and_the_run_pickers(anas_run):
    at = app()
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()
    assert not at.exception
    owners = list(at.dataframe[0].value["owner"])
    assert owners == ["Ana *bold*"], owners
    assert public_handle(ANA) not in owners
    at.switch_page("views/attention.py").run()
    assert not at.exception
    picker = at.selectbox[0]
    assert picker.format_func(anas_run.id).endswith(" · Ana *bold*"), picker.format_func(anas_run.id)


def test_each_loss_figure_says_which_it_is_and_the_runs_table_never_shows_none(anas_run, small_text):
    from babygpt.orchestration.runs import create_run

    untrained = create_run(RunStore(), tiny_plan(small_text, max_iters=20, eval_interval=10), name="no curve")
    at = app()
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()
    assert not at.exception
    table = at.dataframe[0].value
    cells = [str(v) for column in ("best_val_loss", "best_val_bpb", "tokens_per_sec") for v in table[column]]
    assert not any(c in ("None", "nan", "NaN", "<NA>") for c in cells), cells
    row = list(table["id"]).index(untrained.id)
    assert [table[c][row] for c in ("best_val_loss", "best_val_bpb", "tokens_per_sec")] == ["–", "–", "–"]
    at.switch_page("views/attention.py").run()
    assert " · best val " in at.selectbox[0].format_func(anas_run.id)
    at.session_state["active_run"] = anas_run.id
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert "Last val loss" in [m.label for m in at.metric]


def test_a_finished_run_shows_the_runs_tables_overall_speed():
    from babygpt.pace import overall_tokens_per_second

    train = [{"step": 10, "loss": 2.0, "elapsed_s": 4.0}, {"step": 20, "loss": 1.5, "elapsed_s": 9.0}]
    evals = [{"step": 20, "train_loss": 1.5, "val_loss": 1.6, "elapsed_s": 10.0}]
    assert overall_tokens_per_second(train, evals, 100) == 20 * 100 / 10.0, "its tokens over its wall time"
    assert overall_tokens_per_second([], [], 100) is None


def test_model_and_training_shows_a_finished_runs_speed_as_the_runs_table_does(anas_run):
    at = app()
    at.session_state["active_run"] = anas_run.id
    at.switch_page("views/train.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    expected = next(r for r in RunStore().summaries() if r.id == anas_run.id).tokens_per_sec
    assert metrics["Overall tokens/s"] == f"{expected:,.0f}" != "–", metrics


def test_the_teacher_box_speaks_to_a_class(monkeypatch):
    import time

    from ui.identity import until_text

    now = time.mktime((2026, 12, 6, 12, 0, 0, 0, 0, -1))  # noon, local time
    assert until_text(now + 3600, now) == "13:00", "today: the time alone"
    assert until_text(now + 20 * 3600, now) == "08:00 on Mon 07 Dec", "tomorrow: with its day"
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", "s3cret-token-for-the-test")
    at = app()
    assert not at.exception
    box = at.text_input(key="admin_token")
    assert "BABYGPT_ADMIN_TOKEN" not in box.help and "the token the teacher started the server with" in box.help
    box.input("s3cret-token-for-the-test").run()
    assert not at.exception
    assert "Sign out all" in [b.label for b in at.button]


def test_a_shared_link_opens_on_the_students_machines():
    from babygpt.lessons.links import make_link, only_here, shareable_base

    assert shareable_base("http://localhost:8501/train", None, "192.168.1.20") == "http://192.168.1.20:8501/train"
    assert shareable_base("http://10.0.0.5:8501/", None, "192.168.1.20") == "http://10.0.0.5:8501/", "as it came"
    assert shareable_base(None, "school-server:8501", "192.168.1.20") == "http://school-server:8501/"
    assert shareable_base("http://127.0.0.1:8501/", None, None) == "http://127.0.0.1:8501/"
    assert only_here("http://127.0.0.1:8501/") and not only_here("http://192.168.1.20:8501/")
    assert make_link(shareable_base("http://localhost:8501/", None, "fe80::1"), {"preset": "gpt"}).startswith(
        "http://[fe80::1]:8501/?")


def test_the_share_popover_offers_this_page_not_a_placeholder():
    at = app()
    at.switch_page("views/train.py").run()
    assert not at.exception
    picker = at.selectbox(key="share_lesson")
    assert picker.value == "", "a None option is no choice at all: the browser shows its placeholder instead"
    assert picker.index == 0 and picker.options[0] == "— (this page)", picker.options


def test_a_model_without_its_text_opens_on_an_english_sentence_not_a_lone_token():
    from babygpt.text.tokenizers import build_tokenizer
    from ui.widgets import FALLBACK_PROMPT, fallback_prompt

    gpt2 = build_tokenizer("gpt2", FALLBACK_PROMPT + " ran away!")  # reads the sentence; its token 0 is "!"
    assert gpt2.token_text(0) != FALLBACK_PROMPT
    assert fallback_prompt(gpt2) == FALLBACK_PROMPT
    chars = build_tokenizer("char", "abc")
    assert fallback_prompt(chars) == chars.token_text(0), "a vocabulary without those letters: its first token"


def test_a_queued_run_says_its_device_and_precision_are_chosen_later(monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_JOBS", "1")
    first = app()
    first.switch_page("views/train.py").run()
    first.slider(key="hp_n_layer").set_value(1).run()
    first.number_input(key="hp_max_iters").set_value(100_000).run()
    first.button(key="start").click().run()
    other = app()  # a second browser: its run waits for the one slot
    other.switch_page("views/train.py").run()
    other.slider(key="hp_n_layer").set_value(1).run()
    other.button(key="start").click().run()
    assert not other.exception
    assert "Queued" in other.main.get("progress")[-1].proto.text
    captions = [c.value for c in other.caption]
    assert "Auto" not in captions and "auto" not in captions, captions
    assert "Device and precision chosen when it starts" in captions, captions
    other.button(key="stop").click().run()


def test_the_sidebar_names_a_training_classmate_by_her_board_name(monkeypatch):
    from ui.state import USER

    first = app()
    first.switch_page("views/train.py").run()
    first.slider(key="hp_n_layer").set_value(1).run()
    first.number_input(key="hp_max_iters").set_value(100_000).run()
    first.button(key="start").click().run()
    RunStore().set_handle(first.session_state[USER], "Ana *bold*")
    other = app()  # a classmate's browser
    texts = [p.proto.text for p in other.sidebar.get("progress")]
    assert texts and all("(Ana \\*bold\\*)" in t for t in texts), texts
    first.button(key="stop").click().run()
