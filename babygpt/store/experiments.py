"""What the store keeps of a class experiment: its settings, and each of its points (one run to train: a rung, a
size and a seed) with the run that trains it now, whose it is, how many runs it has taken, and for the model the
law is tested on, the prediction made before it trained.

Persistence only: what an experiment plans, hands out and re-queues is ``orchestration.experiment``'s; the law is
``lessons.scaling_law``'s. The tables live in the run store's database and are created here when first used, so
this module needs nothing from the run store but its connection.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from babygpt.errors import BabyGPTError
from babygpt.store.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (id TEXT PRIMARY KEY, created_at REAL NOT NULL, spec_json TEXT NOT NULL,
                                        on_server INTEGER NOT NULL DEFAULT 0, ended_at REAL);
CREATE TABLE IF NOT EXISTS experiment_points (
    experiment_id TEXT NOT NULL, idx INTEGER NOT NULL, settings_json TEXT NOT NULL, run_id TEXT, owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, given_up TEXT, prediction_json TEXT, lost_json TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (experiment_id, idx));
"""
CLAIMING = "claiming"  # a point's run id while its run is being planned and queued (so no one else takes it)
PREDICTION_INDEX = 1_000_000  # the model the law is tested on comes after every planned point


@dataclass(frozen=True)
class ExperimentRecord:
    id: str
    created_at: float
    spec: dict[str, Any]
    on_server: bool  # True: every point not taken by a student is queued on the server
    ended_at: float | None = None


@dataclass(frozen=True)
class PointRecord:
    experiment_id: str
    index: int
    settings: dict[str, Any]  # the rung, sizes and seed (``orchestration.experiment.Point``)
    run_id: str | None
    owner: str | None
    attempts: int  # runs started for it so far
    given_up: str | None  # why it has no more runs (every attempt died)
    prediction: dict[str, Any] | None  # the law's prediction, frozen before it trained (the tested model only)
    lost: list[str]  # what happened to each run of it that died

    @property
    def is_prediction(self) -> bool:
        return self.index >= PREDICTION_INDEX


def _experiment(row) -> ExperimentRecord:
    return ExperimentRecord(row["id"], row["created_at"], json.loads(row["spec_json"]), bool(row["on_server"]),
                            row["ended_at"])


def _point(row) -> PointRecord:
    return PointRecord(row["experiment_id"], row["idx"], json.loads(row["settings_json"]), row["run_id"],
                       row["owner"], row["attempts"], row["given_up"],
                       json.loads(row["prediction_json"]) if row["prediction_json"] else None,
                       json.loads(row["lost_json"]))


