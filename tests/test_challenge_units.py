"""A challenge fixes the teacher's tokenizer itself, and its board speaks bits per byte: the score computed by hand on
a text of several-byte characters, a BPE challenge whose entries must train with exactly its merges, and boards and
challenges from before bits per byte that keep (and say) their bits per character. No run trains here: runs are
recorded in the store as a worker would record them."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from babygpt.config import tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.orchestration.challenge import (
    ChallengeRules,
    build_board,
    challenge_tokenizer,
    check_entry,
    plan_problems,
    run_problems,
    set_rules,
    stored_bpe_sha256,
    tokenizer_sha256,
)
from babygpt.orchestration.runs import create_run
from babygpt.scoring.leaderboard import BITS_PER_BYTE, BITS_PER_CHAR, Board, board_csv, board_svg, csv_table
from babygpt.server.classroom import Classroom
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.bpe import BPESettings, train_bpe
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import Corpus
from babygpt.text.datasets import load_corpus
from tests.helpers import tiny_plan
from tests.wording import says

STEPS = 20
TEACHER = Actor("teacher-key-0000000000", admin=True)

# 90 characters to train on, then a validation tail of 10: "aé東aé東aé東a". The scored tokens are the tail's
# last 9 characters (the first is only context): é é é (2 bytes each), 東 東 東 (3 bytes each), a a a (1 byte each).
MULTI_BYTE = "aé東" * 30 + "aé東aé東aé東a"


def entry_plan(text: str, **overrides):
    return tiny_plan(text, **{"max_iters": STEPS, "eval_interval": 10, "val_fraction": 0.1, **overrides})


def budget_of(plan) -> int:
    return STEPS * tokens_per_step(plan.model_config, plan.train_config)


def recorded_entry(store: RunStore, record, plan, owner: str, nats_per_token: float | None = None):
    """An entry as its worker leaves it after the whole budget, scored on the challenge's held-out tokens."""
    info = create_run(store, plan, name=f"{owner}'s entry", owner=owner, status=RunStatus.DONE,
                      challenge={"id": record.id, "check_of": None})
    store.log_metrics(info.id, [MetricRow(STEPS, "train", 1.0)])
    if nats_per_token is not None:
        store.log_score(info.id, STEPS, nats_per_token, record.rules["held_out_tokens"])
    return info


# --- the score, by hand ---------------------------------------------------------------------------

def test_the_score_is_bits_per_byte_of_the_held_out_text_counted_by_hand():
    plan = entry_plan(MULTI_BYTE, block_size=8)
    rules = set_rules(plan.corpus, "char", 0.1, budget_of(plan))
    assert (rules.held_out_tokens, rules.held_out_chars) == (9, 9)
    assert rules.held_out_bytes == 3 * 2 + 3 * 3 + 3 * 1 == 18, "the bytes the scored tokens spell, counted once"
    assert rules.unit == BITS_PER_BYTE
    # 9 tokens at 2 nats each are 18 nats; over 18 bytes: 18 / (ln 2 × 18) = 1 / ln 2 = 1.4426950… bits per byte
    # (in bits per character it would be 18 / (ln 2 × 9) = 2.885…: a 東 costs its three bytes, not one)
    assert rules.score(2.0, 9) == pytest.approx(1.4426950408889634, abs=1e-12)

    store = RunStore()
    record = store.create_challenge(rules.to_dict())
    recorded_entry(store, record, plan, "ana", nats_per_token=2.0)
    board = build_board(store, record, lambda owner: owner)
    assert [(s.entry.handle, s.entry.score) for s in board.standings] == [("ana", pytest.approx(1 / math.log(2)))]
    assert board.unit == BITS_PER_BYTE and board.spread.unit == BITS_PER_BYTE
    rows = csv_table(board_csv(board))
    assert rows[0][4] == "bits_per_byte" and rows[1][4] == "1.4427", "the CSV speaks the board's unit"
    svg = board_svg(board)
    assert ">bits/byte</text>" in svg and "1.443 bits/byte</title>" in svg and "Bars start at 0 bits/byte" in svg


