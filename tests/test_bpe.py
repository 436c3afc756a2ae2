"""The byte-level BPE learned from a text: two trainers held to one result, exact round trips, a stored BPE read
back or refused in words, bits per byte against a hand computation, and the CLI training with it."""

from __future__ import annotations

import inspect
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from babygpt.cli import main
from babygpt.errors import BabyGPTError
from babygpt.text import bpe as bpe_module
from babygpt.text.bpe import (
    BPE,
    MAX_BPE_VOCAB,
    MAX_STORED_MERGES,
    SPLIT_PATTERNS,
    BPESettings,
    encode_readable,
    pre_split,
    train_bpe,
)
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.tokenizers import (
    CharTokenizer,
    GPT2Tokenizer,
    build_tokenizer,
    text_bytes,
    tokenizer_from_dict,
    unknown_pieces,
)
from babygpt.units import bits_per_byte, bits_per_byte_of
from tests.conftest import SHAKESPEARE

MIXED = ("Le café où l'on s'assied — naïve façade. 東京は日本の首都です。Москва — столица России. "
         "العربية تكتب من اليمين. 🎉🎉 emoji 🎉 and numbers 1234567 12 3.\n\n\tTabs, and   spaces.  \n") * 6


@pytest.fixture(scope="module")
def shakespeare_text() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def shakespeare_bpe(shakespeare_text) -> BPETokenizer:
    return BPETokenizer(train_bpe(shakespeare_text[:200_000], 1024, "gpt4"))


# --- one contract, two trainers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("which, vocab_size, split", [
    ("shakespeare", 700, "gpt4"), ("shakespeare", 700, "gpt2"), ("shakespeare", 500, None),
    ("mixed", 600, "gpt4"), ("mixed", 600, None), ("small", 400, "gpt2"),
])
def test_the_readable_and_the_fast_trainer_learn_the_same_merges(which, vocab_size, split, shakespeare_text,
                                                                  small_text):
    text = {"shakespeare": shakespeare_text[:15_000], "mixed": MIXED, "small": small_text}[which]
    fast = train_bpe(text, vocab_size, split, implementation="fast")
    readable = train_bpe(text, vocab_size, split, implementation="readable")
    assert readable == fast
    assert len(fast.merges) >= 30 and fast.vocab_size <= vocab_size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet="ab c\né", max_size=120), vocab_size=st.integers(256, 300),
       split=st.sampled_from(["gpt2", "gpt4", None]))
def test_the_trainers_agree_on_texts_full_of_ties(text, vocab_size, split):
    """Few letters, short texts: most merges are chosen among pairs of equal count, by the tie rule."""
    if not text:
        return
    assert train_bpe(text, vocab_size, split, "readable") == train_bpe(text, vocab_size, split, "fast")


def test_a_tie_goes_to_the_pair_with_the_smaller_ids():
    """(a, b), (b, .), (., x) and (x, y) each occur twice; (., x) has the smallest first id (46), so it is learned
    first, though (a, b) comes first in the text."""
    for implementation in ("readable", "fast"):
        bpe = train_bpe("ab.xy.ab.xy", 257, None, implementation)
        assert bpe.merges == (((ord("."), ord("x")), 256),)
        assert bpe.vocab[256] == b".x"


def test_merges_never_cross_the_pre_split_and_do_without_it():
    text = "the cat. the cat. the cat."
    split = train_bpe(text, 300, "gpt2")
    assert all(b" " not in token[1:] for token in split.vocab), "a space only ever starts a GPT-2 word"
    whole = train_bpe(text, 300, None)
    assert b" the cat." in whole.vocab, "without a split, merges cross words"


def test_the_patterns_are_tiktokens_own():
    from tiktoken_ext import openai_public

    assert SPLIT_PATTERNS["gpt2"] == openai_public.r50k_pat_str
    assert SPLIT_PATTERNS["gpt4"] in inspect.getsource(openai_public.cl100k_base).replace('"""', "")


@settings(max_examples=150, deadline=None)
@given(text=st.text(), split=st.sampled_from(["gpt2", "gpt4", None]))
def test_the_pre_split_covers_the_whole_text(text, split):
    assert "".join(pre_split(text, split)) == text


