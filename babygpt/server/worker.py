"""``python -m babygpt.server.worker RUN``: train (or resume) a recorded run in its own process.

The app's jobs run here rather than in a server thread: the loop gets whole cores and its own
interpreter (no GIL shared with page rendering), a crash cannot take the server down, and the
run store is the only channel: the worker writes metrics and checkpoints, pages read them.
SIGTERM asks it to stop after the current step and keep a checkpoint; SIGUSR1 says the scheduler
wrote a new thread count for it into the store, applied between steps.
"""

from __future__ import annotations

import resource
import signal
import sys
import threading

from babygpt.errors import BabyGPTError
from babygpt.orchestration.runs import setup_failure_message, trainer_for_job
from babygpt.server.settings import job_gpu_share, job_memory_mb
from babygpt.status import RunStatus
from babygpt.store.corpora import run_corpus
from babygpt.store.runs import RunStore
from babygpt.training import devices
from babygpt.training.trainer import Callbacks, StepMetrics, Trainer

THREADS_SIGNAL = signal.SIGUSR1  # from the local backend: "your thread count in the store changed"


class ThreadShare(Callbacks):
    """Applies the scheduler's thread count between steps, when it signals a change."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self.changed = threading.Event()
        self.changed.set()  # read the share once the trainer runs: it may have changed while starting

    def on_step(self, trainer: Trainer, m: StepMetrics) -> None:
        if self.changed.is_set():
            self.changed.clear()
            threads = self.store.get(self.run_id).threads
            if threads and trainer.device.type == "cpu":
                devices.configure_threads(threads)


class LogNotices(Callbacks):
    """Notes for the user (the store shows them in the app) also go to the run's worker.log."""

    def on_notice(self, trainer: Trainer, message: str) -> None:
        print(f"note: {message}", file=sys.stderr, flush=True)


def limit_memory(device_type: str = "cpu") -> int | float | None:
    """Cap what this job may allocate, so a model that does not fit fails here, with a message, instead of taking
    what other jobs need. On the CPU the heap is capped at the scheduler's per-job memory (RLIMIT_DATA), so the
    kernel's out-of-memory killer never picks a process (the server's perhaps); on a GPU, PyTorch's allocator is
    held to the job's share of that GPU's memory (the host heap is left alone: the CUDA driver maps large private
    areas of its own). Returns the limit (bytes, or the GPU share), or None when none is set."""
    if device_type == "cuda":
        share = job_gpu_share()
        if not share:
            return None
        import torch

        torch.cuda.set_per_process_memory_fraction(share, 0)  # device 0: the one GPU this job sees
        return share
    memory_mb = job_memory_mb()
    if not memory_mb:
        return None
    limit = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m babygpt.server.worker RUN", file=sys.stderr)
        return 2
    asked_to_stop = threading.Event()  # Stop pressed while the trainer is being built: kept for it, not fatal
    signal.signal(signal.SIGTERM, lambda *_: asked_to_stop.set())
    store = RunStore()
    run_id = args[0]
    limit_memory(_device_type(store, run_id))
    share = ThreadShare(store, run_id)
    signal.signal(THREADS_SIGNAL, lambda *_: share.changed.set())  # before 'running': the scheduler signals only then
    try:
        trainer = trainer_for_job(store, run_id, run_corpus(store, store.get(run_id)), callbacks=[share, LogNotices()])
    except Exception as exc:
        message = setup_failure_message(exc)
        if message is None:
            raise
        store.set_status(run_id, RunStatus.FAILED, message)
        print(f"error: {message}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: trainer.request_stop())
    signal.signal(signal.SIGINT, lambda *_: trainer.request_stop())
    if asked_to_stop.is_set():
        trainer.request_stop()
    result = trainer.run()
    return 1 if result.status is RunStatus.FAILED else 0


def _device_type(store: RunStore, run_id: str) -> str:
    """Where the run will train; a device that is absent is reported later, by the trainer's own check."""
    try:
        return devices.resolve_device(store.get(run_id).record.training.device).type
    except BabyGPTError:
        return "cpu"


if __name__ == "__main__":
    sys.exit(main())
