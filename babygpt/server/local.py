"""The local backend: each run trains in a worker process of this machine (``python -m babygpt.server.worker RUN``).

This is the default and needs nothing installed beyond the library. The scheduler divides the machine's cores
among the running workers and tells them when their share changes (SIGUSR1 after writing the new count to the
store); a worker outlives a restarted server, which finds it again by its process id and adopts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from babygpt.errors import ended_unexpectedly_message, out_of_memory_message
from babygpt.model.sizing import JOB_MEMORY_ENV, ModelLimits
from babygpt.server.backend import WatchedJob, worker_pythonpath
from babygpt.server.gpus import GPU_SHARE_ENV, GpuAssigner
from babygpt.server.settings import SchedulerSettings, model_limits_from_env
from babygpt.server.worker import THREADS_SIGNAL
from babygpt.status import RunStatus
from babygpt.store.runs import RunInfo, RunStore, process_alive

WORKER_LOG = "worker.log"
STOPPED_WHILE_STARTING = "Stopped while it was starting, before its first step: nothing was trained or kept."
OUT_OF_MEMORY_MARKS = ("MemoryError", "can't allocate memory", "std::bad_alloc", "out of memory")


class Job(WatchedJob):
    """One worker process training one run: launched here, or adopted after a server restart."""

    def __init__(self, store: RunStore, info: RunInfo, threads: int, on_exit: Callable[[Job], None],
                 adopt_pid: int | None = None, memory_bytes: int | None = None, gpu: str | None = None,
                 gpu_share: float | None = None):
        self.store, self.info, self.on_exit = store, info, on_exit
        self.stop_requested = False
        self.exit_message = ""
        self.process: subprocess.Popen | None = None
        self.log_offset = 0
        if adopt_pid is None:
            env = dict(os.environ, BABYGPT_HOME=str(store.home.resolve()), OMP_NUM_THREADS=str(threads),
                       PYTHONPATH=worker_pythonpath())
            if memory_bytes:  # the worker limits its own memory to this, so running out fails it alone
                env[JOB_MEMORY_ENV] = str(memory_bytes // 2**20)
            if gpu is not None:  # the job sees one GPU, and takes at most its share of that GPU's memory
                env["CUDA_VISIBLE_DEVICES"] = gpu
                env[GPU_SHARE_ENV] = f"{gpu_share:.4f}"
            # the worker's stderr goes to a file, not a pipe: a worker outlives a restarted server, and writing
            # to a pipe whose reader died would kill it
            with open(store.run_dir(info.id) / WORKER_LOG, "ab") as log:
                self.log_offset = log.tell()  # what this worker writes starts here (an earlier attempt's is above)
                self.process = subprocess.Popen([sys.executable, "-m", "babygpt.server.worker", info.id], env=env,
                                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
            self.pid = self.process.pid
            store.set_pid(info.id, self.pid)
        else:
            self.pid = adopt_pid
        self._watch(self._supervise, f"babygpt-job-{info.id}")

    def _supervise(self) -> None:
        if self.process is not None:
            code = self.process.wait()
        else:
            while process_alive(self.pid):
                time.sleep(0.5)
            code = None
        still_training = self.store.recorded_as_training(self.info.id)  # the worker recorded no end of its own
        if still_training and self.stop_requested and code == -signal.SIGTERM:
            # Stop pressed while the worker was still starting, before it listens for Stop: what was asked, not a
            # crash (and the run must end, or its owner could start nothing else)
            self.exit_message = STOPPED_WHILE_STARTING
            self.store.set_status(self.info.id, RunStatus.STOPPED, self.exit_message)
        elif still_training:
            # the worker died without recording an end (killed, out of memory, a crash)
            lines = _last_lines(self.store.run_dir(self.info.id) / WORKER_LOG, self.log_offset)
            if any(mark in line for line in lines for mark in OUT_OF_MEMORY_MARKS):
                # it ran out of memory where it could not say so itself (Python's own MemoryError, a C++ abort)
                self.exit_message = out_of_memory_message("where it could not say so itself")
                self.store.set_status(self.info.id, RunStatus.FAILED, self.exit_message)
            else:
                self.exit_message = ended_unexpectedly_message((f" (exit code {code})" if code is not None else "")
                                                               + (f": {lines[-1].rstrip('.')}" if lines else ""))
                self.store.set_status(self.info.id, RunStatus.INTERRUPTED, self.exit_message)
        self.on_exit(self)

    def stop(self, wait: float = 0.0) -> None:
        """Ask the worker to stop after its current step; it writes a checkpoint first."""
        self.stop_requested = True
        if process_alive(self.pid):
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if wait:
            self.thread.join(wait)

    def tell_threads(self, threads: int) -> None:
        """Write the new share and signal the worker once it listens (it installs its handler before 'running')."""
        self.store.set_threads(self.info.id, threads)
        if self.store.get(self.info.id).status is RunStatus.RUNNING:
            try:
                os.kill(self.pid, THREADS_SIGNAL)
            except ProcessLookupError:
                pass


def _last_lines(path: Path, start: int = 0, max_bytes: int = 4096) -> list[str]:
    """The non-empty lines of the file's end, from ``start`` at the earliest."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(start, path.stat().st_size - max_bytes))
            return [line for line in fh.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return []


def _gpu_of(pid: int | None) -> str | None:
    """The GPU a running worker was given (its CUDA_VISIBLE_DEVICES), read back after a server restart."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = [entry.split(b"=", 1)[1].decode() for entry in environ if entry.startswith(b"CUDA_VISIBLE_DEVICES=")]
    return found[0] if found else None


def _is_worker(pid: int | None) -> bool:
    try:
        return b"babygpt.server.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class LocalBackend:
    """Worker processes on this machine: as many at once as the settings' slots, the cores shared among them."""

    name = "local"
    shares_cores = True  # the scheduler re-divides this machine's cores whenever a job starts or ends

    def __init__(self, settings: SchedulerSettings):
        self.settings = settings
        self.gpus = GpuAssigner(settings.gpus, settings.jobs_per_gpu) if settings.gpus else None

    def slots(self) -> int:
        return self.settings.slots

    def limits(self) -> ModelLimits:
        """This machine's memory shared by the jobs that train at once."""
        return model_limits_from_env(self.settings.slots)

    def threads_per_job(self) -> int:
        return self.settings.threads_per_job or 1

    def describe(self) -> str:
        if self.gpus is None:
            return f"{self.settings.slots} job(s) at once on {self.settings.usable_cores} core(s)"
        return (f"{self.settings.slots} job(s) at once on {len(self.gpus.gpus)} GPU(s) "
                f"(up to {self.gpus.jobs_per_gpu} a GPU) and {self.settings.usable_cores} core(s)")

    def _released(self, on_exit: Callable[[Job], None]) -> Callable[[Job], None]:
        def ended(job: Job) -> None:
            if self.gpus is not None:
                self.gpus.release(job.run_id)
            on_exit(job)
        return ended

    def start(self, store: RunStore, info: RunInfo, threads: int, on_exit: Callable[[Job], None],
              memory_bytes: int | None = None) -> Job:
        gpu = self.gpus.take(info.id) if self.gpus is not None else None
        return Job(store, info, threads, self._released(on_exit), memory_bytes=memory_bytes, gpu=gpu,
                   gpu_share=self.gpus.memory_share if self.gpus is not None else None)

    def adopt(self, store: RunStore, on_exit: Callable[[Job], None]) -> list[Job]:
        """Workers that outlived a restarted server (alive, and still a worker: pids are reused); each keeps the
        GPU it was given."""
        jobs = []
        for info in store.live():
            if not _is_worker(info.pid):
                continue
            gpu = _gpu_of(info.pid) if self.gpus is not None else None
            if gpu is not None:
                self.gpus.hold(info.id, gpu)
            jobs.append(Job(store, info, info.threads or 1, self._released(on_exit), adopt_pid=info.pid))
        return jobs

    def gpu_load(self) -> dict[str, int]:
        """Jobs on each GPU now (empty without GPUs)."""
        return self.gpus.load() if self.gpus is not None else {}

    def close(self) -> None:
        """Nothing to release: workers are independent processes and outlive the server by design."""
