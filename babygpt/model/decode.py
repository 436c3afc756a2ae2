"""Generation's speed-only path: keys and values cached per layer, and one new token at a time at batch 1.

The lesson's model (``gpt``) recomputes every position for every new token. Sampling does not need to: the keys
and values of earlier positions do not change, so ``new_caches`` keeps them and ``forward_cached`` runs a prompt
through the model's own modules once, filling the caches. After that, ``Decoder`` advances one token at a time.

At batch 1 every op of a step works on a single vector, so a matmul takes a few microseconds and the module
machinery around it (``nn.Module.__call__``, 3-D reshapes, reading a weight transposed) costs as much again: 480 µs
a token through the modules at ``cpu-baby`` against 230 µs here (bench/sample_throughput.py). ``Decoder`` takes the
weights once per generation, transposed so each matmul reads them row by row, and runs the same computation as
``forward_cached`` with plain functional calls into the same KV caches. Tests hold both equal to the model's own
forward on every rung of the ladder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from babygpt.model.gpt import Block, LanguageModel, MultiHeadAttention, rotate, soft_cap
from babygpt.model.kernels import KVCache, attend, score_scale

LinearWeights = tuple[torch.Tensor, torch.Tensor | None]  # (weight transposed, bias)


@dataclass(frozen=True)
class _Norm:
    """A norm's weights: LayerNorm's gain and bias, or RMSNorm's gain (``rms``)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    eps: float
    rms: bool


NormWeights = _Norm | None  # None: the rungs without a norm


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone(memory_format=torch.contiguous_format)


def _copy_bias(bias: torch.Tensor | None) -> torch.Tensor | None:
    return None if bias is None else _copy(bias)


def _linear(module: nn.Linear) -> LinearWeights:
    return _copy(module.weight.t()), _copy_bias(module.bias)


def _norm(module: nn.Module | None) -> NormWeights:
    if isinstance(module, nn.LayerNorm):
        return _Norm(_copy(module.weight), _copy_bias(module.bias), module.eps, rms=False)
    if isinstance(module, nn.RMSNorm):
        return _Norm(_copy(module.weight), None, module.eps, rms=True)
    return None


def _apply_linear(x: torch.Tensor, layer: LinearWeights) -> torch.Tensor:
    weight_t, bias = layer
    return x @ weight_t if bias is None else torch.addmm(bias, x, weight_t)


def _add(x: torch.Tensor, update: torch.Tensor, residual: bool) -> torch.Tensor:
    """``Block.add`` on plain tensors: into the residual stream, or replacing it before residual connections."""
    return x + update if residual else update


def _apply_norm(x: torch.Tensor, norm: NormWeights) -> torch.Tensor:
    if norm is None:
        return x
    if norm.rms:
        return F.rms_norm(x.float(), (x.size(-1),), norm.weight.float(), norm.eps).to(x.dtype)  # as gpt.RMSNorm
    return F.layer_norm(x, (x.size(-1),), norm.weight, norm.bias, norm.eps)


def new_caches(model: LanguageModel, batch: int = 1) -> list[KVCache]:
    """One empty key/value cache per layer (none for the bigram: its next token depends on the last one only)."""
    if not model.config.use_attention:
        return []
    p, c = next(model.parameters()), model.config
    return [KVCache(batch, c.n_head, c.block_size, c.head_size, p.device, p.dtype) for _ in model.blocks]


def _cached_attention(attn: MultiHeadAttention, x: torch.Tensor, cache: KVCache, ids: torch.Tensor) -> torch.Tensor:
    """The heads of ``attn`` for the new tokens ``ids`` (B, T) whose stream is ``x`` (B, T, C), their keys and
    values appended to ``cache``; rotary positions turn them by their place after what is cached."""
    prior = cache.length
    if prior and x.size(-2) > 1:
        raise ValueError("KVCache supports a prefill into an empty cache, then one token at a time.")
    q, k, v = attn.heads(x, ids, start=prior)  # each (B, nh, T, hs)
    keys, values = cache.append(torch.stack((k, v)))  # each (B, nh, prior + T, hs)
    # one new query may look at everything cached; a prefill into an empty cache is plain causal
    is_causal = prior == 0 and attn.causal and q.size(-2) > 1
    return attn.merge_heads(attend(q, keys, values, 0.0, is_causal=is_causal, scale_scores=attn.scale_scores))


