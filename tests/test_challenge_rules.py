"""The challenge ranks only honest entries: what an entry may set (an allow-list), a score no model switch can
game, and a board that ranks and measures the seed spread with finished runs of the whole budget only, draws
its bars on an honest scale and says what happened to an entry after the end. No run trains here: runs are
recorded in the store as a worker would record them."""

from __future__ import annotations

import dataclasses
import math
import time
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn.functional as F

from babygpt.config import NORMS, OPTIMIZERS, ModelConfig, TrainConfig, model_config_for_preset, tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.lessons.counterfactuals import COUNTERFACTUALS
from babygpt.model.gpt import build_model
from babygpt.orchestration.challenge import (
    CHECK_HANDLE,
    ENTRY_MODEL_SETTINGS,
    ENTRY_TRAIN_SETTINGS,
    ChallengeRules,
    board_of,
    build_board,
    check_entry,
    end_now,
    set_rules,
    settings_problems,
)
from babygpt.orchestration.runs import create_run
from babygpt.scoring.leaderboard import (
    NOT_CAUSAL,
    Board,
    Entry,
    Spread,
    board_csv,
    board_svg,
    csv_table,
    held_out_loss,
    rank_entries,
    seed_spread,
    sees_the_future,
)
from babygpt.server.classroom import Classroom, owner_name
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from tests.helpers import tiny_plan

STEPS = 20  # the budget's steps with the tiny plan's batch and block


def entry_plan(text: str, **overrides):
    return tiny_plan(text, **{"max_iters": STEPS, "eval_interval": 10, "val_fraction": 0.1, **overrides})


# --- what an entry may set ---------------------------------------------------------------------

