"""The run store: one folder per run (``config.json``, weights, trainer state) plus a SQLite database of runs,
their logs, the queue and the users' choices, under ``BABYGPT_HOME``.

``RunStore`` is assembled from one part per job: the database (``database``), the queue (``queue``), what a run
logs as it trains (``logs``), what users choose and upload (``choices``), and here the runs themselves: their
rows, their folders, checkpoints and deletion. File writes go through ``checkpoints``: atomic, and checked when
read back. Reading never writes: a run whose worker died reads as interrupted (``records.run_info``) and
``mark_interrupted`` records it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import LanguageModel, build_model
from babygpt.model.sizing import size_in_words
from babygpt.pace import run_tokens_per_second
from babygpt.status import STORED_TRAINING, RunStatus
from babygpt.store import checkpoints
from babygpt.store.checkpoints import INITIAL_WEIGHTS_FILE, TRAINER_FILE, WEIGHTS_FILE, atomic_write_bytes
from babygpt.store.choices import UPLOADS_DIR, UserChoices
from babygpt.store.classroom import ClassRecords
from babygpt.store.database import default_home
from babygpt.store.logs import LOGGED_TABLES, RunLogs
from babygpt.store.queue import ACTIVE_SINGLE_RUN_SQL, RunQueue
from babygpt.store.records import (
    INTERRUPTED_MESSAGE,
    MetricRow,
    RunInfo,
    RunSummary,
    curves,
    process_alive,
    run_info,
)
from babygpt.store.run_record import LOCAL, RunRecord, parse_run_record
from babygpt.text.measured import Baselines, ValidationText
from babygpt.text.tokenizers import Tokenizer
from babygpt.units import bits_per_char

__all__ = ["CONFIG_FILE", "UPLOADS_DIR", "LoadedRun", "MetricRow", "OwnerBusy", "RunInfo", "RunStatus", "RunStore", "RunSummary",
           "curves", "default_home", "process_alive"]

CONFIG_FILE, METRICS_FILE = "config.json", "metrics.jsonl"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
GENERATED_RUN_ID = re.compile(r"^\d{8}-\d{6}-[a-z0-9-]+-[0-9a-f]{4}$")  # what new_run_id makes
FORMAT_VERSION = 1
TRASH_PREFIX = ".deleted-"
STAGING_PREFIX = ".import-"  # an import unpacks here, inside BABYGPT_HOME, and removes it when done


def build_config_document(model_config: ModelConfig, train_config: TrainConfig, tokenizer: Tokenizer,
                          data: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "model": model_config.to_dict(), "train": train_config.to_dict(),
            "tokenizer": tokenizer.to_dict(), "data": data}


def run_tokens_per_step(info: RunInfo) -> int:
    """Training tokens one step of this run consumed: its batch, context and accumulation, on every process."""
    record = info.readable  # a config this version cannot read: no speed, not a broken table
    return record.tokens_per_step if record else 0


@dataclass
class LoadedRun:
    info: RunInfo
    model: LanguageModel
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig
    document: dict[str, Any]


def checked_tokenizer(record: RunRecord) -> Tokenizer:
    """The run's tokenizer rebuilt from its record and checked against its model's vocabulary."""
    tokenizer = record.tokenizer.build()
    if tokenizer.vocab_size != record.model.vocab_size:
        raise BabyGPTError(
            f"The run's tokenizer has {tokenizer.vocab_size} tokens but its model expects {record.model.vocab_size}: "
            "the checkpoint belongs to another tokenizer or vocabulary."
        )
    return tokenizer


def parse_config_document(document: Any) -> tuple[ModelConfig, TrainConfig, Tokenizer]:
    """Validate a run's config.json (``parse_run_record``) and rebuild its tokenizer; raises BabyGPTError naming
    what is wrong."""
    record = parse_run_record(document)
    return record.model, record.training, checked_tokenizer(record)


def read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BabyGPTError(f"{folder.name} has no {CONFIG_FILE}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BabyGPTError(f"{folder.name}/{CONFIG_FILE} is not valid JSON ({exc}).") from exc


def load_run_folder(info: RunInfo, folder: Path, document: dict[str, Any], device: str | Any = "cpu") -> LoadedRun:
    """A run's model with the weights of its folder, checked against its configuration, ready to evaluate."""
    model_config, train_config, tokenizer = parse_config_document(document)
    if not (folder / WEIGHTS_FILE).is_file():
        raise BabyGPTError(f"Run {info.id} has no saved weights yet (it has not reached its first checkpoint).")
    model = build_model(model_config)
    checkpoints.load_weights(model, folder / WEIGHTS_FILE)
    model.to(device).eval()
    return LoadedRun(info, model, tokenizer, model_config, train_config, document)


