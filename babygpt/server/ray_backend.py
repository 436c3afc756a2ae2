"""The Ray backend: each run trains in an actor on whichever machine of a Ray cluster has room for it.

Chosen by ``BABYGPT_RAY_ADDRESS`` (``auto``, ``host:port`` or ``ray://host:10001``). The scheduler still decides
*when* a run starts (queue, one run per user, quotas, limits, ownership); this module decides *where*:

* **Resources declared.** An actor asks Ray for the CPUs of its thread share (``BABYGPT_THREADS_PER_JOB``, else 1:
  one thread a job trains the most per core), a fraction of a GPU (``BABYGPT_GPUS_PER_JOB``, e.g. 0.25) and the
  memory its model needs for training; Ray places it on a node with all three free. Jobs at once = the jobs that
  fit on the live nodes, recounted as nodes come and go.
* **No shared disk.** The server sends the run's row, its text and, to resume, its checkpoint files
  (``relay.RelayedJob``); the actor trains through the same code as a local worker and streams back events
  (metric rows, samples, attention snapshots, checkpoints, status) that the server applies to its run store, the
  one source of truth. The runtime records ``where`` = ``ray:<node id>``.
* **Faults.** Stop asks the actor to stop after the step (it checkpoints). Actors are named and detached, in a
  namespace of this run store: a restarted server finds the ones still training and adopts them, replaying their
  event log from the start (exactly-once, see ``relay``); actors of runs no longer training are killed, so none are
  orphaned. A node lost mid-run marks that run interrupted, resumable from the last checkpoint the server holds;
  other runs and the queue are untouched.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError

from babygpt.errors import BabyGPTError, ended_unexpectedly_message, out_of_memory_message
from babygpt.model.sizing import ModelLimits, training_memory_bytes
from babygpt.server.backend import WatchedJob, worker_pythonpath
from babygpt.server.relay import EventLog, RelayedJob, RelayedTraining, apply_events
from babygpt.server.settings import SchedulerSettings, gpus_per_job, model_limits_from_env
from babygpt.status import RunStatus
from babygpt.store.runs import RunInfo, RunStore

NAMESPACE_PREFIX = "babygpt-"
ACTOR_PREFIX = "run-"
EVENT_INTERVAL_S = 0.25  # events gather this long before they travel: one message per batch of steps, not per step
CAPACITY_TTL_S = 2.0  # how long a count of the cluster's room is reused (pages ask for it on every refresh)
# A finished job waits this long for a server to collect its last events (a server that is down for a while adopts
# it when it comes back), then ends itself so that no actor outlives its use.
FINISHED_LINGER_S = 3600.0


@dataclass(frozen=True)
class ClusterSettings:
    address: str
    gpus_per_job: float = 0.0

    @classmethod
    def from_env(cls, address: str) -> ClusterSettings:
        return cls(address, gpus_per_job())


def store_namespace(store: RunStore) -> str:
    """One Ray namespace per run store (this host and its folder): two servers sharing a cluster never adopt, or
    clean up, each other's actors."""
    key = f"{socket.gethostname()}:{store.home.resolve()}"
    return NAMESPACE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:12]


def actor_name(run_id: str) -> str:
    return ACTOR_PREFIX + run_id


