"""The Class page with AppTest: the board, names, the teacher's panel and a challenge entered from the training
page, with real workers behind them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.orchestration.challenge import set_rules
from babygpt.orchestration.runs import create_run
from babygpt.status import RunStatus
from tests.helpers import app, tiny_plan, wait_for
from tests.needs import required_module
from tests.wording import says

pytestmark = pytest.mark.usefixtures("fresh_resources")
TOKEN = "a-teacher-secret"
CLASS = "views/class_board.py"


def html_of(at: AppTest) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


@pytest.fixture
def teacher(monkeypatch) -> AppTest:
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", TOKEN)
    at = app()
    at.text_input(key="admin_token").input(TOKEN).run()
    at.switch_page(CLASS).run()
    assert not at.exception
    return at


def small_training_form(at: AppTest, max_iters: int) -> None:
    at.switch_page("views/train.py").run()
    for name, value in dict(n_layer=1, n_embd=32, n_head=2, block_size=16, batch_size=4, eval_interval=10,
                            eval_iters=2, warmup_iters=2, max_iters=max_iters).items():
        widget = next(w for kind in ("slider", "select_slider", "number_input", "selectbox")
                      for w in at.get(kind) if getattr(w, "key", None) == f"hp_{name}")
        widget.set_value(value).run()


def test_a_student_sees_the_board_without_the_teachers_controls(monkeypatch):
    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", TOKEN)
    at = app()
    at.switch_page(CLASS).run()
    assert not at.exception and at.title[0].value == "Class"
    assert not [e for e in at.expander if e.label == "Teacher" and e.proto.expanded], "no teacher panel"
    assert "stop_all" not in [b.key for b in at.button] and "set_challenge" not in [b.key for b in at.button]
    assert "No challenge yet" in " ".join(c.value for c in at.caption)
    at.text_input(key="board_handle").input("Ada").run()
    assert not at.exception
    from ui.state import classroom
    assert classroom().handle_of(at.session_state["user_key"]) == "Ada"
    at.text_input(key="board_handle").input("x" * 30).run()  # the browser caps it at 24; the server says why too
    assert classroom().handle_of(at.session_state["user_key"]) in {"Ada", "x" * 24}


def test_a_challenge_set_entered_ranked_and_ended_from_the_pages(teacher):
    at = teacher
    assert at.button(key="stop_all") is not None
    at.radio(key="budget_how").set_value("steps × batch × block").run()
    at.number_input(key="budget_steps").set_value(20)
    at.number_input(key="budget_batch").set_value(4)
    at.number_input(key="budget_block").set_value(16).run()
    at.button(key="set_challenge").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "budget 1,280 training tokens" in " ".join(m.value for m in at.markdown)

    small_training_form(at, max_iters=30)  # 30 × 4 × 16 tokens: over the budget
    at.toggle(key="challenge_entry").set_value(True).run()
    assert any(e.value.startswith("This run cannot enter the challenge: 30 steps × 64 tokens per step") and
               "the budget allows 20 steps with batch_size 4 and block_size 16" in e.value for e in at.error)
    assert at.button(key="start").disabled
    assert any(c.value == "The challenge's budget allows 20 steps with batch_size 4 and block_size 16."
               for c in at.caption)
    at.number_input(key="hp_max_iters").set_value(20).run()
    assert not at.button(key="start").disabled
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    from ui.state import store
    entry = wait_for(lambda: [i for i in store().list_runs() if i.challenge_id], 30, "the entry")[0]
    wait_for(lambda: store().get(entry.id).status is RunStatus.DONE, 120, "the entry to finish")
    at.switch_page(CLASS).run()
    board = html_of(at)
    assert "class-board" in board and "1</td>" in board and "gpt 1×32" in board
    assert "Score bits/byte" in board and "Val bits/byte" in board, "each figure says what it is"
    assert any(c.value.startswith("Score: bits per byte on the challenge's held-out text") and "Val bits/byte"
               in c.value for c in at.caption)
    assert "Seed-to-seed spread not measured yet" in " ".join(c.value for c in at.caption)
    at.button(key="end_challenge").click().run()
    assert not at.exception
    assert at.get("download_button"), "the frozen board can be exported"
    assert "**Ended**" in " ".join(m.value for m in at.markdown)


def set_small_challenge(at: AppTest) -> None:
    """The teacher's challenge of 20 steps × 4 windows × 16 tokens."""
    at.radio(key="budget_how").set_value("steps × batch × block").run()
    at.number_input(key="budget_steps").set_value(20)
    at.number_input(key="budget_batch").set_value(4)
    at.number_input(key="budget_block").set_value(16).run()
    at.button(key="set_challenge").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_an_entry_that_breaks_an_idea_or_trains_less_is_refused_before_it_starts(teacher):
    at = teacher
    set_small_challenge(at)
    small_training_form(at, max_iters=10)
    at.toggle(key="challenge_entry").set_value(True).run()
    assert at.button(key="start").disabled
    (refusal,) = [e.value for e in at.error]
    says(refusal, "cannot enter the challenge", "10 steps", "20 steps with batch_size 4 and block_size 16",
         "set max_iters to 20")
    at.number_input(key="hp_max_iters").set_value(20).run()
    assert not at.button(key="start").disabled and not at.error
    at.multiselect(key="hp_counterfactuals").set_value(["no-mask"]).run()
    assert at.button(key="start").disabled, "Start stays off"
    (refusal,) = [e.value for e in at.error]
    says(refusal, "cannot enter the challenge", "without the causal mask")
    from ui.state import store
    assert store().list_runs() == []


