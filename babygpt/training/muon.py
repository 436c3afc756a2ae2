"""Muon for the hidden weight matrices, AdamW for everything else, as one optimizer the trainer steps.

Muon (Jordan et al. 2024; the optimizer of the modded-nanogpt speedrun records and of nanochat) keeps SGD momentum
for each 2-D weight of the blocks, then replaces the momentum by the nearest semi-orthogonal matrix U·Vᵀ (its
singular values all set to one) before stepping. An update whose every direction has the same size trains the
rare directions as fast as the common ones, where AdamW's per-element scaling lets a few directions dominate.
Computing U·Vᵀ with an SVD would be slow; ``orthogonalise`` runs five steps of a quintic Newton–Schulz iteration
instead, whose coefficients push every singular value into roughly [0.7, 1.2] rather than exactly to one —
good enough for the step, and a test holds it to the SVD within that band.

Muon suits matrices that map hidden vectors to hidden vectors: the token and value embeddings (rows looked up,
not multiplied), the head (it reads out logits) and the 1-D gains and biases keep AdamW
(``split_parameters``). The trainer sets each group's ``lr`` from its schedule; Muon's group multiplies it by
``lr_scale`` (``muon_lr / lr``), so both follow the same warm-up and decay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn as nn

from babygpt.config import TrainConfig

# a·X + b·(X·Xᵀ)·X + c·(X·Xᵀ)²·X: Keller Jordan's coefficients, chosen to raise small singular values fast
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NEWTON_SCHULZ_STEPS = 5
MUON_MOMENTUM = 0.95  # nanochat's and modded-nanogpt's
ADAM_EPS = 1e-8


def orthogonalise(matrix: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """About U·Vᵀ of ``matrix``'s SVD (every singular value moved near one), by the quintic Newton–Schulz
    iteration, in float32 (a CPU has no fast lower precision for it); (m, n) -> (m, n)."""
    a, b, c = NEWTON_SCHULZ
    x = matrix.float()
    tall = x.size(-2) > x.size(-1)
    if tall:  # iterate on the wide side: X·Xᵀ is then the smaller square
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral norm ≤ Frobenius norm ≤ 1: inside the basin
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).to(matrix.dtype)


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(Muon's, AdamW's): the weights of the blocks' linear layers, and every other trainable parameter."""
    blocks = getattr(model, "blocks", ())
    hidden = [m.weight for block in blocks for m in block.modules() if isinstance(m, nn.Linear)]
    hidden = [p for p in hidden if p.requires_grad and p.dim() == 2]
    chosen = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
    return hidden, rest


class MuonWithAdamW(torch.optim.Optimizer):
    """Groups with ``muon=True`` step by Muon (Nesterov momentum, orthogonalised, scaled by √max(1, rows/cols) so a
    tall matrix's update is as large per row as a square one's); the others by AdamW with decoupled weight decay.
    """

    def __init__(self, groups: Iterable[dict], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99),
                 momentum: float = MUON_MOMENTUM):
        super().__init__(list(groups), dict(lr=lr, lr_scale=1.0, weight_decay=0.0, muon=False, betas=betas,
                                            momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            # its step count lives on the host: a recorded graph would replay the first step's bias correction
            raise RuntimeError("Muon's step is not recordable as a CUDA graph")
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr = float(group["lr"]) * group["lr_scale"]  # a number, even where a CUDA-graph step set a tensor
            for p in group["params"]:
                if p.grad is not None:
                    (self._muon if group["muon"] else self._adamw)(p, group, lr)
        return loss

    def _muon(self, p: torch.Tensor, group: dict, lr: float) -> None:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf, momentum = state["momentum_buffer"], group["momentum"]
        buf.lerp_(p.grad, 1 - momentum)
        update = orthogonalise(p.grad.lerp(buf, momentum))  # Nesterov: the gradient nudged along the momentum
        if group["weight_decay"]:
            p.mul_(1 - lr * group["weight_decay"])
        p.add_(update, alpha=-lr * math.sqrt(max(1.0, p.size(-2) / p.size(-1))))

    def _adamw(self, p: torch.Tensor, group: dict, lr: float) -> None:
        state = self.state[p]
        if "step" not in state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        grad, step = p.grad, state["step"]
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if group["weight_decay"]:
            p.mul_(1 - lr * group["weight_decay"])
        denom = (state["exp_avg_sq"] / (1 - beta2 ** step)).sqrt_().add_(ADAM_EPS)
        p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** step))


def muon_optimizer(model: nn.Module, cfg: TrainConfig) -> MuonWithAdamW:
    """Muon on the blocks' matrices at ``muon_lr``; AdamW at ``lr`` on the rest, weight decay on its matrices
    (the embeddings and the head) only, as ``make_optimizer`` decays AdamW's."""
    hidden, rest = split_parameters(model)
    groups = [
        {"params": hidden, "muon": True, "lr_scale": cfg.muon_lr / cfg.lr},
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    return MuonWithAdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
