"""What the teacher sets for a server, read from its environment in one place: how many jobs train at once and
with how many threads, how large a BPE a student may learn and how many BPEs are learned at once
(``SchedulerSettings``), and what one job may use
(``model_limits_from_env``). The layers below take these as values; none of them reads the environment for them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.model.sizing import JOB_MEMORY_ENV, MAX_PARAMS_ENV, TRAINING_BYTES_PER_PARAM, ModelLimits, total_memory_bytes
from babygpt.server.gpus import DEFAULT_JOBS_PER_GPU, jobs_per_gpu_from_env, visible_gpus
from babygpt.text.bpe import BYTES, MAX_BPE_VOCAB
from babygpt.text.bpe_gate import DEFAULT_BPE_LEARNING
from babygpt.training import devices

DEFAULT_LOCAL_JOBS = 2  # jobs at once on one machine unless the teacher sets BABYGPT_MAX_JOBS
# The largest BPE vocabulary the Data page learns unless the teacher sets BABYGPT_MAX_BPE_VOCAB: every student's
# choice is learned in the server's own process, and 8,192 tokens of a 1 MB text take a few seconds on two cores.
DEFAULT_MAX_BPE_VOCAB = 8_192
MAX_BPE_VOCAB_ENV = "BABYGPT_MAX_BPE_VOCAB"
BPE_LEARNING_ENV = "BABYGPT_MAX_BPE_LEARNING"  # BPEs learned at once in the server's process (babygpt.text.bpe_gate)


@dataclass(frozen=True)
class SchedulerSettings:
    """How many jobs train at once and how many threads they get; read from the server's environment."""

    max_jobs: int | None = None  # None: DEFAULT_LOCAL_JOBS on one machine, as many as a cluster has room for
    cores: int = 0  # 0: the cores this process may use
    threads_per_job: int = 0  # 0: share the cores among the running jobs (on a cluster: 1 CPU a job)
    gpus: tuple[str, ...] = ()  # the GPUs local jobs share (from_env finds them); none: the jobs train on the CPUs
    jobs_per_gpu: int = DEFAULT_JOBS_PER_GPU
    max_bpe_vocab: int = DEFAULT_MAX_BPE_VOCAB  # the largest BPE the app learns from a student's text
    max_bpe_learning: int = DEFAULT_BPE_LEARNING  # BPEs the app learns at once; one more is refused in a sentence

    def __post_init__(self) -> None:
        if self.max_jobs is not None and self.max_jobs < 1:
            raise BabyGPTError(f"BABYGPT_MAX_JOBS must be at least 1 (got {self.max_jobs}).")
        if self.jobs_per_gpu < 1:
            raise BabyGPTError(f"BABYGPT_JOBS_PER_GPU must be at least 1 (got {self.jobs_per_gpu}).")
        if not BYTES <= self.max_bpe_vocab <= MAX_BPE_VOCAB:
            raise BabyGPTError(f"{MAX_BPE_VOCAB_ENV} must be from {BYTES} (the bytes alone) to {MAX_BPE_VOCAB:,} "
                               f"(got {self.max_bpe_vocab:,}).")
        if self.max_bpe_learning < 1:
            raise BabyGPTError(f"{BPE_LEARNING_ENV} must be at least 1 (got {self.max_bpe_learning}).")

    @classmethod
    def from_env(cls) -> SchedulerSettings:
        def number(name: str, default: int) -> int:
            raw = os.environ.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit():
                raise BabyGPTError(f"{name} must be a whole number (got {raw!r}).")
            return int(raw)
        max_jobs = number("BABYGPT_MAX_JOBS", -1)
        return cls(None if max_jobs == -1 else max_jobs, number("BABYGPT_CORES", 0),
                   number("BABYGPT_THREADS_PER_JOB", 0), visible_gpus(), jobs_per_gpu_from_env(),
                   number(MAX_BPE_VOCAB_ENV, DEFAULT_MAX_BPE_VOCAB), number(BPE_LEARNING_ENV, DEFAULT_BPE_LEARNING))

    @property
    def usable_cores(self) -> int:
        return self.cores or devices.usable_cores()

    @property
    def slots(self) -> int:
        """Jobs that train at once on one machine: ``jobs_per_gpu`` on each GPU, else ``DEFAULT_LOCAL_JOBS``;
        ``max_jobs`` when set; and at most one per core, since each needs a thread of its own."""
        default = len(self.gpus) * self.jobs_per_gpu if self.gpus else DEFAULT_LOCAL_JOBS
        return max(1, min(self.max_jobs or default, self.usable_cores))


def _positive_int_env(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(float(raw))
    except ValueError:
        raise BabyGPTError(f"{name}={raw!r} is not a number.") from None
    if value <= 0:
        raise BabyGPTError(f"{name} must be positive, got {raw!r}.")
    return value


def model_limits_from_env(jobs_at_once: int = 1, machine_memory: int | None = None) -> ModelLimits:
    """``BABYGPT_JOB_MEMORY_MB`` (default: 80% of the machine's memory shared by the jobs that run at once on it;
    ``machine_memory``: that machine's, when the jobs train elsewhere) and ``BABYGPT_MAX_PARAMS`` (default: what
    fits half a job's memory at 16 bytes a parameter)."""
    memory_mb = _positive_int_env(JOB_MEMORY_ENV)
    machine = machine_memory or total_memory_bytes()
    job_memory = memory_mb * 2**20 if memory_mb else int(machine * 0.8 / max(1, jobs_at_once))
    max_params = _positive_int_env(MAX_PARAMS_ENV) or job_memory // (2 * TRAINING_BYTES_PER_PARAM)
    return ModelLimits(max_params, job_memory)
