"""Byte-level BPE learned from your own text: count adjacent pairs, merge the most frequent, repeat.

The lesson's trainer (``learn_merges_readable``) is short enough to read on a page; the fast one
(``babygpt.text.bpe_fast``, Hugging Face ``tokenizers``) learns the same merges, held equal by tests/test_bpe.py.
Both start from the 256 byte values, so every text encodes: no character is ever unknown. Both first cut the text
with GPT-2's or GPT-4's pattern (or not at all), so a merge never crosses a word boundary; the patterns are
tiktoken's own, matched with the ``regex`` module (tiktoken's dependency), which knows ``\\p{L}`` and possessive
quantifiers where Python's ``re`` does not.

A ``BPE`` is the result: its merges in the order learned, each token's bytes, and the pattern. It is stored with a
run (``to_dict``) and checked when read back (``from_dict``), so a checkpoint decodes on its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import regex

from babygpt.errors import BabyGPTError
from babygpt.text import bpe_fast

Merge = bpe_fast.Merge  # (left id, right id) -> the new token's id

# tiktoken_ext.openai_public: r50k_pat_str (GPT-2) and cl100k_base's pat_str (GPT-4); tests compare them to tiktoken
SPLIT_PATTERNS: dict[str, str] = {
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
            r"""\s*[\r\n]|\s+(?!\S)|\s""",
}
SPLIT_NAMES = ("gpt2", "gpt4", "none")  # how a person names the choice; "none" is the contract's None
DEFAULT_SPLIT = "gpt4"
BYTES = 256  # the starting vocabulary: one token per byte value
DEFAULT_BPE_VOCAB = 1024
MAX_BPE_VOCAB = 32_768  # the most tokens a BPE may be trained to (a server setting may lower it for a class)
# How much text the merges are learned from, so time and memory are known before training starts (the whole text is
# still encoded). Measured on two busy cores (docs/tokenizers.md): pre-split, 1 MB to 4,096 tokens in 1.5-2 s and
# 8 MB in 7 s. Without a pre-split the text is one long word that every merge rescans, so time grows as its square:
# 50 kB in about 2 s, 100 kB in 7 s, 200 kB in 25 s.
MAX_LEARN_BYTES = {True: 8_000_000, False: 50_000}  # keyed by "is the text pre-split"
# Bounds on a stored BPE read back (a run's config.json, an imported archive): merges beyond the trained bound
# only where a merge rebuilt an existing token, and the tokens' bytes together (a merge joins two tokens, so
# without a bound 60 merges could describe 2**60 bytes).
MAX_STORED_MERGES = 2 * MAX_BPE_VOCAB
MAX_VOCAB_BYTES = 16 * 1024 * 1024


def split_of(name: str | None) -> str | None:
    """The contract's split (``"gpt2"``, ``"gpt4"`` or None) from a person's name for it ("none" or None: no split)."""
    if name is None or name == "none":
        return None
    if name not in SPLIT_PATTERNS:
        raise BabyGPTError(f"Unknown pre-split pattern {name!r}; choose one of {', '.join(SPLIT_NAMES)}.")
    return name


def check_vocab_size(vocab_size: Any, limit: int = MAX_BPE_VOCAB) -> int:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or not BYTES <= vocab_size <= limit:
        raise BabyGPTError(f"A BPE vocabulary holds from {BYTES} tokens (the bytes alone) to {limit:,}; "
                           f"got {vocab_size!r}.")
    return vocab_size


@dataclass(frozen=True)
class BPESettings:
    """What a person chooses: how many tokens, and which pattern cuts the text first."""

    vocab_size: int = DEFAULT_BPE_VOCAB
    split: str | None = DEFAULT_SPLIT

    def validate(self, limit: int = MAX_BPE_VOCAB) -> BPESettings:
        check_vocab_size(self.vocab_size, limit)
        split_of(self.split)
        return self


def pre_split(text: str, split: str | None) -> list[str]:
    """The chunks merges stay inside: the pattern's matches (which together are the whole text), or the text whole."""
    if split is None:
        return [text] if text else []
    return regex.findall(SPLIT_PATTERNS[split_of(split)], text)


