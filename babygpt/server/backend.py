"""The seam between deciding *when* a run trains (the scheduler) and *where* it does (a backend).

A backend starts a claimed run and hands back a job the scheduler watches; after a server restart it finds the
jobs still training and hands them back too. Two exist: worker processes on this machine (``local``, the default,
nothing to install) and actors on a Ray cluster (``ray``), chosen by ``BABYGPT_RAY_ADDRESS``. Ray is imported only
when that is set, so a server without it never starts or needs Ray.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from babygpt.errors import BabyGPTError
from babygpt.model.sizing import ModelLimits
from babygpt.store.runs import RunInfo, RunStore

if TYPE_CHECKING:
    from babygpt.server.scheduler import SchedulerSettings

RAY_ADDRESS_ENV = "BABYGPT_RAY_ADDRESS"


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


def backend_from_env(store: RunStore, settings: SchedulerSettings) -> Backend:
    """Ray actors when ``BABYGPT_RAY_ADDRESS`` is set (``auto``, ``host:port`` or ``ray://host:10001``), else
    worker processes on this machine."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if address:
        try:
            from babygpt.server.ray_backend import ClusterSettings, RayBackend
        except ModuleNotFoundError as exc:
            if exc.name != "ray":
                raise
            raise BabyGPTError(f"{RAY_ADDRESS_ENV} is set but Ray is not installed here: "
                               "pip install \".[cluster]\" (or pip install ray), or unset it to train on this machine.") from exc

        return RayBackend(store, settings, ClusterSettings.from_env(address))
    from babygpt.server.local import LocalBackend

    return LocalBackend(settings)
