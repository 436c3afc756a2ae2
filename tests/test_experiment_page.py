"""The Class page's experiment with AppTest and real workers: the teacher starts it, a student's browser joins, gets
a run handed out and sees it train; what students type (names) is shown as text; the law downloads."""

from __future__ import annotations

import pytest

from babygpt.server.laboratory import ALL_TAKEN
from babygpt.status import RunStatus
from tests.helpers import app, wait_for

pytestmark = pytest.mark.usefixtures("fresh_resources")
TOKEN = "a-teacher-secret"
CLASS = "views/class_board.py"
HOSTILE = "**Bo** <b>x</b>"


def html_of(at) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


def test_a_teacher_starts_an_experiment_and_a_students_browser_trains_a_run_of_it(monkeypatch):
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", TOKEN)
    teacher = app()
    teacher.text_input(key="admin_token").input(TOKEN).run()
    teacher.switch_page(CLASS).run()
    assert not teacher.exception
    assert "No experiment yet" in " ".join(c.value for c in teacher.caption)
    teacher.text_input(key="exp_sizes").input("1×2×16, 1×2×24, 1×2×32, 1×2×40").run()
    teacher.text_input(key="exp_seeds").input("1").run()
    teacher.number_input(key="exp_steps").set_value(30)
    teacher.number_input(key="exp_batch").set_value(4)
    teacher.number_input(key="exp_block").set_value(16).run()
    teacher.button(key="experiment_start").click().run()
    assert not teacher.exception and not teacher.error, [e.value for e in teacher.error]
    assert "4 waiting for a student" in " ".join(c.value for c in teacher.caption)

    student = app()  # another browser: no admin token
    student.switch_page(CLASS).run()
    assert "experiment_start" not in [b.key for b in student.button], "the teacher's controls are the teacher's"
    assert "experiment_queue_rest" not in [b.key for b in student.button]
    student.text_input(key="board_handle").input(HOSTILE).run()
    student.button(key="experiment_join").click().run()
    assert not student.exception and not student.error, [e.value for e in student.error]
    from ui.state import laboratory, store
    me = student.session_state["user_key"]
    run = wait_for(lambda: store().newest_active_run(me), 30, "the student's run")
    assert store().get(run).name == "experiment: gpt 1×16, 2 heads · seed 1"
    wait_for(lambda: laboratory().view(force=True).rows[0].step > 0 or
             store().get(run).status is RunStatus.DONE, 120, "the run to train")
    student.run()
    mine = [m.value for m in student.markdown if m.value.startswith("**Your run:**")]
    assert mine and "gpt 1×16, 2 heads · seed 1 —" in mine[0]
    assert ("step " in mine[0] and " / 30" in mine[0]) or "done, 30 steps" in mine[0], mine[0]
    board = html_of(student)
    assert "&lt;b&gt;x&lt;/b&gt; (you)" in board and "<b>x</b>" not in board, "a name is text, never markup"
    assert "experiment_join" not in [b.key for b in student.button], "one run at a time"

    wait_for(lambda: store().get(run).status is RunStatus.DONE, 120, "the run to finish")
    laboratory().view(force=True)  # the board is cached for a second: read it after the run ended, however fast
    student.run()
    assert any("from 4 finished runs of 3 sizes or more; so far 1 finished run of 1 size." in c.value
               for c in student.caption), ("the fit says how many points it rests on", [c.value for c in student.caption])
    downloads = {d.proto.label for d in student.get("download_button")}
    assert {"Download the experiment (CSV)", "Download the law (picture, SVG)"} <= downloads

    teacher.run()
    teacher.button(key="experiment_test").click().run()
    assert any(e.value.startswith("No law to test yet: A law is fitted from 4 finished runs of 3 sizes")
               for e in teacher.error), [e.value for e in teacher.error]
    teacher.button(key="experiment_queue_rest").click().run()
    assert not teacher.exception and not teacher.error, [e.value for e in teacher.error]
    queued = [p for p in laboratory().records.points(laboratory().latest().id) if p.index > 0]
    assert all(p.run_id and p.owner is None for p in queued), "the three runs nobody took, on the server"
    laboratory().view(force=True)
    student.run()
    assert "experiment_join" not in [b.key for b in student.button], "nothing left to join: no button that fails"
    assert ALL_TAKEN in [c.value for c in student.caption], "said at once, not after a press"
    teacher.button(key="experiment_end").click().run()
    assert not teacher.exception
    assert any("**Ended**" in m.value for m in teacher.markdown)
    assert teacher.expander and any(e.label == "Start an experiment" for e in teacher.expander)