# --- encoding -----------------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(exclude_categories=()), max_size=300))
def test_any_unicode_text_round_trips_and_both_encoders_agree(shakespeare_bpe, text):
    """Byte-level: no character is unknown, lone surrogates included; the fast encoder is the lesson's."""
    ids = shakespeare_bpe.encode(text)
    assert shakespeare_bpe.decode(ids) == text
    assert ids == encode_readable(shakespeare_bpe.bpe, text)
    assert unknown_pieces(shakespeare_bpe, text) == []


def test_a_whole_text_encodes_as_the_lesson_says_and_compresses(shakespeare_bpe, shakespeare_text):
    text = shakespeare_text[200_000:260_000]  # text the BPE did not learn from
    ids = shakespeare_bpe.encode(text)
    assert ids == encode_readable(shakespeare_bpe.bpe, text)
    assert shakespeare_bpe.decode(ids) == text
    assert len(text.encode()) / len(ids) > 2.4, "1,024 tokens learned from Shakespeare hold about 2.5 bytes each"
    unsplit = BPETokenizer(train_bpe(text[:20_000], 400, None))
    assert unsplit.decode(unsplit.encode(text)) == text and unsplit.encode(text) == encode_readable(unsplit.bpe, text)


def test_a_cut_through_a_character_decodes_to_a_replacement_not_an_error(shakespeare_bpe):
    ids = shakespeare_bpe.encode("é")
    assert ids == [0xC3, 0xA9]
    assert shakespeare_bpe.decode(ids[:1]) == "\ufffd"
    assert shakespeare_bpe.token_text(ids[0]) == "\\xc3", "a label shows the byte it holds"
    assert shakespeare_bpe.token_text(shakespeare_bpe.encode(" the")[0]) == " the"


# --- stored with a run --------------------------------------------------------------------------------------------

def test_a_bpe_is_stored_as_json_and_read_back_the_same(shakespeare_bpe, shakespeare_text):
    data = json.loads(json.dumps(shakespeare_bpe.to_dict()))
    assert data["kind"] == "bpe" and data["split"] == "gpt4" and data["asked"] == 1024
    again = tokenizer_from_dict(data)
    assert isinstance(again, BPETokenizer) and again.bpe == shakespeare_bpe.bpe
    line = shakespeare_text[300_000:301_000]
    assert again.encode(line) == shakespeare_bpe.encode(line)


def test_the_run_folder_holds_the_bpe(shakespeare_text, tmp_path):
    """The run's config.json alone gives back the tokenizer (the CLI test samples from a checkpoint with it)."""
    from babygpt.orchestration.plan import plan_training
    from babygpt.orchestration.runs import create_run
    from babygpt.store.runs import RunStore, parse_config_document, read_config
    from babygpt.text.corpus import Corpus
    from tests.helpers import tiny_config

    plan = plan_training(Corpus.from_text("bard", shakespeare_text[:30_000]), "bpe", "gpt", tiny_config(),
                         BPESettings(300, "gpt2"), n_layer=1, n_head=2, n_embd=16, block_size=16)
    store = RunStore(tmp_path / "runs")
    info = create_run(store, plan, "bpe run")
    model_config, _, tokenizer = parse_config_document(read_config(store.run_dir(info.id)))
    assert tokenizer.to_dict() == plan.tokenizer.to_dict() and model_config.vocab_size == 300
    val = plan.split.val.tolist()
    assert tokenizer.decode(val) == plan.tokenizer.decode(val) and tokenizer.decode(val) in shakespeare_text


def _stored(merges, **extra) -> dict:
    return {"kind": "bpe", "split": "gpt2", "merges": merges, **extra}


@pytest.mark.parametrize("data, message", [
    (_stored([[97, 98, 256]], split="gpt5"), "pre-split pattern is 'gpt5'"),
    (_stored("97 98"), "merges are not a list"),
    (_stored([[97, 98]]), "three whole numbers"),
    (_stored([[97, -1, 256]]), "three whole numbers"),
    (_stored([[97, True, 256]]), "three whole numbers"),
    (_stored([[97, 300, 256]]), "merge 1 joins id 300, which no earlier merge made"),
    (_stored([[97, 98, 257]]), "merge 1 makes id 257; the next new id is 256"),
    (_stored([[97, 98, 256], [99, 100, 256]]), "gives the id 256 to 'cd', but that id is already 'ab'"),
    (_stored([[97, 98, 97]]), "gives the id 97 to 'ab', but that id is already 'a'"),
    (_stored([[97, 98, 256], [256, 99, 257], [97, 98, 258]]), "gives 'ab' the id 258, but it already has the id 256"),
    (_stored([[97, 97, 256]] + [[256 + k, 256 + k, 257 + k] for k in range(30)]), "bytes together"),
    (_stored([[97, 98, 256]] * (MAX_STORED_MERGES + 1)), "more than the"),
    (_stored([[97, 98, 256]], asked="lots"), "sizes"),
])
def test_a_damaged_stored_bpe_is_refused_in_a_sentence(data, message):
    with pytest.raises(BabyGPTError, match="damaged") as refused:
        tokenizer_from_dict(data)
    assert message in str(refused.value)


