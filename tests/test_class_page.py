"""The Class page with AppTest: the board, names, the teacher's panel and a challenge entered from the training
page, with real workers behind them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.status import RunStatus
from tests.conftest import ROOT
from tests.helpers import wait_for

pytestmark = pytest.mark.usefixtures("fresh_resources")
TOKEN = "a-teacher-secret"
CLASS = "views/class_board.py"


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()


def html_of(at: AppTest) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


@pytest.fixture
def teacher(monkeypatch) -> AppTest:
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", TOKEN)
    at = app()
    at.text_input(key="admin_token").input(TOKEN).run()
    at.switch_page(CLASS).run()
    assert not at.exception
    return at


def small_training_form(at: AppTest, max_iters: int) -> None:
    at.switch_page("views/train.py").run()
    for name, value in dict(n_layer=1, n_embd=32, n_head=2, block_size=16, batch_size=4, eval_interval=10,
                            eval_iters=2, warmup_iters=2, max_iters=max_iters).items():
        widget = next(w for kind in ("slider", "select_slider", "number_input", "selectbox")
                      for w in at.get(kind) if getattr(w, "key", None) == f"hp_{name}")
        widget.set_value(value).run()


def test_a_student_sees_the_board_without_the_teachers_controls(monkeypatch):
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", TOKEN)
    at = app()
    at.switch_page(CLASS).run()
    assert not at.exception and at.title[0].value == "Class"
    assert not [e for e in at.expander if e.label == "Teacher" and e.proto.expanded], "no teacher panel"
    assert "stop_all" not in [b.key for b in at.button] and "set_challenge" not in [b.key for b in at.button]
    assert "No challenge yet" in " ".join(c.value for c in at.caption)
    at.text_input(key="board_handle").input("Ada").run()
    assert not at.exception
    from ui.state import classroom
    assert classroom().handle_of(at.session_state["user_key"]) == "Ada"
    at.text_input(key="board_handle").input("x" * 30).run()  # the browser caps it at 24; the server says why too
    assert classroom().handle_of(at.session_state["user_key"]) in {"Ada", "x" * 24}


def test_a_challenge_set_entered_ranked_and_ended_from_the_pages(teacher):
    at = teacher
    assert at.button(key="stop_all") is not None
    at.radio(key="budget_how").set_value("steps × batch × block").run()
    at.number_input(key="budget_steps").set_value(20)
    at.number_input(key="budget_batch").set_value(4)
    at.number_input(key="budget_block").set_value(16).run()
    at.button(key="set_challenge").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "budget 1,280 training tokens" in " ".join(m.value for m in at.markdown)

    small_training_form(at, max_iters=30)  # 30 × 4 × 16 tokens: over the budget
    at.toggle(key="challenge_entry").set_value(True).run()
    assert any("Over the challenge's budget" in e.value and "at most 20 steps" in e.value for e in at.error)
    assert at.button(key="start").disabled
    assert any(c.value == "The challenge's budget allows 20 steps with batch_size 4 and block_size 16."
               for c in at.caption)
    at.number_input(key="hp_max_iters").set_value(20).run()
    assert not at.button(key="start").disabled
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    from ui.state import store
    entry = wait_for(lambda: [i for i in store().list_runs() if i.challenge_id], 30, "the entry")[0]
    wait_for(lambda: store().get(entry.id).status is RunStatus.DONE, 120, "the entry to finish")
    at.switch_page(CLASS).run()
    board = html_of(at)
    assert "class-board" in board and "1</td>" in board and "gpt 1×32" in board
    assert "Seed-to-seed spread not measured yet" in " ".join(c.value for c in at.caption)
    at.button(key="end_challenge").click().run()
    assert not at.exception
    assert at.get("download_button"), "the frozen board can be exported"
    assert "**Ended**" in " ".join(m.value for m in at.markdown)
