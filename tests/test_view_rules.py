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


# --- the challenge's budget: one check, one sentence ----------------------------------------------

def test_the_budget_is_said_in_one_phrase_by_the_page_and_every_refusal(small_text):
    import dataclasses

    from babygpt.config import tokens_per_step
    from babygpt.orchestration.challenge import budget_allowance, budget_caption, entry_problems, set_rules
    from babygpt.text.corpus import Corpus

    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, val_fraction=0.1)
    per_step = tokens_per_step(plan.model_config, plan.train_config)
    rules = set_rules(Corpus.from_text("tiny", small_text), "char", 0.1, per_step * 20)
    allowance = budget_allowance(rules, plan.model_config, plan.train_config)
    assert allowance == "budget allows 20 steps with batch_size 8 and block_size 16"
    assert budget_caption(rules, plan.model_config, plan.train_config) == f"The challenge's {allowance}."

    def problems(steps: int) -> list[str]:
        train = dataclasses.replace(plan.train_config, max_iters=steps)
        return entry_problems(rules, plan.model_config, train, plan.tokenizer.vocab_size)
    assert problems(20) == []
    under, over = problems(15), problems(21)
    assert under == [f"it would train 15 steps, but the {allowance}: an entry trains the whole budget "
                     "(set max_iters to 20)"]
    assert over == [f"21 steps × {per_step:,} tokens per step would train {21 * per_step:,} tokens, over the budget "
                    f"of {per_step * 20:,}: the {allowance}"]


# --- the Class board's order ------------------------------------------------------------------------

def test_the_board_lists_training_then_the_queue_then_the_newest_finished():
    from babygpt.server.classroom import BoardRow, board_order

    def row(run_id: str, status: RunStatus, queue_position: int | None = None) -> BoardRow:
        return BoardRow(run_id, "ann", run_id, "gpt", "1×32", status, 0, 10, None, 0.0, None, "local", "", ALICE,
                        queue_position=queue_position)
    oldest_first = [row("done-1", RunStatus.DONE), row("training-1", RunStatus.RUNNING),
                    row("queued-2", RunStatus.QUEUED, 2), row("stopped-2", RunStatus.STOPPED),
                    row("queued-1", RunStatus.QUEUED, 1), row("training-2", RunStatus.RUNNING),
                    row("failed-3", RunStatus.FAILED)]
    assert [r.run_id for r in board_order(oldest_first)] == [
        "training-2", "training-1", "queued-1", "queued-2", "failed-3", "stopped-2", "done-1"]
