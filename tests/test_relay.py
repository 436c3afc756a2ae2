"""Training where the store is not (what a Ray actor does), without Ray: the events a job streams back, applied to
the store, give the same run as a local worker's, and replaying them all after a server restart changes nothing."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from babygpt.orchestration.runs import create_run
from babygpt.server.relay import EventLog, RelayedJob, RelayedTraining, apply_event, apply_events
from babygpt.status import RunStatus
from babygpt.store.corpora import persist_corpus
from babygpt.store.runs import RunStore
from tests.helpers import tiny_plan


def recorded(store: RunStore, run_id: str) -> tuple:
    metrics = [(m.step, m.split, round(m.loss, 6)) for m in store.metrics(run_id)]
    return metrics, store.samples(run_id), store.attention_steps(run_id), store.get(run_id).status


def relayed_events(store: RunStore, run_id: str, stop_after: int | None = None) -> EventLog:
    log = EventLog()
    training = RelayedTraining(RelayedJob.from_store(store, store.get(run_id), threads=1), log, "ray:test-node")
    if stop_after is not None:
        original = log.append

        def append(event):  # stop as a user would, once the job logged that far
            original(event)
            if event[0] == "metrics" and event[1][-1].step >= stop_after:
                training.request_stop()

        log.append = append
    training.run()
    return log


def test_events_applied_once_or_replayed_give_the_same_run(small_text, tmp_path):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=60, eval_interval=20, sample_tokens=10)
    plan.corpus = persist_corpus(store, plan.corpus)
    info = create_run(store, plan, status=RunStatus.STARTING)
    log = relayed_events(store, info.id)
    batch = log.since(0)
    assert batch.finished and batch.events[0] == ("truncate", -1), "a job's first event clears what it will log"
    apply_events(store, info.id, batch.events)  # as the server does: metric rows of a batch in one write
    once = recorded(store, info.id)
    assert once[3] is RunStatus.DONE and [s for s, _ in once[1]] == [0, 20, 40, 60] and once[2] == [0, 20, 40, 60]
    assert store.get(info.id).config["runtime"]["where"] == "ray:test-node"
    assert store.load_trainer_state(info.id)["step"] == 60
    for event in log.since(0).events:  # a restarted server replays the whole log
        apply_event(store, info.id, event)
    assert recorded(store, info.id) == once, "replaying the log from the start logs nothing twice"
    checkpoints = [e for e in log.since(0).events if e[0] == "checkpoint"]
    assert len(checkpoints) == 1 and checkpoints[0][1] == 60, "the log keeps the newest checkpoint only"


@pytest.mark.parametrize(("seconds_between_checkpoints", "shipped"), [
    (0.0, [10, 60]),  # however fast or slow the machine: a clock that does not move ships the first and the last
    (29.0, [10, 30, 50, 60]),  # 29 s apart: every other one is 30 s or more after the last shipped
    (31.0, [10, 20, 30, 40, 50, 60]),
])
def test_checkpoints_travel_at_most_every_thirty_seconds_and_always_before_the_end(small_text, monkeypatch,
                                                                                   seconds_between_checkpoints, shipped):
    from babygpt.server import relay
    from babygpt.server.relay import SHIP_CHECKPOINT_EVERY_S, RelayStore, scratch_folder

    store = RunStore()
    plan = tiny_plan(small_text, max_iters=60, eval_interval=10)
    plan.corpus = persist_corpus(store, plan.corpus)
    info = create_run(store, plan, status=RunStatus.STARTING)
    sent = []
    relay_store = RelayStore(info, scratch_folder(info.id), sent.append)
    clock = {"now": 1000.0}

    def save_checkpoint(*args, original=relay_store.save_checkpoint):  # checkpoints come the given seconds apart
        clock["now"] += seconds_between_checkpoints
        original(*args)

    monkeypatch.setattr(relay, "time", SimpleNamespace(monotonic=lambda: clock["now"], time=time.time))
    relay_store.save_checkpoint = save_checkpoint
    from babygpt.orchestration.runs import trainer_for_job

    trainer_for_job(relay_store, info.id, plan.corpus).run()  # a checkpoint at every evaluation after the first
    kinds = [(e[0], e[1]) for e in sent if e[0] in ("checkpoint", "status")]
    assert SHIP_CHECKPOINT_EVERY_S == 30.0
    assert kinds == [("status", "running"), *(("checkpoint", s) for s in shipped), ("status", "done")], kinds


def test_a_relayed_stop_checkpoints_and_a_relayed_resume_continues_exactly(small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=60, eval_interval=20)
    plan.corpus = persist_corpus(store, plan.corpus)
    straight = create_run(store, plan, status=RunStatus.STARTING)
    for event in relayed_events(store, straight.id).since(0).events:
        apply_event(store, straight.id, event)
    stopped = create_run(store, plan, status=RunStatus.STARTING)
    for event in relayed_events(store, stopped.id, stop_after=30).since(0).events:
        apply_event(store, stopped.id, event)
    assert store.get(stopped.id).status is RunStatus.STOPPED
    assert store.load_trainer_state(stopped.id)["step"] == 30
    for event in relayed_events(store, stopped.id).since(0).events:  # resumed from the checkpoint the server sent
        apply_event(store, stopped.id, event)
    assert store.get(stopped.id).status is RunStatus.DONE
    a, b = store.load(straight.id).model.state_dict(), store.load(stopped.id).model.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), "stop and resume elsewhere = one straight run"
    assert recorded(store, stopped.id)[0] == recorded(store, straight.id)[0]


def test_the_event_log_waits_for_news_and_says_when_it_is_finished():
    log = EventLog()
    assert log.since(0, wait_s=0.01).events == [] and not log.since(0, wait_s=0.01).finished
    log.append(("message", "a"))
    log.append(("checkpoint", 1, b"w1", b"t1"))
    log.append(("checkpoint", 2, b"w2", b"t2"))
    batch = log.since(1, wait_s=0.01)
    assert batch.events == [("checkpoint", 2, b"w2", b"t2")] and batch.next == 3 and not batch.finished
    log.finish()
    assert log.since(3).events == [] and log.since(3).finished


def test_a_challenge_entry_trained_elsewhere_sends_its_score_before_its_end(small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, val_fraction=0.1)
    plan.corpus = persist_corpus(store, plan.corpus)
    info = create_run(store, plan, status=RunStatus.STARTING, challenge={"id": "c0ffee00", "check_of": None})
    events = relayed_events(store, info.id).since(0).events
    kinds = [e[0] for e in events]
    assert kinds.index("score") < max(i for i, k in enumerate(kinds) if k == "status"), "scored before it ends"
    apply_events(store, info.id, events)
    apply_events(store, info.id, events)  # replayed after a restart: its first event clears the old score
    (score,) = store.scores([info.id])
    assert score.step == 20 and score.tokens == min(len(plan.split.val) - 1, 65_536) and score.nats_per_token > 0
