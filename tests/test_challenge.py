"""The class board and the challenge: ranks and ties from known numbers, the rules, the teacher's controls, the
held-out measurement, and a challenge played through the scheduler with real workers."""

from __future__ import annotations

import dataclasses
import math
import time
import xml.etree.ElementTree as ET

import pytest
import torch

from babygpt.config import tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import build_model
from babygpt.orchestration.challenge import ChallengeRules, plan_problems, run_problems, set_rules
from babygpt.scoring.leaderboard import (
    Board,
    Entry,
    Spread,
    board_csv,
    board_svg,
    csv_table,
    held_out_loss,
    rank_entries,
    seed_spread,
)
from babygpt.server.classroom import Classroom, last_line, thin
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor, clean_handle
from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from tests.helpers import tiny_plan, wait_for
from tests.wording import says

TEACHER, ALICE, BOB = Actor("teacher-key-0000000000", admin=True), Actor("alice-key-00000000000"), Actor(
    "bob-key-0000000000000000")


def entry(handle: str, bpc: float) -> Entry:
    return Entry(f"run-{handle}", handle, f"run of {handle}", bpc)


# --- ranks and ties from known numbers ---------------------------------------------------------

def test_ranks_separate_only_what_the_spread_cannot_explain():
    entries = [entry("c", 1.04), entry("a", 1.00), entry("b", 1.02), entry("d", 1.20)]
    standings = rank_entries(entries, spread_bits=0.03)
    assert [(s.entry.handle, s.rank, s.shown_rank) for s in standings] == [
        ("a", 1, "1="), ("b", 1, "1="), ("c", 2, "2="), ("d", 4, "4")]
    by = {s.entry.handle: s for s in standings}
    assert by["a"].tied_with == ("b",), "a and c are 0.04 apart: more than the spread"
    assert set(by["b"].tied_with) == {"a", "c"}
    assert by["c"].tied_with == ("b",)
    assert by["d"].tied_with == ()


def test_without_a_measured_spread_only_equal_scores_tie():
    standings = rank_entries([entry("a", 1.0), entry("b", 1.0), entry("c", 1.001)], spread_bits=None)
    assert [(s.entry.handle, s.shown_rank) for s in standings] == [("a", "1="), ("b", "1="), ("c", "3")]
    assert "not measured yet" in Spread(None).sentence()


def test_the_spread_is_the_median_gap_between_seeds_of_the_same_settings():
    spread = seed_spread({"small": [1.10, 1.13, 1.12], "big": [0.95, 0.98], "alone": [2.0]})
    assert spread.bits == pytest.approx(0.03) and spread.groups == 2 and spread.runs == 5
    assert "0.030 bits/byte" in spread.sentence() and "5 runs of 2 settings" in spread.sentence()
    assert seed_spread({"alone": [2.0], "other": [1.0]}).bits is None, "one run per setting measures nothing"


def test_the_board_exports_as_csv_and_as_a_picture():
    spread = Spread(0.05, 1, 3)
    board = Board("Challenge (final)", "Text x · char tokens", spread,
                  rank_entries([entry("ana <b>", 1.5), entry("ben", 1.52), entry("cy", 1.9)], 0.05),
                  waiting=[("dee", "run of dee", "training, step 40")])
    rows = csv_table(board_csv(board))
    assert rows[0] == ["rank", "handle", "run", "model", "bits_per_byte", "tied_with", "spread_bits", "status"]
    assert [r[:2] + [r[4], r[5]] for r in rows[1:4]] == [["1=", "ana <b>", "1.5000", "ben"],
                                                        ["1=", "ben", "1.5200", "ana <b>"], ["3", "cy", "1.9000", ""]]
    assert rows[4] == ["not ranked", "dee", "run of dee", "", "", "", "0.0500", "training, step 40"]
    assert rows[1][6] == "0.0500" and rows[1][7] == "ranked"
    svg = ET.fromstring(board_svg(board))  # well-formed: a name with markup in it is escaped
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "ana <b>" in texts and "1=" in texts and "1.900" in texts
    assert Board.from_dict(board.to_dict()).to_dict() == board.to_dict()