def test_a_bpe_may_give_a_second_merge_its_tokens_existing_id():
    """Two merges that spell one token share its id (one id, one token): the only repeat a stored BPE may hold."""
    bpe = BPE.from_dict({"split": "none", "merges": [[97, 98, 256], [98, 99, 257], [256, 99, 258], [97, 257, 258]]})
    assert bpe.vocab_size == 259 and bpe.vocab[258] == b"abc"


# --- bad input ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vocab_size", [255, MAX_BPE_VOCAB + 1, "1024", True, 1024.0])
def test_a_vocabulary_size_out_of_bounds_is_refused(vocab_size):
    with pytest.raises(BabyGPTError, match=f"from 256 tokens .* to {MAX_BPE_VOCAB:,}"):
        train_bpe("some text", vocab_size)


def test_an_empty_text_and_an_unknown_split_are_refused():
    with pytest.raises(BabyGPTError, match="The text is empty"):
        train_bpe("", 300)
    with pytest.raises(BabyGPTError, match="Unknown pre-split pattern 'gpt3'; choose one of gpt2, gpt4, none"):
        BPESettings(300, "gpt3").validate()
    with pytest.raises(BabyGPTError, match="not for 'char'"):
        build_tokenizer("char", "abc", BPESettings())


def test_a_text_too_small_for_the_vocabulary_stops_and_says_at_what_size():
    for implementation in ("readable", "fast"):
        bpe = train_bpe("abcabc xyz", 1000, None, implementation)
        assert [m for m, _ in bpe.merges] == [(97, 98), (256, 99)]  # "ab", "abc"; then no pair occurs twice
        assert bpe.notes() == ["The text filled 258 of the 1,000 tokens asked for: after that no pair of tokens "
                               "occurs twice, so training stopped."]
    assert train_bpe("x", 300).vocab_size == 256


def test_a_long_text_is_learned_from_its_first_bytes_and_encoded_whole(monkeypatch):
    monkeypatch.setitem(bpe_module.MAX_LEARN_BYTES, True, 1001)
    text = "é" * 600 + "the end"  # 1,207 bytes; 1,001 falls inside an "é"
    bpe = train_bpe(text, 260, "gpt2")
    assert (bpe.learned_bytes, bpe.text_bytes) == (1000, 1207)
    assert any("first 1,000 of its 1,207 bytes" in note for note in bpe.notes())
    tokenizer = BPETokenizer(bpe)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_the_readable_trainer_is_offered_only_where_it_is_quick(small_text, shakespeare_text):
    from babygpt.text.bpe import READABLE_WORK_LIMIT, readable_fits, readable_work

    assert readable_fits(small_text, 512) and readable_fits(shakespeare_text[:5_000], 512)
    assert not readable_fits(shakespeare_text, 512) and not readable_fits(shakespeare_text[:20_000], 4096)
    distinct = {b"the", b" cat", b" sat", b"\n"}  # "the cat sat\nthe cat sat\n" pre-split: 4 distinct words, 12 bytes
    assert readable_work("the cat sat\nthe cat sat\n", 300, "gpt2") == 12 * 44 == sum(map(len, distinct)) * 44
    assert readable_work("the cat", 256) == 0 < READABLE_WORK_LIMIT


# --- bits per byte ------------------------------------------------------------------------------------------------