def utf8(text: str) -> bytes:
    """A text's UTF-8 bytes; a lone surrogate (which no file holds, but a Python string may) keeps its three bytes,
    so even such a string encodes and decodes back whole."""
    return text.encode("utf-8", errors="surrogatepass")


def word_counts(text: str, split: str | None) -> dict[bytes, int]:
    """Each distinct chunk's bytes with how often it occurs: training looks at each distinct word once."""
    return dict(Counter(utf8(chunk) for chunk in pre_split(text, split)))


# --- the lesson's trainer -----------------------------------------------------------------------------------------

def merge(ids: tuple[int, ...], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
    """Every occurrence of ``pair`` in ``ids``, left to right, replaced by ``new_id`` ("aaa" with (a, a): "X a")."""
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return tuple(out)


def learn_merges_readable(words: dict[bytes, int], vocab_size: int) -> list[Merge]:
    """Count adjacent pairs, merge the most frequent, repeat: until ``vocab_size`` tokens, or no pair occurs twice.

    Ties: among equally frequent pairs, the one with the smaller ids wins (first id, then second), the rule
    Hugging Face's trainer follows, so both learn the same merges. A merge whose bytes are already a token reuses
    that token's id: a token is its bytes, so one id stands for one token.
    """
    corpus = {tuple(word): count for word, count in words.items()}  # each word as ids, and how often it occurs
    vocab = [bytes([b]) for b in range(BYTES)]
    id_of = {token: i for i, token in enumerate(vocab)}
    merges: list[Merge] = []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[int, int]] = Counter()
        for ids, count in corpus.items():
            for pair in pairwise(ids):
                pairs[pair] += count
        if not pairs:
            break
        pair = min(pairs, key=lambda p: (-pairs[p], p))  # the most frequent; ties: the smaller ids
        if pairs[pair] < 2:
            break  # a pair seen once would only spell one word of this text
        token = vocab[pair[0]] + vocab[pair[1]]
        new_id = id_of.setdefault(token, len(vocab))
        if new_id == len(vocab):
            vocab.append(token)
        merges.append((pair, new_id))
        corpus = {merge(ids, pair, new_id): count for ids, count in corpus.items()}
    return merges


def encode_readable(bpe: BPE, text: str) -> list[int]:
    """Encode as the lesson says: in each chunk, merge the adjacent pair learned earliest, until none was learned."""
    return encode_first_k(bpe, text, len(bpe.merges))


def encode_first_k(bpe: BPE, text: str, k: int) -> list[int]:
    """The text cut as the trainer had it after its first ``k`` merges (0: the bytes; all: ``encode_readable``).

    Applying the merges learned earliest first is replaying training: a merge joins pairs made of tokens that
    earlier merges made, so the lesson's slider shows the text exactly as the trainer saw it at step ``k``."""
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(bpe.merges):
        raise BabyGPTError(f"This BPE has {len(bpe.merges):,} merges: choose from 0 to {len(bpe.merges):,}, "
                           f"got {k!r}.")
    rank = {pair: (i, new_id) for i, (pair, new_id) in enumerate(bpe.merges[:k])}
    out: list[int] = []
    for chunk in pre_split(text, bpe.split):
        ids = tuple(utf8(chunk))
        while len(ids) >= 2:
            pair = min(pairwise(ids), key=lambda p: rank.get(p, (len(rank), 0)))
            if pair not in rank:
                break
            ids = merge(ids, pair, rank[pair][1])
        out.extend(ids)
    return out


# --- the result ---------------------------------------------------------------------------------------------------

def _refuse(message: str) -> BabyGPTError:
    return BabyGPTError(f"The saved BPE is damaged: {message} The run's config.json was changed or cut short.")


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(token: bytes) -> str:
    return repr(token[:20].decode("utf-8", errors="replace") + ("…" if len(token) > 20 else ""))


