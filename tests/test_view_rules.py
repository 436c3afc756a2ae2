"""Rules the pages once decided themselves, each now one library function with its test: who may manage a run
(``server.users.can_manage``), the challenge's budget in one sentence (``orchestration.challenge.budget_allowance``),
and the order of the Class board (``server.classroom.board_order``)."""

from __future__ import annotations

import pytest

from babygpt.orchestration.runs import create_run
from babygpt.server.users import Actor, can_manage, check_can_manage
from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from tests.helpers import app, tiny_plan

ALICE, BOB, TOKEN = "alice-key-0123456789", "bob-key-0123456789ab", "a-teachers-token-0123456789"


# --- who may manage a run -------------------------------------------------------------------------

def test_a_run_is_managed_by_its_owner_or_the_teacher(small_text):
    store = RunStore()
    alices = create_run(store, tiny_plan(small_text), name="alice's", owner=ALICE, status=RunStatus.DONE)
    command_line = create_run(store, tiny_plan(small_text), name="from the shell", status=RunStatus.DONE)
    assert can_manage(Actor(ALICE), alices) and not can_manage(Actor(BOB), alices)
    assert can_manage(Actor(BOB, admin=True), alices)
    assert not can_manage(Actor(ALICE), command_line) and can_manage(Actor(None, admin=True), command_line)
    assert not can_manage(Actor(None), command_line), "nobody's key is not an owner"
    for actor, info in ((Actor(BOB), alices), (Actor(ALICE), command_line)):  # the check says no exactly then
        with pytest.raises(Exception, match="can stop it"):
            check_can_manage(actor, info, "stop")


@pytest.mark.parametrize("as_teacher", [False, True])
def test_the_training_page_offers_stop_by_the_same_rule(small_text, monkeypatch, fresh_resources, as_teacher):
    """A classmate's training run followed on Model & training: Stop is on for the teacher only."""
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", TOKEN)
    store = RunStore()
    bobs = create_run(store, tiny_plan(small_text), name="bob's", owner=BOB, status=RunStatus.RUNNING)
    at = app()
    if as_teacher:
        at.text_input(key="admin_token").input(TOKEN).run()
    at.session_state["active_run"] = bobs.id
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert at.button(key="stop").disabled is not as_teacher
