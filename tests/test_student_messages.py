"""What a student reads about their runs is a sentence about what happened: never a server path, never advice for
the server's command line. The scheduler's side (AppTest and Chromium: tests/test_app.py, tests/test_queue_browser.py)."""

from __future__ import annotations

import pytest

from babygpt.errors import BabyGPTError
from babygpt.orchestration.runs import start_run
from babygpt.server.classroom import Classroom
from babygpt.server.scheduler import CLEARED_BEFORE_RESUME, CLEARED_BEFORE_START, RUN_GONE, Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from tests.helpers import tiny_plan, wait_for

TEACHER = Actor("teacher-key-0000000000", admin=True)
ALICE, BOB = Actor("alice-key-00000000000"), Actor("bob-key-000000000000a")
SERVER_WORDS = ("python -m", "babygpt runs", "BABYGPT_", "/")  # a path, a command, a server setting


def says_nothing_of_the_server(message: str) -> bool:
    return not any(word in message for word in SERVER_WORDS)


def test_a_run_the_teacher_cleared_from_the_queue_is_told_in_a_sentence(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    classroom = Classroom(scheduler)
    try:
        scheduler.submit(ALICE.user, tiny_plan(small_text, max_iters=100_000, eval_interval=50))
        waiting = scheduler.submit(BOB.user, tiny_plan(small_text, max_iters=100))
        assert scheduler.store.get(waiting.id).status is RunStatus.QUEUED
        assert scheduler.notice_for(BOB.user) is None
        assert classroom.clear_queue(TEACHER) == 1
        for action in (lambda: scheduler.stop(BOB, waiting.id),  # the Cancel button the page still showed
                       lambda: scheduler.snapshot(waiting.id), lambda: scheduler.delete(BOB, waiting.id)):
            with pytest.raises(BabyGPTError) as refused:
                action()
            assert str(refused.value) == CLEARED_BEFORE_START == "The teacher cleared the queue; this run was not started."
        notice = scheduler.notice_for(BOB.user)
        assert notice == f"The teacher cleared the queue; your run {waiting.label} was not started."
        assert scheduler.notice_for(ALICE.user) is None, "only the owner of the cleared run is told"
        again = scheduler.submit(BOB.user, tiny_plan(small_text, max_iters=100))
        assert scheduler.notice_for(BOB.user) is None, "starting again ends the notice"
        scheduler.stop(BOB, again.id)  # the owner's own Cancel: no notice about the teacher
        assert scheduler.notice_for(BOB.user) is None
        with pytest.raises(BabyGPTError) as gone:
            scheduler.stop(BOB, again.id)
        assert str(gone.value) == RUN_GONE and says_nothing_of_the_server(str(gone.value))
    finally:
        scheduler.stop_all(wait=30)


def test_a_resume_the_teacher_cleared_keeps_its_checkpoint_and_says_so(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    classroom = Classroom(scheduler)
    try:
        run = scheduler.submit(BOB.user, tiny_plan(small_text, max_iters=10, eval_interval=5))
        wait_for(lambda: scheduler.store.get(run.id).status is RunStatus.DONE, 120, "Bob's short run")
        alice = scheduler.submit(ALICE.user, tiny_plan(small_text, max_iters=100_000, eval_interval=50))
        wait_for(lambda: scheduler.store.get(alice.id).status is not RunStatus.QUEUED, 60, "Alice's run to take the slot")
        scheduler.resume(BOB, run.id, tiny_plan(small_text).corpus, max_iters=20)
        assert scheduler.store.get(run.id).status is RunStatus.QUEUED
        assert classroom.clear_queue(TEACHER) == 1
        info = scheduler.store.get(run.id)
        assert info.status is RunStatus.STOPPED and info.message == CLEARED_BEFORE_RESUME
        assert scheduler.store.has_checkpoint(run.id)
        assert "was not resumed (its last checkpoint is kept)" in scheduler.notice_for(BOB.user)
    finally:
        scheduler.stop_all(wait=30)


def test_a_run_that_is_gone_or_from_the_command_line_is_refused_without_server_words(small_text):
    store = RunStore()
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    for action in (lambda: scheduler.stop(ALICE, "20261206-000000-gpt-dead"),
                   lambda: scheduler.resume(ALICE, "20261206-000000-gpt-dead", tiny_plan(small_text).corpus),
                   lambda: scheduler.delete(ALICE, "20261206-000000-gpt-dead")):
        with pytest.raises(BabyGPTError) as refused:
            action()
        assert str(refused.value) == RUN_GONE
    with pytest.raises(BabyGPTError, match="No run named") as for_the_shell:  # the command line keeps its advice
        store.get("20261206-000000-gpt-dead")
    assert "python -m babygpt runs list" in str(for_the_shell.value)
    trainer, cli_run = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    trainer.run()
    with pytest.raises(BabyGPTError, match="trained from the command line") as refused:
        scheduler.delete(ALICE, cli_run.id)
    assert says_nothing_of_the_server(str(refused.value)), str(refused.value)


def test_a_page_that_loads_a_gone_run_says_so_in_a_sentence(fresh_resources):
    from ui import run_cache

    with pytest.raises(BabyGPTError) as refused:
        run_cache.load_run("20261206-000000-gpt-dead")
    assert str(refused.value) == RUN_GONE
