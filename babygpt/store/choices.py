"""What the store keeps of each user apart from runs: their last choices, their uploaded texts, their disk use.

A reload brings a user's choices back; an uploaded text is kept once per sha256 and deleted when no user's
upload and no run refers to it any more, so switching texts frees the quota and the disk.
"""

from __future__ import annotations

import json
import time
from typing import Any

from babygpt.store.database import Database

UPLOADS_DIR = "uploads"  # uploaded texts, one file per sha256, shared by the users and runs that use it


class UserChoices(Database):
    def user_state(self, key: str) -> dict[str, Any]:
        """What a user last chose (corpus, tokenizer, hyperparameters, active run), so a reload brings it back."""
        with self._connect() as db:
            row = db.execute("SELECT state_json FROM users WHERE key=?", (key,)).fetchone()
        return json.loads(row["state_json"]) if row else {}

    def save_user_state(self, key: str, state: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO users(key, state_json, updated_at) VALUES (?,?,?) "
                       "ON CONFLICT(key) DO UPDATE SET state_json=excluded.state_json, updated_at=excluded.updated_at",
                       (key, json.dumps(state), time.time()))

    def record_upload(self, owner: str, sha256: str, n_bytes: int) -> None:
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO uploads(owner, sha256, bytes) VALUES (?,?,?)", (owner, sha256, n_bytes))

    def release_uploads(self, owner: str, keep: str) -> None:
        """Forget a user's uploads other than ``keep`` that none of their runs uses, and delete each text that
        nobody's upload, run or challenge refers to any more."""
        with self._connect() as db:
            stale = [r["sha256"] for r in db.execute(
                "SELECT sha256 FROM uploads WHERE owner=? AND sha256<>? AND sha256 NOT IN "
                "(SELECT data_sha256 FROM runs WHERE owner=? AND data_sha256 IS NOT NULL)", (owner, keep, owner))]
            for sha in stale:
                db.execute("DELETE FROM uploads WHERE owner=? AND sha256=?", (owner, sha))
                used = db.execute("SELECT 1 FROM uploads WHERE sha256=? UNION SELECT 1 FROM runs WHERE data_sha256=? "
                                  "UNION SELECT 1 FROM challenges WHERE rules_json LIKE ?",
                                  (sha, sha, f'%"corpus_sha256": "{sha}"%')).fetchone()
                if not used:
                    (self.home / UPLOADS_DIR / f"{sha}.txt").unlink(missing_ok=True)

    def has_upload(self, owner: str, sha256: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM uploads WHERE owner=? AND sha256=?", (owner, sha256)).fetchone() is not None

    def disk_usage(self, owner: str) -> int:
        """Bytes a user's runs (their folders) and uploaded texts take in the store."""
        with self._connect() as db:
            run_ids = [r["id"] for r in db.execute("SELECT id FROM runs WHERE owner=?", (owner,))]
            uploaded = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM uploads WHERE owner=?", (owner,)).fetchone()[0]
        folders = (self.home / i for i in run_ids)
        return uploaded + sum(f.stat().st_size for folder in folders if folder.is_dir() for f in folder.iterdir()
                              if f.is_file())
