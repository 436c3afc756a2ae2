import pytest
import torch

from babygpt.errors import BabyGPTError
from babygpt.text import datasets
from babygpt.text.corpus import (
    corpus_from_bytes,
    corpus_from_path,
    corpus_from_uploads,
    decode_text,
    describe_char,
    get_batch,
    split_ids,
    text_stats,
)


@pytest.mark.parametrize("raw, message", [
    (b"", "is empty"),
    (b"GIF89a\x00\x01\x02", "looks binary \\(a NUL byte at offset 6\\)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
    (b"line one\nline \xff two", "not valid UTF-8: byte 0xff at offset 14 \\(line 2, column 6\\)"),
    (b"aaaaaaa", "only one distinct character"),
])
def test_bad_uploads_get_specific_errors(raw, message):
    with pytest.raises(BabyGPTError, match=message):
        corpus_from_bytes(raw, "upload.txt")


def test_uploads_use_the_good_files_and_name_every_bad_one():
    result = corpus_from_uploads([("a.txt", b"hello there\n"), ("bin.txt", b"GIF89a\x00"), ("b.txt", b"general kenobi\n"),
                                  ("empty.txt", b"")])
    assert result.corpus.name == "a.txt + b.txt"
    assert result.corpus.text == "hello there\n\n\ngeneral kenobi\n"
    assert [name for name, _ in result.rejected] == ["bin.txt", "empty.txt"]
    assert "looks binary" in result.rejected[0][1] and "is empty" in result.rejected[1][1]
    nothing = corpus_from_uploads([("bin.txt", b"GIF89a\x00")])
    assert nothing.corpus is None and len(nothing.rejected) == 1


def test_whitespace_is_drawn_with_glyphs_debian_fonts_have():
    assert [describe_char(c) for c in " \n\t\x07é"] == ["\u2423", "\\n", "\\t", "U+0007", "é"]


def test_utf16_with_bom_is_decoded():
    raw = "héllo wörld".encode("utf-16")
    assert decode_text(raw) == "héllo wörld"


def test_utf8_bom_is_stripped():
    assert decode_text("\ufeffabc".encode()) == "abc"


def test_upload_size_limit():
    with pytest.raises(BabyGPTError, match="over the 0 MB limit"):
        decode_text(b"abc" * 100, "big.txt", max_bytes=10)


def test_missing_path():
    with pytest.raises(BabyGPTError, match="No such file"):
        corpus_from_path("/nonexistent/file.txt")


def test_stats_and_warnings():
    text = "ab\r\ncd\nef\x07\n"
    stats = text_stats(text)
    assert stats.n_chars == len(text)
    assert stats.n_lines == 3
    assert stats.n_distinct == len(set(text))
    assert stats.top_chars[0] == ("\n", 3)
    joined = " ".join(stats.warnings)
    assert "Mixed line endings: 1 Windows" in joined
    assert "Control characters found (U+0007 ×1)" in joined


def test_split_fraction_and_too_short():
    ids = torch.arange(1000)
    split = split_ids(ids, 0.1, block_size=8)
    assert len(split.train) == 900 and len(split.val) == 100
    assert torch.equal(torch.cat([split.train, split.val]), ids)
    with pytest.raises(BabyGPTError, match="validation part has 10 tokens but one block needs 65"):
        split_ids(torch.arange(100), 0.1, block_size=64)


def test_batches_are_shifted_and_reproducible():
    data = torch.arange(500)
    x, y = get_batch(data, 16, 4, torch.Generator().manual_seed(3))
    assert x.shape == (4, 16) and y.shape == (4, 16)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y, x + 1)
    x2, _ = get_batch(data, 16, 4, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2)


def test_every_shipped_corpus_loads_offline_and_matches_its_registry_entry():
    assert datasets.default_dataset() == "python-docs"
    for name, ds in datasets.registry().items():
        corpus = datasets.load_corpus(name)
        assert (corpus.name, corpus.source) == (name, name)
        assert len(corpus.text) == ds.size and corpus.sha256 == ds.sha256
        assert ds.licence and ds.source
    assert len(set(datasets.load_corpus("tinyshakespeare").text)) == 65


def test_a_damaged_shipped_corpus_is_named(tmp_path, monkeypatch):
    import shutil

    from babygpt import shipped

    copy = tmp_path / "data"
    shutil.copytree(shipped.data_dir(), copy)
    (copy / "corpora" / "tinyshakespeare.txt").write_text("not shakespeare")
    monkeypatch.setattr(shipped, "_CHECKOUT", copy)
    with pytest.raises(BabyGPTError, match="shipped text of Tiny Shakespeare is damaged"):
        datasets.load_corpus("tinyshakespeare")


def test_unknown_dataset():
    with pytest.raises(BabyGPTError, match="Unknown dataset 'nope'"):
        datasets.get_dataset("nope")