def test_everyones_runs_with_the_teachers_checks_name_their_owners(small_text):
    """After Check the top three, the checks (owned by nobody) sit among the students' runs: the Runs page with
    everyone's runs names them instead of failing on a missing owner."""
    at = app()
    from ui.state import store
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, val_fraction=0.1)
    rules = set_rules(plan.corpus, "char", 0.1, 20 * 8 * 16)
    record = store().create_challenge(rules.to_dict())
    entry = create_run(store(), plan, "alice's entry", owner=at.session_state["user_key"], status=RunStatus.DONE,
                       challenge={"id": record.id, "check_of": None})
    create_run(store(), plan, "check of alice's entry", owner=None, status=RunStatus.DONE,
               challenge={"id": record.id, "check_of": entry.id})
    create_run(store(), plan, "a classmate's run", owner="bob-key-0000000000000000", status=RunStatus.DONE)
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()
    assert not at.exception, at.exception
    owners = dict(zip(at.dataframe[0].value["label"], at.dataframe[0].value["owner"], strict=True))
    assert sorted(owners.values()) == sorted(["you", "teacher's check", owners[next(k for k in owners if "classmate"
                                                                                    in k)]])
    assert [v for k, v in owners.items() if k.startswith("check of")] == ["teacher's check"]
    assert [v for k, v in owners.items() if "classmate" in k][0].startswith("user ")


def test_an_imported_run_says_imported_in_pickers_and_is_not_on_the_class_board(tmp_path):
    required_module("transformers", "pip install -r requirements.txt")
    from babygpt.store.huggingface import import_hf
    from tests.helpers import LIMITS
    from tests.test_huggingface import gpt2_made_by_transformers

    gpt2_made_by_transformers(tmp_path / "gpt2")
    at = app()
    from ui.state import store
    import_hf(store(), tmp_path / "gpt2", LIMITS, owner=at.session_state["user_key"], name="tiny gpt2")
    at.switch_page("views/generate.py").run()
    options = [o for box in at.selectbox for o in box.options]
    assert any(o.endswith("· gpt · imported") for o in options), options
    assert not any("0 steps" in o or "None" in o for o in options)
    at.switch_page(CLASS).run()
    board = html_of(at)
    # it did not train in this lesson: the board's table of this lesson's runs leaves it out
    assert "tiny gpt2" not in board and ">imported</td>" not in board and "None" not in board


