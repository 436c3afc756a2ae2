"""Numbers behind the lessons: q·k scaling statistics, embeddings, the first step of training (the race: race.py).

Pure library code (no Streamlit) so every figure a teacher projects can be checked in a test.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch

from babygpt.interpret.attention import attention_for_prompt, mean_top_weight, random_qk_scores, softmax_row, visible_cells
from babygpt.model.gpt import LanguageModel, build_model
from babygpt.text.tokenizers import Tokenizer
from babygpt.training.sample import Candidate, next_token_distribution

# --- why scale the dot product ----------------------------------------------------------------

@dataclass(frozen=True)
class ScalingDemo:
    head_size: int
    raw: np.ndarray
    scaled: np.ndarray
    raw_row_softmax: np.ndarray
    scaled_row_softmax: np.ndarray
    raw_mean_max_weight: float  # the largest softmax weight of a row of scores, averaged over many rows
    scaled_mean_max_weight: float

    @property
    def raw_variance(self) -> float:
        return float(self.raw.var())

    @property
    def scaled_variance(self) -> float:
        return float(self.scaled.var())


def scaling_demo(head_size: int, row_length: int = 8, seed: int = 0) -> ScalingDemo:
    """q·k of random unit-variance vectors has variance ≈ head_size; dividing by √d brings it back to ≈ 1,
    so one row's softmax stays soft instead of collapsing onto its largest score."""
    raw, scaled = random_qk_scores(head_size, seed=seed)
    rows = len(raw) // row_length * row_length
    return ScalingDemo(head_size, raw, scaled, softmax_row(raw[:row_length]), softmax_row(scaled[:row_length]),
                       mean_top_weight(raw[:rows].reshape(-1, row_length)),
                       mean_top_weight(scaled[:rows].reshape(-1, row_length)))


@dataclass(frozen=True)
class ModelScaling:
    head_size: int
    raw_variance: float
    scaled_variance: float
    raw_max_weight: float  # mean over rows of the largest softmax weight, if the scores were not scaled
    scaled_max_weight: float  # the same with the model's real scaling


def model_scaling(model: LanguageModel, tokenizer: Tokenizer, prompt: str, layer: int = 0) -> ModelScaling:
    """The same statistics read off a trained model's real queries and keys for a prompt."""
    view = attention_for_prompt(model, tokenizer, prompt)
    raw, scaled = view.layers[layer]["raw"], view.layers[layer]["scaled"]
    T = raw.shape[-1]
    mask = visible_cells(T, model.config.causal)
    return ModelScaling(model.config.head_size, float(raw[:, mask].var()), float(scaled[:, mask].var()),
                        mean_top_weight(np.where(mask, raw, -np.inf)), mean_top_weight(np.where(mask, scaled, -np.inf)))


def scaling_explanation(real: ModelScaling) -> str:
    """Why a trained model's scaled scores are not unit-variance, in its own numbers.

    Dividing by √d always divides the variance by d: that is the part the head size causes. The result is 1
    only when q and k have unit-variance components, which holds at initialisation (where the scaling matters
    for learning), not after training, which grows q and k so that a head can attend sharply.
    """
    d = real.head_size
    text = (f"Dividing by √d divides the variance by d = {d}: {real.raw_variance:.2f} / {d} = "
            f"{real.raw_variance / d:.2f}. ")
    if real.scaled_variance > 2:
        return text + (f"It is not 1 because training grew the queries and keys: a scaled variance of "
                       f"{real.scaled_variance:.1f} means their components now multiply to about that much on "
                       "average, so a head can give the keys it wants much higher scores than the rest. √d removes "
                       "only the growth that comes from the head size, which is what keeps the softmax from being "
                       "one-hot at the start of training, when q and k are small and random.")
    return text + ("Close to 1, as at initialisation: the queries and keys of this model are still small, so "
                   "its heads spread their attention widely.")


# --- embeddings -------------------------------------------------------------------------------

def char_class(token: str) -> str:
    """A coarse class for colouring embedding plots: vowels, consonants, digits, punctuation, space."""
    if len(token) != 1:
        return "word piece" if token.strip() else "whitespace"
    if token.isspace():
        return "whitespace"
    if token.isdigit():
        return "digit"
    if token.isalpha():
        kind = "vowel" if token.lower() in "aeiouy" else "consonant"
        return f"{kind} ({'upper' if token.isupper() else 'lower'})"
    return "punctuation" if unicodedata.category(token).startswith("P") else "symbol"


# --- the first step of training ----------------------------------------------------------------

@dataclass(frozen=True)
class FirstStep:
    expected_initial_loss: float  # ln(V)
    measured_initial_loss: float | None  # the run's evaluated val loss at step 0
    final_loss: float | None
    untrained: list[Candidate]
    trained: list[Candidate]


def first_step(model: LanguageModel, tokenizer: Tokenizer, prompt: str, metrics_at_start: float | None,
               metrics_at_end: float | None, k: int = 10, seed: int = 0) -> FirstStep:
    """What learning changed: a freshly initialised twin of the model vs the trained one, same prompt."""
    torch.manual_seed(seed)
    twin = build_model(model.config).eval()
    return FirstStep(math.log(model.config.vocab_size), metrics_at_start, metrics_at_end,
                     next_token_distribution(twin, tokenizer, prompt, k),
                     next_token_distribution(model, tokenizer, prompt, k))
