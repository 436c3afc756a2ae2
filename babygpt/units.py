"""Durations and counts, written one way for the terminal and the app alike."""

from __future__ import annotations


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
