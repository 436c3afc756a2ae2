"""Features over training: does a feature of the finished run's SAE exist in SAEs trained at the same hook point
on the run's earlier kept checkpoints, and from when?

A feature's *match* at a checkpoint is the highest cosine between its decoder direction and any decoder direction
of that checkpoint's SAE (the "maximum cosine similarity" used to compare dictionaries). It *appeared* at the first
checkpoint from which every later match stays at or above ``APPEARED_AT`` — before that the layer had no direction
like it. ``history_over_checkpoints`` trains the earlier SAEs itself, one per kept checkpoint's model. Directions
are compared in the layer's own coordinates, which the later training moves slowly; a feature that matches nothing
early may also be one the layer wrote along axes that turned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from babygpt.features.fit import fit_sae
from babygpt.features.sae import TopKSAE
from babygpt.model.gpt import LanguageModel

# the activations each earlier SAE trains on when a page asks (at most; the final SAE's own count if smaller): a
# kept checkpoint's SAE costs what the final one did per token, and a run may keep twenty
HISTORY_TOKENS = 200_000
APPEARED_AT = 0.7  # a cosine this high between two 128-dimensional directions is far beyond chance (≈ 0.09 spread)


@dataclass(frozen=True)
class FeatureHistory:
    """For each final feature: its best cosine at each kept step (``steps``, oldest first), and the step it
    appeared at (None: it never matched well enough to count as present, even at the end)."""

    steps: list[int]
    best_cosine: torch.Tensor  # (F, S)
    best_match: torch.Tensor  # (F, S) the matching feature's index in each step's SAE
    appeared: list[int | None]

    def of(self, feature: int) -> list[tuple[int, float, int]]:
        """(step, cosine, matching feature) for one final feature, oldest step first."""
        return [(s, float(self.best_cosine[feature, i]), int(self.best_match[feature, i]))
                for i, s in enumerate(self.steps)]


def best_matches(final: TopKSAE, earlier: TopKSAE) -> tuple[torch.Tensor, torch.Tensor]:
    """(F,) the best cosine of each final feature's direction among ``earlier``'s, and that feature's index."""
    a = torch.nn.functional.normalize(final.W_dec.detach().float(), dim=1)
    b = torch.nn.functional.normalize(earlier.W_dec.detach().float(), dim=1)
    best = (a @ b.T).max(dim=1)
    return best.values, best.indices


def feature_history(final: TopKSAE, by_step: list[tuple[int, TopKSAE]], threshold: float = APPEARED_AT) -> FeatureHistory:
    """Match the final SAE's features against SAEs at each kept step (``by_step``: (step, SAE), any order)."""
    by_step = sorted(by_step, key=lambda pair: pair[0])
    steps = [s for s, _ in by_step]
    pairs = [best_matches(final, sae) for _, sae in by_step]
    cosine = torch.stack([c for c, _ in pairs], dim=1) if pairs else torch.zeros(final.config.n_features, 0)
    match = torch.stack([m for _, m in pairs], dim=1) if pairs else torch.zeros(final.config.n_features, 0, dtype=torch.long)
    appeared: list[int | None] = []
    for row in cosine:
        present = (row >= threshold).tolist()
        first = None
        for i in range(len(present) - 1, -1, -1):  # walk back from the end while it stays present
            if not present[i]:
                break
            first = steps[i]
        appeared.append(first)
    return FeatureHistory(steps, cosine, match, appeared)


def history_over_checkpoints(final: TopKSAE, checkpoints: list[tuple[int, LanguageModel]], ids: torch.Tensor,
                             tokens: int, threshold: float = APPEARED_AT) -> FeatureHistory:
    """Train an SAE of the final one's settings on each kept checkpoint's model (``checkpoints``: (step, model)),
    over the same text, and match the final SAE's features against them. Each SAE costs what the final one did
    (``babygpt.features.cost``), so the caller bounds how many checkpoints it asks for. A run's kept checkpoints
    come as this list from ``babygpt.store.kept.kept_models``."""
    by_step = [(step, fit_sae(model, ids, final.config, tokens=tokens).sae) for step, model in checkpoints]
    return feature_history(final, by_step, threshold)
