"""The scheduler: decides *when* each run trains; a backend decides *where*.

Every start is queued in the run store; the scheduler keeps the rules that make a shared server fair and safe, and
hands each run it starts to a backend: worker processes on this machine (``local``, the default) or actors on a Ray
cluster (``ray``, when ``BABYGPT_RAY_ADDRESS`` is set; see ``babygpt.server.ray_backend``). The pages, the race and
the queue see the same jobs either way. The rules:

* **Cores are divided, never oversubscribed.** OpenMP threads spin and wait for each other at every
  parallel region, so two 2-thread workers on 2 cores ran at 10% of one job alone (1.6k + 1.4k against
  29.8k tokens/s) while two 1-thread workers made 76% (11.6k + 11.1k). Locally the scheduler gives each running
  job ``cores // jobs`` threads (the rest to the oldest) and tells workers to change between steps whenever a job
  starts or ends; on a cluster each job declares its CPUs to Ray, which places it where they are free.
* **Past the limit, a start waits in a queue** that lives in the run store (status ``queued``, ordered
  by ``queued_at``). A claim is one conditional UPDATE, so a restarted server, or two, never start a run
  twice; a restart adopts the jobs that are still alive (worker processes, or detached Ray actors) and starts the
  queue again.
* **One single run per student at a time**, queued or training: checked and created in one step under the
  scheduler's lock (every tab of a server shares it), and the insert itself refuses a second (``RunStore.create_run``'s
  ``only_active``), so two tabs, or two server processes, that click Start at once get one run.
* **Only the owner (or the admin) stops, resumes, cancels or deletes** (``babygpt.server.users``).
"""

from __future__ import annotations

import dataclasses
import heapq
import secrets
import threading
from collections.abc import Callable

from babygpt.config import tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.orchestration.challenge import CHECK_PRIORITY, ChallengeRules, check_resume_within
from babygpt.orchestration.plan import TrainingPlan
from babygpt.orchestration.runs import check_can_queue, create_run
from babygpt.server.backend import Backend, JobHandle
from babygpt.server.progress import JobSnapshot, LiveProgress
from babygpt.server.settings import RAY_ADDRESS_ENV, SchedulerSettings, disk_quota_from_env, ray_address
from babygpt.server.users import Actor, check_can_delete, check_can_manage, check_teacher
from babygpt.status import RunStatus
from babygpt.store.corpora import check_same_corpus, persist_corpus
from babygpt.store.quota import run_bytes, run_needs
from babygpt.store.runs import OwnerBusy, RunInfo, RunStore
from babygpt.text.corpus import Corpus

# What a student reads about a run of theirs that is gone: a sentence about what happened, never the store's own
# message (which names the server's folder and the command line, for whoever runs it there).
RUN_GONE = "This run no longer exists: it was deleted, or taken off the queue before it started."
RACE_GONE = "This race no longer exists: its runs were deleted."
CLEARED_BEFORE_START = "The teacher cleared the queue; this run was not started."
CLEARED_BEFORE_RESUME = "The teacher cleared the queue; this run was not resumed (its last checkpoint is kept)."


def backend_from_env(store: RunStore, settings: SchedulerSettings) -> Backend:
    """Ray actors when ``BABYGPT_RAY_ADDRESS`` is set (``auto``, ``host:port`` or ``ray://host:10001``), else
    worker processes on this machine. Ray is imported only then, so a server without it never starts or needs it."""
    address = ray_address()
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

def share_threads(n_jobs: int, cores: int, cap: int = 0) -> list[int]:
    """Threads for each of ``n_jobs`` running jobs, oldest first: together never more than ``cores``."""
    if n_jobs <= 0:
        return []
    base, extra = divmod(max(cores, n_jobs), n_jobs)
    shares = [base + (1 if i < extra else 0) for i in range(n_jobs)]
    return [min(s, cap) for s in shares] if cap else shares


def check_can_resume(actor: Actor, info: RunInfo, max_iters: int | None = None) -> None:
    """The rules a resume must pass, in the order a person would fix them: whose run it is, whether a worker has
    it, and whether a finished run is given more steps (``max_iters``: the new total, None to keep it)."""
    check_can_manage(actor, info, "resume")
    check_can_queue(info)
    recorded = info.record.training.max_iters
    met_its_target = info.record.training.until_val_loss > 0  # done early, perhaps: its steps are not all trained
    total = max_iters if max_iters is not None else recorded
    if info.status is RunStatus.DONE and not met_its_target and total <= recorded:
        raise BabyGPTError(f"The run finished its {recorded} steps: raise max_iters above that to train it longer.")


