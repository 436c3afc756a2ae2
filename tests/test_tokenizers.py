import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from babygpt.errors import BabyGPTError
from babygpt.text.tokenizers import CharTokenizer, GPT2Tokenizer, build_tokenizer, tokenizer_from_dict, whole_words_prefix


def test_char_round_trip_and_vocab():
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.vocab_size == 9
    assert tok.chars == sorted(set("hello world\n"))
    ids = tok.encode("hold")
    assert tok.decode(ids) == "hold"
    assert ids == [tok.stoi[c] for c in "hold"]


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_char_round_trip_arbitrary_unicode(text):
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_char_unknown_characters_are_named():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(BabyGPTError, match=r"'z', 'é'"):
        tok.encode("abzé")


def test_char_serialises():
    tok = CharTokenizer.from_text("xyz")
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode("zyx") == tok.encode("zyx")


def test_gpt2_works_offline_and_round_trips(monkeypatch):
    import socket

    from babygpt.text.tokenizers import gpt2_encoding

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    gpt2_encoding.cache_clear()  # build it here, from data/, with the network cut and an empty tiktoken cache
    encoding = gpt2_encoding()
    assert encoding.encode("hello world") == [31373, 995]
    text = "hello world, hello there. The world says hello!\n"
    tok = GPT2Tokenizer.from_text(text)
    assert tok.vocab_size == len(set(encoding.encode(text)))
    assert tok.vocab_size < 20
    ids = tok.encode(text)
    assert max(ids) < tok.vocab_size
    assert tok.decode(ids) == text
    again = tokenizer_from_dict(tok.to_dict())
    assert again.decode(again.encode("hello world")) == "hello world"


def test_shipped_gpt2_equals_tiktokens_own(monkeypatch, shakespeare):
    """An independent check: tiktoken's ``get_encoding("gpt2")`` over its own cache (../shared) cuts text the same."""
    import os

    import tiktoken

    from babygpt.text.tokenizers import gpt2_encoding
    from tests.conftest import ROOT

    cache = ROOT.parent / "shared" / "tiktoken-cache"
    if not cache.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {cache} is missing")
        pytest.skip(f"{cache} is absent")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    text = shakespeare.read_text(encoding="utf-8")[:200_000] + " naïve 東京 🙂 <|endoftext|>"
    assert gpt2_encoding().encode_ordinary(text) == tiktoken.get_encoding("gpt2").encode_ordinary(text)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=100))
def test_gpt2_round_trip_arbitrary_unicode(text):
    tok = GPT2Tokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_gpt2_unknown_tokens_are_named():
    tok = GPT2Tokenizer.from_text("hello world")
    with pytest.raises(BabyGPTError, match="never occur in the training text: ' banana'"):
        tok.encode("hello banana")


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_damaged_or_missing_gpt2_files_give_clear_error(monkeypatch, tmp_path, damage):
    import shutil

    from babygpt import shipped
    from babygpt.text.tokenizers import gpt2_encoding

    copy = tmp_path / "data"
    shutil.copytree(shipped.data_dir(), copy)
    vocab = copy / "tokenizers" / "gpt2" / "vocab.bpe"
    vocab.unlink() if damage == "missing" else vocab.write_text("#version: 0.2\nh e\n")
    monkeypatch.setattr(shipped, "_CHECKOUT", copy)
    gpt2_encoding.cache_clear()
    try:
        expected = "data/tokenizers/gpt2/vocab.bpe is missing" if damage == "missing" else "GPT-2 tokenizer files are damaged"
        with pytest.raises(BabyGPTError, match=expected):
            build_tokenizer("gpt2", "some text")
    finally:
        gpt2_encoding.cache_clear()


def test_damaged_tokenizer_description():
    with pytest.raises(BabyGPTError, match="damaged"):
        tokenizer_from_dict({"kind": "char"})
    with pytest.raises(BabyGPTError, match="Unknown tokenizer"):
        build_tokenizer("wordpiece", "abc")


def test_a_prefix_ends_at_a_whole_word_so_gpt2_can_encode_it():
    text = "extraordinarily unbelievable circumstances, notwithstanding everything.\n" * 3
    tok = GPT2Tokenizer.from_text(text)
    full = tok.encode(text)
    failures_when_cut_anywhere = 0
    for limit in range(len("extraordinarily "), 120):
        try:
            tok.encode(text[:limit])
        except BabyGPTError:
            failures_when_cut_anywhere += 1
        prefix = whole_words_prefix(text, limit)
        ids = tok.encode(prefix)  # never raises
        assert full[: len(ids)] == ids, limit  # the same tokens as in the whole text
        assert len(prefix) <= limit
    assert failures_when_cut_anywhere > 0  # the case the prefix exists for
    assert whole_words_prefix("short", 100) == "short"
    assert whole_words_prefix(text, 5) == text  # no safe cut before the first space: the whole text
