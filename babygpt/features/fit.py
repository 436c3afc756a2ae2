"""One SAE from start to finish on a finished run's model and text: read the activations, train, measure.

Used alike by the command line (``babygpt sae train``), the scheduler's SAE jobs and the benchmark, so the three
train the same thing. The store keeps what comes back (``babygpt.store.features``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from babygpt.features.collect import FORWARD_BATCH, Activations, check_layer, collect_activations, text_windows
from babygpt.features.metrics import SAEFigures, all_figures
from babygpt.features.sae import SAEConfig, TopKSAE, TrainProgress, train_sae
from babygpt.model.gpt import LanguageModel

DEFAULT_TOKENS = 1_000_000  # activations read for training (issue 38's million)
EVAL_TOKENS = 32_768  # held-out activations the figures are measured on, and the browser shows
BROWSE_SEED = 1


@dataclass
class FittedSAE:
    sae: TopKSAE
    figures: SAEFigures
    browse_windows: torch.Tensor  # (W, T) the windows the figures were read on and the browser shows
    tokens: int  # activations trained on
    steps: int
    elapsed_s: float
    stopped: bool


def split_windows(windows: torch.Tensor, eval_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) windows: every n-th window is held out so both cover the whole text."""
    T = windows.size(1)
    n_eval = max(1, min(windows.size(0) // 2, -(-eval_tokens // T)))
    step = max(1, windows.size(0) // n_eval)
    held = torch.zeros(windows.size(0), dtype=torch.bool)
    held[::step] = True
    held[torch.nonzero(held).flatten()[n_eval:]] = False
    if held.all():
        return windows, windows
    return windows[~held], windows[held]


def batches(stage: str, say: Callable[[str], None]) -> Callable[[int, int], None]:
    """What a stage made of a model's passes says after each batch: "measuring · batch 2/17"."""
    return lambda i, n: say(f"{stage} · batch {i:,}/{n:,}")


def fit_sae(model: LanguageModel, ids: torch.Tensor | list[int], config: SAEConfig, tokens: int = DEFAULT_TOKENS,
            eval_tokens: int = EVAL_TOKENS, on_step: Callable[[TrainProgress], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False,
            on_stage: Callable[[str], None] | None = None) -> FittedSAE:
    """Collect ``tokens`` activations at ``config.hook_name`` over the text ``ids``, train, and measure the SAE on
    held-out windows of the same text. ``on_stage`` hears each stage as it goes, with its batches where the stage
    is a model's passes: "reading activations · batch 3/40", "training", "measuring · batch 2/17"."""
    check_layer(model, config.layer, config.hook)
    say = on_stage or (lambda _stage: None)
    windows = text_windows(ids, model.config.block_size, tokens + eval_tokens)
    train_windows, eval_windows = split_windows(windows, eval_tokens)
    say("reading activations")
    acts = collect_activations(model, train_windows, config.hook_name, on_batch=batches("reading activations", say))
    say("training")
    result = train_sae(acts.acts, config, on_step=on_step, should_stop=should_stop)
    del acts
    say("measuring")
    # measuring reads the held-out windows once, then three times more for loss recovered: one count for all four
    reads = -(-eval_windows.size(0) // FORWARD_BATCH)
    measured = batches("measuring", say)
    held: Activations = collect_activations(model, eval_windows, config.hook_name,
                                            on_batch=lambda i, n: measured(i, n + 3 * n))
    figures = all_figures(model, result.sae, held.acts, held.windows,
                          on_batch=lambda i, n: measured(reads + 3 * i, reads + 3 * n))
    return FittedSAE(result.sae, figures, eval_windows, result.tokens, result.steps, result.elapsed_s, result.stopped)