def _another(value):
    """A different valid value of a setting's type (for a named choice, another of its choices)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        choices = next(c for c in (NORMS, OPTIMIZERS) if value in c)
        return next(c for c in choices if c != value)
    return value * 2 + 0.1


FIXED_MODEL = [f.name for f in dataclasses.fields(ModelConfig)
               if f.name not in ENTRY_MODEL_SETTINGS and f.name != "vocab_size"]
FIXED_TRAIN = [f.name for f in dataclasses.fields(TrainConfig)
               if f.name not in ENTRY_TRAIN_SETTINGS and f.name != "val_fraction"]


@pytest.mark.parametrize("name", FIXED_MODEL)
def test_every_model_setting_off_the_allow_list_is_refused(name):
    honest = model_config_for_preset("gpt", vocab_size=40, n_layer=2, n_head=2, n_embd=32, block_size=16)
    changed = dataclasses.replace(honest, **{name: _another(getattr(honest, name))})
    problems = settings_problems(changed, TrainConfig(), 40)
    assert len(problems) == 1 and (name in problems[0] or "without" in problems[0]), problems
    assert settings_problems(honest, TrainConfig(), 40) == []


@pytest.mark.parametrize("name", FIXED_TRAIN)
def test_every_training_setting_off_the_allow_list_is_refused(name):
    train = dataclasses.replace(TrainConfig(), **{name: _another(getattr(TrainConfig(), name))})
    model = model_config_for_preset("gpt", vocab_size=40)
    assert settings_problems(model, train, 40) == [f"it sets {name} to {getattr(train, name)!r}, which entries "
                                                   f"leave at {getattr(TrainConfig(), name)!r}"]


def test_a_setting_added_later_is_refused_until_someone_allows_it():
    @dataclasses.dataclass(frozen=True)
    class Tomorrow(ModelConfig):
        peek_ahead: bool = False  # a field nobody has judged yet

    model = Tomorrow(vocab_size=40, peek_ahead=True)
    assert settings_problems(model, TrainConfig(), 40) == [
        "it sets peek_ahead to True, which entries leave as the gpt rung has it (False)"]
    assert settings_problems(Tomorrow(vocab_size=40), TrainConfig(), 40) == []


def test_every_rung_and_the_forms_settings_may_enter(small_text):
    for preset in ("bigram", "single-head", "multi-head", "multi-head+ffn", "residual", "gpt"):
        plan = entry_plan(small_text, preset=preset, positional="sinusoidal",
                         dropout=0.1, lr=1e-2, batch_size=8, seed=7, dtype="float32")
        rules = set_rules(plan.corpus, "char", 0.1, STEPS * tokens_per_step(plan.model_config, plan.train_config))
        check_entry(rules, plan)  # raises if anything is refused


@pytest.mark.parametrize("broken", COUNTERFACTUALS, ids=lambda c: c.key)
def test_a_broken_idea_is_refused_before_anything_is_recorded_with_one_sentence(small_text, broken):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    classroom = Classroom(scheduler)
    try:
        plan = entry_plan(small_text, **broken.switches)
        budget = STEPS * tokens_per_step(plan.model_config, plan.train_config)
        classroom.set_challenge(Actor("teacher-key-0000000000", admin=True), plan.corpus, "char", 0.1, budget)
        with pytest.raises(BabyGPTError) as refused:
            classroom.enter("alice-key-000000000000", plan)
        assert str(refused.value) == (f"This run cannot enter the challenge: it trains without {broken.idea}, an "
                                      "idea broken on purpose for a lesson.")
        assert scheduler.store.list_runs() == [], "refused before it was queued"
    finally:
        scheduler.stop_all(wait=10)


def test_an_entry_trains_the_whole_budget_and_a_resume_keeps_to_the_rules(small_text):
    plan = entry_plan(small_text, max_iters=STEPS - 5)
    rules = set_rules(plan.corpus, "char", 0.1, STEPS * tokens_per_step(plan.model_config, plan.train_config))
    with pytest.raises(BabyGPTError, match=f"it would train 15 steps, but the budget allows {STEPS} steps with "
                                           f"batch_size 8 and block_size 16: an entry trains the whole budget "
                                           f"\\(set max_iters to {STEPS}\\)"):
        check_entry(rules, plan)
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    try:
        record = scheduler.store.create_challenge(rules.to_dict())
        info = create_run(scheduler.store, entry_plan(small_text),
                          owner="alice", status=RunStatus.STOPPED, challenge={"id": record.id, "check_of": None})
        alice = Actor("alice")
        with pytest.raises(BabyGPTError, match="is a challenge entry: it sets grad_accum to 2, which entries leave at 1"):
            scheduler.resume(alice, info.id, plan.corpus, grad_accum=2)
        with pytest.raises(BabyGPTError, match="is a challenge entry: it holds out 20% of the text"):
            scheduler.resume(alice, info.id, plan.corpus, val_fraction=0.2)
    finally:
        scheduler.stop_all(wait=10)


# --- a score no switch can game ------------------------------------------------------------------

def answer_reader(vocab: int, block: int) -> torch.nn.Module:
    """A one-head model without the causal mask, wired by hand to read the next token instead of predicting it:
    position i attends to position i + 1 and copies its token into the logits."""
    C = vocab + block
    config = model_config_for_preset("single-head", vocab_size=vocab, n_embd=C, block_size=block, causal=False)
    model = build_model(config)
    alpha, beta = 30 * math.sqrt(C), 20.0
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.token_embedding.weight[:, :vocab] = torch.eye(vocab)
        model.position_embedding.weight[:, vocab:] = torch.eye(block)
        wq, wk, wv = model.blocks[0].attn.qkv.weight.view(3, C, C)
        for t in range(block - 1):
            wq[vocab + t + 1, vocab + t] = alpha  # the query of position t asks for position t + 1
        wk[vocab:, vocab:] = torch.eye(block)
        wv[:vocab, :vocab] = torch.eye(vocab)
        model.lm_head.weight[:, :vocab] = beta * torch.eye(vocab)
    return model.eval()


def test_a_model_that_reads_the_answer_is_scored_on_what_it_predicts(small_text):
    plan = tiny_plan(small_text, val_fraction=0.1)
    ids, block = plan.split.val[:257], 16
    reader = answer_reader(plan.model_config.vocab_size, block)
    windows = ids[:256].view(-1, block)
    targets = ids[1:257].view(-1, block)
    with torch.no_grad():
        logits = reader(windows)[0]
        read = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, :-1].reshape(-1)).item()
    assert read < 0.05, "without the mask it reads every answer but the last of each window"
    scored, n = held_out_loss(reader, ids, block, batch=4)
    assert n == 256 and scored > 1.5, "scored with the future hidden, it predicts from the past like anyone"
    honest = answer_reader(plan.model_config.vocab_size, block)
    for block_ in honest.blocks:
        block_.attn.causal = True
    assert scored == pytest.approx(held_out_loss(honest, ids, block, batch=4)[0], rel=1e-6)
    assert not reader.blocks[0].attn.causal, "the model is given back as it came"


class Peeker(torch.nn.Module):
    """An honest model with a leak no setting describes: the next token added to each position's logits."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, idx: torch.Tensor, targets=None):
        logits = self.inner(idx)[0]
        return logits + 5.0 * F.one_hot(idx.roll(-1, dims=1), logits.size(-1)).float(), None


