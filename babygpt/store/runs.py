"""The run store: one folder per run plus a SQLite database of runs, metrics, the queue and users.

Workers write while pages read, and several processes (the server, its workers, the CLI) share the
database, so it uses WAL, a short-lived connection per operation, and single-statement state changes
(``claim`` moves a run from queued to starting only if nobody else did). File writes go through
``babygpt.store.checkpoints``: atomic, and checked when read back.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import Baselines, bits_per_char
from babygpt.model.gpt import GPT
from babygpt.store import checkpoints
from babygpt.store.checkpoints import TRAINER_FILE, WEIGHTS_FILE, atomic_write_bytes
from babygpt.text.tokenizers import Tokenizer, tokenizer_from_dict

CONFIG_FILE, METRICS_FILE = "config.json", "metrics.jsonl"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
GENERATED_RUN_ID = re.compile(r"^\d{8}-\d{6}-[a-z0-9-]+-[0-9a-f]{4}$")  # what new_run_id makes
FORMAT_VERSION = 1
TRASH_PREFIX = ".deleted-"
LIVE_STATUSES = ("starting", "running")  # a worker process is (or should be) training the run

UPLOADS_DIR = "uploads"  # uploaded texts, one file per sha256, shared by the users and runs that use it
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL,
    preset TEXT NOT NULL, config_json TEXT NOT NULL, data_name TEXT, data_sha256 TEXT,
    pid INTEGER, message TEXT, owner TEXT, queued_at REAL, group_id TEXT, threads INTEGER,
    metrics_version INTEGER NOT NULL DEFAULT 0
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
CREATE TABLE IF NOT EXISTS uploads (owner TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
                                    PRIMARY KEY (owner, sha256));
"""
# columns added since the first release, brought into older databases on open
ADDED_COLUMNS = {"owner": "TEXT", "queued_at": "REAL", "group_id": "TEXT", "threads": "INTEGER",
                 "metrics_version": "INTEGER NOT NULL DEFAULT 0"}


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    created_at: float
    status: str  # queued, starting, running, done, stopped, failed, interrupted
    preset: str
    config: dict[str, Any]
    data_name: str | None
    data_sha256: str | None
    message: str | None = None
    owner: str | None = None  # the user key of whoever started it in the app; None for the command line
    pid: int | None = None  # the process that last recorded the status (the worker, while training)
    queued_at: float | None = None
    group_id: str | None = None  # runs started together, e.g. one ladder race
    threads: int | None = None  # CPU threads the scheduler gives the run's worker
    metrics_version: int = 0  # bumped when metrics are truncated (a resume), so incremental readers restart

    @property
    def label(self) -> str:
        """The name with the end of the id: two runs with the same name stay apart in every list."""
        return self.id if self.name == self.id else f"{self.name} · {self.id[-4:]}"


@dataclass(frozen=True)
class MetricRow:
    step: int
    split: str  # "train" (running step loss), "train_eval" and "val" (estimate_loss)
    loss: float | None
    lr: float | None = None
    tokens_per_sec: float | None = None
    elapsed_s: float | None = None


