"""The one explicit pass every look inside uses: a model run with hooks at TransformerLens's named points.

``run_with_cache`` keeps what flowed at the points asked for; ``run_with_hooks`` runs functions there that may
replace it (knocking a part out, patching in another run's activation, adding a feature's direction). Both run the
model's own modules (``GPT.forward`` given ``Hooks``), so there is no second walk over the blocks to drift from
the one that trains; both run in evaluation mode without gradients and put the model back as it was
(``evaluating``), whatever happens inside. Hooks are an argument of one pass, never installed on the model, so
none can outlive it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch

from babygpt.errors import BabyGPTError
from babygpt.model.gpt import GPT, AttentionMaps, LanguageModel
from babygpt.model.hooks import HookFn, Hooks, hook_name, hook_names

ActivationCache = dict[str, torch.Tensor]
Names = Iterable[str] | Callable[[str], bool] | None  # the points to keep: names, a predicate, or None for all


def require_layers(model: LanguageModel) -> GPT:
    """The model, when it has layers to look inside; a sentence for the bigram table."""
    if not model.config.use_attention:
        raise BabyGPTError("The bigram model has no layers or heads to look inside: each token is a row of a table.")
    return model


def model_hook_names(model: LanguageModel) -> list[str]:
    """Every hook point this model has, in the order a pass reaches them."""
    gpt = require_layers(model)
    return hook_names(gpt.config.n_layer, has_ffn=gpt.config.use_ffn, rotary=gpt.config.positional == "rope")


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Evaluation mode (no dropout) and no gradients for the block, the model's own mode restored after it: the one
    guard every reading goes through."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def run_with_hooks(model: LanguageModel, ids: torch.Tensor, hooks: Iterable[tuple[str, HookFn]]) -> torch.Tensor:
    """Logits (B, T, V) of ``ids`` (B, T) with each (name, function) run at its point, in the order given."""
    gpt = require_layers(model)
    installed = Hooks.of(hooks, model_hook_names(gpt))
    with evaluating(gpt):
        logits, _ = gpt(ids, hooks=installed)
    return logits


def _wanted(names: Names, known: list[str]) -> list[str]:
    if names is None:
        return known
    if callable(names):
        return [n for n in known if names(n)]
    names = list(names)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise BabyGPTError(f"This model has no hook point {unknown[0]!r}.")
    return names


def run_with_cache(model: LanguageModel, ids: torch.Tensor, names: Names = None,
                   hooks: Iterable[tuple[str, HookFn]] = ()) -> tuple[torch.Tensor, ActivationCache]:
    """Logits and what flowed at each point in ``names`` (all points when None), after any ``hooks`` there have
    run: the cache holds what the rest of the model actually read."""
    cache: ActivationCache = {}

    def keep(x: torch.Tensor, name: str) -> None:
        cache[name] = x.detach()

    pairs = [*hooks, *((name, keep) for name in _wanted(names, model_hook_names(model)))]
    return run_with_hooks(model, ids, pairs), cache


def attention_maps(model: LanguageModel, ids: torch.Tensor) -> list[AttentionMaps]:
    """Each layer's scores before scaling (q·kᵀ), after it, and the softmax weights, each (B, nh, T, T), read off
    the explicit pass (the lesson on scaling shows the first two side by side)."""
    gpt = require_layers(model)
    # on a rotary model the scores are taken between the queries and keys after they are turned by position
    turned = gpt.config.positional == "rope"
    points = ("attn.hook_rot_q", "attn.hook_rot_k", "attn.hook_pattern") if turned else \
        ("attn.hook_q", "attn.hook_k", "attn.hook_pattern")
    _, cache = run_with_cache(gpt, ids, lambda name: name.endswith(points))
    maps = []
    for layer in range(gpt.config.n_layer):
        q, k = (cache[hook_name(layer, p)].transpose(1, 2) for p in points[:2])  # (B, nh, T, hs)
        raw = q @ k.transpose(-2, -1)
        scaled = raw / math.sqrt(q.size(-1)) if gpt.config.scale_scores else raw
        maps.append(AttentionMaps(raw, scaled, cache[hook_name(layer, "attn.hook_pattern")]))
    return maps