def vocab_from_merges(merges: list[Merge]) -> tuple[bytes, ...]:
    """Each token's bytes, rebuilt from the merges; refuses (with a sentence) merges that no training could write:
    an id out of range, two tokens under one id, one token under two ids, more bytes than a BPE may hold."""
    if len(merges) > MAX_STORED_MERGES:
        raise _refuse(f"it lists {len(merges):,} merges, more than the {MAX_STORED_MERGES:,} a BPE may hold.")
    lengths = [1] * BYTES
    for k, ((left, right), new_id) in enumerate(merges):  # sizes first: no bytes are built for a bomb
        if not (left < len(lengths) and right < len(lengths)):
            raise _refuse(f"merge {k + 1} joins id {max(left, right)}, which no earlier merge made.")
        if new_id == len(lengths):
            lengths.append(lengths[left] + lengths[right])
        elif new_id > len(lengths):
            raise _refuse(f"merge {k + 1} makes id {new_id}; the next new id is {len(lengths)}.")
    if sum(lengths) > MAX_VOCAB_BYTES:
        raise _refuse(f"its tokens hold {sum(lengths):,} bytes together, over the {MAX_VOCAB_BYTES:,} allowed.")
    vocab = [bytes([b]) for b in range(BYTES)]
    id_of = {token: i for i, token in enumerate(vocab)}
    for k, ((left, right), new_id) in enumerate(merges):
        token = vocab[left] + vocab[right]
        owner = id_of.get(token)
        if new_id == len(vocab) and owner is None:
            vocab.append(token)
            id_of[token] = new_id
        elif owner is not None and owner != new_id:
            raise _refuse(f"merge {k + 1} gives {_short(token)} the id {new_id}, but it already has the id {owner}; "
                          "each token has one id.")
        elif owner is None:
            raise _refuse(f"merge {k + 1} gives the id {new_id} to {_short(token)}, but that id is already "
                          f"{_short(vocab[new_id])}; each id stands for one token.")
    return tuple(vocab)


@dataclass(frozen=True)
class BPE:
    """A learned byte-level BPE: the contract both trainers fill."""

    merges: tuple[Merge, ...]  # in the order learned: (left id, right id) -> new id
    vocab: tuple[bytes, ...]  # each id's bytes; ids 0..255 are the byte values themselves
    split: str | None  # "gpt2", "gpt4" or None: the pattern that cut the text before counting pairs
    asked: int = 0  # the vocabulary size asked for (0: not known)
    learned_bytes: int = 0  # how much text the merges were learned from
    text_bytes: int = 0  # how long the text was

    @classmethod
    def from_merges(cls, merges: list[Merge], split: str | None, **facts: int) -> BPE:
        return cls(tuple(merges), vocab_from_merges(list(merges)), split_of(split), **facts)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def notes(self) -> list[str]:
        """What a person should know about how this BPE was learned: a short vocabulary, a text learned in part."""
        notes = []
        if self.asked > self.vocab_size:
            notes.append(f"The text filled {self.vocab_size:,} of the {self.asked:,} tokens asked for: after that no "
                         "pair of tokens occurs twice, so training stopped.")
        # cut before the pre-split text's bound: by the bound on long stretches (``learning_text``)
        if self.text_bytes > self.learned_bytes and self.split is not None and self.learned_bytes < MAX_LEARN_BYTES[True] - 4:
            notes.append(f"This text has long stretches without spaces (a script written without them, or data), "
                         "which the pre-split cannot cut into words and every merge reads again, so the merges were "
                         f"learned from its first {self.learned_bytes:,} of {self.text_bytes:,} bytes (the bound that "
                         "keeps training to seconds); the whole text is encoded with them.")
        elif self.text_bytes > self.learned_bytes:
            notes.append(f"The merges were learned from the first {self.learned_bytes:,} of its {self.text_bytes:,} "
                         "bytes (the bound that keeps training to seconds); the whole text is encoded with them.")
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split or "none", "merges": [[a, b, new_id] for (a, b), new_id in self.merges],
                "asked": self.asked, "learned_bytes": self.learned_bytes, "text_bytes": self.text_bytes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPE:
        """Read back what ``to_dict`` wrote, every value checked: a damaged file gets a sentence, never a traceback."""
        split = data.get("split")
        if split not in SPLIT_NAMES:
            raise _refuse(f"its pre-split pattern is {str(split)[:20]!r}, not one of {', '.join(SPLIT_NAMES)}.")
        merges = data.get("merges")
        if not isinstance(merges, list):
            raise _refuse("its merges are not a list.")
        if len(merges) > MAX_STORED_MERGES:
            raise _refuse(f"it lists {len(merges):,} merges, more than the {MAX_STORED_MERGES:,} a BPE may hold.")
        if not all(isinstance(m, list) and len(m) == 3 and all(_is_id(i) for i in m) for m in merges):
            raise _refuse("each merge must be three whole numbers from 0: [left id, right id, new id].")
        facts = {key: data.get(key, 0) for key in ("asked", "learned_bytes", "text_bytes")}
        if not all(_is_id(v) for v in facts.values()):
            raise _refuse("its sizes (asked, learned_bytes, text_bytes) must be whole numbers from 0.")
        return cls.from_merges([((a, b), new_id) for a, b, new_id in merges], split, **facts)


