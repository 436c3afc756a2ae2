"""What a run measures of its text once, when it is created, and keeps in its config.json: the validation text's
size in tokens and UTF-8 bytes (``ValidationText``, what turns a loss in nats per token into bits per byte) and the
levels of the count models on it (``Baselines``, computed by ``babygpt.lessons.baselines.compute_baselines``).

These are facts about a text, read back by the store (an archive, a Hugging Face card, a run's row) as much as by
the lessons: kept here, under both, so neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from babygpt.text.tokenizers import Tokenizer, text_bytes
from babygpt.units import bits_per_byte_of

UNIFORM_LEVEL = "uniform guess (ln V)"


@dataclass(frozen=True)
class Baselines:
    """The count models' losses on a run's validation text, in nats per token, and its characters per token."""

    uniform: float  # ln V
    unigram: float
    bigram: float
    chars_per_token: float  # of the validation split

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> Baselines | None:
        """A run's baselines from its config.json (None for runs recorded before they existed, or damaged)."""
        data = (config.get("data") or {}).get("baselines") if isinstance(config, dict) else None
        try:
            values = {k: float(data[k]) for k in ("uniform", "unigram", "bigram", "chars_per_token")}
        except (TypeError, KeyError, ValueError):
            return None
        return cls(**values) if all(math.isfinite(v) and v > 0 for v in values.values()) else None

    def levels(self) -> dict[str, float]:
        return {UNIFORM_LEVEL: self.uniform, "unigram counts": self.unigram, "bigram counts": self.bigram}

    def worse_than_guessing(self) -> list[str]:
        """The count models that score no better than uniform guessing on this text (too little text per symbol
        to count): shown as such, never as a level the model passed."""
        return [name for name, value in self.levels().items() if name != UNIFORM_LEVEL and value >= self.uniform]


@dataclass(frozen=True)
class ValidationText:
    """How long a run's validation text is in tokens and in UTF-8 bytes: what turns its loss in nats per token
    into bits per byte. Stored with the run (``data.validation`` of its config.json)."""

    tokens: int
    bytes: int

    @classmethod
    def measure(cls, tokenizer: Tokenizer, val_ids) -> ValidationText:
        """Counted token by token (``text_bytes``), so a byte-level token holding half a character counts its bytes."""
        return cls(len(val_ids), text_bytes(tokenizer, val_ids))

    def bits_per_byte(self, nats_per_token: float) -> float:
        return bits_per_byte_of(nats_per_token, self.tokens, self.bytes)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens

    def to_dict(self) -> dict[str, int]:
        return {"tokens": self.tokens, "bytes": self.bytes}

    @classmethod
    def from_config(cls, config: dict) -> ValidationText | None:
        """A run's validation text from its config.json (None for runs recorded before runs kept it, imported
        models, which have none, or a damaged value)."""
        data = (config.get("data") or {}).get("validation") if isinstance(config, dict) else None
        if not isinstance(data, dict):
            return None
        values = data.get("tokens"), data.get("bytes")
        if not all(type(v) is int and v > 0 for v in values):
            return None
        return cls(*values)
