"""A BPE learned by Baby GPT as Hugging Face writes a byte-level BPE, and back.

Hugging Face's byte-level tokenizers (GPT-2's among them) never store raw bytes: each byte value is written as one
printable character of GPT-2's byte alphabet (``BYTE_ALPHABET``: the space is ``Ġ``, a newline ``Ċ``), a token as
the characters of its bytes. Baby GPT's BPE goes out in that form: a ``tokenizer.json`` whose BPE model has the run's
ids (0..255 the bytes in byte order, then each merge's token in the order learned), the run's merges in rank order,
and a pre-tokenizer that cuts text the way the run does (``babygpt.text.bpe.pre_split``); and GPT-2's two files,
``vocab.json`` and ``merges.txt``. ``transformers.AutoTokenizer`` then gives the run's ids, which tests check on
varied texts.

The patterns are matched by Oniguruma there and by Python's ``regex`` here. Oniguruma reads GPT-4's ``\\p{N}{1,3}+``
as "one or more groups of one to three digits" (unlimited digits), where tiktoken and ``regex`` read a possessive
quantifier, so the exported pattern says ``\\p{N}{1,3}`` (the same matches: a greedy run of at most three digits
can only be followed by a non-digit or a fourth digit that starts the next chunk either way). GPT-2's pattern goes
out as GPT-2's own folders have it (``ByteLevel`` with its built-in regex), which tests hold equal to tiktoken's.

Reading back (``bpe_from_hf``) accepts exactly this shape, whoever wrote it, and refuses every other in a sentence:
the first 256 ids must be the bytes in order, every merge's parts and result must be tokens of the vocabulary, a new
token must take the next id, and the vocabulary must be exactly the bytes and the merges' tokens.
"""

from __future__ import annotations

from typing import Any

from babygpt.errors import BabyGPTError, ImportRefused
from babygpt.text.bpe import BPE, BYTES, MAX_STORED_MERGES, MAX_VOCAB_BYTES, SPLIT_PATTERNS
from babygpt.text.bpe_tokenizer import BPETokenizer


def _byte_alphabet() -> tuple[str, ...]:
    """GPT-2's printable stand-in for each byte value (``bytes_to_unicode`` in GPT-2's encoder.py): printable
    Latin-1 bytes stand for themselves, the others (controls, the space) for the characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(BYTES):
        if b not in chars:
            chars[b] = chr(0x100 + extra)
            extra += 1
    return tuple(chars[b] for b in range(BYTES))


BYTE_ALPHABET = _byte_alphabet()
_BYTE_OF = {c: b for b, c in enumerate(BYTE_ALPHABET)}
_TO_ALPHABET = dict(enumerate(BYTE_ALPHABET))  # a str.translate table from latin-1 characters (= bytes)


def hf_token(raw: bytes) -> str:
    """A token's bytes as a byte-level tokenizer.json writes them."""
    return raw.decode("latin-1").translate(_TO_ALPHABET)


def _token_bytes(token: str) -> bytes | None:
    """The bytes a token of a byte-level vocabulary stands for; None when it holds a character outside the alphabet."""
    try:
        return bytes(_BYTE_OF[c] for c in token)
    except KeyError:
        return None


def hf_pattern(split: str) -> str:
    """The pre-split pattern as Hugging Face's Oniguruma matches it like Python's ``regex`` (see the module's note)."""
    return SPLIT_PATTERNS[split].replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")


# --- out ------------------------------------------------------------------------------------------------------------

def _byte_level(use_regex: bool) -> dict[str, Any]:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def pre_tokenizer_json(split: str | None) -> dict[str, Any]:
    """What cuts the text before the merges: GPT-2's own ByteLevel regex, GPT-4's pattern then the bytes, or only
    the bytes (no split: merges cross words)."""
    if split == "gpt2":
        return _byte_level(True)
    if split is None:
        return _byte_level(False)
    cut = {"type": "Split", "pattern": {"Regex": hf_pattern(split)}, "behavior": "Isolated", "invert": False}
    return {"type": "Sequence", "pretokenizers": [cut, _byte_level(False)]}


def hf_vocab(tokenizer: BPETokenizer) -> dict[str, int]:
    """Each token, written in the byte alphabet, with the run's id."""
    return {hf_token(token): i for i, token in enumerate(tokenizer.bpe.vocab)}


def hf_merges(tokenizer: BPETokenizer) -> list[list[str]]:
    """The merges in the order learned (Hugging Face's rank), each as its two tokens."""
    vocab = tokenizer.bpe.vocab
    return [[hf_token(vocab[left]), hf_token(vocab[right])] for (left, right), _ in tokenizer.bpe.merges]


def bpe_tokenizer_json(tokenizer: BPETokenizer) -> dict[str, Any]:
    """The run's BPE as a ``tokenizer.json``: ``AutoTokenizer`` gives the run's ids, and every text encodes."""
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": pre_tokenizer_json(tokenizer.bpe.split), "post_processor": None,
        "decoder": _byte_level(True),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": hf_vocab(tokenizer), "merges": hf_merges(tokenizer)},
    }


def merges_txt(tokenizer: BPETokenizer) -> str:
    """GPT-2's merges.txt: a version line, then one merge a line, in rank order."""
    return "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in hf_merges(tokenizer))


# --- back in --------------------------------------------------------------------------------------------------------

def _refuse(message: str) -> ImportRefused:
    return ImportRefused(f"Refused: {message}")


def _short(token: str) -> str:
    return repr(token if len(token) <= 20 else token[:20] + "…")


