"""Watch a BPE learn: the text re-cut after k merges is the trainer's own state, the compression figures match a
hand count, the merges and tokens are shown readably, GPT-2's bad cuts are found, and the server's bound on the
vocabulary and a lesson link's BPE settings are checked in words."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from babygpt.errors import BabyGPTError
from babygpt.figures.bpe_figures import compression_figure, cut_html, token_spans
from babygpt.lessons import bpe_lesson
from babygpt.lessons.bpe_lesson import (
    compression,
    learn_bpe,
    longest_tokens,
    measured_merges,
    merge_rows,
    readable_trainer_source,
    sample_cuts,
    script_samples,
    shown,
    vocab_after,
    worst_lines_for_gpt2,
)
from babygpt.lessons.links import make_link, parse_link
from babygpt.server.settings import DEFAULT_MAX_BPE_VOCAB, SchedulerSettings
from babygpt.text.bpe import (
    BPESettings,
    encode_first_k,
    encode_readable,
    learn_merges_readable,
    merge,
    pre_split,
    train_bpe,
    utf8,
    word_counts,
)
from babygpt.text.bpe_fast import FastEncoder
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.tokenizers import gpt2_encoding
from tests.conftest import SHAKESPEARE
from tests.wording import says

MIXED = ("the cat sat on the mat. the dog sat on the log!\n東京は日本の首都です。Москва — столица России.\n"
         "aaa aaaa aaaaa — ties: ab.xy.ab.xy\n") * 4


def trainer_state(bpe, text: str, k: int) -> list[int]:
    """What the readable trainer holds after its first ``k`` merges: each chunk's bytes with merge 1, then merge 2,
    ..., then merge k applied to every occurrence, exactly the loop of ``learn_merges_readable``."""
    out = []
    for chunk in pre_split(text, bpe.split):
        ids = tuple(utf8(chunk))
        for pair, new_id in bpe.merges[:k]:
            ids = merge(ids, pair, new_id)
        out.extend(ids)
    return out


# --- the text after k merges ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["gpt4", "gpt2", None])
def test_the_text_after_k_merges_is_the_trainers_state_after_k_merges(split):
    bpe = train_bpe(MIXED, 330, split, "readable")
    assert len(bpe.merges) > 30
    for k in range(len(bpe.merges) + 1):
        assert encode_first_k(bpe, MIXED, k) == trainer_state(bpe, MIXED, k), f"after {k} merges"
    # and training to fewer tokens stops at exactly those first merges: the slider replays one training run
    words = word_counts(MIXED, split)
    for k in (1, 7, len(bpe.merges) // 2):
        assert learn_merges_readable(words, vocab_after(bpe, k)) == list(bpe.merges[:k])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet="ab c\né東", min_size=1, max_size=80), split=st.sampled_from(["gpt2", "gpt4", None]),
       data=st.data())
def test_the_text_after_k_merges_is_the_trainers_state_on_texts_full_of_ties(text, split, data):
    bpe = train_bpe(text, 290, split, "readable")
    k = data.draw(st.integers(0, len(bpe.merges)))
    assert encode_first_k(bpe, text, k) == trainer_state(bpe, text, k)


def test_zero_merges_are_the_bytes_all_merges_the_encoder_and_other_counts_a_sentence():
    bpe = train_bpe(MIXED, 300, "gpt4")
    assert encode_first_k(bpe, MIXED, 0) == list(utf8(MIXED))
    assert encode_first_k(bpe, MIXED, len(bpe.merges)) == encode_readable(bpe, MIXED)
    for k in (-1, len(bpe.merges) + 1, 2.5, True):
        with pytest.raises(BabyGPTError, match=f"This BPE has {len(bpe.merges)} merges: choose from 0 to"):
            encode_first_k(bpe, MIXED, k)


# --- compression ---------------------------------------------------------------------------------------------------

def test_compression_against_a_hand_count():
    """"ab ab ab" cut by GPT-2's pattern: "ab", " ab", " ab". Pairs: (a, b) 3 times, (␣, a) twice: merge 1 makes
    "ab", then (␣, ab) occurs twice: merge 2 makes "␣ab"; nothing more occurs twice. Tokens: 8 bytes, then
    1 + 2 + 2 = 5, then 3. char: 8 tokens of 3 kinds. GPT-2: "ab", " ab", " ab", 3 tokens."""
    bpe = train_bpe("ab ab ab", 400, "gpt2")
    assert [row.sentence() for row in merge_rows(bpe)] == ['"a" + "b" → "ab"', '"␣" + "ab" → "␣ab"']
    c = compression(bpe, "ab ab ab")
    assert c.bpe == ((0, 256, 8), (1, 257, 5), (2, 258, 3))
    assert (c.measured_bytes, c.text_bytes, c.char_tokens, c.char_vocab, c.gpt2_tokens, c.gpt2_used) == (8, 8, 8, 3, 3, 2)
    assert c.bytes_per_token(3) == pytest.approx(8 / 3) and c.note() is None
    fig = compression_figure(c)
    bpe_trace, char, gpt2 = fig.data
    assert list(bpe_trace.x) == [256, 257, 258] and list(bpe_trace.y) == pytest.approx([1, 8 / 5, 8 / 3])
    assert (list(char.x), list(char.y)) == ([3], [1.0])
    assert list(gpt2.x) == [50_257] and list(gpt2.y) == pytest.approx([8 / 3])
    assert fig.layout.xaxis.type == "log"


def test_the_fast_count_is_the_lessons_encoder_on_a_real_text():
    text = SHAKESPEARE.read_text(encoding="utf-8")[:30_000]
    bpe = train_bpe(text, 600, "gpt4")
    for k in (0, 5, 100, len(bpe.merges)):
        assert FastEncoder(bpe.vocab, bpe.merges[:k]).count(word_counts(text, "gpt4")) == len(encode_first_k(bpe, text, k))


def test_a_long_text_is_measured_on_its_first_megabyte_and_says_so(monkeypatch):
    monkeypatch.setattr(bpe_lesson, "COMPRESSION_BYTES", 10)
    bpe = train_bpe("ab ab ab ab ab ab", 300, "gpt2")
    c = compression(bpe, "ab ab ab ab ab ab")
    assert (c.measured_bytes, c.text_bytes) == (10, 17)
    assert c.note() == "Measured on the text's first 10 of 17 bytes, so the page answers in seconds."


def test_the_measured_merge_counts_run_from_none_to_all():
    assert measured_merges(0) == [0]
    points = measured_merges(3840, 16)
    assert points[0] == 0 and points[-1] == 3840 and points == sorted(set(points)) and len(points) == 16


# --- what the page shows -------------------------------------------------------------------------------------------

def test_tokens_are_shown_with_visible_spaces_line_breaks_and_bytes():
    assert shown(b" the") == "␣the"
    assert shown(b".\n\n") == ".↵↵"
    assert shown(b"\t\r\x07") == "\\t\\r\\x07"
    assert shown("東".encode()[:2]) == "\\xe6\\x9d"  # part of a character: its bytes
    assert shown("東".encode()) == "東"
    assert shown("\u200b".encode()) == "\\u200b"  # an invisible character is named


def test_a_token_holding_part_of_a_character_shows_that_character_and_says_so():
    text = "道 <b>x</b>\n"
    encoding = gpt2_encoding()
    ids = encoding.encode_ordinary(text)
    tokens = [encoding.decode_single_token_bytes(i) for i in ids]
    spans = token_spans(text, tokens)
    assert spans[:2] == [("道", True), ("道", True)], "GPT-2 spends two tokens on 道, and each shows it"
    assert all(not partial for _, partial in spans[2:]) and "".join(c for c, _ in spans[2:]) == " <b>x</b>\n"
    html = cut_html(text, list(zip(ids, tokens, strict=True)))
    assert "<b>" not in html and "</b>" not in html and "&lt;" in html and html.count("border:1px dashed") == 2
    assert 'title="id 34402: 2 byte(s) of &#x27;道&#x27;"' in html and "↵<br>" in html
    bpe = train_bpe("東東東東 東東", 300, None)  # merges that join whole and partial characters alike
    for k in range(len(bpe.merges) + 1):
        ids = encode_first_k(bpe, "東東東東 東東", k)
        assert "".join(c for c, partial in token_spans("東東東東 東東", [bpe.vocab[i] for i in ids]) if not partial) \
            in "東東東東 東東"
    with pytest.raises(BabyGPTError, match="These tokens do not spell this text"):
        token_spans("ab", [b"a"])


def test_the_longest_tokens_come_first_and_only_learned_ones():
    bpe = train_bpe(MIXED, 330, "gpt4")
    longest = longest_tokens(bpe, 5)
    lengths = [len(token) for _, token in longest]
    assert lengths == sorted(lengths, reverse=True) and all(i >= 256 for i, _ in longest)
    assert lengths[0] == max(len(t) for t in bpe.vocab)


def test_the_lines_gpt2_cuts_worst_are_found_with_the_bpes_count_beside():
    text = ("the cat sat on the mat and the dog sat on the log\n" * 20 + "Москва — столица России, большой город\n"
            + "short\n" + "東京は日本の首都です。東京は日本の首都です。\n")
    bpe = train_bpe(text, 400, "gpt4")
    cuts = worst_lines_for_gpt2(text, bpe, n=5)
    assert sorted(c.label for c in cuts) == ["line 1", "line 21", "line 23"]  # "short" is too short; each line once
    assert cuts[-1].label == "line 1", "English is what GPT-2 cuts best"
    per_token = [c.gpt2_bytes_per_token for c in cuts]
    assert per_token == sorted(per_token) and per_token[0] < 2 < per_token[-1]
    for cut in cuts:
        assert list(cut.gpt2) == [gpt2_encoding().decode_single_token_bytes(i)
                                  for i in gpt2_encoding().encode_ordinary(cut.text)]
        assert cut.bpe_tokens == len(BPETokenizer(bpe).encode(cut.text))
        assert b"".join(cut.gpt2) == utf8(cut.text)


def test_the_shipped_samples_show_gpt2_cutting_other_scripts_small():
    samples = script_samples()
    assert {s.script for s in samples} >= {"Latin", "Cyrillic", "Greek", "Arabic", "Han", "Devanagari"}
    bpe = train_bpe(SHAKESPEARE.read_text(encoding="utf-8")[:20_000], 400, "gpt4")
    cuts = {c.label.split(" (")[0]: c for c in sample_cuts(bpe)}
    english, chinese = cuts["English"], cuts["Classical Chinese"]
    assert english.gpt2_bytes_per_token > 3 and chinese.gpt2_bytes_per_token < 2
    assert len(chinese.gpt2) > len(chinese.text), "GPT-2 spends more than a token on each Chinese character"
    assert chinese.bpe_tokens == chinese.n_bytes, "a BPE learned from English has only bytes for Chinese"


def test_damaged_samples_are_refused_in_a_sentence(monkeypatch):
    monkeypatch.setattr(bpe_lesson, "SAMPLES_SHA256", "0" * 64)
    with pytest.raises(BabyGPTError, match="samples of other scripts are damaged; restore data/samples/scripts.json"):
        script_samples()


def test_the_samples_file_names_a_source_for_every_line():
    from babygpt.shipped import data_file

    for entry in json.loads(data_file("samples", "scripts.json").read_text(encoding="utf-8")):
        assert set(entry) == {"language", "script", "source", "text"} and all(entry.values())


# --- learning for the page -----------------------------------------------------------------------------------------

def test_the_page_learns_with_the_readable_loop_where_it_is_quick_and_says_which():
    small = learn_bpe(MIXED, BPESettings(300, "gpt4"))
    assert small.implementation == "readable" and small.bpe == train_bpe(MIXED, 300, "gpt4", "fast")
    assert small.trained_by().startswith("The readable trainer below learned these")
    text = SHAKESPEARE.read_text(encoding="utf-8")[:200_000]
    large = learn_bpe(text, BPESettings(1024, "gpt4"))
    assert large.implementation == "fast" and "learns exactly the merges the readable trainer" in large.trained_by()
    with pytest.raises(BabyGPTError, match="A BPE vocabulary holds from 256 tokens .* to 512; got 1024"):
        learn_bpe(MIXED, BPESettings(1024, "gpt4"), limit=512)


def test_the_page_shows_the_code_that_runs():
    source = readable_trainer_source()
    assert source.startswith("def learn_merges_readable(") and len(source.splitlines()) <= 40
    assert "pairs[pair] += count" in source


# --- the server's bound and a lesson link --------------------------------------------------------------------------

def test_the_server_bounds_the_bpe_vocabulary(monkeypatch):
    assert SchedulerSettings.from_env().max_bpe_vocab == DEFAULT_MAX_BPE_VOCAB == 8192
    monkeypatch.setenv("BABYGPT_MAX_BPE_VOCAB", "512")
    assert SchedulerSettings.from_env().max_bpe_vocab == 512
    for raw, message in (("100", "must be from 256 \\(the bytes alone\\) to 32,768 \\(got 100\\)"),
                         ("65536", "got 65,536"), ("many", "BABYGPT_MAX_BPE_VOCAB must be a whole number")):
        monkeypatch.setenv("BABYGPT_MAX_BPE_VOCAB", raw)
        with pytest.raises(BabyGPTError, match=message):
            SchedulerSettings.from_env()


def test_a_link_carries_a_bpe_and_names_bad_settings():
    link = parse_link({"tokenizer": "bpe", "bpe_vocab": "512", "bpe_split": "none"})
    assert link.values == {"tokenizer": "bpe", "bpe_vocab": 512, "bpe_split": "none"} and not link.problems
    url = make_link("http://host/data", {"tokenizer": "bpe", "bpe_vocab": 512, "bpe_split": "gpt2"})
    assert url == "http://host/data?tokenizer=bpe&bpe_vocab=512&bpe_split=gpt2"
    bad = parse_link({"bpe_vocab": "100", "bpe_split": "gpt5", "n_layer": "inf"})
    assert bad.values == {}
    vocab, split, layers = bad.problems
    says(vocab, "bpe_vocab='100'", "256 to 32,768", "the default is used")
    says(split, "bpe_split='gpt5'", "gpt2, gpt4, none", "the default is used")
    says(layers, "n_layer='inf'", "not a whole number", "the default is used")