def test_a_model_that_sees_the_future_by_any_route_is_not_scored(small_text):
    plan = tiny_plan(small_text, val_fraction=0.1)
    model = build_model(plan.model_config)
    ids = plan.split.val[:200]
    assert not sees_the_future(model.eval(), ids[:16], batch=3)
    with pytest.raises(BabyGPTError) as refused:
        held_out_loss(Peeker(model), ids, plan.model_config.block_size, batch=3)
    assert str(refused.value) == NOT_CAUSAL


@pytest.mark.parametrize("preset", ["bigram", "single-head", "gpt"])
def test_every_rung_passes_the_causality_check_at_every_cut(small_text, preset):
    plan = tiny_plan(small_text, preset=preset, block_size=64)
    model = build_model(plan.model_config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    assert not sees_the_future(model, plan.split.val[:64], batch=8)


# --- the board: finished runs of the whole budget ------------------------------------------------

@pytest.fixture
def challenge(small_text):
    store = RunStore()
    plan = entry_plan(small_text)
    rules = set_rules(plan.corpus, "char", 0.1, STEPS * tokens_per_step(plan.model_config, plan.train_config),
                      ends_at=time.time() + 3600)
    return store, store.create_challenge(rules.to_dict()), rules


def record(store, challenge_id, text, owner, seed, steps, status, bpb=None, measured_at=None, check_of=None,
           lr=3e-3):
    """A challenge run as a worker leaves it: its steps trained, its status, and its score where it stopped."""
    plan = entry_plan(text, seed=seed, lr=lr)
    info = create_run(store, plan, name=f"{owner} {seed}", owner=owner, status=status,
                      challenge={"id": challenge_id, "check_of": check_of})
    store.log_metrics(info.id, [MetricRow(steps, "train", 1.0)])
    if bpb is not None:  # char tokens of an ASCII text: a token is a byte, so nats per token = bits per byte × ln 2
        tokens = store.challenge(challenge_id).rules["held_out_tokens"]
        store.log_score(info.id, steps, bpb * math.log(2), tokens, measured_at)
    return info


def named(owner):
    return owner or "?"


def test_only_finished_runs_of_the_whole_budget_rank_and_measure_the_spread(challenge, small_text):
    store, rec, _ = challenge
    ana = record(store, rec.id, small_text, "ana", 1, STEPS, RunStatus.DONE, 1.50)
    amy = record(store, rec.id, small_text, "amy", 2, STEPS, RunStatus.DONE, 1.52)  # ana's settings, another seed
    record(store, rec.id, small_text, "ana", 3, 0, RunStatus.STOPPED, 4.20)  # a repeat stopped at step 0
    ben = record(store, rec.id, small_text, "ben", 9, 10, RunStatus.STOPPED, 1.10)  # stopped half way
    cy = record(store, rec.id, small_text, "cy", 5, 7, RunStatus.RUNNING)
    board = build_board(store, rec, named)
    assert [(s.entry.handle, s.entry.score) for s in board.standings] == [
        (f"ana, entry 1 · {ana.id[-4:]}", pytest.approx(1.50)), ("amy", pytest.approx(1.52))], \
        "only finished runs of the whole budget rank"
    assert board.spread.bits == pytest.approx(0.02) and (board.spread.runs, board.spread.groups) == (2, 1)
    assert "spread 0.020 bits/byte from 2 runs of 1 setting (repeats by the class)" in board.spread.sentence()
    why = {u.run_id: u.why for u in board.waiting}
    assert why[ben.id] == f"stopped at step 10 of {STEPS}: resume it to finish the budget and be ranked"
    assert why[cy.id] == f"training, step 7 of {STEPS}"
    assert {ana.id, amy.id} == {s.entry.run_id for s in board.standings}


def test_no_spread_is_claimed_from_runs_it_cannot_measure(challenge, small_text):
    store, rec, _ = challenge
    record(store, rec.id, small_text, "ana", 1, STEPS, RunStatus.DONE, 1.50)
    record(store, rec.id, small_text, "ben", 2, STEPS, RunStatus.DONE, 1.51, lr=1e-3)
    record(store, rec.id, small_text, "ana", 3, 4, RunStatus.STOPPED, 3.0)  # the only repeat stopped early
    board = build_board(store, rec, named)
    assert board.spread.bits is None and "no ties are claimed" in board.spread.sentence()
    assert [(s.shown_rank, s.tied_with) for s in board.standings] == [("1", ()), ("2", ())]


def test_the_teachers_checks_measure_the_spread_once_there_are_any():
    spread = seed_spread({"top": [1.50, 1.52, 1.51], "wild": [1.9, 3.4]}, checked={"top"})
    assert spread.bits == pytest.approx(0.02) and spread.runs == 3 and spread.source == "the teacher's checks"
    assert seed_spread({"top": [1.5], "wild": [1.9, 3.4]}, checked={"top"}).bits == pytest.approx(1.5)


def test_one_wildly_unstable_setting_among_the_checked_leaves_the_margin_at_the_others_level():
    scores = {"a": [1.500, 1.510, 1.505], "b": [1.520, 1.532, 1.525], "wild": [1.55, 1.836, 1.60]}
    spread = seed_spread(scores, checked=set(scores))
    assert spread.bits == pytest.approx(0.012), "the median of 0.010, 0.012 and 0.286, not the widest"
    assert "median of 3 settings' seed ranges" in spread.sentence()
    assert seed_spread({"a": [1.5, 1.51], "wild": [1.55, 1.836]}, checked={"a", "wild"}).bits == pytest.approx(0.01)
    assert seed_spread({"wild": [1.55, 1.836]}, checked={"wild"}).bits == pytest.approx(0.286)
    entries = [Entry(str(i), f"s{i}", f"r{i}", 1.50 + 0.02 * i) for i in range(4)]
    assert [s.shown_rank for s in rank_entries(entries, spread.bits)] == ["1", "2", "3", "4"], "nobody ties"


def test_a_run_without_the_mask_that_got_in_is_refused_on_the_board(challenge, small_text):
    store, rec, _ = challenge
    plan = entry_plan(small_text, causal=False)
    info = create_run(store, plan, owner="eve", status=RunStatus.DONE, challenge={"id": rec.id, "check_of": None})
    store.log_metrics(info.id, [MetricRow(STEPS, "train", 0.01)])
    store.log_score(info.id, STEPS, 0.01, rec.rules["held_out_tokens"])
    board = build_board(store, rec, named)
    assert board.standings == [] and [r.handle for r in board.refused] == ["eve"]
    assert board.refused[0].reason == "it trains without the causal mask, an idea broken on purpose for a lesson"


def test_an_entry_that_finishes_after_the_end_says_so_on_the_final_board_and_its_csv(challenge, small_text):
    store, rec, rules = challenge
    late = record(store, rec.id, small_text, "dee", 1, 0, RunStatus.RUNNING)
    after = rules.ends_at + 60
    frozen = board_of(store, store.challenge(rec.id), named, now=after)
    assert frozen.title == "Challenge (final)"
    assert [u.why for u in frozen.waiting] == [f"still training after the challenge ended, step 0 of {STEPS}"]
    store.log_metrics(late.id, [MetricRow(STEPS, "train", 1.0)])
    store.log_score(late.id, STEPS, 1.0, rules.held_out_tokens, measured_at=after + 60)
    store.set_status(late.id, RunStatus.DONE)
    board = board_of(store, store.challenge(rec.id), named, now=after + 120)
    assert board.standings == [], "a score measured after the end ranks nothing"
    assert [u.why for u in board.waiting] == [f"finished step {STEPS} of {STEPS} after the challenge ended"]
    rows = csv_table(board_csv(board))
    assert rows[1][:4] == ["not ranked", "dee", late.label, ""]
    assert rows[1][7] == f"finished step {STEPS} of {STEPS} after the challenge ended"


def test_a_student_with_several_entries_is_never_ranked_and_not_ranked_under_one_name(challenge, small_text):
    store, rec, rules = challenge
    first = record(store, rec.id, small_text, "ana", 1, STEPS, RunStatus.DONE, 1.50)
    second = record(store, rec.id, small_text, "ana", 2, 15, RunStatus.RUNNING)
    ben = record(store, rec.id, small_text, "ben", 3, STEPS, RunStatus.DONE, 1.60)
    board = build_board(store, rec, named)
    ranked = [s.entry.handle for s in board.standings]
    waiting = [u.handle for u in board.waiting]
    assert ranked == [f"ana, entry 1 · {first.id[-4:]}", "ben"] and ben.id in {s.entry.run_id for s in board.standings}
    assert waiting == [f"ana, entry 2 · {second.id[-4:]}"] and not set(ranked) & set(waiting)
    rows = csv_table(board_csv(board))
    assert [r[1] for r in rows[1:]] == [*ranked, *waiting], "the CSV names each entry as the page does"


def test_an_ended_challenge_says_when_it_ended_not_when_it_was_planned_to(challenge, small_text):
    store, rec, rules = challenge
    ended = rules.ends_at - 1800  # the teacher ends it half an hour early
    board = end_now(store, rec, named, now=ended)
    when = time.strftime("%H:%M", time.localtime(ended))
    planned = time.strftime("%H:%M", time.localtime(rules.ends_at))
    for shown in (board.rules, rules.sentence(ended), Board.from_dict(board.to_dict()).rules):
        assert shown.endswith(f" · ended {when}") and f"ends {planned}" not in shown
    assert f"ended {when}" in board_svg(board) and f"ends {planned}" not in board_svg(board)
    assert rules.sentence().endswith(f" · ends {planned}"), "an open challenge still says when it ends"


def test_boards_frozen_before_unranked_entries_kept_their_run_read_back():
    stored = {"title": "Challenge (final)", "rules": "r", "spread": {"bits": None, "groups": 0, "runs": 0},
              "standings": [], "waiting": [["ana", "run", "training, step 0"]], "refused": [], "ended_at": 1.0}
    board = Board.from_dict(stored)
    assert [tuple(w) for w in board.waiting] == [("ana", "run", "training, step 0")]
    assert Board.from_dict(board.to_dict()).to_dict() == board.to_dict()


def test_the_picture_draws_every_bar_from_zero_so_tied_entries_look_tied():
    entries = [Entry("a", "ana", "r1", 1.50), Entry("b", "ben", "r2", 1.52), Entry("c", "cy", "r3", 1.90)]
    board = Board("Challenge (final)", "Text t", Spread(0.05, 1, 3), rank_entries(entries, 0.05))
    svg = ET.fromstring(board_svg(board))
    ns = "{http://www.w3.org/2000/svg}"
    widths = [float(r.get("width")) for r in svg.iter(f"{ns}rect") if r.get("class") == "bar"]
    assert len(widths) == 3
    assert abs(widths[0] - widths[1]) / widths[0] < 0.02, "1.50 and 1.52 are tied: two bars of nearly one length"
    assert widths[2] / widths[0] == pytest.approx(1.90 / 1.50, rel=0.01), "a bar is as long as its score"
    texts = [t.text for t in svg.iter(f"{ns}text")]
    assert "0" in texts and any(t and t.startswith("Bars start at 0 bits/byte") for t in texts)
    band = next(r for r in svg.iter(f"{ns}rect") if r.get("class") == "spread")
    assert float(band.get("width")) == pytest.approx(widths[0] * 0.05 / 1.50, rel=0.01)


def test_the_teachers_checks_and_the_command_line_are_named_in_the_runs_table():
    assert owner_name(None, "me", check=True) == CHECK_HANDLE
    assert owner_name(None, "me") == "command line"
    assert owner_name("me", "me") == "you"
    assert owner_name("other", "me").startswith("user ")


def test_rules_read_back_unchanged(challenge):
    _, rec, rules = challenge
    assert ChallengeRules.from_dict(rec.rules) == rules


def test_a_student_cannot_delete_an_entry_while_the_challenge_is_open_but_the_teacher_can(challenge, small_text):
    store, rec, _ = challenge
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    try:
        worse = record(store, rec.id, small_text, "mallory-key-0000000000", 1, STEPS, RunStatus.DONE, 1.60)
        better = record(store, rec.id, small_text, "mallory-key-0000000000", 2, STEPS, RunStatus.DONE, 1.50)
        other = record(store, rec.id, small_text, "ana-key-00000000000000", 3, STEPS, RunStatus.DONE, 1.55)
        outside = create_run(store, entry_plan(small_text), name="practice", owner="mallory-key-0000000000",
                             status=RunStatus.DONE)
        mallory = Actor("mallory-key-0000000000")
        with pytest.raises(BabyGPTError) as refused:
            scheduler.delete(mallory, worse.id)
        assert str(refused.value) == (f"Run {worse.label} is an entry in the open challenge. Entries stay until the "
                                      "challenge ends, so every try is counted; the teacher can delete it.")
        assert store.get(worse.id).id == worse.id, "the worse try is still counted"
        scheduler.delete(mallory, outside.id)  # a run outside the challenge is hers to delete
        scheduler.delete(Actor("teacher-key-0000000000", admin=True), other.id)
        assert {i.id for i in store.list_runs()} == {worse.id, better.id}
        store.end_challenge(rec.id, time.time(), {})
        scheduler.delete(mallory, worse.id)  # once the board is frozen, her runs are hers again
        assert {i.id for i in store.list_runs()} == {better.id}
    finally:
        scheduler.stop_all(wait=10)
