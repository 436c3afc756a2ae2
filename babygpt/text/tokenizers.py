"""Tokenizers: characters, GPT-2 BPE with a compact vocabulary, or a BPE learned from the text (``bpe_tokenizer``).

Both serialise to a small dict stored in the run's config.json, so a checkpoint can decode
its own output years later without the training text.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any, Protocol

from babygpt.errors import BabyGPTError
from babygpt.shipped import data_file
from babygpt.text.bpe import BPESettings
from babygpt.text.bpe_tokenizer import BPETokenizer, label_of

TOKENIZERS = ("char", "gpt2", "bpe")


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def token_text(self, token_id: int) -> str: ...  # a label: part of a character shows as its bytes (\xe6)
    def to_dict(self) -> dict[str, Any]: ...


def _describe_unknown(items: list[str]) -> str:
    shown = ", ".join(repr(s) for s in items[:10])
    return shown + (f" and {len(items) - 10} more" if len(items) > 10 else "")


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of the corpus's characters."""

    kind = "char"

    def __init__(self, chars: list[str]):
        if not all(isinstance(c, str) and len(c) == 1 for c in chars) or len(chars) != len(set(chars)):
            raise BabyGPTError("A char vocabulary must be a list of distinct single characters.")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self.stoi})
            raise BabyGPTError(
                f"The prompt contains character(s) this model never saw in training: {_describe_unknown(unknown)}. "
                "Remove them or train on a text that contains them."
            ) from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def token_text(self, token_id: int) -> str:
        return self.chars[token_id]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


GPT2_FILES = {  # data/tokenizers/gpt2/: the files tiktoken would download, with the sha256 tiktoken checks
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


@functools.lru_cache(maxsize=1)
def gpt2_encoding() -> Any:
    """GPT-2's byte-pair encoding built by tiktoken from the files shipped in ``data/``: no download, ever.

    The pattern and the special token are tiktoken's own definition of ``gpt2``; tests hold the result equal to
    ``tiktoken.get_encoding("gpt2")``.
    """
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

    vocab, encoder = (data_file("tokenizers", "gpt2", name) for name in GPT2_FILES)
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(vocab), str(encoder), vocab_bpe_hash=GPT2_FILES["vocab.bpe"],
                                                encoder_json_hash=GPT2_FILES["encoder.json"])
    except ValueError as exc:  # tiktoken's hash check
        raise BabyGPTError(f"The shipped GPT-2 tokenizer files are damaged ({exc}); restore data/tokenizers/gpt2 "
                           "from the repository. The char tokenizer still works.") from exc
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: 50256}, explicit_n_vocab=50257)


class GPT2Tokenizer:
    """GPT-2 BPE, remapped to the ids seen in training so a baby model has a baby embedding table."""

    kind = "gpt2"

    def __init__(self, gpt2_ids: list[int]):
        self.encoding = gpt2_encoding()
        self.gpt2_ids = list(gpt2_ids)
        self.to_compact = {g: i for i, g in enumerate(self.gpt2_ids)}

    @classmethod
    def from_text(cls, text: str) -> GPT2Tokenizer:
        ids = gpt2_encoding().encode_ordinary(text)
        return cls(sorted(set(ids)))

    @property
    def vocab_size(self) -> int:
        return len(self.gpt2_ids)

    def encode(self, text: str) -> list[int]:
        gpt2 = self.encoding.encode_ordinary(text)
        try:
            return [self.to_compact[g] for g in gpt2]
        except KeyError:
            unknown = [self.encoding.decode([g]) for g in dict.fromkeys(g for g in gpt2 if g not in self.to_compact)]
            raise BabyGPTError(
                f"The prompt contains GPT-2 token(s) that never occur in the training text: "
                f"{_describe_unknown(unknown)}. Rephrase the prompt with words from the corpus."
            ) from None

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode([self.gpt2_ids[i] for i in ids])

    def token_text(self, token_id: int) -> str:
        return label_of(self.encoding.decode_single_token_bytes(self.gpt2_ids[token_id]))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "gpt2_ids": self.gpt2_ids}


