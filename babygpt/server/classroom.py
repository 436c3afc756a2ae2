"""The class as one picture: the live board of a lesson's runs, the challenge, and the teacher's controls.

Everything the Class page shows and does goes through ``Classroom``, so the rules (who may stop everything, what
an entry must obey, since when a run belongs to this lesson) hold for the app, the benchmarks and the tests alike.

**Cost.** Thirty projected or open boards must not cost thirty times one. The board's rows are computed at most
once per ``BOARD_TTL_S`` for every viewer together (one incremental metrics read per run, shared with the training
pages through ``LiveProgress``); each viewer then only draws them. ``python -m bench.class_board`` measures it.

**Units.** Runs of one lesson may cut their text into different tokens (char, GPT-2, BPEs of several sizes), so
the board reads every run's validation loss in bits per byte of its validation text (``ValidationText``, kept with
each run), never in nats per token, which would compare a character with a word.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import ValidationText
from babygpt.model.sizing import size_in_words
from babygpt.orchestration.challenge import (
    CHECK_HANDLE,
    ChallengeRules,
    board_of,
    challenge_corpus,
    check_entry,
    check_plans,
    end_now,
    set_rules,
)
from babygpt.orchestration.plan import TrainingPlan
from babygpt.scoring.leaderboard import BEST_OF_EACH, Board
from babygpt.server.progress import JobSnapshot
from babygpt.server.scheduler import Scheduler
from babygpt.server.users import Actor, check_name_free, check_teacher, clean_handle, public_handle
from babygpt.status import RunStatus
from babygpt.store.classroom import ChallengeRecord
from babygpt.store.runs import RunInfo
from babygpt.text.bpe import BPESettings
from babygpt.text.corpus import Corpus

BOARD_TTL_S = 1.0  # every viewer of the board shares one computation per second
CURVE_POINTS = 120  # validation points drawn per run: 30 runs stay a light chart
LAST_LINE_CHARS = 80
TOP_CHECKED = 3


@dataclass(frozen=True)
class BoardRow:
    """One run as the class board shows it."""

    run_id: str
    handle: str
    label: str
    rung: str
    size: str
    status: RunStatus
    step: int
    max_iters: int
    val_bpb: float | None  # the last validation loss in bits per byte (None: not evaluated yet, or no text size)
    tokens_per_sec: float
    eta_s: float | None
    where: str
    last_line: str
    owner: str | None
    role: str = ""  # "entry", "check" or "" (a run outside the challenge)
    imported: bool = False  # weights imported, never trained here: no step, speed or place to show
    queue_position: int | None = None  # 1 = next to start
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, validation bits per byte)
    bytes_known: bool = True  # False: a run recorded before runs kept their validation text's size (no bits per byte)


def board_order(rows: list[BoardRow]) -> list[BoardRow]:
    """The order the Class board lists its rows in (``Classroom.rows`` gives them oldest first): training first,
    then the queue in its order, then finished runs, newest first."""
    def key(row: BoardRow) -> tuple[int, int]:
        if row.status.training:
            return (0, 0)
        if row.status is RunStatus.QUEUED:
            return (1, row.queue_position or 0)
        return (2, 0)
    return sorted(reversed(rows), key=key)


def local_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now)
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def last_line(text: str | None) -> str:
    """The last non-empty line a run wrote, on one line and bounded."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= LAST_LINE_CHARS else line[: LAST_LINE_CHARS - 1] + "…"


