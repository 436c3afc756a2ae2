"""The ladder race as the Lessons page runs it, on one or more texts: mean ± spread per rung, a verdict per step.

    python -m bench.ladder_race [--data python-docs tinyshakespeare] [--steps 2000] [--seeds 3] [--slots 2]
    python -m bench.ladder_race --modern [RUNG ...] [--data ...] [--steps 2000] [--seeds 3] [--slots 2]

The page's defaults (``babygpt.lessons.race``: each rung's learning rate, n_embd 64, 2 layers, block 32, three seeds),
queued as jobs of one scheduler and trained in worker processes, ``--slots`` at a time, exactly as in the app.
``wall_s`` is how long the whole race took (about three minutes on 2 cores: docs/benchmarks.md).

``--modern`` races modern rungs against ``gpt`` instead, as the page's *modern rungs against gpt* does (the rungs
named, or every one of ``MODERN_RUNGS`` when none is): per rung its best validation loss (mean, spread, each seed's),
its seconds per training step and their cost in gpt's steps, its gain over gpt and the verdict, and its gain at gpt's
training time with that verdict (``babygpt.lessons.race.time_matched``). The seconds are measured while the race's
runs share the machine's cores, so they compare rungs within one race.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from babygpt.config import LECTURE_LADDER
from babygpt.lessons.race import RungResult, ladder_steps, race_results, step_cost, time_matched
from babygpt.orchestration.race import MODERN_RUNGS, RACE_STEPS, modern_race, race_entries, race_plans
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from babygpt.text.datasets import load_corpus
from bench.common import emit, environment, shakespeare


def trained(corpus, steps: int, seeds: int, slots: int, presets: tuple[str, ...]) -> tuple[float, list[RungResult]]:
    """Train the race's rungs × seeds as the page queues them; how long it took and what it showed."""
    with tempfile.TemporaryDirectory() as home:
        scheduler = Scheduler(RunStore(home), SchedulerSettings(max_jobs=slots))
        start = time.perf_counter()
        group = scheduler.submit_group("bench-ladder-race-0000", race_plans(
            corpus, "char", steps, seeds=tuple(range(1, seeds + 1)), presets=presets))
        while scheduler.running() or scheduler.store.queued():
            time.sleep(0.5)
        wall = time.perf_counter() - start
        return wall, race_results(race_entries(scheduler.store, group))


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def lecture_race(corpus, steps: int, seeds: int, slots: int) -> dict:
    wall, results = trained(corpus, steps, seeds, slots, LECTURE_LADDER)
    return {"wall_s": round(wall, 1),
            "rungs": [{"preset": r.preset, "params": r.parameters, "lr": r.lr, "mean": round(r.mean, 4),
                       "spread": round(r.spread, 4), "losses": [round(x, 4) for x in r.losses]} for r in results],
            "steps_up": [{"to": s.upper, "gain": round(s.gain, 4), "noise": round(s.noise, 4), "verdict": s.verdict}
                         for s in ladder_steps(results)]}


def modern_rung(rung: RungResult, gpt: RungResult, against: dict) -> dict:
    """One rung of a modern race: its loss, its cost per step, and its gains per step and at gpt's time."""
    row = {"preset": rung.preset, "params": rung.parameters, "lr": rung.lr, "unit": rung.unit,
           "mean": _round(rung.mean), "spread": round(rung.spread, 4), "losses": [round(x, 4) for x in rung.losses],
           "seconds_per_step": _round(rung.seconds_per_step, 6),
           "seconds_per_step_each": [round(x, 6) for x in rung.step_seconds]}
    if rung is gpt:
        return row
    step, matched = against.get(rung.preset), time_matched(gpt, rung)
    timed = None
    if matched is not None:
        timed = {"gpt_seconds": round(matched.budget_s, 2), "last_step": matched.last_step,
                 "losses": [round(x, 4) for x in matched.losses],
                 "mean": _round(statistics.mean(matched.losses)) if matched.losses else None,
                 "gain": _round(matched.step.gain) if matched.step else None,
                 "verdict": matched.step.verdict if matched.step else
                 f"no evaluation within gpt's time: the first, at step {matched.first[0]}, after "
                 f"{matched.first[1]:.2f} s"}
    return {**row, "step_cost_vs_gpt": _round(step_cost(rung, gpt), 3),
            "gain": _round(step.gain) if step else None, "noise": _round(step.noise) if step else None,
            "verdict": step.verdict if step else None, "at_gpt_time": timed}


def modern_race_result(corpus, steps: int, seeds: int, slots: int, presets: tuple[str, ...]) -> dict:
    wall, results = trained(corpus, steps, seeds, slots, presets)
    gpt = next(r for r in results if r.preset == "gpt")
    against = {s.upper: s for s in ladder_steps(results)}
    return {"wall_s": round(wall, 1), "rungs": [modern_rung(r, gpt, against) for r in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["python-docs", "tinyshakespeare"])
    parser.add_argument("--steps", type=int, default=RACE_STEPS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--modern", nargs="*", metavar="RUNG", choices=MODERN_RUNGS,
                        help="race modern rungs against gpt (these, or all of them when none is named)")
    args = parser.parse_args()
    texts = {name: (shakespeare() if name == "tinyshakespeare" else load_corpus(name)) for name in args.data}
    if args.modern is None:
        races = {name: lecture_race(corpus, args.steps, args.seeds, args.slots) for name, corpus in texts.items()}
        emit({"benchmark": "ladder_race", "steps": args.steps, "seeds": args.seeds, "slots": args.slots,
              "races": races, "env": environment()})
        return
    presets = modern_race(args.modern or MODERN_RUNGS)
    races = {name: modern_race_result(corpus, args.steps, args.seeds, args.slots, presets)
             for name, corpus in texts.items()}
    emit({"benchmark": "ladder_race", "ladder": "modern", "rungs": list(presets), "steps": args.steps,
          "seeds": args.seeds, "slots": args.slots, "races": races, "env": environment()})


if __name__ == "__main__":
    main()
