"""Training where the run store is not: a stand-in store that turns writes into events, and the server side that
applies them.

A run trained on another machine (a Ray actor) gets no access to the server's disk. It receives the run's row, its
text and, to resume, its checkpoint files; it trains through the very functions a local worker uses
(``orchestration.runs.trainer_for_job`` and ``RunRecorder``) against a ``RelayStore``, which answers reads from what it was
sent and records every write as an event: metric rows, samples, attention snapshots, checkpoints, the runtime, the
status. The server applies the events to the real store, which stays the one source of truth.

Events are kept in an ``EventLog`` until the job ends, numbered from 0, so a server that restarts replays the log
from the start and ends with exactly what a server that never restarted has: the first event of every job truncates
what was logged after its starting point (``truncate_metrics``), so nothing is logged twice. Only the newest
checkpoint's bytes are kept; applying it alone equals applying every one in turn, since each overwrites the last.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from babygpt.config import ModelConfig
from babygpt.errors import ended_unexpectedly_message
from babygpt.orchestration.runs import setup_failure_message, trainer_for_job
from babygpt.status import RunStatus
from babygpt.store import checkpoints
from babygpt.store.corpora import run_corpus
from babygpt.store.runs import LoadedRun, MetricRow, RunInfo, RunStore, load_run_folder, load_trainer_state_in
from babygpt.text.corpus import Corpus
from babygpt.training import devices
from babygpt.training.trainer import Trainer

Event = tuple[Any, ...]  # (kind, *arguments): plain data, so it pickles across machines
# A checkpoint (weights and optimiser state: 9.4 MB for the app's default model) is written at every evaluation
# on the training machine but travels at most this often, and always before the job's end: at one evaluation
# every ~9 s, sending each would cost ~1 MB/s of the server's network per student.
SHIP_CHECKPOINT_EVERY_S = 30.0


class RelayStore:
    """The part of ``RunStore`` a trainer uses, for one run, on a machine without the store.

    Reads come from what the server sent (the row, the checkpoint files in a scratch folder); every write is
    passed to ``emit`` as an event for the server to apply, and the row kept here follows it (status, config)."""

    def __init__(self, info: RunInfo, folder: Path, emit: Callable[[Event], None],
                 ship_every_s: float = SHIP_CHECKPOINT_EVERY_S):
        self.info, self.folder, self.emit = info, folder, emit
        self.ship_every_s = ship_every_s
        self._shipped_at: float | None = None
        self._unshipped_step: int | None = None  # a checkpoint on this machine the server does not have yet

    def run_dir(self, run_id: str) -> Path:
        return self.folder

    def get(self, run_id: str) -> RunInfo:
        return self.info

    def has_checkpoint(self, run_id: str) -> bool:
        return checkpoints.has_checkpoint(self.folder)

    def load(self, run_id: str, device: str | Any = "cpu") -> LoadedRun:
        return load_run_folder(self.info, self.folder, self.info.config, device)

    def load_trainer_state(self, run_id: str) -> dict[str, Any]:
        return load_trainer_state_in(self.folder, run_id)

    def initial_weights(self, run_id: str, config: ModelConfig) -> dict[str, Any] | None:
        return checkpoints.initial_weights_in(self.folder, config)

    # -- writes: events for the server --------------------------------------------------------------
    def update_config(self, run_id: str, document: dict[str, Any]) -> None:
        self.info = dataclasses.replace(self.info, config=document)
        self.emit(("config", document))

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        self.emit(("truncate", after_step))

    def set_status(self, run_id: str, status: RunStatus, message: str | None = None) -> None:
        self._ship_checkpoint()  # the end of a job (stopped, done, failed) comes with its last checkpoint
        self.info = dataclasses.replace(self.info, status=RunStatus(status), message=message)
        self.emit(("status", RunStatus(status).value, message))

    def set_message(self, run_id: str, message: str) -> None:
        self.emit(("message", message))

    def log_metrics(self, run_id: str, rows: list[MetricRow]) -> None:
        self.emit(("metrics", list(rows)))

    def log_sample(self, run_id: str, step: int, text: str) -> None:
        self.emit(("sample", step, text))

    def log_attention(self, run_id: str, step: int, tokens: list[str], weights: np.ndarray) -> None:
        self.emit(("attention", step, list(tokens), np.ascontiguousarray(weights, dtype=np.float16)))

    def log_head_scores(self, run_id: str, step: int, scores: dict[str, list[list[float]]]) -> None:
        self.emit(("head_scores", step, scores))

    def log_score(self, run_id: str, step: int, nats_per_token: float, tokens: int,
                  measured_at: float | None = None) -> None:
        self.emit(("score", step, nats_per_token, tokens, time.time() if measured_at is None else measured_at))

    def save_checkpoint(self, run_id: str, model: torch.nn.Module, trainer_state: dict[str, Any]) -> None:
        checkpoints.save_checkpoint(self.folder, model, trainer_state)
        self._unshipped_step = int(trainer_state.get("step", -1))
        if self._shipped_at is None or time.monotonic() - self._shipped_at >= self.ship_every_s:
            self._ship_checkpoint()

    def _ship_checkpoint(self) -> None:
        if self._unshipped_step is not None:
            self.emit(("checkpoint", self._unshipped_step, *checkpoints.read_checkpoint_files(self.folder)))
            self._unshipped_step, self._shipped_at = None, time.monotonic()


def apply_event(store: RunStore, run_id: str, event: Event) -> None:
    """Do to the real store what the job did to its ``RelayStore``."""
    kind, *args = event
    if kind == "metrics":
        store.log_metrics(run_id, args[0])
    elif kind == "sample":
        store.log_sample(run_id, args[0], args[1])
    elif kind == "attention":
        store.log_attention(run_id, args[0], args[1], args[2])
    elif kind == "head_scores":
        store.log_head_scores(run_id, args[0], args[1])
    elif kind == "score":
        store.log_score(run_id, *args)
    elif kind == "checkpoint":
        checkpoints.write_checkpoint_files(store.run_dir(run_id), args[1], args[2])
    elif kind == "config":
        store.update_config(run_id, args[0])
    elif kind == "truncate":
        store.truncate_metrics(run_id, args[0])
    elif kind == "status":
        store.set_status(run_id, RunStatus(args[0]), args[1])
    elif kind == "message":
        store.set_message(run_id, args[0])
    else:
        raise ValueError(f"unknown event {kind!r}")


def apply_events(store: RunStore, run_id: str, events: list[Event]) -> None:
    """Apply a batch in order, the metric rows of consecutive steps in one write (a job sends a dozen a second)."""
    rows: list[MetricRow] = []
    for event in events:
        if event[0] == "metrics":
            rows.extend(event[1])
            continue
        if rows:
            store.log_metrics(run_id, rows)
            rows = []
        apply_event(store, run_id, event)
    if rows:
        store.log_metrics(run_id, rows)


@dataclass
class Batch:
    """The events a reader had not seen; ``next``: the number to ask from next time; ``finished``: none will follow."""

    events: list[Event]
    next: int
    finished: bool


class EventLog:
    """Every event of one job, numbered from 0, kept until the job ends; readers wait for new ones.

    A superseded checkpoint's bytes are dropped (its slot stays, empty), so the log holds one checkpoint however
    long the run."""

    def __init__(self) -> None:
        self._events: list[Event | None] = []
        self._checkpoint_at: int | None = None
        self._finished = False
        self._changed = threading.Condition()

    def append(self, event: Event) -> None:
        with self._changed:
            if event[0] == "checkpoint":
                if self._checkpoint_at is not None:
                    self._events[self._checkpoint_at] = None
                self._checkpoint_at = len(self._events)
            self._events.append(event)
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def since(self, first: int, wait_s: float = 1.0) -> Batch:
        """The events from number ``first`` on, waiting up to ``wait_s`` for one when there are none yet."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) > first or self._finished, timeout=wait_s)
            end = len(self._events)
            return Batch([e for e in self._events[first:] if e is not None], max(first, end), self._finished)