def test_bits_per_byte_by_hand():
    # 10 tokens at 2 nats each are 20 nats; 20 / (ln 2 x 25 bytes) = 1.15415603...
    assert bits_per_byte_of(2.0, 10, 25) == pytest.approx(1.1541560327111706, abs=1e-12)
    assert bits_per_byte(20.0, 25) == pytest.approx(1.1541560327111706, abs=1e-12)
    # guessing uniformly among 256 byte values costs ln 256 nats a byte: exactly 8 bits
    assert bits_per_byte_of(math.log(256), 1000, 1000) == pytest.approx(8.0)
    with pytest.raises(BabyGPTError, match="at least one byte"):
        bits_per_byte(1.0, 0)


def test_the_bytes_of_token_ids_for_every_tokenizer(shakespeare_bpe):
    text = "café au lait, naïve"  # 19 characters, 21 bytes
    char = CharTokenizer.from_text(text)
    assert text_bytes(char, char.encode(text)) == 21
    gpt2 = GPT2Tokenizer.from_text(text)
    assert text_bytes(gpt2, gpt2.encode(text)) == 21
    assert text_bytes(shakespeare_bpe, shakespeare_bpe.encode(text)) == 21
    assert text_bytes(shakespeare_bpe, shakespeare_bpe.encode("é")[:1]) == 1, "half a character is one byte"


# --- the CLI ------------------------------------------------------------------------------------------------------

TINY_RUN = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
            "--max-iters", "4", "--eval-interval", "4", "--eval-iters", "2", "--device", "cpu", "--dtype", "float32"]


def test_the_cli_trains_with_a_bpe_learned_from_the_text_and_reports_bits_per_byte(tmp_path, capsys):
    data = tmp_path / "small.txt"
    data.write_text("the cat sat on the mat. a dog ran to the log!\n" * 80 + "ünïcödé ☃ 東京\n", encoding="utf-8")
    assert main(["train", "--data", str(data), "--tokenizer", "bpe", "--vocab-size", "300", "--bpe-split", "gpt2",
                 *TINY_RUN]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "done" and "vocab 279" in err
    assert "note: The text filled 279 of the 300 tokens asked for: after that no pair of tokens occurs twice" in err
    shown = json.loads(_cli(capsys, "runs", "show", summary["run"]))
    assert shown["config"]["tokenizer"]["kind"] == "bpe" and shown["config"]["tokenizer"]["split"] == "gpt2"
    tokenizer = tokenizer_from_dict(shown["config"]["tokenizer"])
    from babygpt.store.runs import RunStore
    from babygpt.text.corpus import split_ids

    ids = split_ids(_encoded(tokenizer, data), 0.1, 16).val
    expected = summary["val_loss"] * len(ids) / (math.log(2) * text_bytes(tokenizer, ids))
    assert summary["val_bpb"] == pytest.approx(expected)
    assert RunStore(None).get(summary["run"]).config["model"]["vocab_size"] == 279
    assert _cli(capsys, "sample", "--run", summary["run"], "--prompt", "東京 ☃", "--max-new-tokens", "5",
                "--seed", "1").startswith("東京 ☃")
    assert main(["runs", "export", summary["run"], str(tmp_path / "hf"), "--format", "hf"]) == 0
    assert (tmp_path / "hf" / "tokenizer.json").is_file() and (tmp_path / "hf" / "merges.txt").is_file()


def _cli(capsys, *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _encoded(tokenizer, path):
    import torch

    return torch.tensor(tokenizer.encode(path.read_text(encoding="utf-8")), dtype=torch.long)


def test_the_cli_reports_bits_per_byte_for_the_char_tokenizer_too(tmp_path, capsys, small_text):
    data = tmp_path / "small.txt"
    data.write_text(small_text, encoding="utf-8")
    assert main(["train", "--data", str(data), *TINY_RUN]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # one ASCII character is one byte: bits per byte are the loss in bits
    assert summary["val_bpb"] == pytest.approx(summary["val_loss"] / math.log(2))


@pytest.mark.parametrize("args, message", [
    (["--vocab-size", "300"], "--vocab-size and --bpe-split set up a BPE learned from your text: add --tokenizer bpe"),
    (["--tokenizer", "bpe", "--vocab-size", "100"], "A BPE vocabulary holds from 256 tokens"),
])
def test_the_cli_refuses_bpe_settings_in_a_sentence(args, message, capsys, small_text, tmp_path):
    data = tmp_path / "small.txt"
    data.write_text(small_text, encoding="utf-8")
    assert main(["train", "--data", str(data), *args, *TINY_RUN]) == 2
    assert message in capsys.readouterr().err
