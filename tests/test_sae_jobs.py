"""SAEs trained as jobs of the scheduler: refused with the reason before they start, queued behind the slots, a
fair share of the cores beside the runs that train, progress, stop, and the SAE kept with its run."""

from __future__ import annotations

import json
import threading

import pytest

from babygpt.cli import main
from babygpt.errors import BabyGPTError
from babygpt.features.cost import SAELimits
from babygpt.features.sae import SAEConfig
from babygpt.server import sae_jobs
from babygpt.server.sae_jobs import THREADS_FILE, SAEJobs
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor, public_handle
from babygpt.store import features as stored
from babygpt.store.runs import RunStore
from tests.helpers import tiny_plan, wait_for

ALICE, BOB, CAROL = "user-alice-0123456789", "user-bob-0123456789a", "user-carol-0123456789"


@pytest.fixture
def finished_run(tmp_path, small_text, capsys) -> str:
    text = tmp_path / "cats.txt"
    text.write_text(small_text * 2, encoding="utf-8")
    assert main(["train", "--data", str(text), "--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--block-size",
                 "16", "--batch-size", "4", "--max-iters", "4", "--eval-interval", "4", "--eval-iters", "1",
                 "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]


def sae(layer: int = 1, features: int = 32, k: int = 4) -> SAEConfig:
    return SAEConfig(d_in=16, n_features=features, k=k, layer=layer)


def own(store: RunStore, run_id: str, user: str) -> None:
    """Give a run trained on the command line to a user of the app, as if she had trained it there."""
    with store._connect() as db:
        db.execute("UPDATE runs SET owner = ? WHERE id = ?", (user, run_id))


def test_sae_jobs_queue_share_the_cores_with_runs_and_keep_their_sae(finished_run, small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    jobs = SAEJobs(scheduler, SAELimits(memory_bytes=4 * 2**30, max_tokens=100_000, max_seconds=3600))
    store = scheduler.store
    own(store, finished_run, BOB)
    try:
        with pytest.raises(BabyGPTError, match="there is no layer 7"):
            jobs.submit(Actor(BOB), finished_run, sae(layer=7), 4000)
        with pytest.raises(BabyGPTError, match="over this server's limit of 100,000"):
            jobs.submit(Actor(BOB), finished_run, sae(), 500_000)

        alice = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=100_000, eval_interval=20))
        assert store.get(alice.id).threads == 2, "one run alone has both cores"
        first = jobs.submit(Actor(BOB), finished_run, sae(), 4000)
        assert first.state in ("starting", "running") and first.queue_position is None
        folder = store.run_dir(finished_run) / "sae" / "L1-resid_post-32-k4"
        assert store.get(alice.id).threads == 1 and (folder / THREADS_FILE).read_text() == "1", "two jobs, two cores"
        with pytest.raises(BabyGPTError, match="Your SAE is still training or waiting"):
            jobs.submit(Actor(BOB), finished_run, sae(features=64), 4000)

        second = jobs.submit(Actor(CAROL, admin=True), finished_run, sae(features=64), 4000)  # the teacher
        assert second.state == "queued" and second.queue_position == 1, "both slots are taken"
        with pytest.raises(BabyGPTError, match="only"):
            jobs.stop(Actor(ALICE), second.key)  # neither its owner nor the teacher
        jobs.stop(Actor(CAROL), second.key)
        assert jobs.status(second.key).state == "stopped" and jobs.queued() == []

        done = wait_for(lambda: jobs.status(first.key).state in ("done", "failed") and jobs.status(first.key),
                        timeout=240, what="the SAE job to finish")
        assert done.state == "done", done.message
        assert done.step == done.steps > 0
        kept = stored.get(store, finished_run, "L1-resid_post-32-k4")
        assert kept.figures.l0 <= 4 and not kept.stopped and not kept.stale
        wait_for(lambda: not scheduler.side_jobs(), what="the slot to free")
        scheduler.dispatch()
        wait_for(lambda: store.get(alice.id).threads == 2, what="the run to get both cores back")
    finally:
        scheduler.stop_all(wait=30)


def test_a_run_still_training_has_no_sae_yet(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    jobs = SAEJobs(scheduler, SAELimits(memory_bytes=4 * 2**30))
    try:
        alice = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=100_000, eval_interval=20))
        with pytest.raises(BabyGPTError, match="train an SAE on it once it has stopped or finished"):
            jobs.submit(Actor(ALICE), alice.id, sae(), 4000)
    finally:
        scheduler.stop_all(wait=30)


