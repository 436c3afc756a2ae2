"""Training sparse autoencoders as jobs of the scheduler: a queue, a fair share of the cores, progress and stop.

An SAE request is checked before anything starts — the run has weights and the layer exists, the cost (memory,
time, tokens: ``babygpt.features.cost``) is within this server's limits, one SAE job per person — and refused with
the reason otherwise. Accepted, it waits in this queue until the scheduler has a free slot and no run is waiting
(``Scheduler.start_side_job``): it then counts among the jobs when the cores are divided, and is told its share as a
run is. It trains in its own process (``babygpt.server.sae_worker``), which writes its progress to ``job.json`` in
the SAE's folder, where ``status`` reads it; Stop ends training at the next step and keeps the SAE learned so far.
The queue lives in this server process: a restart forgets SAEs that had not started (their requests are cheap to
make again); one that was training is recorded as interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from babygpt.errors import BabyGPTError
from babygpt.features.cost import SAECost, SAELimits, estimate_cost
from babygpt.features.fit import EVAL_TOKENS
from babygpt.features.sae import SAEConfig
from babygpt.model.sizing import JOB_MEMORY_ENV
from babygpt.server.backend import WatchedJob, worker_pythonpath
from babygpt.server.scheduler import Scheduler
from babygpt.server.users import Actor, can_manage, check_can_manage, check_can_train_sae
from babygpt.server.worker import THREADS_SIGNAL
from babygpt.store import features as stored_features
from babygpt.store.runs import RunInfo, RunStore, process_alive

THREADS_FILE = "threads"  # the scheduler's share for a running SAE job, beside its job.json
POLL_S = 2.0  # how often a waiting queue asks the scheduler for a slot
ENDED = ("done", "stopped", "failed")  # a job file's states after its worker recorded its end


@dataclass(frozen=True)
class SAEJobStatus:
    """What a page shows about one SAE job: ``state`` queued, running, done, stopped, failed or interrupted."""

    key: str
    run_id: str
    name: str
    state: str
    stage: str = ""
    step: int = 0
    steps: int = 0
    nmse: float | None = None
    dead: int | None = None
    queue_position: int | None = None
    message: str = ""
    cost: str = ""


@dataclass
class _Request:
    key: str
    owner: str | None
    info: RunInfo
    config: SAEConfig
    tokens: int
    cost: SAECost
    job_file: Path


class SAEProcess(WatchedJob):
    """One SAE worker process, as the scheduler sees a job: alive, stop, a new share of the cores."""

    def __init__(self, store: RunStore, request: _Request, threads: int, on_exit, memory_bytes: int | None):
        self.info, self.request, self.on_exit = request.info, request, on_exit
        self.stop_requested, self.exit_message = False, ""
        (request.job_file.parent / THREADS_FILE).write_text(str(threads))
        stored_features.update_job(request.job_file, state="starting", threads=threads, queued=False)
        env = dict(os.environ, BABYGPT_HOME=str(store.home.resolve()), OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=worker_pythonpath())
        if memory_bytes:
            env[JOB_MEMORY_ENV] = str(memory_bytes // 2**20)
        with open(request.job_file.parent / "worker.log", "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "babygpt.server.sae_worker", request.info.id,
                                             str(request.job_file)], env=env, stdout=subprocess.DEVNULL, stderr=log,
                                            start_new_session=True)
        stored_features.update_job(request.job_file, pid=self.process.pid)
        self._watch(self._supervise, f"babygpt-sae-{request.key}")

    def _supervise(self) -> None:
        code = self.process.wait()
        job = stored_features.read_job(self.request.job_file)
        if job.get("state") in ("starting", "running"):  # it died without recording an end
            self.exit_message = f"The SAE's training ended unexpectedly (exit code {code})."
            stored_features.update_job(self.request.job_file, state="failed", message=self.exit_message,
                                       ended_at=time.time())
        self.on_exit(self)

    def stop(self, wait: float = 0.0) -> None:
        self.stop_requested = True
        if process_alive(self.process.pid):
            try:
                os.kill(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if wait:
            self.thread.join(wait)

    def tell_threads(self, threads: int) -> None:
        (self.request.job_file.parent / THREADS_FILE).write_text(str(threads))
        if stored_features.read_job(self.request.job_file).get("state") != "running":
            return  # not listening yet: it reads the file once it is
        try:
            os.kill(self.process.pid, THREADS_SIGNAL)
        except ProcessLookupError:
            pass


class SAEJobs:
    """The server's SAE jobs over its scheduler: submit (checked and refused with a reason), queue, status, stop."""

    def __init__(self, scheduler: Scheduler, limits: SAELimits | None = None):
        self.scheduler, self.store = scheduler, scheduler.store
        self.limits = limits or SAELimits.from_env(scheduler.slots)
        self._queue: deque[_Request] = deque()
        self._running: dict[str, SAEProcess] = {}
        self._lock = threading.RLock()
        self._poller: threading.Thread | None = None

    @staticmethod
    def key(run_id: str, config: SAEConfig) -> str:
        return f"{run_id}/{stored_features.sae_name(config)}"

    def check(self, actor: Actor, run_id: str, config: SAEConfig, tokens: int) -> tuple[RunInfo, SAECost]:
        """Every refusal a request can meet, in sentences, before anything is queued."""
        info = self.scheduler.run_info(run_id)
        check_can_train_sae(actor, info)
        if info.status.active:
            raise BabyGPTError(f"Run {info.label} is {info.status}; train an SAE on it once it has stopped or finished.")
        if not self.store.has_weights(info.id):
            raise BabyGPTError(f"Run {info.label} has no saved weights yet: there is no model to read features from.")
        model = info.record.model
        if not model.use_attention:
            raise BabyGPTError("The bigram model has no layers to read features from: pick a run with attention.")
        if not 0 <= config.layer < model.n_layer:
            raise BabyGPTError(f"The model has {model.n_layer} layer(s), numbered 0 to {model.n_layer - 1}; there is "
                               f"no layer {config.layer}.")
        if config.hook == "mlp_out" and not model.use_ffn:
            raise BabyGPTError("This rung has no feed-forward, so no mlp_out: read resid_post instead.")
        if config.d_in != model.n_embd:
            raise BabyGPTError(f"The SAE is {config.d_in} wide but the model's layers are {model.n_embd}.")
        mine = actor.user and any(r.owner == actor.user for r in self._unfinished())
        if mine:
            raise BabyGPTError("Your SAE is still training or waiting; stop it (or wait for it) before starting another.")
        cost = estimate_cost(model, config.validate(), tokens + EVAL_TOKENS, eval_tokens=EVAL_TOKENS,
                             cores=max(1, self.scheduler.settings.usable_cores // max(1, self.scheduler.slots)))
        self.limits.check(cost)
        return info, cost

    def submit(self, actor: Actor, run_id: str, config: SAEConfig, tokens: int) -> SAEJobStatus:
        """Queue an SAE's training (refused with the reason if it cannot run here) and start it if a slot is free."""
        with self._lock:  # the check and the queueing are one step: two tabs cannot both pass the one-SAE limit
            info, cost = self.check(actor, run_id, config, tokens)
            key = self.key(info.id, config)
            if key in self._running or any(r.key == key for r in self._queue):
                raise BabyGPTError("This SAE is already training or waiting.")
            path = stored_features.job_file(self.store, info.id, config)
            stored_features.write_job(path, {"state": "queued", "config": config.to_dict(), "tokens": tokens,
                                             "owner": actor.user, "queued_at": time.time(), "cost": cost.describe()})
            self._queue.append(_Request(key, actor.user, info, config, tokens, cost, path))
        self.pump()
        return self.status(key)

    def _unfinished(self) -> list[_Request]:
        """The requests still waiting or training. A worker records its end in its job file a moment before its
        process is reaped (and ``_ended`` runs), so a job whose file says it ended no longer counts: a page that
        redraws as soon as the SAE is done must not still refuse its owner."""
        with self._lock:
            running = [p.request for p in self._running.values()]
            waiting = list(self._queue)
        return [*waiting, *(r for r in running if stored_features.read_job(r.job_file).get("state") not in ENDED)]

    def pump(self) -> None:
        """Start waiting SAEs while the scheduler has a slot for them; keep asking while any wait."""
        with self._lock:
            while self._queue:
                request = self._queue[0]
                started = self.scheduler.start_side_job(request.key, lambda threads, r=request: self._start(r, threads))
                if not started:
                    break
                self._queue.popleft()
            if self._queue and (self._poller is None or not self._poller.is_alive()):
                self._poller = threading.Thread(target=self._poll, name="babygpt-sae-queue", daemon=True)
                self._poller.start()

    def _poll(self) -> None:
        while True:
            time.sleep(POLL_S)
            with self._lock:
                if not self._queue:
                    return
            self.pump()

    def _start(self, request: _Request, threads: int) -> SAEProcess:
        job = SAEProcess(self.store, request, threads, self._ended, self.limits.memory_bytes)
        self._running[request.key] = job
        return job

    def _ended(self, job: SAEProcess) -> None:
        with self._lock:
            self._running.pop(job.request.key, None)
        self.scheduler.dispatch()  # a run waiting for this slot goes first
        self.pump()

    def status(self, key: str) -> SAEJobStatus:
        """A job's state and progress, queued, training or ended."""
        run_id, _, name = key.partition("/")
        with self._lock:
            position = next((i + 1 for i, r in enumerate(self._queue) if r.key == key), None)
        folder = stored_features.features_dir(self.store, run_id) / name
        job = stored_features.read_job(folder / stored_features.JOB_FILE)
        if not job:
            raise BabyGPTError("There is no SAE job of these settings on this run.")
        state = job.get("state", "queued")
        if state in ("starting", "running") and key not in self._running and not process_alive(job.get("pid")):
            state = "interrupted"  # its worker is gone and nobody here watches it (a restarted server)
        return SAEJobStatus(key, run_id, name, state, str(job.get("stage", "")), int(job.get("step", 0)),
                            int(job.get("steps", 0)), job.get("nmse"), job.get("dead"), position,
                            str(job.get("message", "")), str(job.get("cost", "")))

    def stop(self, actor: Actor, key: str, wait: float = 0.0) -> None:
        """Stop a training SAE at its next step (it keeps what it learned), or take a waiting one off the queue."""
        with self._lock:
            waiting = next((r for r in self._queue if r.key == key), None)
            job = self._running.get(key)
        request = waiting or (job.request if job is not None else None)
        if request is None:
            raise BabyGPTError("This SAE is not training.")
        if not self._may_stop(actor, request.owner, request.info.id):
            check_can_manage(actor, self.scheduler.run_info(request.info.id), "stop")  # refused, in a sentence
        if waiting is not None:
            with self._lock:
                if waiting in self._queue:
                    self._queue.remove(waiting)
            stored_features.update_job(waiting.job_file, state="stopped", message="Taken off the queue.")
            return
        job.stop(wait)

    def may_stop(self, actor: Actor, key: str) -> bool:
        """Whether ``actor`` may stop this job (the page shows Stop only then): whoever asked for it, or whoever
        may manage its run."""
        with self._lock:
            request = next((r for r in [*self._queue, *self._requests_running()] if r.key == key), None)
        run_id, _, name = key.partition("/")
        owner = request.owner if request is not None else stored_features.read_job(
            stored_features.features_dir(self.store, run_id) / name / stored_features.JOB_FILE).get("owner")
        return self._may_stop(actor, owner, run_id)

    def _may_stop(self, actor: Actor, owner: str | None, run_id: str) -> bool:
        return bool(actor.user and actor.user == owner) or can_manage(actor, self.scheduler.run_info(run_id))

    def _requests_running(self) -> list[_Request]:
        return [p.request for p in self._running.values()]

    def queued(self) -> list[str]:
        with self._lock:
            return [r.key for r in self._queue]
