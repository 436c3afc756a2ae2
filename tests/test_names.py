"""Names on the class board are honest: one student's name is nobody else's, the app's own names (the teacher,
the command line, an anonymous ``user 3fa2b1``, "you") cannot be taken, "(you)" is decided by user key, and the
teacher's rule for several entries from one student is applied by the ranking and stated on the board."""

from __future__ import annotations

import dataclasses

import pytest

from babygpt.config import TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.orchestration.challenge import ChallengeRules, build_board, set_rules
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.runs import create_run
from babygpt.scoring.leaderboard import (
    BEST_OF_EACH,
    EVERY_ENTRY,
    Board,
    Entry,
    Spread,
    counted_entries,
    entry_rule_sentence,
    rank_entries,
)
from babygpt.server.classroom import Classroom
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import check_name_free, clean_handle, name_key, name_skeleton, public_handle
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.corpus import Corpus
from tests.wording import says

ADA, BEN, CY = "ada-key-000000000000000", "ben-key-000000000000000", "cy-key-0000000000000000"


# --- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["teacher", "Teacher", "TEACHER'S CHECK", "teachers  check", "teacher’s check",
                                  "Teacher 2", "command line", "Command-Line", "you", "You!", "(you)", "Ada (you)",
                                  "yours", "admin", "ｔｅａｃｈｅｒ"])
def test_the_apps_own_names_are_refused_with_a_sentence(name):
    with pytest.raises(BabyGPTError, match="is a name the app itself uses on the board"):
        clean_handle(name)


@pytest.mark.parametrize("name", [public_handle(BEN), public_handle(BEN).upper(), public_handle(BEN).replace(" ", ""),
                                  public_handle(BEN).replace(" ", "_"), "user 000000", "User-ABC123"])
def test_a_name_that_looks_anonymous_is_refused(name):
    with pytest.raises(BabyGPTError, match="looks like an anonymous name"):
        clean_handle(name)


@pytest.mark.parametrize("name", ["Ada", "Ada Lovelace", "Maximiliana-Dorothea Q.", "Ümit", "user", "Yousef",
                                  "Cheater"])
def test_ordinary_names_pass_as_typed(name):
    assert clean_handle(name) == name


def test_punctuation_alone_is_not_a_name():
    with pytest.raises(BabyGPTError, match="at least one letter or digit"):
        clean_handle("!!! ...")
    assert clean_handle("   ") == "", "empty: back to the anonymous name"


def test_a_name_is_one_students_whatever_its_case_and_spacing():
    taken = {ADA: "Ada Lee"}
    assert name_key("  ada   LEE ") == name_key("AdaLee") == name_key("Ada Lee")
    for same in ("ada lee", "ADA LEE", "AdaLee", "Ada  Lee"):
        with pytest.raises(BabyGPTError, match="^Another student already shows as .* on the board: choose another"):
            check_name_free(BEN, clean_handle(same), taken)
    check_name_free(ADA, "ADA LEE", taken)  # her own name, written differently: still hers
    check_name_free(BEN, "Ada Leigh", taken)
    check_name_free(BEN, "", taken)  # anonymous is everyone's


@pytest.mark.parametrize("look_alike", ["\u0410da Lee", "Ada Lee\u3164", "Ada Lee.", "ADA  LEE!", "Ádá Lee",
                                        "\uff21da Lee"])
def test_a_name_that_looks_like_a_classmates_is_taken(look_alike):
    with pytest.raises(BabyGPTError, match="^Another student already shows as .* on the board: choose another"):
        check_name_free(BEN, look_alike, {ADA: "Ada Lee"})
    assert name_skeleton(look_alike) == name_skeleton("Ada Lee") == "adalee"


@pytest.mark.parametrize("name", ["Ada Lee (y\u043eu)", "Ada \uff08you\uff09", "t\u0435acher's check",
                                  "\u1d1b\u1d07\u1d00\u1d04\u029c\u1d07\u0280", "Mr Teacher", "Ada you",
                                  "\u0422EACHER", "\u0391dmin"])
def test_the_apps_own_names_and_words_are_refused_in_look_alike_letters(name):
    with pytest.raises(BabyGPTError, match="is a name the app itself uses on the board .* or contains one of its "
                                           "words \\(teacher, you\\): choose your own"):
        clean_handle(name)


