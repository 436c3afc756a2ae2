"""A TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and its training loop.

An SAE rewrites one layer's activation x (C numbers) as a sparse sum of learned directions:

    z = TopK(ReLU(W_enc · (x − b_dec) + b_enc))      (n_features numbers, at most k of them non-zero)
    x̂ = W_dec · z + b_dec

Each row of ``W_dec`` is a *feature*'s direction in the layer, kept at unit length so a feature's strength is the
number in z, not hidden in the length of its direction. TopK keeps exactly k features per token instead of an L1
penalty, so sparsity is a setting rather than a coefficient to tune, and no feature's strength is shrunk by the
penalty. Features that stop firing ("dead") are brought back by the auxiliary loss AuxK: the k_aux dead features
with the highest pre-activations are asked to reconstruct what the live ones missed, which gives them gradient.

Nothing here reads the store or a model: training takes a (N, C) tensor of activations, so it is tested on planted
directions whose answer is known (``babygpt.features.truth``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

from babygpt.errors import BabyGPTError

MIN_EXPANSION, MAX_EXPANSION = 1, 64  # dictionary size as a multiple of the layer's width
HOOKS = ("resid_post", "mlp_out")  # the layers an SAE reads: after a block, or a block's feed-forward output


@dataclass(frozen=True)
class SAEConfig:
    """What an SAE is and how it trains: the single source of its shape.

    ``n_features`` is the dictionary size (4×–32× the width ``d_in`` is usual); ``k`` how many features may fire
    per token; ``aux_k`` how many dead features AuxK revives per token (0: no AuxK; Gao et al. use d_in/2) with
    weight ``aux_coef`` (their 1/32); a feature is dead after ``dead_after_tokens`` tokens without firing.
    """

    d_in: int = 128
    n_features: int = 1024
    k: int = 32
    layer: int = 0
    hook: str = "resid_post"
    lr: float = 1e-3
    batch_size: int = 4096
    epochs: int = 1
    aux_k: int = 64
    aux_coef: float = 1 / 32
    dead_after_tokens: int = 100_000
    seed: int = 0

    @property
    def hook_name(self) -> str:
        """The hook point this SAE reads, named as TransformerLens names it."""
        return hook_name(self.layer, self.hook)

    @property
    def expansion(self) -> float:
        return self.n_features / self.d_in

    def validate(self) -> SAEConfig:
        _check(self.d_in >= 1, f"The layer width must be positive, got {self.d_in}.")
        _check(self.hook in HOOKS, f"Unknown layer {self.hook!r}; choose {' or '.join(HOOKS)}.")
        _check(self.layer >= 0, f"The layer must be 0 or more, got {self.layer}.")
        lo, hi = MIN_EXPANSION * self.d_in, MAX_EXPANSION * self.d_in
        _check(lo <= self.n_features <= hi, f"{self.n_features:,} features for a layer of width {self.d_in}: choose "
               f"between {lo:,} and {hi:,} ({MIN_EXPANSION}× to {MAX_EXPANSION}× the width; 4×–32× is usual).")
        _check(isinstance(self.k, int) and not isinstance(self.k, bool),
               f"k counts features, so it is a whole number, got {self.k}.")
        _check(1 <= self.k <= self.n_features, f"k must be between 1 and the {self.n_features:,} features, got {self.k}.")
        _check(self.aux_k >= 0, f"aux_k must be zero (no AuxK) or more, got {self.aux_k}.")
        _check(self.lr > 0 and math.isfinite(self.lr), f"The learning rate must be positive, got {self.lr}.")
        _check(self.batch_size >= 1, f"The batch must hold at least one token, got {self.batch_size}.")
        _check(self.epochs >= 1, f"Train for at least one pass over the activations, got {self.epochs}.")
        _check(self.aux_coef >= 0, f"aux_coef must be zero or more, got {self.aux_coef}.")
        _check(self.dead_after_tokens >= 1, f"dead_after_tokens must be positive, got {self.dead_after_tokens}.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SAEConfig:
        """A stored config; unknown keys are refused by name (it comes from another version or another tool)."""
        if not isinstance(data, dict):
            raise BabyGPTError("The SAE's config is not a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BabyGPTError(f"The SAE's config has settings this version does not know: {', '.join(unknown[:5])}.")
        try:
            return cls(**data).validate()
        except TypeError as exc:
            raise BabyGPTError(f"The SAE's config is damaged: {exc}.") from exc


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BabyGPTError(message)


def hook_name(layer: int, hook: str) -> str:
    """``blocks.{layer}.hook_{hook}``: the one place a (layer, kind) pair becomes a hook point's name."""
    if hook not in HOOKS:
        raise BabyGPTError(f"Unknown layer {hook!r}; choose {' or '.join(HOOKS)}.")
    return f"blocks.{layer}.hook_{hook}"


class TopKSAE(nn.Module):
    """The autoencoder. Shapes: N tokens, C = d_in, F = n_features. ``W_enc`` (C, F), ``W_dec`` (F, C) as SAELens
    stores them, so an export is the tensors themselves."""

    def __init__(self, config: SAEConfig):
        super().__init__()
        self.config = config.validate()
        C, F = config.d_in, config.n_features
        generator = torch.Generator().manual_seed(config.seed)
        W_dec = torch.randn(F, C, generator=generator)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        # Encoder starts as the decoder's transpose: each feature first reads the direction it writes (Gao et al.),
        # which makes fewer features dead from the start.
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(F))
        self.b_dec = nn.Parameter(torch.zeros(C))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """(…, C) -> (…, F): what each feature reads before TopK keeps the largest."""
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(…, C) -> (…, F): the k strongest features of each token, the rest zero."""
        pre = self.pre_activations(x)
        top = pre.topk(self.config.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(…, F) -> (…, C): the features' directions weighted by their strengths, plus the decoder bias."""
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Every feature's direction back to unit length (after each optimizer step)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Drop the part of each decoder row's gradient along the row itself: that part only changes its length,
        which ``normalize_decoder`` undoes, and it would disturb Adam's statistics (Gao et al., Appendix A)."""
        if self.W_dec.grad is not None:
            along = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
            self.W_dec.grad -= along * self.W_dec


