"""The levels a model should beat, loss in bits per character, and the validation text's size that turns a loss
into bits per byte (``ValidationText``).

A loss of 1.9 means little alone. Three simple predictors give it a scale, each scored like the model, as the
cross-entropy of the validation split in nats per token: guessing uniformly (ln V), the unigram model (each
token's frequency in the training split) and the bigram count model (how often each token followed the previous
one in the training split). Counts are smoothed with pseudo-counts chosen by leave-one-out on the training split,
so an unseen token or pair costs a finite amount and thin counts are not trusted. No smoothing fixed in advance can
promise to beat uniform guessing on every validation text; where a count model does not, ``Baselines.worse_than_
guessing`` names it and the chart says why instead of calling it a level to beat.
Bits per character divide by ln 2 and by the characters per token, which makes the char and GPT-2 tokenizers
comparable: a GPT-2 token covers several characters. Bits per byte (``babygpt.units.bits_per_byte``) do the same for
every tokenizer, a byte-level BPE whose token may hold half a character included: each run keeps how many tokens
its validation text is and how many UTF-8 bytes they stand for, counted once when the run is created.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from babygpt.errors import BabyGPTError
from babygpt.text.tokenizers import Tokenizer, text_bytes
from babygpt.units import bits_per_byte_of


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

    def worse_than_guessing(self) -> list[str]:
        """The count models that score no better than uniform guessing on this text (too little text per symbol
        to count): shown as such, never as a level the model passed."""
        return [name for name, value in self.levels().items() if name != "uniform guess (ln V)" and value >= self.uniform]


BITS_PER_BYTE_SENTENCE = ("Bits per byte: the nats a model pays for its validation text, in bits, divided by the "
                          "text's UTF-8 bytes — the same text costs the same whatever its tokenizer cut it into, so "
                          "runs with different tokenizers compare (lower is better; 8 is guessing among 256 bytes).")


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


def bits_per_byte_curve(curve: list[tuple[int, float]], validation: ValidationText | None) -> list[tuple[int, float]]:
    """A validation curve (step, nats per token) in bits per byte; refused when the run does not know its text."""
    if validation is None:
        raise BabyGPTError("This run does not know the size of its validation text (it was recorded before runs "
                           "kept it, or imported), so its loss has no bits per byte.")
    return [(step, validation.bits_per_byte(loss)) for step, loss in curve]


PRIOR_WEIGHTS = np.geomspace(1e-3, 1e4, 57)  # the pseudo-counts leave-one-out chooses among


def _best_prior(log_likelihood) -> float:
    """The pseudo-count whose leave-one-out log-likelihood on the *training* split is highest: chosen without
    looking at the validation text, and large (close to uniform guessing) when the counts are too thin to trust."""
    return float(max(PRIOR_WEIGHTS, key=log_likelihood))


def unigram_probabilities(train: np.ndarray, vocab_size: int) -> np.ndarray:
    """Token frequencies with a pseudo-count β per token (add-β), β chosen by leave-one-out on the training split.

    Add-one (β = 1) scored worse than uniform guessing on a short text of 5,000 distinct symbols: most symbols
    seen once, so one pseudo-count is far too little. Leave-one-out picks a β that trusts thin counts less.
    """
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64)
    n, seen = counts.sum(), counts[counts > 0]

    def loo(beta: float) -> float:  # each training token predicted from the counts of all the others
        return float((seen * np.log((seen - 1 + beta) / (n - 1 + beta * vocab_size))).sum())

    beta = _best_prior(loo)
    return (counts + beta) / (n + beta * vocab_size)


def unigram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    return float(-np.log(unigram_probabilities(train, vocab_size)[val]).mean())


def bigram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """How often each token followed the previous one, smoothed towards the token's overall frequency:
    p(b | a) = (c(a b) + β·p(b)) / (c(a) + β), β chosen by leave-one-out on the training split.

    Sparse counts (pairs coded as a·V + b), so a 50,000-token vocabulary costs no V×V table.
    """
    unigram = unigram_probabilities(train, vocab_size)
    codes = train[:-1].astype(np.int64) * vocab_size + train[1:]
    pairs, pair_counts = np.unique(codes, return_counts=True)
    firsts = np.bincount(train[:-1], minlength=vocab_size).astype(np.float64)
    pair_first, pair_second = pairs // vocab_size, pairs % vocab_size
    pair_counts = pair_counts.astype(np.float64)

    def loo(beta: float) -> float:
        p = (pair_counts - 1 + beta * unigram[pair_second]) / (firsts[pair_first] - 1 + beta)
        return float((pair_counts * np.log(p)).sum())

    beta = _best_prior(loo)
    wanted = val[:-1].astype(np.int64) * vocab_size + val[1:]
    where = np.minimum(np.searchsorted(pairs, wanted), len(pairs) - 1)
    c = np.where(pairs[where] == wanted, pair_counts[where], 0.0)
    p = (c + beta * unigram[val[1:]]) / (firsts[val[:-1]] + beta)
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
