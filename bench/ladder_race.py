"""The lecture's table, reproduced: every rung of the ladder on Tiny Shakespeare with the same budget.

    python -m bench.ladder_race [--steps 2000] [--lr 5e-3] [--n-embd 64] [--n-layer 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from babygpt.config import TrainConfig
from babygpt.lessons import LadderRace
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
        race = LadderRace(RunStore(home), shakespeare(), "char", cfg, sizes)
        start = time.perf_counter()
        race.start()
        race.thread.join()
        wall = time.perf_counter() - start
    rows = [{"preset": e.preset, "params": e.params, "val_loss": round(e.val_loss, 4) if e.val_loss else None,
             "train_time_s": round(e.seconds, 1) if e.seconds else None, "status": e.status} for e in race.entries]
    emit({"benchmark": "ladder_race", "data": "tinyshakespeare", "steps": args.steps, "lr": args.lr, **sizes,
          "batch_size": cfg.batch_size, "wall_s": round(wall, 1), "rungs": rows, "env": environment()})


if __name__ == "__main__":
    main()
