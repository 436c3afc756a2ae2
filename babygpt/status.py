"""A run's status: one enum, and the groups of statuses every rule asks about, defined once.

The values are the strings the run store has always written, so old databases read unchanged.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    QUEUED = "queued"  # waiting for a free slot, in order
    STARTING = "starting"  # claimed by the scheduler; its worker is loading
    RUNNING = "running"  # a worker is training it
    STOPPING = "stopping"  # shown only, never stored: stop was asked and the worker is finishing its step
    DONE = "done"  # reached max_iters
    STOPPED = "stopped"  # stopped by its owner (or the teacher) at a checkpoint
    FAILED = "failed"  # ended by an error, with a message
    INTERRUPTED = "interrupted"  # its process died (a server restart, a lost machine); resumable

    def __str__(self) -> str:  # "queued", not "RunStatus.QUEUED", in messages and f-strings
        return self.value

    __format__ = str.__format__

    @property
    def training(self) -> bool:
        """A worker is (or should be) training it."""
        return self in TRAINING

    @property
    def active(self) -> bool:
        """Queued or training: the run still belongs to the scheduler."""
        return self in ACTIVE

    @property
    def ended(self) -> bool:
        """Nothing is running it: it can be resumed, exported or deleted."""
        return self in ENDED


TRAINING = frozenset({RunStatus.STARTING, RunStatus.RUNNING, RunStatus.STOPPING})
STORED_TRAINING = (RunStatus.STARTING.value, RunStatus.RUNNING.value)  # what the store holds while a worker trains
ACTIVE = frozenset({RunStatus.QUEUED, *TRAINING})
ENDED = frozenset({RunStatus.DONE, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED})
