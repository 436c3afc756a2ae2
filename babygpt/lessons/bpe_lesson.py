"""Watch a BPE learn: what the Data page shows of a BPE learned from the text, as numbers and figures.

The merges in the order learned, the text re-cut after any number of them, how many bytes a token holds as the
vocabulary grows (beside ``char`` and GPT-2 on the same text), the longest tokens, and where GPT-2's tokenizer cuts
a text into many small pieces. Pure library code (no Streamlit), so every number a teacher projects is tested.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.shipped import data_file
from babygpt.text.bpe import (
    BPE,
    BYTES,
    MAX_BPE_VOCAB,
    BPESettings,
    learn_merges_readable,
    readable_fits,
    text_head,
    train_bpe,
    utf8,
    word_counts,
)
from babygpt.text.bpe_fast import FastEncoder
from babygpt.text.tokenizers import gpt2_encoding

# --- learning it, and saying how -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LearnedBPE:
    """A BPE learned for the page, with which trainer learned it and how long that took."""

    bpe: BPE
    implementation: str  # "readable" (the lesson's loop, shown on the page) or "fast" (Hugging Face tokenizers)
    seconds: float

    def trained_by(self) -> str:
        """Which implementation learned this vocabulary, in a sentence."""
        size = f"{self.bpe.vocab_size:,} tokens ({len(self.bpe.merges):,} merges)"
        if self.implementation == "readable":
            return (f"The readable trainer below learned these {size} in {self.seconds:.1f} s: this text is small "
                    "enough for the lesson's own loop.")
        return (f"The fast trainer (Hugging Face `tokenizers`, in Rust) learned these {size} in {self.seconds:.1f} s. "
                "It learns exactly the merges the readable trainer below would, which on this text and vocabulary "
                "would take too long to wait for.")


def learn_bpe(text: str, settings: BPESettings, limit: int = MAX_BPE_VOCAB) -> LearnedBPE:
    """Learn the BPE ``settings`` ask for (refused in a sentence above ``limit``, the server's bound): with the
    lesson's readable loop where it finishes while a person waits, else with the fast trainer (same merges)."""
    settings.validate(limit)
    implementation = "readable" if readable_fits(text, settings.vocab_size, settings.split) else "fast"
    start = time.perf_counter()
    bpe = train_bpe(text, settings.vocab_size, settings.split, implementation)
    return LearnedBPE(bpe, implementation, time.perf_counter() - start)


def readable_trainer_source() -> str:
    """The lesson's trainer as it is in the library: what the page shows is the code that runs."""
    return inspect.getsource(learn_merges_readable)


# --- the merges ------------------------------------------------------------------------------------------------------

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "\\t", "\r": "\\r"}


def shown(token: bytes) -> str:
    """A token's bytes as a person can read them: spaces as ␣ and line breaks as ↵ (so "␣the" is not "the"),
    other control characters and bytes that are part of a character as Python writes them (``\\x07``, ``\\xe6``)."""
    return "".join(_visible(c) for c in token.decode("utf-8", errors="backslashreplace"))


def _visible(c: str) -> str:
    if c in _VISIBLE:
        return _VISIBLE[c]
    if c.isprintable():
        return c
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


@dataclass(frozen=True)
class MergeRow:
    rank: int  # 1: the first merge learned
    left: bytes
    right: bytes
    token_id: int

    @property
    def token(self) -> bytes:
        return self.left + self.right

    def sentence(self) -> str:
        """'"t" + "h" → "th"', with spaces and line breaks visible."""
        return f'"{shown(self.left)}" + "{shown(self.right)}" → "{shown(self.token)}"'


def merge_rows(bpe: BPE) -> list[MergeRow]:
    """Every merge in the order it was learned, as the bytes it joined."""
    return [MergeRow(rank, bpe.vocab[left], bpe.vocab[right], new_id)
            for rank, ((left, right), new_id) in enumerate(bpe.merges, 1)]


def longest_tokens(bpe: BPE, n: int = 24) -> list[tuple[int, bytes]]:
    """The ``n`` longest tokens learned (in bytes; the first learned first among equals), as (id, bytes)."""
    learned = sorted(range(BYTES, bpe.vocab_size), key=lambda i: (-len(bpe.vocab[i]), i))
    return [(i, bpe.vocab[i]) for i in learned[:n]]


# --- compression as the vocabulary grows ---------------------------------------------------------------------------

COMPRESSION_BYTES = 1_000_000  # the text measured: its first megabyte (time and memory known before it starts)
GPT2_VOCAB = 50_257
CURVE_POINTS = 16  # each point encodes the text's distinct words once: about 0.1 s for Shakespeare


@dataclass(frozen=True)
class Compression:
    """Tokens the same text makes with each tokenizer: the learned BPE after k merges, ``char`` and GPT-2."""

    measured_bytes: int  # the bytes measured: the text's first COMPRESSION_BYTES at most
    text_bytes: int  # the whole text's
    bpe: tuple[tuple[int, int, int], ...]  # (merges applied, vocabulary size then, tokens)
    char_vocab: int  # distinct characters of the text measured
    char_tokens: int
    gpt2_tokens: int
    gpt2_used: int  # how many of GPT-2's tokens the text measured uses

    def bytes_per_token(self, tokens: int) -> float:
        return self.measured_bytes / max(1, tokens)

    def note(self) -> str | None:
        if self.text_bytes > self.measured_bytes:
            return (f"Measured on the text's first {self.measured_bytes:,} of {self.text_bytes:,} bytes, so the page "
                    "answers in seconds.")
        return None


