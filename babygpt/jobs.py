"""Background training jobs: one registry per process, any number of readers.

A job is a thread that owns one worker process (``python -m babygpt.worker RUN``). The worker
trains and writes to the run store; views read snapshots from the store. So a page refresh, a
second tab or a page switch never loses a job, and drawing charts never slows the loop: the
loop does not share an interpreter (or its GIL) with the server.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babygpt.config import TrainConfig
from babygpt.data import Corpus
from babygpt.errors import BabyGPTError
from babygpt.pipeline import TrainingPlan, create_run, persist_corpus
from babygpt.runs import RunInfo, RunStore, curves

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class JobSnapshot:
    """A consistent copy of a job's progress for drawing."""

    id: str
    run_id: str
    owner: str
    status: str  # starting, running, stopping, done, stopped, failed, interrupted
    step: int
    max_iters: int
    tokens_per_sec: float
    eta_s: float | None
    device: str
    dtype: str
    vocab_size: int
    train_config: TrainConfig
    started_at: float
    train: list[dict[str, float]] = field(default_factory=list)  # step, loss, lr, elapsed_s
    evals: list[dict[str, float]] = field(default_factory=list)  # step, train_loss, val_loss, elapsed_s
    samples: list[tuple[int, str]] = field(default_factory=list)
    message: str = ""

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running", "stopping")

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.max_iters) if self.max_iters else 0.0


class Job:
    def __init__(self, job_id: str, owner: str, store: RunStore, info: RunInfo, threads: int = 0):
        self.id, self.owner, self.store, self.info = job_id, owner, store, info
        self.started_at = time.time()
        self._stop_requested = False
        self._exit_message = ""
        env = dict(os.environ, BABYGPT_HOME=str(store.home.resolve()),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])))
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.process = subprocess.Popen([sys.executable, "-m", "babygpt.worker", info.id], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._supervise, name=f"babygpt-job-{job_id}", daemon=True)
        self.thread.start()

    def _supervise(self) -> None:
        _, err = self.process.communicate()
        status = self.store.get(self.info.id).status
        if status in ("running", "queued"):
            # the worker died without recording an end (killed, out of memory, a crash)
            lines = [line for line in (err or "").strip().splitlines() if line.strip()]
            self._exit_message = (f"The training process ended unexpectedly (exit code {self.process.returncode})"
                                  + (f": {lines[-1]}" if lines else ".") + " Resume continues from the last checkpoint.")
            self.store.set_status(self.info.id, "interrupted", self._exit_message)

    def stop(self, wait: float = 0.0) -> None:
        """Ask the worker to stop after its current step; it writes a checkpoint first."""
        self._stop_requested = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        if wait:
            self.thread.join(wait)

    def snapshot(self) -> JobSnapshot:
        info = self.store.get(self.info.id)
        rows = self.store.metrics(self.info.id)
        train, evals = curves(rows)
        cfg = TrainConfig.from_dict(info.config["train"])
        step = max((r.step for r in rows), default=0)
        rate = (train[-1]["tokens_per_sec"] or 0.0) if train else 0.0
        tokens_per_step = cfg.batch_size * cfg.grad_accum * info.config["model"]["block_size"]
        runtime = info.config.get("runtime", {})  # what the worker settled on: device, dtype
        status = info.status
        if self.thread.is_alive():
            status = "stopping" if self._stop_requested else ("running" if rows else "starting")
        return JobSnapshot(
            id=self.id, run_id=info.id, owner=self.owner, status=status, step=step, max_iters=cfg.max_iters,
            tokens_per_sec=rate, eta_s=(cfg.max_iters - step) * tokens_per_step / rate if rate else None,
            device=runtime.get("device", cfg.device), dtype=runtime.get("dtype", cfg.dtype),
            vocab_size=info.config["model"]["vocab_size"], train_config=cfg,
            started_at=self.started_at, train=train, evals=evals, samples=self.store.samples(info.id),
            message=info.message or self._exit_message,
        )


class JobRegistry:
    """All jobs of this process. ``max_jobs`` caps concurrent training; each start is atomic."""

    def __init__(self, store: RunStore, max_jobs: int = 2, threads_per_job: int = 0):
        self.store = store
        self.max_jobs = max_jobs
        self.threads_per_job = threads_per_job
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

    def _launch(self, owner: str, run_id: str) -> Job:
        job = Job(str(next(self._ids)), owner, self.store, self.store.get(run_id), self.threads_per_job)
        self._jobs[job.id] = job
        return job

    def start(self, owner: str, plan: TrainingPlan, name: str | None = None) -> Job:
        with self._lock:
            self._check_capacity()
            plan = TrainingPlan(persist_corpus(self.store, plan.corpus), plan.tokenizer, plan.model_config,
                                plan.train_config, plan.split)
            info = create_run(self.store, plan, name)
            return self._launch(owner, info.id)

    def resume(self, owner: str, run_id: str, corpus: Corpus, **overrides: Any) -> Job:
        """Continue a run from its checkpoint, optionally with a new max_iters (the worker resumes it)."""
        with self._lock:
            if self.job_for_run(run_id) is not None:
                raise BabyGPTError(f"Run {run_id} is already training.")
            self._check_capacity()
            info = self.store.get(run_id)
            if not self.store.has_checkpoint(info.id):
                raise BabyGPTError(f"Run {info.id} has no checkpoint to resume from.")
            if info.data_sha256 and corpus.sha256 != info.data_sha256:
                raise BabyGPTError(f"The current corpus differs from the one run {info.id} was trained on; "
                                   f"choose {info.data_name} on the Data page to resume it.")
            if overrides:
                document = dict(info.config)
                document["train"] = TrainConfig.from_dict({**document["train"], **overrides}).to_dict()
                self.store.update_config(info.id, document)
            self.store.set_status(info.id, "queued")
            return self._launch(owner, info.id)

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
        """Delete a run unless it is training."""
        if self.job_for_run(run_id) is not None:
            raise BabyGPTError(f"Run {run_id} is training; stop it before deleting it.")
        self.store.delete(run_id)

    def stop_all(self, wait: float = 10.0) -> None:
        for race in self._races.values():
            race.stop()
        for job in self.active():
            job.stop()
        for job in self._jobs.values():
            job.thread.join(wait)
        for race in self._races.values():
            if race.thread is not None:
                race.thread.join(wait)
