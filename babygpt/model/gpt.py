"""The model ladder, in the order of the lesson: the bigram table, one attention head, multi-head attention,
feed-forward, block, the GPT; then the switches from after GPT-2 (``config.MODERN_SWITCHES``), each beside the part
it changes: rotary positions and QK-norm in the attention, value embeddings in its values, SwiGLU in the
feed-forward, RMSNorm in ``make_norm``, the soft-cap in the head.

``Bigram`` is the first rung; ``GPT`` builds every other rung from ``ModelConfig`` switches, and
``build_model`` picks the class a config describes. Training uses PyTorch's fused attention
(``kernels.attend``, with the other speed-only pieces). Given ``Hooks`` (``hooks``: TransformerLens's named
points), the same modules run the explicit formula instead and hand every named point to the hooks: that one pass
is how every view looks inside (``babygpt.interpret.hooked``). Generation's key/value cache and one-token path live
beside this file (``decode``), so the lesson reads without them.

Shapes: B batch, T tokens, C = n_embd, nh = n_head, hs = head_size = C / nh, V = vocab_size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from babygpt.config import ModelConfig
from babygpt.model.hooks import Hooks
from babygpt.model.kernels import attend
from babygpt.model.sizing import ffn_width, flops_per_token

NORM_EPS = 1e-6  # RMSNorm's epsilon, as Llama's configuration writes it
ROPE_BASE = 10000.0  # the rotary wavelengths' base (RoFormer, Llama)

# --- 0. the bigram model ----------------------------------------------------------------------


class Bigram(nn.Module):
    """Row i of a (V, V) table *is* the logits of the token after token i: no context, no attention.

    It has the GPT's interface (``forward``) so training and sampling treat every rung alike; it has no hook
    points, and looking inside says so in a sentence.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        self.token_embedding = nn.Embedding(config.vocab_size, config.vocab_size)
        nn.init.normal_(self.token_embedding.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                hooks: Hooks | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.token_embedding(idx)  # (B, T) -> (B, T, V)
        return logits, _loss(logits, targets)

    def num_params(self, exclude_positions: bool = False) -> int:
        return self.token_embedding.weight.numel()

    def flops_per_token(self, seq_len: int | None = None) -> float:
        return flops_per_token(self.config, seq_len)


def _loss(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """Mean cross-entropy over every position, or None without targets."""
    if targets is None:
        return None
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))  # (B*T, V) against (B*T,)


# --- 1. one attention head, written out ------------------------------------------------------

@dataclass
class AttentionMaps:
    """What the heads of one layer computed, each (B, nh, T, T)."""

    raw: torch.Tensor  # q·kᵀ
    scaled: torch.Tensor  # q·kᵀ / sqrt(head_size), or q·kᵀ again when the model does not scale
    weights: torch.Tensor  # softmax over the scaled scores, after the causal mask when the model has one


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True,
                       scale_scores: bool = True, hooks: Hooks | None = None) -> tuple[torch.Tensor, AttentionMaps]:
    """The lecture's head, vectorised over heads: scores, scale, causal mask, softmax, weighted sum.

    ``q``, ``k``, ``v``: (B, nh, T, hs). Scaling by 1/sqrt(head_size) keeps the scores at unit variance; without
    it softmax saturates towards one-hot as heads grow and gradients vanish. ``hooks`` (a block's) see and may
    replace the masked scores (``attn.hook_attn_scores``) and the weights (``attn.hook_pattern``).
    """
    T = q.size(-2)
    raw = q @ k.transpose(-2, -1)  # (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T)
    scaled = raw / math.sqrt(q.size(-1)) if scale_scores else raw
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)  # (T, T): True above the diagonal
    masked = scaled.masked_fill(future, float("-inf")) if causal else scaled
    if hooks is not None:
        masked = hooks("attn.hook_attn_scores", masked)
    weights = F.softmax(masked, dim=-1)  # (B, nh, T, T)
    if hooks is not None:
        weights = hooks("attn.hook_pattern", weights)
    return weights @ v, AttentionMaps(raw, scaled, weights)  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)


def _heads_hooked(hooks: Hooks, point: str, x: torch.Tensor) -> torch.Tensor:
    """A (B, nh, T, hs) tensor through a hook point that sees it as TransformerLens does, (B, T, nh, hs)."""
    return hooks(point, x.transpose(1, 2)).transpose(1, 2)


