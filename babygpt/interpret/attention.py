"""Read a trained model's internals for the views: attention maps, embeddings, q·k statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import attention_maps
from babygpt.model.gpt import LanguageModel
from babygpt.text.tokenizers import Tokenizer
from babygpt.training.sample import prepare_prompt

KINDS = {"raw": "raw scores q·kᵀ", "scaled": "scaled scores q·kᵀ/√d", "weights": "softmax weights"}


@dataclass(frozen=True)
class AttentionView:
    tokens: list[str]
    layers: list[dict[str, np.ndarray]]  # per layer: kind -> (n_head, T, T)
    notices: list[str]

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    @property
    def n_head(self) -> int:
        return self.layers[0]["weights"].shape[0] if self.layers else 0


@torch.no_grad()
def attention_for_prompt(model: LanguageModel, tokenizer: Tokenizer, prompt: str) -> AttentionView:
    if not model.config.use_attention:
        raise BabyGPTError("The bigram model has no attention: each token only looks at itself. "
                           "Train a single-head or larger preset to see attention.")
    encoded = prepare_prompt(tokenizer, prompt, model.config.block_size)
    ids = encoded.ids[-model.config.block_size:]
    device = next(model.parameters()).device
    maps = attention_maps(model, torch.tensor([ids], device=device))
    layers = [{kind: getattr(m, kind)[0].float().cpu().numpy() for kind in KINDS} for m in maps]
    return AttentionView([tokenizer.token_text(i) for i in ids], layers, encoded.notices)


@torch.no_grad()
def token_embeddings_2d(model: LanguageModel) -> np.ndarray:
    """PCA of the token embedding table to two dimensions (rows follow token ids)."""
    weights = model.token_embedding.weight.detach().float().cpu()
    centered = weights - weights.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    return (centered @ v[:2].T).numpy()


@torch.no_grad()
def position_vectors(model: LanguageModel) -> np.ndarray:
    """The (block_size, n_embd) positional encodings the model adds to its token embeddings."""
    if hasattr(model, "position_embedding"):
        return model.position_embedding.weight.detach().float().cpu().numpy()
    if hasattr(model, "position_table"):
        return model.position_table.detach().float().cpu().numpy()
    raise BabyGPTError("This model has no positional encoding (the bigram rung, or one trained with positional none).")


def cosine_similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    return unit @ unit.T


def random_qk_scores(head_size: int, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """q·k for random unit-variance q and k: unscaled (variance ≈ head_size) and scaled (≈ 1)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, head_size, generator=gen)
    k = torch.randn(n, head_size, generator=gen)
    raw = (q * k).sum(-1)
    return raw.numpy(), (raw / head_size**0.5).numpy()


def visible_cells(T: int, causal: bool) -> np.ndarray:
    """(T, T) booleans: the keys each query could attend to: at or before it under the causal mask, all without."""
    return np.tril(np.ones((T, T), dtype=bool)) if causal else np.ones((T, T), dtype=bool)


def softmax_row(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max())
    return e / e.sum()


def mean_top_weight(score_rows: np.ndarray) -> float:
    """Softmax each row (−inf entries are masked out) and average the largest weight: 1 is one-hot."""
    e = np.exp(score_rows - score_rows.max(-1, keepdims=True))
    return float((e / e.sum(-1, keepdims=True)).max(-1).mean())
