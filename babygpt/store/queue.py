"""The queue of runs waiting for a slot, and the claims that move a run to a worker.

State changes are single statements (``claim`` moves a run from queued to starting only if nobody else did), so
two processes sharing the store never start a run twice.
"""

from __future__ import annotations

import os
import time

from babygpt.status import STORED_TRAINING, RunStatus
from babygpt.store.database import Database
from babygpt.store.records import RunInfo, orphaned, run_info

_TRAINING_SQL = ", ".join(f"'{s}'" for s in STORED_TRAINING)
# a user's single run (not one of a race) that is queued or training: one at a time per user
ACTIVE_SINGLE_RUN_SQL = (f"SELECT id FROM runs WHERE owner=? AND group_id IS NULL AND status IN "
                         f"('{RunStatus.QUEUED.value}', {_TRAINING_SQL})")


class RunQueue(Database):
    def enqueue(self, run_id: str) -> None:
        """Put a run at the end of the queue (a new run, or one to resume)."""
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, message=NULL, queued_at=?, pid=? WHERE id=?",
                       (RunStatus.QUEUED.value, time.time(), os.getpid(), run_id))

    def queued(self) -> list[RunInfo]:
        """The queue in the order it drains: by priority (a teacher's low-priority checks last), then oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status=? ORDER BY priority DESC, queued_at, rowid",
                              (RunStatus.QUEUED.value,)).fetchall()
        return [run_info(r) for r in rows]

    def claim(self, run_id: str, threads: int) -> bool:
        """Move a queued run to 'starting' unless another process got there first: a run starts once."""
        with self._connect() as db:
            cursor = db.execute("UPDATE runs SET status=?, pid=?, threads=? WHERE id=? AND status=?",
                                (RunStatus.STARTING.value, os.getpid(), threads, run_id, RunStatus.QUEUED.value))
            return cursor.rowcount == 1

    def set_pid(self, run_id: str, pid: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET pid=? WHERE id=?", (pid, run_id))

    def set_threads(self, run_id: str, threads: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET threads=? WHERE id=?", (threads, run_id))

    def newest_active_run(self, owner: str) -> str | None:
        """The id of the owner's newest single run that is queued or training (a page asks every second, so
        this reads one indexed row, not every run's configuration)."""
        with self._connect() as db:
            row = db.execute(f"{ACTIVE_SINGLE_RUN_SQL} ORDER BY created_at DESC LIMIT 1", (owner,)).fetchone()
        return row["id"] if row else None

    def orphans(self) -> list[str]:
        """Runs recorded as training by a process that no longer exists (a worker, or the server that streamed a
        cluster job's progress), oldest first: a restarted server adopts those whose job still trains."""
        with self._connect() as db:
            rows = db.execute(f"SELECT id, status, pid FROM runs WHERE status IN ({_TRAINING_SQL}) "
                              "ORDER BY queued_at, created_at").fetchall()
        return [row["id"] for row in rows if orphaned(row["status"], row["pid"])]

    def live(self) -> list[RunInfo]:
        """Runs a worker is training (or starting to), in the order they were queued; orphans are left out."""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM runs WHERE status IN ({_TRAINING_SQL}) "
                              "ORDER BY queued_at, created_at").fetchall()
        return [info for info in map(run_info, rows) if info.status.training]