def queue_only(jobs: SAEJobs, monkeypatch) -> SAEJobs:
    """Requests stay in the queue (nothing starts): these tests are about who may ask, not about training."""
    monkeypatch.setattr(jobs, "pump", lambda: None)
    return jobs


def test_only_the_runs_owner_or_the_teacher_trains_or_replaces_an_sae_on_it(finished_run, monkeypatch):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    jobs = queue_only(SAEJobs(scheduler, SAELimits(memory_bytes=4 * 2**30)), monkeypatch)
    store = scheduler.store
    own(store, finished_run, ALICE)
    try:
        mine = jobs.submit(Actor(ALICE), finished_run, sae(), 4000)
        path = stored.job_file(store, finished_run, sae())
        assert not jobs.may_stop(Actor(BOB), mine.key) and jobs.may_stop(Actor(ALICE), mine.key)
        with pytest.raises(BabyGPTError, match="only its owner, or the teacher"):
            jobs.stop(Actor(BOB), mine.key)
        jobs.stop(Actor(ALICE), mine.key)
        stored.update_job(path, state="done")  # Alice's SAE, kept

        label = store.get(finished_run).label
        refusal = (f"Run {label} belongs to {public_handle(ALICE)}: only its owner, or the teacher with the admin "
                   "token, can train or replace an SAE on it.")
        for ask in (jobs.check, jobs.submit):  # the page's check and the button's submit: the same rule
            with pytest.raises(BabyGPTError) as refused:
                ask(Actor(BOB), finished_run, sae(), 4000)  # "Train again" on Alice's run, her settings
            assert str(refused.value) == refusal
        assert stored.read_job(path)["owner"] == ALICE and stored.read_job(path)["state"] == "done"
        assert jobs.queued() == []

        teacher = jobs.submit(Actor(CAROL, admin=True), finished_run, sae(), 4000)
        assert teacher.state == "queued" and stored.read_job(path)["owner"] == CAROL
        assert jobs.may_stop(Actor(ALICE), teacher.key), "the run's owner may stop what trains on her run"
    finally:
        scheduler.stop_all(wait=30)


def test_two_tabs_at_once_get_one_sae_per_person(finished_run, monkeypatch):
    """Two requests of one person arrive together; both reach the cost estimate at once unless the limit's check
    and the queueing are one step, in which case the second waits for the first and is refused."""
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    jobs = queue_only(SAEJobs(scheduler, SAELimits(memory_bytes=4 * 2**30)), monkeypatch)
    own(scheduler.store, finished_run, ALICE)
    together = threading.Barrier(2)
    estimate = sae_jobs.estimate_cost

    def meet_then_estimate(*args, **kwargs):
        try:
            together.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass  # the other tab never got this far: it waits for this one's queueing
        return estimate(*args, **kwargs)

    monkeypatch.setattr(sae_jobs, "estimate_cost", meet_then_estimate)
    outcomes: list[str] = []

    def tab(k: int) -> None:
        try:
            jobs.submit(Actor(ALICE), finished_run, sae(k=k), 4000)
            outcomes.append("accepted")
        except BabyGPTError as exc:
            outcomes.append(str(exc))

    try:
        tabs = [threading.Thread(target=tab, args=(k,)) for k in (4, 8)]
        for t in tabs:
            t.start()
        for t in tabs:
            t.join(60)
        assert sorted(outcomes) == ["Your SAE is still training or waiting; stop it (or wait for it) before "
                                    "starting another.", "accepted"]
        assert len(jobs.queued()) == 1
    finally:
        scheduler.stop_all(wait=30)


def test_k_is_a_whole_number():
    with pytest.raises(BabyGPTError, match=r"^k counts features, so it is a whole number, got 3.7\.$"):
        SAEConfig(d_in=16, n_features=32, k=3.7, layer=0).validate()
    assert SAEConfig(d_in=16, n_features=32, k=3, layer=0).validate().k == 3