def _is_byte_level(entry: Any, use_regex: bool) -> bool:
    return (isinstance(entry, dict) and entry.get("type") == "ByteLevel" and not entry.get("add_prefix_space")
            and entry.get("use_regex", True) is use_regex)


def split_of_pre_tokenizer(pre: Any) -> str | None:
    """The run's pre-split from a tokenizer.json's pre-tokenizer, for exactly the forms ``pre_tokenizer_json``
    writes; any other way of cutting text would give other ids, and is refused."""
    if _is_byte_level(pre, True):
        return "gpt2"
    if _is_byte_level(pre, False):
        return None
    parts = pre.get("pretokenizers") if isinstance(pre, dict) and pre.get("type") == "Sequence" else None
    if isinstance(parts, list) and len(parts) == 2 and _is_byte_level(parts[1], False) and isinstance(parts[0], dict):
        cut = parts[0]
        pattern = cut.get("pattern")
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if cut.get("type") == "Split" and cut.get("behavior") == "Isolated" and not cut.get("invert"):
            for split in SPLIT_PATTERNS:
                if regex == hf_pattern(split):
                    return split
    raise _refuse("tokenizer.json cuts text before its BPE in a way Baby GPT does not know; it reads a byte-level "
                  "BPE cut by GPT-2's or GPT-4's pattern, or not cut at all.")


def check_bpe_settings(document: dict[str, Any]) -> None:
    """The parts of a tokenizer.json besides the vocabulary that would change a byte-level BPE's ids or text."""
    model = document.get("model") or {}
    if document.get("normalizer") is not None:
        raise _refuse("tokenizer.json changes the text before cutting it (a normalizer); Baby GPT's BPE reads the "
                      "text as it is.")
    post = document.get("post_processor")
    if post is not None and not (isinstance(post, dict) and post.get("type") == "ByteLevel"):
        raise _refuse("tokenizer.json adds tokens around every text (a post-processor); Baby GPT's BPE adds none.")
    odd = [key for key, plain in (("dropout", None), ("byte_fallback", False), ("ignore_merges", False))
           if model.get(key, plain) not in (plain, None)]
    odd += [key for key in ("continuing_subword_prefix", "end_of_word_suffix") if model.get(key) not in ("", None)]
    if odd:
        raise _refuse(f"tokenizer.json's BPE sets {', '.join(odd)}, which Baby GPT's byte-level BPE does not use.")


def _merge_ids(vocab: dict[str, int], merges: list[str]) -> list[tuple[tuple[int, int], int]]:
    """Each ``"a b"`` merge as (left id, right id) -> the id of ``ab``, every part a token of the vocabulary."""
    found = []
    for k, line in enumerate(merges):
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise _refuse(f"merge {k + 1} ({_short(line)}) is not two tokens.")
        left, right = parts
        ids = [vocab.get(token) for token in (left, right, left + right)]
        if None in ids:
            missing = (left, right, left + right)[ids.index(None)]
            raise _refuse(f"merge {k + 1} ({_short(line)}) needs the token {_short(missing)}, which the vocabulary "
                          "lacks.")
        found.append(((ids[0], ids[1]), ids[2]))
    return found


def bpe_from_hf(vocab: dict[str, int], merges: list[str], split: str | None, vocab_size: int) -> BPETokenizer:
    """A Baby GPT BPE from a byte-level vocabulary (ids already checked to be distinct whole numbers) and merges in
    rank order, for a model of ``vocab_size`` ids; refused in a sentence unless it is exactly such a BPE."""
    if len(vocab) != vocab_size:
        raise _refuse(f"the BPE has {len(vocab):,} tokens and the model {vocab_size:,}; each token needs its row.")
    if any(vocab.get(char) != b for b, char in enumerate(BYTE_ALPHABET)):
        raise _refuse("the BPE's first 256 ids are not the 256 byte values in order, as a byte-level BPE exported "
                      "by Baby GPT has them.")
    if len(merges) > MAX_STORED_MERGES:
        raise _refuse(f"the BPE lists {len(merges):,} merges, more than the {MAX_STORED_MERGES:,} a BPE may hold.")
    strange = next((token for token in vocab if _token_bytes(token) is None), None)
    if strange is not None:
        raise _refuse(f"the BPE's token {_short(strange)} is not written in the byte alphabet of a byte-level BPE.")
    if sum(len(token) for token in vocab) > MAX_VOCAB_BYTES:
        raise _refuse(f"the BPE's tokens hold more than the {MAX_VOCAB_BYTES:,} bytes a BPE may hold.")
    found = _merge_ids(vocab, merges)
    size = BYTES
    for k, (_, new_id) in enumerate(found):
        if new_id == size:
            size += 1
        elif new_id > size:
            raise _refuse(f"merge {k + 1} makes the token with id {new_id} before the one with id {size}; a BPE "
                          "numbers its tokens in the order it learned them.")
    if size != len(vocab):
        raise _refuse(f"the BPE's vocabulary has {len(vocab) - size:,} token(s) that no merge makes.")
    try:
        bpe = BPE.from_merges(found, split)
    except BabyGPTError:  # a merge reusing an id of other bytes: caught here, worded for an import
        raise _refuse("the BPE's merges do not build its vocabulary: a merge gives a token an id that another token "
                      "has.") from None
    return BPETokenizer(bpe)


def is_byte_level_bpe(vocab: dict[str, int]) -> bool:
    """Whether a vocabulary starts with the 256 bytes in byte order (Baby GPT's BPE), rather than GPT-2's order."""
    return all(vocab.get(char) == b for b, char in enumerate(BYTE_ALPHABET))
