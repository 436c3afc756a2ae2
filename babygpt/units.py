"""Durations, counts, bits per byte and per character, written one way for the terminal and the app alike."""

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
    """1234 → '1,234'; 1_600_000_000 → '1.6 B'; 12_352_000_000_000 → '12.4 T': a parameter count a person can read,
    however large a crafted config makes it."""
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if n >= size:
            value = n / size
            return f"{value:,.0f} {unit}" if value >= 1000 else f"{value:.1f} {unit}"
    return f"{n:,}"


def format_bytes(n: float) -> str:
    """Bytes in the unit a person reads a size in: '512 bytes', '64 KB', '1.5 MB', '6.4 GB', '1,455 TB'."""
    if n < 2**10:
        return f"{n:.0f} bytes"
    for power, unit in ((40, "TB"), (30, "GB"), (20, "MB")):
        if n >= 2**power:
            value = n / 2**power
            return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    return f"{n / 2**10:.0f} KB"


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


def bits_per_char(nats_per_token: float, chars_per_token: float) -> float:
    """Nats per token → bits per character (the older scale, kept for runs recorded before bits per byte)."""
    return nats_per_token / math.log(2) / chars_per_token
