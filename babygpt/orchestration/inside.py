"""What the Inside page writes with a part knocked out: the same seed with and without one head, on a loaded run.

Writing is the page's most expensive step after the ablation table (one explicit pass per new token, twice), so it
is one function here that the app caches by run, weights, text and settings (``ui.run_cache.ablated_samples``),
rather than arithmetic in the view that every rerun paid again."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from babygpt.interpret.looking import affordable_sample_tokens, head_ablation_for, sample_with
from babygpt.store.runs import LoadedRun

SAMPLE_SEED = 0  # one seed for both texts: they differ only by what the head did


@dataclass(frozen=True)
class AblatedSamples:
    """Two texts from one prompt and one seed: ``intact``, and ``ablated`` without layer ``layer`` head ``head``
    (knocked out by ``mode``); ``tokens``: how many each wrote, bounded by what one measurement may cost."""

    layer: int
    head: int
    mode: str
    intact: str
    ablated: str
    tokens: int


def ablated_samples(loaded: LoadedRun, measure_ids: torch.Tensor, layer: int, head: int, mode: str,
                    prompt: str) -> AblatedSamples:
    """Write from ``prompt`` with and without one head. A mean knock-out replaces the head by its average output on
    the first context of ``measure_ids`` (the text the ablation table is measured on)."""
    prompt_ids = loaded.tokenizer.encode(prompt)
    window = measure_ids[: loaded.model_config.block_size][None]
    ablation = head_ablation_for(loaded.model, layer, head, mode, window)
    tokens = affordable_sample_tokens(loaded.model_config, len(prompt_ids))
    intact = sample_with(loaded.model, loaded.tokenizer, prompt_ids, tokens, seed=SAMPLE_SEED)
    ablated = sample_with(loaded.model, loaded.tokenizer, prompt_ids, tokens, seed=SAMPLE_SEED, ablation=ablation)
    return AblatedSamples(layer, head, mode, intact, ablated, tokens)
