"""In-app training vs the bare Trainer: the same config through the background-job path the app uses,
with a reader polling snapshots once a second as the live chart does, and the process's peak memory.

    python bench/app_overhead.py [--steps 300]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time

from babygpt.config import TrainConfig
from babygpt.jobs import JobRegistry
from babygpt.pipeline import plan_training, start_run
from babygpt.runs import RunStore
from bench.common import CONFIGS, emit, environment, shakespeare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    corpus = shakespeare()
    cfg = CONFIGS["cpu-baby"]
    train = TrainConfig(batch_size=cfg["batch_size"], max_iters=args.steps, eval_interval=args.steps, eval_iters=5,
                        log_interval=5, sample_chars=120)
    sizes = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}
    plan = plan_training(corpus, "char", "gpt", train, **sizes)
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(home)
        rates = {}
        for label in ("bare_trainer", "app_job", "bare_trainer_again"):
            if label.startswith("bare"):
                trainer, _ = start_run(store, plan)
                rates[label] = trainer.run().tokens_per_sec
                continue
            registry = JobRegistry(store, max_jobs=2)
            job = registry.start("bench", plan)
            polls = 0
            while job.thread.is_alive():
                snap = job.snapshot()  # what the live fragment reads every second
                polls += 1
                _ = (snap.train[-50:], snap.evals, snap.tokens_per_sec)
                time.sleep(1.0)
            rates[label] = job.snapshot().result.tokens_per_sec
            rates["snapshot_polls"] = polls
    bare = (rates["bare_trainer"] + rates["bare_trainer_again"]) / 2
    emit({"benchmark": "app_overhead", "config": "cpu-baby", "steps": args.steps, "env": environment(),
          "bare_trainer_tokens_per_sec": round(bare, 1), "app_job_tokens_per_sec": round(rates["app_job"], 1),
          "ratio": round(rates["app_job"] / bare, 3), "threads_alive": threading.active_count(),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
