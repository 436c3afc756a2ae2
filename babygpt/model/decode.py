"""One new token at a time at batch 1: the sampler's inner loop, reduced to its arithmetic.

At batch 1 every op of a step works on a single vector, so a matmul takes a few microseconds and
the module machinery around it (``nn.Module.__call__``, 3-D reshapes, reading a weight transposed)
costs as much again: 480 µs a token through ``GPT.forward_cached`` at ``cpu-baby`` against 230 µs
here (bench/sample_throughput.py). ``Decoder`` takes the weights once per generation, transposed so
each matmul reads them row by row, and runs the same computation as ``forward_cached`` with plain
functional calls into the same KV caches. Tests hold it equal to ``forward_cached`` on every rung of
the ladder; prompts (many tokens at once) still go through the model itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from babygpt.model.gpt import LanguageModel, block_step
from babygpt.model.kernels import KVCache, score_scale

LinearWeights = tuple[torch.Tensor, torch.Tensor | None]  # (weight transposed, bias)
NormWeights = tuple[torch.Tensor, torch.Tensor | None] | None  # LayerNorm (weight, bias), or None for no norm


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone(memory_format=torch.contiguous_format)


def _copy_bias(bias: torch.Tensor | None) -> torch.Tensor | None:
    return None if bias is None else _copy(bias)


def _linear(module: nn.Linear) -> LinearWeights:
    return _copy(module.weight.t()), _copy_bias(module.bias)


def _norm(module: nn.Module) -> NormWeights:
    return (_copy(module.weight), _copy_bias(module.bias)) if isinstance(module, nn.LayerNorm) else None


def _apply_linear(x: torch.Tensor, layer: LinearWeights) -> torch.Tensor:
    weight_t, bias = layer
    return x @ weight_t if bias is None else torch.addmm(bias, x, weight_t)


def _apply_norm(x: torch.Tensor, norm: NormWeights) -> torch.Tensor:
    return x if norm is None else F.layer_norm(x, (x.size(-1),), norm[0], norm[1])


@dataclass(frozen=True)
class _Layer:
    ln1: NormWeights
    qkv: LinearWeights
    proj: LinearWeights | None
    ln2: NormWeights
    up: LinearWeights | None  # None: a block without feed-forward
    down: LinearWeights | None
    activation: Callable[[torch.Tensor], torch.Tensor] | None
    residual: bool


class Decoder:
    """A snapshot of ``model``'s weights that advances one token per ``step``.

    Build one per generation: later training steps change the model, not the snapshot.
    """

    def __init__(self, model: LanguageModel):
        config = model.config
        self.config = config
        self.token_table = _copy(model.token_embedding.weight)
        if not config.use_attention:
            return
        positions = getattr(model, "position_embedding", None)
        positions = positions.weight if positions is not None else getattr(model, "position_table", None)
        self.position_table = None if positions is None else _copy(positions)  # None: positional="none"
        self.scale = score_scale(config.scale_scores)
        self.layers = [
            _Layer(
                ln1=_norm(block.ln1),
                qkv=_linear(block.attn.qkv),
                proj=None if block.attn.proj is None else _linear(block.attn.proj),
                ln2=_norm(block.ln2),
                up=None if block.ffn is None else _linear(block.ffn.up),
                down=None if block.ffn is None else _linear(block.ffn.down),
                activation=None if block.ffn is None else block.ffn.activation,
                residual=block.residual,
            )
            for block in model.blocks
        ]
        self.ln_f = _norm(model.ln_f)
        self.head = _linear(model.lm_head)
        self.qkv_shape = (3, 1, config.n_head, 1, config.head_size)

    def step(self, token: int, caches: list[KVCache]) -> torch.Tensor:
        """Logits (1, vocab_size) for the token after ``token``, appending its keys and values to ``caches``."""
        if not self.config.use_attention:
            return self.token_table[token].unsqueeze(0)
        position = caches[0].length
        if position >= self.config.block_size:
            raise ValueError(f"Sequence of {position + 1} tokens exceeds block_size {self.config.block_size}.")
        x = self.token_table[token] if self.position_table is None else self.token_table[token] + self.position_table[position]
        x = x.unsqueeze(0)  # (1, C)
        for layer, cache in zip(self.layers, caches, strict=True):
            x = block_step(x, lambda h, layer=layer, cache=cache: self._attention(h, layer, cache),
                           None if layer.up is None else lambda h, layer=layer: self._feed_forward(h, layer),
                           layer.residual)
        return _apply_linear(_apply_norm(x, self.ln_f), self.head)  # (1, V)

    def _attention(self, x: torch.Tensor, layer: _Layer, cache: KVCache) -> torch.Tensor:
        """The one new token's attention over everything cached: (1, C) -> (1, C)."""
        qkv = _apply_linear(_apply_norm(x, layer.ln1), layer.qkv).view(self.qkv_shape)  # (1, 3C) -> (3, 1, nh, 1, hs)
        keys, values = cache.append(qkv[1:])  # each (1, nh, length, hs)
        update = F.scaled_dot_product_attention(qkv[0], keys, values, scale=self.scale)  # (1, nh, 1, hs)
        update = update.view(1, x.size(-1))  # (1, C)
        return update if layer.proj is None else _apply_linear(update, layer.proj)

    @staticmethod
    def _feed_forward(x: torch.Tensor, layer: _Layer) -> torch.Tensor:
        hidden = layer.activation(_apply_linear(_apply_norm(x, layer.ln2), layer.up))  # (1, 4C)
        return _apply_linear(hidden, layer.down)  # (1, C)