@dataclass
class TrainProgress:
    """What a training step reports: for a progress bar and a stop button."""

    step: int
    steps: int
    tokens: int
    loss: float  # normalized MSE of the batch (0 perfect, 1 no better than the mean)
    dead: int  # features that have not fired for ``dead_after_tokens`` tokens
    elapsed_s: float


@dataclass
class TrainResult:
    sae: TopKSAE
    steps: int
    tokens: int
    stopped: bool  # True: ``should_stop`` asked to end before the last step (the SAE so far is returned)
    elapsed_s: float
    history: list[TrainProgress]


def normalized_mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Squared error over the data's own spread around its mean: 1 is no better than predicting the mean."""
    return (x_hat - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum().clamp_min(1e-12)


def aux_k_loss(sae: TopKSAE, x: torch.Tensor, x_hat: torch.Tensor, pre: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """AuxK: the top ``aux_k`` *dead* features try to reconstruct the error the live ones left (Gao et al. §A.2)."""
    n_dead = int(dead.sum())
    if n_dead == 0 or sae.config.aux_k == 0:
        return x.new_zeros(())
    k_aux = min(sae.config.aux_k, n_dead)
    residual = (x - x_hat).detach()
    top = pre.masked_fill(~dead, 0.0).topk(k_aux, dim=-1)
    z_aux = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    return normalized_mse(residual, z_aux @ sae.W_dec)


def train_sae(acts: torch.Tensor, config: SAEConfig, on_step: Callable[[TrainProgress], None] | None = None,
              should_stop: Callable[[], bool] = lambda: False, report_every: int = 10) -> TrainResult:
    """Train an SAE on ``acts`` (N, C), shuffled once per epoch from ``config.seed``.

    ``on_step`` gets a ``TrainProgress`` every ``report_every`` steps and at the end; ``should_stop`` is asked
    between steps, so a stop ends at the next step with the SAE learned so far.
    """
    config = config.validate()
    if acts.ndim != 2 or acts.size(1) != config.d_in:
        raise BabyGPTError(f"Activations of shape {tuple(acts.shape)} do not fit an SAE of width {config.d_in}.")
    if acts.size(0) < config.k:
        raise BabyGPTError(f"{acts.size(0)} activations are too few to train on; collect more text.")
    scale = input_scale(acts, config.d_in)
    sae = TopKSAE(config)
    with torch.no_grad():
        sae.b_dec.copy_(acts[: min(len(acts), 65_536)].float().mean(dim=0) * scale)  # start from the data's centre
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=6.25e-10)
    n, batch = acts.size(0), min(config.batch_size, acts.size(0))
    steps_per_epoch = max(1, n // batch)
    steps = steps_per_epoch * config.epochs
    since_fired = torch.zeros(config.n_features, dtype=torch.long)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[TrainProgress] = []
    start, step, tokens, stopped = time.perf_counter(), 0, 0, False
    loss_value = float("nan")
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(steps_per_epoch):
            if should_stop():
                stopped = True
                break
            x = acts[order[i * batch:(i + 1) * batch]].float() * scale
            pre = sae.pre_activations(x)
            top = pre.topk(config.k, dim=-1)
            z = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
            x_hat = sae.decode(z)
            loss = normalized_mse(x, x_hat)
            dead = since_fired >= config.dead_after_tokens
            if config.aux_k and config.aux_coef:
                loss = loss + config.aux_coef * aux_k_loss(sae, x, x_hat, pre, dead)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            sae.remove_parallel_gradient()
            optimizer.step()
            sae.normalize_decoder()
            with torch.no_grad():
                fired = (z > 0).any(dim=0)
                since_fired += x.size(0)
                since_fired[fired] = 0
            step += 1
            tokens += x.size(0)
            loss_value = float(normalized_mse(x, x_hat.detach()))
            if on_step is not None and (step % report_every == 0 or step == steps):
                progress = TrainProgress(step, steps, tokens, loss_value,
                                         int((since_fired >= config.dead_after_tokens).sum()),
                                         time.perf_counter() - start)
                history.append(progress)
                on_step(progress)
        if stopped:
            break
    fold_scale(sae, scale)
    sae.eval()
    return TrainResult(sae, step, tokens, stopped, time.perf_counter() - start, history)


def input_scale(acts: torch.Tensor, d_in: int) -> float:
    """The factor that brings the activations' mean squared length to ``d_in`` while training (SAELens's
    "expected_average_only_in"): Adam's steps have one size whatever the data's, so a layer writing tiny numbers
    (an early feed-forward) would otherwise be swamped by the steps themselves."""
    sample = acts[: min(len(acts), 65_536)].float()
    mean_square = float(sample.pow(2).sum(dim=1).mean())
    return math.sqrt(d_in / mean_square) if mean_square > 0 else 1.0


@torch.no_grad()
def fold_scale(sae: TopKSAE, scale: float) -> None:
    """Make an SAE trained on activations × ``scale`` read the activations themselves: for a positive scale,
    TopK(ReLU((x·s − b_dec)·W_enc + b_enc)) / s = TopK(ReLU((x − b_dec/s)·W_enc + b_enc/s)), and the
    reconstruction divides by s the same way, so the biases are divided and the (unit) directions stay."""
    sae.b_enc /= scale
    sae.b_dec /= scale
