"""The class as a laboratory: the teacher's experiment over the scheduler, its runs handed out and re-queued, and
its board (every finished run on the scaling law, the law, and the larger model it was tested on).

A student who joins gets the next open point as a run of their own (one run per student, like any run: their
training page follows it). Points nobody took are queued on the server when the teacher says so (owned by nobody,
behind every student's own runs, wherever the scheduler's backend trains: worker processes here or a Ray
cluster). ``sync`` applies ``orchestration.experiment.point_state`` to every point: a run whose worker died is
queued again from its last checkpoint, one that failed or was stopped is replaced by a fresh run, at most
``MAX_ATTEMPTS`` runs a point. It runs whenever a student joins, the teacher acts, or the board is read (the Class
page reads it every few seconds while any of its runs is queued or training, for every viewer), so on a projected
board a dead run is queued again within seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.lessons.scaling_law import PredictionCheck, prediction_for
from babygpt.orchestration.experiment import (
    MAX_ATTEMPTS,
    ArmFit,
    ExperimentSpec,
    Point,
    PointState,
    Result,
    check_spec,
    final_loss,
    fit_arms,
    plan_points,
    point_plan,
    point_state,
    prediction_check,
    ten_times_larger,
)
from babygpt.server.scheduler import Scheduler
from babygpt.server.users import Actor, check_teacher, public_handle
from babygpt.store.corpora import TextNotHere, TextRef, find_text
from babygpt.store.experiments import CLAIMING, ExperimentRecord, ExperimentRecords, PointRecord
from babygpt.store.runs import OwnerBusy, RunInfo
from babygpt.text.bpe import BPESettings
from babygpt.text.corpus import Corpus
from babygpt.text.measured import ValidationText
from babygpt.text.tokenizers import Tokenizer, build_tokenizer

BOARD_TTL_S = 1.0
ALREADY_RUNNING = ("You already have a run queued or training: stop it (or wait for it) before taking one of the "
                   "experiment's.")
ALL_TAKEN = "Every run of this experiment is taken: thank you! Watch the law form below."
SERVER = "the server"  # who trains a point nobody took
MACHINE = Actor(None, admin=True)  # the laboratory itself, queueing on the teacher's behalf what the teacher asked


@dataclass(frozen=True)
class PointRow:
    """One point as the board lists it."""

    point: Point
    state: PointState
    who: str  # plain text: a student's name, or the server
    owner: str | None
    run_id: str | None
    step: int
    max_iters: int
    loss: float | None  # the last validation loss in bits per byte so far
    runs: int  # runs started for it
    lost: tuple[str, ...]  # what happened to each of its runs that died
    is_prediction: bool = False


@dataclass(frozen=True)
class ExperimentView:
    """The board of one experiment, as every viewer sees it."""

    record: ExperimentRecord
    spec: ExperimentSpec
    rows: list[PointRow]
    results: list[Result]
    arms: list[ArmFit]
    checks: list[tuple[Point, PredictionCheck]]  # the tested model(s): the prediction, and what they reached

    @property
    def open_points(self) -> int:
        return sum(r.state is PointState.OPEN for r in self.rows)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[str(r.state)] = out.get(str(r.state), 0) + 1
        return out


class Laboratory:
    """The experiment's rules over one scheduler (one per server, like the scheduler and the class board)."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.store = scheduler.store
        self.records = ExperimentRecords(self.store)
        self._lock = threading.RLock()
        self._tokenizers: dict[str, tuple[Corpus, Tokenizer]] = {}
        self._cached: tuple[float, str, ExperimentView] | None = None

    # -- the teacher ----------------------------------------------------------------------------
    def start(self, actor: Actor, corpus: Corpus, tokenizer_kind: str, presets: tuple[str, ...],
              sizes: list[tuple[int, int, int]], seeds: list[int], steps: int, batch_size: int, block_size: int,
              lr: float, val_fraction: float, axis: str, on_server: bool = False,
              bpe: BPESettings | None = None) -> ExperimentRecord:
        """Plan every point (each checked, and each size planned whole on the text, before anything is recorded),
        keep the text for the workers, record the experiment; ``on_server``: queue every point now; ``bpe``: the
        teacher's BPE (kind "bpe"; None there: the library's default), which every point trains with."""
        check_teacher(actor, "start an experiment")
        if tokenizer_kind == "bpe":
            bpe = (bpe or BPESettings()).validate(self.scheduler.settings.max_bpe_vocab)
        kept = self.scheduler.persist(corpus)
        spec = check_spec(ExperimentSpec(kept.name, kept.source, kept.sha256, tokenizer_kind, tuple(presets),
                                         int(steps), int(batch_size), int(block_size), float(lr),
                                         float(val_fraction), axis, bpe.vocab_size if bpe else 0,
                                         (bpe.split or "none") if bpe else ""))
        points = plan_points(spec, sizes, seeds)
        tokenizer = build_tokenizer(tokenizer_kind, kept.text, spec.bpe_settings())
        for point in {(p.preset, p.n_layer, p.n_head, p.n_embd): p for p in points}.values():
            plan = point_plan(spec, point, kept, tokenizer)  # the text long enough, the sizes valid
            self.scheduler.limits.check(plan.model_config, plan.train_config.batch_size)
        with self._lock:
            record = self.records.create(spec.to_dict(), [p.to_dict() for p in points], on_server)
            self._tokenizers[record.id] = (kept, tokenizer)
            self._cached = None
        self.sync()
        return record

    def queue_rest(self, actor: Actor) -> int:
        """Queue on the server every point no student has taken (and every one reopened later); returns how many."""
        check_teacher(actor, "queue the experiment's runs")
        record = self._open()
        self.records.set_on_server(record.id)
        before = sum(p.run_id is None for p in self.records.points(record.id))
        self.sync()
        return before - sum(p.run_id is None for p in self.records.points(record.id))

    def test_larger(self, actor: Actor) -> Point:
        """Queue the model about ten times the largest point, with what the law predicts for it now, frozen."""
        check_teacher(actor, "run the larger model")
        record = self._open()
        view = self.view(force=True)
        if any(p.is_prediction for p in self.records.points(record.id)):
            raise BabyGPTError("The larger model is already queued or trained: its prediction is on the board.")
        fit = view.arms[0].fit
        if fit is None:
            raise BabyGPTError(f"No law to test yet: {view.arms[0].why}")
        spec = view.spec
        point = ten_times_larger(spec, [Point.from_dict(p.settings) for p in self.records.points(record.id)])
        plan = point_plan(spec, point, *self._text(record))
        self.scheduler.limits.check(plan.model_config, plan.train_config.batch_size)
        check = prediction_for(fit, spec.x_of(point))
        added = self.records.add_prediction_point(record.id, point.to_dict(), {
            "x": check.x, "predicted": check.predicted, "predicted_err": check.predicted_err,
            "run_err": check.run_err, "points": fit.points})
        self._queue_on_server(record, added)
        return point

    def end(self, actor: Actor, now: float | None = None) -> None:
        """No more hand-outs or re-queues; runs already queued or training finish and still join the board."""
        check_teacher(actor, "end the experiment")
        record = self._open()
        self.records.end(record.id, time.time() if now is None else now)
        self._cached = None

    def _open(self) -> ExperimentRecord:
        record = self.records.open()
        if record is None:
            raise BabyGPTError("No experiment is open: the teacher starts one on the Class page.")
        return record

    # -- a student ------------------------------------------------------------------------------
    def join(self, user: str) -> RunInfo:
        """Hand the next open point to ``user`` as their run (checked and queued as any run they start).

        One point per student at a time: the check, the claim and the run's queueing are one step under the lock
        (every tab of this server shares it), and the scheduler's insert refuses a second run of theirs from any
        other process, which opens the point again."""
        with self._lock:
            record = self.records.open()
            if record is None:
                raise BabyGPTError("No experiment is open: the teacher starts one on the Class page.")
            if self.scheduler.current_run_for(user) is not None:
                raise BabyGPTError(ALREADY_RUNNING)
            claimed = self.records.claim(record.id, user)
            if claimed is None:
                raise BabyGPTError(ALL_TAKEN)
            try:
                spec = ExperimentSpec.from_dict(record.spec)
                point = Point.from_dict(claimed.settings)
                info = self.scheduler.submit(user, point_plan(spec, point, *self._text(record)), point.name())
            except OwnerBusy:
                self.records.release(record.id, claimed.index)
                raise BabyGPTError(ALREADY_RUNNING) from None
            except BaseException:
                self.records.release(record.id, claimed.index)
                raise
            self.records.set_run(record.id, claimed.index, info.id)
            self._cached = None
            return info

    def run_of(self, user: str) -> PointRow | None:
        """The viewer's own point of the open experiment, the newest one (None: they have not joined)."""
        view = self.view()
        if view is None or view.record.ended_at is not None:
            return None
        mine = [r for r in view.rows if r.owner == user and r.owner is not None]
        return mine[-1] if mine else None

    # -- keeping it going -----------------------------------------------------------------------
    def _text(self, record: ExperimentRecord) -> tuple[Corpus, Tokenizer]:
        """The experiment's text and tokenizer, built once per server process."""
        with self._lock:
            if record.id not in self._tokenizers:
                spec = ExperimentSpec.from_dict(record.spec)
                try:
                    corpus = find_text(self.store, TextRef(spec.corpus_name, spec.corpus_source, spec.corpus_sha256))
                except TextNotHere:
                    raise BabyGPTError(f"The experiment's text ({spec.corpus_name}) is no longer on this server; "
                                       "the teacher can end the experiment and start it again.") from None
                self._tokenizers[record.id] = (corpus, build_tokenizer(spec.tokenizer, corpus.text,
                                                                      spec.bpe_settings()))
            return self._tokenizers[record.id]

    def _queue_on_server(self, record: ExperimentRecord, point: PointRecord) -> None:
        claimed = self.records.claim(record.id, None, point.index)
        if claimed is None:
            return
        spec = ExperimentSpec.from_dict(record.spec)
        p = Point.from_dict(claimed.settings)
        try:
            plan = point_plan(spec, p, *self._text(record))
            info = self.scheduler.submit_checks(MACHINE, [(plan, p.name(), None)])[0]
        except BaseException:
            self.records.release(record.id, claimed.index)
            raise
        self.records.set_run(record.id, claimed.index, info.id)

    def sync(self) -> None:
        """Apply each point's rule (``point_state``): resume a run whose worker died, replace one that failed or
        was stopped, give a point up after ``MAX_ATTEMPTS`` deaths, and on the server queue every open point."""
        with self._lock:
            record = self.records.open()
            if record is None:
                return
            for point in self.records.points(record.id):
                info = self.store.get(point.run_id) if point.run_id and point.run_id != CLAIMING and \
                    self.store.exists(point.run_id) else None
                state = point_state(point, info)
                if state in (PointState.RESUME, PointState.REOPEN):
                    self._revive(record, point, info, state)
                    point = next(p for p in self.records.points(record.id) if p.index == point.index)
                    state = point_state(point, self.store.get(point.run_id) if point.run_id and
                                        self.store.exists(point.run_id) else None)
                if state is PointState.OPEN and (record.on_server or point.is_prediction):
                    try:
                        self._queue_on_server(record, point)
                    except BabyGPTError as exc:
                        self.records.release(record.id, point.index, give_up=str(exc))
            self._cached = None

    def _revive(self, record: ExperimentRecord, point: PointRecord, info: RunInfo | None,
                state: PointState) -> None:
        what = "deleted" if info is None else f"{info.status}" + (f": {info.message}" if info.message else "")
        lost = f"run {point.run_id} {what}"
        if len(point.lost) + 1 >= MAX_ATTEMPTS:
            self.records.release(record.id, point.index, lost,
                                 give_up=f"its runs died {MAX_ATTEMPTS} times; the last one {what}")
            return
        if state is PointState.RESUME and info is not None:
            self.store.enqueue(info.id)  # from its last checkpoint, its owner unchanged
            self.records.note_lost(record.id, point.index, lost)
            self.scheduler.dispatch()
            return
        self.records.release(record.id, point.index, lost)

    # -- the board ------------------------------------------------------------------------------
    def latest(self) -> ExperimentRecord | None:
        return self.records.latest()

    def view(self, now: float | None = None, force: bool = False) -> ExperimentView | None:
        """The newest experiment's board, computed at most once per ``BOARD_TTL_S`` for every viewer."""
        now = time.time() if now is None else now
        record = self.records.latest()
        if record is None:
            return None
        with self._lock:
            if not force and self._cached and self._cached[1] == record.id and now - self._cached[0] < BOARD_TTL_S:
                return self._cached[2]
            if record.ended_at is None:
                self.sync()
                record = self.records.get(record.id)
            view = self._build(record)
            self._cached = (now, record.id, view)
            return view

    def _build(self, record: ExperimentRecord) -> ExperimentView:
        spec = ExperimentSpec.from_dict(record.spec)
        points = self.records.points(record.id)
        infos = {p.run_id: self.store.get(p.run_id) for p in points
                 if p.run_id and p.run_id != CLAIMING and self.store.exists(p.run_id)}
        snaps = dict(zip(infos, self.scheduler.snapshots(list(infos.values())), strict=True))
        handles = self.store.handles(sorted({p.owner for p in points if p.owner}))
        rows, results, checks = [], [], []
        for p in points:
            point, info = Point.from_dict(p.settings), infos.get(p.run_id)
            who = SERVER if p.owner is None and p.run_id else (handles.get(p.owner or "", "")
                                                               or public_handle(p.owner) if p.owner else "–")
            snap = snaps.get(p.run_id)
            loss = None
            if info is not None and info.status.ended:
                loss = final_loss(info, self.store.metrics(info.id))
            if loss is not None and point_state(p, info) is PointState.DONE:
                results.append(Result(point, spec.x_of(point), loss, info.id, who, p.is_prediction))
            if p.prediction is not None:
                checks.append((point, prediction_check(p.prediction, loss if info is not None and
                                                       point_state(p, info) is PointState.DONE else None)))
            rows.append(PointRow(point, point_state(p, info), who, p.owner, p.run_id if info else None,
                                 snap.step if snap else 0, snap.max_iters if snap else spec.steps,
                                 loss if loss is not None else _last_val(info, snap), p.attempts, tuple(p.lost),
                                 p.is_prediction))
        planned = [Point.from_dict(p.settings) for p in points if not p.is_prediction]
        return ExperimentView(record, spec, rows, results, fit_arms(spec, results, planned), checks)


def _last_val(info: RunInfo | None, snap) -> float | None:
    """A training run's latest validation loss in bits per byte (None: none yet)."""
    if info is None or snap is None or not snap.evals:
        return None
    validation = ValidationText.from_config(info.config)
    return validation.bits_per_byte(snap.evals[-1]["val_loss"]) if validation else None
