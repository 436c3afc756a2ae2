"""Truth: activations built from known sparse directions, so an SAE's answer can be checked against the answer.

``planted_activations`` mixes ``n_directions`` random unit directions into each token, each present with
probability ``active / n_directions`` at a random strength, plus a little noise (the "toy model of
superposition" setting, with more directions than dimensions). ``recovered`` says, for each planted direction, the
best cosine any of the SAE's decoder directions has with it: an SAE that found the features gives most of them
above 0.9. ``plant_in_embeddings`` does the same inside a real model: every token's embedding becomes a sparse sum
of planted directions and the blocks add nothing, so the residual stream after any block *is* that sum, and the
whole chain — collection through the hooks, training, the figures — is checked end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from babygpt.features.sae import TopKSAE


@dataclass(frozen=True)
class Planted:
    directions: torch.Tensor  # (M, C) unit rows
    strengths: torch.Tensor  # (N, M) how much of each direction each token holds (mostly zero)


def planted_directions(n_directions: int, width: int, seed: int = 0) -> torch.Tensor:
    """(M, C) random unit directions."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_directions, width, generator=generator)
    return directions / directions.norm(dim=1, keepdim=True)


def planted_strengths(n_tokens: int, n_directions: int, active: float, seed: int = 0) -> torch.Tensor:
    """(N, M): each direction present with probability ``active / M``, at a strength uniform in [0.5, 2.5]."""
    generator = torch.Generator().manual_seed(seed + 1)
    on = torch.rand(n_tokens, n_directions, generator=generator) < active / n_directions
    return on * (0.5 + 2.0 * torch.rand(n_tokens, n_directions, generator=generator))


def planted_activations(n_tokens: int, width: int, n_directions: int, active: float = 3.0, noise: float = 0.01,
                        seed: int = 0) -> tuple[torch.Tensor, Planted]:
    """(N, C) activations that are sparse sums of known directions, and what was planted."""
    directions = planted_directions(n_directions, width, seed)
    strengths = planted_strengths(n_tokens, n_directions, active, seed)
    generator = torch.Generator().manual_seed(seed + 2)
    acts = strengths @ directions + noise * torch.randn(n_tokens, width, generator=generator)
    return acts, Planted(directions, strengths)


def recovered(sae: TopKSAE, directions: torch.Tensor) -> torch.Tensor:
    """(M,) for each planted direction, the best cosine among the SAE's decoder directions."""
    decoder = torch.nn.functional.normalize(sae.W_dec.detach().float(), dim=1)
    return (directions.float() @ decoder.T).max(dim=1).values


@torch.no_grad()
def plant_in_embeddings(model: torch.nn.Module, n_directions: int, per_token: int = 3, seed: int = 0) -> Planted:
    """Make ``model`` (a GPT) write planted directions into its residual stream: token t's embedding is the sum of
    ``per_token`` of the ``n_directions`` directions at random strengths, positions and every block's writes are
    zeroed (attention and feed-forward outputs), so ``blocks.L.hook_resid_post`` is the token's planted sum.
    Returns the directions and, per vocabulary entry, its strengths (V, M)."""
    vocab, width = model.token_embedding.weight.shape
    directions = planted_directions(n_directions, width, seed)
    generator = torch.Generator().manual_seed(seed + 3)
    strengths = torch.zeros(vocab, n_directions)
    for t in range(vocab):
        chosen = torch.randperm(n_directions, generator=generator)[:per_token]
        strengths[t, chosen] = 0.5 + 2.0 * torch.rand(per_token, generator=generator)
    model.token_embedding.weight.copy_(strengths @ directions)
    if hasattr(model, "position_embedding"):
        model.position_embedding.weight.zero_()
    for block in model.blocks:
        for linear in (block.attn.proj, getattr(block.ffn, "down", None)):
            if linear is not None:
                linear.weight.zero_()
    return Planted(directions, strengths)
