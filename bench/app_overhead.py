"""In-app training vs the bare Trainer: the same config through the background-job path the app uses
(a worker process supervised by a thread), with a reader polling snapshots once a second as the live chart
does, and the peak memory of this process and of the worker.

    python -m bench.app_overhead [--steps 300]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time

from babygpt.config import TrainConfig
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.runs import start_run
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from bench.common import CONFIGS, emit, environment, shakespeare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each path is kept")
    args = parser.parse_args()
    corpus = shakespeare()
    cfg = CONFIGS["cpu-baby"]
    train = TrainConfig(batch_size=cfg["batch_size"], max_iters=args.steps, eval_interval=args.steps, eval_iters=5,
                        log_interval=5, sample_tokens=120)
    sizes = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}
    plan = plan_training(corpus, "char", "gpt", train, **sizes)
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(home)
        bare_rates, app_rates, polls = [], [], 0
        for _ in range(args.rounds):  # interleaved, so machine noise hits both paths alike
            trainer, _ = start_run(store, plan)
            bare_rates.append(trainer.run().tokens_per_sec)
            scheduler = Scheduler(store, SchedulerSettings(max_jobs=2))
            info = scheduler.submit("bench-user-0123456789", plan)
            while scheduler.running():
                snap = scheduler.snapshot(info.id)  # what the live fragment reads every second
                polls += 1
                _ = (snap.train[-50:], snap.evals, snap.tokens_per_sec)
                time.sleep(1.0)
            state = store.load_trainer_state(info.id)  # the worker's own count, as the CLI reports it
            app_rates.append(state["tokens_seen"] / state["train_elapsed"])
    bare, app = max(bare_rates), max(app_rates)
    emit({"benchmark": "app_overhead", "config": "cpu-baby", "steps": args.steps, "env": environment(),
          "bare_trainer_tokens_per_sec": round(bare, 1), "app_job_tokens_per_sec": round(app, 1),
          "ratio": round(app / bare, 3), "all_bare": [round(r) for r in bare_rates],
          "all_app": [round(r) for r in app_rates], "snapshot_polls": polls, "threads_alive": threading.active_count(),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
          # the workers are this process's children, waited for by the scheduler: the largest one's peak
          "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
