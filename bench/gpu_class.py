"""A class on one GPU server: N students start the app's default run at once, through the scheduler, no browser.

For each number of jobs at once (``--jobs``) and each step (``--graphs``: the plain step, the step replayed as a
CUDA graph, or both), the scheduler gives the N jobs the machine's GPUs (``jobs_per_gpu`` = N over the GPUs, never
more jobs than cores) and every job trains the app's default model for ``--steps`` steps. Reported per class: the
tokens/s of each job (median of its logged rates), their sum, the class's tokens over its wall time from Start to the
last job's end (start-up included: what a teacher waits), and any note a job left (e.g. graphs that fell back).

    python -m bench.gpu_class [--jobs 1,4,8,16] [--graphs both] [--steps 1000]

Without a GPU it runs on the CPUs (and says so in ``device``), which is how the tests keep it working.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import tempfile

from babygpt.config import DEFAULT_PRESET, INTERACTIVE_TRAIN, TrainConfig, tokens_per_step
from babygpt.orchestration.plan import plan_training
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from bench.class_run import train_class
from bench.common import emit, environment, shakespeare

GRAPH_CHOICES = {"off": (False,), "on": (True,), "both": (False, True)}


def one_class(jobs: int, graphs: bool, steps: int) -> dict:
    train = TrainConfig(**{**INTERACTIVE_TRAIN, "max_iters": steps, "cuda_graphs": graphs,
                           "eval_interval": min(INTERACTIVE_TRAIN["eval_interval"], steps)})
    plan = plan_training(shakespeare(), "char", DEFAULT_PRESET, train)
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(home)
        found = SchedulerSettings.from_env()
        per_gpu = math.ceil(jobs / len(found.gpus)) if found.gpus else found.jobs_per_gpu
        settings = dataclasses.replace(found, max_jobs=jobs, jobs_per_gpu=per_gpu)
        result = train_class(Scheduler(store, settings), store, plan, jobs)
    class_tokens = jobs * steps * tokens_per_step(plan.model_config, plan.train_config)
    return {"jobs": jobs, "cuda_graphs": graphs, "slots": settings.slots, "gpus": list(settings.gpus), **result,
            "class_tokens_per_sec": round(class_tokens / result["wall_s"])}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,4,8,16", help="comma-separated numbers of jobs at once")
    parser.add_argument("--graphs", choices=GRAPH_CHOICES, default="both")
    parser.add_argument("--steps", type=int, default=INTERACTIVE_TRAIN["max_iters"])
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # a time limit (bench.gpu_suite) ends a class as Ctrl-C does
    classes, interrupted = [], False
    try:
        for graphs in GRAPH_CHOICES[args.graphs]:
            for n in args.jobs.split(","):
                classes.append(one_class(int(n), graphs, args.steps))
    except KeyboardInterrupt:  # a time limit: its jobs are stopped; the classes that finished still count
        interrupted = True
    emit({"benchmark": "gpu_class", "env": environment(), "steps": args.steps, "classes": classes,
          "interrupted": interrupted})


if __name__ == "__main__":
    main()
