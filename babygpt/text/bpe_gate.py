"""How many BPEs one server learns at once: learning runs in the server's own process (a student waits for it on
the Data page, a tokenizer race learns up to three), so a class pressing Learn together must not take every core
and the memory of several trainers at the same time. Past the teacher's limit a learner is told so in a sentence
and tries again, instead of queueing unseen behind the others."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from babygpt.errors import BabyGPTError

DEFAULT_BPE_LEARNING = 2  # BPEs learned at once on one server unless the teacher sets another limit


class LearningGate:
    """At most ``limit`` BPEs learned at once; one more is refused with a sentence, never made to wait."""

    def __init__(self, limit: int = DEFAULT_BPE_LEARNING):
        if limit < 1:
            raise BabyGPTError(f"At least one BPE must be learnable at a time (got {limit}).")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            many = "one tokenizer is" if self.limit == 1 else f"{self.limit} tokenizers are"
            raise BabyGPTError(f"{many.capitalize()} being learned on this server right now, as many as it learns "
                               "at once; try again in a few seconds.")
        try:
            yield
        finally:
            self._slots.release()