def scratch_folder(run_id: str) -> Path:
    """A private folder on the training machine for the checkpoint files a job reads and writes."""
    return Path(tempfile.mkdtemp(prefix=f"babygpt-{run_id}-"))


@dataclass
class RelayedJob:
    """Everything a machine without the store needs to train a run: its row, its text, its checkpoint to resume
    from (the two files' bytes, None to start at step 0), its share of the machine's cores, and a fine-tune's
    starting weights (None: fresh weights)."""

    info: RunInfo
    corpus: Corpus
    checkpoint: tuple[bytes, bytes] | None
    threads: int
    initial_weights: bytes | None = None

    @classmethod
    def from_store(cls, store: RunStore, info: RunInfo, threads: int) -> RelayedJob:
        folder = store.run_dir(info.id)
        checkpoint = checkpoints.read_checkpoint_files(folder) if checkpoints.has_checkpoint(folder) else None
        initial = folder / checkpoints.INITIAL_WEIGHTS_FILE
        return cls(info, run_corpus(store, info), checkpoint, threads,
                   initial.read_bytes() if checkpoint is None and initial.is_file() else None)


class RelayedTraining:
    """Trains a ``RelayedJob`` into an ``EventLog``: what a local worker process does, with events for the store."""

    def __init__(self, job: RelayedJob, log: EventLog, where: str):
        self.job, self.log, self.where = job, log, where
        self._stop = threading.Event()
        self._trainer: Trainer | None = None

    def request_stop(self) -> None:
        """Stop after the current step, with a checkpoint (before the trainer exists: as soon as it does)."""
        self._stop.set()
        if self._trainer is not None:
            self._trainer.request_stop()

    def run(self) -> None:
        info = self.job.info
        folder = scratch_folder(info.id)
        relay = RelayStore(info, folder, self.log.append)
        try:
            if self.job.checkpoint is not None:
                checkpoints.write_checkpoint_files(folder, *self.job.checkpoint)
            if self.job.initial_weights is not None:
                checkpoints.atomic_write_bytes(folder / checkpoints.INITIAL_WEIGHTS_FILE, self.job.initial_weights)
            devices.configure_threads(self.job.threads)
            try:
                self._trainer = trainer_for_job(relay, info.id, self.job.corpus, where=self.where)
            except Exception as exc:
                message = setup_failure_message(exc)
                if message is None:
                    raise
                relay.set_status(info.id, RunStatus.FAILED, message)
                return
            if self._stop.is_set():
                self._trainer.request_stop()
            self._trainer.run()
        except Exception as exc:  # a bug, reported like a worker process that crashed: resumable from the checkpoint
            relay.set_status(info.id, RunStatus.INTERRUPTED,
                             ended_unexpectedly_message(f": {type(exc).__name__}: {str(exc)[:200]}"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self.log.finish()
