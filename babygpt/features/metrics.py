"""The figures the field judges an SAE by, each defined in docs/features.md and tested on a case whose answer is
known (tests/test_sae.py):

* **fraction of variance explained** — 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²: 1 is a perfect reconstruction, 0 no better
  than the activations' mean;
* **L0** — features active per token, averaged (TopK makes it at most k);
* **dead** features fire on none of the tokens read, **dense** ones on more than ``DENSE_FREQUENCY`` of them;
* **loss recovered** — the model's loss with the SAE's reconstruction put in place of the activation, as a share
  of the way from the loss with the activation zeroed back to the intact model's loss: 1 the SAE loses nothing,
  0 it is as bad as removing the layer's activation.

The loss figures write through the one explicit pass (``babygpt.interpret.hooked.run_with_hooks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from babygpt.features.sae import TopKSAE
from babygpt.interpret.hooked import run_with_hooks
from babygpt.model.gpt import LanguageModel

DENSE_FREQUENCY = 0.1  # a feature firing on more than 1 token in 10 says little about any one of them
EVAL_BATCH = 4096


def variance_explained(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² over all tokens (rows)."""
    x, x_hat = x.double(), x_hat.double()
    total = (x - x.mean(dim=0)).pow(2).sum()
    return float(1 - (x - x_hat).pow(2).sum() / total) if total > 0 else float("nan")


def l0(z: torch.Tensor) -> float:
    """Features active per token, averaged over tokens."""
    return float((z > 0).sum(dim=-1).double().mean())


def firing_frequency(z: torch.Tensor) -> torch.Tensor:
    """(F,) the share of tokens each feature fires on."""
    return (z > 0).double().mean(dim=0)


@dataclass(frozen=True)
class SAEFigures:
    """What the SAE page shows at the top, and the stored SAE's config carries."""

    variance_explained: float
    l0: float
    dead: int
    dense: int
    n_features: int
    tokens: int  # how many activations the figures were read over
    loss_intact: float | None = None
    loss_zero_ablated: float | None = None
    loss_with_sae: float | None = None
    loss_recovered: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SAEFigures:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@torch.no_grad()
def encode_all(sae: TopKSAE, acts: torch.Tensor, batch: int = EVAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, x̂) for every row of ``acts``, batch by batch: z (N, F), x̂ (N, C)."""
    zs, recon = [], []
    for i in range(0, acts.size(0), batch):
        z = sae.encode(acts[i:i + batch].float())
        zs.append(z)
        recon.append(sae.decode(z))
    return torch.cat(zs), torch.cat(recon)


@torch.no_grad()
def reconstruction_figures(sae: TopKSAE, acts: torch.Tensor) -> SAEFigures:
    """Variance explained, L0, dead and dense features over ``acts`` (N, C)."""
    z, x_hat = encode_all(sae, acts)
    frequency = firing_frequency(z)
    return SAEFigures(variance_explained(acts, x_hat), l0(z), int((frequency == 0).sum()),
                      int((frequency > DENSE_FREQUENCY).sum()), sae.config.n_features, acts.size(0))


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean cross-entropy of predicting each window's next token (the last position has none and is left out)."""
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), ids[:, 1:].reshape(-1)))


@torch.no_grad()
def loss_figures(model: LanguageModel, sae: TopKSAE, windows: torch.Tensor, batch: int = 32,
                 on_batch: Callable[[int, int], None] | None = None) -> tuple[float, float, float]:
    """(intact, zero-ablated, with the SAE) next-token losses over ``windows`` (W, T), the SAE's hook point replaced
    by zeros or by the SAE's reconstruction in the model's one pass. ``on_batch(i, n)`` hears each batch done."""
    name = sae.config.hook_name
    device = next(model.parameters()).device
    replace_zero = [(name, lambda act, _name: torch.zeros_like(act))]
    replace_sae = [(name, lambda act, _name: sae(act.float()).to(act.dtype))]
    totals = [0.0, 0.0, 0.0]
    n = 0
    sae.to(device)
    n_batches = -(-windows.size(0) // batch)
    for i in range(0, windows.size(0), batch):
        ids = windows[i:i + batch].to(device)
        weight = ids.size(0)
        for j, hooks in enumerate(([], replace_zero, replace_sae)):
            totals[j] += next_token_loss(run_with_hooks(model, ids, hooks), ids) * weight
        n += weight
        if on_batch is not None:
            on_batch(i // batch + 1, n_batches)
    return totals[0] / n, totals[1] / n, totals[2] / n


def loss_recovered(intact: float, zero_ablated: float, with_sae: float) -> float:
    """(L_zero − L_sae) / (L_zero − L_intact): the share of the way from zero-ablation back to the intact model."""
    gap = zero_ablated - intact
    return (zero_ablated - with_sae) / gap if gap != 0 else float("nan")


def all_figures(model: LanguageModel, sae: TopKSAE, acts: torch.Tensor, windows: torch.Tensor,
                on_batch: Callable[[int, int], None] | None = None) -> SAEFigures:
    """Every figure at once: the reconstruction's over ``acts`` and the losses over ``windows`` (the slow part:
    ``on_batch(i, n)`` hears each of its batches)."""
    figures = reconstruction_figures(sae, acts)
    intact, zero, with_sae = loss_figures(model, sae, windows, on_batch=on_batch)
    return SAEFigures(**{**figures.to_dict(), "loss_intact": intact, "loss_zero_ablated": zero,
                         "loss_with_sae": with_sae, "loss_recovered": loss_recovered(intact, zero, with_sae)})