@pytest.mark.parametrize("name", ["us\u0435r 3fa2b1", "user 3fa2bl", "USER-3FA2BL", "\u1d1cser 3fa2b1"])
def test_an_anonymous_looking_name_is_refused_in_look_alike_letters(name):
    with pytest.raises(BabyGPTError, match="looks like an anonymous name"):
        clean_handle(name)


@pytest.mark.parametrize("name", ["\u3164", "Ada Lee\u3164", "Ada\u200bLee", "\u2800", "Ada\ufe0f"])
def test_a_name_with_invisible_characters_is_refused(name):
    with pytest.raises(BabyGPTError, match="^A name on the board cannot contain invisible characters \\(U\\+"):
        clean_handle(name)


@pytest.mark.parametrize("control", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f"])
def test_a_name_with_a_direction_control_is_refused(control):
    with pytest.raises(BabyGPTError, match="^A name on the board cannot contain a direction control"):
        clean_handle(f"Ada{control} Lee")


@pytest.mark.parametrize("name", ["\u0410da Lee", "Bo\u03b2", "Ada L\u0435e"])
def test_a_word_that_mixes_alphabets_is_refused(name):
    with pytest.raises(BabyGPTError, match="mixes letters of two alphabets .*: type each word in one alphabet"):
        clean_handle(name)


@pytest.mark.parametrize("name", ["\u0410\u043d\u043d\u0430 Lee", "\u6f22\u5b57\u3072\u3089\u30ab\u30bf",
                                  "\u0386\u03bd\u03bd\u03b1", "Zo\u00eb", "Jos\u00e9 2"])
def test_names_in_one_alphabet_per_word_pass(name):
    assert clean_handle(name) == name


def test_a_name_whose_skeleton_is_empty_is_refused():
    assert name_skeleton("\u3164 . \u0301") == ""
    with pytest.raises(BabyGPTError, match="at least one letter or digit"):
        clean_handle("- \u0301 -")


@pytest.fixture
def classroom():
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    yield Classroom(scheduler)
    scheduler.stop_all(wait=10)


def test_the_classroom_keeps_names_unique(classroom):
    assert classroom.set_handle(ADA, "Ada") == "Ada"
    with pytest.raises(BabyGPTError, match="Another student already shows as 'ada' on the board"):
        classroom.set_handle(BEN, "ada")
    with pytest.raises(BabyGPTError, match="looks like an anonymous name"):
        classroom.set_handle(BEN, public_handle(ADA))
    with pytest.raises(BabyGPTError, match="a name the app itself uses"):
        classroom.set_handle(BEN, "Teacher's check")
    assert classroom.handle_of(BEN) == public_handle(BEN), "a refused name changes nothing"
    assert classroom.set_handle(ADA, "ADA") == "ADA"
    classroom.set_handle(ADA, "")  # Ada goes back to anonymous: her old name is free again
    assert classroom.set_handle(BEN, "Ada") == "Ada"


# --- several entries from one student ----------------------------------------------------------

def entry(owner: str, handle: str, bpc: float, run: str) -> Entry:
    return Entry(run, handle, f"run {run}", bpc, "gpt 2×64", owner)


ENTRIES = [entry(ADA, "Ada", 1.50, "a1"), entry(ADA, "Ada", 1.40, "a2"), entry(ADA, "Ada", 1.60, "a3"),
           entry(BEN, "Ben", 1.45, "b1"), entry(CY, "Ada", 1.55, "c1")]  # Cy took "Ada" before names were unique


def test_best_of_each_student_ranks_one_line_per_user_key():
    kept = counted_entries(ENTRIES, BEST_OF_EACH)
    assert [(e.run_id, e.entries) for e in kept] == [("a2", 3), ("b1", 1), ("c1", 1)], "Cy is not Ada"
    board = Board("Challenge", "rules", Spread(None), rank_entries(kept, None), entry_rule=BEST_OF_EACH)
    says(entry_rule_sentence(board), "only each student's best entry is ranked", "2 other entries not ranked")


def test_every_entry_ranks_them_all_and_says_so():
    kept = counted_entries(ENTRIES, EVERY_ENTRY)
    assert [e.run_id for e in kept] == ["a1", "a2", "a3", "b1", "c1"]
    assert [e.entries for e in kept] == [3, 3, 3, 1, 1]
    board = Board("Challenge", "rules", Spread(None), rank_entries(kept, None), entry_rule=EVERY_ENTRY)
    assert entry_rule_sentence(board) == ("The teacher's rule: every entry is ranked, several from one student too "
                                          "(1 student entered more than once).")


def test_a_frozen_board_keeps_the_rule_and_whose_each_entry_is():
    kept = counted_entries(ENTRIES, BEST_OF_EACH)
    board = Board("Challenge (final)", "rules", Spread(None), rank_entries(kept, None), entry_rule=BEST_OF_EACH)
    again = Board.from_dict(board.to_dict())
    assert again.entry_rule == BEST_OF_EACH and [(s.entry.owner, s.entry.entries) for s in again.standings] == [
        (ADA, 3), (BEN, 1), (CY, 1)]
    legacy = board.to_dict()
    legacy.pop("entry_rule")
    for s in legacy["standings"]:
        s.pop("owner"), s.pop("entries")
    assert Board.from_dict(legacy).entry_rule == EVERY_ENTRY, "boards frozen before the rule ranked every entry"


def test_the_teacher_chooses_the_rule_with_the_challenge():
    corpus = Corpus.from_text("tiny", "abcdefgh " * 400)
    assert set_rules(corpus, "char", 0.1, 10_000).entry_rule == BEST_OF_EACH
    assert set_rules(corpus, "char", 0.1, 10_000, entry_rule=EVERY_ENTRY).entry_rule == EVERY_ENTRY
    with pytest.raises(BabyGPTError, match="Several entries from one student count as 'best' or 'every', not 'most'"):
        set_rules(corpus, "char", 0.1, 10_000, entry_rule="most")


def scored_entry(store: RunStore, plan, record, owner: str, seed: int, nats: float, rules: ChallengeRules) -> str:
    plan.train_config = dataclasses.replace(plan.train_config, seed=seed)
    info = create_run(store, plan, f"seed {seed}", owner=owner, status=RunStatus.RUNNING,
                      challenge={"id": record.id, "check_of": None})
    last = plan.train_config.max_iters
    store.log_metrics(info.id, [MetricRow(s, "train", 2.0, 1e-3, 1e4, 1.0) for s in (0, last)])
    store.log_score(info.id, last, nats, rules.held_out_tokens)
    store.set_status(info.id, RunStatus.DONE)
    return info.id


@pytest.mark.parametrize("rule", [BEST_OF_EACH, EVERY_ENTRY])
def test_the_board_applies_the_rule_to_a_student_who_enters_again_and_again(rule):
    store = RunStore()
    corpus = Corpus.from_text("tiny", "the cat sat on the mat. " * 300)
    train = TrainConfig(max_iters=20, eval_interval=10, batch_size=4, device="cpu")
    plan = plan_training(corpus, "char", "gpt", train, n_layer=1, n_head=2, n_embd=32, block_size=16)
    rules = set_rules(corpus, "char", train.val_fraction, 20 * 4 * 16, entry_rule=rule)
    record = store.create_challenge(rules.to_dict())
    store.set_handle(ADA, "Ada")
    lucky = [scored_entry(store, plan, record, ADA, seed, nats, rules) for seed, nats in ((1, 1.2), (2, 0.9), (3, 1.3))]
    ben = scored_entry(store, plan, record, BEN, 1, 1.0, rules)
    names = store.handles()
    board = build_board(store, store.challenge(record.id), lambda owner: names.get(owner) or public_handle(owner))
    ranked = [(s.entry.run_id, s.entry.owner, s.entry.entries) for s in board.standings]
    if rule == BEST_OF_EACH:
        assert ranked == [(lucky[1], ADA, 3), (ben, BEN, 1)], "Ada's lucky seed, marked as the best of three"
    else:
        assert ranked == [(lucky[1], ADA, 3), (ben, BEN, 1), (lucky[0], ADA, 3), (lucky[2], ADA, 3)]
    assert board.entry_rule == rule and entry_rule_sentence(board).startswith("The teacher's rule: ")


@pytest.mark.usefixtures("fresh_resources")
def test_the_teacher_sets_the_rule_in_the_challenge_panel_and_the_board_states_it(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", "a-teacher-secret")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_input(key="admin_token").input("a-teacher-secret").run()
    at.switch_page("views/class_board.py").run()
    at.radio(key="challenge_entry_rule").set_value(EVERY_ENTRY).run()
    at.button(key="set_challenge").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from ui.state import store
    assert store().open_challenge().rules["entry_rule"] == EVERY_ENTRY
    assert any(c.value == "The teacher's rule: every entry is ranked, several from one student too (0 students "
               "entered more than once)." for c in at.caption), [c.value for c in at.caption]