def test_handles_are_bounded_and_printable():
    assert clean_handle("  Ada   L. ") == "Ada L."
    with pytest.raises(BabyGPTError, match="at most 24 characters"):
        clean_handle("x" * 25)
    with pytest.raises(BabyGPTError, match="cannot contain"):
        clean_handle("a\x00b")


def test_board_helpers_bound_what_they_send():
    assert last_line("first\nsecond line\n\n") == "second line"
    assert len(last_line("y" * 500)) == 80
    points = [(i, float(i)) for i in range(1000)]
    kept = thin(points)
    assert len(kept) == 120 and kept[-1] == (999, 999.0) and kept[0] == (0, 0.0)


# --- the measurement ---------------------------------------------------------------------------

def test_held_out_loss_predicts_every_token_once_in_float32(small_text):
    plan = tiny_plan(small_text)
    model = build_model(plan.model_config)
    ids = plan.split.val[:101]  # 100 targets: 6 windows of 16 and a tail of 4
    loss, n = held_out_loss(model, ids, plan.model_config.block_size, batch=4)
    assert n == 100
    expected = []
    with torch.no_grad():
        for start in range(0, 100, 16):
            x, y = ids[start:min(start + 16, 100)], ids[start + 1:min(start + 17, 101)]
            logits = model(x[None])[0][0]
            expected.append(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
    assert loss == pytest.approx(float(sum(expected)) / 100, rel=1e-6)
    assert model.training, "the model is given back in the mode it came in"


# --- the rules ---------------------------------------------------------------------------------

def rules_for(text: str, budget: int, **kw) -> ChallengeRules:
    return set_rules(Corpus.from_text("tiny", text), "char", 0.1, budget, **kw)


def test_rules_name_every_broken_one(small_text):
    plan = tiny_plan(small_text, max_iters=50, val_fraction=0.1)
    per_step = tokens_per_step(plan.model_config, plan.train_config)
    rules = rules_for(small_text, budget=per_step * 40)
    problems = plan_problems(rules, plan)
    (problem,) = problems
    says(problem, f"50 steps × {per_step:,} tokens", f"{50 * per_step:,} tokens", f"budget of {per_step * 40:,}",
         "40 steps with batch_size 8 and block_size 16")
    other = tiny_plan(small_text.upper(), max_iters=40, val_fraction=0.2)
    problems = plan_problems(rules, other)
    assert any("not the challenge's text (tiny)" in p for p in problems)
    assert any("holds out 20% of the text, not the challenge's 10%" in p for p in problems)
    assert plan_problems(rules, tiny_plan(small_text, max_iters=40, val_fraction=0.1)) == []
    later = rules_for(small_text, budget=per_step * 40, ends_at=time.time() + 60)
    assert plan_problems(later, tiny_plan(small_text, max_iters=40, val_fraction=0.1),
                         now=time.time() + 120) == ["the challenge has ended"]
    with pytest.raises(BabyGPTError, match="already passed"):
        rules_for(small_text, budget=10, ends_at=time.time() - 1)
    with pytest.raises(BabyGPTError, match="budget must be between"):
        rules_for(small_text, budget=0)
    assert rules.held_out_tokens == rules.held_out_chars == rules.held_out_bytes, "one ASCII character a token"


# --- the whole challenge through the scheduler --------------------------------------------------

@pytest.fixture
def classroom():
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    yield Classroom(scheduler)
    scheduler.stop_all(wait=30)


def test_teacher_only_controls_are_refused_to_a_student_with_a_clear_message(classroom, small_text):
    corpus = Corpus.from_text("tiny", small_text)
    for action, call in [("set a challenge", lambda a: classroom.set_challenge(a, corpus, "char", 0.1, 10_000)),
                         ("stop every run", classroom.stop_all), ("clear the queue", classroom.clear_queue),
                         ("end the challenge", classroom.end_challenge),
                         ("check the top entries", classroom.check_top),
                         ("set when the lesson began", lambda a: classroom.set_lesson_start(a, time.time()))]:
        with pytest.raises(BabyGPTError, match=f"Only the teacher can {action}: enter the admin token"):
            call(ALICE)
    assert classroom.challenge() is None


def test_a_challenge_from_entries_to_a_frozen_board(classroom, small_text):
    store = classroom.store
    corpus = Corpus.from_text("tiny", small_text)
    plan = tiny_plan(small_text, max_iters=30, eval_interval=10, val_fraction=0.1)
    per_step = tokens_per_step(plan.model_config, plan.train_config)
    record = classroom.set_challenge(TEACHER, corpus, "char", 0.1, budget_tokens=per_step * 30)
    classroom.set_handle(ALICE.user, "Alice")
    with pytest.raises(BabyGPTError, match="cannot enter the challenge: .*over the budget"):
        classroom.enter(ALICE.user, tiny_plan(small_text, max_iters=31, eval_interval=10, val_fraction=0.1))
    alice = classroom.enter(ALICE.user, plan, "alice's")
    bob = classroom.enter(BOB.user, tiny_plan(small_text, max_iters=30, eval_interval=10, val_fraction=0.1,
                                              lr=1e-4, min_lr=1e-5), "bob's")
    wait_for(lambda: all(store.get(r.id).status is RunStatus.DONE for r in (alice, bob)), 120, "both entries")
    board = classroom.board()
    assert [s.entry.run_id for s in board.standings] == [alice.id, bob.id], "lr 3e-3 learns more than 1e-4 in 30 steps"
    assert board.standings[0].entry.handle == "Alice" and board.standings[1].entry.handle.startswith("user ")
    assert board.spread.bits is None and board.refused == []
    scores = {s.run_id: s for s in store.scores([alice.id, bob.id])}
    assert scores[alice.id].step == 30 and scores[alice.id].tokens == ChallengeRules.from_dict(record.rules).held_out_tokens
    assert board.standings[0].entry.score == pytest.approx(scores[alice.id].nats_per_token / math.log(2))

    # a resume past the budget is refused; the teacher checks the top entries at low priority
    with pytest.raises(BabyGPTError, match="is a challenge entry: 40 steps"):
        classroom.scheduler.resume(ALICE, alice.id, corpus, max_iters=40)
    checks = classroom.check_top(TEACHER, n=1)
    assert [c.priority for c in checks] == [-1, -1] and all(c.owner is None for c in checks)
    assert [c.config["train"]["seed"] for c in checks] == [1337 + 1000, 1337 + 2000]
    with pytest.raises(BabyGPTError, match="already being checked"):
        classroom.check_top(TEACHER, n=1)
    wait_for(lambda: all(store.get(c.id).status is RunStatus.DONE for c in checks), 120, "the checks")
    board = classroom.board()
    assert board.spread.groups == 1 and board.spread.runs == 3 and board.spread.bits > 0
    assert len(board.standings) == 2, "checks measure the spread; they are not entries"

    rows = {r.run_id: r for r in classroom.rows()}
    assert rows[alice.id].handle == "Alice" and rows[alice.id].role == "entry" and rows[checks[0].id].role == "check"
    assert rows[alice.id].step == 30 and rows[alice.id].val_bpb is not None and rows[alice.id].where == "local"
    assert len(rows[alice.id].curve) == 4, "evaluations at steps 0, 10, 20 and 30"

    frozen = classroom.end_challenge(TEACHER)
    assert frozen.title == "Challenge (final)" and classroom.board().to_dict() == frozen.to_dict()
    with pytest.raises(BabyGPTError, match="No challenge is open"):
        classroom.enter(BOB.user, plan)
    store.log_score(bob.id, 30, 0.01, 100)  # a score that arrives after the end changes nothing
    assert classroom.board().to_dict() == frozen.to_dict()


def test_a_run_that_broke_the_rules_is_refused_on_the_board_with_the_reason(classroom, small_text):
    store = classroom.store
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, val_fraction=0.1)
    per_step = tokens_per_step(plan.model_config, plan.train_config)
    record = classroom.set_challenge(TEACHER, Corpus.from_text("tiny", small_text), "char", 0.1, per_step * 20)
    info = classroom.enter(ALICE.user, plan)
    wait_for(lambda: store.get(info.id).status is RunStatus.DONE, 120, "the entry")
    document = dict(store.get(info.id).config)  # as if it had been resumed past the budget some other way
    document["train"] = {**document["train"], "max_iters": 30}
    store.update_config(info.id, document)
    store.log_metrics(info.id, [type(store.metrics(info.id)[0])(30, "train", 1.0)])
    board = classroom.board()
    assert board.standings == []
    assert [r.handle for r in board.refused] == [classroom.handle_of(ALICE.user)]
    assert "30 steps" in board.refused[0].reason and "over the budget" in board.refused[0].reason
    assert run_problems(ChallengeRules.from_dict(record.rules), store.get(info.id), 20) == []