def rotary_tables(block_size: int, head_size: int, base: float = ROPE_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position's angles, each (T, hs/2): pair i turns by position · base^(-2i/hs), so the
    first pairs turn fast (nearby order) and the last slowly (long range)."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs/2,)
    angles = torch.arange(block_size, dtype=torch.float32)[:, None] * inv_freq  # (T, hs/2)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE: turn pair (x_i, x_{i+hs/2}) of every query or key by its position's angle i; x (..., T, hs), cos and
    sin (T, hs/2). The pairs are the two halves of a head (Llama's layout in transformers), so a dot product of a
    turned query and key depends only on how far apart they are."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., T, hs/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


# --- 2. multi-head attention -------------------------------------------------------------------

class MultiHeadAttention(nn.Module):
    """``n_head`` heads computed as one batched matmul (no Python loop over heads).

    With one head and no projection this is exactly the lecture's single ``Head``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.head_size
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias) if config.use_projection else None
        self.dropout = config.dropout
        self.causal, self.scale_scores = config.causal, config.scale_scores
        self.resid_dropout = nn.Dropout(config.dropout)
        # QK-norm: each head's queries and keys RMS-normalised, with a learned gain per dimension
        self.q_norm = RMSNorm(self.head_size, eps=NORM_EPS) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_size, eps=NORM_EPS) if config.qk_norm else None
        # value embeddings: this layer's own vector per input token, added to its values
        self.value_embedding = nn.Embedding(config.vocab_size, config.n_embd) if config.value_embeddings else None
        self.rotary = config.positional == "rope"
        if self.rotary:
            cos, sin = rotary_tables(config.block_size, self.head_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    def qkv_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Every head's queries, keys and values from one matmul."""
        B, T, C = x.shape
        qkv = self.qkv(x)  # (B, T, C) -> (B, T, 3C)
        qkv = qkv.view(B, T, 3, self.n_head, self.head_size)  # (B, T, 3, nh, hs)
        return qkv.permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)

    def heads(self, x: torch.Tensor, ids: torch.Tensor | None = None, start: int = 0,
              hooks: Hooks | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the scores and the weighted sum read, each (B, nh, T, hs), for tokens ``ids`` (B, T) at positions
        start..start+T-1: values with the layer's value embedding added, queries and keys normalised (QK-norm)
        then turned by their positions (RoPE). ``hooks`` see q, k, v before the turn (``attn.hook_q/k/v``) and
        the turned ones (``attn.hook_rot_q/k``), as TransformerLens names them."""
        q, k, v = self.qkv_heads(x).unbind(0)  # each (B, nh, T, hs)
        if self.value_embedding is not None:
            if ids is None:
                raise ValueError("A model with value embeddings needs the token ids beside the stream.")
            B, nh, T, hs = v.shape
            v = v + self.value_embedding(ids).view(B, T, nh, hs).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if hooks is not None:
            q, k, v = (_heads_hooked(hooks, f"attn.hook_{n}", t) for n, t in zip("qkv", (q, k, v), strict=True))
        if self.rotary:
            T = q.size(-2)
            cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]  # (T, hs/2)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            if hooks is not None:
                q, k = _heads_hooked(hooks, "attn.hook_rot_q", q), _heads_hooked(hooks, "attn.hook_rot_k", k)
        return q, k, v

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """The heads side by side again, then the output projection."""
        B, nh, T, hs = y.shape
        y = y.transpose(1, 2)  # (B, nh, T, hs) -> (B, T, nh, hs)
        y = y.reshape(B, T, nh * hs)  # (B, T, C): each token's heads concatenated
        if self.proj is None:
            return y
        y = self.proj(y)  # (B, T, C)
        return self.resid_dropout(y) if self.dropout else y

    def forward(self, x: torch.Tensor, hooks: Hooks | None = None, ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), every head at once: through the fused kernel, or with ``hooks`` (a block's)
        through the explicit formula, each named point handed to the hooks. ``ids`` (B, T): the input tokens,
        which value embeddings read."""
        q, k, v = self.heads(x, ids, hooks=hooks)  # each (B, nh, T, hs)
        if hooks is None:
            dropout = self.dropout if self.training else 0.0
            y = attend(q, k, v, dropout, is_causal=self.causal and q.size(-2) > 1, scale_scores=self.scale_scores)
        else:
            y, _ = explicit_attention(q, k, v, causal=self.causal, scale_scores=self.scale_scores, hooks=hooks)
            y = _heads_hooked(hooks, "attn.hook_z", y)
        return self.merge_heads(y)  # (B, nh, T, hs) -> (B, T, C)


# --- 3. feed-forward ----------------------------------------------------------------------------

def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """ReLU(x)²: as cheap as ReLU, but smooth at zero and sharper for large inputs (So et al., "Primer")."""
    return F.relu(x).square()


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU through its tanh approximation, as GPT-2 was trained (``gelu_new`` in transformers)."""
    return F.gelu(x, approximate="tanh")


def swiglu(x: torch.Tensor) -> torch.Tensor:
    """SwiGLU on the up-projection's two halves, gate then up: SiLU(gate) ⊙ up (Shazeer 2020; Llama's MLP)."""
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate) * up


ACTIVATIONS = {"relu2": relu_squared, "gelu": F.gelu, "relu": F.relu, "gelu_tanh": gelu_tanh, "swiglu": swiglu}


class FeedForward(nn.Module):
    """Per position: expand 4x, non-linearity, project back. Attention gathers; this computes on what was gathered.
    SwiGLU's up-projection holds its gate and its up side by side (2 × ``ffn_width``, 8C/3 each)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = ffn_width(config)
        gated = 2 if config.activation == "swiglu" else 1
        self.up = nn.Linear(config.n_embd, gated * width, bias=config.bias)
        self.down = nn.Linear(width, config.n_embd, bias=config.bias)
        self.activation = ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, hooks: Hooks | None = None) -> torch.Tensor:
        hidden = self.activation(self.up(x))  # (B, T, C) -> (B, T, 4C), or (B, T, 8C/3) for SwiGLU
        if hooks is not None:
            hidden = hooks("mlp.hook_post", hidden)
        y = self.down(hidden)  # (B, T, 4C) -> (B, T, C)
        return self.dropout(y) if self.dropout.p else y


