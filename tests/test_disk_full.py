"""A full disk is a sentence, not a traceback: in the store (sqlite's "database or disk is full", the system's
ENOSPC) and on every page, which all save the user's choices as they go."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.errors import DISK_FULL_MESSAGE, DiskFull
from babygpt.store.runs import RunStore
from tests.conftest import ROOT
from tests.helpers import tiny_plan
from tests.import_support import assert_sentence

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
PAGES = ["views/data.py", "views/train.py", "views/attention.py", "views/inside.py", "views/features.py", "views/generate.py",
         "views/runs.py", "views/lessons.py", "views/class_board.py"]


class FullDisk(sqlite3.Connection):
    """A connection on a full disk: every write fails as sqlite fails it there (SQLITE_FULL), reads still work."""

    def execute(self, sql, *args):
        if sql.lstrip().upper().startswith(WRITES):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)

    def executemany(self, sql, *args):
        raise sqlite3.OperationalError("database or disk is full")


@pytest.fixture
def full_disk(monkeypatch):
    """The store exists (made while there was room); from now on the disk is full."""
    store = RunStore()
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, **{**k, "factory": FullDisk}))
    return store


def test_the_store_says_the_disk_is_full(full_disk, small_text, tmp_path):
    with pytest.raises(DiskFull) as caught:
        full_disk.save_user_state("alice", {"corpus": "x"})
    assert assert_sentence(caught.value, tmp_path) == DISK_FULL_MESSAGE
    from babygpt.orchestration.runs import create_run

    with pytest.raises(DiskFull):
        create_run(full_disk, tiny_plan(small_text), name="no room")
    assert full_disk.list_runs() == [], "reads still work"


def test_a_store_that_cannot_write_its_first_file_says_the_disk_is_full(tmp_path, monkeypatch):
    from pathlib import Path

    def no_room(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", no_room)
    with pytest.raises(DiskFull) as caught:
        RunStore(tmp_path / "new-home")
    assert_sentence(caught.value, tmp_path)


@pytest.mark.usefixtures("fresh_resources")
def test_every_page_says_the_disk_is_full_instead_of_a_traceback(full_disk):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        said = [e.value for e in at.error]
        assert DISK_FULL_MESSAGE in said, (page, said)
