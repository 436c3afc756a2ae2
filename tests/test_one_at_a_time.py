""""One run per student at a time" and "one experiment point per student at a time" hold when two tabs (threads of
one server, sharing one Scheduler) or two server processes (two Schedulers on one store) click at the same moment:
a barrier lets both calls pass their checks together, and exactly one run or point results."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from babygpt.errors import BabyGPTError
from babygpt.server.laboratory import ALREADY_RUNNING, Laboratory
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.status import RunStatus
from babygpt.store.runs import OwnerBusy, RunStore
from babygpt.text.corpus import Corpus
from tests.helpers import tiny_plan

REPEATS = 4
TEACHER = Actor("teacher-key", admin=True)
TINY = dict(steps=20, batch_size=4, block_size=16, lr=3e-3, val_fraction=0.1, axis="parameters")
STUDENT_SENTENCE = r"You already have (run .* (queued|starting|running)|a run queued or training)"


def at_once(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Run the calls in threads released together by a barrier: what they returned, and what they raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[BaseException] = []

    def go(call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 - the test reads every error
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def active_single_runs(store: RunStore, user: str) -> list[str]:
    return [i.id for i in store.list_runs()
            if i.owner == user and not i.group_id and (i.status is RunStatus.QUEUED or i.status.training)]


def assert_one_won(results: list, errors: list[BaseException], sentence: str) -> None:
    assert len(results) == 1, f"exactly one start goes through, got {len(results)} ({errors})"
    assert len(errors) == 1 and isinstance(errors[0], BabyGPTError), errors
    assert re.search(sentence, str(errors[0])), str(errors[0])


@pytest.fixture
def busy_scheduler(small_text):
    """One slot, taken by a long run of somebody else's: the students' runs below queue and never start a worker."""
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    scheduler.submit("teacher-own-run", tiny_plan(small_text, max_iters=100_000, eval_interval=50))
    yield scheduler
    scheduler.stop_all(wait=20)


def test_two_tabs_that_click_start_at_once_get_one_run(busy_scheduler, small_text):
    plan = tiny_plan(small_text, max_iters=50)
    for i in range(REPEATS):
        user = f"student-{i}-key-0123456789"
        results, errors = at_once([partial(busy_scheduler.submit, user, plan, name="tab one"),
                                   partial(busy_scheduler.submit, user, plan, name="tab two")])
        assert_one_won(results, errors, STUDENT_SENTENCE)
        assert active_single_runs(busy_scheduler.store, user) == [results[0].id]


def test_two_server_processes_sharing_a_store_still_give_one_run(busy_scheduler, small_text):
    """Two Schedulers do not share a lock: the insert itself refuses the second run."""
    other = Scheduler(busy_scheduler.store, SchedulerSettings(max_jobs=1, cores=1))
    plan = tiny_plan(small_text, max_iters=50)
    for i in range(REPEATS):
        user = f"student-{i}-key-0123456789"
        results, errors = at_once([partial(busy_scheduler.submit, user, plan), partial(other.submit, user, plan)])
        assert_one_won(results, errors, STUDENT_SENTENCE)
        assert active_single_runs(busy_scheduler.store, user) == [results[0].id]


def test_the_store_refuses_a_second_active_run_in_the_insert(small_text):
    store = RunStore()
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    plan = tiny_plan(small_text, max_iters=50)
    first = scheduler._queue("ana-key-0123456789ab", plan, "first", None, only_active=True)
    with pytest.raises(OwnerBusy, match="You already have a run queued or training"):
        scheduler._queue("ana-key-0123456789ab", plan, "second", None, only_active=True)
    assert [i.id for i in store.list_runs()] == [first.id], "the refused run leaves no row"
    assert sorted(p.name for p in store.home.iterdir() if p.is_dir() and p.name[0].isdigit()) == [first.id], \
        "and no folder"
    scheduler.stop_all(wait=20)


def test_a_resume_in_one_tab_and_a_start_in_another_leave_one_run(busy_scheduler, small_text):
    user = "dana-key-0123456789a"
    plan = tiny_plan(small_text, max_iters=50)
    old = busy_scheduler.submit(user, plan, name="old")  # queued behind the slot
    busy_scheduler.store.set_status(old.id, RunStatus.STOPPED, "Stopped.")  # as if it had trained and stopped
    corpus = Corpus.from_text("tiny", small_text)
    results, errors = at_once([lambda: busy_scheduler.submit(user, plan, name="new"),
                               lambda: busy_scheduler.resume(Actor(user), old.id, corpus)])
    assert_one_won(results, errors, STUDENT_SENTENCE)
    assert len(active_single_runs(busy_scheduler.store, user)) == 1


@pytest.fixture
def open_lab(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    scheduler.submit("teacher-own-run", tiny_plan(small_text, max_iters=100_000, eval_interval=50))
    laboratory = Laboratory(scheduler)
    laboratory.start(TEACHER, Corpus.from_text("tiny", small_text), "char", ("gpt",),
                     [(1, 2, 16), (1, 2, 24), (1, 2, 32), (2, 2, 16)], [1, 2], **TINY)
    yield laboratory
    scheduler.stop_all(wait=20)


def points_of(lab: Laboratory, user: str) -> list[int]:
    return [p.index for p in lab.records.points(lab.records.open().id) if p.owner == user]


@pytest.mark.parametrize("processes", [1, 2], ids=["two tabs", "two server processes"])
def test_two_tabs_that_click_join_at_once_get_one_point(open_lab, processes):
    other = open_lab if processes == 1 else Laboratory(Scheduler(open_lab.store,
                                                                 SchedulerSettings(max_jobs=1, cores=1)))
    for i in range(REPEATS):
        user = f"student-{i}-key-0123456789"
        results, errors = at_once([partial(open_lab.join, user), partial(other.join, user)])
        assert_one_won(results, errors, STUDENT_SENTENCE)
        assert str(errors[0]) == ALREADY_RUNNING
        assert len(points_of(open_lab, user)) == 1, "one point each; the other is open again"
        assert sum(p.run_id is None for p in open_lab.records.points(open_lab.records.open().id)) == 8 - i - 1
        assert active_single_runs(open_lab.store, user) == [results[0].id]


def test_two_tabs_that_start_a_ladder_race_at_once_get_one_race(busy_scheduler, small_text):
    plans = [(tiny_plan(small_text, max_iters=50), "rung one"), (tiny_plan(small_text, max_iters=50), "rung two")]
    for i in range(REPEATS):
        user = f"racer-{i}-key-0123456789"
        results, errors = at_once([partial(busy_scheduler.submit_group, user, plans),
                                   partial(busy_scheduler.submit_group, user, plans)])
        assert_one_won(results, errors, "Your ladder race is still running")
        groups = {r.group_id for r in busy_scheduler.store.queued() if r.owner == user}
        assert groups == {results[0]}
