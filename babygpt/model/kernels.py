"""What the model uses only for speed, kept out of the lesson's way in ``gpt.py``.

Each piece computes exactly what the lesson's version computes (tests hold them equal) and is here because a
measurement said it pays:

- ``KVCache``: sampling keeps earlier keys and values instead of recomputing the whole context for every new
  token. With ``decode.Decoder`` on top, ``python -m bench.sample_throughput`` measured 2.60–2.83k tokens/s
  against 0.80k without the cache (cpu-baby, batch 1, 500 tokens; figures in the README).
- ``attend``: PyTorch's fused ``scaled_dot_product_attention``, all heads in one call; under CPU bfloat16
  autocast it runs in float32, because PyTorch's CPU flash-attention backward was measured about five times
  slower in bfloat16 at these sizes (3.3 ms against 0.7 ms a layer at cpu-baby, measured with torch.profiler;
  the README has the figures).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    """Preallocated keys and values of one layer, so sampling appends instead of recomputing.

    Keys and values share one buffer so each new token costs a single copy.
    """

    def __init__(self, batch: int, n_head: int, capacity: int, head_size: int, device, dtype):
        self.kv = torch.empty(2, batch, n_head, capacity, head_size, device=device, dtype=dtype)
        self.keys, self.values = self.kv[0], self.kv[1]  # views, taken once
        self.length = 0

    def append(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``kv``: (2, batch, n_head, T, head_size); returns all keys and values so far."""
        end = self.length + kv.size(-2)
        self.kv[:, :, :, self.length:end] = kv
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


def score_scale(scale_scores: bool) -> float | None:
    """``scaled_dot_product_attention``'s ``scale``: None is its default 1/√head_size; 1.0 leaves q·k unscaled
    (the no-scaling counterfactual)."""
    return None if scale_scores else 1.0


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float, is_causal: bool,
           scale_scores: bool = True) -> torch.Tensor:
    """softmax(q·kᵀ/√hs, causally masked)·v for every head at once, as ``gpt.explicit_attention`` spells out;
    q, k, v: (B, nh, T, hs) -> (B, nh, T, hs)."""
    scale = score_scale(scale_scores)
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):  # the matmuls around attention stay bfloat16
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout,
                                               is_causal=is_causal, scale=scale)
        return y.to(torch.bfloat16)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=is_causal, scale=scale)