class ExperimentRecords:
    """The experiment tables of one run store's database."""

    def __init__(self, database: Database):
        self.database = database
        with database._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self):
        return self.database._connect()

    def create(self, spec: dict[str, Any], points: list[dict[str, Any]], on_server: bool) -> ExperimentRecord:
        """Record a new experiment and its points; one is open at a time."""
        if self.open() is not None:
            raise BabyGPTError("An experiment is already open: end it before starting another.")
        record = ExperimentRecord(secrets.token_hex(4), time.time(), spec, on_server)
        with self._connect() as db:
            db.execute("INSERT INTO experiments(id, created_at, spec_json, on_server) VALUES (?,?,?,?)",
                       (record.id, record.created_at, json.dumps(spec), int(on_server)))
            db.executemany("INSERT INTO experiment_points(experiment_id, idx, settings_json) VALUES (?,?,?)",
                           [(record.id, i, json.dumps(p)) for i, p in enumerate(points)])
        return record

    def get(self, experiment_id: str) -> ExperimentRecord:
        with self._connect() as db:
            row = db.execute("SELECT * FROM experiments WHERE id=?", (experiment_id,)).fetchone()
        if row is None:
            raise BabyGPTError(f"No experiment {experiment_id!r} on this server.")
        return _experiment(row)

    def latest(self) -> ExperimentRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM experiments ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return _experiment(row) if row else None

    def open(self) -> ExperimentRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM experiments WHERE ended_at IS NULL ORDER BY created_at DESC LIMIT 1"
                             ).fetchone()
        return _experiment(row) if row else None

    def end(self, experiment_id: str, when: float) -> bool:
        with self._connect() as db:
            return db.execute("UPDATE experiments SET ended_at=? WHERE id=? AND ended_at IS NULL",
                              (when, experiment_id)).rowcount == 1

    def set_on_server(self, experiment_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE experiments SET on_server=1 WHERE id=?", (experiment_id,))

    def points(self, experiment_id: str) -> list[PointRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM experiment_points WHERE experiment_id=? ORDER BY idx",
                              (experiment_id,)).fetchall()
        return [_point(r) for r in rows]

    def claim(self, experiment_id: str, owner: str | None, index: int | None = None) -> PointRecord | None:
        """Take an open point (the first one, or ``index``) for ``owner`` in one statement, so two students who join
        at once never get the same one; None: none is open."""
        where = "idx=?" if index is not None else ("idx=(SELECT idx FROM experiment_points WHERE experiment_id=? AND "
                                                   "run_id IS NULL AND given_up IS NULL ORDER BY idx LIMIT 1)")
        args = (index,) if index is not None else (experiment_id,)
        with self._connect() as db:
            cursor = db.execute(f"UPDATE experiment_points SET run_id=?, owner=? WHERE experiment_id=? AND {where} "
                                "AND run_id IS NULL AND given_up IS NULL RETURNING *",
                                (CLAIMING, owner, experiment_id, *args))
            row = cursor.fetchone()
        return _point(row) if row else None

    def set_run(self, experiment_id: str, index: int, run_id: str) -> None:
        """The point's run was queued: it counts as one more attempt."""
        with self._connect() as db:
            db.execute("UPDATE experiment_points SET run_id=?, attempts=attempts+1 WHERE experiment_id=? AND idx=?",
                       (run_id, experiment_id, index))

    def release(self, experiment_id: str, index: int, lost: str | None = None, give_up: str | None = None) -> None:
        """Open the point again (its run died, or could not be queued); ``lost``: what happened, kept with it;
        ``give_up``: why it takes no more runs."""
        with self._connect() as db:
            row = db.execute("SELECT lost_json FROM experiment_points WHERE experiment_id=? AND idx=?",
                             (experiment_id, index)).fetchone()
            lost_list = json.loads(row["lost_json"]) if row else []
            if lost:
                lost_list.append(lost)
            db.execute("UPDATE experiment_points SET run_id=NULL, owner=NULL, given_up=?, lost_json=? "
                       "WHERE experiment_id=? AND idx=?", (give_up, json.dumps(lost_list), experiment_id, index))

    def note_lost(self, experiment_id: str, index: int, lost: str) -> None:
        """A run of the point died and is queued again as it is (from its checkpoint): kept with the point."""
        with self._connect() as db:
            row = db.execute("SELECT lost_json FROM experiment_points WHERE experiment_id=? AND idx=?",
                             (experiment_id, index)).fetchone()
            if row is not None:
                db.execute("UPDATE experiment_points SET lost_json=? WHERE experiment_id=? AND idx=?",
                           (json.dumps([*json.loads(row["lost_json"]), lost]), experiment_id, index))

    def add_prediction_point(self, experiment_id: str, settings: dict[str, Any], prediction: dict[str, Any]
                             ) -> PointRecord:
        """The model the law is tested on, with what the law predicted for it now, before it trains."""
        with self._connect() as db:
            row = db.execute("SELECT MAX(idx) AS top FROM experiment_points WHERE experiment_id=?",
                             (experiment_id,)).fetchone()
            index = max(PREDICTION_INDEX, (row["top"] or 0) + 1)
            db.execute("INSERT INTO experiment_points(experiment_id, idx, settings_json, prediction_json) "
                       "VALUES (?,?,?,?)", (experiment_id, index, json.dumps(settings), json.dumps(prediction)))
        return next(p for p in self.points(experiment_id) if p.index == index)
