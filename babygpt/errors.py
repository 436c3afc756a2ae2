"""The one exception type for mistakes a user can make.

Pages catch it and show ``st.error``; the CLI prints it and exits non-zero. Anything
else escaping the library is a bug, not a user error, and keeps its traceback.
"""

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class BabyGPTError(ValueError):
    """A problem with the user's input or environment, with a message that says what to do."""


# What a run's status message says when its job ends badly; the trainer, the worker and the scheduler each meet
# these ends, and a student should read the same words whichever noticed first.
def out_of_memory_message(where: str) -> str:
    """``where``: e.g. "at step 120" or "while building the model"."""
    return (f"The job ran out of memory {where}; try a smaller model (n_embd, n_layer), batch_size or block_size. "
            "The last checkpoint is kept.")


def ended_unexpectedly_message(detail: str = "") -> str:
    """``detail``: what is known of the end, e.g. " (exit code -9): Killed"."""
    return f"The training process ended unexpectedly{detail}. Resume continues from the last checkpoint."


class ImportRefused(BabyGPTError):
    """A file from outside (a run archive, a Hugging Face folder or its zip) that is not what it claims, or would cost
    this server more than such a file needs. The message names what and why, and never a path of this server."""


class DiskFull(BabyGPTError):
    """The disk that holds the runs is full: nothing new can be saved until space is freed."""


DISK_FULL_MESSAGE = ("The server's disk is full, so nothing new can be saved right now; what is already saved is "
                     "safe. The teacher can free space by deleting runs nobody needs on the Runs page.")
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left, or the disk quota of the server's user spent


def is_full_disk(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS


@contextmanager
def full_disk_as_sentence() -> Iterator[None]:
    """Writing to a full disk raises an ``OSError`` whose text names the file (a server path): it becomes
    ``DiskFull``'s sentence. Any other ``OSError`` passes unchanged."""
    try:
        yield
    except OSError as exc:
        if is_full_disk(exc):
            raise DiskFull(DISK_FULL_MESSAGE) from exc
        raise
