"""Sharing a server's GPUs among training jobs: which one each new job takes (which GPUs there are is the
teacher's setting, read by ``babygpt.server.settings.visible_gpus``).

A small model cannot keep a GPU busy on its own: its step is a few hundred short kernels and the GPU waits for the
host between them (one job of the app's default model drew 85.6k tokens/s from an H200, the GPU idle most of each
step). Several jobs on one GPU fill those gaps: on an H200 with 16 cores, 8 jobs made 672k tokens/s together and
16 jobs 874k (measured on another machine, without CUDA graphs; docs/benchmarks.md). So a GPU server runs
``DEFAULT_JOBS_PER_GPU`` jobs on each GPU, never more jobs than cores (each job's Python needs a core to launch
its kernels), and the teacher can change it with ``BABYGPT_JOBS_PER_GPU``.
"""

from __future__ import annotations

import threading

DEFAULT_JOBS_PER_GPU = 16  # the most measured (16 jobs on one H200 made the most tokens/s in total)
GPUS_ENV = "BABYGPT_GPUS"  # which GPUs the jobs may use: "0,1", or "none" to train on the CPUs only
JOBS_PER_GPU_ENV = "BABYGPT_JOBS_PER_GPU"
GPU_SHARE_ENV = "BABYGPT_GPU_MEMORY_SHARE"  # the fraction of its GPU's memory a job may take (set by the backend)
GPU_MEMORY_HEADROOM = 0.95  # what the jobs on one GPU may take together; the rest is the driver's


class GpuAssigner:
    """Gives each new job the GPU with the fewest jobs on it (the first such GPU on a tie)."""

    def __init__(self, gpus: tuple[str, ...], jobs_per_gpu: int):
        self.gpus, self.jobs_per_gpu = gpus, jobs_per_gpu
        self._holders: dict[str, str] = {}  # run id -> GPU
        self._lock = threading.Lock()

    @property
    def memory_share(self) -> float:
        """The part of a GPU's memory each of its jobs may allocate: one job cannot starve the others."""
        return GPU_MEMORY_HEADROOM / self.jobs_per_gpu

    def take(self, run_id: str) -> str:
        with self._lock:
            load = {gpu: 0 for gpu in self.gpus}
            for gpu in self._holders.values():
                if gpu in load:
                    load[gpu] += 1
            gpu = min(self.gpus, key=lambda g: load[g])
            self._holders[run_id] = gpu
            return gpu

    def hold(self, run_id: str, gpu: str) -> None:
        """A job that was already running (adopted after a restart) keeps the GPU it has."""
        with self._lock:
            self._holders[run_id] = gpu

    def release(self, run_id: str) -> None:
        with self._lock:
            self._holders.pop(run_id, None)

    def load(self) -> dict[str, int]:
        with self._lock:
            return {gpu: sum(1 for g in self._holders.values() if g == gpu) for gpu in self.gpus}
