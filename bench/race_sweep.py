"""Which learning rate suits each rung of the ladder race: a short sweep, in process, on one text.

    python -m bench.race_sweep [--data python-docs] [--steps 500] [--seeds 2]

Every rung trains as the race trains it (``babygpt.lessons.race.rung_config`` and ``RACE_SIZES``: n_embd 64,
2 layers, 4 heads, block 32, batch 12, ``--steps`` steps, five evaluations, cosine decay to lr/10) at each
learning rate of the grid, with warm-up of 0 or steps/10, for ``--seeds`` seeds; the JSON lists every setting's
mean *best* validation loss (the loss the race and the Runs page show) and the best setting per rung. The race's
settings come from a run of this on the bundled corpus only: Tiny Shakespeare and the Markov-chain text of the
tests are texts they were not tuned on. ``docs/lessons.md`` gives the command and its table.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics

from babygpt.config import PRESETS, TrainConfig
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.race import RACE_SIZES, rung_config
from babygpt.text.datasets import load_corpus
from babygpt.training.placement import prepare
from babygpt.training.trainer import Trainer
from bench.common import emit, environment

GRID = (1e-3, 3e-3, 1e-2, 2e-2, 5e-2)
SIZES = RACE_SIZES


def best_val_loss(plan, steps: int, lr: float, warmup: int, seed: int) -> float:
    cfg = dataclasses.replace(rung_config(plan.model_config.preset, steps, seed), lr=lr, min_lr=lr / 10,
                              warmup_iters=warmup, log_interval=50).validate()
    model, placement = prepare(plan.model_config, cfg)
    return Trainer(model, cfg, plan.split, placement).run().best_val_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="python-docs")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--lrs", nargs="+", type=float, default=list(GRID))
    parser.add_argument("--warmups", nargs="+", type=int, default=None, help="default: 0 and steps/10")
    args = parser.parse_args()
    corpus = load_corpus(args.data)
    results, best = [], {}
    for preset in args.presets:
        plan = plan_training(corpus, "char", preset, TrainConfig(), **SIZES)  # tokenised once per rung
        for lr, warmup in itertools.product(args.lrs, args.warmups or (0, args.steps // 10)):
            losses = [best_val_loss(plan, args.steps, lr, warmup, seed) for seed in range(1, args.seeds + 1)]
            row = {"preset": preset, "lr": lr, "warmup_iters": warmup, "mean_best_val_loss": round(statistics.mean(losses), 4),
                   "val_losses": [round(v, 4) for v in losses]}
            results.append(row)
            if preset not in best or row["mean_best_val_loss"] < best[preset]["mean_best_val_loss"]:
                best[preset] = row
    emit({"benchmark": "race_sweep", "data": args.data, "steps": args.steps, "seeds": args.seeds, **SIZES,
          "best": best, "all": results, "env": environment()})


if __name__ == "__main__":
    main()
