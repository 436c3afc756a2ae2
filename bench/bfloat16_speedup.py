"""The CPU's bfloat16 measurement that ``auto`` precision rests on, against torch's own benchmark timer.

    python -m bench.bfloat16_speedup [--size 512] [--rounds 5]

``babygpt.training.devices.bfloat16_speedup`` times a few 512² products in each precision (about 0.1 s where
bfloat16 is native) and ``auto`` trains in bfloat16 when it finds them at least ``BF16_MIN_SPEEDUP`` times faster.
Here the same ratio comes from ``torch.utils.benchmark.Timer.blocked_autorange`` (much longer, statistically
blocked), several rounds of each, alternating. What matters is that both land on the same side of the threshold:
a timing on a shared CPU moves, and AMX units warm up over longer than the project's quick measurement waits, so
the two ratios can differ by 2× where both are far above the threshold (a 2-core Intel Xeon with AMX-BF16: 3.56×
against 7.2×). This comparison used to be a test; it is timed, so it lives here.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils import benchmark

from babygpt.training import devices
from bench.common import emit, environment


def timer_speedup(size: int, min_run_time: float = 0.3) -> float:
    """float32 over bfloat16 median time of one size² product, by torch's benchmark timer."""

    def median(dtype: torch.dtype) -> float:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        return benchmark.Timer("a @ b", globals={"a": a, "b": b}).blocked_autorange(min_run_time=min_run_time).median

    return median(torch.float32) / median(torch.bfloat16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    devices.configure_threads()
    measured, timed = [], []
    for _ in range(args.rounds):  # alternating, so drift on a shared machine falls on both alike
        measured.append(devices.bfloat16_speedup(args.size))
        timed.append(timer_speedup(args.size))
    project, torch_timer = statistics.median(measured), statistics.median(timed)
    threshold = devices.BF16_MIN_SPEEDUP
    emit({
        "benchmark": "bfloat16_speedup", "size": args.size, "rounds": args.rounds, "env": environment(),
        "native_bfloat16_flag": devices.cpu_has_native_bfloat16(),
        "project_speedup": {"median": round(project, 3), "each": [round(m, 3) for m in measured]},
        "torch_timer_speedup": {"median": round(torch_timer, 3), "each": [round(t, 3) for t in timed]},
        "project_over_timer": round(project / torch_timer, 3),
        "threshold": threshold,
        "same_side_of_threshold": (project >= threshold) == (torch_timer >= threshold),
        "auto_would_choose": "bfloat16" if devices.cpu_has_native_bfloat16() and project >= threshold else "float32",
    })


if __name__ == "__main__":
    main()
