import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from babygpt.errors import BabyGPTError
from babygpt.tokenizers import CharTokenizer, GPT2Tokenizer, build_tokenizer, tokenizer_from_dict, whole_words_prefix


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


def test_gpt2_works_offline_and_round_trips(gpt2_available):
    import tiktoken

    assert tiktoken.get_encoding("gpt2").encode("hello world") == [31373, 995]
    text = "hello world, hello there. The world says hello!\n"
    tok = GPT2Tokenizer.from_text(text)
    assert tok.vocab_size == len(set(tiktoken.get_encoding("gpt2").encode(text)))
    assert tok.vocab_size < 20
    ids = tok.encode(text)
    assert max(ids) < tok.vocab_size
    assert tok.decode(ids) == text
    again = tokenizer_from_dict(tok.to_dict())
    assert again.decode(again.encode("hello world")) == "hello world"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=100))
def test_gpt2_round_trip_arbitrary_unicode(gpt2_available, text):
    tok = GPT2Tokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_gpt2_unknown_tokens_are_named(gpt2_available):
    tok = GPT2Tokenizer.from_text("hello world")
    with pytest.raises(BabyGPTError, match="never occur in the training text: ' banana'"):
        tok.encode("hello banana")


def test_missing_gpt2_files_give_clear_error(monkeypatch, tmp_path):
    import tiktoken.load

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))

    def offline(*args, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    import tiktoken.registry

    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    with pytest.raises(BabyGPTError, match="GPT-2 tokenizer files are not available.*char tokenizer works offline"):
        build_tokenizer("gpt2", "some text")


def test_damaged_tokenizer_description():
    with pytest.raises(BabyGPTError, match="damaged"):
        tokenizer_from_dict({"kind": "char"})
    with pytest.raises(BabyGPTError, match="Unknown tokenizer"):
        build_tokenizer("bpe", "abc")


def test_a_prefix_ends_at_a_whole_word_so_gpt2_can_encode_it(gpt2_available):
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
