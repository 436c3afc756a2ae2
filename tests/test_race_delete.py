"""Deleting a race is one operation (``Scheduler.delete_race`` over ``RunStore.delete_all``): every run goes, or
none does; a failure midway leaves the whole race, folders, rows and curves, as it was."""

from __future__ import annotations

import os
import sqlite3

import pytest

from babygpt.errors import BabyGPTError
from babygpt.orchestration.runs import create_run
from babygpt.server.scheduler import RACE_GONE, Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor, public_handle
from babygpt.status import RunStatus
from babygpt.store import runs as store_runs
from babygpt.store.runs import TRASH_PREFIX, MetricRow, RunStore
from tests.helpers import tiny_plan

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789ab"


def race(store: RunStore, small_text: str, owner: str = ALICE, statuses=(RunStatus.DONE,) * 3,
         group_id: str = "race-1") -> list[str]:
    """Three recorded runs of one race, each with a folder and a validation curve."""
    plan = tiny_plan(small_text)
    ids = []
    for seed, status in enumerate(statuses):
        info = create_run(store, plan, name=f"ladder race: gpt · seed {seed}", owner=owner, status=status,
                          group_id=group_id)
        store.log_metrics(info.id, [MetricRow(10, "val", 2.0 - seed / 10, None, None, 1.0)])
        ids.append(info.id)
    return ids


def whole(store: RunStore, ids: list[str]) -> bool:
    """Every run of the race still there: its row, its folder, its curve; and no folder left aside."""
    return (all(store.exists(i) and store.run_dir(i).is_dir() and store.metrics(i) for i in ids)
            and not any(p.name.startswith(TRASH_PREFIX) for p in store.home.iterdir()))


def test_a_race_is_deleted_whole(small_text):
    store = RunStore()
    ids = race(store, small_text)
    store.delete_all(ids)
    assert not any(store.exists(i) or store.run_dir(i).exists() or store.metrics(i) for i in ids)
    assert not any(p.name.startswith(TRASH_PREFIX) for p in store.home.iterdir())


def test_a_folder_that_cannot_move_midway_leaves_the_race_whole(small_text, monkeypatch):
    store = RunStore()
    ids = race(store, small_text)
    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise PermissionError("the second folder is held by another program")
        real(src, dst)
    monkeypatch.setattr(store_runs.os, "replace", second_fails)
    with pytest.raises(PermissionError):
        store.delete_all(ids)
    monkeypatch.setattr(store_runs.os, "replace", real)
    assert whole(store, ids), "the first run's folder was put back and no row went"


def test_a_database_failure_midway_leaves_the_race_whole(small_text, monkeypatch):
    store = RunStore()
    ids = race(store, small_text)
    # the first run's rows are deleted inside the transaction, then a table that is not there stops it
    monkeypatch.setattr(store_runs, "LOGGED_TABLES", ("metrics", "no_such_table"))
    with pytest.raises(sqlite3.OperationalError):
        store.delete_all(ids)
    assert whole(store, ids), "the transaction rolled back and every folder came back"


def test_a_run_that_refuses_keeps_the_whole_race_and_is_named(small_text):
    store = RunStore()
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    ids = race(store, small_text, statuses=(RunStatus.DONE, RunStatus.STOPPED, RunStatus.RUNNING))
    with pytest.raises(BabyGPTError, match=r"^Run .*seed 2.* is running; stop it before deleting it\.$"):
        scheduler.delete_race(Actor(ALICE), "race-1")
    assert whole(store, ids), "checked before anything went: the two finished runs are still there"
    with pytest.raises(BabyGPTError, match="only its owner, or the teacher"):
        scheduler.delete_race(Actor(BOB), "race-1")
    assert whole(store, ids)
    store.set_status(ids[2], RunStatus.STOPPED)
    assert scheduler.delete_race(Actor(ALICE), "race-1") == 3
    assert not any(store.exists(i) for i in ids)
    with pytest.raises(BabyGPTError) as gone:
        scheduler.delete_race(Actor(ALICE), "race-1")
    assert str(gone.value) == RACE_GONE


def test_the_teacher_deletes_a_students_race(small_text):
    store = RunStore()
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    ids = race(store, small_text)
    assert scheduler.delete_race(Actor(BOB, admin=True), "race-1") == 3
    assert not any(store.exists(i) for i in ids)


def test_the_runs_page_deletes_a_race_whole_or_says_why_not(small_text, fresh_resources):
    from tests.helpers import app
    from ui.state import USER

    store = RunStore()
    at = app()
    mine = race(store, small_text, owner=at.session_state[USER])
    # a race with a classmate's run in it: refused at that run, and the viewer's own run must not go alone
    mixed = race(store, small_text, owner=BOB, statuses=(RunStatus.DONE,), group_id="race-2")
    mixed += race(store, small_text, owner=at.session_state[USER], statuses=(RunStatus.DONE,), group_id="race-2")
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()
    at.button(key="race_delete_race-2").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"Run {store.get(mixed[0]).label} belongs to {public_handle(BOB)}: only "
                                           "its owner, or the teacher with the admin token, can delete it."]
    assert whole(store, mixed), "no run of the race went"
    at.button(key="race_delete_race-1").click().run()
    assert not at.exception and not at.error
    assert not any(store.exists(i) for i in mine) and whole(store, mixed)
