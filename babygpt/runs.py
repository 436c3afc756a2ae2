"""The run store: one folder per run plus a SQLite database of runs and metrics.

The training thread writes while the UI reads, so the database uses WAL and every file is
written to a temporary name and renamed into place: a crash leaves the previous checkpoint,
never half of a new one. Loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_model

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.model import GPT
from babygpt.tokenizers import Tokenizer, tokenizer_from_dict

CONFIG_FILE, WEIGHTS_FILE, TRAINER_FILE, METRICS_FILE = "config.json", "model.safetensors", "trainer.pt", "metrics.jsonl"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FORMAT_VERSION = 1
ACTIVE = ("running", "queued")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL,
    preset TEXT NOT NULL, config_json TEXT NOT NULL, data_name TEXT, data_sha256 TEXT,
    owner_pid INTEGER, message TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, split TEXT NOT NULL, loss REAL,
    lr REAL, tokens_per_sec REAL, elapsed_s REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS samples (run_id TEXT NOT NULL, step INTEGER NOT NULL, text TEXT NOT NULL);
"""


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    created_at: float
    status: str
    preset: str
    config: dict[str, Any]
    data_name: str | None
    data_sha256: str | None
    message: str | None = None


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
    return Path(os.environ.get("BABYGPT_HOME", "runs"))


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_with(path: Path, writer) -> None:
    """Let ``writer(tmp_path)`` produce the file, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def load_weights(model: GPT, path: Path) -> None:
    """Load safetensors weights, checking every name and shape against the model."""
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise BabyGPTError(f"{path.name} is corrupted or truncated and cannot be read ({exc}).") from exc
    expected = model.state_dict()
    if model.config.tie_weights and model.config.use_attention:
        # tied weights are stored once, under either name (safetensors drops the alias)
        shared = tensors.get("lm_head.weight", tensors.get("token_embedding.weight"))
        if shared is not None:
            tensors.setdefault("lm_head.weight", shared)
            tensors.setdefault("token_embedding.weight", shared)
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise BabyGPTError(
            f"{path.name} does not match the run's model (missing: {missing[:3]}, unexpected: {unexpected[:3]}); "
            "it comes from another configuration."
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise BabyGPTError(
                f"{path.name}: {name} has shape {tuple(tensor.shape)} but the model needs "
                f"{tuple(expected[name].shape)} — the checkpoint belongs to another tokenizer, vocabulary or size."
            )
    model.load_state_dict(tensors, strict=False)


def load_trainer_state(path: Path) -> dict[str, Any]:
    """trainer.pt holds tensors and plain data only; ``weights_only`` refuses anything executable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BabyGPTError(
            f"{path.name} was refused: it is corrupted or contains objects other than tensors and plain data "
            f"(possibly code). ({type(exc).__name__})"
        ) from exc
    if not isinstance(state, dict) or "step" not in state or "optimizer" not in state:
        raise BabyGPTError(f"{path.name} is not a Baby GPT trainer state.")
    return state


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
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)  # also brings an older database up to date (CREATE ... IF NOT EXISTS)

    # -- database -------------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection per operation: safe across threads and processes."""
        if not self.db_path.exists():  # the store was removed under a running server: start it afresh
            self.home.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.db_path, timeout=30)) as fresh:
                fresh.execute("PRAGMA journal_mode=WAL")
                fresh.executescript(SCHEMA)
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
                   data_sha256: str | None = None, status: str = "running") -> RunInfo:
        preset = document["model"]["preset"]
        run_id = self.new_run_id(preset)
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True)
        atomic_write_bytes(folder / CONFIG_FILE, json.dumps(document, indent=2).encode())
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs(id, name, created_at, status, preset, config_json, data_name, data_sha256, owner_pid)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, name or run_id, time.time(), status, preset, json.dumps(document), data_name, data_sha256,
                 os.getpid()),
            )
        return self.get(run_id)

    def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Record a status; the calling process becomes the run's owner (a dead owner means interrupted)."""
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, message=?, owner_pid=? WHERE id=?",
                       (status, message, os.getpid(), run_id))

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

    def log_sample(self, run_id: str, step: int, text: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO samples(run_id, step, text) VALUES (?,?,?)", (run_id, step, text))

    def samples(self, run_id: str) -> list[tuple[int, str]]:
        with self._connect() as db:
            rows = db.execute("SELECT step, text FROM samples WHERE run_id=? ORDER BY step, rowid", (run_id,))
            return [(r["step"], r["text"]) for r in rows.fetchall()]

    def metrics(self, run_id: str) -> list[MetricRow]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT step, split, loss, lr, tokens_per_sec, elapsed_s FROM metrics WHERE run_id=? ORDER BY step, rowid",
                (run_id,),
            ).fetchall()
        return [MetricRow(**dict(r)) for r in rows]

    def _info(self, row: sqlite3.Row) -> RunInfo:
        return RunInfo(row["id"], row["name"], row["created_at"], row["status"], row["preset"],
                       json.loads(row["config_json"]), row["data_name"], row["data_sha256"], row["message"])

    def get(self, run_id: str) -> RunInfo:
        self.run_dir(run_id)
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM runs WHERE name=? ORDER BY created_at DESC", (run_id,)).fetchone()
        if row is None:
            raise BabyGPTError(f"No run named {run_id!r} in {self.home}; `python -m babygpt runs list` shows them.")
        return self._info(row)

    def list_runs(self) -> list[RunInfo]:
        self.mark_interrupted()
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [self._info(r) for r in rows]

    def summaries(self) -> list[dict[str, Any]]:
        """One row per run for tables: size, steps, best val loss, throughput, status."""
        with self._connect() as db:
            stats = {r["run_id"]: dict(r) for r in db.execute(
                "SELECT run_id, MAX(step) AS steps, MIN(CASE WHEN split='val' THEN loss END) AS best_val_loss,"
                " MAX(CASE WHEN split='train' THEN tokens_per_sec END) AS peak_tokens_per_sec,"
                " AVG(CASE WHEN split='train' THEN tokens_per_sec END) AS tokens_per_sec"
                " FROM metrics GROUP BY run_id")}
        out = []
        for info in self.list_runs():
            model = info.config.get("model", {})
            s = stats.get(info.id, {})
            out.append({
                "id": info.id, "name": info.name, "preset": info.preset, "status": info.status,
                "tokenizer": info.config.get("tokenizer", {}).get("kind"), "data": info.data_name,
                "n_layer": model.get("n_layer"), "n_embd": model.get("n_embd"), "n_head": model.get("n_head"),
                "block_size": model.get("block_size"), "vocab_size": model.get("vocab_size"),
                "steps": s.get("steps") or 0, "best_val_loss": s.get("best_val_loss"),
                "tokens_per_sec": s.get("tokens_per_sec"), "created_at": info.created_at,
            })
        return out

    def mark_interrupted(self) -> None:
        """Runs left 'running' by a process that no longer exists were killed: say so."""
        with self._connect() as db:
            rows = db.execute("SELECT id, owner_pid FROM runs WHERE status='running'").fetchall()
            for row in rows:
                if row["owner_pid"] and not _pid_alive(row["owner_pid"]):
                    db.execute("UPDATE runs SET status='interrupted', message=? WHERE id=?",
                               ("The training process ended unexpectedly; resume continues from the last checkpoint.",
                                row["id"]))

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, run_id: str, model: GPT, trainer_state: dict[str, Any]) -> None:
        """Weights first, then the trainer state: a resume reads the step from trainer.pt, so a crash
        between the two renames at worst pairs older trainer state with newer weights of the same run."""
        folder = self.run_dir(run_id)
        raw = getattr(model, "_orig_mod", model)
        atomic_write_with(folder / WEIGHTS_FILE, lambda tmp: save_model(raw, tmp))
        atomic_write_with(folder / TRAINER_FILE, lambda tmp: torch.save(trainer_state, tmp))

    def has_checkpoint(self, run_id: str) -> bool:
        folder = self.run_dir(run_id)
        return (folder / WEIGHTS_FILE).is_file() and (folder / TRAINER_FILE).is_file()

    def load(self, run_id: str, device: str | torch.device = "cpu") -> LoadedRun:
        info = self.get(run_id)
        folder = self.run_dir(info.id)
        document = self._read_config(folder)
        model_config, train_config, tokenizer = parse_config_document(document)
        if not (folder / WEIGHTS_FILE).is_file():
            raise BabyGPTError(f"Run {info.id} has no saved weights yet (it has not reached its first checkpoint).")
        model = GPT(model_config)
        load_weights(model, folder / WEIGHTS_FILE)
        model.to(device).eval()
        return LoadedRun(info, model, tokenizer, model_config, train_config, document)

    def load_trainer_state(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(self.get(run_id).id) / TRAINER_FILE
        if not path.is_file():
            raise BabyGPTError(f"Run {run_id} has no trainer state to resume from.")
        return load_trainer_state(path)

    @staticmethod
    def _read_config(folder: Path) -> dict[str, Any]:
        try:
            return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BabyGPTError(f"{folder.name} has no {CONFIG_FILE}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BabyGPTError(f"{folder.name}/{CONFIG_FILE} is not valid JSON ({exc}).") from exc

    def update_config(self, run_id: str, document: dict[str, Any]) -> None:
        atomic_write_bytes(self.run_dir(run_id) / CONFIG_FILE, json.dumps(document, indent=2).encode())
        with self._connect() as db:
            db.execute("UPDATE runs SET config_json=? WHERE id=?", (json.dumps(document), run_id))

    # -- delete ---------------------------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        info = self.get(run_id)
        if info.status == "running" and _pid_alive_owner(self, info.id):
            raise BabyGPTError(f"Run {info.id} is training; stop it before deleting it.")
        with self._connect() as db:
            db.execute("DELETE FROM metrics WHERE run_id=?", (info.id,))
            db.execute("DELETE FROM samples WHERE run_id=?", (info.id,))
            db.execute("DELETE FROM runs WHERE id=?", (info.id,))
        shutil.rmtree(self.run_dir(info.id), ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_alive_owner(store: RunStore, run_id: str) -> bool:
    with store._connect() as db:
        row = db.execute("SELECT owner_pid FROM runs WHERE id=?", (run_id,)).fetchone()
    return bool(row and row["owner_pid"] and _pid_alive(row["owner_pid"]))
