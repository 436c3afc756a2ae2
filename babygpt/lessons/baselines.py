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
``Baselines`` and ``ValidationText`` are facts about the text, kept in ``babygpt.text.measured`` so the store reads
them without the lessons; here is how the levels are computed and what they teach.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from babygpt.errors import BabyGPTError
from babygpt.text.measured import Baselines, ValidationText  # what a run keeps of its text: the store reads it too
from babygpt.units import bits_per_char

__all__ = ["BITS_PER_BYTE_SENTENCE", "Baselines", "ValidationText", "bits_per_byte_curve", "bits_per_char",
           "compute_baselines", "step_passed"]


BITS_PER_BYTE_SENTENCE = ("Bits per byte: the nats a model pays for its validation text, in bits, divided by the "
                          "text's UTF-8 bytes — the same text costs the same whatever its tokenizer cut it into, so "
                          "runs with different tokenizers compare (lower is better; 8 is guessing among 256 bytes).")


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


def step_passed(evals: list[tuple[int, float]], level: float) -> int | None:
    """The first evaluated step whose validation loss is below ``level`` (None: not yet)."""
    return next((step for step, loss in evals if loss < level), None)