class Scheduler:
    """All training jobs of this server. Starts are queued; the queue drains in order as slots free."""

    def __init__(self, store: RunStore, settings: SchedulerSettings | None = None, backend: Backend | None = None):
        self.store = store
        self.settings = settings or SchedulerSettings()
        self.backend = backend or backend_from_env(store, self.settings)
        self.limits = self.backend.limits()
        self.quota = disk_quota_from_env()
        self._jobs: dict[str, JobHandle] = {}  # run id -> job, while it trains
        self._side: dict[str, JobHandle] = {}  # other work on these cores (an SAE's training), never a run
        self._finished: dict[str, JobHandle] = {}  # the last job of each run (its exit message)
        self._removed: dict[str, str] = {}  # run id -> what happened to it, for a run someone else took off the queue
        self._notices: dict[str, str] = {}  # user -> the same, said once on their training page until they start again
        self.progress = LiveProgress(store)
        self._lock = threading.RLock()
        self._recover()

    # -- starting and queueing ------------------------------------------------------------------
    def submit(self, user: str | None, plan: TrainingPlan, name: str | None = None,
               group_id: str | None = None, challenge: dict | None = None) -> RunInfo:
        """Record a new run as queued (its corpus kept in the store) and start it if a slot is free.

        One single run per user at a time, queued or training: a second tab cannot fill the queue. ``challenge``
        marks a challenge entry (``babygpt.server.classroom`` checks its rules first)."""
        self.limits.check(plan.model_config, plan.train_config.batch_size)
        with self._lock:  # the check and the run's creation are one step for every tab of this server
            self.quota.check(self.store, user, run_bytes(plan.model_config, plan.train_config),
                             run_needs(plan.train_config))
            self._check_no_active_run(user)
            try:  # and the insert checks again, for another server process sharing the store
                info = self._queue(user, plan, name, group_id, challenge, only_active=True)
            except OwnerBusy:
                self._check_no_active_run(user)
                raise
            self._notices.pop(user or "", None)
            self.dispatch()
        return self.store.get(info.id)

    def _check_no_active_run(self, user: str | None, besides: str | None = None) -> None:
        """One single run per user, queued or training: the sentence names the one they have. ``besides``: the run
        being resumed (its row still says training when its worker died)."""
        current = self.store.newest_active_run(user) if user else None
        if current is not None and current != besides:
            info = self.store.get(current)
            raise OwnerBusy(f"You already have run {info.label} {info.status}; stop it (or wait for it) "
                            "before starting another.")

    def submit_checks(self, actor: Actor, plans: list[tuple[TrainingPlan, str, dict]]) -> list[RunInfo]:
        """The teacher's re-trainings of challenge entries: owned by nobody (managed with the admin token), outside
        the one-run-per-user rule, and queued at low priority, so they train only when no student's run waits."""
        check_teacher(actor, "queue checks")
        for plan, _, _ in plans:
            self.limits.check(plan.model_config, plan.train_config.batch_size)
        infos = [self._queue(None, plan, name, None, challenge, priority=CHECK_PRIORITY)
                 for plan, name, challenge in plans]
        self.dispatch()
        return infos

    def submit_group(self, user: str | None, plans: list[tuple[TrainingPlan, str]]) -> str:
        """Queue several runs together (a ladder race): they take slots like any other job, in order.
        One group per user at a time, like single runs (checked and queued in one step under the lock)."""
        for plan, _ in plans:
            self.limits.check(plan.model_config, plan.train_config.batch_size)
        with self._lock:
            if user and any(i.owner == user and i.group_id for i in [*self.store.queued(), *self.store.live()]):
                raise BabyGPTError("Your ladder race is still running; stop it (or wait for it) before starting "
                                   "another.")
            self.quota.check(self.store, user, sum(run_bytes(p.model_config, p.train_config) for p, _ in plans),
                             "This race")
            group_id = secrets.token_hex(4)
            for plan, name in plans:
                self._queue(user, plan, name, group_id)
            self.dispatch()
        return group_id

    def _queue(self, user: str | None, plan: TrainingPlan, name: str | None, group_id: str | None,
               challenge: dict | None = None, priority: int = 0, only_active: bool = False) -> RunInfo:
        """Record a run as queued, its corpus given a file in the store so the worker can read it."""
        corpus = persist_corpus(self.store, plan.corpus, owner=user, quota=self.quota)
        return create_run(self.store, dataclasses.replace(plan, corpus=corpus), name, owner=user,
                          status=RunStatus.QUEUED, group_id=group_id, challenge=challenge, priority=priority,
                          only_active=only_active)

    def persist(self, corpus: Corpus) -> Corpus:
        """Keep a text in the store for every worker to read (a challenge's text: nobody's upload, no quota)."""
        return persist_corpus(self.store, corpus)

    def resume(self, actor: Actor, run_id: str, corpus: Corpus, **train_overrides) -> RunInfo:
        """Queue a stopped, interrupted or finished run to continue from its checkpoint on the same text."""
        info = self.run_info(run_id)
        overrides = {k: v for k, v in train_overrides.items() if v is not None}
        check_can_resume(actor, info, overrides.get("max_iters"))
        check_same_corpus(info, corpus)
        train = dataclasses.replace(info.record.training, **overrides).validate()
        if info.challenge_id:  # every overridden setting, not only max_iters, is checked against the rules
            check_resume_within(ChallengeRules.from_dict(self.store.challenge(info.challenge_id).rules), info, train)
        self.limits.check(info.record.model, train.batch_size)
        with self._lock:  # a resume in one tab and a start in another still leave one run queued or training
            if not info.group_id:
                self._check_no_active_run(info.owner, besides=info.id)
            if overrides:
                self.store.update_config(info.id, info.record.with_document(train=train.to_dict()))
            self.store.enqueue(info.id)
            self._notices.pop(actor.user or "", None)
            self.dispatch()
        return self.store.get(info.id)

    @property
    def slots(self) -> int:
        """Jobs that train at once: the backend's room (this machine's cores, or the cluster's free resources)."""
        return self.backend.slots()

    def dispatch(self) -> None:
        """Start queued runs while slots are free, sharing the cores among what runs. The running jobs are told
        their smaller shares *before* the new ones start, so the threads given out never exceed the cores, even
        for a moment (a worker changes its share at its next step; a new one takes seconds to start)."""
        with self._lock:
            for job in [j for j in self._jobs.values() if not j.alive]:
                self._jobs.pop(job.run_id, None)
            self._drop_ended_side_jobs()
            queued = self.store.queued()
            busy = len(self._jobs) + len(self._side)
            free = self.slots - busy if queued else 0
            after = busy + max(0, min(free, len(queued)))
            if self.backend.shares_cores and after > busy:
                self._rebalance(after)
            for info in queued:
                if free <= 0:
                    break
                threads = self._threads_for_new_job(after)
                if not self.store.claim(info.id, threads):
                    continue  # another server process took it
                self._jobs[info.id] = self.backend.start(self.store, self.store.get(info.id), threads, self._job_ended,
                                                         memory_bytes=self.limits.job_memory_bytes)
                free -= 1
            if self.backend.shares_cores:
                self._rebalance()

    def _threads_for_new_job(self, jobs_after: int) -> int:
        """A new job's share: the one for its place (the youngest so far) among the ``jobs_after`` that will run."""
        if not self.backend.shares_cores:
            return self.backend.threads_per_job()
        busy = len(self._jobs) + len(self._side)
        shares = share_threads(max(jobs_after, busy + 1), self.settings.usable_cores, self.settings.threads_per_job)
        return shares[busy]

    def _rebalance(self, jobs_after: int | None = None) -> None:
        """Give the running jobs, oldest first, their shares among ``jobs_after`` jobs (default: those running)."""
        jobs = sorted(self._jobs.values(), key=lambda j: (j.info.queued_at or 0, j.info.created_at))
        side = list(self._side.values())  # after the runs: a side job's share follows theirs
        shares = share_threads(jobs_after or len(jobs) + len(side), self.settings.usable_cores,
                               self.settings.threads_per_job)
        for job, threads in zip(jobs, shares[:len(jobs)], strict=True):
            if self.store.get(job.run_id).threads != threads:
                job.tell_threads(threads)
        for job, threads in zip(side, shares[len(jobs):], strict=False):
            job.tell_threads(threads)

    # -- side jobs: work that is not a run but shares the cores and the slots ------------------
    def start_side_job(self, key: str, start: Callable[[int], JobHandle]) -> bool:
        """Start other work on these cores (an SAE's training, ``babygpt.server.sae_jobs``) when a slot is free and
        no run waits: it counts among the jobs for the slots and the shares of cores, and is told its share as a run
        is; its caller keeps its own queue. ``start(threads)`` launches it; False: no slot now, ask again later."""
        with self._lock:
            self.dispatch()  # runs waiting for a slot go first
            busy = len(self._jobs) + len(self._side)
            if self.store.queued() or busy >= self.slots:
                return False
            threads = self._threads_for_new_job(busy + 1)
            if self.backend.shares_cores:
                self._rebalance(busy + 1)  # the others' smaller shares first, so the cores are never oversubscribed
            self._side[key] = start(threads)
            return True

    def side_jobs(self) -> dict[str, JobHandle]:
        with self._lock:
            self._drop_ended_side_jobs()
            return dict(self._side)

    def _drop_ended_side_jobs(self) -> None:
        for key in [k for k, job in self._side.items() if not job.alive]:
            del self._side[key]

    def _job_ended(self, job: JobHandle) -> None:
        with self._lock:
            if self._jobs.get(job.run_id) is job:
                del self._jobs[job.run_id]
            self._finished[job.run_id] = job
        self.dispatch()

    def _recover(self) -> None:
        """After a (re)start: adopt the jobs that outlived the old server, record the rest as interrupted (their
        checkpoints kept), then drain the queue."""
        with self._lock:
            for job in self.backend.adopt(self.store, self._job_ended):
                self._jobs[job.run_id] = job
        self.store.mark_interrupted()
        self.store.clean_orphans()
        self.dispatch()

    def close(self) -> None:
        """Let go of the backend (a server shutting down): jobs keep training and a restarted server adopts them."""
        self.backend.close()

    # -- stopping and deleting ------------------------------------------------------------------
    def stop(self, actor: Actor, run_id: str, wait: float = 0.0) -> None:
        """Stop a training run after its current step (checkpoint kept), or take a queued one off the queue."""
        info = self.run_info(run_id)
        check_can_manage(actor, info, "stop")
        with self._lock:
            job = self._jobs.get(info.id)
            if info.status is RunStatus.QUEUED:
                self._cancel(info, by_owner=actor.owns(info))
                return
        if job is None:
            raise BabyGPTError(f"Run {info.label} is not training ({info.status}).")
        job.stop(wait)

    def _cancel(self, info: RunInfo, by_owner: bool = True) -> None:
        """A queued run that never trained disappears; a queued resume goes back to 'stopped'. Taken off by the
        teacher (clearing the queue), its owner is told so in a sentence, on their page and if they click Cancel."""
        resumed = self.store.has_checkpoint(info.id)
        if resumed:
            self.store.set_status(info.id, RunStatus.STOPPED,
                                  "Taken off the queue before it resumed." if by_owner else CLEARED_BEFORE_RESUME)
        else:
            self.store.delete(info.id)
        if by_owner:
            return
        self._removed[info.id] = CLEARED_BEFORE_RESUME if resumed else CLEARED_BEFORE_START
        if info.owner:
            self._notices[info.owner] = (f"The teacher cleared the queue; your run {info.label} was not "
                                         f"{'resumed (its last checkpoint is kept)' if resumed else 'started'}.")

    def stop_group(self, actor: Actor, group_id: str) -> None:
        """Stop every run of a race: its queued runs first, then the training ones, under the lock, so a slot that a
        stopping run frees never starts another run of the same race."""
        with self._lock:
            for queued in (True, False):
                for info in self.store.list_runs(group_id):
                    if info.status.active and (info.status is RunStatus.QUEUED) == queued:
                        try:
                            self.stop(actor, info.id)
                        except BabyGPTError:
                            pass  # it ended between the listing and the stop

    def delete(self, actor: Actor, run_id: str) -> None:
        info = self.run_info(run_id)
        self._check_deletable(actor, info)
        self.store.delete(info.id)

    def delete_race(self, actor: Actor, group_id: str) -> int:
        """Every run of a race, as one operation: each is checked as ``delete`` checks one before any is removed,
        and the store removes them all or none (``RunStore.delete_all``); returns how many went."""
        members = self.store.list_runs(group_id)
        if not members:
            raise BabyGPTError(RACE_GONE)
        for info in members:
            self._check_deletable(actor, info)
        self.store.delete_all([info.id for info in members])
        return len(members)

    def _check_deletable(self, actor: Actor, info: RunInfo) -> None:
        """Whose it is, whether it is a challenge entry that stays, and whether it still trains."""
        record = self.store.open_challenge()  # open until frozen: past its end time, its board is not final yet
        check_can_delete(actor, info, record.id if record else None)
        job = self._jobs.get(info.id)
        if job is not None and not info.status.active:
            job.thread.join(timeout=10)  # the run is finished and its worker is exiting: let it go first
        if info.status.active or (job is not None and job.alive):
            raise BabyGPTError(f"Run {info.label} is {info.status}; stop it before deleting it.")

    def stop_all(self, wait: float = 10.0) -> None:
        """Stop every job of this server and empty the queue of its runs (tests, shutdown)."""
        for info in self.store.queued():
            self._cancel(info)
        jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
        for job in jobs:
            job.thread.join(wait)

    # -- reading --------------------------------------------------------------------------------
    def running(self) -> list[JobHandle]:
        return [j for j in self._jobs.values() if j.alive]

    def run_info(self, run_id: str) -> RunInfo:
        """A run a page acts on or draws, by id: one that is gone is a sentence for the student (what happened to
        it), never the store's message for the command line."""
        if not self.store.exists(run_id):
            raise BabyGPTError(self._removed.get(run_id, RUN_GONE))
        return self.store.get(run_id)

    def notice_for(self, user: str) -> str | None:
        """What happened to the user's run while they were not the one acting on it (the teacher cleared the
        queue), until they start or resume one again. A user's run label is in it: show it as text."""
        return self._notices.get(user)

    def current_run_for(self, user: str) -> str | None:
        """The user's newest run that is training or queued (what their training page follows)."""
        return self.store.newest_active_run(user)

    def queue_estimates(self) -> dict[str, tuple[int, float | None]]:
        """Each queued run's position (1 = next) and estimated wait in seconds, by playing the queue forward:
        the running jobs end at their ETAs, and each queued run takes the first slot to free."""
        queued = self.store.queued()
        if not queued:
            return {}
        free_at = [0.0] * max(0, self.slots - len(self._jobs))
        rates = []
        for job in list(self._jobs.values()):
            snap = self.snapshot(job.run_id)
            free_at.append(snap.eta_s if snap.eta_s is not None else float("nan"))
            if snap.tokens_per_sec:
                rates.append(snap.tokens_per_sec)
        rate = sum(rates) / len(rates) if rates else None
        heapq.heapify(free_at)
        out = {}
        for position, info in enumerate(queued, 1):
            start = heapq.heappop(free_at) if free_at else float("nan")
            known = start == start  # not NaN
            out[info.id] = (position, start if known else None)
            tokens = info.record.training.max_iters * tokens_per_step(info.record.model, info.record.training)
            heapq.heappush(free_at, start + tokens / rate if (known and rate) else float("nan"))
        return out

    def snapshot(self, run_id: str) -> JobSnapshot:
        """A run's progress as the pages draw it, queued, training or finished."""
        return self.snapshots([self.run_info(run_id)])[0]

    def snapshots(self, infos: list[RunInfo]) -> list[JobSnapshot]:
        """Several runs' progress at once (a class board): the queue is played forward once for all of them."""
        estimates = self.queue_estimates() if any(i.status is RunStatus.QUEUED for i in infos) else {}
        out = []
        for info in infos:
            job = self._jobs.get(info.id) or self._finished.get(info.id)
            position, wait = estimates.get(info.id, (None, None))
            out.append(self.progress.snapshot(info, set(self._jobs), stop_requested=bool(job and job.stop_requested),
                                              exit_message=job.exit_message if job else "", queue_position=position,
                                              queue_wait_s=wait))
        return out
