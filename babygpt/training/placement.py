"""Setting up the process and the model a run trains, before any trainer exists (minGPT's shape: the caller builds
the model and hands it to ``Trainer``, which trains what it is given).

``place_process`` settles what this machine trains with (``auto`` device and precision resolved here, per machine),
its CPU threads and, under torchrun, the process group; ``build_model_on`` builds the seeded model (or a
checkpoint's weights) on that device. ``prepare`` does both in the order a run needs. The orchestration, the CLI's
``eval``, benchmarks and tests all start here, so a run is set up the same way wherever it trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from babygpt.config import ModelConfig, TrainConfig
from babygpt.model.gpt import LanguageModel, build_model
from babygpt.training import devices, distributed


@dataclass(frozen=True)
class Placement:
    """Where and how this process trains: the device, the precision settled for it, and its place among ranks."""

    device: torch.device
    dtype: str  # float32, bfloat16 or float16: never "auto", which is resolved for this machine
    dist: distributed.DistInfo = field(default_factory=distributed.DistInfo)


def place_process(train_config: TrainConfig, dist: distributed.DistInfo | None = None) -> Placement:
    """The device and precision this machine settles on, its threads (ranks sharing a machine share its cores)
    and the process group when training with several processes."""
    dist = dist or distributed.DistInfo()
    device = devices.resolve_device(train_config.device)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    dtype = devices.check_dtype(device, train_config.dtype)
    if device.type == "cpu":
        devices.configure_threads(train_config.threads or max(1, devices.default_threads() // dist.local_world_size))
        devices.tune_cpu_allocator()
    distributed.init(dist, device.type)
    return Placement(device, dtype, dist)


def build_model_on(model_config: ModelConfig, placement: Placement, seed: int,
                   model_state: dict[str, torch.Tensor] | None = None) -> LanguageModel:
    """The model, seeded (so the same seed gives the same first weights) or with a checkpoint's weights, on the
    placement's device. Seeding the global generator here also fixes the dropout stream training draws from next."""
    torch.manual_seed(seed)
    model = build_model(model_config.validate())
    if model_state is not None:
        model.load_state_dict(model_state)
    return model.to(placement.device)


def prepare(model_config: ModelConfig, train_config: TrainConfig, model_state: dict[str, torch.Tensor] | None = None,
            dist: distributed.DistInfo | None = None) -> tuple[LanguageModel, Placement]:
    """The process set up and the model built on its device: what ``Trainer`` takes."""
    placement = place_process(train_config.validate(), dist)
    return build_model_on(model_config, placement, train_config.seed, model_state), placement