def thin(points: list[tuple[int, float]], n: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """At most ``n`` points, evenly chosen, always keeping the last."""
    if len(points) <= n:
        return points
    stride = len(points) / n
    kept = [points[int(i * stride)] for i in range(n - 1)]
    return [*kept, points[-1]]


def _role(info: RunInfo) -> str:
    if not info.challenge_id:
        return ""
    return "check" if info.is_check else "entry"


def owner_name(owner: str | None, me: str | None, check: bool = False,
               handles: dict[str, str] | None = None) -> str:
    """Whose a run is, on every page that names an owner (Runs table, run pickers, sidebar): "you", the teacher's
    check of a challenge entry, the name the classmate chose for the board (``handles``, by user key; the same
    name the Class board shows), else their short hash, or the command line. Takes the owner as the store gives
    it (a table column can turn a missing owner into a float: read owners from the rows, not from a DataFrame).
    Plain text: escape it for where it is shown."""
    if check:
        return CHECK_HANDLE
    if owner is not None and owner == me:
        return "you"
    return (handles or {}).get(owner or "", "") or public_handle(owner)


class Classroom:
    """The board and the teacher's controls over one scheduler (one per server, like the scheduler)."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.store = scheduler.store
        self._lock = threading.Lock()
        self._names_lock = threading.Lock()
        self._cached: tuple[float, float, list[BoardRow]] | None = None  # (computed at, since, rows)
        self._board: tuple[float, str, Board | None] | None = None  # (computed at, challenge id, board)

    # -- names ----------------------------------------------------------------------------------
    def set_handle(self, user: str, text: str) -> str:
        """Give ``user`` a name on the board: one of its own (``users.clean_handle``) that no other student has
        (``users.check_name_free``), checked and saved under one lock so two students cannot take it at once."""
        handle = clean_handle(text)
        with self._names_lock:
            check_name_free(user, handle, self.store.handles())
            self.store.set_handle(user, handle)
        self._changed()
        return handle

    def handle_of(self, owner: str | None, handles: dict[str, str] | None = None) -> str:
        handles = self.store.handles([owner] if owner else []) if handles is None else handles
        return handles.get(owner or "", "") or public_handle(owner)

    def _namer(self, owners: list[str | None]):
        handles = self.store.handles(sorted({o for o in owners if o}))
        return lambda owner: self.handle_of(owner, handles)

    # -- the lesson -----------------------------------------------------------------------------
    def lesson_start(self, now: float | None = None) -> float:
        """Since when a finished run belongs to this lesson: what the teacher set, else today's midnight."""
        now = time.time() if now is None else now
        return self.store.lesson_start() or local_midnight(now)

    def set_lesson_start(self, actor: Actor, when: float) -> None:
        check_teacher(actor, "set when the lesson began")
        self.store.set_lesson_start(when)
        self._changed()

    # -- the board ------------------------------------------------------------------------------
    def rows(self, now: float | None = None) -> list[BoardRow]:
        """Every run training or queued now and every run of this lesson, computed once a second for all viewers."""
        now = time.time() if now is None else now
        since = self.lesson_start(now)
        with self._lock:
            if self._cached and now - self._cached[0] < BOARD_TTL_S and self._cached[1] == since:
                return self._cached[2]
            # an imported run did not train in this lesson, whatever its metrics say: it has no place on the board
            infos = [info for info in self.store.runs_since(since) if not info.imported]
            snaps = self.scheduler.snapshots(infos)
            samples = self.store.last_samples([i.id for i in infos])
            name = self._namer([i.owner for i in infos])
            rows = [self._row(info, snap, samples.get(info.id), name) for info, snap in zip(infos, snaps, strict=True)]
            self._cached = (now, since, rows)
            return rows

    @property
    def rows_computed_at(self) -> float:
        """When the rows every viewer now sees were computed: a key for what views derive from them (the chart)."""
        return self._cached[0] if self._cached else 0.0

    def _row(self, info: RunInfo, snap: JobSnapshot, sample: tuple[int, str] | None, name) -> BoardRow:
        model = info.record.model
        validation = ValidationText.from_config(info.config)
        curve = [(e["step"], validation.bits_per_byte(e["val_loss"])) for e in snap.evals if validation]
        role = _role(info)
        return BoardRow(
            run_id=info.id, handle=CHECK_HANDLE if role == "check" else name(info.owner), label=info.label,
            rung=model.preset, size=size_in_words(model),
            status=snap.status, step=snap.step, max_iters=snap.max_iters, val_bpb=curve[-1][1] if curve else None,
            tokens_per_sec=snap.tokens_per_sec, eta_s=snap.eta_s,
            where="–" if snap.status is RunStatus.QUEUED or info.imported else
            info.record.where,
            last_line=last_line(sample[1] if sample else ""), owner=info.owner, role=role,
            queue_position=snap.queue_position, curve=thin(curve), imported=info.imported,
            bytes_known=validation is not None or info.imported)

    # -- the challenge --------------------------------------------------------------------------
    def challenge(self) -> ChallengeRecord | None:
        return self.store.latest_challenge()

    def open_challenge(self, now: float | None = None) -> ChallengeRecord | None:
        """The challenge students can enter now (None when there is none, or its end time has passed)."""
        record = self.store.open_challenge()
        if record is None or ChallengeRules.from_dict(record.rules).ended(now):
            return None
        return record

    def set_challenge(self, actor: Actor, corpus: Corpus, tokenizer_kind: str, val_fraction: float,
                      budget_tokens: int, ends_at: float | None = None, entry_rule: str = BEST_OF_EACH,
                      bpe: BPESettings | None = None) -> ChallengeRecord:
        """Set a challenge on the teacher's text, tokenizer and split; ``bpe``: the teacher's BPE (size and
        pre-split, within this server's bound), which every entry then trains with."""
        check_teacher(actor, "set a challenge")
        if bpe is not None:
            bpe.validate(self.scheduler.settings.max_bpe_vocab)
        rules = set_rules(corpus, tokenizer_kind, val_fraction, budget_tokens, ends_at, entry_rule=entry_rule, bpe=bpe)
        if self.store.open_challenge() is not None:  # an open one past its end time is frozen first
            self.board()
        kept = self.scheduler.persist(corpus)
        record = self.store.create_challenge({**rules.to_dict(), "corpus_source": kept.source})
        self._changed()
        return record

    def corpus(self, record: ChallengeRecord) -> Corpus:
        return challenge_corpus(self.store, ChallengeRules.from_dict(record.rules))

    def resume_corpus(self, info: RunInfo, chosen: Corpus) -> Corpus:
        """The text a run resumes on: a challenge entry's is the challenge's, whatever the Data page says now;
        any other run's is the text chosen (the resume checks it is the run's own)."""
        return self.corpus(self.store.challenge(info.challenge_id)) if info.challenge_id else chosen

    def enter(self, user: str, plan: TrainingPlan, name: str | None = None) -> RunInfo:
        """Start a run for the open challenge, after checking it obeys the rules."""
        record = self.open_challenge()
        if record is None:
            raise BabyGPTError("No challenge is open: the teacher sets one on the Class page.")
        check_entry(ChallengeRules.from_dict(record.rules), plan)
        return self.scheduler.submit(user, plan, name, challenge={"id": record.id, "check_of": None})

    def board(self, now: float | None = None) -> Board | None:
        """The newest challenge's board, computed at most once per ``BOARD_TTL_S`` for every viewer."""
        now = time.time() if now is None else now
        record = self.challenge()
        if record is None:
            return None
        with self._lock:
            cached = self._board
            if cached and cached[1] == record.id and now - cached[0] < BOARD_TTL_S and record.ended_at is None:
                return cached[2]
            board = board_of(self.store, record, self._namer(self.store.challenge_owners(record.id)), now)
            self._board = (now, record.id, board)
            return board

    def _changed(self) -> None:
        """Something the teacher did changes what the board shows: recompute it at the next look."""
        self._board = None
        self._cached = None

    def end_challenge(self, actor: Actor, now: float | None = None) -> Board:
        check_teacher(actor, "end the challenge")
        record = self.store.open_challenge()
        if record is None:
            raise BabyGPTError("No challenge is open.")
        board = end_now(self.store, record, self._namer(self.store.challenge_owners(record.id)), now)
        self._changed()
        return board

    def check_top(self, actor: Actor, n: int = TOP_CHECKED) -> list[RunInfo]:
        """Re-train the top ``n`` entries with other seeds at low priority, to measure the seed-to-seed spread."""
        check_teacher(actor, "check the top entries")
        record = self.open_challenge()
        board = self.board()
        if record is None or board is None:
            raise BabyGPTError("No challenge is open.")
        top = [s.entry.run_id for s in board.standings[:n]]
        if not top:
            raise BabyGPTError("No entry has been scored yet: an entry is scored when it stops training.")
        plans = check_plans(self.store, record, top)
        if not plans:
            raise BabyGPTError("The top entries are already being checked with other seeds.")
        return self.scheduler.submit_checks(
            actor, [(plan, name, {"id": record.id, "check_of": checked}) for plan, name, checked in plans])

    # -- the teacher's controls -----------------------------------------------------------------
    def stop_run(self, actor: Actor, run_id: str) -> None:
        check_teacher(actor, "stop a student's run from the board")
        self.scheduler.stop(actor, run_id)

    def stop_all(self, actor: Actor) -> int:
        """Stop every training run after its current step (checkpoints kept); returns how many."""
        check_teacher(actor, "stop every run")
        return self._stop_each(actor, [job.run_id for job in self.scheduler.running()])

    def clear_queue(self, actor: Actor) -> int:
        """Take every waiting run off the queue; returns how many."""
        check_teacher(actor, "clear the queue")
        return self._stop_each(actor, [info.id for info in self.store.queued()])

    def _stop_each(self, actor: Actor, run_ids: list[str]) -> int:
        done = 0
        for run_id in run_ids:
            try:
                self.scheduler.stop(actor, run_id)
                done += 1
            except BabyGPTError:
                pass  # it ended, or started, between the listing and the stop
        return done
