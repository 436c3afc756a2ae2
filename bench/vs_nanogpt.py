"""Training speed against nanoGPT's own ``train.py``, on the same machine, in one run.

    python -m bench.vs_nanogpt --nanogpt PATH/TO/nanoGPT [--iters 300] [--rounds 2] [--compile] [--full]
    python -m bench.vs_nanogpt --nanogpt PATH/TO/nanoGPT --device cuda [--iters 2000] [--variants ...]

``PATH`` is a checkout of https://github.com/karpathy/nanoGPT. Both train nanoGPT's CPU "baby GPT" of its
README (``--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --dropout=0.0``) on Tiny Shakespeare (char), which this script prepares for nanoGPT
exactly as its ``data/shakespeare_char/prepare.py`` does, from the copy shipped in ``data/``. Rounds alternate the
variants so the machine's drift hits them alike; each figure is the median over rounds of a run's median
step time (nanoGPT's printed ``time …ms``; this project's logged tokens/s), steps past the first 20 only.
``--compile`` adds nanoGPT with ``--compile=True``; ``--full`` adds one 2000-step run of each (nanoGPT's
README command and this project's shipped defaults at that size) with the final validation loss and wall time.

``--device cuda`` trains nanoGPT's GPU configuration instead (``config/train_shakespeare_char.py`` as it is: 6
layers × 384, block 256, batch 64, dropout 0.2, bfloat16, evaluation every 250 steps over 200 batches) and this
project's CLI at the same sizes and schedule; steps past the first 100 count (compilation), and every variant
reports its validation loss at the last step. Variants (``--variants``, comma-separated): ``nanogpt_compiled``,
``nanogpt_eager``, ``babygpt_eager``, ``babygpt_compiled``, ``babygpt_graphs`` (the step as a CUDA graph),
``babygpt_compiled_graphs``; each result also lists the notes the run printed (a fallback, say).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from babygpt.shipped import data_file
from babygpt.store.runs import RunStore
from bench.common import ROOT, emit, environment

SHAKESPEARE = data_file("corpora", "tinyshakespeare.txt")  # shipped in data/


@dataclass(frozen=True)
class Setup:
    """One machine's comparison: nanoGPT's command line, ours at the same sizes, and what counts."""

    nanogpt_args: tuple[str, ...]
    ours_args: tuple[str, ...]
    tokens_per_step: int
    skip: int  # first steps left out: allocator, caches, compilation
    variants: tuple[str, ...]  # the default comparison


CPU = Setup(
    nanogpt_args=("config/train_shakespeare_char.py", "--device=cpu", "--eval_iters=20", "--log_interval=1",
                  "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
                  "--dropout=0.0", "--always_save_checkpoint=False"),
    ours_args=("--data", str(SHAKESPEARE), "--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--block-size",
               "64", "--batch-size", "12", "--dropout", "0.0", "--eval-iters", "20", "--log-interval", "1",
               "--device", "cpu"),
    tokens_per_step=12 * 64, skip=20, variants=("nanogpt_eager", "babygpt_default", "babygpt_float32"))
CUDA = Setup(
    nanogpt_args=("config/train_shakespeare_char.py", "--device=cuda", "--always_save_checkpoint=False"),
    ours_args=("--data", str(SHAKESPEARE), "--n-layer", "6", "--n-head", "6", "--n-embd", "384", "--block-size",
               "256", "--batch-size", "64", "--dropout", "0.2", "--lr", "1e-3", "--min-lr", "1e-4",
               "--warmup-iters", "100", "--beta2", "0.99", "--eval-iters", "200", "--log-interval", "10",
               "--device", "cuda"),
    tokens_per_step=64 * 256, skip=100, variants=("nanogpt_compiled", "babygpt_compiled_graphs"))
SETUPS = {"cpu": CPU, "cuda": CUDA}
OURS_FLAGS = {"babygpt_default": [], "babygpt_float32": ["--dtype", "float32"], "babygpt_eager": [],
              "babygpt_compiled": ["--compile"], "babygpt_graphs": ["--cuda-graphs"],
              "babygpt_compiled_graphs": ["--compile", "--cuda-graphs"]}
NANOGPT_COMPILED = {"nanogpt_eager": False, "nanogpt_compiled": True}


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


def run_nanogpt(repo: Path, setup: Setup, iters: int, compile_: bool, eval_interval: int | None = None) -> dict:
    args = [*setup.nanogpt_args, f"--compile={compile_}", f"--max_iters={iters}", f"--lr_decay_iters={iters}",
            f"--eval_interval={eval_interval or iters}", f"--out_dir={repo / 'out'}"]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "train.py", *args], cwd=repo, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    times = [float(ms) for it, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", out.stdout)
             if int(it) >= setup.skip and int(it) % iters]
    losses = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", out.stdout)
    return {"tokens_per_sec": setup.tokens_per_step / (statistics.median(times) / 1000), "wall_s": wall,
            "val_loss": float(losses[-1][2]), "val_step": int(losses[-1][0])}


def run_ours(home: Path, setup: Setup, iters: int, flags: list[str], eval_interval: int | None = None) -> dict:
    env = dict(os.environ, BABYGPT_HOME=str(home), PYTHONPATH=str(ROOT))
    before = {r.id for r in RunStore(home).list_runs()}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "babygpt", "train", *setup.ours_args, "--max-iters", str(iters),
                          "--eval-interval", str(eval_interval or iters), *flags], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    store = RunStore(home)
    (run,) = [r for r in store.list_runs() if r.id not in before]
    rows = store.metrics(run.id)
    rates = [m.tokens_per_sec for m in rows if m.split == "train" and m.step > setup.skip and m.tokens_per_sec]
    vals = [(m.step, m.loss) for m in rows if m.split == "val"]
    notes = [line[len("note: "):] for line in out.stderr.splitlines() if line.startswith("note: ")]
    return {"tokens_per_sec": statistics.median(rates), "wall_s": wall, "val_loss": vals[-1][1],
            "val_step": vals[-1][0], "notes": notes}


def runner(name: str, repo: Path, home: Path, setup: Setup, eval_interval: int | None) -> Callable[[int], dict]:
    if name in NANOGPT_COMPILED:
        return lambda n: run_nanogpt(repo, setup, n, NANOGPT_COMPILED[name], eval_interval)
    if name in OURS_FLAGS:
        return lambda n: run_ours(home, setup, n, OURS_FLAGS[name], eval_interval)
    raise SystemExit(f"error: unknown variant {name!r}; choose from {', '.join([*NANOGPT_COMPILED, *OURS_FLAGS])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--device", choices=SETUPS, default="cpu")
    parser.add_argument("--iters", type=int, default=None, help="steps per run (default: 300 on cpu, 2000 on cuda)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default: 2 on cpu, 1 on cuda)")
    parser.add_argument("--variants", help="comma-separated; default: the device's comparison (see above)")
    parser.add_argument("--compile", action="store_true", help="also nanoGPT with --compile=True")
    parser.add_argument("--full", action="store_true", help="also one 2000-step run of each: loss and wall time")
    args = parser.parse_args()
    if not SHAKESPEARE.is_file():
        sys.exit(f"error: {SHAKESPEARE} is missing")
    setup = SETUPS[args.device]
    on_gpu = args.device == "cuda"
    iters = args.iters or (2000 if on_gpu else 300)
    rounds_wanted = args.rounds or (1 if on_gpu else 2)
    names = args.variants.split(",") if args.variants else list(setup.variants)
    if args.compile and "nanogpt_compiled" not in names:
        names.append("nanogpt_compiled")
    eval_interval = 250 if on_gpu and iters >= 250 else None  # nanoGPT's GPU schedule evaluates every 250 steps
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = prepare_nanogpt(args.nanogpt, work)
        variants = {name: runner(name, repo, work / "runs", setup, eval_interval) for name in names}
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(rounds_wanted):
            for name, run in variants.items():
                runs[name].append(run(iters))
        speed = {name: round(statistics.median(r["tokens_per_sec"] for r in rs)) for name, rs in runs.items()}
        reference = names[0]
        result = {"benchmark": "vs_nanogpt", "device": args.device, "env": environment(), "iters": iters,
                  "rounds": rounds_wanted, "tokens_per_sec": speed,
                  "all_rounds": {k: [round(r["tokens_per_sec"]) for r in v] for k, v in runs.items()},
                  f"ratio_to_{reference}": {k: round(v / speed[reference], 2) for k, v in speed.items()},
                  "val_loss": {k: [round(r["val_loss"], 4) for r in v] for k, v in runs.items()},
                  "val_step": {k: v[-1]["val_step"] for k, v in runs.items()},
                  "notes": {k: sorted({n for r in v for n in r.get("notes", [])}) for k, v in runs.items()}}
        if args.full:
            result["full_2000_steps"] = {"nanogpt_readme_command": run_nanogpt(repo, setup, 2000, on_gpu),
                                         "babygpt_defaults": run_ours(work / "runs", setup, 2000, [])}
    emit(result)


if __name__ == "__main__":
    main()
