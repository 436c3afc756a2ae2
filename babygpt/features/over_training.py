"""Features over training: does a feature of the finished run's SAE exist in SAEs trained at the same hook point
on the run's earlier kept checkpoints, and from when?

A feature's *match* at a checkpoint is the highest cosine between its decoder direction and any decoder direction
of that checkpoint's SAE (the "maximum cosine similarity" used to compare dictionaries). Two dictionaries that
learned nothing also match somewhat — many random directions in few dimensions lie near one another — so the page
states the **chance level**: the best-match cosine the final SAE's features get against a freshly initialised SAE
of the same shape (``chance_level``). A feature *appeared* at the first checkpoint from which every later match
stays at or above the threshold, which is ``APPEARED_AT`` or halfway from the chance level's top to 1, whichever is
higher (``appearance_threshold``). Every SAE starts from its config's seed, so each checkpoint's SAE is trained from
a seed of its own (``checkpoint_seed``), never the final one's: a shared start would make an SAE that barely moved
from it "match" everything. Dead features (fired on none of the held-out text) learned nothing and are left out of
the counts. Directions are compared in the layer's own coordinates, which the later training moves slowly; a
feature that matches nothing early may also be one the layer wrote along axes that turned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from babygpt.features.fit import fit_sae
from babygpt.features.sae import TopKSAE
from babygpt.model.gpt import LanguageModel

# the activations each earlier SAE trains on when a page asks (at most; the final SAE's own count if smaller): a
# kept checkpoint's SAE costs what the final one did per token, and a run may keep twenty
HISTORY_TOKENS = 200_000
APPEARED_AT = 0.7  # the lowest threshold ever used, even where chance is far below it
CHANCE_SEED_OFFSET = 1000  # the random dictionary that measures chance: a seed no checkpoint's SAE uses
CHANCE_QUANTILE = 0.99  # "the top of chance": nearly every random best match lies below it


@dataclass(frozen=True)
class Chance:
    """What a dictionary that learned nothing scores: the final features' best cosines against a fresh random SAE
    of the same shape, as their ``mean`` and ``top`` (the ``CHANCE_QUANTILE`` quantile)."""

    mean: float
    top: float


@dataclass(frozen=True)
class FeatureHistory:
    """For each final feature: its best cosine at each kept step (``steps``, oldest first), and the step it
    appeared at (None: it never matched above ``threshold``, even at the end, or it is dead). ``live`` marks the
    features that fire; ``chance`` is what a random dictionary scores."""

    steps: list[int]
    best_cosine: torch.Tensor  # (F, S)
    best_match: torch.Tensor  # (F, S) the matching feature's index in each step's SAE
    appeared: list[int | None]
    live: torch.Tensor  # (F,) bool
    chance: Chance
    threshold: float

    @property
    def n_live(self) -> int:
        return int(self.live.sum())

    @property
    def n_appeared(self) -> int:
        """Live features present at the last kept step (above the threshold)."""
        return sum(a is not None for a in self.appeared)

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


def checkpoint_seed(final: TopKSAE, index: int) -> int:
    """The seed the ``index``-th kept checkpoint's SAE starts from: never the final SAE's, never another's."""
    return final.config.seed + 1 + index


def chance_level(final: TopKSAE, live: torch.Tensor | None = None) -> Chance:
    """The best-match cosines of the final SAE's (live) features against a freshly initialised SAE of the same
    shape from a seed no other SAE here uses: what "matching" scores when nothing was learned."""
    fresh = TopKSAE(replace(final.config, seed=final.config.seed + CHANCE_SEED_OFFSET))
    cosine, _ = best_matches(final, fresh)
    if live is not None and bool(live.any()):
        cosine = cosine[live]
    return Chance(float(cosine.mean()), float(torch.quantile(cosine, CHANCE_QUANTILE)))


def appearance_threshold(chance: Chance) -> float:
    """A cosine clearly above chance: ``APPEARED_AT``, or halfway from the top of chance to 1 if that is higher."""
    return max(APPEARED_AT, (1 + chance.top) / 2)


def feature_history(final: TopKSAE, by_step: list[tuple[int, TopKSAE]], live: torch.Tensor | None = None,
                    threshold: float | None = None) -> FeatureHistory:
    """Match the final SAE's features against SAEs at each kept step (``by_step``: (step, SAE), any order).
    ``live`` (F,) bool marks the features that fire (all, if not given); dead ones never appear. The threshold is
    ``appearance_threshold`` of the chance level unless given."""
    live = torch.ones(final.config.n_features, dtype=torch.bool) if live is None else live.bool()
    chance = chance_level(final, live)
    threshold = appearance_threshold(chance) if threshold is None else threshold
    by_step = sorted(by_step, key=lambda pair: pair[0])
    steps = [s for s, _ in by_step]
    pairs = [best_matches(final, sae) for _, sae in by_step]
    cosine = torch.stack([c for c, _ in pairs], dim=1) if pairs else torch.zeros(final.config.n_features, 0)
    match = torch.stack([m for _, m in pairs], dim=1) if pairs else torch.zeros(final.config.n_features, 0, dtype=torch.long)
    appeared: list[int | None] = []
    for row, alive in zip(cosine, live.tolist(), strict=True):
        if not alive:
            appeared.append(None)
            continue
        present = (row >= threshold).tolist()
        first = None
        for i in range(len(present) - 1, -1, -1):  # walk back from the end while it stays present
            if not present[i]:
                break
            first = steps[i]
        appeared.append(first)
    return FeatureHistory(steps, cosine, match, appeared, live, chance, threshold)


def history_over_checkpoints(final: TopKSAE, checkpoints: list[tuple[int, LanguageModel]], ids: torch.Tensor,
                             tokens: int, live: torch.Tensor | None = None, threshold: float | None = None,
                             on_checkpoint: Callable[[int, int, int], None] | None = None) -> FeatureHistory:
    """Train an SAE of the final one's settings, each from its own seed (``checkpoint_seed``), on each kept
    checkpoint's model (``checkpoints``: (step, model)) over the same text, and match the final SAE's features
    against them. Each SAE costs what the final one did (``babygpt.features.cost``), so the caller bounds how many
    checkpoints it asks for; ``on_checkpoint(step, i, n)`` hears each one before it trains (i from 1). A run's kept
    checkpoints come as this list from ``babygpt.store.kept.kept_models``."""
    by_step = []
    for i, (step, model) in enumerate(checkpoints):
        if on_checkpoint is not None:
            on_checkpoint(step, i + 1, len(checkpoints))
        config = replace(final.config, seed=checkpoint_seed(final, i))
        by_step.append((step, fit_sae(model, ids, config, tokens=tokens).sae))
    return feature_history(final, by_step, live, threshold)
