"""Estimating a model's loss on a split: a plain function of the model, the data, the batches and the precision,
so the trainer's evaluations and the CLI's ``eval`` of a saved run compute it the same way (no trainer, no
optimizer)."""

from __future__ import annotations

import torch

from babygpt.model.gpt import LanguageModel
from babygpt.model.sizing import eval_batches_per_forward
from babygpt.text.corpus import Split, get_batch, to_device
from babygpt.training import devices, distributed


def eval_seed(seed: int, step: int, rank: int = 0) -> int:
    """The evaluation generator's seed at ``step``: a stream of its own, so evaluating never moves the training
    batches (and resume stays exact), and each rank draws its own batches."""
    return seed + 1_000_003 * (step + 1) + rank


@torch.no_grad()
def estimate_loss(model: LanguageModel, split: Split, batch_size: int, iters: int, dtype: str = "float32",
                  seed: int = 0) -> dict[str, float]:
    """Mean loss over ``iters`` random batches of ``batch_size`` windows of each split (``train``, ``val``), drawn
    from a generator seeded by ``seed`` (``eval_seed``), in evaluation mode and ``dtype`` mixed precision on the
    model's device; the model's mode is put back afterwards.

    The batches are drawn one by one, as always, but go through the model several at a time
    (``eval_batches_per_forward``: as many as fit in a training step's memory), and both splits reach the host in one
    sync: the mean over equal batches is the same, the forward passes are fewer. Under torchrun every rank evaluates
    its own batches and the means are averaged across ranks.
    """
    generator = torch.Generator().manual_seed(seed)
    per_forward = eval_batches_per_forward(model.config, iters)
    block, device = model.config.block_size, next(model.parameters()).device
    was_training = model.training
    model.eval()
    means = []
    for data in (split.train, split.val):
        total = torch.zeros((), device=device)
        for first in range(0, iters, per_forward):
            count = min(per_forward, iters - first)
            windows = [get_batch(data, block, batch_size, generator) for _ in range(count)]
            x, y = (to_device(torch.cat(part), device) for part in zip(*windows, strict=True))
            with devices.autocast(device, dtype):
                total += model(x, y)[1].float() * count  # the mean of `count` equal batches
        means.append(distributed.mean(total / iters))
    model.train(was_training)
    train, val = torch.stack(means).tolist()
    return {"train": train, "val": val}
