"""How low does validation loss go on Tiny Shakespeare (char) within a wall-clock budget?

Uses the default CPU settings we ship (ModelConfig / TrainConfig defaults: 4 layers, 4 heads, 128 wide,
context 64, batch 12, AdamW 1e-3 → 1e-4). max_iters is sized from a short throughput probe so the whole
run, evaluations included, fits the budget; since the machine's speed drifts, a guard also stops the run when
the budget is about to run out (``stopped_at_budget`` says whether it had to, and at which step).

    python -m bench.learn_curve [--budget 120] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from babygpt.config import TrainConfig
from babygpt.orchestration.plan import plan_training
from babygpt.training.placement import prepare
from babygpt.training.trainer import Callbacks, StepMetrics, Trainer
from bench.common import emit, environment, shakespeare


class WallClockBudget(Callbacks):
    """Stop training when the time left would not cover one more evaluation and the stop itself."""

    def __init__(self, budget_s: float, reserve_s: float):
        self.deadline = time.perf_counter() + budget_s - reserve_s
        self.stopped_at: int | None = None

    def on_step(self, trainer: Trainer, m: StepMetrics) -> None:
        if self.stopped_at is None and time.perf_counter() >= self.deadline:
            self.stopped_at = m.step
            trainer.request_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=120.0, help="wall-clock seconds for the whole run")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: the shipped default)")
    args = parser.parse_args()
    defaults = TrainConfig()
    train = dataclasses.replace(defaults, lr=args.lr or defaults.lr, min_lr=(args.lr or defaults.lr) / 10,
                                compile=args.compile, eval_iters=20, log_interval=50, dtype=args.dtype or defaults.dtype)
    corpus = shakespeare()
    plan = plan_training(corpus, "char", "gpt", train)

    probe_cfg = dataclasses.replace(train, max_iters=10**6, eval_interval=10**6)
    probe_model, placement = prepare(plan.model_config, probe_cfg)
    probe = Trainer(probe_model, probe_cfg, plan.split, placement)
    for _ in range(20):  # past the first steps, while the allocator and caches settle
        probe._train_step(1e-3)
    t0 = time.perf_counter()
    for _ in range(40):
        probe._train_step(1e-3)
    step_s = (time.perf_counter() - t0) / 40
    evals = 5
    eval_s = evals * 2 * train.eval_iters * step_s / 3  # forward-only batches cost about a third of a step
    max_iters = int((args.budget - eval_s - 2.0) / step_s * 0.8)  # margin: this shared machine drifts by ±15% in minutes
    train = dataclasses.replace(train, max_iters=max_iters, eval_interval=max_iters // (evals - 1))

    start = time.perf_counter()
    guard = WallClockBudget(args.budget, reserve_s=eval_s / evals + 2 * step_s + 1.0)
    model, placement = prepare(plan.model_config, train)
    trainer = Trainer(model, train, plan.split, placement, callbacks=[guard])
    result = trainer.run()
    wall = time.perf_counter() - start
    precise = trainer.estimate_loss(200)
    emit({"benchmark": "learn_curve", "data": "tinyshakespeare", "tokenizer": "char", "preset": "gpt",
          "model": {k: getattr(plan.model_config, k) for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                                "activation", "tie_weights")},
          "train": {k: getattr(train, k) for k in ("batch_size", "lr", "min_lr", "warmup_iters", "max_iters",
                                                   "compile", "dtype")},
          "budget_s": args.budget, "wall_s": round(wall, 1), "within_budget": wall <= args.budget,
          "stopped_at_budget": guard.stopped_at is not None, "steps": result.step, "train_time_s": round(result.elapsed_s, 1),
          "tokens_per_sec": round(result.tokens_per_sec, 1), "val_loss": round(result.val_loss, 4),
          "val_loss_200_batches": round(precise["val"], 4), "train_loss_200_batches": round(precise["train"], 4),
          "env": environment()})


if __name__ == "__main__":
    main()
