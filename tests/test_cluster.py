"""The scheduler on a real Ray cluster of several nodes on this machine: a head that holds no jobs (like the machine
that runs the app) and two nodes of one CPU each, real raylets and GCS started and ended here."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import ray  # in requirements.txt: these tests never skip
from ray.cluster_utils import Cluster

from babygpt.errors import BabyGPTError
from babygpt.server.ray_backend import RayBackend, TrainingActor, actor_name, find_actor, store_namespace
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from tests.conftest import ROOT
from tests.helpers import tiny_plan, wait_for

ALICE, BOB, CAROL = "alice-key-0123456789", "bob-key-0123456789ab", "carol-key-0123456789"
NODE = dict(num_cpus=1, object_store_memory=80 * 2**20)
ENDED = {RunStatus.DONE, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED}


@pytest.fixture(scope="module")
def cluster():
    head = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, object_store_memory=80 * 2**20,
                                                              include_dashboard=False))
    nodes = [head.add_node(**NODE) for _ in range(2)]
    head.wait_for_nodes()
    ray.init(address=head.address)
    yield head, nodes
    ray.shutdown()
    head.shutdown()


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    """The server's environment pointing at the cluster; afterwards no actor of the test is left."""
    head, _ = cluster
    monkeypatch.setenv("BABYGPT_RAY_ADDRESS", head.address)
    yield cluster
    leftovers = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"].startswith("babygpt-")]
    for entry in leftovers:
        ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]))
    assert leftovers == [], "every actor is killed when its run ends"


def scheduler_on_cluster(store: RunStore) -> Scheduler:
    return Scheduler(store, SchedulerSettings.from_env())


def node_of(store: RunStore, run_id: str) -> str:
    where = store.get(run_id).config.get("runtime", {}).get("where", "")
    assert where.startswith("ray:"), where
    return where[4:]


def logged_once(store: RunStore, run_id: str) -> bool:
    keys = [(m.step, m.split) for m in store.metrics(run_id)]
    return len(keys) == len(set(keys))


def test_runs_land_on_different_nodes_and_a_queued_run_starts_when_a_node_frees(on_cluster, small_text):
    _, nodes = on_cluster
    store = RunStore()
    scheduler = scheduler_on_cluster(store)
    assert scheduler.backend.name == "ray" and scheduler.slots == 2, "one job per 1-CPU node; the head holds none"
    assert "2 CPU(s), 2 job(s) at once" in scheduler.backend.describe()
    first = scheduler.submit(ALICE, tiny_plan(small_text, max_iters=150, sample_tokens=20))
    second = scheduler.submit(BOB, tiny_plan(small_text, max_iters=100_000))  # trains until stopped below
    third = scheduler.submit(CAROL, tiny_plan(small_text, max_iters=60))
    assert store.get(third.id).status is RunStatus.QUEUED, "two nodes of one CPU: the third run waits"
    assert scheduler.snapshot(third.id).queue_position == 1
    wait_for(lambda: store.get(third.id).status.training, 180, "the queued run to start when a node frees")
    states = [(store.get(r.id).status, store.get(r.id).message) for r in (first, second, third)]
    assert store.get(first.id).status is RunStatus.DONE and store.get(second.id).status.training, states
    wait_for(lambda: store.get(third.id).status in ENDED, 240, "the third run")
    scheduler.stop(Actor(BOB), second.id, wait=60)
    assert [store.get(r.id).status for r in (first, second, third)] == [RunStatus.DONE, RunStatus.STOPPED,
                                                                          RunStatus.DONE]
    assert node_of(store, first.id) != node_of(store, second.id), "two runs at once land on the two nodes"
    assert {node_of(store, r.id) for r in (first, second, third)} == {n.node_id for n in nodes}
    for run in (first, second, third):
        assert logged_once(store, run.id)
        assert store.has_checkpoint(run.id) and store.load(run.id).model is not None, "the checkpoint came back"
        assert store.attention_steps(run.id), "attention snapshots travelled too"
        assert [s for s, _ in store.head_score_history(run.id)] == store.attention_steps(run.id), \
            "and every head's scores at the same evaluations"
        assert max(m.step for m in store.metrics(run.id)) == store.load_trainer_state(run.id)["step"]
    assert [step for step, _ in store.samples(first.id)] == [0, 25, 50, 75, 100, 125, 150], "and the samples"
    wait_for(lambda: not scheduler.running(), 30, "the jobs to be let go")
    assert store.summaries()[0].where.startswith("ray:"), "the Runs table gets where each run trained"


