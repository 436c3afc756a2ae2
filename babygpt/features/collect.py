"""The activations an SAE learns from: one layer of a finished run, read over the run's own text.

The text's tokens are cut into windows of the model's context (``block_size``) spread evenly over the whole text,
and each window goes through the model's one explicit pass (``babygpt.interpret.hooked.run_with_cache``) with the
chosen hook point cached. What comes back keeps, for each activation, which window and position it came from, so
the browser can show the passage a feature fires on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import run_with_cache
from babygpt.model.gpt import LanguageModel

FORWARD_BATCH = 32  # windows per pass: small enough that one pass's cache stays a few MB


@dataclass
class Activations:
    """``acts`` (N, C) float32, one row per token of ``windows`` (W, T) read row by row (N = W·T)."""

    acts: torch.Tensor
    windows: torch.Tensor  # (W, T) token ids
    hook_name: str

    @property
    def n_tokens(self) -> int:
        return self.acts.size(0)

    def token_ids(self) -> torch.Tensor:
        """(N,) the token each activation was read at."""
        return self.windows.reshape(-1)


def text_windows(ids: torch.Tensor | list[int], block_size: int, n_tokens: int) -> torch.Tensor:
    """(W, T) windows of ``block_size`` tokens, about ``n_tokens`` in all, spread evenly over ``ids``: a short text
    is read whole (windows do not overlap), a long one by windows taken at even steps through it."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if ids.numel() < block_size + 1:
        raise BabyGPTError(f"The text has {ids.numel()} tokens, fewer than the model's context of {block_size}: "
                           "there is too little to read features from.")
    available = ids.numel() // block_size
    wanted = max(1, min(available, -(-n_tokens // block_size)))
    starts = torch.linspace(0, (available - 1) * block_size, wanted).round().long()
    starts = (starts // block_size) * block_size  # whole windows, so none overlaps another
    return torch.stack([ids[s:s + block_size] for s in starts.tolist()])


@torch.no_grad()
def collect_activations(model: LanguageModel, windows: torch.Tensor, name: str, batch: int = FORWARD_BATCH,
                        on_batch: Callable[[int, int], None] | None = None) -> Activations:
    """The activations at hook point ``name`` for every token of ``windows``, as float32 on the CPU;
    ``on_batch(i, n)`` hears each batch done."""
    if not model.config.use_attention:
        raise BabyGPTError("The bigram model has no layers to read features from: pick a run with attention.")
    device = next(model.parameters()).device
    parts = []
    for i in range(0, windows.size(0), batch):
        _, cache = run_with_cache(model, windows[i:i + batch].to(device), [name])
        if name not in cache:
            raise BabyGPTError(f"This model has no {name} (a rung without a feed-forward has no mlp_out).")
        act = cache[name]
        parts.append(act.reshape(-1, act.size(-1)).float().cpu())
        if on_batch is not None:
            on_batch(i // batch + 1, -(-windows.size(0) // batch))
    return Activations(torch.cat(parts), windows.cpu(), name)


def check_layer(model: LanguageModel, layer: int, hook: str) -> None:
    """A layer the model has: its blocks are numbered 0..n_layer-1, and mlp_out needs a feed-forward."""
    config = model.config
    if not config.use_attention:
        raise BabyGPTError("The bigram model has no layers to read features from: pick a run with attention.")
    if not 0 <= layer < config.n_layer:
        raise BabyGPTError(f"The model has {config.n_layer} layer(s), numbered 0 to {config.n_layer - 1}; "
                           f"there is no layer {layer}.")
    if hook == "mlp_out" and not config.use_ffn:
        raise BabyGPTError("This rung has no feed-forward, so no mlp_out: read resid_post instead.")
