"""The classroom rules without a browser: queue, fair threads, ownership, restarts, live reads."""

import os
import sqlite3
from pathlib import Path

import pytest

from babygpt.errors import BabyGPTError
from babygpt.figures.viz import downsample_indices
from babygpt.model.sizing import ModelLimits
from babygpt.orchestration.runs import start_run
from babygpt.server.gpus import GpuAssigner
from babygpt.server.progress import LiveMetrics
from babygpt.server.scheduler import Scheduler, share_threads
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor, admin_token_matches, is_user_key, new_user_key, public_handle
from babygpt.store.archive import export_run, import_run
from babygpt.store.corpora import persist_corpus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.corpus import Corpus
from tests.helpers import LIMITS, tiny_plan, wait_for

ALICE, BOB, CAROL = "alice-key-0123456789", "bob-key-0123456789ab", "carol-key-0123456789"


@pytest.mark.parametrize("jobs,cores", [(1, 2), (2, 2), (3, 8), (5, 16), (4, 4), (2, 1)])
def test_thread_shares_never_exceed_the_cores(jobs, cores):
    shares = share_threads(jobs, cores)
    assert len(shares) == jobs and all(s >= 1 for s in shares)
    assert sum(shares) == max(cores, jobs)
    assert max(shares) - min(shares) <= 1, "an even split, the remainder to the oldest"
    assert share_threads(jobs, cores, cap=1) == [1] * jobs


def test_slots_never_exceed_cores():
    assert SchedulerSettings(max_jobs=4, cores=2).slots == 2
    assert SchedulerSettings(max_jobs=1, cores=8).slots == 1
    with pytest.raises(BabyGPTError, match="at least 1"):
        SchedulerSettings(max_jobs=0)