def curves(rows: list[MetricRow]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split metric rows into the per-step training curve and the evaluations (train and val per step)."""
    train = [{"step": r.step, "loss": r.loss, "lr": r.lr, "elapsed_s": r.elapsed_s, "tokens_per_sec": r.tokens_per_sec}
             for r in rows if r.split == "train"]
    train_evals = {r.step: r.loss for r in rows if r.split == "train_eval"}
    evals = [{"step": r.step, "train_loss": train_evals.get(r.step, r.loss), "val_loss": r.loss,
              "elapsed_s": r.elapsed_s} for r in rows if r.split == "val"]
    return train, evals


def default_home() -> Path:
    """``BABYGPT_HOME``, else ``./runs``: the one place that default is written."""
    return Path(os.environ.get("BABYGPT_HOME") or "runs")


def process_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a zombie that nobody reaped counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def build_config_document(model_config: ModelConfig, train_config: TrainConfig, tokenizer: Tokenizer,
                          data: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "model": model_config.to_dict(), "train": train_config.to_dict(),
            "tokenizer": tokenizer.to_dict(), "data": data}


@dataclass
class LoadedRun:
    info: RunInfo
    model: GPT
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig
    document: dict[str, Any]


def parse_config_document(document: Any) -> tuple[ModelConfig, TrainConfig, Tokenizer]:
    """Validate a run's config.json; raises BabyGPTError naming what is wrong."""
    if not isinstance(document, dict) or not {"model", "train", "tokenizer"} <= set(document):
        raise BabyGPTError("config.json is not a Baby GPT run configuration (model, train, tokenizer missing).")
    try:
        model_config = ModelConfig.from_dict(document["model"])
        train_config = TrainConfig.from_dict(document["train"])
    except TypeError as exc:
        raise BabyGPTError(f"config.json is damaged: {exc}.") from exc
    tokenizer = tokenizer_from_dict(document["tokenizer"])
    if tokenizer.vocab_size != model_config.vocab_size:
        raise BabyGPTError(
            f"The run's tokenizer has {tokenizer.vocab_size} tokens but its model expects {model_config.vocab_size}: "
            "the checkpoint belongs to another tokenizer or vocabulary."
        )
    return model_config, train_config, tokenizer


def read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BabyGPTError(f"{folder.name} has no {CONFIG_FILE}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BabyGPTError(f"{folder.name}/{CONFIG_FILE} is not valid JSON ({exc}).") from exc


def _bpc(loss: float | None, config: dict) -> float | None:
    baselines = Baselines.from_config(config)
    return bits_per_char(loss, baselines.chars_per_token) if loss is not None and baselines else None


class RunStore:
    def __init__(self, home: str | Path | None = None):
        self.home = Path(home) if home is not None else default_home()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            probe = self.home / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise BabyGPTError(
                f"The run folder {self.home} cannot be written ({exc.strerror or exc}). "
                "Set BABYGPT_HOME to a writable folder with free space."
            ) from exc
        self.db_path = self.home / "runs.db"
        with self._connect() as db:
            self._create_schema(db)

    # -- database -------------------------------------------------------------------------------
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
        """A short-lived connection per operation: safe across threads and processes."""
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

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run; ids are checked so no id can reach outside BABYGPT_HOME."""
        if not isinstance(run_id, str) or not RUN_ID.match(run_id) or ".." in run_id:
            raise BabyGPTError(f"{run_id!r} is not a valid run id.")
        return self.home / run_id

    def new_run_id(self, preset: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{re.sub(r'[^a-z0-9]+', '-', preset.lower()).strip('-')}-{secrets.token_hex(2)}"

    def create_run(self, name: str | None, document: dict[str, Any], data_name: str | None = None,
                   data_sha256: str | None = None, status: str = "running", owner: str | None = None,
                   group_id: str | None = None) -> RunInfo:
        preset = document["model"]["preset"]
        run_id = self.new_run_id(preset)
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True)
        atomic_write_bytes(folder / CONFIG_FILE, json.dumps(document, indent=2).encode())
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs(id, name, created_at, status, preset, config_json, data_name, data_sha256, pid,"
                " owner, queued_at, group_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, name or run_id, now, status, preset, json.dumps(document), data_name, data_sha256,
                 os.getpid(), owner, now if status == "queued" else None, group_id),
            )
        return self.get(run_id)

    def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Record a status; the calling process is recorded with it (a dead process means interrupted)."""
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, message=?, pid=? WHERE id=?", (status, message, os.getpid(), run_id))

    def set_message(self, run_id: str, message: str) -> None:
        """A note on a run that keeps its status (e.g. compile fell back to eager); shown while it trains."""
        with self._connect() as db:
            db.execute("UPDATE runs SET message=? WHERE id=?", (message, run_id))

    # -- the queue ------------------------------------------------------------------------------
    def enqueue(self, run_id: str) -> None:
        """Put a run at the end of the queue (a new run, or one to resume)."""
        with self._connect() as db:
            db.execute("UPDATE runs SET status='queued', message=NULL, queued_at=?, pid=? WHERE id=?",
                       (time.time(), os.getpid(), run_id))

    def queued(self) -> list[RunInfo]:
        """The queue, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status='queued' ORDER BY queued_at, rowid").fetchall()
        return [self._info(r) for r in rows]

    def claim(self, run_id: str, threads: int) -> bool:
        """Move a queued run to 'starting' unless another process got there first: a run starts once."""
        with self._connect() as db:
            cursor = db.execute("UPDATE runs SET status='starting', pid=?, threads=? WHERE id=? AND status='queued'",
                                (os.getpid(), threads, run_id))
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
            row = db.execute("SELECT id FROM runs WHERE owner=? AND group_id IS NULL AND status IN "
                             "('queued', 'starting', 'running') ORDER BY created_at DESC LIMIT 1", (owner,)).fetchone()
        return row["id"] if row else None

    def live(self) -> list[RunInfo]:
        """Runs a worker is training (or starting to), in the order they were queued."""
        self.mark_interrupted()
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status IN ('starting', 'running') "
                              "ORDER BY queued_at, created_at").fetchall()
        return [self._info(r) for r in rows]

    # -- metrics --------------------------------------------------------------------------------
    def log_metrics(self, run_id: str, rows: list[MetricRow]) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT INTO metrics(run_id, step, split, loss, lr, tokens_per_sec, elapsed_s) VALUES (?,?,?,?,?,?,?)",
                [(run_id, r.step, r.split, r.loss, r.lr, r.tokens_per_sec, r.elapsed_s) for r in rows],
            )

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop metrics logged after a checkpoint, before resuming from it (they will be logged again)."""
        with self._connect() as db:
            db.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, after_step))
            db.execute("DELETE FROM samples WHERE run_id=? AND step>?", (run_id, after_step))
            db.execute("DELETE FROM attention WHERE run_id=? AND step>?", (run_id, after_step))
            db.execute("UPDATE runs SET metrics_version=metrics_version+1 WHERE id=?", (run_id,))

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

    def log_sample(self, run_id: str, step: int, text: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO samples(run_id, step, text) VALUES (?,?,?)", (run_id, step, text))

    def samples(self, run_id: str) -> list[tuple[int, str]]:
        with self._connect() as db:
            rows = db.execute("SELECT step, text FROM samples WHERE run_id=? ORDER BY step, rowid", (run_id,))
            return [(r["step"], r["text"]) for r in rows.fetchall()]

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

    # -- runs -----------------------------------------------------------------------------------
    def _info(self, row: sqlite3.Row) -> RunInfo:
        return RunInfo(row["id"], row["name"], row["created_at"], row["status"], row["preset"],
                       json.loads(row["config_json"]), row["data_name"], row["data_sha256"], row["message"],
                       row["owner"], row["pid"], row["queued_at"], row["group_id"], row["threads"],
                       row["metrics_version"])

    def get(self, run_id: str) -> RunInfo:
        self.run_dir(run_id)
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM runs WHERE name=? ORDER BY created_at DESC", (run_id,)).fetchone()
        if row is None:
            raise BabyGPTError(f"No run named {run_id!r} in {self.home}; `python -m babygpt runs list` shows them.")
        return self._info(row)

    def list_runs(self, group_id: str | None = None) -> list[RunInfo]:
        self.mark_interrupted()
        with self._connect() as db:
            if group_id is None:
                rows = db.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
            else:
                rows = db.execute("SELECT * FROM runs WHERE group_id=? ORDER BY created_at, rowid",
                                  (group_id,)).fetchall()
        return [self._info(r) for r in rows]

    def summaries(self) -> list[dict[str, Any]]:
        """One row per run for tables: size, steps, best val loss, throughput, status, owner."""
        with self._connect() as db:
            stats = {r["run_id"]: dict(r) for r in db.execute(
                "SELECT run_id, MAX(step) AS steps, MIN(CASE WHEN split='val' THEN loss END) AS best_val_loss,"
                " AVG(CASE WHEN split='train' THEN tokens_per_sec END) AS tokens_per_sec"
                " FROM metrics GROUP BY run_id")}
        out = []
        for info in self.list_runs():
            model = info.config.get("model", {})
            s = stats.get(info.id, {})
            out.append({
                "id": info.id, "name": info.name, "label": info.label, "preset": info.preset, "status": info.status,
                "tokenizer": info.config.get("tokenizer", {}).get("kind"), "data": info.data_name,
                "n_layer": model.get("n_layer"), "n_embd": model.get("n_embd"), "n_head": model.get("n_head"),
                "block_size": model.get("block_size"), "vocab_size": model.get("vocab_size"),
                "steps": s.get("steps") or 0, "best_val_loss": s.get("best_val_loss"),
                "tokens_per_sec": s.get("tokens_per_sec"), "created_at": info.created_at,
                "owner": info.owner, "group_id": info.group_id,
                "best_val_bpc": _bpc(s.get("best_val_loss"), info.config),
            })
        return out

    def mark_interrupted(self) -> None:
        """Runs left training by a process that no longer exists were killed: say so."""
        with self._connect() as db:
            rows = db.execute("SELECT id, pid FROM runs WHERE status IN ('starting', 'running')").fetchall()
            for row in rows:
                if row["pid"] and not process_alive(row["pid"]):
                    db.execute("UPDATE runs SET status='interrupted', message=? WHERE id=?",
                               ("The training process ended unexpectedly; resume continues from the last checkpoint.",
                                row["id"]))

    # -- users ----------------------------------------------------------------------------------
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
        nobody's upload or run refers to any more: switching texts frees the quota and the disk."""
        with self._connect() as db:
            stale = [r["sha256"] for r in db.execute(
                "SELECT sha256 FROM uploads WHERE owner=? AND sha256<>? AND sha256 NOT IN "
                "(SELECT data_sha256 FROM runs WHERE owner=? AND data_sha256 IS NOT NULL)", (owner, keep, owner))]
            for sha in stale:
                db.execute("DELETE FROM uploads WHERE owner=? AND sha256=?", (owner, sha))
                used = db.execute("SELECT 1 FROM uploads WHERE sha256=? UNION SELECT 1 FROM runs WHERE data_sha256=?",
                                  (sha, sha)).fetchone()
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
        folders = (self.run_dir(i) for i in run_ids)
        return uploaded + sum(f.stat().st_size for folder in folders if folder.is_dir() for f in folder.iterdir()
                              if f.is_file())

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, run_id: str, model: GPT, trainer_state: dict[str, Any]) -> None:
        checkpoints.save_checkpoint(self.run_dir(run_id), model, trainer_state)

    def has_checkpoint(self, run_id: str) -> bool:
        return checkpoints.has_checkpoint(self.run_dir(run_id))

    def has_weights(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / WEIGHTS_FILE).is_file()

    def load(self, run_id: str, device: str | Any = "cpu") -> LoadedRun:
        info = self.get(run_id)
        folder = self.run_dir(info.id)
        document = read_config(folder)
        model_config, train_config, tokenizer = parse_config_document(document)
        if not (folder / WEIGHTS_FILE).is_file():
            raise BabyGPTError(f"Run {info.id} has no saved weights yet (it has not reached its first checkpoint).")
        model = GPT(model_config)
        checkpoints.load_weights(model, folder / WEIGHTS_FILE)
        model.to(device).eval()
        return LoadedRun(info, model, tokenizer, model_config, train_config, document)

    def load_trainer_state(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(self.get(run_id).id) / TRAINER_FILE
        if not path.is_file():
            raise BabyGPTError(f"Run {run_id} has no trainer state to resume from.")
        return checkpoints.load_trainer_state(path)

    def update_config(self, run_id: str, document: dict[str, Any]) -> None:
        atomic_write_bytes(self.run_dir(run_id) / CONFIG_FILE, json.dumps(document, indent=2).encode())
        with self._connect() as db:
            db.execute("UPDATE runs SET config_json=? WHERE id=?", (json.dumps(document), run_id))

    # -- delete ---------------------------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        """All or nothing: the folder is renamed aside first, the rows go in one transaction, and only then is
        the folder removed; a failure in between puts the folder back. A crash leaves a trash folder that
        ``clean_orphans`` removes, never rows without a folder."""
        info = self.get(run_id)
        if info.status in LIVE_STATUSES and process_alive(info.pid):
            raise BabyGPTError(f"Run {info.label} is training; stop it before deleting it.")
        folder = self.run_dir(info.id)
        trash = self.home / f"{TRASH_PREFIX}{info.id}"
        moved = folder.is_dir()
        if moved:
            os.replace(folder, trash)
        try:
            with self._connect() as db:
                db.execute("DELETE FROM metrics WHERE run_id=?", (info.id,))
                db.execute("DELETE FROM samples WHERE run_id=?", (info.id,))
                db.execute("DELETE FROM attention WHERE run_id=?", (info.id,))
                db.execute("DELETE FROM runs WHERE id=?", (info.id,))
        except BaseException:
            if moved:
                os.replace(trash, folder)
            raise
        if moved:
            shutil.rmtree(trash)

    def clean_orphans(self, min_age_s: float = 600.0) -> list[str]:
        """Remove what an interrupted delete or create left behind: trash folders, and run folders with no
        database row that are older than ``min_age_s`` (a run being created has its folder a moment before
        its row)."""
        with self._connect() as db:
            known = {r["id"] for r in db.execute("SELECT id FROM runs")}
        removed = []
        now = time.time()
        for path in self.home.iterdir():
            if not path.is_dir() or path.name == UPLOADS_DIR:
                continue
            orphan = path.name.startswith(TRASH_PREFIX) or (
                GENERATED_RUN_ID.match(path.name) and path.name not in known and (path / CONFIG_FILE).is_file()
                and now - path.stat().st_mtime > min_age_s)
            if orphan:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed
