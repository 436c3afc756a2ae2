"""What training an SAE costs, estimated before it starts, and the limits that refuse it with the reason.

Memory: the activations held for training (tokens × width × 4 bytes), the SAE with its gradient and Adam's two
moments (4 copies of 2·C·F + F + C numbers), one batch's (tokens × features) tensors (about 8 of them alive in the
backward pass) and the model's forward pass over one collection batch. Time: every stage a job goes through —
starting its process and loading the run (``STARTUP_S``); reading the activations, one hooked forward pass per
token read (``forward_flops_per_token``); training, about 12·C·F per token and epoch (encoder and decoder, forward
and backward); measuring, on the held-out tokens one pass to read them, the SAE over them (4·C·F) and three more
passes for loss recovered (intact, zeroed, with the SAE) — at a cautious ``FLOPS_PER_CORE``: a job shares a
machine with training runs and students, and the hooked pass runs far below the matmuls' peak.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.features.collect import FORWARD_BATCH
from babygpt.features.sae import SAEConfig
from babygpt.model.sizing import JOB_MEMORY_ENV, forward_flops_per_token, total_memory_bytes
from babygpt.units import format_bytes, format_duration

# float32 FLOP/s counted per core: about a fifth of what an idle core sustains (bench/sae_train.py: ~20 GFLOP/s on
# the hooked pass, ~28 on the SAE's matmuls), because the server's cores are shared and loaded
FLOPS_PER_CORE = 4.0e9
STARTUP_S = 15.0  # a worker process: importing torch, loading the run, encoding its text
LOSS_PASSES = 3  # loss recovered runs the model intact, with the layer zeroed and with the SAE in its place
BATCH_COPIES = 8  # (tokens × features) tensors alive at once in a step: pre-activations, z, top-k, AuxK, grads
MAX_TOKENS_ENV, MAX_SECONDS_ENV = "BABYGPT_SAE_MAX_TOKENS", "BABYGPT_SAE_MAX_SECONDS"
DEFAULT_MAX_TOKENS = 2_000_000
DEFAULT_MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class SAECost:
    """``seconds`` is the sum of ``stages`` ((name, seconds) in the order a job goes through them)."""

    memory_bytes: int
    seconds: float  # on ``cores`` cores
    flops: float
    tokens: int
    stages: tuple[tuple[str, float], ...] = ()

    def describe(self) -> str:
        return f"about {format_bytes(self.memory_bytes)} and {format_duration(self.seconds)}"


def estimate_cost(model: ModelConfig, sae: SAEConfig, tokens: int, cores: int = 1, eval_tokens: int = 0) -> SAECost:
    """Memory and time to collect ``tokens`` activations of ``model`` (the held-out ones included), train ``sae``
    on them and measure it on ``eval_tokens`` of them (0: no measuring, as when only training is asked about)."""
    C, F = sae.d_in, sae.n_features
    batch = min(sae.batch_size, max(1, tokens))
    parameters = 2 * C * F + F + C
    forward = FORWARD_BATCH * model.block_size * (12 * model.n_embd + model.n_layer * model.n_head * model.block_size)
    memory = tokens * C * 4 + parameters * 4 * 4 + batch * F * 4 * BATCH_COPIES + forward * 4
    per_token = forward_flops_per_token(model)
    flops_by_stage = {
        "reading activations": tokens * per_token,
        "training": max(0, tokens - eval_tokens) * sae.epochs * 12 * C * F,
        "measuring": eval_tokens * (LOSS_PASSES * per_token + 4 * C * F),
    }
    rate = FLOPS_PER_CORE * max(1, cores)
    stages = (("starting", STARTUP_S), *((name, flops / rate) for name, flops in flops_by_stage.items()))
    flops = sum(flops_by_stage.values())
    return SAECost(int(memory), sum(seconds for _, seconds in stages), flops, tokens, stages)


@dataclass(frozen=True)
class SAELimits:
    """What one SAE job may use on this server: ``memory_bytes`` (the same per-job memory a training job gets),
    ``max_tokens`` activations, ``max_seconds`` of estimated time."""

    memory_bytes: int
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_seconds: float = DEFAULT_MAX_SECONDS

    @classmethod
    def from_env(cls, jobs_at_once: int = 1) -> SAELimits:
        """``BABYGPT_JOB_MEMORY_MB`` (else 80% of this machine's memory shared by the jobs that run at once, as for
        training), ``BABYGPT_SAE_MAX_TOKENS`` and ``BABYGPT_SAE_MAX_SECONDS``."""
        memory_mb = _positive(JOB_MEMORY_ENV)
        memory = int(memory_mb * 2**20) if memory_mb else int(total_memory_bytes() * 0.8 / max(1, jobs_at_once))
        return cls(memory, int(_positive(MAX_TOKENS_ENV) or DEFAULT_MAX_TOKENS),
                   float(_positive(MAX_SECONDS_ENV) or DEFAULT_MAX_SECONDS))

    def problems(self, cost: SAECost) -> list[str]:
        """Why this SAE cannot train here, each in a sentence that says what to change (empty: it can)."""
        found = []
        if cost.tokens > self.max_tokens:
            found.append(f"{cost.tokens:,} tokens of activations is over this server's limit of {self.max_tokens:,}; "
                         "read fewer tokens.")
        if cost.memory_bytes > self.memory_bytes:
            found.append(f"It would need about {format_bytes(cost.memory_bytes)}, over this server's limit of "
                         f"{format_bytes(self.memory_bytes)} for one job; read fewer tokens or choose fewer features.")
        if cost.seconds > self.max_seconds:
            found.append(f"It would take about {format_duration(cost.seconds)}, over this server's limit of "
                         f"{format_duration(self.max_seconds)}; read fewer tokens, train fewer epochs or choose "
                         "fewer features.")
        return found

    def check(self, cost: SAECost) -> None:
        found = self.problems(cost)
        if found:
            raise BabyGPTError(" ".join(found))


def _positive(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value > 0 else None