def test_settings_from_env_reject_words(monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_JOBS", "two")
    with pytest.raises(BabyGPTError, match="BABYGPT_MAX_JOBS must be a whole number"):
        SchedulerSettings.from_env()


def test_user_keys_and_admin_token():
    key = new_user_key()
    assert is_user_key(key) and key != new_user_key()
    assert not is_user_key("x") and not is_user_key("../../etc") and not is_user_key(None)
    assert public_handle(key).startswith("user ") and key not in public_handle(key)
    assert admin_token_matches("s3cret", "s3cret") and not admin_token_matches("guess", "s3cret")
    assert not admin_token_matches("", ""), "no token configured: nobody is admin"


def test_queue_fair_threads_and_ownership(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    plan = tiny_plan(small_text, max_iters=100_000, eval_interval=20)
    alice = scheduler.submit(ALICE, plan, name="same name")
    assert scheduler.store.get(alice.id).threads == 2, "one job alone gets every core"
    bob = scheduler.submit(BOB, plan, name="same name")
    carol = scheduler.submit(CAROL, plan)
    store = scheduler.store
    assert [store.get(r.id).status for r in (alice, bob, carol)] == ["starting", "starting", "queued"]
    assert store.get(alice.id).label != store.get(bob.id).label, "same names stay apart"
    assert [store.get(r.id).threads for r in (alice, bob)] == [1, 1], "two jobs share two cores"
    assert scheduler.snapshot(carol.id).queue_position == 1
    with pytest.raises(BabyGPTError, match="You already have run .* queued"):
        scheduler.submit(CAROL, plan)  # a second tab cannot fill the queue
    wait_for(lambda: all(scheduler.snapshot(r.id).step >= 20 for r in (alice, bob)), what="both jobs to train")

    for action in (lambda: scheduler.stop(Actor(BOB), alice.id), lambda: scheduler.delete(Actor(BOB), alice.id),
                   lambda: scheduler.stop(Actor(ALICE), carol.id)):
        with pytest.raises(BabyGPTError, match="belongs to user .*only its owner"):
            action()
    with pytest.raises(BabyGPTError, match="stop it before deleting"):
        scheduler.delete(Actor(BOB), bob.id)

    assert store.get(carol.id).status == "queued", "still waiting while both slots train"
    scheduler.stop(Actor(ALICE), alice.id, wait=30)
    assert store.get(alice.id).status == "stopped" and store.has_checkpoint(alice.id)
    wait_for(lambda: store.get(carol.id).status == "running", what="the queued run to start when a slot frees")
    assert store.get(carol.id).queued_at >= store.get(bob.id).created_at, "queued after the two that trained"
    wait_for(lambda: scheduler.snapshot(bob.id).step > 0)
    assert sum(store.get(r.id).threads for r in (bob, carol)) <= 2
    scheduler.stop_all(wait=30)


def test_admin_manages_everything_and_cli_runs_are_not_app_users(small_text):
    store = RunStore()
    trainer, cli_run = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    trainer.run()
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    with pytest.raises(BabyGPTError, match="trained from the command line"):
        scheduler.delete(Actor(ALICE), cli_run.id)
    scheduler.delete(Actor(ALICE, admin=True), cli_run.id)
    assert not store.run_dir(cli_run.id).exists()
    assert store.list_runs() == []


def test_restart_adopts_workers_and_starts_the_queue_once(small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=100_000, eval_interval=20)
    first = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    running = first.submit(ALICE, plan)
    waiting = first.submit(BOB, plan)
    wait_for(lambda: first.snapshot(running.id).step >= 10, what="the first job to train")
    pid = store.get(running.id).pid
    # a second scheduler on the same store (a restarted server): adopts the live worker, starts nothing twice
    second = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    assert [j.run_id for j in second.running()] == [running.id] and second.running()[0].pid == pid
    assert store.get(waiting.id).status == "queued"
    assert not store.claim(running.id, 1), "a run that left the queue cannot be claimed again"
    second.stop(Actor(ALICE), running.id, wait=30)
    wait_for(lambda: store.get(running.id).status == "stopped", what="the adopted worker to stop")
    wait_for(lambda: store.get(waiting.id).status in ("starting", "running"), what="the queue to drain")

    def starts() -> int:  # a server claims the run in the store a moment before it lists the job as its own
        return [j.run_id for j in [*first.running(), *second.running()]].count(waiting.id)

    wait_for(lambda: starts() >= 1, what="a server to list the queued run as started")
    assert starts() == 1, "exactly one server started the queued run"
    first.stop_all(wait=30)
    second.stop_all(wait=30)


def test_killed_worker_is_interrupted_and_resumes(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    info = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=100_000, eval_interval=10))
    wait_for(lambda: scheduler.store.has_checkpoint(info.id) and scheduler.snapshot(info.id).step >= 25)
    os.kill(scheduler.store.get(info.id).pid, 9)
    wait_for(lambda: scheduler.store.get(info.id).status == "interrupted", what="interrupted status")
    checkpoint = scheduler.store.load_trainer_state(info.id)["step"]
    with pytest.raises(BabyGPTError, match="belongs to"):
        scheduler.resume(Actor(BOB), info.id, tiny_plan(small_text).corpus)
    scheduler.resume(Actor(ALICE), info.id, tiny_plan(small_text).corpus)
    wait_for(lambda: scheduler.snapshot(info.id).step > checkpoint + 5, what="the resumed run")
    steps = [m.step for m in scheduler.store.metrics(info.id) if m.split == "val"]
    assert steps == sorted(set(steps)), "no step was logged twice after the resume"
    scheduler.stop_all(wait=30)


def test_live_metrics_read_only_new_rows_and_restart_after_truncation(small_text):
    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=10))
    trainer.run()
    reader = LiveMetrics(store, info.id)
    reader.refresh(store.get(info.id))
    full_train = len(reader.train)
    assert full_train == len([m for m in store.metrics(info.id) if m.split == "train"]) and reader.evals
    store.log_metrics(info.id, [MetricRow(21, "train", 1.0, 1e-3, 100.0, 1.0)])
    cursor = reader._cursor
    reader.refresh(store.get(info.id))
    assert len(reader.train) == full_train + 1 and reader._cursor > cursor
    store.truncate_metrics(info.id, 10)
    reader.refresh(store.get(info.id))
    assert max(p["step"] for p in reader.train) <= 10, "a resume's truncation resets the reader"


def test_downsampling_bounds_points_and_keeps_the_tail_exact():
    assert downsample_indices(500, 2000) == list(range(500))
    keep = downsample_indices(100_000, 2000)
    assert len(keep) <= 2000 and keep[0] == 0 and keep == sorted(set(keep))
    assert keep[-200:] == list(range(100_000 - 200, 100_000))


def test_user_state_round_trip_and_old_database_migrates(tmp_path):
    store = RunStore()
    store.save_user_state(ALICE, {"hparams": {"n_layer": 2}, "active_run": "x"})
    assert RunStore().user_state(ALICE) == {"hparams": {"n_layer": 2}, "active_run": "x"}
    assert store.user_state(BOB) == {}
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "runs.db") as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL, "
                   "status TEXT NOT NULL, preset TEXT NOT NULL, config_json TEXT NOT NULL, data_name TEXT, "
                   "data_sha256 TEXT, owner_pid INTEGER, message TEXT)")
        db.execute("INSERT INTO runs VALUES ('r1','old',1.0,'done','gpt','{}',NULL,NULL,123,NULL)")
    migrated = RunStore(old).get("r1")
    assert migrated.pid == 123 and migrated.owner is None and migrated.metrics_version == 0


