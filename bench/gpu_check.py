"""Does the step replayed as a CUDA graph train as the plain step does? Checked on the device it runs on.

The app's default model on Tiny Shakespeare, dropout off (a recorded graph draws its dropout masks from other
random offsets than the eager step, so only without dropout can the two be compared number for number), trained
``--steps`` steps twice from the same seed: the plain step, then the step as a CUDA graph. Reported: whether the
graph was recorded (or why not), the largest difference between the two runs' step losses and final weights, the
median step time of each, the batched evaluation against one batch per forward pass, and a stop at half way resumed
with graphs against the uninterrupted run. Each comparison says whether it is within its tolerance (``ok``).

    python -m bench.gpu_check [--device cuda] [--steps 60]

On the CPU the graph cannot be recorded; the check then compares the plain step with the recordable step run
without recording, which is what the tests hold on every commit.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from babygpt.config import DEFAULT_PRESET, TrainConfig
from babygpt.orchestration.plan import plan_training
from babygpt.training import evaluation as evaluation_module
from babygpt.training.placement import prepare
from babygpt.training.trainer import Callbacks, Trainer
from bench.common import emit, environment, shakespeare

# bfloat16 autocast rounds differently when kernels are fused or ordered differently; these bound what is the same
LOSS_TOLERANCE = {"float32": 1e-4, "bfloat16": 2e-2}
WEIGHT_TOLERANCE = {"float32": 1e-3, "bfloat16": 5e-2}


class Steps(Callbacks):
    def __init__(self, stop_at: int | None = None):
        self.stop_at = stop_at
        self.losses: list[float] = []
        self.times: list[float] = []
        self.notes: list[str] = []
        self._last = time.perf_counter()

    def on_step(self, trainer, m):
        now = time.perf_counter()
        self.losses.append(m.loss)
        self.times.append(now - self._last)
        self._last = now
        if self.stop_at is not None and m.step >= self.stop_at:
            trainer.request_stop()  # as Stop does: a checkpoint at this step, the schedule unchanged

    def on_notice(self, trainer, message):
        self.notes.append(message)


def _train(plan, graphs: bool, device: str, state=None, weights=None, stop_at=None):
    cfg = replace(plan.train_config, cuda_graphs=graphs and device == "cuda")
    steps = Steps(stop_at)
    model, placement = prepare(plan.model_config, cfg, weights)
    trainer = Trainer(model, cfg, plan.split, placement, [steps], trainer_state=state)
    if graphs and device != "cuda":
        trainer.step_program = trainer.build_static_step()  # what the graph records, run as it is
    trainer.run()
    return trainer, steps


def _max_weight_difference(a: Trainer, b: Trainer) -> float:
    return max((x.detach().float() - y.detach().float()).abs().max().item()
               for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    half = args.steps // 2
    train = TrainConfig(max_iters=args.steps, eval_interval=half, eval_iters=20, log_interval=1, warmup_iters=10,
                        device=args.device, dtype=args.dtype)
    plan = plan_training(shakespeare(), "char", DEFAULT_PRESET, train, dropout=0.0)

    plain, plain_steps = _train(plan, graphs=False, device=args.device)
    graphed, graph_steps = _train(plan, graphs=True, device=args.device)
    dtype = plain.dtype
    recorded = type(graphed.step_program).__name__ if graphed.step_program is not None else None
    loss_diff = max(abs(a - b) for a, b in zip(plain_steps.losses, graph_steps.losses, strict=True))
    weight_diff = _max_weight_difference(plain, graphed)

    # stop half way, resume (with graphs) from the checkpoint state, against the uninterrupted graphed run
    first, _ = _train(plan, graphs=True, device=args.device, stop_at=half)
    state = first.state_dict()
    weights = {k: v.detach().cpu().clone() for k, v in first.model.state_dict().items()}
    resumed, resumed_steps = _train(plan, graphs=True, device=args.device, state=state, weights=weights)
    resume_diff = max(abs(a - b) for a, b in zip(graph_steps.losses[half:], resumed_steps.losses, strict=True))

    batched = plain.estimate_loss()
    original = evaluation_module.eval_batches_per_forward
    evaluation_module.eval_batches_per_forward = lambda config, iters: 1
    try:
        one_by_one = plain.estimate_loss()
    finally:
        evaluation_module.eval_batches_per_forward = original
    eval_diff = max(abs(batched[k] - one_by_one[k]) for k in batched)

    loss_tol, weight_tol = LOSS_TOLERANCE.get(dtype, 2e-2), WEIGHT_TOLERANCE.get(dtype, 5e-2)
    skip = min(10, args.steps // 3)  # the first graphed step includes recording
    emit({"benchmark": "gpu_check", "env": environment(), "device": args.device, "dtype": dtype,
          "steps": args.steps, "recorded": recorded, "notes": sorted(set(graph_steps.notes + resumed_steps.notes)),
          "step_loss_max_difference": loss_diff, "step_loss_ok": loss_diff <= loss_tol,
          "weight_max_difference": weight_diff, "weight_ok": weight_diff <= weight_tol,
          "resume_loss_max_difference": resume_diff, "resume_ok": resume_diff <= loss_tol,
          "batched_eval_difference": eval_diff, "batched_eval_ok": eval_diff <= loss_tol,
          "median_step_ms": {"plain": round(statistics.median(plain_steps.times[skip:]) * 1000, 3),
                             "graphs": round(statistics.median(graph_steps.times[skip:]) * 1000, 3)},
          "final_val_loss": {"plain": plain.last_eval.val_loss, "graphs": graphed.last_eval.val_loss}})


if __name__ == "__main__":
    main()