def test_a_byte_level_bpe_counts_the_bytes_of_its_tokens_even_part_of_a_character():
    text = "\n".join(f"le café {i % 7} · 東京 {i % 3} · the cat sat on the mat" for i in range(200)) + "\n"
    rules = set_rules(Corpus.from_text("cafe", text), "bpe", 0.1, 10_000, bpe=BPESettings(300, "none"))
    tokenizer = challenge_tokenizer(rules, Corpus.from_text("cafe", text))
    val = tokenizer.encode(text)
    scored = val[len(val) - int(len(val) * 0.1):][1:]
    assert rules.held_out_bytes == sum(len(tokenizer.bpe.vocab[i]) for i in scored)
    assert rules.held_out_bytes > rules.held_out_chars, "é and 東京 are several bytes"


# --- a challenge with the teacher's BPE ---------------------------------------------------------

@pytest.fixture(scope="module")
def shakespeare() -> Corpus:
    """100 kB of Tiny Shakespeare: enough text to fill a 1,024-token BPE."""
    return Corpus.from_text("shakespeare", load_corpus("tinyshakespeare").text[:100_000])


def bpe_plan(corpus: Corpus, tokenizer, **overrides):
    return tiny_plan(corpus.text, tokenizer=tokenizer, **{"max_iters": STEPS, "eval_interval": 10,
                                                          "val_fraction": 0.1, **overrides})


def test_a_challenge_with_a_512_token_bpe_fixes_those_merges_and_refuses_any_other(shakespeare):
    teachers = BPESettings(512, "gpt4")
    probe = bpe_plan(shakespeare, BPETokenizer(train_bpe(shakespeare.text, 512, "gpt4")))
    rules = set_rules(shakespeare, "bpe", 0.1, budget_of(probe), bpe=teachers)
    assert (rules.tokenizer, rules.bpe_vocab, rules.bpe_split, rules.tokenizer_vocab) == ("bpe", 512, "gpt4", 512)
    assert rules.bpe_settings() == teachers
    assert rules.tokenizer_phrase() == "bpe, 512 tokens, GPT-4 split"
    assert "· tokenizer bpe, 512 tokens, GPT-4 split ·" in rules.sentence()
    assert ChallengeRules.from_dict(rules.to_dict()) == rules

    fixed = challenge_tokenizer(rules, shakespeare)  # what an entry trains with, whatever its Data page says
    assert fixed.bpe.merges == train_bpe(shakespeare.text, 512, "gpt4").merges and len(fixed.bpe.merges) == 256
    honest = bpe_plan(shakespeare, fixed)
    assert plan_problems(rules, honest) == []
    check_entry(rules, honest)

    refused = {
        "the library's default": (BPETokenizer(train_bpe(shakespeare.text, 1024, "gpt4")),
                                  "its tokenizer is bpe, 1,024 tokens, GPT-4 split, not the challenge's bpe, 512 "
                                  "tokens, GPT-4 split"),
        "another split": (BPETokenizer(train_bpe(shakespeare.text, 512, "gpt2")),
                          "its tokenizer is bpe, 512 tokens, GPT-2 split, not the challenge's bpe, 512 tokens, "
                          "GPT-4 split"),
        "merges of another text": (BPETokenizer(train_bpe(shakespeare.text.upper(), 512, "gpt4")),
                                   "its tokenizer (bpe, 512 tokens, GPT-4 split) cuts the text otherwise than the "
                                   "challenge's (other merges)"),
        "another kind": ("char", "it uses char tokens, not the challenge's bpe"),
    }
    for what, (tokenizer, problem) in refused.items():
        assert plan_problems(rules, bpe_plan(shakespeare, tokenizer)) == [problem], what
    with pytest.raises(BabyGPTError, match="^This run cannot enter the challenge: its tokenizer is bpe, 1,024 tokens"):
        check_entry(rules, bpe_plan(shakespeare, refused["the library's default"][0]))

    # the allow-list has no way round it: the model's vocabulary is the challenge tokenizer's
    wider = dataclasses.replace(honest, model_config=dataclasses.replace(honest.model_config, vocab_size=1024))
    assert plan_problems(rules, wider) == ["its vocabulary has 1,024 tokens, not the 512 of the challenge's tokenizer"]


