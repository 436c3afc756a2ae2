"""Durations, counts and bits per byte, written one way for the terminal and the app alike."""

from __future__ import annotations

import math

from babygpt.errors import BabyGPTError


def format_duration(seconds: float | None) -> str:
    """``–`` when unknown, ``M:SS`` under an hour, ``HhMMm`` beyond."""
    if seconds is None or seconds != seconds:  # unknown, or NaN
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_count(n: int) -> str:
    """1234 → '1,234'; 1_600_000_000 → '1.6 B': a parameter count a person can read."""
    for size, unit in ((1e9, "B"), (1e6, "M")):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:,}"


def bits_per_byte(total_nats: float, text_bytes: int) -> float:
    """The one definition of bits per byte: the nats a model pays for a text, in bits, per UTF-8 byte of the text.

    Loss per token depends on what a token is (a character, a word piece): two runs with different tokenizers are
    compared in bits per byte of the same validation text, which does not."""
    if text_bytes <= 0:
        raise BabyGPTError("Bits per byte need a text of at least one byte.")
    return total_nats / (math.log(2) * text_bytes)


def bits_per_byte_of(nats_per_token: float, tokens: int, text_bytes: int) -> float:
    """Bits per byte from a mean loss (nats per token) over ``tokens`` tokens that stand for ``text_bytes`` bytes."""
    return bits_per_byte(nats_per_token * tokens, text_bytes)