def test_an_end_time_freezes_the_board_as_it_stood_then(classroom, small_text):
    store = classroom.store
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, val_fraction=0.1)
    per_step = tokens_per_step(plan.model_config, plan.train_config)
    now = time.time()
    classroom.set_challenge(TEACHER, Corpus.from_text("tiny", small_text), "char", 0.1, per_step * 20,
                            ends_at=now + 3600)
    info = classroom.enter(ALICE.user, plan)
    wait_for(lambda: store.get(info.id).status is RunStatus.DONE, 120, "the entry")
    store.log_score(info.id, 20, 0.001, 100, measured_at=now + 7200)  # measured after the end: left out
    board = classroom.board(now=now + 4000)
    assert board.title == "Challenge (final)" and len(board.standings) == 1
    assert board.standings[0].entry.score > 0.5
    assert classroom.open_challenge() is None
    with pytest.raises(BabyGPTError, match="No challenge is open"):
        classroom.enter(BOB.user, plan)


def test_stop_all_and_clear_queue(small_text):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    classroom = Classroom(scheduler)
    try:
        running = scheduler.submit(ALICE.user, tiny_plan(small_text, max_iters=100000, eval_interval=50))
        waiting = scheduler.submit(BOB.user, tiny_plan(small_text, max_iters=100))
        wait_for(lambda: scheduler.store.get(running.id).status is RunStatus.RUNNING, 60, "the first job")
        assert classroom.clear_queue(TEACHER) == 1
        assert not scheduler.store.exists(waiting.id), "a queued run that never trained disappears"
        assert classroom.stop_all(TEACHER) == 1
        wait_for(lambda: scheduler.store.get(running.id).status is RunStatus.STOPPED, 60, "the stop")
        assert scheduler.store.has_checkpoint(running.id)
    finally:
        scheduler.stop_all(wait=30)


