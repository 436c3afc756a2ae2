"""A BPE on a shared server: each bad input gets its own sentence, the text learned from is bounded before training
starts (also for a script written without spaces), the server learns at most so many BPEs at once, and pressing
Start trains with the BPE the Data page learned instead of learning it again."""

from __future__ import annotations

import random

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.config import TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.orchestration.plan import plan_training
from babygpt.server.settings import SchedulerSettings
from babygpt.text import bpe as bpe_module
from babygpt.text.bpe import MAX_LEARN_BYTES, BPESettings, learning_text, train_bpe
from babygpt.text.bpe_gate import LearningGate
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import Corpus, corpus_from_bytes
from tests.conftest import ROOT
from tests.wording import says


def chinese(n_chars: int, seed: int = 0) -> str:
    """Text in a script written without spaces: one pre-split "word" as long as the text."""
    rng = random.Random(seed)
    return "".join(chr(0x4E00 + rng.randrange(300)) for _ in range(n_chars))


# --- each bad input, its own sentence --------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "name", "sentence"), [
    (b"", "empty.txt", "empty.txt is empty (0 bytes): choose a file that contains text."),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png",
     "photo.png looks binary (a NUL byte at offset 8); it is probably not a text file. Upload plain UTF-8 text (.txt)."),
])
def test_an_empty_or_binary_file_is_refused_before_a_bpe_is_learned(raw, name, sentence):
    with pytest.raises(BabyGPTError) as refused:
        corpus_from_bytes(raw, name)
    assert str(refused.value) == sentence


def test_a_tiny_text_says_where_its_vocabulary_stopped_and_why_it_cannot_train():
    bpe = train_bpe("hello world", 1024, "gpt4")
    assert bpe.vocab_size == 256 and bpe.notes() == [
        "The text filled 256 of the 1,024 tokens asked for: after that no pair of tokens occurs twice, so training "
        "stopped."]
    with pytest.raises(BabyGPTError, match=r"^The text is too short: its training part has 10 tokens but one block "
                                           r"needs 65 \(block_size 64 \+ 1\)"):
        plan_training(Corpus.from_text("tiny", "hello world"), "bpe", "gpt", TrainConfig(max_iters=5, eval_interval=1),
                      BPESettings(1024, "gpt4"))


def test_a_script_without_spaces_learns_from_a_bounded_head_and_says_why():
    text = chinese(100_000)  # 300,000 bytes in one pre-split chunk: every merge would read all of it again
    assert len(learning_text(text, "gpt4").encode()) <= MAX_LEARN_BYTES[False]
    bpe = train_bpe(text, 512, "gpt4")
    assert MAX_LEARN_BYTES[False] - 3 <= bpe.learned_bytes <= MAX_LEARN_BYTES[False] and bpe.text_bytes == 300_000
    (note,) = bpe.notes()
    says(note, "long stretches without spaces", "cannot cut into words", f"first {bpe.learned_bytes:,} of 300,000 bytes",
         "the whole text is encoded")
    tokenizer = BPETokenizer(bpe)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_an_ordinary_text_with_a_few_long_stretches_is_learned_whole(small_text):
    text = small_text + "x" * 1_000 + "\n" + small_text  # one stretch of 1,000 bytes: far under the bound
    assert learning_text(text, "gpt4") == text and learning_text(small_text, "gpt2") == small_text


def test_long_stretches_count_together_after_ordinary_text(monkeypatch):
    monkeypatch.setitem(bpe_module.MAX_LEARN_BYTES, False, 300)
    text = "the cat sat. " * 10 + "a" * 200 + " and " + "b" * 200 + " end"
    head = learning_text(text, "gpt4")
    # the long chunks are " aaa…" (201 bytes, its space included) and " bbb…", cut at the 300 bytes left: 99
    assert head == "the cat sat. " * 10 + "a" * 200 + " and " + "b" * 98


# --- how many BPEs a server learns at once ---------------------------------------------------------------------------

def test_one_bpe_more_than_the_servers_limit_is_refused_in_a_sentence_and_a_retry_works():
    gate = LearningGate(1)
    with gate.slot():
        with pytest.raises(BabyGPTError) as refused:
            with gate.slot():
                pass
    assert str(refused.value) == ("One tokenizer is being learned on this server right now, as many as it learns at "
                                  "once; try again in a few seconds.")
    with gate.slot():  # released: the next one learns
        pass
    two = LearningGate(2)
    with two.slot(), two.slot(), pytest.raises(BabyGPTError, match="^2 tokenizers are being learned"):
        with two.slot():
            pass


def test_the_limit_is_a_server_setting(monkeypatch):
    assert SchedulerSettings().max_bpe_learning == 2
    monkeypatch.setenv("BABYGPT_MAX_BPE_LEARNING", "1")
    assert SchedulerSettings.from_env().max_bpe_learning == 1
    monkeypatch.setenv("BABYGPT_MAX_BPE_LEARNING", "0")
    with pytest.raises(BabyGPTError, match=r"BABYGPT_MAX_BPE_LEARNING must be at least 1 \(got 0\)"):
        SchedulerSettings.from_env()
    with pytest.raises(BabyGPTError, match="At least one BPE"):
        LearningGate(0)


@pytest.mark.usefixtures("fresh_resources")
def test_the_app_learns_through_the_servers_gate(monkeypatch, small_text):
    monkeypatch.setenv("BABYGPT_MAX_BPE_LEARNING", "1")
    from ui import corpora

    corpus = Corpus.from_text("tiny", small_text)
    gate = corpora.learning_gate()
    assert gate.limit == 1
    with gate.slot():  # a classmate's BPE is being learned
        with pytest.raises(BabyGPTError, match="^One tokenizer is being learned on this server right now"):
            corpora.learned_bpe(corpus.sha256, corpus.text, BPESettings(300, "gpt2"))
    assert corpora.learned_bpe(corpus.sha256, corpus.text, BPESettings(300, "gpt2")).bpe.vocab_size > 256


# --- Start trains with the BPE the page learned -------------------------------------------------------------------

@pytest.mark.usefixtures("fresh_resources")
def test_start_trains_with_the_cached_bpe_and_does_not_learn_it_again(monkeypatch):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.radio(key="tokenizer_radio").set_value("bpe").run()
    at.number_input(key="bpe_vocab").set_value(300).run()
    at.switch_page("views/train.py").run()
    for key, value in (("hp_n_layer", 1),):
        at.slider(key=key).set_value(value).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.select_slider(key="hp_block_size").set_value(16).run()
    at.number_input(key="hp_max_iters").set_value(10).run()
    at.number_input(key="hp_eval_interval").set_value(5).run()
    learned = []

    def counting(*args, **kwargs):
        learned.append(args[1:3])
        return train_bpe(*args, **kwargs)

    for module in ("babygpt.text.bpe_tokenizer", "babygpt.lessons.bpe_lesson"):
        monkeypatch.setattr(f"{module}.train_bpe", counting)
    at.button(key="start").click().run()
    assert not at.error, [e.value for e in at.error]
    assert learned == [], "Start used the BPE the Data page learned"
    from ui.state import scheduler, store

    run = store().list_runs()[0]
    assert run.config["tokenizer"]["asked"] == 300 and run.config["model"]["vocab_size"] <= 300
    scheduler().stop_all(wait=30)
