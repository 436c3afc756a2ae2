"""The read model of live training: a run's progress as every view draws it (``JobSnapshot``), its speed and time
left as ``babygpt.pace`` defines them against the wall clock, and the metrics read incrementally so many open tabs
cost one small query a tick (``LiveMetrics``, shared through ``LiveProgress``). Nothing here starts or stops a job."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from babygpt.config import TrainConfig
from babygpt.lessons.baselines import Baselines
from babygpt.pace import seconds_left, seconds_per_step, tokens_per_second
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunInfo, RunStore, curves, run_tokens_per_step


@dataclass
class JobSnapshot:
    """A consistent copy of a run's progress for drawing, whether it is queued, training or finished."""

    run_id: str
    label: str
    owner: str | None
    status: RunStatus
    step: int
    max_iters: int
    tokens_per_sec: float  # babygpt.pace: wall-clock, evaluation pauses included; 0.0 unless training
    eta_s: float | None
    device: str
    dtype: str
    threads: int | None
    vocab_size: int
    train_config: TrainConfig
    train: list[dict[str, float]] = field(default_factory=list)  # step, loss, lr, elapsed_s
    evals: list[dict[str, float]] = field(default_factory=list)  # step, train_loss, val_loss, elapsed_s
    message: str = ""
    queue_position: int | None = None  # 1 = next to start
    queue_wait_s: float | None = None
    baselines: Baselines | None = None

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def training(self) -> bool:
        return self.status.training

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.max_iters) if self.max_iters else 0.0


class LiveMetrics:
    """A run's metrics read incrementally: each refresh fetches only the rows logged since the last one.

    One reader per run is shared by every tab that shows it, so N viewers cost one small query a tick,
    not N reads of the whole history. A resume truncates the history; ``metrics_version`` says so."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self._lock = threading.Lock()
        self._version = -1
        self._cursor = 0
        self.train: list[dict] = []
        self.evals: list[dict] = []
        self._pending_train_eval: dict[int, float] = {}

    def refresh(self, info: RunInfo) -> None:
        with self._lock:
            if info.metrics_version != self._version:
                self._version, self._cursor = info.metrics_version, 0
                self.train, self.evals, self._pending_train_eval = [], [], {}
            rows, self._cursor = self.store.metrics_since(self.run_id, self._cursor)
            self._add(rows)

    def _add(self, rows: list[MetricRow]) -> None:
        for r in rows:
            if r.split == "train_eval":
                self._pending_train_eval[r.step] = r.loss
        train, evals = curves(rows)
        for e in evals:
            e["train_loss"] = self._pending_train_eval.pop(e["step"], e["train_loss"])
        self.train.extend(train)
        self.evals.extend(evals)


class LiveProgress:
    """Snapshots of every run a page shows, from one bounded set of incremental readers shared by all sessions."""

    MAX_READERS = 64  # past this, readers of runs nobody is watching train are dropped

    def __init__(self, store: RunStore):
        self.store = store
        self._readers: dict[str, LiveMetrics] = {}
        self._lock = threading.Lock()

    def _reader(self, run_id: str, training: set[str]) -> LiveMetrics:
        with self._lock:  # every session's script thread may ask at once
            reader = self._readers.get(run_id)
            if reader is None:
                if len(self._readers) > self.MAX_READERS:
                    for stale in [k for k in self._readers if k not in training][: self.MAX_READERS // 2]:
                        del self._readers[stale]
                reader = self._readers[run_id] = LiveMetrics(self.store, run_id)
            return reader

    def snapshot(self, info: RunInfo, training_ids: set[str], stop_requested: bool = False, exit_message: str = "",
                 queue_position: int | None = None, queue_wait_s: float | None = None) -> JobSnapshot:
        """``info`` as drawn now: ``stop_requested`` when its job was asked to stop, ``exit_message`` what its last
        job said on ending, and its place in the queue when it waits."""
        reader = self._reader(info.id, training_ids)
        reader.refresh(info)
        record = info.record
        cfg = record.training
        train = list(reader.train)
        step = max(train[-1]["step"] if train else 0, reader.evals[-1]["step"] if reader.evals else 0)
        runtime = record.runtime  # what the worker settled on: device, dtype (None before it started)
        status = RunStatus.STOPPING if info.status.training and stop_requested else info.status
        training = status.training
        evals = list(reader.evals)
        pace = seconds_per_step(train, evals, cfg.eval_interval) if training else None
        return JobSnapshot(
            run_id=info.id, label=info.label, owner=info.owner, status=status, step=step, max_iters=cfg.max_iters,
            tokens_per_sec=tokens_per_second(pace, run_tokens_per_step(info)),
            eta_s=seconds_left(pace, step, cfg.max_iters),
            device=runtime.device if runtime and runtime.device else cfg.device,
            dtype=runtime.dtype if runtime and runtime.dtype else cfg.dtype, threads=info.threads,
            vocab_size=record.model.vocab_size, train_config=cfg, train=train, evals=evals,
            message=info.message or exit_message, queue_position=queue_position, queue_wait_s=queue_wait_s,
            baselines=Baselines.from_config(info.config),
        )