def load_trainer_state_in(folder: Path, run_id: str) -> dict[str, Any]:
    path = folder / TRAINER_FILE
    if not path.is_file():
        raise BabyGPTError(f"Run {run_id} has no trainer state to resume from.")
    return checkpoints.load_trainer_state(path)


def _bpc(loss: float | None, config: dict) -> float | None:
    baselines = Baselines.from_config(config)
    return bits_per_char(loss, baselines.chars_per_token) if loss is not None and baselines else None


def _bpb(loss: float | None, config: dict) -> float | None:
    validation = ValidationText.from_config(config)
    return validation.bits_per_byte(loss) if loss is not None and validation else None


class OwnerBusy(BabyGPTError):
    """A new run was refused because its owner already has one queued or training (one at a time)."""


class RunStore(RunQueue, RunLogs, UserChoices, ClassRecords):
    # -- a run's row ----------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        """The folder of a run; ids are checked so no id can reach outside BABYGPT_HOME."""
        if not isinstance(run_id, str) or not RUN_ID.match(run_id) or ".." in run_id:
            raise BabyGPTError(f"{run_id!r} is not a valid run id.")
        return self.home / run_id

    def new_run_id(self, preset: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{re.sub(r'[^a-z0-9]+', '-', preset.lower()).strip('-')}-{secrets.token_hex(2)}"

    def create_run(self, name: str | None, document: dict[str, Any], text_name: str | None = None,
                   data_sha256: str | None = None, status: RunStatus = RunStatus.RUNNING, owner: str | None = None,
                   group_id: str | None = None, challenge_id: str | None = None, priority: int = 0,
                   only_active: bool = False) -> RunInfo:
        """Record a new run. ``text_name``: its text as a person knows it (a dataset's or an upload's name, never
        a path: where the text was read is the document's ``data.source``), kept in the row's data_name column.
        ``only_active``: the row goes in only if its owner has no other single run queued or training, checked in
        the insert itself, so two tabs (or two server processes) that start at once get one run, never two
        (``OwnerBusy`` for the other)."""
        status = RunStatus(status)
        preset = document["model"]["preset"]
        run_id = self.new_run_id(preset)
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True)
        atomic_write_bytes(folder / CONFIG_FILE, json.dumps(document, indent=2).encode())
        now = time.time()
        guard = f" WHERE NOT EXISTS ({ACTIVE_SINGLE_RUN_SQL})" if only_active and owner and not group_id else ""
        with self._connect() as db:
            inserted = db.execute(
                "INSERT INTO runs(id, name, created_at, status, preset, config_json, data_name, data_sha256, pid,"
                f" owner, queued_at, group_id, challenge_id, priority) SELECT ?,?,?,?,?,?,?,?,?,?,?,?,?,?{guard}",
                (run_id, name or run_id, now, status.value, preset, json.dumps(document), text_name, data_sha256,
                 os.getpid(), owner, now if status is RunStatus.QUEUED else None, group_id, challenge_id, priority,
                 *((owner,) if guard else ())),
            ).rowcount
        if not inserted:
            shutil.rmtree(folder, ignore_errors=True)
            raise OwnerBusy("You already have a run queued or training; stop it (or wait for it) before starting "
                            "another.")
        return self.get(run_id)

    def set_status(self, run_id: str, status: RunStatus, message: str | None = None) -> None:
        """Record a status; the calling process is recorded with it (a dead process means interrupted)."""
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, message=?, pid=? WHERE id=?",
                       (RunStatus(status).value, message, os.getpid(), run_id))

    def set_message(self, run_id: str, message: str) -> None:
        """A note on a run that keeps its status (e.g. compile fell back to eager); shown while it trains."""
        with self._connect() as db:
            db.execute("UPDATE runs SET message=? WHERE id=?", (message, run_id))

    def get(self, run_id: str) -> RunInfo:
        self.run_dir(run_id)
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM runs WHERE name=? ORDER BY created_at DESC", (run_id,)).fetchone()
        if row is None:
            raise BabyGPTError(f"No run named {run_id!r} in {self.home}; `python -m babygpt runs list` shows them.")
        return run_info(row)

    def exists(self, run_id: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def list_runs(self, group_id: str | None = None) -> list[RunInfo]:
        with self._connect() as db:
            if group_id is None:
                rows = db.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
            else:
                rows = db.execute("SELECT * FROM runs WHERE group_id=? ORDER BY created_at, rowid",
                                  (group_id,)).fetchall()
        return [run_info(r) for r in rows]

    def summaries(self) -> list[RunSummary]:
        """One ``RunSummary`` per run, newest first: what the run tables list."""
        with self._connect() as db:
            stats = {r["run_id"]: dict(r) for r in db.execute(
                "SELECT run_id, MAX(step) AS steps, MIN(CASE WHEN split='val' THEN loss END) AS best_val_loss,"
                " MAX(CASE WHEN split='train' THEN step END) AS trained_steps, MAX(elapsed_s) AS trained_s"
                " FROM metrics GROUP BY run_id")}
        return [self._summary(info, stats.get(info.id, {})) for info in self.list_runs()]

    def _summary(self, info: RunInfo, stats: dict[str, Any]) -> RunSummary:
        record = info.readable
        model = record.model if record else None
        tokens = (stats.get("trained_steps") or 0) * run_tokens_per_step(info)
        best = stats.get("best_val_loss")
        return RunSummary(
            id=info.id, name=info.name, label=info.label, preset=info.preset, status=info.status,
            tokenizer=record.tokenizer.kind if record else None, data=info.text_name, text_sha256=info.text_sha256,
            n_layer=model.n_layer if model else None, n_embd=model.n_embd if model else None,
            n_head=model.n_head if model else None, block_size=model.block_size if model else None,
            vocab_size=model.vocab_size if model else None, steps=stats.get("steps") or 0, best_val_loss=best,
            tokens_per_sec=run_tokens_per_second(tokens, stats.get("trained_s")), tokens=tokens,
            trained_s=stats.get("trained_s"), trained_until=self.weights_version(info.id), created_at=info.created_at,
            owner=info.owner, group_id=info.group_id, check=info.is_check, imported=info.imported,
            where=record.where if record else LOCAL, best_val_bpc=_bpc(best, info.config),
            best_val_bpb=_bpb(best, info.config), size=size_in_words(model) if model else None)

    def recorded_as_training(self, run_id: str) -> bool:
        """Whether the run's recorded status still says a worker trains it, whatever became of that worker: what a
        job that saw its worker exit must ask, since ``get`` already reports a dead worker's run as interrupted."""
        with self._connect() as db:
            row = db.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        return row is not None and row["status"] in STORED_TRAINING

    def mark_interrupted(self) -> list[str]:
        """Record as interrupted the runs left training by a process that no longer exists; returns their ids."""
        marked = self.orphans()
        with self._connect() as db:
            for run_id in marked:
                db.execute("UPDATE runs SET status=?, message=? WHERE id=? AND status IN "
                           f"({', '.join(repr(s) for s in STORED_TRAINING)})",
                           (RunStatus.INTERRUPTED.value, INTERRUPTED_MESSAGE, run_id))
        return marked

    # -- a run's folder: configuration, checkpoints, weights ------------------------------------
    def save_checkpoint(self, run_id: str, model: LanguageModel, trainer_state: dict[str, Any]) -> None:
        """A checkpoint; a fine-tune's starting weights go once its own are on disk (resumes read those)."""
        checkpoints.save_checkpoint(self.run_dir(run_id), model, trainer_state)
        (self.run_dir(run_id) / INITIAL_WEIGHTS_FILE).unlink(missing_ok=True)

    def has_checkpoint(self, run_id: str) -> bool:
        return checkpoints.has_checkpoint(self.run_dir(run_id))

    def has_weights(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / WEIGHTS_FILE).is_file()

    def weights_version(self, run_id: str) -> float | None:
        """When the run's weights last changed on disk (None: no weights yet): a key for what is computed from
        them, which stays valid until the next checkpoint lands."""
        path = self.run_dir(run_id) / WEIGHTS_FILE
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            return None

    def load(self, run_id: str, device: str | Any = "cpu") -> LoadedRun:
        info = self.get(run_id)
        folder = self.run_dir(info.id)
        return load_run_folder(info, folder, read_config(folder), device)

    def set_initial_weights(self, run_id: str, from_run: str) -> None:
        """A fine-tune starts from ``from_run``'s current weights: copied now, so the other run may go on
        training or be deleted while this one waits in the queue."""
        source = self.run_dir(self.get(from_run).id) / WEIGHTS_FILE
        if not source.is_file():
            raise BabyGPTError(f"Run {from_run} has no saved weights to start from yet.")
        atomic_write_bytes(self.run_dir(run_id) / INITIAL_WEIGHTS_FILE, source.read_bytes())

    def initial_weights(self, run_id: str, config: ModelConfig) -> dict[str, Any] | None:
        """The weights a fine-tune starts from (checked against its model), or None for a run that starts fresh."""
        return checkpoints.initial_weights_in(self.run_dir(run_id), config)

    def load_trainer_state(self, run_id: str) -> dict[str, Any]:
        return load_trainer_state_in(self.run_dir(self.get(run_id).id), run_id)

    def update_config(self, run_id: str, document: dict[str, Any]) -> None:
        atomic_write_bytes(self.run_dir(run_id) / CONFIG_FILE, json.dumps(document, indent=2).encode())
        with self._connect() as db:
            db.execute("UPDATE runs SET config_json=? WHERE id=?", (json.dumps(document), run_id))

    # -- delete ---------------------------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        """One run, all or nothing (``delete_all``)."""
        self.delete_all([run_id])

    def delete_all(self, run_ids: list[str]) -> None:
        """Several runs (a race's) as one operation, all or nothing: every run is checked first, every folder is
        renamed aside, every row goes in one transaction, and only then are the folders removed; a failure before
        the transaction ends puts every folder back, so no run is half gone and none is gone alone. A crash leaves
        trash folders that ``clean_orphans`` removes, never rows without a folder."""
        infos = [self.get(run_id) for run_id in run_ids]
        for info in infos:
            if info.status.training:
                raise BabyGPTError(f"Run {info.label} is training; stop it before deleting it.")
        moved: list[tuple[Path, Path]] = []
        try:
            for info in infos:
                folder, trash = self.run_dir(info.id), self.home / f"{TRASH_PREFIX}{info.id}"
                if folder.is_dir():
                    os.replace(folder, trash)
                    moved.append((folder, trash))
            with self._connect() as db:
                for info in infos:
                    for table in LOGGED_TABLES:
                        db.execute(f"DELETE FROM {table} WHERE run_id=?", (info.id,))
                    db.execute("DELETE FROM runs WHERE id=?", (info.id,))
        except BaseException:
            for folder, trash in reversed(moved):
                os.replace(trash, folder)
            raise
        for _, trash in moved:
            shutil.rmtree(trash)

    def clean_orphans(self, min_age_s: float = 600.0) -> list[str]:
        """Remove what an interrupted delete, create or import left behind: trash folders, and run folders with
        no database row and import staging folders that are older than ``min_age_s`` (a run being created has its
        folder a moment before its row; an import in progress has its staging folder until it ends)."""
        with self._connect() as db:
            known = {r["id"] for r in db.execute("SELECT id FROM runs")}
        removed = []
        now = time.time()
        for path in self.home.iterdir():
            if not path.is_dir() or path.name == UPLOADS_DIR:
                continue
            old = now - path.stat().st_mtime > min_age_s
            orphan = path.name.startswith(TRASH_PREFIX) or (path.name.startswith(STAGING_PREFIX) and old) or (
                GENERATED_RUN_ID.match(path.name) and path.name not in known and (path / CONFIG_FILE).is_file()
                and old)
            if orphan:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed
