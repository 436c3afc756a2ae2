"""Shared benchmark helpers: the reference corpus, a matmul peak measured in-process, JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from babygpt.text import datasets  # noqa: E402
from babygpt.text.corpus import Corpus  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    # nanoGPT's CPU "baby GPT" setting
    "cpu-baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0),
    # the lecture's gpt.py
    "gpt-py": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2),
}


def shakespeare() -> Corpus:
    """Tiny Shakespeare, as shipped in data/."""
    return datasets.load_corpus("tinyshakespeare")


def matmul_peak_gflops(n: int = 1024, repeats: int = 20, device: str = "cpu", dtype=torch.float32) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
