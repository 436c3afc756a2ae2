"""The lecture's table, reproduced: every rung of the ladder on Tiny Shakespeare with the same budget.

    python -m bench.ladder_race [--steps 2000] [--lr 5e-3] [--n-embd 64] [--n-layer 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from babygpt.config import TrainConfig
from babygpt.jobs import Scheduler, SchedulerSettings
from babygpt.lessons import race_plans, race_table
from babygpt.runs import RunStore
from bench.common import emit, environment, shakespeare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    args = parser.parse_args()
    cfg = TrainConfig(max_iters=args.steps, eval_interval=max(1, args.steps // 5), eval_iters=20, lr=args.lr,
                      min_lr=args.lr / 10, warmup_iters=min(50, args.steps // 5))
    sizes = dict(n_layer=args.n_layer, n_head=4, n_embd=args.n_embd, block_size=args.block_size)
    with tempfile.TemporaryDirectory() as home:
        # the app's path: six queued jobs of one scheduler, trained in worker processes, one slot at a time
        scheduler = Scheduler(RunStore(home), SchedulerSettings(max_jobs=1))
        start = time.perf_counter()
        group = scheduler.submit_group("bench-ladder-race-0000", race_plans(shakespeare(), "char", cfg, sizes))
        while scheduler.running() or scheduler.store.queued():
            time.sleep(1.0)
        wall = time.perf_counter() - start
        rows = []
        for row in race_table(scheduler.store, group):
            vals = [m.loss for m in scheduler.store.metrics(row["run"]) if m.split == "val"]
            rows.append({"preset": row["preset"], "params": row["parameters"],
                         "val_loss": round(vals[-1], 4) if vals else None,
                         "best_val_loss": round(row["best val loss"], 4) if row["best val loss"] else None,
                         "train_time_s": row["train time (s)"], "status": row["status"]})
    emit({"benchmark": "ladder_race", "data": "tinyshakespeare", "steps": args.steps, "lr": args.lr, **sizes,
          "batch_size": cfg.batch_size, "wall_s": round(wall, 1), "rungs": rows, "env": environment()})


if __name__ == "__main__":
    main()