def find_actor(namespace: str, run_id: str) -> Any:
    """The actor training ``run_id`` for the store of ``namespace``, or None."""
    try:
        return ray.get_actor(actor_name(run_id), namespace=namespace)
    except ValueError:
        return None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with words, when nothing listens at ``host:port`` (Ray itself retries for minutes)."""
    if address == "auto":
        return  # Ray finds the cluster started on this machine, or says at once that there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BabyGPTError(f"BABYGPT_RAY_ADDRESS must be auto, host:port or ray://host:port (got {address!r}).")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BabyGPTError(
            f"No Ray cluster answers at {address!r} (BABYGPT_RAY_ADDRESS): {exc.strerror or exc}. Start one with "
            "`ray start --head` there, or unset BABYGPT_RAY_ADDRESS to train on this machine.") from exc


def connect(address: str) -> None:
    """Join the cluster once per server process (a test, or the app's cached scheduler, may have already)."""
    check_reachable(address)
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BabyGPTError(
            f"Could not reach the Ray cluster at {address!r} (BABYGPT_RAY_ADDRESS): {str(exc).splitlines()[0]}. "
            "Start one with `ray start --head`, or unset BABYGPT_RAY_ADDRESS to train on this machine.") from exc


@ray.remote(max_concurrency=8)  # training runs in a thread of its own; events, stop and status calls answer beside it
class TrainingActor:
    """One run, trained on the node Ray placed it on; its events wait here until the server has them all."""

    def __init__(self, linger_s: float = FINISHED_LINGER_S) -> None:
        self.log = EventLog()
        self.linger_s = linger_s
        self.training: RelayedTraining | None = None
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.node_ip = ray.util.get_node_ip_address()

    def start(self, job: RelayedJob) -> dict[str, str]:
        """Begin training (once: a server that adopts this actor calls it again and changes nothing)."""
        if self.training is None:
            self.training = RelayedTraining(job, self.log, f"ray:{self.node_id}")
            threading.Thread(target=self._train_then_linger, name=f"babygpt-train-{job.info.id}", daemon=True).start()
        return {"node_id": self.node_id, "node_ip": self.node_ip}

    def _train_then_linger(self) -> None:
        self.training.run()
        time.sleep(self.linger_s)  # a server kills this actor as soon as it has every event; none came
        os._exit(0)

    def events(self, first: int = 0):
        """A streaming generator of event batches from number ``first``; it ends after the job's last event."""
        while True:
            batch = self.log.since(first, wait_s=1.0)
            first = batch.next
            if batch.events or batch.finished:
                yield batch
            if batch.finished:
                return
            time.sleep(EVENT_INTERVAL_S)

    def request_stop(self) -> None:
        if self.training is not None:
            self.training.request_stop()


class RayJob(WatchedJob):
    """The server's side of one actor: starts (or adopts) it, applies its events to the store, records its end."""

    def __init__(self, backend: RayBackend, store: RunStore, info: RunInfo, threads: int,
                 on_exit: Callable[[RayJob], None], actor: Any = None):
        self.backend, self.store, self.info, self.threads, self.on_exit = backend, store, info, threads, on_exit
        self.stop_requested = False
        self.exit_message = ""
        self.node: dict[str, str] = {}
        self._actor = actor
        self._released = threading.Event()  # the server is closing: leave the actor training, to be adopted
        self._last_step = 0
        self._checkpoint_step: int | None = None
        self._watch(self._supervise, f"babygpt-ray-{info.id}")

    def stop(self, wait: float = 0.0) -> None:
        self.stop_requested = True
        if self._actor is not None:
            self._actor.request_stop.remote()
        if wait:
            self.thread.join(wait)

    def tell_threads(self, threads: int) -> None:
        """A Ray job keeps the CPUs it declared; Ray, not this server, shares a node's cores."""

    def release(self) -> None:
        self._released.set()

    # -- the watching thread --------------------------------------------------------------------------
    def _supervise(self) -> None:
        try:
            ended = self._follow()
        except BabyGPTError as exc:  # the run cannot be sent (its text is not on this server): as a worker would
            ended = (RunStatus.FAILED, str(exc))
        except RayActorError as exc:
            ended = self._lost(exc)
        except Exception as exc:  # lost touch with the cluster, or a bug: the checkpoint is kept either way
            traceback.print_exc(file=sys.stderr)
            ended = (RunStatus.INTERRUPTED, ended_unexpectedly_message(f": {type(exc).__name__}: {str(exc)[:200]}"))
        if ended is None:  # released: the server is closing and a restarted one adopts the actor
            return
        if self.store.exists(self.run_id) and self.store.get(self.run_id).status.training:
            status, message = ended
            self.exit_message = message
            self.store.set_status(self.run_id, status, message)
        self.backend.kill(self._actor)
        self.on_exit(self)

    def _follow(self) -> tuple[RunStatus, str] | None:
        """Start the actor (or find it started) and apply its events until its last; None when released."""
        if self._actor is None:
            self._actor = self.backend.create_actor(self.info, self.threads)
        self.node = ray.get(self._actor.start.remote(RelayedJob.from_store(self.store, self.info, self.threads)))
        if self.stop_requested:
            self._actor.request_stop.remote()
        for ref in self._actor.events.remote(0):
            batch = ray.get(ref)
            for event in batch.events:
                self._note(event)
            apply_events(self.store, self.run_id, batch.events)
            if self._released.is_set():
                return None
        # every event applied; a job always records its end, so reaching here without one is a crash
        return RunStatus.INTERRUPTED, ended_unexpectedly_message(" without recording its end")

    def _note(self, event: tuple) -> None:
        if event[0] == "metrics" and event[1]:
            self._last_step = max(self._last_step, max(row.step for row in event[1]))
        elif event[0] == "checkpoint":
            self._checkpoint_step = event[1]

    def _lost(self, exc: RayActorError) -> tuple[RunStatus, str]:
        """Why the actor is gone, in words: its machine left, Ray's memory monitor ended it, or it crashed."""
        node_id = self.node.get("node_id", "")
        where = f"Ray node {node_id[:8]} at {self.node['node_ip']}" if self.node else "its Ray node"
        if "low on memory" in str(exc):
            return RunStatus.FAILED, out_of_memory_message(f"on {where} (Ray's memory monitor ended it)")
        node_died = "because its node" in str(exc)  # Ray's words when the actor's machine left the cluster
        if not node_died and node_id and self.backend.node_alive(node_id):
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            return RunStatus.INTERRUPTED, ended_unexpectedly_message(f" on {where}: {detail}")
        resume = (f"resume continues from its last checkpoint, step {self._checkpoint_step}"
                  if self._checkpoint_step is not None else "it had no checkpoint yet, so resume starts at step 0")
        return RunStatus.INTERRUPTED, (f"The machine it trained on ({where}) left the cluster at step "
                                       f"{self._last_step}; {resume}.")


class RayBackend:
    """Runs train in actors on a Ray cluster; the server applies what they stream back to its store."""

    name = "ray"
    shares_cores = False

    def __init__(self, store: RunStore, settings: SchedulerSettings, cluster: ClusterSettings):
        self.settings, self.cluster = settings, cluster
        connect(cluster.address)
        self.namespace = store_namespace(store)
        self._jobs: list[RayJob] = []
        self._capacity: tuple[float, int] = (-CAPACITY_TTL_S - 1, 0)

    # -- room on the cluster --------------------------------------------------------------------------
    def threads_per_job(self) -> int:
        return self.settings.threads_per_job or 1

    def _fits(self, resources: dict[str, float]) -> int:
        """How many jobs one node holds, by its CPUs and (when jobs ask for one) its GPUs."""
        fit = int(resources.get("CPU", 0) // self.threads_per_job())
        if self.cluster.gpus_per_job > 0:
            fit = min(fit, int(resources.get("GPU", 0) / self.cluster.gpus_per_job + 1e-9))
        return fit

    def _nodes(self) -> list[dict[str, Any]]:
        return [n for n in ray.nodes() if n.get("Alive")]

    def node_alive(self, node_id: str) -> bool:
        return any(n.get("NodeID") == node_id for n in self._nodes())

    def slots(self) -> int:
        at, count = self._capacity
        if time.monotonic() - at > CAPACITY_TTL_S:
            count = sum(self._fits(n["Resources"]) for n in self._nodes())
            if self.settings.max_jobs:
                count = min(count, self.settings.max_jobs)
            self._capacity = (time.monotonic(), count)
        return count

    def limits(self) -> ModelLimits:
        """The tightest node decides: its memory shared by the jobs it holds at once."""
        per_job = [(n["Resources"].get("memory", 0), self._fits(n["Resources"])) for n in self._nodes()]
        per_job = [(memory, fit) for memory, fit in per_job if fit > 0 and memory > 0]
        if not per_job:
            return model_limits_from_env(1)
        memory, fit = min(per_job, key=lambda p: p[0] / p[1])
        return model_limits_from_env(fit, machine_memory=int(memory))

    def describe(self) -> str:
        nodes = self._nodes()
        cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
        gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
        return (f"Ray cluster: {len(nodes)} node(s), {cpus:g} CPU(s)" + (f", {gpus:g} GPU(s)" if gpus else "")
                + f", {self.slots()} job(s) at once")

    # -- actors ---------------------------------------------------------------------------------------
    def create_actor(self, info: RunInfo, threads: int) -> Any:
        """A named, detached actor asking for the run's resources; a stale one of the same name goes first."""
        stale = self.find(info.id)
        if stale is not None:
            self.kill(stale)
        model, batch = info.record.model, info.record.training.batch_size
        options = dict(name=actor_name(info.id), namespace=self.namespace, lifetime="detached", num_cpus=threads,
                       num_gpus=self.cluster.gpus_per_job, memory=training_memory_bytes(model, batch), max_restarts=0,
                       runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath(), "OMP_NUM_THREADS": str(threads)}})
        for attempt in range(20):  # a killed actor's name is released a moment after ray.kill returns
            try:
                return TrainingActor.options(**options).remote()
            except ValueError:
                if attempt == 19:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def find(self, run_id: str) -> Any:
        return find_actor(self.namespace, run_id)

    def kill(self, actor: Any) -> None:
        if actor is not None:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone with its node
                pass

    def start(self, store: RunStore, info: RunInfo, threads: int, on_exit: Callable[[RayJob], None],
              memory_bytes: int | None = None) -> RayJob:
        job = RayJob(self, store, info, threads, on_exit)
        self._jobs = [j for j in self._jobs if j.alive] + [job]
        return job

    def adopt(self, store: RunStore, on_exit: Callable[[RayJob], None]) -> list[RayJob]:
        """Take over the actors of runs whose server is gone, and kill actors whose run no longer trains."""
        adopted = []
        for run_id in store.orphans():
            actor = self.find(run_id)
            if actor is not None:
                store.set_pid(run_id, os.getpid())  # ours now: no longer read as interrupted
                info = store.get(run_id)
                adopted.append(RayJob(self, store, info, info.threads or 1, on_exit, actor=actor))
        self._jobs.extend(adopted)
        self.kill_strays(store)
        return adopted

    def kill_strays(self, store: RunStore) -> list[str]:
        """Actors of this store's namespace whose run is not training (deleted, ended, marked interrupted while
        the server was down): killed, so nothing holds a node's resources for nobody."""
        killed = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") != self.namespace or not entry["name"].startswith(ACTOR_PREFIX):
                continue
            run_id = entry["name"][len(ACTOR_PREFIX):]
            if store.exists(run_id) and store.get(run_id).status.training:
                continue
            self.kill(self.find(run_id))
            killed.append(run_id)
        return killed

    def close(self) -> None:
        """Let go of the running actors without stopping them: a restarted server adopts them."""
        for job in self._jobs:
            job.release()