def _cached_block(block: Block, x: torch.Tensor, cache: KVCache, ids: torch.Tensor) -> torch.Tensor:
    """``Block.forward`` with the attention reading and filling ``cache``."""
    return block.feed_forward_step(block.add(x, _cached_attention(block.attn, block.ln1(x), cache, ids)))


def forward_cached(model: LanguageModel, idx: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
    """Logits (B, V) of the last position only, appending the new tokens' keys and values to ``caches``."""
    if not model.config.use_attention:
        return model.token_embedding(idx[:, -1])  # (B, V)
    start = caches[0].length
    x = model.embed(idx, start)  # (B, T, C)
    for block, cache in zip(model.blocks, caches, strict=True):
        x = _cached_block(block, x, cache, idx)
    return model.lm_head(model.ln_f(x[:, -1]))  # (B, C) -> (B, V), soft-capped where the model caps


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
    q_norm: NormWeights  # QK-norm's gains, or None
    k_norm: NormWeights
    values: torch.Tensor | None  # the layer's value embedding (V, C), or None

    @property
    def plain(self) -> bool:
        """Keys and values straight from the projection (no value embedding, no QK-norm)."""
        return self.values is None and self.q_norm is None


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
                q_norm=_norm(block.attn.q_norm),
                k_norm=_norm(block.attn.k_norm),
                values=None if block.attn.value_embedding is None else _copy(block.attn.value_embedding.weight),
            )
            for block in model.blocks
        ]
        attn = model.blocks[0].attn
        self.rope = (_copy(attn.rope_cos), _copy(attn.rope_sin)) if attn.rotary else None  # each (T, hs/2)
        self.ln_f = _norm(model.ln_f)
        self.head = _linear(model.lm_head)
        self.cap = config.logit_softcap
        self.qkv_shape = (3, 1, config.n_head, 1, config.head_size)
        self.head_shape = (1, config.n_head, 1, config.head_size)

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
            x = _add(x, self._attention(x, layer, cache, token, position), layer.residual)
            if layer.up is not None:
                x = _add(x, self._feed_forward(x, layer), layer.residual)
        return soft_cap(_apply_linear(_apply_norm(x, self.ln_f), self.head), self.cap)  # (1, V)

    def _attention(self, x: torch.Tensor, layer: _Layer, cache: KVCache, token: int, position: int) -> torch.Tensor:
        """The one new token's attention over everything cached: (1, C) -> (1, C)."""
        qkv = _apply_linear(_apply_norm(x, layer.ln1), layer.qkv).view(self.qkv_shape)  # (1, 3C) -> (3, 1, nh, 1, hs)
        q, kv = qkv[0], qkv[1:]
        if not layer.plain or self.rope is not None:
            k, v = kv.unbind(0)  # each (1, nh, 1, hs)
            if layer.values is not None:
                v = v + layer.values[token].view(self.head_shape)
            if layer.q_norm is not None:
                q, k = _apply_norm(q, layer.q_norm), _apply_norm(k, layer.k_norm)
            if self.rope is not None:
                cos, sin = (table[position:position + 1] for table in self.rope)  # (1, hs/2)
                q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            kv = torch.stack((k, v))
        keys, values = cache.append(kv)  # each (1, nh, length, hs)
        update = F.scaled_dot_product_attention(q, keys, values, scale=self.scale)  # (1, nh, 1, hs)
        update = update.view(1, x.size(-1))  # (1, C)
        return update if layer.proj is None else _apply_linear(update, layer.proj)

    @staticmethod
    def _feed_forward(x: torch.Tensor, layer: _Layer) -> torch.Tensor:
        hidden = layer.activation(_apply_linear(_apply_norm(x, layer.ln2), layer.up))  # (1, 4C)
        return _apply_linear(hidden, layer.down)  # (1, C)