def test_the_board_compares_the_tokenizer_itself_and_refuses_a_run_whose_merges_changed(shakespeare):
    plan = bpe_plan(shakespeare, BPETokenizer(train_bpe(shakespeare.text, 512, "gpt4")))
    rules = set_rules(shakespeare, "bpe", 0.1, budget_of(plan), bpe=BPESettings(512, "gpt4"),
                      ends_at=time.time() + 3600)
    store = RunStore()
    record = store.create_challenge(rules.to_dict())
    kept = recorded_entry(store, record, plan, "ana", nats_per_token=3.0)
    changed = recorded_entry(store, record, plan, "ben", nats_per_token=1.0)
    document = dict(store.get(changed.id).config)  # its merges rewritten after it entered: same kind, same size
    other = BPETokenizer(train_bpe(shakespeare.text.upper(), 512, "gpt4"))
    document["tokenizer"] = other.to_dict()
    store.update_config(changed.id, document)
    assert tokenizer_sha256(other) != rules.tokenizer_sha256
    resplit = recorded_entry(store, record, plan, "cy", nats_per_token=1.0)  # the same merges, another split
    document = dict(store.get(resplit.id).config)
    document["tokenizer"] = {**document["tokenizer"], "split": "gpt2"}
    store.update_config(resplit.id, document)

    board = build_board(store, record, lambda owner: owner)
    assert [s.entry.run_id for s in board.standings] == [kept.id]
    (ben, ben_reason), (cy, cy_reason) = [(r.handle, r.reason) for r in board.refused]
    assert (ben, cy) == ("ben", "cy")
    says(ben_reason, "bpe, 512 tokens, GPT-4 split", "cuts the text otherwise", "other merges")
    says(cy_reason, "bpe, 512 tokens, GPT-2 split", "not the challenge's", "bpe, 512 tokens, GPT-4 split")
    assert run_problems(rules, store.get(kept.id), STEPS) == []
    assert board.standings[0].entry.score == pytest.approx(3.0 * rules.held_out_tokens
                                                           / (math.log(2) * rules.held_out_bytes))


def test_a_stored_bpe_is_fingerprinted_without_being_rebuilt_and_only_when_well_formed(shakespeare):
    """The board fingerprints each entry's stored merges without rebuilding them; a description that is not three
    whole numbers per merge gets no fingerprint (the board then rebuilds it, and refuses it in a sentence)."""
    tokenizer = BPETokenizer(train_bpe(shakespeare.text, 300, "gpt2"))
    stored = tokenizer.to_dict()
    assert stored_bpe_sha256(stored) == tokenizer_sha256(tokenizer)
    assert stored_bpe_sha256({**stored, "asked": 999, "text_bytes": 1}) == tokenizer_sha256(tokenizer), \
        "how it was learned is not what it is"
    assert stored_bpe_sha256({**stored, "split": "gpt4"}) != tokenizer_sha256(tokenizer)
    first, *rest = stored["merges"]
    for merges in ([[first[0], first[1]], [first[2], *rest[0]], *rest[1:]],  # the same numbers, cut otherwise
                   [[True, first[1], first[2]], *rest], [[float(i) for i in first], *rest],
                   [[first[0], first[1], 2**64], *rest], [str(first), *rest], "merges"):
        assert stored_bpe_sha256({**stored, "merges": merges}) is None, merges
    assert stored_bpe_sha256({**stored, "kind": "char"}) is None and stored_bpe_sha256(None) is None


def test_a_challenges_runs_read_whole_with_their_merges_parsed_once(shakespeare, small_text):
    """The board's read of a challenge's runs hands over each config as stored (merges apart in SQLite, parsed once
    for all the runs that share them), a char run's and a damaged one's too."""
    bpe = BPETokenizer(train_bpe(shakespeare.text, 300, "gpt4"))
    store = RunStore()
    record = store.create_challenge(set_rules(shakespeare, "bpe", 0.1, 10_000, bpe=BPESettings(300, "gpt4")).to_dict())
    runs = [recorded_entry(store, record, bpe_plan(shakespeare, bpe), owner) for owner in ("ana", "ben")]
    runs.append(recorded_entry(store, record, entry_plan(small_text), "cy"))
    damaged = recorded_entry(store, record, bpe_plan(shakespeare, bpe), "dee")
    document = dict(store.get(damaged.id).config)
    document["tokenizer"] = {**document["tokenizer"], "merges": "not a list"}
    store.update_config(damaged.id, document)
    read = store.runs_for_challenge(record.id)
    assert [i.id for i in read] == [r.id for r in runs] + [damaged.id]
    assert [i.config for i in read] == [store.get(i.id).config for i in read]
    assert read[0].config["tokenizer"]["merges"] is read[1].config["tokenizer"]["merges"], "parsed once"
    assert read[3].config["tokenizer"]["merges"] == "not a list"
    assert store.challenge_owners(record.id) == ["ana", "ben", "cy", "dee"]


