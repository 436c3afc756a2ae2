"""What the store hands out: a run's row (``RunInfo``), a metric row, and the curves drawn from them.

A run whose recorded status says a worker trains it, though that process is gone, is *reported* interrupted
here without writing anything: reading the store never changes it. ``RunStore.mark_interrupted`` writes it down,
called by the scheduler and by the command line before they act on a run.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from babygpt.config import broken_ideas  # the config names the switches a run was trained without
from babygpt.errors import ended_unexpectedly_message
from babygpt.status import STORED_TRAINING, RunStatus
from babygpt.store.run_record import RunRecord, RunRecordError, parse_run_record


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    created_at: float
    status: RunStatus
    preset: str
    config: dict[str, Any]
    data_name: str | None  # the row's column as stored: read ``text_name`` (older rows hold an upload's path)
    data_sha256: str | None
    message: str | None = None
    owner: str | None = None  # the user key of whoever started it in the app; None for the command line
    pid: int | None = None  # the process that last recorded the status (the worker, while training)
    queued_at: float | None = None
    group_id: str | None = None  # runs started together, e.g. one ladder race
    threads: int | None = None  # CPU threads the scheduler gives the run's worker
    metrics_version: int = 0  # bumped when metrics are truncated (a resume), so incremental readers restart
    challenge_id: str | None = None  # the class challenge it was started for (an entry, or a check of one)
    priority: int = 0  # queue order before queued_at: a teacher's checks wait behind every student's run

    @cached_property
    def _parsed(self) -> RunRecord | RunRecordError:
        try:
            return parse_run_record(self.config)
        except RunRecordError as exc:
            return exc

    @property
    def record(self) -> RunRecord:
        """The run's configuration, typed (``run_record``), parsed once per row read; raises ``RunRecordError`` for
        a stored config this version cannot read."""
        parsed = self._parsed
        if isinstance(parsed, RunRecordError):
            raise RunRecordError(f"Run {self.id}: {parsed}")
        return parsed

    @property
    def readable(self) -> RunRecord | None:
        """The record, or None for a config this version cannot read: what a list or a label shows such a run by."""
        parsed = self._parsed
        return None if isinstance(parsed, RunRecordError) else parsed

    @property
    def label(self) -> str:
        """The name with the end of the id, and the idea it was trained without: two runs stay apart in every list."""
        base = self.id if self.name == self.id else f"{self.name} · {self.id[-4:]}"
        broken = broken_ideas(self.readable.model.to_dict()) if self.readable else []
        return f"{base} · without {', '.join(broken)}" if broken else base

    @property
    def imported(self) -> bool:
        """Weights trained elsewhere and imported (a Hugging Face folder, or a run archive, whose history was not
        trained here and cannot be trusted): never on the class board's table of this lesson's runs."""
        return bool(self.readable and self.readable.data.imported_from)

    @property
    def check_of(self) -> str | None:
        """The challenge entry this run re-trains with another seed (a teacher's check), else None."""
        link = self.readable.challenge if self.readable else None
        return link.check_of if link else None

    @property
    def is_check(self) -> bool:
        """A teacher's check of a challenge entry: the one answer the board, the class board and the run tables
        read (it is the teacher's run, never the student's)."""
        return self.check_of is not None

    @property
    def text_sha256(self) -> str | None:
        """What identifies the run's text: its content's sha256 (two runs trained on the same text have the same,
        whatever each text was named)."""
        recorded = self.readable.data.sha256 if self.readable else None
        return recorded or self.data_sha256

    @property
    def text_name(self) -> str | None:
        """The run's text by the name a person knows it by, never a path of this server: the record's name, else
        the row's (where runs recorded before this kept an upload's path, only its file name is shown). Where the
        text was read is the record's ``data.source``; what identifies it, ``text_sha256``."""
        recorded = self.readable.data.name if self.readable else None
        if recorded:
            return recorded
        return Path(self.data_name).name or None if self.data_name else None


@dataclass(frozen=True)
class RunSummary:
    """One run as a table lists it (``RunStore.summaries``): its size, how far it trained, its best validation loss,
    its throughput, whose it is and where it trained. Model fields are None for a config this version cannot read.

    Throughput is ``babygpt.pace``'s: the run's training tokens ÷ its wall-clock training time (the last logged
    ``elapsed_s``); ``tokens``, ``trained_s`` and ``trained_until`` (when its weights last changed) let a race add
    its runs up over the wall time any of them trained."""

    id: str
    name: str
    label: str
    preset: str
    status: RunStatus
    tokenizer: str | None  # the tokenizer's kind
    data: str | None  # the run's text by its name (``RunInfo.text_name``), never a path
    text_sha256: str | None  # what identifies its text (``RunInfo.text_sha256``)
    n_layer: int | None
    n_embd: int | None
    n_head: int | None
    block_size: int | None
    vocab_size: int | None
    steps: int
    best_val_loss: float | None
    tokens_per_sec: float | None
    tokens: int
    trained_s: float | None
    trained_until: float | None
    created_at: float
    owner: str | None
    group_id: str | None
    check: bool  # a teacher's check (``RunInfo.is_check``)
    imported: bool
    where: str
    best_val_bpc: float | None
    best_val_bpb: float | None
    size: str | None = None  # ``babygpt.model.sizing.size_in_words``: the one way a model's size is written

    def row(self) -> dict[str, Any]:
        """The summary as a table's row (a pandas frame's columns by these names)."""
        return asdict(self)


@dataclass(frozen=True)
class MetricRow:
    step: int
    split: str  # "train" (running step loss), "train_eval" and "val" (estimate_loss)
    loss: float | None
    lr: float | None = None
    tokens_per_sec: float | None = None
    elapsed_s: float | None = None


def curves(rows: list[MetricRow]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split metric rows into the per-step training curve and the evaluations (train and val per step)."""
    train = [{"step": r.step, "loss": r.loss, "lr": r.lr, "elapsed_s": r.elapsed_s, "tokens_per_sec": r.tokens_per_sec}
             for r in rows if r.split == "train"]
    train_evals = {r.step: r.loss for r in rows if r.split == "train_eval"}
    evals = [{"step": r.step, "train_loss": train_evals.get(r.step, r.loss), "val_loss": r.loss,
              "elapsed_s": r.elapsed_s} for r in rows if r.split == "val"]
    return train, evals


def process_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a zombie that nobody reaped counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def orphaned(status: str, pid: int | None) -> bool:
    """Recorded as training by a process that no longer exists: the run was interrupted."""
    return status in STORED_TRAINING and bool(pid) and not process_alive(pid)


INTERRUPTED_MESSAGE = ended_unexpectedly_message()


def run_info(row: sqlite3.Row) -> RunInfo:
    status, message = RunStatus(row["status"]), row["message"]
    if orphaned(status, row["pid"]):
        status, message = RunStatus.INTERRUPTED, INTERRUPTED_MESSAGE
    return RunInfo(row["id"], row["name"], row["created_at"], status, row["preset"], json.loads(row["config_json"]),
                   row["data_name"], row["data_sha256"], message, row["owner"], row["pid"], row["queued_at"],
                   row["group_id"], row["threads"], row["metrics_version"], row["challenge_id"], row["priority"])
