"""One class through the scheduler, timed: N students press Start at once and every run trains to its end.

Shared by the class benchmarks (``bench.cluster``, ``bench.gpu_class``) so they count alike: per job the median of
its logged training rates, the seconds from Start to its first logged step, the wall time, and the share of a core
this process (the server) spent per job.
"""

from __future__ import annotations

import statistics
import time

from babygpt.orchestration.plan import TrainingPlan
from babygpt.server.local import WORKER_LOG
from babygpt.server.scheduler import Scheduler
from babygpt.status import ENDED
from babygpt.store.runs import RunStore


def train_class(scheduler: Scheduler, store: RunStore, plan: TrainingPlan, jobs: int) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    runs: list[str] = []
    first_step: dict[str, float] = {}
    try:
        for i in range(jobs):
            runs.append(scheduler.submit(f"student-{i:02d}-0123456789", plan).id)
        while not all(store.get(r).status in ENDED for r in runs):
            for r in runs:
                if r not in first_step and store.metrics_since(r, 0)[0]:
                    first_step[r] = time.perf_counter() - started
            time.sleep(0.2)
    except BaseException:  # interrupted (a time limit, Ctrl-C): workers outlive their server by design, so end them
        scheduler.stop_all(wait=30)
        raise
    wall = time.perf_counter() - started
    server_cpu = time.process_time() - cpu_started  # this process: the scheduler, its job threads, this loop
    rates, notes = [], set()
    for r in runs:
        info = store.get(r)
        assert info.status.value == "done", info.message
        notes.update(_worker_notes(store, r))
        rates.append(statistics.median(m.tokens_per_sec for m in store.metrics(r)
                                       if m.split == "train" and m.tokens_per_sec))
    while scheduler.running():
        time.sleep(0.1)
    return {"tokens_per_sec_each": [round(x) for x in rates], "tokens_per_sec_total": round(sum(rates)),
            "seconds_to_first_step": round(max(first_step.values()), 2), "wall_s": round(wall, 1),
            "server_core_share_per_job": round(server_cpu / wall / jobs, 4), "notes": sorted(notes),
            "where": sorted({store.get(r).record.where[:12] for r in runs}),
            "device": sorted({str(store.get(r).record.runtime.device) for r in runs})}


def _worker_notes(store: RunStore, run_id: str) -> list[str]:
    """What a local worker told its run while training (e.g. that CUDA graphs fell back), from its log."""
    log = store.run_dir(run_id) / WORKER_LOG
    if not log.is_file():
        return []
    return [line[len("note: "):] for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.startswith("note: ")]
