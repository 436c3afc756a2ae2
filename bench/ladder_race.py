"""The ladder race as the Lessons page runs it, on one or more texts: mean ± spread per rung, a verdict per step.

    python -m bench.ladder_race [--data python-docs tinyshakespeare] [--steps 2000] [--seeds 3] [--slots 2]

The page's defaults (``babygpt.lessons.race``: each rung's learning rate, n_embd 64, 2 layers, block 32, three seeds),
queued as jobs of one scheduler and trained in worker processes, ``--slots`` at a time, exactly as in the app.
``wall_s`` is how long the whole race took (about three minutes on 2 cores: docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from babygpt.lessons.race import ladder_steps, race_results
from babygpt.orchestration.race import RACE_STEPS, race_entries, race_plans
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from babygpt.text.datasets import load_corpus
from bench.common import emit, environment, shakespeare


def race(corpus, steps: int, seeds: int, slots: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        scheduler = Scheduler(RunStore(home), SchedulerSettings(max_jobs=slots))
        start = time.perf_counter()
        group = scheduler.submit_group("bench-ladder-race-0000",
                                       race_plans(corpus, "char", steps, seeds=tuple(range(1, seeds + 1))))
        while scheduler.running() or scheduler.store.queued():
            time.sleep(0.5)
        wall = time.perf_counter() - start
        results = race_results(race_entries(scheduler.store, group))
    return {"wall_s": round(wall, 1),
            "rungs": [{"preset": r.preset, "params": r.parameters, "lr": r.lr, "mean": round(r.mean, 4),
                       "spread": round(r.spread, 4), "losses": [round(x, 4) for x in r.losses]} for r in results],
            "steps_up": [{"to": s.upper, "gain": round(s.gain, 4), "noise": round(s.noise, 4), "verdict": s.verdict}
                         for s in ladder_steps(results)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["python-docs", "tinyshakespeare"])
    parser.add_argument("--steps", type=int, default=RACE_STEPS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    texts = {name: (shakespeare() if name == "tinyshakespeare" else load_corpus(name)) for name in args.data}
    emit({"benchmark": "ladder_race", "steps": args.steps, "seeds": args.seeds, "slots": args.slots,
          "races": {name: race(corpus, args.steps, args.seeds, args.slots) for name, corpus in texts.items()},
          "env": environment()})


if __name__ == "__main__":
    main()
