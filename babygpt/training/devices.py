"""Where a model runs: device choice, mixed precision and CPU threads, with clear errors when absent."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
import time
from collections.abc import Callable

import torch

from babygpt.errors import BabyGPTError


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if cuda_available() else []) + (["mps"] if mps_available() else [])


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; asking for an absent device is an error."""
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "mps" if mps_available() else "cpu")
    if name == "cuda" and not cuda_available():
        raise BabyGPTError(
            "CUDA was requested but no CUDA GPU is available to PyTorch "
            f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA). "
            "Use --device auto or cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU."
        )
    if name == "mps" and not mps_available():
        raise BabyGPTError("Apple MPS was requested but is not available here; use --device auto or cpu.")
    if name not in ("cpu", "cuda", "mps"):
        raise BabyGPTError(f"Unknown device {name!r}; choose auto, cpu, cuda or mps.")
    return torch.device(name)


@functools.cache  # the hardware does not change; pages ask on every rerun
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere PyTorch emulates it, slowly."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:  # not Linux: no cheap way to ask, so do not assume
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BF16_MIN_SPEEDUP = 1.3  # what bfloat16 matmuls must gain over float32 for ``auto`` to choose them on a CPU
CPU_BFLOAT16_ENV = "BABYGPT_CPU_BFLOAT16"  # on / off: what ``auto`` decides on a CPU, forced; unset or auto: measured
_FORCED = {"1": True, "on": True, "yes": True, "0": False, "off": False, "no": False}


def cpu_bfloat16_is_faster() -> bool:
    """Whether ``auto`` trains in bfloat16 on this CPU: measured, unless ``BABYGPT_CPU_BFLOAT16`` forces it.

    The choice differs between machines, and so do results at the last bits; forcing it lets the tests and a
    teacher reproduce either branch on any CPU (bfloat16 forced on a CPU without it is emulated: right, but slow).
    The forced value is read on every call, so a test may set it for one run; the measurement happens once.
    """
    forced = os.environ.get(CPU_BFLOAT16_ENV, "").strip().lower()
    if forced in _FORCED:
        return _FORCED[forced]
    if forced not in ("", "auto"):
        raise BabyGPTError(f"{CPU_BFLOAT16_ENV} must be on, off or auto (got {forced!r}).")
    return _measured_cpu_bfloat16_is_faster()


@functools.cache  # measured once per process
def _measured_cpu_bfloat16_is_faster() -> bool:
    """Whether this CPU multiplies bfloat16 clearly faster than float32, measured (about 0.1 s, once).

    The CPU flags are not enough: on a 2-core AMD EPYC with AVX512-BF16 bfloat16 matmuls ran at about twice the
    float32 rate, on a 2-core Intel Xeon with the same flag at about half of it (512², 0.53×), which made
    training 0.73× as fast. So ``auto`` asks the hardware.
    """
    return cpu_has_native_bfloat16() and bfloat16_speedup() >= BF16_MIN_SPEEDUP


def bfloat16_speedup(size: int = 512, repeats: int = 10, clock: Callable[[], float] = time.perf_counter,
                     multiply: Callable[[torch.Tensor, torch.Tensor], object] = torch.matmul) -> float:
    """How many times faster this CPU multiplies two size² matrices in bfloat16 than in float32: after three
    warm-up products, the faster of two rounds of ``repeats`` each. ``clock`` and ``multiply`` are the real ones
    except in tests, which check this logic with a clock of their own (the timed comparison against torch's
    benchmark timer is ``python -m bench.bfloat16_speedup``: a test cannot depend on how fast a machine is)."""

    def seconds(dtype: torch.dtype) -> float:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        for _ in range(3):
            multiply(a, b)
        best = float("inf")
        for _ in range(2):
            start = clock()
            for _ in range(repeats):
                multiply(a, b)
            best = min(best, clock() - start)
        return best

    return seconds(torch.float32) / seconds(torch.bfloat16)


def resolve_dtype(device: torch.device, dtype: str = "auto") -> str:
    """``auto`` picks bfloat16 mixed precision where it is clearly faster, else float32.

    With bfloat16 the matmuls can run at twice the rate (weights and optimizer state stay float32) and a
    char model learns as well step for step: val 1.761 against 1.763 after 2000 steps of Tiny
    Shakespeare, 30.0k against 19.2k tokens/s on a 2-core AMD EPYC with AVX512-BF16. On a CPU whose bfloat16
    matmuls are not faster (``cpu_bfloat16_is_faster``) it would only lose precision, so ``auto`` stays in
    float32 there. ``BABYGPT_CPU_BFLOAT16`` forces the choice either way (tests, reproducing another machine).
    """
    if dtype != "auto":
        return dtype
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device.type == "cpu" and cpu_bfloat16_is_faster():
        return "bfloat16"
    return "float32"


def auto_dtype() -> str:
    """What ``auto`` means for the device ``auto`` picks here (for the app's labels)."""
    return resolve_dtype(resolve_device("auto"))


def check_dtype(device: torch.device, dtype: str) -> str:
    """The dtype ``dtype`` settles to on ``device``, or a clear error when the device cannot train in it."""
    dtype = resolve_dtype(device, dtype)
    if dtype == "float16" and device.type == "cpu":
        raise BabyGPTError("float16 training needs a GPU; on the CPU use float32 or bfloat16.")
    if dtype == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BabyGPTError("This GPU does not support bfloat16; use float16 or float32.")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise BabyGPTError(f"Unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16.")
    return dtype


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass; weights and optimizer state stay float32."""
    if dtype == "float32" or device.type == "mps":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """OMP_NUM_THREADS when set (the scheduler's share for a job, torchrun), else the usable cores, capped
    at 8: oversubscription slows small matmuls down."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return min(usable_cores(), 8)


def configure_threads(threads: int = 0) -> int:
    n = threads or default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 2**30  # serve tensors up to 1 GiB from the heap
_TRIM_THRESHOLD = 2**31 - 1  # hand freed memory back only past 2 GiB at the top of the heap
_allocator_tuned: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the kernel after every op.

    glibc serves blocks over 128 KiB (growing to 32 MiB) with a fresh ``mmap`` and unmaps them on free, so
    the activations of every training step land on new pages that the kernel must fault in and zero:
    ~2,000-3,500 page faults a step at ``cpu-baby`` (~5% of the step) and 1.4 million at the lecture's
    ``gpt.py`` size, whose 100 MB attention maps made a step 40% slower than the lecture's per-head
    code (measured; bench/train_throughput.py). Raising the mmap and trim thresholds lets the heap reuse
    those pages after a step or two. Peak memory is unchanged; freed memory stays with the process until
    it exits. Returns whether the setting took effect (glibc Linux only; elsewhere a no-op).
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        if sys.platform.startswith("linux") and os.environ.get("BABYGPT_TUNE_ALLOCATOR", "1") != "0":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _allocator_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
                    libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
            except (OSError, AttributeError):  # musl or no libc to load: keep the default allocator
                _allocator_tuned = False
    return _allocator_tuned


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
