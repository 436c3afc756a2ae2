"""Background training jobs: one registry per process, any number of readers.

A job is a plain thread running a ``Trainer``; it never touches the UI. It appends metrics to
an in-memory record under a lock, and views read copies (snapshots) of that record, so a page
refresh, a second tab or a page switch never slows or loses the loop.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from babygpt import devices
from babygpt.data import Corpus
from babygpt.errors import BabyGPTError
from babygpt.pipeline import TrainingPlan, resume_run, start_run
from babygpt.runs import RunInfo, RunStore
from babygpt.train import Callbacks, EvalMetrics, StepMetrics, Trainer, TrainResult


@dataclass
class JobSnapshot:
    """A consistent copy of a job's progress for drawing."""

    id: str
    run_id: str
    owner: str
    status: str  # running, stopping, done, stopped, failed
    step: int
    max_iters: int
    tokens_per_sec: float
    eta_s: float | None
    device: str
    dtype: str
    started_at: float
    train: list[dict[str, float]] = field(default_factory=list)  # step, loss, lr, elapsed_s
    evals: list[dict[str, float]] = field(default_factory=list)  # step, train_loss, val_loss, elapsed_s
    samples: list[tuple[int, str]] = field(default_factory=list)
    message: str = ""
    result: TrainResult | None = None

    @property
    def active(self) -> bool:
        return self.status in ("running", "stopping")

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.max_iters) if self.max_iters else 0.0


class Job(Callbacks):
    def __init__(self, job_id: str, owner: str, trainer: Trainer, info: RunInfo):
        self.id, self.owner, self.trainer, self.info = job_id, owner, trainer, info
        self._lock = threading.Lock()
        self._train: list[dict[str, float]] = []
        self._evals: list[dict[str, float]] = []
        self._samples: list[tuple[int, str]] = []
        self._tokens_per_sec = 0.0
        self.status = "running"
        self.message = ""
        self.result: TrainResult | None = None
        self.started_at = time.time()
        trainer.callbacks.append(self)
        self.thread = threading.Thread(target=self._run, name=f"babygpt-job-{job_id}", daemon=True)

    # -- trainer callbacks (training thread) -------------------------------------------------------
    def on_step(self, trainer: Trainer, m: StepMetrics) -> None:
        with self._lock:
            self._train.append({"step": m.step, "loss": m.loss, "lr": m.lr, "elapsed_s": m.elapsed_s})
            self._tokens_per_sec = m.tokens_per_sec

    def on_eval(self, trainer: Trainer, m: EvalMetrics) -> None:
        with self._lock:
            self._evals.append({"step": m.step, "train_loss": m.train_loss, "val_loss": m.val_loss,
                                "elapsed_s": m.elapsed_s})
            if m.sample is not None:
                self._samples.append((m.step, m.sample))

    def _run(self) -> None:
        try:
            result = self.trainer.run()
            with self._lock:
                self.result = result
                self.status = result.status
                self.message = result.message
        except Exception as exc:  # an unexpected bug must still end the job visibly
            with self._lock:
                self.status = "failed"
                self.message = f"Training crashed: {type(exc).__name__}: {exc}"
            traceback.print_exc()
            try:
                self.trainer.callbacks[0].on_failed(self.trainer, self.message)
            except Exception:
                pass

    # -- control and views (any thread) -----------------------------------------------------------
    def stop(self, wait: float = 0.0) -> None:
        with self._lock:
            if self.status == "running":
                self.status = "stopping"
        self.trainer.request_stop()
        if wait:
            self.thread.join(wait)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            step = self.trainer.step
            max_iters = self.trainer.config.max_iters
            rate = self._tokens_per_sec
            eta = (max_iters - step) * self.trainer.tokens_per_step / rate if rate > 0 else None
            return JobSnapshot(
                id=self.id, run_id=self.info.id, owner=self.owner, status=self.status, step=step,
                max_iters=max_iters, tokens_per_sec=rate, eta_s=eta,
                device=str(self.trainer.device), dtype=self.trainer.config.dtype, started_at=self.started_at,
                train=list(self._train), evals=list(self._evals), samples=list(self._samples),
                message=self.message, result=self.result,
            )


class JobRegistry:
    """All jobs of this process. ``max_jobs`` caps concurrent training; each start is atomic."""

    def __init__(self, store: RunStore, max_jobs: int = 2):
        self.store = store
        self.max_jobs = max_jobs
        self._jobs: dict[str, Job] = {}
        self._races: dict[str, Any] = {}  # ladder races: one slot each while running
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _busy_slots(self) -> int:
        return len(self.active()) + sum(1 for r in self._races.values() if r.running)

    def _check_capacity(self) -> None:
        active = self._busy_slots()
        if active >= self.max_jobs:
            raise BabyGPTError(
                f"The server is busy: {active} training job(s) are running, the limit is {self.max_jobs}. "
                "Wait for one to finish or stop yours, then start again."
            )

    def _launch(self, owner: str, make: Any) -> Job:
        with self._lock:
            self._check_capacity()
            trainer, info = make()
            job = Job(str(next(self._ids)), owner, trainer, info)
            self._jobs[job.id] = job
            job.thread.start()
            return job

    def start(self, owner: str, plan: TrainingPlan, name: str | None = None) -> Job:
        return self._launch(owner, lambda: start_run(self.store, plan, name=name))

    def resume(self, owner: str, run_id: str, corpus: Corpus, **overrides: Any) -> Job:
        if self.job_for_run(run_id) is not None:
            raise BabyGPTError(f"Run {run_id} is already training.")
        return self._launch(owner, lambda: resume_run(self.store, run_id, corpus, **overrides))

    def start_race(self, owner: str, race: Any) -> Any:
        """Run a ladder race (see babygpt.lessons.LadderRace) in one job slot."""
        with self._lock:
            self._check_capacity()
            race.owner = owner
            race.start()
            self._races[owner] = race
            return race

    def race_for(self, owner: str) -> Any:
        return self._races.get(owner)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def active(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.thread.is_alive()]

    def job_for_run(self, run_id: str) -> Job | None:
        return next((j for j in self.active() if j.info.id == run_id), None)

    def latest_for_owner(self, owner: str) -> Job | None:
        mine = [j for j in self._jobs.values() if j.owner == owner]
        return mine[-1] if mine else None

    def delete_run(self, run_id: str) -> None:
        """Delete a run unless a job of this process is training it."""
        if self.job_for_run(run_id) is not None:
            raise BabyGPTError(f"Run {run_id} is training; stop it before deleting it.")
        self.store.delete(run_id)

    def stop_all(self, wait: float = 5.0) -> None:
        for race in self._races.values():
            race.stop()
        for job in self.active():
            job.stop()
        for job in self._jobs.values():
            job.thread.join(wait)
        for race in self._races.values():
            if race.thread is not None:
                race.thread.join(wait)


def device_label() -> str:
    return ", ".join(devices.available_devices())