def test_stop_keeps_a_checkpoint_and_resume_continues_on_the_cluster(on_cluster, small_text):
    store = RunStore()
    scheduler = scheduler_on_cluster(store)
    plan = tiny_plan(small_text, max_iters=100_000, eval_interval=20)
    info = scheduler.submit(ALICE, plan)
    wait_for(lambda: scheduler.snapshot(info.id).step >= 30, 120, "thirty steps on the cluster")
    with pytest.raises(BabyGPTError, match="belongs to"):
        scheduler.stop(Actor(BOB), info.id)
    scheduler.stop(Actor(ALICE), info.id, wait=60)
    assert store.get(info.id).status is RunStatus.STOPPED
    stopped_at = store.load_trainer_state(info.id)["step"]
    assert stopped_at >= 30 and stopped_at == max(m.step for m in store.metrics(info.id)), \
        "stop checkpoints the step it stopped after"
    scheduler.resume(Actor(ALICE), info.id, plan.corpus, max_iters=stopped_at + 40)
    wait_for(lambda: store.get(info.id).status is RunStatus.DONE, 120, "the resumed run to finish")
    steps = [m.step for m in store.metrics(info.id) if m.split == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == stopped_at + 40, "resume continued from the checkpoint"
    assert logged_once(store, info.id)


def test_a_lost_node_interrupts_only_its_run_and_resume_finishes_elsewhere(on_cluster, small_text):
    head, nodes = on_cluster
    store = RunStore()
    scheduler = scheduler_on_cluster(store)
    plan = tiny_plan(small_text, max_iters=100_000, eval_interval=20)
    lost = scheduler.submit(ALICE, plan)
    kept = scheduler.submit(BOB, plan)
    for run in (lost, kept):
        wait_for(lambda run=run: store.has_checkpoint(run.id) and scheduler.snapshot(run.id).step >= 45, 120,
                 "both runs to train past a checkpoint")
    victim = next(n for n in nodes if n.node_id == node_of(store, lost.id))
    head.remove_node(victim)
    wait_for(lambda: store.get(lost.id).status is RunStatus.INTERRUPTED, 60, "the lost node's run to be interrupted")
    message = store.get(lost.id).message
    checkpoint = store.load_trainer_state(lost.id)["step"]
    assert f"Ray node {victim.node_id[:8]}" in message and "left the cluster" in message, message
    assert f"last checkpoint, step {checkpoint}" in message, message
    assert store.get(kept.id).status is RunStatus.RUNNING, "the other node's run is untouched"
    assert scheduler.slots == 1, "jobs at once follow the nodes that are left"
    replacement = head.add_node(**NODE)  # another machine joins
    nodes[nodes.index(victim)] = replacement
    wait_for(lambda: scheduler.backend.slots() == 2, 30, "the new node to count")
    scheduler.resume(Actor(ALICE), lost.id, plan.corpus, max_iters=checkpoint + 40)
    wait_for(lambda: store.get(lost.id).status is RunStatus.DONE, 120, "the resumed run to finish elsewhere")
    assert node_of(store, lost.id) == replacement.node_id != victim.node_id
    steps = [m.step for m in store.metrics(lost.id) if m.split == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == checkpoint + 40, "nothing logged twice, nothing skipped"
    assert store.get(kept.id).status is RunStatus.RUNNING
    scheduler.stop(Actor(BOB), kept.id, wait=60)
    assert store.get(kept.id).status is RunStatus.STOPPED and logged_once(store, kept.id)


SERVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from babygpt.server.scheduler import Scheduler
    from babygpt.server.settings import SchedulerSettings
    from babygpt.store.runs import RunStore
    from tests.helpers import tiny_plan
    scheduler = Scheduler(RunStore(), SchedulerSettings.from_env())
    info = scheduler.submit("alice-key-0123456789", tiny_plan({text!r}, max_iters=100_000, eval_interval=20))
    print(info.id, flush=True)
    time.sleep(600)
""")


def test_a_restarted_server_adopts_its_running_actors_and_kills_strays(on_cluster, small_text, tmp_path):
    store = RunStore()
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT), text=small_text)],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ), cwd=tmp_path)
    try:
        run_id = server.stdout.readline().strip()
        assert run_id, "the first server started a run"
        wait_for(lambda: store.has_checkpoint(run_id) and len(store.metrics(run_id)) > 10, 120, "the run to train")
    finally:
        server.send_signal(signal.SIGKILL)  # the server dies; its detached actor trains on
        server.wait()
    stray = TrainingActor.options(name=actor_name("gone-run"), namespace=store_namespace(store), lifetime="detached",
                                  num_cpus=0).remote()  # an actor whose run the store does not know
    ray.get(stray.request_stop.remote())
    assert store.get(run_id).status is RunStatus.INTERRUPTED, "read from the store alone, the run looks interrupted"
    restarted = scheduler_on_cluster(store)
    assert [j.run_id for j in restarted.running()] == [run_id], "the restarted server adopted the actor"
    assert store.get(run_id).status is RunStatus.RUNNING
    assert restarted.backend.find("gone-run") is None, "an actor without a training run is killed"
    adopted_at = restarted.snapshot(run_id).step
    wait_for(lambda: restarted.snapshot(run_id).step >= adopted_at + 40, 120, "the adopted run to train on")
    restarted.stop(Actor("alice-key-0123456789"), run_id, wait=60)  # far too long to finish: the test ends it
    assert store.get(run_id).status is RunStatus.STOPPED
    assert logged_once(store, run_id), "the replayed events were applied exactly once"
    steps = [m.step for m in store.metrics(run_id) if m.split == "train"]
    assert steps[-1] == store.load_trainer_state(run_id)["step"] and steps == sorted(steps)


def test_the_training_page_trains_on_the_cluster_and_draws_its_live_chart(on_cluster, fresh_resources):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import chart_spec, plotly_array
    from ui.state import scheduler

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert any("Ray cluster: 3 node(s), 2 CPU(s)" in c.value for c in at.sidebar.caption)
    at.switch_page("views/train.py").run()
    at.slider(key="hp_n_layer").set_value(1).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.select_slider(key="hp_block_size").set_value(16).run()
    at.number_input(key="hp_max_iters").set_value(120).run()
    at.number_input(key="hp_eval_interval").set_value(40).run()
    at.button(key="start").click().run()
    assert not at.error, [e.value for e in at.error]
    run_id = scheduler().running()[0].run_id
    assert isinstance(scheduler().backend, RayBackend)
    wait_for(lambda: scheduler().store.get(run_id).status is RunStatus.DONE, 180, "the page's run on the cluster")
    at.run()
    spec = chart_spec(at, "loss_chart")
    steps = [float(np.nanmax(plotly_array([trace["x"]] if isinstance(trace["x"], list) else trace["x"])))
             for trace in spec["data"] if trace.get("x") is not None and len(trace["x"])]
    assert steps and max(steps) == 120, "the live chart drew the run's steps"
    assert node_of(scheduler().store, run_id)
    at.switch_page("views/runs.py").run()
    table = at.dataframe[0].value
    assert table["where"].iloc[0].startswith("ray:"), "the Runs page shows where the run trained"


def test_without_an_address_nothing_imports_ray(tmp_path):
    code = ("import sys; from babygpt.server.scheduler import Scheduler; from babygpt.server.settings import SchedulerSettings; "
            "from babygpt.store.runs import RunStore; s = Scheduler(RunStore(), SchedulerSettings.from_env()); "
            "print(s.backend.name, 'ray' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "BABYGPT_RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.stdout.split() == ["local", "False"], out.stderr


def test_an_address_where_no_cluster_answers_is_named_at_once():
    from babygpt.errors import BabyGPTError
    from babygpt.server.ray_backend import check_reachable

    with pytest.raises(BabyGPTError, match="No Ray cluster answers at '127.0.0.1:1'.*ray start --head"):
        check_reachable("127.0.0.1:1")
    with pytest.raises(BabyGPTError, match="must be auto, host:port or ray://host:port"):
        check_reachable("my-cluster")


def test_the_app_names_a_cluster_that_does_not_answer(monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BABYGPT_RAY_ADDRESS", "127.0.0.1:1")
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    finally:
        st.cache_resource.clear()  # nothing was built; the next test's scheduler starts fresh
    assert [e.value for e in at.error] and "No Ray cluster answers at '127.0.0.1:1'" in at.error[0].value
    assert not at.exception


def test_cluster_settings_are_checked(monkeypatch):
    from babygpt.errors import BabyGPTError
    from babygpt.server.ray_backend import ClusterSettings

    monkeypatch.setenv("BABYGPT_GPUS_PER_JOB", "a quarter")
    with pytest.raises(BabyGPTError, match="BABYGPT_GPUS_PER_JOB must be a number"):
        ClusterSettings.from_env("auto")
    monkeypatch.setenv("BABYGPT_GPUS_PER_JOB", "0.25")
    assert ClusterSettings.from_env("auto").gpus_per_job == 0.25
    assert json.dumps(ClusterSettings.from_env("auto").__dict__)  # plain data


def test_a_finished_actor_that_no_server_collects_ends_itself(on_cluster, small_text):
    from babygpt.orchestration.runs import create_run
    from babygpt.server.relay import RelayedJob
    from babygpt.store.corpora import persist_corpus

    store = RunStore()
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10)
    plan.corpus = persist_corpus(store, plan.corpus)
    info = create_run(store, plan, status=RunStatus.STARTING)
    namespace = store_namespace(store)
    actor = TrainingActor.options(name=actor_name(info.id), namespace=namespace, lifetime="detached",
                                  num_cpus=1).remote(linger_s=2.0)
    ray.get(actor.start.remote(RelayedJob.from_store(store, info, threads=1)))  # and no server reads its events
    wait_for(lambda: find_actor(namespace, info.id) is None, 90, "the unread finished actor to end itself")