def test_delete_is_all_or_nothing_and_orphans_are_cleaned(small_text, monkeypatch):
    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    trainer.run()

    real_connect, calls = sqlite3.connect, []

    def connect_then_fail(*args, **kwargs):  # the lookup works, the delete's transaction fails
        calls.append(1)
        if len(calls) > 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect_then_fail)
    with pytest.raises(sqlite3.OperationalError):
        store.delete(info.id)
    monkeypatch.undo()
    assert store.run_dir(info.id).is_dir() and store.get(info.id).id == info.id, "a failed delete loses nothing"
    (store.home / ".deleted-leftover").mkdir()
    orphan = store.home / "20200101-000000-gpt-abcd"
    orphan.mkdir()
    (orphan / "config.json").write_text("{}")
    os.utime(orphan, (0, 0))
    (store.home / ".import-crashed").mkdir()  # a server that died mid-import
    os.utime(store.home / ".import-crashed", (0, 0))
    (store.home / ".import-live").mkdir()  # an import in progress now
    assert sorted(store.clean_orphans()) == [".deleted-leftover", ".import-crashed", orphan.name]
    assert (store.home / ".import-live").is_dir(), "an import in progress keeps its staging folder"
    assert store.run_dir(info.id).is_dir(), "a run with a row is never an orphan"


def test_worker_applies_a_new_thread_share_between_steps(small_text):
    import torch

    from babygpt.server.worker import ThreadShare

    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    share = ThreadShare(store, info.id)
    before = torch.get_num_threads()
    try:
        store.set_threads(info.id, 1)
        share.on_step(trainer, None)  # the flag starts set: the first report reads the share
        assert torch.get_num_threads() == 1
        store.set_threads(info.id, 2)
        share.on_step(trainer, None)
        assert torch.get_num_threads() == 1, "no signal, no change: the store is not read every step"
        share.changed.set()  # what SIGUSR1 does
        share.on_step(trainer, None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_classmate_cannot_delete_a_students_run_in_the_app(small_text, fresh_resources):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    run = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=10, eval_interval=5))
    wait_for(lambda: scheduler.store.get(run.id).status == "done", what="the student's run")
    classmate = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    classmate.switch_page("views/runs.py").run()
    classmate.toggle(key="runs_everyone").set_value(True).run()
    classmate.button(key="runs_delete").click().run()
    assert "only its owner, or the teacher" in classmate.error[0].value
    assert RunStore().get(run.id).id == run.id


def test_a_job_that_runs_out_of_memory_fails_alone_with_a_message(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    scheduler.limits = ModelLimits(max_params=10**12, job_memory_bytes=600 * 2**20)
    other = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=100_000, eval_interval=20))
    # a model an estimate let through (estimates can be wrong) that needs far more than the job's 600 MB
    big = scheduler._queue(BOB, tiny_plan(small_text, n_embd=2048, n_layer=8, n_head=8, max_iters=5,
                                         eval_interval=5), None, None)
    scheduler.dispatch()
    wait_for(lambda: scheduler.store.get(big.id).status == "failed", timeout=180, what="the big job to fail")
    assert "ran out of memory" in scheduler.store.get(big.id).message
    wait_for(lambda: scheduler.snapshot(other.id).step >= 20, what="the other job to go on")
    assert scheduler.store.get(other.id).status == "running"
    scheduler.stop_all(wait=30)


def test_the_server_refuses_a_model_over_its_limits_before_queueing(small_text, monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "5000")
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    with pytest.raises(BabyGPTError, match="over this server's limit of 5,000"):
        scheduler.submit(ALICE, tiny_plan(small_text))
    with pytest.raises(BabyGPTError, match="over this server's limit"):
        scheduler.submit_group(ALICE, [(tiny_plan(small_text, preset="bigram"), "a"), (tiny_plan(small_text), "b")])
    assert scheduler.store.list_runs() == []  # nothing queued, not even the race's small first rung


