"""The seam between deciding *when* a run trains (the scheduler) and *where* it does (a backend).

A backend starts a claimed run and hands back a job the scheduler watches; after a server restart it finds the
jobs still training and hands them back too. Two exist: worker processes on this machine (``local``, the default,
nothing to install) and actors on a Ray cluster (``ray``); the scheduler chooses (``scheduler.backend_from_env``).
This module is the interface both implement and imports neither of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Protocol

from babygpt.model.sizing import ModelLimits
from babygpt.shipped import code_root
from babygpt.store.runs import RunInfo, RunStore


def worker_pythonpath() -> str:
    """The PYTHONPATH a job's process gets: the folder that holds this ``babygpt`` first, so a worker imports the
    code its server runs whatever the server's current directory, in a checkout or an install."""
    return os.pathsep.join(filter(None, [str(code_root()), os.environ.get("PYTHONPATH")]))


class JobHandle(Protocol):
    """One run being trained, as the scheduler sees it, wherever it trains."""

    info: RunInfo
    stop_requested: bool
    exit_message: str
    thread: threading.Thread  # watches the job; it ends after the job's end is recorded in the store

    @property
    def run_id(self) -> str: ...

    @property
    def alive(self) -> bool: ...

    def stop(self, wait: float = 0.0) -> None:
        """Ask the job to stop after its current step; it checkpoints first."""

    def tell_threads(self, threads: int) -> None:
        """A new share of this machine's cores (local jobs only)."""


class WatchedJob:
    """What every backend's job shares: the run it trains and the server thread that watches it until its end
    is recorded."""

    info: RunInfo
    thread: threading.Thread

    def _watch(self, target: Callable[[], None], name: str) -> None:
        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()

    @property
    def run_id(self) -> str:
        return self.info.id

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


class Backend(Protocol):
    name: str
    shares_cores: bool  # True: the scheduler divides this machine's cores among the jobs and tells them

    def slots(self) -> int:
        """How many jobs may train at once now."""

    def limits(self) -> ModelLimits:
        """What one job may use where jobs train (parameters, memory)."""

    def threads_per_job(self) -> int:
        """Threads a new job gets when the backend, not the scheduler, decides."""

    def describe(self) -> str:
        """One line for the sidebar: where jobs train and how many at once."""

    def start(self, store: RunStore, info: RunInfo, threads: int, on_exit: Callable[[JobHandle], None],
              memory_bytes: int | None = None) -> JobHandle: ...

    def adopt(self, store: RunStore, on_exit: Callable[[JobHandle], None]) -> list[JobHandle]:
        """The jobs that outlived a restarted server, taken over with their runs."""

    def close(self) -> None: ...