def vocab_after(bpe: BPE, k: int) -> int:
    """The vocabulary's size after the first ``k`` merges (a merge that rebuilt an existing token adds none)."""
    return max([BYTES - 1, *(new_id for _, new_id in bpe.merges[:k])]) + 1


def measured_merges(n_merges: int, points: int = CURVE_POINTS) -> list[int]:
    """Which merge counts to measure: from none to all, spaced evenly on the figure's logarithmic axis."""
    top = BYTES + n_merges
    return sorted({min(n_merges, round(BYTES * (top / BYTES) ** (i / (points - 1))) - BYTES)
                   for i in range(points)} | {0, n_merges})


def compression(bpe: BPE, text: str, points: int = CURVE_POINTS) -> Compression:
    """How many tokens the text makes with the first k merges for several k, with ``char`` and with GPT-2."""
    if not text:
        raise BabyGPTError("The text is empty: there is nothing to cut into tokens.")
    sample = text_head(text, COMPRESSION_BYTES)
    words = word_counts(sample, bpe.split)
    curve = tuple((k, vocab_after(bpe, k), FastEncoder(bpe.vocab, bpe.merges[:k]).count(words))
                  for k in measured_merges(len(bpe.merges), points))
    gpt2 = gpt2_encoding().encode_ordinary(sample)
    return Compression(len(utf8(sample)), len(utf8(text)), curve, len(set(sample)), len(sample), len(gpt2),
                       len(set(gpt2)))


# --- where GPT-2 cuts a text badly ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cut:
    """One piece of text cut by GPT-2's tokenizer and by the learned BPE."""

    label: str  # where it comes from: "line 1,204", or a sample's language, script and source
    text: str
    gpt2_ids: tuple[int, ...]  # GPT-2's tokens (its own ids, of 50,257)
    gpt2: tuple[bytes, ...]  # the same tokens as bytes (a token may hold part of a character)
    bpe_tokens: int

    @property
    def n_bytes(self) -> int:
        return len(utf8(self.text))

    @property
    def gpt2_bytes_per_token(self) -> float:
        return self.n_bytes / max(1, len(self.gpt2))

    @property
    def bpe_bytes_per_token(self) -> float:
        return self.n_bytes / max(1, self.bpe_tokens)


def gpt2_cut(text: str, label: str, bpe: BPE) -> Cut:
    """``text`` cut by GPT-2's tokenizer, with the learned BPE's count of tokens for it."""
    encoding = gpt2_encoding()
    ids = tuple(encoding.encode_ordinary(text))
    return Cut(label, text, ids, tuple(encoding.decode_single_token_bytes(i) for i in ids), _bpe_count(bpe, text))


def _bpe_count(bpe: BPE, text: str) -> int:
    return FastEncoder(bpe.vocab, bpe.merges).count(word_counts(text, bpe.split))


MIN_LINE_BYTES = 24  # a shorter line says little: three bytes in three tokens is no pattern
MAX_LINE_BYTES = 1_000  # a longer "line" (a text without line breaks) is no line to show
MAX_LINES = 5_000  # the lines looked at: the text's first ones, so the page answers in a second


def worst_lines_for_gpt2(text: str, bpe: BPE, n: int = 5) -> list[Cut]:
    """The lines of the text GPT-2 cuts into the most tokens per byte (its first MAX_LINES lines, each line once,
    from MIN_LINE_BYTES to MAX_LINE_BYTES long), worst first, with the learned BPE's count for the same line."""
    first: dict[str, int] = {}  # each line, with the number of its first occurrence
    for number, line in enumerate(text.splitlines()[:MAX_LINES], 1):
        first.setdefault(line, number)
    lines = [line for line in first if MIN_LINE_BYTES <= len(utf8(line)) <= MAX_LINE_BYTES]
    encoding = gpt2_encoding()
    tokens = dict(zip(lines, map(len, encoding.encode_ordinary_batch(lines)), strict=True))
    worst = sorted(lines, key=lambda line: (-tokens[line] / len(utf8(line)), first[line]))[:n]
    return [gpt2_cut(line, f"line {first[line]:,}", bpe) for line in worst]


SAMPLES_FILE = ("samples", "scripts.json")
SAMPLES_SHA256 = "6b6586e669d273a030e4927215300f82ace3eae8e02d0964f7d7e3cfcffaa7bc"


@dataclass(frozen=True)
class Sample:
    language: str
    script: str
    source: str
    text: str

    @property
    def label(self) -> str:
        return f"{self.language} ({self.script}) · {self.source}"


def script_samples() -> list[Sample]:
    """A line in each of several languages and scripts, every one in the public domain (data/README.md), read
    from the shipped file and checked against its sha256."""
    raw = data_file(*SAMPLES_FILE).read_bytes()
    if hashlib.sha256(raw).hexdigest() != SAMPLES_SHA256:
        raise BabyGPTError("The shipped samples of other scripts are damaged; restore data/samples/scripts.json "
                           "from the repository.")
    return [Sample(**entry) for entry in json.loads(raw)]


def sample_cuts(bpe: BPE) -> list[Cut]:
    """Each shipped sample cut by GPT-2 and by the learned BPE."""
    return [gpt2_cut(s.text, s.label, bpe) for s in script_samples()]
