"""Matching what a person reads by its figures and key phrases, not its every word: a test keeps failing on a wrong
number, a missing reason or a reason in the wrong place, and stops failing when a sentence is merely rephrased."""

from __future__ import annotations


def says(text: str, *parts: str) -> str:
    """``text`` holds each of ``parts``, in this order (the figures and phrases that carry its meaning)."""
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} missing (or out of order) in {text!r}"
        at = found + len(part)
    return text
