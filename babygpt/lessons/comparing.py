"""Runs side by side: the unit their losses are read in.

A loss in nats per token measures a run against its own tokens: a character for ``char``, a word piece for GPT-2's
BPE or a BPE learned from the text. Two runs whose tokenizers differ predict different things, so their losses in
nats per token do not compare; in bits per byte of their validation text (``ValidationText``) they do. The rule, in
one place for every chart that shows several runs: bits per byte when the runs shown cut text differently (or when a
person asks for it), nats per token when they all cut it alike, as for one run alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from babygpt.lessons.baselines import ValidationText, bits_per_byte_curve

NATS_AXIS, BITS_PER_BYTE_AXIS = "val loss (nats per token)", "val bits per byte"


def same_tokenizer(configs: Sequence[dict[str, Any]]) -> bool:
    """Whether every run cuts text the same way: the same tokenizer, stored whole with each run (two BPEs with other
    merges, or two character vocabularies of other texts, are other tokenizers)."""
    tokenizers = [config.get("tokenizer") for config in configs]
    return all(t == tokenizers[0] for t in tokenizers[1:])


@dataclass(frozen=True)
class LossScale:
    """How a chart of several runs reads their losses, and why."""

    bits_per_byte: bool
    forced: bool = False  # the runs' tokenizers differ: nats per token would compare a character with a word

    @property
    def axis(self) -> str:
        return BITS_PER_BYTE_AXIS if self.bits_per_byte else NATS_AXIS

    def curve(self, config: dict[str, Any], curve: list[tuple[int, float]]) -> list[tuple[int, float]] | None:
        """A run's validation curve (step, nats per token) on this scale; None when the run cannot be shown on it
        (a run recorded before runs kept their validation text's size has no bits per byte)."""
        if not self.bits_per_byte:
            return curve
        validation = ValidationText.from_config(config)
        return bits_per_byte_curve(curve, validation) if validation else None


def loss_scale(configs: Sequence[dict[str, Any]], asked: bool = False) -> LossScale:
    """Bits per byte when the runs' tokenizers differ (always) or when asked; nats per token otherwise."""
    forced = not same_tokenizer(configs)
    return LossScale(forced or asked, forced)


FORCED_SENTENCE = ("These runs cut text with different tokenizers, so their losses are compared in bits per byte: a "
                   "loss per token would compare a character with a word.")
