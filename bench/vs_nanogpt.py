"""Training speed against nanoGPT's own ``train.py``, on the same machine, in one run.

    python -m bench.vs_nanogpt --nanogpt PATH/TO/nanoGPT [--iters 300] [--rounds 2] [--compile] [--full]

``PATH`` is a checkout of https://github.com/karpathy/nanoGPT. Both train nanoGPT's CPU "baby GPT" of its
README (``--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --dropout=0.0``) on Tiny Shakespeare (char), which this script prepares for nanoGPT
exactly as its ``data/shakespeare_char/prepare.py`` does, from the copy shipped in ``data/``. Rounds alternate the
variants so the machine's drift hits them alike; each figure is the median over rounds of a run's median
step time (nanoGPT's printed ``time …ms``; this project's logged tokens/s), steps past the first 20 only.
``--compile`` adds nanoGPT with ``--compile=True``; ``--full`` adds one 2000-step run of each (nanoGPT's
README command and this project's shipped defaults at that size) with the final validation loss and wall time.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from babygpt.shipped import data_file
from babygpt.store.runs import RunStore
from bench.common import ROOT, emit, environment

TOKENS_PER_STEP = 12 * 64
SHAKESPEARE = data_file("corpora", "tinyshakespeare.txt")  # shipped in data/
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--eval_iters=20", "--log_interval=1",
                "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0",
                "--always_save_checkpoint=False"]
OURS_ARGS = ["--data", str(SHAKESPEARE), "--n-layer", "4", "--n-head", "4", "--n-embd", "128",
             "--block-size", "64", "--batch-size", "12", "--dropout", "0.0", "--eval-iters", "20", "--log-interval", "1"]
SKIP = 20  # first steps: allocator, caches, compilation


def prepare_nanogpt(source: Path, work: Path) -> Path:
    """A copy of nanoGPT with data/shakespeare_char built as its prepare.py builds it (no network needed)."""
    repo = work / "nanoGPT"
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns(".git", "out-*"))
    data = SHAKESPEARE.read_text(encoding="utf-8")
    chars = sorted(set(data))
    stoi = {c: i for i, c in enumerate(chars)}
    n = len(data)
    folder = repo / "data" / "shakespeare_char"
    for name, part in (("train.bin", data[: int(n * 0.9)]), ("val.bin", data[int(n * 0.9):])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(folder / name)
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return repo


def run_nanogpt(repo: Path, iters: int, compile_: bool) -> dict:
    args = [*NANOGPT_ARGS, f"--compile={compile_}", f"--max_iters={iters}", f"--lr_decay_iters={iters}",
            f"--eval_interval={iters}", f"--out_dir={repo / 'out'}"]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "train.py", *args], cwd=repo, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    times = [float(ms) for it, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", out.stdout)
             if int(it) >= SKIP and int(it) % iters]
    losses = re.findall(r"step \d+: train loss ([\d.]+), val loss ([\d.]+)", out.stdout)
    return {"tokens_per_sec": TOKENS_PER_STEP / (statistics.median(times) / 1000), "wall_s": wall,
            "val_loss": float(losses[-1][1])}


def run_ours(home: Path, iters: int, dtype: str | None) -> dict:
    env = dict(os.environ, BABYGPT_HOME=str(home), PYTHONPATH=str(ROOT))
    extra = ["--dtype", dtype] if dtype else []
    before = {r.id for r in RunStore(home).list_runs()}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "babygpt", "train", *OURS_ARGS, "--max-iters", str(iters),
                    "--eval-interval", str(iters), *extra], env=env, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - start
    store = RunStore(home)
    (run,) = [r for r in store.list_runs() if r.id not in before]
    rows = store.metrics(run.id)
    rates = [m.tokens_per_sec for m in rows if m.split == "train" and m.step > SKIP and m.tokens_per_sec]
    vals = [m.loss for m in rows if m.split == "val"]
    return {"tokens_per_sec": statistics.median(rates), "wall_s": wall, "val_loss": vals[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also nanoGPT with --compile=True")
    parser.add_argument("--full", action="store_true", help="also one 2000-step run of each: loss and wall time")
    args = parser.parse_args()
    if not SHAKESPEARE.is_file():
        sys.exit(f"error: {SHAKESPEARE} is missing")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = prepare_nanogpt(args.nanogpt, work)
        variants = {"nanogpt_eager": lambda n: run_nanogpt(repo, n, False),
                    "babygpt_default": lambda n: run_ours(work / "runs", n, None),
                    "babygpt_float32": lambda n: run_ours(work / "runs", n, "float32")}
        if args.compile:
            variants["nanogpt_compiled"] = lambda n: run_nanogpt(repo, n, True)
        rounds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                rounds[name].append(run(args.iters)["tokens_per_sec"])
        speed = {name: round(statistics.median(r)) for name, r in rounds.items()}
        result = {"benchmark": "vs_nanogpt", "env": environment(), "iters": args.iters, "rounds": args.rounds,
                  "tokens_per_sec": speed, "all_rounds": {k: [round(x) for x in v] for k, v in rounds.items()},
                  "ratio_to_nanogpt_eager": {k: round(v / speed["nanogpt_eager"], 2) for k, v in speed.items()}}
        if args.full:
            result["full_2000_steps"] = {"nanogpt_readme_command": run_nanogpt(repo, 2000, False),
                                         "babygpt_defaults": run_ours(work / "runs", 2000, None)}
    emit(result)


if __name__ == "__main__":
    main()
