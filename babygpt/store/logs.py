"""What a training run logs as it goes: metric rows, generated samples, the probe prompt's attention, the
scores of every head by type (how the heads formed), and a challenge entry's held-out score.

Live pages read only the rows that are new since their last look (``metrics_since``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from babygpt.errors import BabyGPTError
from babygpt.store.database import Database
from babygpt.store.records import MetricRow


@dataclass(frozen=True)
class HeldOutScore:
    """A challenge entry's loss on the challenge's held-out tokens, measured once when it stopped training."""

    run_id: str
    step: int
    nats_per_token: float
    tokens: int
    measured_at: float  # wall-clock time, so a board frozen at a challenge's end leaves out later scores

LOGGED_TABLES = ("metrics", "samples", "attention", "head_scores", "scores")  # what a run logs by step


class RunLogs(Database):
    def log_metrics(self, run_id: str, rows: list[MetricRow]) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT INTO metrics(run_id, step, split, loss, lr, tokens_per_sec, elapsed_s) VALUES (?,?,?,?,?,?,?)",
                [(run_id, r.step, r.split, r.loss, r.lr, r.tokens_per_sec, r.elapsed_s) for r in rows],
            )

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop what was logged after a checkpoint, before resuming from it (it will be logged again)."""
        with self._connect() as db:
            for table in LOGGED_TABLES:
                db.execute(f"DELETE FROM {table} WHERE run_id=? AND step>?", (run_id, after_step))
            db.execute("UPDATE runs SET metrics_version=metrics_version+1 WHERE id=?", (run_id,))

    def metrics(self, run_id: str) -> list[MetricRow]:
        return self.metrics_since(run_id, 0)[0]

    def metrics_since(self, run_id: str, after_rowid: int) -> tuple[list[MetricRow], int]:
        """Rows logged after ``after_rowid`` and the rowid to continue from: live views read only what is new."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT rowid, step, split, loss, lr, tokens_per_sec, elapsed_s FROM metrics "
                "WHERE run_id=? AND rowid>? ORDER BY rowid", (run_id, after_rowid)).fetchall()
        last = rows[-1]["rowid"] if rows else after_rowid
        return [MetricRow(r["step"], r["split"], r["loss"], r["lr"], r["tokens_per_sec"], r["elapsed_s"])
                for r in rows], last

    def log_sample(self, run_id: str, step: int, text: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO samples(run_id, step, text) VALUES (?,?,?)", (run_id, step, text))

    def samples(self, run_id: str) -> list[tuple[int, str]]:
        with self._connect() as db:
            rows = db.execute("SELECT step, text FROM samples WHERE run_id=? ORDER BY step, rowid", (run_id,))
            return [(r["step"], r["text"]) for r in rows.fetchall()]

    def log_attention(self, run_id: str, step: int, tokens: list[str], weights: np.ndarray) -> None:
        """The probe prompt's attention weights at one evaluation, (n_layer, n_head, T, T) in float16."""
        data = np.ascontiguousarray(weights, dtype=np.float16)
        with self._connect() as db:
            db.execute("INSERT INTO attention(run_id, step, tokens_json, shape_json, weights) VALUES (?,?,?,?,?)",
                       (run_id, step, json.dumps(tokens), json.dumps(list(data.shape)), data.tobytes()))

    def attention_steps(self, run_id: str) -> list[int]:
        with self._connect() as db:
            return [r["step"] for r in db.execute("SELECT step FROM attention WHERE run_id=? ORDER BY step", (run_id,))]

    def attention_at(self, run_id: str, step: int) -> tuple[list[str], np.ndarray]:
        with self._connect() as db:
            row = db.execute("SELECT * FROM attention WHERE run_id=? AND step=? ORDER BY rowid DESC LIMIT 1",
                             (run_id, step)).fetchone()
        if row is None:
            raise BabyGPTError(f"Run {run_id} has no attention snapshot at step {step}.")
        shape = tuple(json.loads(row["shape_json"]))
        return json.loads(row["tokens_json"]), np.frombuffer(row["weights"], dtype=np.float16).reshape(shape)

    def log_head_scores(self, run_id: str, step: int, scores: dict[str, list[list[float]]]) -> None:
        """Each head's score by type at one evaluation: type -> (n_layer, n_head) as nested lists."""
        with self._connect() as db:
            db.execute("INSERT INTO head_scores(run_id, step, scores_json) VALUES (?,?,?)",
                       (run_id, step, json.dumps(scores)))

    def head_score_history(self, run_id: str) -> list[tuple[int, dict[str, list[list[float]]]]]:
        """(step, scores) at every evaluation that recorded them, in step order."""
        with self._connect() as db:
            rows = db.execute("SELECT step, scores_json FROM head_scores WHERE run_id=? ORDER BY step, rowid",
                              (run_id,)).fetchall()
        return [(r["step"], json.loads(r["scores_json"])) for r in rows]

    def _for_runs(self, sql: str, run_ids: list[str]) -> list:
        """``sql`` with ``{runs}`` standing for the list of ``run_ids``: one query for a board of thirty runs."""
        if not run_ids:
            return []
        with self._connect() as db:
            return db.execute(sql.format(runs=",".join("?" * len(run_ids))), run_ids).fetchall()

    def last_samples(self, run_ids: list[str]) -> dict[str, tuple[int, str]]:
        """Each run's latest sample (step, text)."""
        rows = self._for_runs("SELECT run_id, step, text FROM samples WHERE rowid IN (SELECT MAX(rowid) FROM samples "
                              "WHERE run_id IN ({runs}) GROUP BY run_id)", run_ids)
        return {r["run_id"]: (r["step"], r["text"]) for r in rows}

    def steps_trained(self, run_ids: list[str]) -> dict[str, int]:
        """Each run's last logged training step."""
        rows = self._for_runs("SELECT run_id, MAX(step) AS step FROM metrics WHERE split='train' AND run_id IN "
                              "({runs}) GROUP BY run_id", run_ids)
        return {r["run_id"]: r["step"] for r in rows}

    def log_score(self, run_id: str, step: int, nats_per_token: float, tokens: int,
                  measured_at: float | None = None) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO scores(run_id, step, nats_per_token, tokens, measured_at) VALUES (?,?,?,?,?)",
                       (run_id, step, nats_per_token, tokens, time.time() if measured_at is None else measured_at))

    def scores(self, run_ids: list[str]) -> list[HeldOutScore]:
        """Every held-out score of these runs, oldest first."""
        rows = self._for_runs("SELECT * FROM scores WHERE run_id IN ({runs}) ORDER BY measured_at, rowid", run_ids)
        return [HeldOutScore(r["run_id"], r["step"], r["nats_per_token"], r["tokens"], r["measured_at"]) for r in rows]
