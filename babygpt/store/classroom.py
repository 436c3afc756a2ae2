"""What the store keeps of a class apart from its runs: when this lesson began, the names students show on the
board, and the teacher's challenges (their rules, when they ended, and the board frozen at the end).

Persistence only: what a challenge's rules mean and how its board ranks live in ``orchestration.challenge`` and
``lessons.leaderboard``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from babygpt.errors import BabyGPTError
from babygpt.status import ACTIVE
from babygpt.store.database import Database
from babygpt.store.records import RunInfo, run_info

LESSON_START = "lesson_start"
# A run's config without its BPE merges, and the merges apart (both only where the config is JSON and the merges a
# list; otherwise the config whole, as stored): SQLite's CASE evaluates only the branch it takes.
_LIGHT_CONFIG = ("CASE WHEN json_valid(config_json) THEN (CASE WHEN json_type(config_json, '$.tokenizer.merges') "
                 "= 'array' THEN json_remove(config_json, '$.tokenizer.merges') ELSE config_json END) "
                 "ELSE config_json END")
_MERGES = ("CASE WHEN json_valid(config_json) THEN (CASE WHEN json_type(config_json, '$.tokenizer.merges') = "
           "'array' THEN json_extract(config_json, '$.tokenizer.merges') END) END")


@lru_cache(maxsize=16)
def _parsed_merges(text: str) -> list[Any]:
    """A BPE's merges as JSON text, parsed once for every run that stores the same ones."""
    return json.loads(text)


@dataclass(frozen=True)
class ChallengeRecord:
    id: str
    created_at: float
    rules: dict[str, Any]
    ended_at: float | None = None
    board: dict[str, Any] | None = None  # the board as it stood when the challenge ended


def _record(row) -> ChallengeRecord:
    return ChallengeRecord(row["id"], row["created_at"], json.loads(row["rules_json"]), row["ended_at"],
                           json.loads(row["board_json"]) if row["board_json"] else None)


class ClassRecords(Database):
    # -- the lesson -----------------------------------------------------------------------------
    def lesson_start(self) -> float | None:
        """When the teacher said this lesson began (None: not set, the board shows today's runs)."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM class_settings WHERE name=?", (LESSON_START,)).fetchone()
        return float(row["value"]) if row else None

    def set_lesson_start(self, when: float) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO class_settings(name, value) VALUES (?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET value=excluded.value", (LESSON_START, repr(float(when))))

    def runs_since(self, since: float) -> list[RunInfo]:
        """Every run created since ``since`` or still queued or training, oldest first (the board's rows)."""
        marks = ",".join("?" * len(ACTIVE))
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM runs WHERE created_at>=? OR status IN ({marks}) ORDER BY created_at, rowid",
                              (since, *[s.value for s in ACTIVE])).fetchall()
        return [run_info(r) for r in rows]

    def runs_for_challenge(self, challenge_id: str) -> list[RunInfo]:
        """A challenge's entries and the teacher's checks of them, oldest first.

        The board reads them once a second, and a BPE's merges are most of a config (150 kB of JSON at 8,192
        tokens): SQLite hands each config over without them and the merges apart, and merges stored alike (every
        entry of a BPE challenge holds the challenge's) are parsed once for all. So the lists of merges are shared
        between the runs and the calls that return them: read them, never change them."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {_LIGHT_CONFIG} AS config_json, {_MERGES} AS merges_json, * FROM runs "
                              "WHERE challenge_id=? ORDER BY created_at, rowid", (challenge_id,)).fetchall()
        runs = []
        for row in rows:
            info = run_info(row)
            if row["merges_json"] is not None:
                info.config["tokenizer"]["merges"] = _parsed_merges(row["merges_json"])
            runs.append(info)
        return runs

    def challenge_owners(self, challenge_id: str) -> list[str | None]:
        """Whose a challenge's runs are, without reading their configs: a run with an 8,192-token BPE keeps 150 kB
        of merges there, and the board names the owners every second."""
        with self._connect() as db:
            rows = db.execute("SELECT owner FROM runs WHERE challenge_id=?", (challenge_id,)).fetchall()
        return [r["owner"] for r in rows]

    # -- names on the board ---------------------------------------------------------------------
    def set_handle(self, key: str, handle: str) -> None:
        with self._connect() as db:
            if handle:
                db.execute("INSERT INTO handles(key, handle) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET handle=excluded.handle", (key, handle))
            else:
                db.execute("DELETE FROM handles WHERE key=?", (key,))

    def handles(self, keys: list[str] | None = None) -> dict[str, str]:
        """The names users chose for the board, by user key (all of them when ``keys`` is None)."""
        with self._connect() as db:
            if keys is None:
                rows = db.execute("SELECT key, handle FROM handles").fetchall()
            elif not keys:
                return {}
            else:
                rows = db.execute(f"SELECT key, handle FROM handles WHERE key IN ({','.join('?' * len(keys))})",
                                  keys).fetchall()
        return {r["key"]: r["handle"] for r in rows}

    # -- challenges -----------------------------------------------------------------------------
    def create_challenge(self, rules: dict[str, Any]) -> ChallengeRecord:
        """Record a new challenge; one is open at a time, so an open one must end first."""
        if self.open_challenge() is not None:
            raise BabyGPTError("A challenge is already open: end it before setting another.")
        record = ChallengeRecord(secrets.token_hex(4), time.time(), rules)
        with self._connect() as db:
            db.execute("INSERT INTO challenges(id, created_at, rules_json) VALUES (?,?,?)",
                       (record.id, record.created_at, json.dumps(rules)))
        return record

    def challenge(self, challenge_id: str) -> ChallengeRecord:
        with self._connect() as db:
            row = db.execute("SELECT * FROM challenges WHERE id=?", (challenge_id,)).fetchone()
        if row is None:
            raise BabyGPTError(f"No challenge {challenge_id!r} on this server.")
        return _record(row)

    def latest_challenge(self) -> ChallengeRecord | None:
        """The newest challenge, open or ended (what the Class page shows)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM challenges ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return _record(row) if row else None

    def previous_challenge(self) -> ChallengeRecord | None:
        """The challenge before the newest one (ended: one is open at a time), so its frozen board stays on the
        Class page to download after the teacher sets the next one."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM challenges WHERE board_json IS NOT NULL AND rowid != (SELECT rowid FROM "
                             "challenges ORDER BY created_at DESC, rowid DESC LIMIT 1) "
                             "ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return _record(row) if row else None

    def open_challenge(self) -> ChallengeRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM challenges WHERE ended_at IS NULL ORDER BY created_at DESC LIMIT 1"
                             ).fetchone()
        return _record(row) if row else None

    def end_challenge(self, challenge_id: str, ended_at: float, board: dict[str, Any]) -> bool:
        """Freeze a challenge with its final board; only the first call wins (two teachers' tabs, or the end time
        reached while the teacher presses End), so a frozen board never changes."""
        with self._connect() as db:
            cursor = db.execute("UPDATE challenges SET ended_at=?, board_json=? WHERE id=? AND ended_at IS NULL",
                                (ended_at, json.dumps(board), challenge_id))
            return cursor.rowcount == 1
