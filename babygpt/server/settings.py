"""What the teacher sets for a server, read from its environment in one place: how many jobs train at once and
with how many threads, how large a BPE a student may learn and how many BPEs are learned at once
(``SchedulerSettings``), which GPUs the jobs share (``visible_gpus``, ``jobs_per_gpu``), what one job may use
(``model_limits_from_env``, and in the job's own process ``job_memory_mb``, ``job_gpu_share``), each student's disk
(``disk_quota_from_env``), the teacher's token (``admin_token``) and a Ray cluster (``ray_address``,
``gpus_per_job``). The layers below take these as values; none of them reads the environment for them.

The environment is read elsewhere only where this module cannot be the reader, each named in
``tests/test_one_rule.py`` (which fails on any other read):

- ``babygpt.store.database`` (``BABYGPT_HOME``): where the store lives is decided below the server, by every
  process that opens it — the command line with no server, and each job's worker, whose server passes it down.
- ``babygpt.training.devices`` (``OMP_NUM_THREADS``, ``BABYGPT_CPU_BFLOAT16``, ``BABYGPT_TUNE_ALLOCATOR``): torch's
  thread and precision setup in the training process itself, before its first tensor; the command line trains
  without a server, so these cannot wait for one.
- ``babygpt.training.distributed`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``): torchrun's
  protocol for telling each of its processes who it is; nothing of the teacher's.
- ``babygpt.features.cost`` (the sparse autoencoder's limits): read by the command line's ``sae`` as well, below
  the server.
- ``babygpt.server.backend``, ``babygpt.server.local`` and ``babygpt.server.sae_jobs`` pass this process's
  environment on to a job's process (``PYTHONPATH``, ``dict(os.environ, …)``): they hand it down, they do not
  read a setting from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.model.sizing import JOB_MEMORY_ENV, MAX_PARAMS_ENV, TRAINING_BYTES_PER_PARAM, ModelLimits, total_memory_bytes
from babygpt.server.gpus import DEFAULT_JOBS_PER_GPU, GPU_SHARE_ENV, GPUS_ENV, JOBS_PER_GPU_ENV
from babygpt.store.quota import DEFAULT_USER_DISK_MB, USER_DISK_ENV, DiskQuota
from babygpt.text.bpe import BYTES, MAX_BPE_VOCAB
from babygpt.text.bpe_gate import DEFAULT_BPE_LEARNING
from babygpt.training import devices

DEFAULT_LOCAL_JOBS = 2  # jobs at once on one machine unless the teacher sets BABYGPT_MAX_JOBS
# The largest BPE vocabulary the Data page learns unless the teacher sets BABYGPT_MAX_BPE_VOCAB: every student's
# choice is learned in the server's own process, and 8,192 tokens of a 1 MB text take a few seconds on two cores.
DEFAULT_MAX_BPE_VOCAB = 8_192
MAX_BPE_VOCAB_ENV = "BABYGPT_MAX_BPE_VOCAB"
BPE_LEARNING_ENV = "BABYGPT_MAX_BPE_LEARNING"  # BPEs learned at once in the server's process (babygpt.text.bpe_gate)
ADMIN_TOKEN_ENV = "BABYGPT_ADMIN_TOKEN"
RAY_ADDRESS_ENV = "BABYGPT_RAY_ADDRESS"
GPUS_PER_JOB_ENV = "BABYGPT_GPUS_PER_JOB"


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
                   number("BABYGPT_THREADS_PER_JOB", 0), visible_gpus(), jobs_per_gpu(),
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


def visible_gpus() -> tuple[str, ...]:
    """The GPUs this server's jobs may use: ``BABYGPT_GPUS`` when set, else those CUDA shows this process.

    Entries are what ``CUDA_VISIBLE_DEVICES`` accepts (indices or UUIDs), since that is how a job is given one.
    """
    chosen = os.environ.get(GPUS_ENV, "").strip()
    if chosen:
        if chosen.lower() == "none":
            return ()
        gpus = tuple(part.strip() for part in chosen.split(",") if part.strip())
        for gpu in gpus:  # a typo would otherwise hide every GPU from the jobs, which then train on the CPUs
            if not (gpu.isdigit() or gpu.startswith(("GPU-", "MIG-"))):
                raise BabyGPTError(f"{GPUS_ENV} names {gpu!r}: give GPU indices (0,1) or UUIDs (GPU-…) as "
                                   "nvidia-smi -L lists them, or none to train on the CPUs only.")
        return gpus
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shown is not None:
        return tuple(part.strip() for part in shown.split(",") if part.strip() and part.strip() != "-1")
    import torch  # only here: a server without GPUs never asks CUDA anything

    return tuple(str(i) for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


def jobs_per_gpu() -> int:
    raw = os.environ.get(JOBS_PER_GPU_ENV, "").strip()
    if not raw:
        return DEFAULT_JOBS_PER_GPU
    if not raw.isdigit():  # at least 1: SchedulerSettings holds that rule for every way of setting it
        raise BabyGPTError(f"{JOBS_PER_GPU_ENV} must be a whole number of at least 1 (got {raw!r}).")
    return int(raw)


def job_memory_mb() -> int | None:
    """The memory one job may use, in MB (``BABYGPT_JOB_MEMORY_MB``; the local backend sets it for each job's
    process from its share): None when no limit is set."""
    return _positive_int_env(JOB_MEMORY_ENV)


def job_gpu_share() -> float | None:
    """The fraction of its GPU's memory this job may take, set by the local backend in the job's environment."""
    raw = os.environ.get(GPU_SHARE_ENV, "").strip()
    return float(raw) if raw else None


def disk_quota_from_env() -> DiskQuota:
    """``BABYGPT_USER_DISK_MB``: what each student's runs may take on disk (default 2,048 MB)."""
    raw = os.environ.get(USER_DISK_ENV, "").strip() or str(DEFAULT_USER_DISK_MB)
    if not raw.isdigit() or int(raw) < 1:
        raise BabyGPTError(f"{USER_DISK_ENV} must be a whole number of megabytes, got {raw!r}.")
    return DiskQuota(int(raw) * 2**20)


def admin_token() -> str | None:
    """The teacher's token (``BABYGPT_ADMIN_TOKEN``); None or empty: nobody can sign in as the teacher."""
    return os.environ.get(ADMIN_TOKEN_ENV) or None


def ray_address() -> str:
    """``BABYGPT_RAY_ADDRESS`` (``auto``, ``host:port`` or ``ray://host:10001``); empty: train on this machine."""
    return os.environ.get(RAY_ADDRESS_ENV, "").strip()


def gpus_per_job() -> float:
    """``BABYGPT_GPUS_PER_JOB``: the GPU fraction a Ray job asks for (0: CPU jobs)."""
    raw = os.environ.get(GPUS_PER_JOB_ENV, "").strip()
    try:
        gpus = float(raw) if raw else 0.0
    except ValueError:
        raise BabyGPTError(f"{GPUS_PER_JOB_ENV} must be a number such as 0.25 (got {raw!r}).") from None
    if not 0 <= gpus <= 64:
        raise BabyGPTError(f"{GPUS_PER_JOB_ENV} must be between 0 and the GPUs of one machine (got {raw!r}).")
    return gpus
