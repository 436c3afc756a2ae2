"""The model ladder, in the order of the lesson: the bigram table, one attention head, multi-head attention,
feed-forward, block, the GPT.

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
from babygpt.model.sizing import flops_per_token

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

    def qkv_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Every head's queries, keys and values from one matmul."""
        B, T, C = x.shape
        qkv = self.qkv(x)  # (B, T, C) -> (B, T, 3C)
        qkv = qkv.view(B, T, 3, self.n_head, self.head_size)  # (B, T, 3, nh, hs)
        return qkv.permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv_heads(x).unbind(0)  # each (B, nh, T, hs)
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

    def forward(self, x: torch.Tensor, hooks: Hooks | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), every head at once: through the fused kernel, or with ``hooks`` (a block's)
        through the explicit formula, each named point handed to the hooks."""
        q, k, v = self._heads(x)  # each (B, nh, T, hs)
        if hooks is None:
            dropout = self.dropout if self.training else 0.0
            y = attend(q, k, v, dropout, is_causal=self.causal and q.size(-2) > 1, scale_scores=self.scale_scores)
        else:
            q, k, v = (_heads_hooked(hooks, f"attn.hook_{n}", t) for n, t in zip("qkv", (q, k, v), strict=True))
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


ACTIVATIONS = {"relu2": relu_squared, "gelu": F.gelu, "relu": F.relu, "gelu_tanh": gelu_tanh}


class FeedForward(nn.Module):
    """Per position: expand 4x, non-linearity, project back. Attention gathers; this computes on what was gathered."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.down = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.activation = ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, hooks: Hooks | None = None) -> torch.Tensor:
        hidden = self.activation(self.up(x))  # (B, T, C) -> (B, T, 4C)
        if hooks is not None:
            hidden = hooks("mlp.hook_post", hidden)
        y = self.down(hidden)  # (B, T, 4C) -> (B, T, C)
        return self.dropout(y) if self.dropout.p else y


# --- 4. block -----------------------------------------------------------------------------------

class Block(nn.Module):
    """Attention then feed-forward, each optionally wrapped in pre-norm and a residual connection."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        norm = (lambda: nn.LayerNorm(config.n_embd, bias=config.bias)) if config.use_layernorm else nn.Identity
        self.ln1, self.ln2 = norm(), norm()
        self.attn = MultiHeadAttention(config)
        self.ffn = FeedForward(config) if config.use_ffn else None
        self.residual = config.use_residual

    def add(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """An update joins the residual stream; on the rungs before residual connections it replaces it."""
        return x + update if self.residual else update

    def feed_forward_step(self, x: torch.Tensor) -> torch.Tensor:
        """Each token computes on what attention gathered (rungs without feed-forward pass it on)."""
        return x if self.ffn is None else self.add(x, self.ffn(self.ln2(x)))

    def forward(self, x: torch.Tensor, hooks: Hooks | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C): tokens gather from each other, then each computes on what it gathered.
        With ``hooks`` (this block's), the stream and each update pass through the named points on the way."""
        if hooks is None:
            return self.feed_forward_step(self.add(x, self.attn(self.ln1(x))))
        x = hooks("hook_resid_pre", x)
        x = hooks("hook_resid_mid", self.add(x, hooks("hook_attn_out", self.attn(self.ln1(x), hooks))))
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
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias) if config.use_layernorm else nn.Identity()
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
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
            x = block(x, None if hooks is None else hooks.at(layer))  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        return logits, _loss(logits, targets)


LanguageModel = Bigram | GPT


def build_model(config: ModelConfig) -> LanguageModel:
    """The model a config describes: the bigram table for the first rung, the GPT for every rung with attention."""
    return GPT(config) if config.use_attention else Bigram(config)
