"""The training loop, independent of any UI: the CLI, a notebook and the app's background jobs
all drive this ``Trainer`` and listen through callbacks.

The trainer receives a built model (minGPT's shape): setting up the process and building the model on its device
is ``babygpt.training.placement``'s job, estimating a loss ``babygpt.training.evaluation``'s, so a saved run is
evaluated without a trainer or an optimizer.

Determinism is a feature: batches come from a seeded generator, evaluation uses its own
generator, and the checkpoint carries every RNG state, so a resumed run reproduces the
losses of an uninterrupted one exactly (on the CPU).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from babygpt.config import ModelConfig, TrainConfig, tokens_per_step
from babygpt.errors import BabyGPTError, out_of_memory_message
from babygpt.model.gpt import LanguageModel
from babygpt.status import RunStatus
from babygpt.text.corpus import Split
from babygpt.training import devices, distributed
from babygpt.training.evaluation import estimate_loss, eval_seed
from babygpt.training.muon import muon_optimizer
from babygpt.training.placement import Placement
from babygpt.training.step import BatchFeed, CudaGraphStep, StaticStep, graph_obstacle, portable_optimizer_state


@dataclass(frozen=True)
class StepMetrics:
    step: int
    loss: float  # mean training loss over the steps since the last report
    lr: float
    tokens_per_sec: float  # over the steps since the last report: the steps' own rate, evaluations excluded
    elapsed_s: float  # wall-clock seconds the run has trained (across resumes), evaluations included


@dataclass(frozen=True)
class EvalMetrics:
    step: int
    train_loss: float
    val_loss: float
    elapsed_s: float
    sample: str | None = None


@dataclass(frozen=True)
class TargetReached:
    """The first evaluation at or below ``until_val_loss``, where the run stopped: how long it took to get there."""

    target: float
    step: int
    val_loss: float
    wall_s: float  # wall-clock seconds of training up to that evaluation, every evaluation's time excluded
    eval_s: float  # the seconds spent evaluating up to then, that evaluation included

    def sentence(self) -> str:
        return (f"Stopped at step {self.step:,}: the validation loss {self.val_loss:.4f} reached the target "
                f"(≤ {self.target:g}) after {self.wall_s:.1f} s of training, as asked. That checkpoint is kept.")


@dataclass(frozen=True)
class TrainResult:
    status: RunStatus  # done, stopped or failed
    step: int
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    tokens_per_sec: float
    elapsed_s: float
    message: str = ""
    target: TargetReached | None = None  # set when the run stopped because it reached ``until_val_loss``


class Callbacks:
    """Override what you need; every hook is optional."""

    def on_step(self, trainer: Trainer, metrics: StepMetrics) -> None: ...
    def on_eval(self, trainer: Trainer, metrics: EvalMetrics) -> None: ...
    def on_checkpoint(self, trainer: Trainer) -> None: ...
    def on_done(self, trainer: Trainer, result: TrainResult) -> None: ...
    def on_failed(self, trainer: Trainer, message: str) -> None: ...
    def on_notice(self, trainer: Trainer, message: str) -> None: ...  # something the user should know, once


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_iters``."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if step >= cfg.max_iters:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def muon_lr_at(step: int, cfg: TrainConfig) -> float:
    """Muon's rate at ``step``: ``lr_at`` scaled by ``muon_lr / lr`` (its parameter group's ``lr_scale``), so the
    hidden matrices warm up and decay with the rest at their own peak."""
    return lr_at(step, cfg) * cfg.muon_lr / cfg.lr


def make_optimizer(model: LanguageModel, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only: biases, norms and 1-D params are not shrunk. With Muon
    (``TrainConfig.optimizer_for``) the blocks' matrices step by Muon instead (``babygpt.training.muon``)."""
    if cfg.optimizer_for(model.config) == "muon":
        return muon_optimizer(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TrainingDiverged(BabyGPTError):
    pass


def is_out_of_memory(exc: BaseException) -> bool:
    """PyTorch reports a failed CPU allocation as a RuntimeError and a CUDA one as OutOfMemoryError."""
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(exc)


class Trainer:
    """Trains a built model (``placement.prepare`` builds it and sets up the process) on a split.

    ``placement`` says where the model lives and in which precision it trains, settled once for the process;
    ``trainer_state`` is a checkpoint's ``state_dict`` to continue from exactly.
    """

    def __init__(
        self,
        model: LanguageModel,
        train_config: TrainConfig,
        split: Split,
        placement: Placement,
        callbacks: Sequence[Callbacks] = (),
        sample_fn: Callable[[LanguageModel], str] | None = None,
        trainer_state: dict[str, Any] | None = None,
    ):
        self.model = model
        self.config = train_config.validate()
        self.placement = placement
        self.device, self.dtype, self.dist = placement.device, placement.dtype, placement.dist
        self.callbacks = list(callbacks)
        self.sample_fn = sample_fn
        self._stop = threading.Event()
        self.split = self._checked_split(split)
        self._build()
        self._start_counters()
        if trainer_state is not None:
            self.load_state_dict(trainer_state)
        self._wrap_for_speed()

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    # -- assembly, in the order __init__ runs it ---------------------------------------------------
    def _checked_split(self, split: Split) -> Split:
        block = self.model_config.block_size
        if len(split.train) <= block or len(split.val) <= block:
            raise BabyGPTError(f"The text is too short for block_size {block}.")
        return split

    def _build(self) -> None:
        """The model's optimizer and the batches it trains on."""
        self.optimizer = make_optimizer(self.model, self.config, self.device)
        # each rank draws its own batches; rank 0 draws exactly what a single process would
        self.batch_generator = torch.Generator().manual_seed(self.config.seed + self.dist.rank)
        self.feed = BatchFeed(self.split.train, self.model_config.block_size, self.config.batch_size,
                              self.batch_generator, self.device)
        self.scaler = torch.amp.GradScaler(enabled=self.dtype == "float16")

    def _start_counters(self) -> None:
        self.step = 0
        self.train_elapsed = 0.0  # in training steps only
        self.wall_elapsed = 0.0  # everything run() did: steps, evaluations, samples, checkpoints
        self.eval_elapsed = 0.0  # the evaluations alone (losses, sample, what the callbacks record with them)
        self.target: TargetReached | None = None
        self._wall_origin: float | None = None
        self.tokens_seen = 0
        self.best_val_loss: float | None = None
        self.last_eval: EvalMetrics | None = None
        self.last_train_loss: float | None = None
        self.last_checkpoint_step: int | None = None
        self._rank_rng_states: list[torch.Tensor] | None = None

    def _wrap_for_speed(self) -> None:
        """DDP across processes, torch.compile, and the whole step as one CUDA graph where asked for and the run
        allows it (``step_program``; None: the plain step)."""
        self.module: torch.nn.Module = self.model
        if self.dist.enabled:
            self.module = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = self._compile(self.module) if self.config.compile else self.module
        self._compiled_has_run = False  # a compiled forward that worked once is trusted from then on
        self.step_program: CudaGraphStep | StaticStep | None = None
        if self.config.cuda_graphs:
            obstacle = graph_obstacle(self.device, self.dtype, self.config.grad_accum, self.dist.enabled)
            if obstacle:
                self._notify(f"CUDA graphs are off for this run: {obstacle}. It trains with the plain step.")
            else:
                self.step_program = CudaGraphStep(self.build_static_step(), self.device)

    # -- state for checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything besides the weights that exact resume needs; tensors and plain data only."""
        return {
            "step": self.step,
            "optimizer": portable_optimizer_state(self.optimizer),
            "batch_rng": self.feed.generator_state(),
            "batch_rng_by_rank": self._rank_rng_states or [self.feed.generator_state()],
            "torch_rng": torch.get_rng_state(),
            "train_elapsed": self.train_elapsed,
            "wall_elapsed": self.wall_seconds(),
            "eval_elapsed": self.eval_elapsed,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": self.best_val_loss,
            "last_train_loss": self.last_train_loss,
            "last_val_loss": self.last_eval.val_loss if self.last_eval else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        by_rank = state.get("batch_rng_by_rank") or []
        if len(by_rank) == self.dist.world_size:
            self.batch_generator.set_state(by_rank[self.dist.rank])
        elif self.dist.rank == 0:
            self.batch_generator.set_state(state["batch_rng"])
        else:  # resumed with another world size: a fresh, still rank-specific stream
            self.batch_generator.manual_seed(self.config.seed + self.dist.rank + 7919 * int(state["step"]))
        self.feed.reset()
        torch.set_rng_state(state["torch_rng"])
        self.train_elapsed = float(state.get("train_elapsed", 0.0))
        self.wall_elapsed = float(state.get("wall_elapsed", self.train_elapsed))  # older checkpoints: steps only
        self.eval_elapsed = float(state.get("eval_elapsed", 0.0))
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.best_val_loss = state.get("best_val_loss")
        self.last_train_loss = state.get("last_train_loss")
        self.last_checkpoint_step = self.step

    # -- control --------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to stop after the current step; it checkpoints before returning."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimiser step across all ranks (the global batch)."""
        return tokens_per_step(self.model_config, self.config, self.dist.world_size)

    # -- pieces of the loop ---------------------------------------------------------------------
    def _compile(self, model: torch.nn.Module) -> Callable:
        if not hasattr(torch, "compile") or self.device.type == "mps":
            return model
        try:
            return torch.compile(model)
        except Exception as exc:  # compile can fail for many platform reasons; eager is always correct
            self._compile_failed(exc)
            return model

    def _compile_failed(self, exc: Exception) -> None:
        self._notify(f"torch.compile failed ({_first_line(exc)}); "
                     "training goes on without it (eager): the same results, a little slower.")

    def _notify(self, message: str) -> None:
        for cb in self.callbacks:
            cb.on_notice(self, message)

    def build_static_step(self) -> StaticStep:
        """The step in the form a CUDA graph can record (fixed inputs, the learning rate a tensor, no host sync)."""
        def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with devices.autocast(self.device, self.dtype):
                return self.forward(x, y)[1]

        return StaticStep(self.model, self.optimizer, loss, (self.config.batch_size, self.model_config.block_size),
                          self.device, self.config.grad_clip)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The forward pass and its loss. torch.compile builds its graph at the first call, where a platform may
        lack what it needs: only that first call falls back to eager. A later failure (out of memory at step 500,
        say) is what it is and is raised as such; so is running out of memory in the first call."""
        with devices.autocast(self.device, self.dtype):
            if self.forward is self.module or self._compiled_has_run:
                return self.forward(x, y)[1]
            try:
                loss = self.forward(x, y)[1]
            except Exception as exc:
                if is_out_of_memory(exc):
                    raise
                self.forward = self.module
                self._compile_failed(exc)
                return self.module(x, y)[1]
            self._compiled_has_run = True
            return loss

    def estimate_loss(self, eval_iters: int | None = None) -> dict[str, float]:
        """``evaluation.estimate_loss`` at this step: its batches come from a generator seeded by the step, so
        evaluation never disturbs the training batches (and resume stays exact)."""
        return estimate_loss(self.model, self.split, self.config.batch_size, eval_iters or self.config.eval_iters,
                             self.dtype, eval_seed(self.config.seed, self.step, self.dist.rank))

    def _evaluate(self) -> EvalMetrics:
        """Estimate the losses, sample, tell the callbacks; time it all as evaluation, and note the first evaluation
        that reaches ``until_val_loss``."""
        started = time.perf_counter()
        wall_before = self.wall_seconds() - self.eval_elapsed
        losses = self.estimate_loss()
        sample = None
        if self.sample_fn is not None and self.dist.is_main:
            self.model.eval()
            sample = self.sample_fn(self.model)
            self.model.train()
        metrics = EvalMetrics(self.step, losses["train"], losses["val"], self.wall_seconds(), sample)
        if not (math.isfinite(metrics.train_loss) and math.isfinite(metrics.val_loss)):
            raise TrainingDiverged(self._diverged_message(metrics.val_loss))
        self.last_eval = metrics
        if self.best_val_loss is None or metrics.val_loss < self.best_val_loss:
            self.best_val_loss = metrics.val_loss
        for cb in self.callbacks:
            cb.on_eval(self, metrics)
        self.eval_elapsed += time.perf_counter() - started
        target = self.config.until_val_loss
        if target and self.target is None and metrics.val_loss <= target:
            self.target = TargetReached(target, self.step, metrics.val_loss, wall_before, self.eval_elapsed)
        return metrics

    def _diverged_message(self, loss: float) -> str:
        kept = (f"The last good checkpoint (step {self.last_checkpoint_step}) is kept."
                if self.last_checkpoint_step is not None else "No checkpoint had been written yet.")
        return (f"The loss became {loss} at step {self.step} (learning rate {self.config.lr:g}): training "
                f"diverged and was stopped. {kept} Lower the learning rate (try 1e-3) and train again.")

    def _checkpoint(self) -> None:
        if self.last_checkpoint_step == self.step:
            return
        if self.dist.enabled:
            self._rank_rng_states = distributed.gather(self.feed.generator_state())
        for cb in self.callbacks:
            cb.on_checkpoint(self)
        self.last_checkpoint_step = self.step

    def _train_step(self, lr: float) -> torch.Tensor:
        batch = self.feed.next()
        if self.step_program is not None:
            try:
                return self.step_program(*batch, lr)
            except RuntimeError as exc:
                if is_out_of_memory(exc):
                    raise
                self.step_program = None  # recording failed: the plain step computes the same, with more launches
                self.optimizer.zero_grad(set_to_none=True)  # what a failed recording left in .grad is not a gradient
                self._notify(f"CUDA graphs could not record this step ({_first_line(exc)}); training goes on "
                             "with the plain step: the same results, slower.")
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        accum = self.config.grad_accum
        total = torch.zeros((), device=self.device)
        for micro in range(accum):
            # DDP averages gradients across ranks once per optimiser step, not per micro-batch
            sync = micro == accum - 1 or not self.dist.enabled
            with contextlib.nullcontext() if sync else self.module.no_sync():
                loss = self._loss(*(batch if micro == 0 else self.feed.next()))
                self.scaler.scale(loss / accum).backward()
            total += loss.detach().float()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total / accum

    def _report(self, pending: list[torch.Tensor], lr: float) -> None:
        """Average the losses since the last report (one host sync), check them, and tell the callbacks."""
        loss = distributed.mean(torch.stack(pending).mean()).item()
        pending.clear()
        if not math.isfinite(loss):
            raise TrainingDiverged(self._diverged_message(loss))
        self.last_train_loss = loss
        start, tokens = self._window
        now = time.perf_counter()
        metrics = StepMetrics(self.step, loss, lr, tokens / max(now - start, 1e-9), self.wall_seconds())
        for cb in self.callbacks:
            cb.on_step(self, metrics)

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.config
        self._wall_origin = time.perf_counter() - self.wall_elapsed
        try:
            self.model.train()
            if self.step == 0 and self.last_eval is None:
                self._evaluate()  # the starting point: close to ln(vocab_size) for a fresh model
            pending: list[torch.Tensor] = []
            self._window = (time.perf_counter(), 0)
            stopping = self._stop.is_set() or self.target is not None
            while self.step < cfg.max_iters and not stopping:
                t0 = time.perf_counter()
                lr = lr_at(self.step, cfg)
                pending.append(self._train_step(lr))
                self.step += 1
                if self.device.type == "cuda" and self.step % cfg.log_interval == 0:
                    torch.cuda.synchronize()
                self.train_elapsed += time.perf_counter() - t0
                self.tokens_seen += self.tokens_per_step
                self._window = (self._window[0], self._window[1] + self.tokens_per_step)
                last = self.step == cfg.max_iters
                due_eval = self.step % cfg.eval_interval == 0 or last
                due_ckpt = self.step % cfg.effective_checkpoint_interval == 0 or last
                if self.step % cfg.log_interval == 0 or due_eval or due_ckpt:
                    self._report(pending, lr)
                    if due_eval:
                        self._evaluate()
                    if due_ckpt:
                        self._checkpoint()
                    self._window = (time.perf_counter(), 0)  # the rate counts training steps only
                # all ranks stop together; every rank has the same (averaged) validation loss, so the same target
                stopping = distributed.any_true(self._stop.is_set(), self.device) or self.target is not None
            if pending:
                self._report(pending, lr_at(self.step - 1, cfg))
            self._checkpoint()
            finished = self.step >= cfg.max_iters or self.target is not None
            status = RunStatus.DONE if finished else RunStatus.STOPPED
            result = self._result(status)
            for cb in self.callbacks:
                cb.on_done(self, result)
            return result
        except BabyGPTError as exc:  # includes TrainingDiverged
            return self._fail(str(exc))
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            return self._fail(out_of_memory_message(f"at step {self.step} ({str(exc).splitlines()[0][:120]})"))

    def _fail(self, message: str) -> TrainResult:
        for cb in self.callbacks:
            cb.on_failed(self, message)
        return self._result(RunStatus.FAILED, message)

    def wall_seconds(self) -> float:
        """Wall-clock seconds this run has trained, across resumes: its steps and the evaluations, samples and
        checkpoints between them, which a student waits through too. The logged rows carry it, so the speed and
        time left shown (``babygpt.pace``) agree with the clock; ``train_elapsed`` counts the steps alone."""
        return self.wall_elapsed if self._wall_origin is None else time.perf_counter() - self._wall_origin

    def _result(self, status: str, message: str = "") -> TrainResult:
        self.wall_elapsed, self._wall_origin = self.wall_seconds(), None
        return TrainResult(
            status=status,
            step=self.step,
            train_loss=self.last_eval.train_loss if self.last_eval else self.last_train_loss,
            val_loss=self.last_eval.val_loss if self.last_eval else None,
            best_val_loss=self.best_val_loss,
            tokens_per_sec=self.tokens_seen / self.train_elapsed if self.train_elapsed else 0.0,
            elapsed_s=self.train_elapsed,
            message=message,
            target=self.target,
        )