def unknown_pieces(tokenizer: Tokenizer, text: str) -> list[str]:
    """What in ``text`` the tokenizer's vocabulary lacks (characters, or GPT-2 tokens as text), each once, in order
    of appearance: empty when the whole text can be encoded."""
    if isinstance(tokenizer, CharTokenizer):
        return list(dict.fromkeys(c for c in text if c not in tokenizer.stoi))
    if isinstance(tokenizer, GPT2Tokenizer):
        ids = tokenizer.encoding.encode_ordinary(text)
        return [tokenizer.encoding.decode([g]) for g in dict.fromkeys(g for g in ids if g not in tokenizer.to_compact)]
    if isinstance(tokenizer, BPETokenizer):
        return []  # byte-level: every text is bytes, and every byte is a token
    raise BabyGPTError(f"Unknown tokenizer {tokenizer.kind!r}.")


def whole_words_prefix(text: str, limit: int) -> str:
    """About the first ``limit`` characters, ending at the end of a word.

    GPT-2's BPE reads half a word as other tokens than the whole word, and the compact vocabulary may never
    have seen those: a preview, a token count or a default prompt cut mid-word would then fail to encode.
    Ending before a whitespace run keeps every token of the prefix the same as in the full text. A text with
    no whitespace in its first ``limit`` characters has no safe cut, so it is returned whole.
    """
    head = text[:limit]
    cut = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    whole = head[:cut].rstrip() if cut > 0 else ""
    return text if len(text) <= limit or not whole else whole


def build_tokenizer(kind: str, text: str, bpe: BPESettings | None = None) -> Tokenizer:
    """The tokenizer of ``kind`` for ``text``; ``bpe`` (vocabulary size and pre-split) only for kind "bpe"."""
    if bpe is not None and kind != "bpe":
        raise BabyGPTError(f"A vocabulary size and pre-split are for a BPE learned from the text, not for {kind!r}.")
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "gpt2":
        return GPT2Tokenizer.from_text(text)
    if kind == "bpe":
        return BPETokenizer.from_text(text, bpe)
    raise BabyGPTError(f"Unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}.")


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    kind = data.get("kind")
    if kind == "char" and isinstance(data.get("chars"), list):
        return CharTokenizer(data["chars"])
    if kind == "gpt2" and isinstance(data.get("gpt2_ids"), list):
        ids = data["gpt2_ids"]
        if not all(isinstance(i, int) and 0 <= i < 50257 for i in ids) or len(set(ids)) != len(ids):
            raise BabyGPTError("The saved GPT-2 vocabulary is damaged (ids must be distinct integers < 50257).")
        return GPT2Tokenizer(ids)
    if kind == "bpe":
        return BPETokenizer.from_dict(data)
    raise BabyGPTError(f"Unrecognised tokenizer description (kind={kind!r}); the run's config.json is damaged.")


def token_bytes(tokenizer: Tokenizer, token_id: int) -> bytes:
    """The UTF-8 bytes one token stands for."""
    if isinstance(tokenizer, BPETokenizer):
        return tokenizer.token_bytes(token_id)
    if isinstance(tokenizer, GPT2Tokenizer):
        return tokenizer.encoding.decode_single_token_bytes(tokenizer.gpt2_ids[token_id])
    return tokenizer.token_text(token_id).encode("utf-8", errors="surrogatepass")


def text_bytes(tokenizer: Tokenizer, ids: Any) -> int:
    """How many UTF-8 bytes of text ``ids`` stand for, counted token by token (so a byte-level token holding half a
    character counts its own bytes): the denominator of bits per byte (``babygpt.units.bits_per_byte``), counted once
    per run (``babygpt.text.measured.ValidationText``)."""
    counts = Counter(ids.tolist() if hasattr(ids, "tolist") else ids)  # a tensor's ids as ints, at C speed
    return sum(n * len(token_bytes(tokenizer, i)) for i, n in counts.items())
