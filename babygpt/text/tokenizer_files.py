"""Tokenizer files from outside, read as a Baby GPT tokenizer: a Hugging Face ``tokenizer.json``, or GPT-2's
``vocab.json`` and ``merges.txt``.

Baby GPT reads three kinds, and refuses every other: a character vocabulary (a word-level tokenizer whose tokens are
single characters), GPT-2's byte-level BPE, with GPT-2's ids or an export's renumbering of them, and a byte-level BPE
whose first 256 ids are the bytes in order, as Baby GPT exports the BPE it learned from a text
(``babygpt.text.bpe_files``). The documents
arrive parsed (their cost was bounded by whoever read the bytes: ``babygpt.store.untrusted``) but otherwise as a
person wrote them, so every type is checked before it is used, and each refusal is a sentence that names what is
wrong. Ids must be a map both ways: a tokenizer that gives two tokens one id would read two texts as one.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from babygpt.errors import ImportRefused
from babygpt.shipped import data_file
from babygpt.text.bpe_files import bpe_from_hf, check_bpe_settings, is_byte_level_bpe, split_of_pre_tokenizer
from babygpt.text.tokenizers import CharTokenizer, GPT2Tokenizer, Tokenizer

KINDS_READ = "Baby GPT reads characters, GPT-2's BPE and a byte-level BPE whose first 256 ids are the bytes"


@functools.lru_cache(maxsize=1)
def gpt2_files() -> tuple[dict[str, int], tuple[str, ...]]:
    """GPT-2's own vocabulary (token -> id) and merges, from the files shipped in data/ (read once; not to be
    changed by callers)."""
    vocab = json.loads(data_file("tokenizers", "gpt2", "encoder.json").read_text(encoding="utf-8"))
    lines = data_file("tokenizers", "gpt2", "vocab.bpe").read_text(encoding="utf-8").splitlines()
    return vocab, tuple(line for line in lines[1:] if line.strip())  # the first line is a version comment


def _refuse(message: str) -> ImportRefused:
    return ImportRefused(f"Refused: {message}")


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(token: str) -> str:
    return repr(token if len(token) <= 20 else token[:20] + "…")


def checked_vocab(vocab: Any, what: str) -> dict[str, int]:
    """A map of tokens to ids, every id a whole number, no id given to two tokens."""
    if not isinstance(vocab, dict) or not vocab:
        raise _refuse(f"{what}'s vocabulary is not a map of tokens to ids.")
    owner: dict[int, str] = {}
    for token, token_id in vocab.items():
        if not _is_id(token_id):
            raise _refuse(f"{what} gives the token {_short(token)} the id {json.dumps(token_id)[:20]}; ids are whole "
                          "numbers from 0.")
        if token_id in owner:
            raise _refuse(f"{what} gives two tokens one id ({token_id}: {_short(owner[token_id])} and "
                          f"{_short(token)}); each id must stand for one token.")
        owner[token_id] = token
    return vocab


def _with_added(vocab: dict[str, int], added: Any) -> dict[str, int]:
    """The vocabulary with the added tokens (GPT-2's ``<|endoftext|>`` may live only there), which must agree with
    it: a token listed in both keeps one id, and no added token takes another token's id."""
    if added is None:
        return vocab
    if not isinstance(added, list) or not all(isinstance(t, dict) for t in added):
        raise _refuse("tokenizer.json's added_tokens is not a list of tokens.")
    merged = dict(vocab)
    for token in added:
        content, token_id = token.get("content"), token.get("id")
        if not isinstance(content, str) or not _is_id(token_id):
            raise _refuse("tokenizer.json has an added token without a text (content) and a whole-number id.")
        if merged.get(content, token_id) != token_id:
            raise _refuse(f"tokenizer.json gives the token {_short(content)} two ids ({merged[content]} and "
                          f"{token_id}).")
        merged[content] = token_id
    return checked_vocab(merged, "tokenizer.json")


def _merges(merges: Any) -> list[str]:
    """Merges as ``"a b"`` lines: tokenizer.json holds them as such strings or as pairs."""
    if merges is None:
        return []
    if not isinstance(merges, list):
        raise _refuse("tokenizer.json's merges are not a list.")
    lines = []
    for merge in merges:
        if isinstance(merge, list) and len(merge) == 2 and all(isinstance(p, str) for p in merge):
            lines.append(" ".join(merge))
        elif isinstance(merge, str):
            lines.append(merge)
        else:
            raise _refuse("tokenizer.json's merges must be pairs of tokens.")
    return lines


def tokenizer_from_json(document: Any, vocab_size: int) -> Tokenizer:
    """The tokenizer a parsed ``tokenizer.json`` describes, for a model of ``vocab_size`` ids."""
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict):
        raise _refuse("tokenizer.json does not describe a tokenizer (it has no model section).")
    kind = model.get("type")
    if kind not in ("WordLevel", "BPE"):
        shown = repr(kind) if isinstance(kind, str) else "an unnamed"
        raise _refuse(f"a {shown[:40]} tokenizer; {KINDS_READ}.")
    vocab = _with_added(checked_vocab(model.get("vocab"), "tokenizer.json"), document.get("added_tokens"))
    merges = _merges(model.get("merges")) if kind == "BPE" else []
    if kind == "BPE" and is_byte_level_bpe(vocab):  # Baby GPT's own BPE (GPT-2's ids start elsewhere)
        check_bpe_settings(document)
        return bpe_from_hf(vocab, merges, split_of_pre_tokenizer(document.get("pre_tokenizer")), vocab_size)
    return _from_vocab(kind, vocab, merges, vocab_size)


def tokenizer_from_vocab_merges(vocab: Any, merges_text: str, vocab_size: int) -> Tokenizer:
    """The tokenizer of GPT-2's two files as the Hub has them (``vocab.json``, ``merges.txt``): GPT-2's BPE, or a
    byte-level BPE cut as GPT-2's tokenizer cuts text (its pattern), which is what these two files promise."""
    merges = [line for line in merges_text.splitlines()[1:] if line.strip()]
    vocab = checked_vocab(vocab, "vocab.json")
    if is_byte_level_bpe(vocab):
        return bpe_from_hf(vocab, merges, "gpt2", vocab_size)
    return _from_vocab("BPE", vocab, merges, vocab_size)


def _from_vocab(kind: str, vocab: dict[str, int], merges: list[str], vocab_size: int) -> Tokenizer:
    by_id = {i: token for token, i in vocab.items() if i < vocab_size}
    if len(by_id) != vocab_size:
        raise _refuse(f"the tokenizer gives {len(by_id):,} of the model's {vocab_size:,} ids; it must give every id "
                      "exactly once.")
    if kind == "WordLevel":
        chars = [by_id[i] for i in range(vocab_size)]
        if not all(len(c) == 1 for c in chars):
            raise _refuse("a word-level tokenizer opens here only as characters (one character a token).")
        return CharTokenizer(chars)
    gpt2_vocab, gpt2_merges = gpt2_files()
    if vocab.keys() != gpt2_vocab.keys() or tuple(merges) != gpt2_merges:
        raise _refuse(f"the tokenizer is a BPE other than GPT-2's; {KINDS_READ}.")
    return GPT2Tokenizer([gpt2_vocab[by_id[i]] for i in range(vocab_size)])