def test_a_bpe_challenge_fixes_the_teachers_bpe_and_the_class_reads_bits_per_byte(teacher):
    """The teacher's Data page says bpe, 512 tokens, GPT-4's split: the challenge states and fixes that BPE, an entry
    started while this user's Data page says 1,024 tokens trains with the challenge's 512-token merges, and the Class
    page reads every run in bits per byte with the sentence that says what they are."""
    import math

    from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE, ValidationText
    from babygpt.orchestration.challenge import ChallengeRules, tokenizer_sha256
    from babygpt.text.bpe import train_bpe
    from babygpt.text.tokenizers import tokenizer_from_dict
    from tests.helpers import chart_spec

    at = teacher
    at.session_state["tokenizer_kind"] = "bpe"
    at.session_state["bpe_choice"] = {"vocab_size": 512, "split": "gpt4"}
    at.run()
    assert any("tokenizer bpe, 512 tokens, GPT-4 split" in m.value and m.value.startswith("**Set a challenge**")
               for m in at.markdown), "the teacher's panel states the tokenizer with its size"
    set_small_challenge(at)
    assert any("Text python-docs · tokenizer bpe, 512 tokens, GPT-4 split · last 10% held out" in m.value
               for m in at.markdown)
    from ui.state import classroom, store
    rules = ChallengeRules.from_dict(classroom().challenge().rules)
    assert (rules.bpe_vocab, rules.bpe_split, rules.tokenizer_vocab) == (512, "gpt4", 512)

    at.session_state["bpe_choice"] = {"vocab_size": 1024, "split": "gpt4"}  # the student's own Data page differs
    small_training_form(at, max_iters=20)
    at.toggle(key="challenge_entry").set_value(True).run()
    assert not at.error and not at.button(key="start").disabled, [e.value for e in at.error]
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    entry = wait_for(lambda: [i for i in store().list_runs() if i.challenge_id], 30, "the entry")[0]
    tokenizer = tokenizer_from_dict(store().get(entry.id).config["tokenizer"])
    assert tokenizer_sha256(tokenizer) == rules.tokenizer_sha256, "the entry trains with the challenge's BPE"
    corpus = classroom().corpus(classroom().challenge())
    assert tokenizer.bpe.merges == train_bpe(corpus.text, 512, "gpt4").merges and tokenizer.vocab_size == 512
    wait_for(lambda: store().get(entry.id).status is RunStatus.DONE, 120, "the entry to finish")

    at.switch_page(CLASS).run()
    board = html_of(at)
    assert "Score bits/byte" in board and "Val bits/byte" in board and "bits/char" not in board
    captions = [c.value for c in at.caption]
    assert BITS_PER_BYTE_SENTENCE in captions, "the lesson's table says what bits per byte are"
    assert any(c.startswith("Score: bits per byte on the challenge's held-out text") for c in captions)
    # the table's figure, by hand: the last validation loss × its tokens ÷ (ln 2 × the validation text's bytes)
    info = store().get(entry.id)
    validation = ValidationText.from_config(info.config)
    last_val = [m for m in store().metrics(entry.id) if m.split == "val"][-1].loss
    by_hand = last_val * validation.tokens / (math.log(2) * validation.bytes)
    assert validation.bytes > validation.tokens, "a BPE token holds several bytes"
    assert f'<td class="num">{by_hand:.3f}</td>' in board
    spec = chart_spec(at, "class_curves")
    assert spec["layout"]["title"]["text"] == "Validation bits per byte, every run of this lesson"
    assert spec["layout"]["yaxis"]["title"]["text"] == "val bits/byte"
    assert spec["data"][0]["y"][-1] == pytest.approx(by_hand, abs=1e-9)


def test_a_board_frozen_in_bits_per_character_still_shows_and_says_its_unit(small_text):
    """Older records keep their figures and say what they are: a board frozen in bits per character, and a run
    recorded before runs kept their validation text's size (no bits per byte, rather than a figure in nats)."""
    from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE
    from babygpt.scoring.leaderboard import Board
    from babygpt.store.runs import MetricRow

    at = app()
    from ui.state import store
    older = create_run(store(), tiny_plan(small_text), "an older run", owner=at.session_state["user_key"],
                       status=RunStatus.DONE)
    document = dict(store().get(older.id).config)
    document["data"] = {k: v for k, v in document["data"].items() if k != "validation"}
    store().update_config(older.id, document)
    store().log_metrics(older.id, [MetricRow(0, "train_eval", 3.0), MetricRow(0, "val", 3.1)])
    stored = {"title": "Challenge (final)", "rules": "Text t · char tokens", "ended_at": 1.0,
              "spread": {"bits": None, "groups": 0, "runs": 0, "source": ""},
              "standings": [{"run_id": "r1", "handle": "Ana", "label": "run", "bits_per_char": 1.5, "detail": "gpt",
                             "owner": None, "entries": 1, "rank": 1, "tied_with": []}],
              "waiting": [], "refused": [], "entry_rule": "best"}
    record = store().create_challenge({"corpus_name": "t", "corpus_source": "t", "corpus_sha256": "0" * 64,
                                       "tokenizer": "char", "val_fraction": 0.1, "budget_tokens": 1000,
                                       "held_out_tokens": 10, "held_out_chars": 10})
    assert store().end_challenge(record.id, 1.0, stored)
    assert Board.from_dict(stored).unit == "bits/char"
    at.switch_page(CLASS).run()
    assert not at.exception, at.exception
    board = html_of(at)
    assert "Score bits/char" in board and "1.500" in board and "Ana" in board
    assert any(c.value.startswith("Score: bits per character on the challenge's held-out text: this board was "
                                  "frozen before scores were in bits per byte") for c in at.caption)
    assert f"{BITS_PER_BYTE_SENTENCE} 1 run recorded before runs kept the size of its validation text shows no bits " \
           "per byte (–)." in [c.value for c in at.caption]
    from ui.state import classroom
    row = next(r for r in classroom().rows() if r.run_id == older.id)
    assert row.val_bpb is None and row.curve == [] and not row.bytes_known


