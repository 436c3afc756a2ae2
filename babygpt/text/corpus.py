"""Corpora: load and validate text, describe it, split it, and draw training batches.

Everything that can go wrong with a user's file is caught here with a message that says
what is wrong and where, so the CLI and the app never show a decoding traceback.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from babygpt.errors import BabyGPTError
from babygpt.units import format_count

DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Corpus:
    """A validated text and where it came from; the sha256 fingerprints it for resume and runs."""

    name: str
    text: str
    sha256: str
    source: str  # a dataset name, a file path, or "upload"

    @classmethod
    def from_text(cls, name: str, text: str, source: str = "text") -> Corpus:
        if not text:
            raise BabyGPTError(f"{name} is empty: there is nothing to learn from.")
        return cls(name, text, hashlib.sha256(text.encode("utf-8")).hexdigest(), source)


def decode_text(raw: bytes, name: str = "the file", max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> str:
    """Turn uploaded bytes into text, or raise a BabyGPTError that says exactly what is wrong."""
    if not raw:
        raise BabyGPTError(f"{name} is empty (0 bytes): choose a file that contains text.")
    if len(raw) > max_bytes:
        raise BabyGPTError(
            f"{name} is {len(raw) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; use a smaller excerpt."
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BabyGPTError(f"{name} starts with a UTF-16 byte-order mark but is not valid UTF-16: {exc.reason}.") from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise BabyGPTError(
            f"{name} looks binary (a NUL byte at offset {nul}); it is probably not a text file. "
            "Upload plain UTF-8 text (.txt)."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BabyGPTError(
            f"{name} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
            f"(line {line}, column {column}) {exc.reason}. Save the file as UTF-8 and try again."
        ) from exc


def corpus_from_bytes(raw: bytes, name: str, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Corpus:
    text = decode_text(raw, name, max_bytes)
    if len(set(text)) < 2:
        raise BabyGPTError(
            f"{name} contains only one distinct character ({text[:1]!r}); there is nothing to predict."
        )
    return Corpus.from_text(name, text, source="upload")


def corpus_from_path(path: str | Path, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Corpus:
    path = Path(path)
    if not path.is_file():
        raise BabyGPTError(f"No such file: {path}. Give a text file path or a dataset name.")
    corpus = corpus_from_bytes(path.read_bytes(), path.name, max_bytes)
    return Corpus(corpus.name, corpus.text, corpus.sha256, str(path.resolve()))


def combine(corpora: list[Corpus]) -> Corpus:
    """Join several uploads into one corpus, separated by blank lines, in the order given."""
    if not corpora:
        raise BabyGPTError("No files were given.")
    if len(corpora) == 1:
        return corpora[0]
    text = "\n\n".join(c.text for c in corpora)
    return Corpus.from_text(" + ".join(c.name for c in corpora), text, source="upload")


@dataclass(frozen=True)
class UploadResult:
    """What a set of uploaded files gave: the corpus of the good ones (None if none was good) and every refusal."""

    corpus: Corpus | None
    rejected: list[tuple[str, str]]  # (file name, why it was not used)


def corpus_from_uploads(files: list[tuple[str, bytes]], max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> UploadResult:
    """Use every file that is good text; one bad file does not throw the others away."""
    good, rejected = [], []
    for name, raw in files:
        try:
            good.append(corpus_from_bytes(raw, name, max_bytes))
        except BabyGPTError as exc:
            rejected.append((name, str(exc)))
    return UploadResult(combine(good) if good else None, rejected)


# --- statistics ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TextStats:
    n_chars: int
    n_lines: int
    n_distinct: int
    top_chars: list[tuple[str, int]]
    char_counts: dict[str, int]
    warnings: list[str] = field(default_factory=list)


# U+2423 OPEN BOX: in DejaVu and Liberation, the fonts of Debian's Chromium (U+2420 "␠" draws as an empty box there)
VISIBLE_SPACE = "\u2423"


def describe_char(ch: str) -> str:
    """A printable label for a character, so a newline or a control byte shows as a name."""
    names = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": VISIBLE_SPACE}
    if ch in names:
        return names[ch]
    if unicodedata.category(ch).startswith("C"):
        return f"U+{ord(ch):04X}"
    return ch


def describe_token(token: str) -> str:
    """A token's text (``Tokenizer.token_text``) as a label: one character by its visible name, a longer token as
    Python writes it without quotes (a line break inside it as ``\\n``), and the bytes of part of a character as the
    token's text already shows them (``\\xe6``, written once, not doubled)."""
    if len(token) == 1:
        return describe_char(token)
    return repr(token)[1:-1].replace("\\\\", "\\")


def text_stats(text: str, top: int = 20) -> TextStats:
    counts = Counter(text)
    warnings: list[str] = []
    controls = sorted(c for c in counts if unicodedata.category(c) == "Cc" and c not in "\n\t\r")
    if controls:
        listed = ", ".join(f"{describe_char(c)} ×{counts[c]}" for c in controls[:8])
        warnings.append(f"Control characters found ({listed}); they are learned like any other character.")
    crlf = text.count("\r\n")
    lone_lf = text.count("\n") - crlf
    if crlf and lone_lf:
        warnings.append(f"Mixed line endings: {crlf} Windows (\\r\\n) and {lone_lf} Unix (\\n) lines.")
    elif crlf:
        warnings.append("Windows line endings (\\r\\n): the model will learn \\r as a character.")
    odd = sorted(c for c in counts if unicodedata.category(c) in ("Co", "Cs", "Cn") or c == "\ufffd")
    if odd:
        warnings.append(f"Unusual characters found ({', '.join(describe_char(c) for c in odd[:8])}), "
                        "often a sign of a broken conversion.")
    if len(counts) > 1000:
        n = len(counts)
        warnings.append(f"{n:,} distinct characters: with the char tokenizer the bigram table alone would be "
                        f"{format_count(n * n)} parameters ({n:,} × {n:,}), and every model's embedding and output "
                        "layers grow with it. Consider the gpt2 tokenizer or an attention rung.")
    return TextStats(
        n_chars=len(text),
        n_lines=text.count("\n") + (0 if text.endswith("\n") else 1),
        n_distinct=len(counts),
        top_chars=counts.most_common(top),
        char_counts=dict(counts),
        warnings=warnings,
    )


# --- split and batches ----------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    train: torch.Tensor
    val: torch.Tensor


def split_ids(ids: torch.Tensor, val_fraction: float, block_size: int) -> Split:
    """Cut the token ids into a training head and a validation tail, checking each can fill a block."""
    if not 0 < val_fraction < 1:
        raise BabyGPTError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    n_val = int(len(ids) * val_fraction)
    train, val = ids[: len(ids) - n_val], ids[len(ids) - n_val:]
    needed = block_size + 1
    for part, tensor in (("training", train), ("validation", val)):
        if len(tensor) < needed:
            raise BabyGPTError(
                f"The text is too short: its {part} part has {len(tensor)} tokens but one block needs "
                f"{needed} (block_size {block_size} + 1). Use a longer text, a smaller block_size, "
                "or a different val_fraction."
            )
    return Split(train, val)


def get_batch(
    data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``block_size`` tokens and the same windows shifted by one (the targets)."""
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block_size + 1)
    windows = data[offsets]
    return to_device(windows[:, :-1], device), to_device(windows[:, 1:], device)


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """On a GPU, copied from pinned memory without blocking, so the copy overlaps the work already queued."""
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