def test_thirty_entries_at_once_wait_in_order_and_never_oversubscribe_the_cores():
    """The queue part of ``bench.class_board`` on a small simulated server: entries pressed at the same moment
    start in queue order once the server is full, every one finishes, and the threads given out never exceed the
    cores, even while new jobs start (running jobs are told their smaller share first)."""
    from bench.class_board import queue_phase

    result = queue_phase(students=10, cores=4, steps=40, rate=100.0)
    assert result["all_started"] and result["all_finished"] and result["ranked_on_board"] == 10
    assert result["waited"] == 6 and result["waiting_runs_started_in_queue_order"]
    assert result["max_threads_in_use"] <= 4
    assert result["threads_per_job_when_full"] == [1, 1, 1, 1]


def test_two_runs_of_one_seed_measure_no_spread(classroom, small_text):
    """Two students who trained the same settings with the same seed made no seed-to-seed difference: the board
    counts one score per seed, so no spread is claimed from them."""
    store = classroom.store
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, val_fraction=0.1)
    per_step = tokens_per_step(plan.model_config, plan.train_config)
    classroom.set_challenge(TEACHER, Corpus.from_text("tiny", small_text), "char", 0.1, per_step * 20)
    runs = [classroom.enter(ALICE.user, plan), classroom.enter(BOB.user, plan)]
    wait_for(lambda: all(store.get(r.id).status is RunStatus.DONE for r in runs), 120, "both entries")
    board = classroom.board()
    assert len(board.standings) == 2 and board.spread.bits is None


def test_the_best_entry_rule_says_nothing_of_zero_other_entries():
    from babygpt.scoring.leaderboard import BEST_OF_EACH, counted_entries, entry_rule_sentence

    one_each = counted_entries([dataclasses.replace(entry(name, score), owner=name) for name, score in
                                (("ana", 1.5), ("ben", 1.6))], BEST_OF_EACH)
    board = Board("Challenge", "Text x", Spread(None), rank_entries(one_each, None), entry_rule=BEST_OF_EACH)
    assert entry_rule_sentence(board) == ("The teacher's rule: only each student's best entry is ranked, marked "
                                          "with how many entries it is the best of.")