def test_each_user_has_a_disk_quota_for_runs_and_uploads(monkeypatch, tmp_path):
    monkeypatch.setenv("BABYGPT_USER_DISK_MB", "1")
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    store, quota = scheduler.store, scheduler.quota
    big = Corpus.from_text("big.txt", "abcdefgh\n" * 70_000, source="upload")  # 630 kB
    other = Corpus.from_text("other.txt", "hgfedcba\n" * 70_000, source="upload")
    kept = persist_corpus(store, big, owner=ALICE, quota=quota)
    assert store.disk_usage(ALICE) == 630_000 and Path(kept.source).is_file()
    persist_corpus(store, other, owner=ALICE, quota=quota)  # switching texts releases the unused first one
    assert store.disk_usage(ALICE) == 630_000 and not Path(kept.source).exists()

    small = tiny_plan(other.text, max_iters=20, eval_interval=10)  # ~26 k parameters: ~0.3 MB to keep
    run = scheduler.submit(ALICE, small)
    with pytest.raises(BabyGPTError, match="Keeping big.txt needs about 0.6 MB, and your runs and uploads already "
                                           "use 0.6 MB of the 1.0 MB each user may keep"):
        persist_corpus(store, big, owner=ALICE, quota=quota)  # other.txt is kept for the run
    wait_for(lambda: store.get(run.id).status == "done", what="the small run to finish")
    wider = tiny_plan(other.text, n_embd=64, max_iters=20, eval_interval=10)  # ~0.1 M parameters: 1.2 MB
    with pytest.raises(BabyGPTError, match=r"This run needs about 1.2 MB.*each user may keep on this server\. Delete") as refused:
        scheduler.submit(ALICE, wider)
    assert "BABYGPT_" not in str(refused.value), "a student is told the server's limit, not the setting's name"
    scheduler.submit(None, wider)  # the command line (no owner) has no quota
    exported = export_run(store, run.id, tmp_path / "run.zip")
    with pytest.raises(BabyGPTError, match="Importing run.zip needs about"):
        import_run(store, exported, limits=LIMITS, owner=ALICE, quota=quota)
    scheduler.delete(Actor(ALICE), run.id)  # deleting frees the space
    assert store.disk_usage(ALICE) == 630_000
    import_run(store, exported, limits=LIMITS, owner=ALICE, quota=quota)
    scheduler.stop_all(wait=30)


def test_a_worker_that_dies_of_memory_is_failed_with_words_not_interrupted(small_text):
    import subprocess
    import sys

    from babygpt.server.local import WORKER_LOG, Job

    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    store.set_status(info.id, "running")
    (store.run_dir(info.id) / WORKER_LOG).write_text("Traceback (most recent call last):\nMemoryError\n")
    dying = subprocess.Popen([sys.executable, "-c", "pass"])
    dying.wait()
    ended = []
    Job(store, store.get(info.id), 1, ended.append, adopt_pid=dying.pid).thread.join(10)
    assert ended and store.get(info.id).status == "failed"
    assert store.get(info.id).message.startswith("The job ran out of memory")


def test_a_deleted_run_is_no_longer_anyones_active_run(small_text, fresh_resources):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    trainer.run()
    student = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    student.session_state["active_run"] = info.id
    student.run()
    assert any(info.id in c.value for c in student.sidebar.caption)
    store.delete(info.id)  # the teacher deletes it from another browser
    student.run()
    assert any(c.value == "**Active run:** none yet" for c in student.sidebar.caption)


def test_a_gpu_server_runs_several_jobs_on_each_gpu_never_more_than_cores():
    assert SchedulerSettings(cores=16, gpus=("0",), jobs_per_gpu=16).slots == 16
    assert SchedulerSettings(cores=32, gpus=("0", "1"), jobs_per_gpu=3).slots == 6
    assert SchedulerSettings(cores=4, gpus=("0", "1"), jobs_per_gpu=3).slots == 4, "a job needs a core to drive it"
    assert SchedulerSettings(max_jobs=2, cores=16, gpus=("0",)).slots == 2, "the teacher's cap wins"
    assert SchedulerSettings(cores=16).slots == 2, "without GPUs, as before"
    with pytest.raises(BabyGPTError, match="BABYGPT_JOBS_PER_GPU must be at least 1"):
        SchedulerSettings(gpus=("0",), jobs_per_gpu=0)


