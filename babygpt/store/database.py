"""The run store's database: where it lives, its schema, and one short-lived connection per operation.

Workers write while pages read, and several processes (the server, its workers, the command line) share the
database, so it uses WAL, a connection per operation (safe across threads and processes) and single-statement
state changes. Older databases are brought up to the current schema when opened.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from babygpt.errors import DISK_FULL_MESSAGE, BabyGPTError, DiskFull, full_disk_as_sentence, is_full_disk

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL,
    preset TEXT NOT NULL, config_json TEXT NOT NULL, data_name TEXT, data_sha256 TEXT,
    pid INTEGER, message TEXT, owner TEXT, queued_at REAL, group_id TEXT, threads INTEGER,
    metrics_version INTEGER NOT NULL DEFAULT 0, challenge_id TEXT, priority INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, split TEXT NOT NULL, loss REAL,
    lr REAL, tokens_per_sec REAL, elapsed_s REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS samples (run_id TEXT NOT NULL, step INTEGER NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (key TEXT PRIMARY KEY, state_json TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS attention (run_id TEXT NOT NULL, step INTEGER NOT NULL, tokens_json TEXT NOT NULL,
                                      shape_json TEXT NOT NULL, weights BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS attention_run ON attention(run_id, step);
CREATE TABLE IF NOT EXISTS head_scores (run_id TEXT NOT NULL, step INTEGER NOT NULL, scores_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS head_scores_run ON head_scores(run_id, step);
CREATE TABLE IF NOT EXISTS uploads (owner TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
                                    PRIMARY KEY (owner, sha256));
CREATE TABLE IF NOT EXISTS scores (run_id TEXT NOT NULL, step INTEGER NOT NULL, nats_per_token REAL NOT NULL,
                                   tokens INTEGER NOT NULL, measured_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS scores_run ON scores(run_id, step);
CREATE TABLE IF NOT EXISTS challenges (id TEXT PRIMARY KEY, created_at REAL NOT NULL, rules_json TEXT NOT NULL,
                                       ended_at REAL, board_json TEXT);
CREATE TABLE IF NOT EXISTS class_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS handles (key TEXT PRIMARY KEY, handle TEXT NOT NULL);
"""
# columns added since the first release, brought into older databases on open
ADDED_COLUMNS = {"owner": "TEXT", "queued_at": "REAL", "group_id": "TEXT", "threads": "INTEGER",
                 "metrics_version": "INTEGER NOT NULL DEFAULT 0", "challenge_id": "TEXT",
                 "priority": "INTEGER NOT NULL DEFAULT 0"}


def default_home() -> Path:
    """``BABYGPT_HOME``, else ``./runs``: the one place that default is written."""
    return Path(os.environ.get("BABYGPT_HOME") or "runs")


class Database:
    """``BABYGPT_HOME`` and its ``runs.db``; the other parts of the store build on ``_connect``."""

    def __init__(self, home: str | Path | None = None):
        self.home = Path(home) if home is not None else default_home()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            probe = self.home / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            if is_full_disk(exc):
                raise DiskFull(DISK_FULL_MESSAGE) from exc
            raise BabyGPTError(
                f"The run folder {self.home} cannot be written ({exc.strerror or exc}). "
                "Set BABYGPT_HOME to a writable folder with free space."
            ) from exc
        self.db_path = self.home / "runs.db"
        with self._connect() as db:
            self._create_schema(db)

    @staticmethod
    def _create_schema(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        if "owner_pid" in columns and "pid" not in columns:  # databases of the first release
            db.execute("ALTER TABLE runs RENAME COLUMN owner_pid TO pid")
        for name, kind in ADDED_COLUMNS.items():
            if name not in columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        db.execute("CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner, status)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection per operation: safe across threads and processes. A write to a full disk is
        ``DiskFull``'s sentence, not sqlite's "database or disk is full" on every page."""
        with full_disk_as_sentence(), _sqlite_full_as_sentence():
            if not self.db_path.exists():  # the store was removed under a running server: start it afresh
                self.home.mkdir(parents=True, exist_ok=True)
                with closing(sqlite3.connect(self.db_path, timeout=30)) as fresh:
                    self._create_schema(fresh)
            db = sqlite3.connect(self.db_path, timeout=30)
            db.row_factory = sqlite3.Row
            try:
                with db:
                    yield db
            finally:
                db.close()


@contextmanager
def _sqlite_full_as_sentence() -> Iterator[None]:
    """sqlite says SQLITE_FULL when a write finds no space (the database's file, its journal or its WAL)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
            raise DiskFull(DISK_FULL_MESSAGE) from exc
        raise