def test_an_ended_board_says_when_it_ended_and_stays_downloadable_after_the_next_challenge(teacher, small_text):
    """Ended early by the teacher: the page says the actual end, not the planned one; unranked entries read
    "Ben — finished …" (no brackets in brackets); numbers never wrap; setting the next challenge keeps this board
    downloadable as the previous one."""
    import time

    from babygpt.scoring.leaderboard import Board, board_csv
    from ui.state import store

    at = teacher
    planned, ended = 1_800_003_240.0, 1_800_001_500.0  # ended 29 minutes before its planned end
    stored = {"title": "Challenge (final)", "rules": "Text t · char tokens", "ended_at": ended,
              "spread": {"bits": None, "groups": 0, "runs": 0, "source": ""}, "unit": "bits/byte",
              "standings": [{"run_id": "r1", "handle": "Ana", "label": "run", "score": 1.5, "detail": "gpt",
                             "owner": None, "entries": 1, "rank": 1, "tied_with": []}],
              "waiting": [{"handle": "Ben", "label": "ben's run", "run_id": "",
                           "why": "finished step 300 of 300 after the challenge ended"}],
              "refused": [], "entry_rule": "best"}
    record = store().create_challenge({"corpus_name": "t", "corpus_source": "t", "corpus_sha256": "0" * 64,
                                       "tokenizer": "char", "val_fraction": 0.1, "budget_tokens": 1000,
                                       "held_out_tokens": 10, "held_out_chars": 10, "ends_at": planned})
    assert store().end_challenge(record.id, ended, stored)
    at.switch_page(CLASS).run()
    assert not at.exception, at.exception
    status = next(m.value for m in at.markdown if m.value.startswith("**Ended**"))
    assert status.endswith(f"ended {time.strftime('%H:%M', time.localtime(ended))}")
    assert "ends " not in status
    captions = [c.value for c in at.caption]
    assert "Not ranked: Ben — finished step 300 of 300 after the challenge ended" in captions
    assert not any("other entries not ranked" in c for c in captions), "nothing is said of zero other entries"
    assert "white-space: nowrap" in html_of(at).split("td.num", 1)[1].split("}", 1)[0], "numbers never wrap"
    assert any("Setting a new challenge keeps this board" in c for c in captions), "the teacher is told first"

    set_small_challenge(at)
    assert "**Open**" in " ".join(m.value for m in at.markdown)
    previous = [e for e in at.expander if e.label.startswith("Previous challenge's board")]
    assert [e.label for e in previous] == [f"Previous challenge's board (ended "
                                           f"{time.strftime('%H:%M', time.localtime(ended))})"]
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"Download the previous board (CSV)", "Download the previous board (picture, SVG)"} <= labels
    kept = store().previous_challenge()
    assert kept.id == record.id and "Ben" in board_csv(Board.from_dict(kept.board))


def test_the_sidebar_and_the_class_table_write_steps_one_way():
    """The sidebar's progress line and the Class table's Step cell both write ``step_fraction``: "2,255/3,000"."""
    from babygpt.config import TrainConfig
    from babygpt.server.progress import JobSnapshot
    from ui.widgets import progress_text, step_fraction

    snap = JobSnapshot("r", "a run", None, RunStatus.RUNNING, 2255, 3000, 0.0, None, "cpu", "float32", None, 65,
                       TrainConfig())
    assert step_fraction(2255, 3000) == "2,255/3,000"
    assert progress_text(snap).split(" · ")[0].endswith("step 2,255/3,000")
