"""Numbers behind the lessons: the ladder race, q·k scaling statistics, the first step of training.

Pure library code (no Streamlit) so every figure a teacher projects can be checked in a test.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import torch

from babygpt.config import PRESETS, TrainConfig, model_config_for_preset
from babygpt.data import Corpus
from babygpt.errors import BabyGPTError
from babygpt.inspect import attention_for_prompt, mean_top_weight, random_qk_scores, softmax_row
from babygpt.model import GPT
from babygpt.pipeline import plan_training, start_run
from babygpt.runs import RunStore
from babygpt.sample import Candidate, next_token_distribution
from babygpt.tokenizers import Tokenizer
from babygpt.train import Trainer

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


def model_scaling(model: GPT, tokenizer: Tokenizer, prompt: str, layer: int = 0) -> ModelScaling:
    """The same statistics read off a trained model's real queries and keys for a prompt."""
    view = attention_for_prompt(model, tokenizer, prompt)
    raw, scaled = view.layers[layer]["raw"], view.layers[layer]["scaled"]
    T = raw.shape[-1]
    mask = np.tril(np.ones((T, T), dtype=bool))
    return ModelScaling(model.config.head_size, float(raw[:, mask].var()), float(scaled[:, mask].var()),
                        mean_top_weight(np.where(mask, raw, -np.inf)), mean_top_weight(np.where(mask, scaled, -np.inf)))


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


def first_step(model: GPT, tokenizer: Tokenizer, prompt: str, metrics_at_start: float | None,
               metrics_at_end: float | None, k: int = 10, seed: int = 0) -> FirstStep:
    """What learning changed: a freshly initialised twin of the model vs the trained one, same prompt."""
    torch.manual_seed(seed)
    twin = GPT(model.config).eval()
    return FirstStep(math.log(model.config.vocab_size), metrics_at_start, metrics_at_end,
                     next_token_distribution(twin, tokenizer, prompt, k),
                     next_token_distribution(model, tokenizer, prompt, k))


# --- the ladder race ---------------------------------------------------------------------------

@dataclass
class RaceEntry:
    preset: str
    run_id: str | None = None
    status: str = "waiting"  # waiting, running, done, stopped, failed
    val_loss: float | None = None
    params: int | None = None
    seconds: float | None = None
    message: str = ""


@dataclass
class LadderRace:
    """Trains every rung of the ladder on the same data with the same budget, one after another."""

    store: RunStore
    corpus: Corpus
    tokenizer_kind: str
    train_config: TrainConfig
    sizes: dict
    owner: str = ""
    presets: tuple[str, ...] = tuple(PRESETS)
    entries: list[RaceEntry] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _current: Trainer | None = None
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.entries = [RaceEntry(p) for p in self.presets]
        # validate every rung before anything runs, so a bad size fails at once
        self.train_config.validate()
        for preset in self.presets:
            model_config_for_preset(preset, **self.sizes)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="babygpt-ladder-race", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for entry in self.entries:
            if self._stop.is_set():
                entry.status = "stopped"
                continue
            entry.status = "running"
            try:
                plan = plan_training(self.corpus, self.tokenizer_kind, entry.preset, self.train_config, **self.sizes)
                trainer, info = start_run(self.store, plan, name=f"ladder race: {entry.preset}")
                entry.run_id, entry.params = info.id, trainer.model.num_params()
                self._current = trainer
                if self._stop.is_set():
                    trainer.request_stop()
                result = trainer.run()
                entry.status, entry.val_loss, entry.seconds = result.status, result.val_loss, result.elapsed_s
                entry.message = result.message
            except BabyGPTError as exc:
                entry.status, entry.message = "failed", str(exc)
            finally:
                self._current = None

    def stop(self) -> None:
        self._stop.set()
        if self._current is not None:
            self._current.request_stop()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def table(self) -> list[dict]:
        return [{"preset": e.preset, "status": e.status, "parameters": e.params, "val loss": e.val_loss,
                 "train time (s)": round(e.seconds, 1) if e.seconds else None, "run": e.run_id} for e in self.entries]
