"""Which learning rate suits each rung of the ladder race: a short sweep, in process, on one text.

    python -m bench.race_sweep [--data python-docs] [--steps 500] [--seeds 2]

Every rung trains at the race page's defaults (n_embd 64, 2 layers, 4 heads, block 32, batch 12, ``--steps``
steps, cosine decay to lr/10) at each learning rate of the grid, with warm-up of 0 or steps/10, for ``--seeds``
seeds; the JSON lists the mean final validation loss of every setting and the best one per rung. The race's
settings (``babygpt/race.py``) come from a run of this on the bundled corpus only: Tiny Shakespeare and the
Markov-chain text of the tests are texts they were not tuned on.
"""

from __future__ import annotations

import argparse
import itertools
import statistics

from babygpt.config import PRESETS, TrainConfig
from babygpt.store.pipeline import plan_training
from babygpt.text.datasets import load_corpus
from babygpt.training.trainer import Trainer
from bench.common import emit, environment

GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SIZES = dict(n_layer=2, n_head=4, n_embd=64, block_size=32)


def final_val_loss(plan, steps: int, lr: float, warmup: int, seed: int) -> float:
    cfg = TrainConfig(max_iters=steps, eval_interval=steps, eval_iters=20, lr=lr, min_lr=lr / 10,
                      warmup_iters=warmup, seed=seed, log_interval=50)
    return Trainer(plan.model_config, cfg, plan.split).run().val_loss


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
            losses = [final_val_loss(plan, args.steps, lr, warmup, seed) for seed in range(1, args.seeds + 1)]
            row = {"preset": preset, "lr": lr, "warmup_iters": warmup, "mean_val_loss": round(statistics.mean(losses), 4),
                   "val_losses": [round(v, 4) for v in losses]}
            results.append(row)
            if preset not in best or row["mean_val_loss"] < best[preset]["mean_val_loss"]:
                best[preset] = row
    emit({"benchmark": "race_sweep", "data": args.data, "steps": args.steps, "seeds": args.seeds, **SIZES,
          "best": best, "all": results, "env": environment()})


if __name__ == "__main__":
    main()