# --- training -----------------------------------------------------------------------------------------------------

IMPLEMENTATIONS = ("fast", "readable")


def text_head(text: str, limit: int) -> str:
    """The text's first ``limit`` UTF-8 bytes at most, cut before a character that would not fit whole."""
    raw = utf8(text)
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", errors="ignore")


# A chunk this long (in characters) is a stretch without spaces: a script written without them (Chinese, Japanese,
# Thai), or data. The pre-split cannot shorten it, so every merge rescans it as if the text were not pre-split:
# such chunks together get the unsplit text's bound (`python -m bench.bpe_no_spaces`: 180 kB to 1,024 tokens, 38 s).
LONG_CHUNK = 64
_LONG_STRETCH = regex.compile(rf"\S{{{LONG_CHUNK}}}|\s{{{LONG_CHUNK}}}")  # a chunk over LONG_CHUNK holds one


def learning_text(text: str, split: str | None) -> str:
    """The part of the text the merges are learned from: all of it, or the first MAX_LEARN_BYTES, cut at a
    character; and where long stretches without spaces hold more than MAX_LEARN_BYTES[False] bytes together, the
    text up to where they reach that bound (time and memory are known before training starts)."""
    head = text_head(text, MAX_LEARN_BYTES[split is not None])
    if split is None or not _LONG_STRETCH.search(head):
        return head
    left, position = MAX_LEARN_BYTES[False], 0
    for chunk in pre_split(head, split):
        if len(chunk) > LONG_CHUNK:
            size = len(utf8(chunk))
            if size >= left:
                return head[:position] + text_head(chunk, left)
            left -= size
        position += len(chunk)
    return head


def train_bpe(text: str, vocab_size: int = DEFAULT_BPE_VOCAB, split: str | None = DEFAULT_SPLIT,
              implementation: str = "fast") -> BPE:
    """Learn a BPE of at most ``vocab_size`` tokens from ``text``; both implementations give the same result."""
    check_vocab_size(vocab_size)
    split = split_of(split)
    if implementation not in IMPLEMENTATIONS:
        raise BabyGPTError(f"Unknown BPE implementation {implementation!r}; choose one of {', '.join(IMPLEMENTATIONS)}.")
    if not text:
        raise BabyGPTError("The text is empty: there are no pairs to learn merges from.")
    learned = learning_text(text, split)
    words = word_counts(learned, split)
    learn = bpe_fast.learn_merges if implementation == "fast" else learn_merges_readable
    return BPE.from_merges(learn(words, vocab_size), split, asked=vocab_size, learned_bytes=len(utf8(learned)),
                           text_bytes=len(utf8(text)))


# The readable trainer rescans every distinct word once per merge: bench/bpe_train.py measured 0.9 to 3 million
# bytes rescanned a second on two busy cores (10 kB of Tiny Shakespeare to 512 tokens in 0.5 to 0.9 s), so this
# bound keeps it to a second or two: about 10 kB of text to 512 tokens.
READABLE_WORK_LIMIT = 1_500_000


def readable_work(text: str, vocab_size: int, split: str | None = DEFAULT_SPLIT) -> int:
    """How much the readable trainer would do at most: the distinct words' bytes, rescanned once per merge."""
    words = word_counts(learning_text(text, split_of(split)), split_of(split))
    return sum(len(word) for word in words) * max(0, vocab_size - BYTES)


def readable_fits(text: str, vocab_size: int, split: str | None = DEFAULT_SPLIT) -> bool:
    """Whether the lesson's own loop learns this BPE while a person waits (else the fast trainer, same merges)."""
    return readable_work(text, vocab_size, split) <= READABLE_WORK_LIMIT