# --- 4. block -----------------------------------------------------------------------------------

class RMSNorm(nn.RMSNorm):
    """x / √(mean(x²) + eps) · g, computed in float32 whatever the input (as LayerNorm is under autocast, and as
    Llama's is in transformers): bfloat16 activations would otherwise meet a float32 gain on a slower path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), self.normalized_shape, self.weight.float(), self.eps).to(x.dtype)


def make_norm(config: ModelConfig) -> nn.Module:
    """The pre-norm of the rungs that have one: LayerNorm (GPT-2), or RMSNorm (Llama, nanochat), which divides by
    the root mean square without subtracting the mean and has no bias."""
    if not config.use_layernorm:
        return nn.Identity()
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=NORM_EPS)
    return nn.LayerNorm(config.n_embd, bias=config.bias)


class Block(nn.Module):
    """Attention then feed-forward, each optionally wrapped in pre-norm and a residual connection."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = make_norm(config), make_norm(config)
        self.attn = MultiHeadAttention(config)
        self.ffn = FeedForward(config) if config.use_ffn else None
        self.residual = config.use_residual

    def add(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """An update joins the residual stream; on the rungs before residual connections it replaces it."""
        return x + update if self.residual else update

    def feed_forward_step(self, x: torch.Tensor) -> torch.Tensor:
        """Each token computes on what attention gathered (rungs without feed-forward pass it on)."""
        return x if self.ffn is None else self.add(x, self.ffn(self.ln2(x)))

    def forward(self, x: torch.Tensor, hooks: Hooks | None = None, ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C): tokens gather from each other, then each computes on what it gathered.
        With ``hooks`` (this block's), the stream and each update pass through the named points on the way.
        ``ids``: the input tokens (B, T), read by value embeddings."""
        if hooks is None:
            return self.feed_forward_step(self.add(x, self.attn(self.ln1(x), ids=ids)))
        x = hooks("hook_resid_pre", x)
        x = hooks("hook_resid_mid", self.add(x, hooks("hook_attn_out", self.attn(self.ln1(x), hooks, ids))))
        if self.ffn is not None:
            x = self.add(x, hooks("hook_mlp_out", self.ffn(self.ln2(x), hooks)))
        return hooks("hook_resid_post", x)


# --- 5. the model -------------------------------------------------------------------------------

def sinusoidal_encoding(block_size: int, n_embd: int) -> torch.Tensor:
    """The fixed encodings of "Attention is all you need": sin/cos waves of geometric wavelengths, (T, C)."""
    position = torch.arange(block_size, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(torch.arange(0, n_embd, 2, dtype=torch.float32) * (-math.log(10000.0) / n_embd))  # (ceil(C/2),)
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.sin(position * freq)  # even dimensions
    table[:, 1::2] = torch.cos(position * freq)[:, : n_embd // 2]  # odd dimensions
    return table


class SoftCappedHead(nn.Linear):
    """The head that reads out logits, capped at ±cap by cap·tanh(logits / cap) when ``cap`` > 0 (Gemma 2,
    modded-nanogpt, nanochat): near zero it is the identity, and no logit can exceed the cap."""

    def __init__(self, n_embd: int, vocab_size: int, cap: float):
        super().__init__(n_embd, vocab_size, bias=False)
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_cap(super().forward(x), self.cap)


def soft_cap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """cap·tanh(logits / cap), or the logits themselves when cap is 0 (off)."""
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


class GPT(nn.Module):
    """Every rung with attention: embeddings, ``n_layer`` blocks, a final norm and the head that reads out logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        if not config.use_attention:
            raise ValueError("A model without attention is the bigram rung: build it with build_model(config).")
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positional == "learned":
            self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        elif config.positional == "sinusoidal":
            self.register_buffer("position_table", sinusoidal_encoding(config.block_size, config.n_embd), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = make_norm(config)
        self.lm_head = SoftCappedHead(config.n_embd, config.vocab_size, config.logit_softcap)
        if config.tie_weights:
            # Reading a token in and writing it out use the same vectors: fewer parameters. Off by default:
            # with a char vocabulary the saving is tiny (a measured gain was within the seed spread).
            self.lm_head.weight = self.token_embedding.weight
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight")):
                # Each block adds into the residual stream; scale so the sum's variance does not grow with depth.
                if config.zero_init_residual and config.use_residual:
                    # Start every block as the identity: the stream carries the embeddings untouched until
                    # a block has learned something worth adding (a measured gain was within the seed spread).
                    nn.init.zeros_(param)
                else:
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * max(1, config.n_layer)))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # -- cost ------------------------------------------------------------------------------------
    def num_params(self, exclude_positions: bool = False) -> int:
        total = sum(p.numel() for p in self.parameters())
        if exclude_positions and hasattr(self, "position_embedding"):
            total -= self.position_embedding.weight.numel()
        return total

    def flops_per_token(self, seq_len: int | None = None) -> float:
        return flops_per_token(self.config, seq_len)

    # -- forward paths ---------------------------------------------------------------------------
    def embed(self, idx: torch.Tensor, start: int = 0, hooks: Hooks | None = None) -> torch.Tensor:
        """Token ids (B, T) at positions start..start+T-1 -> vectors (B, T, C)."""
        T = idx.size(1)
        if T + start > self.config.block_size:
            raise ValueError(f"Sequence of {T + start} tokens exceeds block_size {self.config.block_size}.")
        x = self.token_embedding(idx)  # (B, T, C)
        if hooks is not None:
            x = hooks("hook_embed", x)
        positions = None
        if hasattr(self, "position_embedding"):
            positions = self.position_embedding.weight[start:start + T]  # (T, C), rows taken as a view
        elif hasattr(self, "position_table"):
            positions = self.position_table[start:start + T]  # (T, C)
        if positions is not None:
            x = x + (positions if hooks is None else hooks("hook_pos_embed", positions.expand_as(x)))
        return self.drop(x) if self.config.dropout else x

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                hooks: Hooks | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for every position, and the mean cross-entropy when targets (B, T) are given. With
        ``hooks`` the pass is the explicit one and every named point (``babygpt.model.hooks``) goes through them."""
        x = self.embed(idx, hooks=hooks)  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, None if hooks is None else hooks.at(layer), idx)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        return logits, _loss(logits, targets)


LanguageModel = Bigram | GPT


def build_model(config: ModelConfig) -> LanguageModel:
    """The model a config describes: the bigram table for the first rung, the GPT for every rung with attention."""
    return GPT(config) if config.use_attention else Bigram(config)
