"""The one exception type for mistakes a user can make.

Pages catch it and show ``st.error``; the CLI prints it and exits non-zero. Anything
else escaping the library is a bug, not a user error, and keeps its traceback.
"""


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
