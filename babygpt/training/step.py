"""What a training step needs on a GPU beyond the plain loop: batches that arrive before they are needed, and
the whole step replayed as one CUDA graph so the GPU does not wait for Python.

A model of the size this project trains launches a few hundred small kernels a step; on a GPU each launch costs
more host time than the kernel runs, so an eager step is bound by Python and the driver (the app's default model:
a 768-token step took 9 ms on an H200, the GPU idle most of it). A CUDA graph records the step's kernels once and
replays them with one launch. What that requires shapes this module:

- the step reads its inputs from fixed buffers (``StaticStep.x``/``y``) and its learning rate from a tensor, since a
  graph replays the same addresses and cannot take a new Python number;
- AdamW runs ``capturable`` (its step counters on the device) and clipping runs without a host sync;
- recording needs a few real steps first (to create the optimizer's state and let libraries pick kernels); those
  steps would change the model, so the weights, the optimizer state and the random state are put back afterwards
  and the run trains exactly the steps it was asked for.

``StaticStep`` is the step written that way; it runs as it is on any device (the tests run it on the CPU against
the plain step) and ``CudaGraphStep`` records it once and replays it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from babygpt.text.corpus import get_batch

WARMUP_STEPS = 3  # real steps before recording: the optimizer's state exists and cuBLAS has chosen its kernels


class BatchFeed:
    """Training batches from a seeded generator; on a GPU the next batch is drawn and copied while this step runs.

    Drawing ahead moves the generator past a batch no step has used yet, so ``generator_state`` reports the state
    from before that draw: a checkpoint taken now resumes with exactly the batch the next step would have had.
    """

    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator,
                 device: torch.device):
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.generator, self.device = generator, device
        self.ahead = device.type == "cuda"  # on the CPU there is nothing to overlap with
        self._next: tuple[torch.Tensor, torch.Tensor] | None = None
        self._state_before_next: torch.Tensor | None = None

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        # on CUDA get_batch copies from pinned memory without blocking: the copy overlaps the running step
        return get_batch(self.data, self.block_size, self.batch_size, self.generator, self.device)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._next if self._next is not None else self._draw()
        if self.ahead:
            self._state_before_next = self.generator.get_state()
            self._next = self._draw()
        return batch

    def generator_state(self) -> torch.Tensor:
        """The state the next unused batch is drawn from (what a checkpoint must carry)."""
        return self._state_before_next if self._next is not None else self.generator.get_state()

    def reset(self) -> None:
        """Forget the batch drawn ahead (after the generator was set from a checkpoint)."""
        self._next = self._state_before_next = None


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state as the plain step keeps it: learning rates as numbers, not capturable, so a checkpoint
    written with CUDA graphs resumes anywhere (a CPU, a run without graphs) and one written without them resumes
    with graphs."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        group["capturable"] = False
    return state


class StaticStep:
    """One training step that reads fixed input buffers and a learning-rate tensor and syncs nothing with the host.

    ``loss(x, y)`` is the forward pass with its autocast; ``run()`` is forward, backward, clipping and the
    optimizer, on whatever ``x``, ``y`` and ``lr`` hold. Gradients are overwritten, never accumulated: they are set
    to None before the first run, so each backward allocates them (and a recorded backward writes the same memory).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch_shape: tuple[int, int],
                 device: torch.device, grad_clip: float):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss
        self.grad_clip = grad_clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.x = torch.zeros(batch_shape, dtype=torch.long, device=device)
        self.y = torch.zeros(batch_shape, dtype=torch.long, device=device)
        self.lr = torch.zeros((), dtype=torch.float32, device=device)
        for group in optimizer.param_groups:  # every group reads the one tensor; capturable keeps AdamW on the device
            group["lr"] = self.lr
            group["capturable"] = True
        self.last_loss: torch.Tensor | None = None

    def load(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        self.x.copy_(x, non_blocking=True)
        self.y.copy_(y, non_blocking=True)
        self.lr.fill_(lr)

    def run(self) -> torch.Tensor:
        loss = self.loss_fn(self.x, self.y)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        self.last_loss = loss.detach()
        return self.last_loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        self.load(x, y, lr)
        self.optimizer.zero_grad(set_to_none=True)
        return self.run().float().clone()


class _Snapshot:
    """The weights, the optimizer's tensors and the random state, to put back after the warm-up steps."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.weights = [p.detach().clone() for p in model.parameters()]
        self.optimizer_state = {id(p): {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                                for p, s in optimizer.state.items()}
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        """In place: the recorded graph keeps the addresses of these tensors."""
        with torch.no_grad():
            for param, saved in zip(self.model.parameters(), self.weights, strict=True):
                param.copy_(saved)
            for param, state in self.optimizer.state.items():
                saved = self.optimizer_state.get(id(param))
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):
                        value.copy_(saved[key]) if saved is not None else value.zero_()  # fresh: no history yet
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, self.device)


class CudaGraphStep:
    """``StaticStep`` recorded once as a CUDA graph and replayed every step: one launch instead of hundreds.

    The first call warms up (``WARMUP_STEPS`` real steps on a side stream, then weights, optimizer state and random
    state put back), records, and replays; later calls copy the batch in and replay. The returned loss is a copy,
    so the caller may keep it past the next step without a host sync.
    """

    def __init__(self, static: StaticStep, device: torch.device):
        self.static, self.device = static, device
        self.graph: torch.cuda.CUDAGraph | None = None

    def _record(self) -> None:
        snapshot = _Snapshot(self.static.model, self.static.optimizer, self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        try:
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self.static.optimizer.zero_grad(set_to_none=True)
                    self.static.run()
        finally:  # a failed warm-up must not leave the model a few steps ahead
            torch.cuda.current_stream(self.device).wait_stream(side)
            snapshot.restore()
        self.static.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static.run()
        self.graph = graph

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        self.static.load(x, y, lr)
        if self.graph is None:
            self._record()  # recording runs nothing: the replay below is the first real step
        self.graph.replay()
        return self.static.last_loss.float().clone()


def graph_obstacle(device: torch.device, dtype: str, grad_accum: int, distributed: bool) -> str | None:
    """Why this run cannot replay its step as a CUDA graph, or None when it can."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA GPU"
    if dtype == "float16":
        return "float16 needs a loss scaler that checks for overflow on the host every step"
    if grad_accum > 1:
        return "gradient accumulation runs several micro-batches a step"
    if distributed:
        return "several processes average gradients between backward and the optimizer"
    return None