def test_the_board_refuses_a_run_whose_model_was_widened_beside_the_challenges_merges(shakespeare):
    plan = bpe_plan(shakespeare, BPETokenizer(train_bpe(shakespeare.text, 512, "gpt4")))
    rules = set_rules(shakespeare, "bpe", 0.1, budget_of(plan), bpe=BPESettings(512, "gpt4"))
    store = RunStore()
    record = store.create_challenge(rules.to_dict())
    info = recorded_entry(store, record, plan, "ana", nats_per_token=1.0)
    document = dict(store.get(info.id).config)
    document["model"] = {**document["model"], "vocab_size": 1024}  # the challenge's merges, a wider model
    store.update_config(info.id, document)
    assert run_problems(rules, store.get(info.id), STEPS) == [
        "its vocabulary has 1,024 tokens, not the 512 of the challenge's tokenizer"]


def test_the_classroom_sets_the_teachers_bpe_within_the_servers_bound(shakespeare):
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1, max_bpe_vocab=512))
    classroom = Classroom(scheduler)
    try:
        with pytest.raises(BabyGPTError, match="A BPE vocabulary holds from 256 tokens .* to 512; got 1024"):
            classroom.set_challenge(TEACHER, shakespeare, "bpe", 0.1, 10_000, bpe=BPESettings(1024, "gpt4"))
        record = classroom.set_challenge(TEACHER, shakespeare, "bpe", 0.1, 10_000, bpe=BPESettings(300, "gpt2"))
        rules = ChallengeRules.from_dict(record.rules)
        assert rules.tokenizer_phrase() == "bpe, 300 tokens, GPT-2 split"
        wrong = bpe_plan(shakespeare, BPETokenizer(train_bpe(shakespeare.text, 300, "gpt4")))
        with pytest.raises(BabyGPTError, match="its tokenizer is bpe, 300 tokens, GPT-4 split, not the challenge's "
                                               "bpe, 300 tokens, GPT-2 split"):
            classroom.enter("alice-key-00000000000", wrong)
        assert scheduler.store.list_runs() == [], "refused before anything is recorded"
    finally:
        scheduler.stop_all(wait=30)


# --- boards and challenges from before bits per byte --------------------------------------------

def test_a_board_frozen_in_bits_per_character_reads_back_in_them_and_says_so():
    stored = {"title": "Challenge (final)", "rules": "Text t · char tokens", "ended_at": 1.0,
              "spread": {"bits": 0.02, "groups": 1, "runs": 2, "source": "repeats by the class"},
              "standings": [{"run_id": "r1", "handle": "ana", "label": "run", "bits_per_char": 1.5, "detail": "gpt",
                             "owner": "ana", "entries": 1, "rank": 1, "tied_with": []}],
              "waiting": [], "refused": [], "entry_rule": "best"}
    board = Board.from_dict(stored)
    assert board.unit == BITS_PER_CHAR and board.unit_words == "bits per character"
    assert board.standings[0].entry.score == 1.5
    assert "Seed-to-seed spread 0.020 bits/char" in board.spread.sentence()
    rows = csv_table(board_csv(board))
    assert rows[0][4] == "bits_per_char" and rows[1][4] == "1.5000"
    assert "Bars start at 0 bits/char" in board_svg(board) and "bits/byte" not in board_svg(board)
    again = Board.from_dict(board.to_dict())
    assert again.unit == BITS_PER_CHAR and again.to_dict() == board.to_dict(), "stored again, it keeps its unit"
    with pytest.raises(BabyGPTError, match="not 'nats'"):
        Board.from_dict({**board.to_dict(), "unit": "nats"})


def test_a_challenge_set_before_bytes_were_counted_keeps_bits_per_character_to_its_end():
    plan = entry_plan(MULTI_BYTE, block_size=8)
    rules = set_rules(plan.corpus, "char", 0.1, budget_of(plan))
    old = {k: v for k, v in rules.to_dict().items()
           if k not in ("held_out_bytes", "bpe_vocab", "bpe_split", "tokenizer_vocab", "tokenizer_sha256")}
    store = RunStore()
    record = store.create_challenge(old)
    recorded_entry(store, record, plan, "ana", nats_per_token=2.0)
    board = build_board(store, record, lambda owner: owner)
    assert board.unit == BITS_PER_CHAR and board.standings[0].entry.score == pytest.approx(2.0 / math.log(2))
    assert "· tokenizer char ·" in board.rules, "its size was not kept: the kind alone"