@pytest.mark.parametrize("env,gpus", [
    ({"BABYGPT_GPUS": "0,1"}, ("0", "1")),
    ({"BABYGPT_GPUS": "none", "CUDA_VISIBLE_DEVICES": "0"}, ()),
    ({"CUDA_VISIBLE_DEVICES": "2,3"}, ("2", "3")),
    ({"CUDA_VISIBLE_DEVICES": ""}, ()),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, ()),
])
def test_the_gpus_a_server_shares_come_from_its_environment(monkeypatch, env, gpus):
    for name in ("BABYGPT_GPUS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert SchedulerSettings.from_env().gpus == gpus


def test_a_mistyped_gpu_is_named(monkeypatch):
    monkeypatch.setenv("BABYGPT_GPUS", "0,l")
    with pytest.raises(BabyGPTError, match="BABYGPT_GPUS names 'l': give GPU indices"):
        SchedulerSettings.from_env()
    monkeypatch.setenv("BABYGPT_GPUS", "GPU-5b1c,1")
    assert SchedulerSettings.from_env().gpus == ("GPU-5b1c", "1")


def test_jobs_per_gpu_setting_is_checked(monkeypatch):
    monkeypatch.setenv("BABYGPT_JOBS_PER_GPU", "4")
    assert SchedulerSettings.from_env().jobs_per_gpu == 4
    monkeypatch.setenv("BABYGPT_JOBS_PER_GPU", "lots")
    with pytest.raises(BabyGPTError, match="BABYGPT_JOBS_PER_GPU must be a whole number of at least 1"):
        SchedulerSettings.from_env()


def test_new_jobs_take_the_least_busy_gpu():
    gpus = GpuAssigner(("0", "1"), jobs_per_gpu=2)
    assert [gpus.take(run) for run in "abc"] == ["0", "1", "0"]
    gpus.release("b")
    assert gpus.take("d") == "1" and gpus.load() == {"0": 2, "1": 1}
    assert gpus.memory_share == pytest.approx(0.95 / 2)


def _environ(pid):
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


def test_workers_on_a_gpu_server_each_see_their_own_gpu_and_share_of_it(small_text):
    """Two GPUs, one job each: the workers are told which GPU and how much of its memory (here the runs train on
    the CPU, which has no GPU; what a worker is told is the same)."""
    store = RunStore()
    scheduler = Scheduler(store, SchedulerSettings(cores=2, gpus=("0", "1"), jobs_per_gpu=1))
    assert "2 job(s) at once on 2 GPU(s) (up to 1 a GPU) and 2 core(s)" == scheduler.backend.describe()
    plan = tiny_plan(small_text, max_iters=100_000, eval_interval=20)
    runs = [scheduler.submit(user, plan) for user in (ALICE, BOB, CAROL)]
    assert store.get(runs[2].id).status == "queued", "two GPUs × one job: the third waits"
    wait_for(lambda: all(store.get(r.id).pid and scheduler.snapshot(r.id).step > 0 for r in runs[:2]))
    seen = [_environ(store.get(r.id).pid) for r in runs[:2]]
    assert sorted(env["CUDA_VISIBLE_DEVICES"] for env in seen) == ["0", "1"]
    assert all(env["BABYGPT_GPU_MEMORY_SHARE"] == "0.9500" for env in seen)
    # a restarted server finds which GPU each running worker has
    second = Scheduler(store, SchedulerSettings(cores=2, gpus=("0", "1"), jobs_per_gpu=1))
    assert second.backend.gpu_load() == {"0": 1, "1": 1}
    first_gpu = seen[0]["CUDA_VISIBLE_DEVICES"]
    second.stop(Actor(ALICE), runs[0].id, wait=30)
    wait_for(lambda: store.get(runs[2].id).pid and store.get(runs[2].id).status == "running",
             what="the queued run to start on the freed GPU")
    assert _environ(store.get(runs[2].id).pid)["CUDA_VISIBLE_DEVICES"] == first_gpu
    second.stop_all(wait=30)
    scheduler.stop_all(wait=30)


def test_stop_pressed_while_the_worker_starts_stops_the_run_and_frees_its_owner(small_text):
    """A Stop that reaches the worker before it listens for one (it is still importing) ends the run as stopped,
    with a sentence, never as a crash; its owner can start the next run at once."""
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    info = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=100_000, eval_interval=10))
    assert scheduler.store.get(info.id).status.training, "started at once: a free slot"
    scheduler.stop(Actor(ALICE), info.id)  # within milliseconds of its start: Python is still loading the worker
    # a dead worker reads as interrupted until its job records the end: wait for what is recorded
    wait_for(lambda: scheduler.store.get(info.id).status == "stopped", what="the run to be recorded as stopped")
    ended = scheduler.store.get(info.id)
    assert ended.status == "stopped", (ended.status, ended.message)
    assert "ended unexpectedly" not in (ended.message or "")
    assert scheduler.current_run_for(ALICE) is None
    scheduler.submit(ALICE, tiny_plan(small_text, max_iters=20, eval_interval=10))
    scheduler.stop_all(wait=30)
