"""The levels a model should beat, and loss in bits per character.

A loss of 1.9 means little alone. Three simple predictors give it a scale, each scored like the model, as the
cross-entropy of the validation split in nats per token: guessing uniformly (ln V), the unigram model (each
token's frequency in the training split) and the bigram count model (how often each token followed the previous
one in the training split). Counts are add-one smoothed, so an unseen token or pair costs a finite amount.
Bits per character divide by ln 2 and by the characters per token, which makes the char and GPT-2 tokenizers
comparable: a GPT-2 token covers several characters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Baselines:
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
        return {"uniform guess (ln V)": self.uniform, "unigram counts": self.unigram, "bigram counts": self.bigram}


def unigram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[val].mean())


def bigram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """Sparse counts (pairs coded as a·V + b), so a 50,000-token vocabulary costs no V×V table."""
    pairs, pair_counts = np.unique(train[:-1].astype(np.int64) * vocab_size + train[1:], return_counts=True)
    firsts = np.bincount(train[:-1], minlength=vocab_size).astype(np.float64)
    wanted = val[:-1].astype(np.int64) * vocab_size + val[1:]
    where = np.searchsorted(pairs, wanted)
    found = (where < len(pairs)) & (pairs[np.minimum(where, len(pairs) - 1)] == wanted)
    c = np.where(found, pair_counts[np.minimum(where, len(pairs) - 1)], 0).astype(np.float64)
    p = (c + 1.0) / (firsts[val[:-1]] + vocab_size)
    return float(-np.log(p).mean())


def compute_baselines(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, val_chars: int) -> Baselines:
    train, val = train_ids.numpy(), val_ids.numpy()
    return Baselines(math.log(vocab_size), unigram_cross_entropy(train, val, vocab_size),
                     bigram_cross_entropy(train, val, vocab_size), val_chars / max(1, len(val)))


def bits_per_char(loss: float, chars_per_token: float) -> float:
    """Nats per token → bits per character."""
    return loss / math.log(2) / chars_per_token


def step_passed(evals: list[tuple[int, float]], level: float) -> int | None:
    """The first evaluated step whose validation loss is below ``level`` (None: not yet)."""
    return next((step for step, loss in evals if loss < level), None)
