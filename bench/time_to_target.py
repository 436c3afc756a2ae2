"""Time to a good model: the wall time nanoGPT and this project's best recipe each take to reach a validation loss.

    python -m bench.time_to_target --nanogpt PATH/TO/nanoGPT [--target 1.88] [--seeds 3] [--threads N] [--quick]

``PATH`` is a checkout of https://github.com/karpathy/nanoGPT (no network is needed: its own
``data/shakespeare_char/prepare.py`` is run on a copy of Tiny Shakespeare from ``../shared/data``, or ``--text``).
Without it, or when ``PATH`` is not a nanoGPT checkout, this project's run is still measured and the JSON says
why nanoGPT was not (``nanogpt.skipped``). Both run on this machine, one after the other, in float32 and with the
same CPU threads:

- nanoGPT's own, unmodified ``train.py`` with the CPU "baby GPT" command of its README (``NANOGPT_README``), run as
  a subprocess; its training time is read from the moments its log lines arrive (``train_seconds_at_evals``), the
  time between each ``iter k-1`` line and the ``step k`` line that follows (its evaluation) left out.
- This project's ``python -m babygpt train --preset modern --until-val-loss TARGET`` with the preset's own defaults,
  whose JSON gives the step and the training seconds with evaluation left out, once per seed (``--seeds``): the
  speed-up is read at the median seed, its range over the slowest and fastest, so a lucky seed is not the result.
  ``--dtype auto`` settles to what the machine trains fastest in; where that is not float32 it is timed as well,
  reported beside.

What is measured alike (the comparison is only fair if every item is):
- the same text and held-out part: the last 10% of Tiny Shakespeare (nanoGPT's ``prepare.py`` cuts at int(0.9 n),
  this project keeps the last int(0.1 n) characters: the same tail to one character);
- the same evaluation grid and estimator while training: every ``eval_interval`` steps, ``eval_iters`` random
  batches of 12 windows of 64 characters from that tail (both draw windows the same way), the same target rule
  (the first evaluation at or below the target) and the same exclusion of evaluation time; both save a checkpoint at
  every evaluation and count that time as training;
- the same check afterwards: each model's stopping checkpoint is evaluated by ``heldout_loss`` here, one function
  for both, over every non-overlapping 64-character window of the held-out tail, with no sampling at all. Its
  per-window spread gives the standard error of the training-time estimate, sd / √(12 · eval_iters), reported as
  ``eval_standard_error`` (the target is resolved to ±0.01 when it is at most 0.005).

``--quick`` proves the machinery: a high target, few steps, a coarse grid, few batches, one thread and the first
4,096 held-out characters for the check. Its times mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from babygpt.store.runs import RunStore
from babygpt.training import devices
from bench.common import ROOT, emit

SHARED_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
# nanoGPT's README, "I only have a macbook": its CPU baby GPT, reaching val loss about 1.88 after 2,000 steps
NANOGPT_README = ("config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                  "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                  "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0")
BATCH, BLOCK = 12, 64  # the README command's batch and block; the modern preset's defaults are the same
VAL_FRACTION = 0.1
GOOD_TO = 0.01  # the figure must be good to ±0.01: two standard errors at most
SEEDS = (1337, 1, 2, 3, 4)  # this project's: the CLI's default seed first (nanoGPT's train.py fixes its own)


@dataclass(frozen=True)
class Settings:
    """What one measurement trains to and how densely it evaluates (the same for both contestants)."""

    target: float
    eval_interval: int
    eval_iters: int
    max_iters: int | None  # None: each side's own default (nanoGPT's README 2,000; the preset's own)
    heldout_chars: int | None = None  # None: all of the held-out tail
    threads: int | None = None  # None: this project's choice for the machine (both sides get the same)


# an evaluation every 25 steps: a coarser grid would add up to a grid's steps to the faster side's time
FULL = Settings(target=1.88, eval_interval=25, eval_iters=300, max_iters=None)
# one thread: on a busy machine many threads wait on each other (the figures mean nothing in this mode anyway)
QUICK = Settings(target=3.6, eval_interval=10, eval_iters=2, max_iters=40, heldout_chars=4096, threads=1)


# -- nanoGPT's log lines ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalLine:
    """``step 250: train loss 1.9721, val loss 2.0640``: nanoGPT's evaluation, before step ``step`` trains."""

    step: int
    train_loss: float
    val_loss: float


@dataclass(frozen=True)
class IterLine:
    """``iter 249: loss 1.9874, time 61.23ms, mfu 0.04%``: one training step done (``ms`` includes any evaluation
    and checkpoint that ran before it)."""

    step: int
    loss: float
    ms: float


EVAL_RE = re.compile(r"^step (\d+): train loss ([\d.]+|nan|inf), val loss ([\d.]+|nan|inf)\s*$")
ITER_RE = re.compile(r"^iter (\d+): loss ([\d.]+|nan|inf), time ([\d.]+)ms")


def parse_nanogpt_line(line: str) -> EvalLine | IterLine | None:
    """One line of nanoGPT's ``train.py`` output as an evaluation, a training step, or None for anything else."""
    if m := EVAL_RE.match(line.strip()):
        return EvalLine(int(m[1]), float(m[2]), float(m[3]))
    if m := ITER_RE.match(line.strip()):
        return IterLine(int(m[1]), float(m[2]), float(m[3]))
    return None


def train_seconds_at_evals(timed: list[tuple[float, EvalLine | IterLine]]) -> dict[int, float]:
    """The training seconds before each evaluation, from the moments nanoGPT's lines arrived (``perf_counter``).

    The clock starts when step 0's evaluation line arrives. nanoGPT evaluates right after printing ``iter k-1`` and
    prints ``step k`` when done, so each evaluation is the gap between those two lines, left out; everything else
    (steps, the checkpoint it saves after an evaluation, printing) counts, as it does for this project's trainer."""
    start: float | None = None
    last_iter: float | None = None
    eval_s = 0.0
    seconds: dict[int, float] = {}
    for arrived, line in timed:
        if isinstance(line, IterLine):
            last_iter = arrived
        elif start is None:
            start = arrived
            seconds[line.step] = 0.0
        elif last_iter is not None:
            seconds[line.step] = last_iter - start - eval_s
            eval_s += arrived - last_iter
    return seconds


def first_at_or_below(evals: list[EvalLine], target: float) -> EvalLine | None:
    """The first evaluation whose validation loss is at or below ``target``: the rule ``--until-val-loss`` keeps."""
    return next((e for e in evals if e.val_loss <= target), None)


# -- the comparison --------------------------------------------------------------------------------------------
def speedup(nanogpt_s: float | None, ours_s: float | None) -> float | None:
    """How many times faster this project reached the target (nanoGPT's seconds over ours), or None if either
    did not reach it."""
    if not nanogpt_s or not ours_s:
        return None
    return round(nanogpt_s / ours_s, 2)


def standard_error(window_sd: float, eval_iters: int, batch: int = BATCH) -> float:
    """The standard error of a training-time estimate: the mean of ``eval_iters`` batches of ``batch`` random
    windows, each window's loss spread by ``window_sd``."""
    return window_sd / math.sqrt(batch * eval_iters)


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name as /proc/cpuinfo gives it (the first core's), or the platform's word for it."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    import platform

    return platform.processor() or platform.machine()


RESULT_KEYS = ("benchmark", "quick", "cpu", "threads", "torch", "load_average", "target_val_loss", "eval_interval",
               "eval_iters", "eval_tokens", "heldout_tokens", "nanogpt", "babygpt_float32", "babygpt_auto",
               "speedup_float32", "speedup_float32_at_least", "speedup_float32_range", "speedup_auto", "eval_standard_error",
               "resolved_to_target")
SIDE_KEYS = ("reached", "step", "train_s", "val_loss_in_training", "val_loss_heldout")


def side(reached: bool, step: int | None, train_s: float | None, val_in_training: float | None,
         val_heldout: float | None, **extra: Any) -> dict[str, Any]:
    """One contestant's figures, in the same keys for each (``SIDE_KEYS``), plus what only it has."""
    return {"reached": reached, "step": step, "train_s": None if train_s is None else round(train_s, 2),
            "val_loss_in_training": None if val_in_training is None else round(val_in_training, 4),
            "val_loss_heldout": None if val_heldout is None else round(val_heldout, 4), **extra}


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """This project's side over its seeds: the run of the median time (every ``SIDE_KEYS`` as one run's), with
    every seed's run and the range of their times beside it (``seeds``). A seed that missed the target makes the
    side not reached: a recipe that reaches it only on lucky seeds does not reach it."""
    reached = [r for r in runs if r["reached"]]
    if len(reached) < len(runs):
        median_run = next(r for r in runs if not r["reached"])
    else:
        median_run = sorted(reached, key=lambda r: r["train_s"])[(len(reached) - 1) // 2]
    times = [r["train_s"] for r in reached]
    return {**median_run, "seeds": {"runs": runs, "steps": [r["step"] for r in runs],
                                    "train_s": [r["train_s"] for r in runs],
                                    "train_s_range": [min(times), max(times)] if times else None}}


def build_result(settings: Settings, quick: bool, threads: int, nanogpt: dict[str, Any],
                 ours32: dict[str, Any], ours_auto: dict[str, Any], window_sd: float | None,
                 heldout_tokens: int) -> dict[str, Any]:
    """The JSON the bench prints, every key of ``RESULT_KEYS`` present (None where not measured). The speed-up is
    nanoGPT's time over the median seed's, and its range over the slowest and the fastest seed."""
    error = None if window_sd is None else round(standard_error(window_sd, settings.eval_iters), 4)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    seeds_range = (ours32.get("seeds") or {}).get("train_s_range")
    return {"benchmark": "time_to_target", "quick": quick, "cpu": cpu_name(), "threads": threads,
            "torch": torch.__version__, "load_average": None if load is None else [round(x, 2) for x in load],
            "target_val_loss": settings.target, "eval_interval": settings.eval_interval,
            "eval_iters": settings.eval_iters, "eval_tokens": settings.eval_iters * BATCH * BLOCK,
            "heldout_tokens": heldout_tokens, "nanogpt": nanogpt, "babygpt_float32": ours32,
            "babygpt_auto": ours_auto,
            "speedup_float32": speedup(nanogpt.get("train_s"), ours32.get("train_s")),
            # nanoGPT's command ended above the target: it would take longer than all of its steps took
            "speedup_float32_at_least": None if nanogpt.get("reached") or not ours32.get("train_s") else
            speedup(nanogpt.get("train_s_at_last_step"), ours32.get("train_s")),
            "speedup_float32_range": None if not seeds_range else [
                speedup(nanogpt.get("train_s"), seeds_range[1]), speedup(nanogpt.get("train_s"), seeds_range[0])],
            # where auto settles to float32 the float32 run is the auto run
            "speedup_auto": speedup(nanogpt.get("train_s"), ours_auto.get("train_s", ours32.get("train_s"))),
            "eval_standard_error": error,
            "resolved_to_target": None if error is None else 2 * error <= GOOD_TO}


# -- the common held-out estimate ------------------------------------------------------------------------------
def heldout_tail(text: str) -> str:
    """The held-out part both sides keep out of training: the last int(0.1 n) characters (nanoGPT holds out one
    character more, the one before it)."""
    return text[len(text) - int(len(text) * VAL_FRACTION):]


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, ids: list[int], block: int = BLOCK, batch: int = 64) -> tuple[float, float]:
    """The mean cross-entropy over every position of every non-overlapping ``block`` window of ``ids``, and the
    spread (sd) of the windows' own means. The same function for both models, in float32, without sampling: the
    expectation of both training loops' random-window estimates."""
    model.eval()
    n = (len(ids) - 1) // block
    data = torch.tensor(ids[: n * block + 1], dtype=torch.long)
    x, y = data[:-1].view(n, block), data[1:].view(n, block)
    means = []
    for i in range(0, n, batch):
        logits = model(x[i:i + batch], y[i:i + batch])[0].float()
        losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[i:i + batch].reshape(-1), reduction="none")
        means.append(losses.view(-1, block).mean(dim=1))
    per_window = torch.cat(means)
    return per_window.mean().item(), per_window.std().item()


# -- nanoGPT ---------------------------------------------------------------------------------------------------
def nanogpt_problem(path: Path | None) -> str | None:
    """Why ``path`` cannot be nanoGPT's checkout, in a sentence, or None when it can."""
    if path is None:
        return "no nanoGPT checkout given (--nanogpt PATH, a copy of https://github.com/karpathy/nanoGPT)"
    needed = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py",
              "data/shakespeare_char/prepare.py")
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        return f"{path.name} is not a nanoGPT checkout: it lacks {', '.join(missing)}"
    return None


def prepare_nanogpt(source: Path, work: Path, text: Path) -> Path:
    """A copy of nanoGPT whose char data is built by its own ``prepare.py`` from ``text`` (given as its
    ``input.txt``, so it downloads nothing)."""
    repo = work / "nanoGPT"
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns(".git", "out*"))
    folder = repo / "data" / "shakespeare_char"
    shutil.copyfile(text, folder / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=folder, check=True, capture_output=True, text=True)
    return repo


def nanogpt_args(settings: Settings, out_dir: Path) -> list[str]:
    """The README command with the measurement's grid: later ``--key=value`` pairs override earlier ones in
    nanoGPT's configurator. float32 is named (on the CPU nanoGPT computes in float32 anyway; this also keeps its
    float16 GradScaler off) and a checkpoint is kept at every evaluation."""
    args = [*NANOGPT_README, f"--eval_interval={settings.eval_interval}", f"--eval_iters={settings.eval_iters}",
            "--dtype=float32", "--always_save_checkpoint=True", f"--out_dir={out_dir}"]
    if settings.max_iters:
        args += [f"--max_iters={settings.max_iters}", f"--lr_decay_iters={settings.max_iters}"]
    return args


def run_nanogpt(repo: Path, settings: Settings, env: dict[str, str]) -> tuple[dict[str, Any], Path | None]:
    """nanoGPT's train.py until its first evaluation at or below the target has been saved (its next step's line),
    then stopped; its training seconds up to that evaluation and its checkpoint."""
    out_dir = repo / "out-time-to-target"
    cmd = [sys.executable, "-u", "train.py", *nanogpt_args(settings, out_dir)]
    timed: list[tuple[float, EvalLine | IterLine]] = []
    tail: list[str] = []
    hit: EvalLine | None = None
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for raw in proc.stdout:
        arrived = time.perf_counter()
        tail = (tail + [raw.rstrip()])[-20:]
        line = parse_nanogpt_line(raw)
        if line is None:
            continue
        timed.append((arrived, line))
        if isinstance(line, EvalLine) and hit is None and line.step > 0 and line.val_loss <= settings.target:
            hit = line
        if hit is not None and isinstance(line, IterLine) and line.step == hit.step:
            break  # its checkpoint of step hit.step is on disk: the save comes before this step
    proc.terminate()
    proc.wait()
    evals = [line for _, line in timed if isinstance(line, EvalLine)]
    if hit is None and proc.returncode not in (0, -15):
        raise SystemExit("error: nanoGPT's train.py failed:\n" + "\n".join(tail))
    seconds = train_seconds_at_evals(timed)
    last = evals[-1] if evals else None
    result = side(hit is not None, hit.step if hit else None, seconds.get(hit.step) if hit else None,
                  hit.val_loss if hit else None, None, command="python train.py " + " ".join(NANOGPT_README),
                  best_val_loss_in_training=min((e.val_loss for e in evals), default=None),
                  last_step=last.step if last else None,
                  train_s_at_last_step=None if last is None or last.step not in seconds else round(seconds[last.step], 2),
                  median_step_ms=_median([line.ms for _, line in timed if isinstance(line, IterLine)
                                          and line.step % settings.eval_interval]))
    return result, (out_dir / "ckpt.pt") if hit else None


def nanogpt_heldout(repo: Path, checkpoint: Path, tail: str) -> tuple[float, float]:
    """nanoGPT's saved model (built by its own model.py) on the held-out tail, encoded by its own meta.pkl."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", repo / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    with contextlib.redirect_stdout(sys.stderr):  # its model prints its size: stdout carries the JSON alone
        spec.loader.exec_module(module)
        model = module.GPT(module.GPTConfig(**saved["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in saved["model"].items()})
    with open(repo / "data" / "shakespeare_char" / "meta.pkl", "rb") as f:
        stoi = pickle.load(f)["stoi"]
    return heldout_loss(model, [stoi[c] for c in tail])


# -- this project ----------------------------------------------------------------------------------------------
def ours_args(settings: Settings, text: Path, threads: int, dtype: str, seed: int = SEEDS[0]) -> list[str]:
    """``train --preset modern --until-val-loss TARGET`` with the preset's own defaults; only the measurement's
    grid, the text, the threads and the precision are named."""
    args = ["--preset", "modern", "--until-val-loss", str(settings.target), "--data", str(text), "--dtype", dtype,
            "--device", "cpu", "--threads", str(threads), "--eval-interval", str(settings.eval_interval),
            "--eval-iters", str(settings.eval_iters), "--seed", str(seed)]
    if settings.max_iters:
        args += ["--max-iters", str(settings.max_iters)]
    return args


def run_ours(home: Path, settings: Settings, text: Path, threads: int, dtype: str,
             env: dict[str, str], seed: int = SEEDS[0]) -> tuple[dict[str, Any], str | None]:
    """One run of the CLI; its summary's target fields, and its run id (its kept checkpoint is the target's)."""
    args = ours_args(settings, text, threads, dtype, seed)
    out = subprocess.run([sys.executable, "-m", "babygpt", "--home", str(home), "train", *args], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: python -m babygpt train failed:\n{out.stderr[-3000:]}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    reached = bool(summary.get("target_reached"))
    result = side(reached, summary.get("target_step"), summary.get("target_wall_s"),
                  summary.get("val_loss") if reached else None, None,
                  command="python -m babygpt train " + " ".join(args), dtype=trained_dtype(out.stderr) or dtype,
                  params=summary.get("params"), last_step=summary.get("step"), seed=seed,
                  best_val_loss_in_training=summary.get("best_val_loss"))
    return result, summary["run"] if reached else None


def trained_dtype(stderr: str) -> str | None:
    """The precision a CLI run settled to, from its first line (``run …, device cpu (2 threads), float32``)."""
    found = re.search(r"^run .*, device .*?, (float32|bfloat16|float16)", stderr, re.MULTILINE)
    return found[1] if found else None


def ours_heldout(home: Path, run: str, tail: str) -> tuple[float, float]:
    loaded = RunStore(home).load(run)
    return heldout_loss(loaded.model.float(), loaded.tokenizer.encode(tail))


def say(message: str) -> None:
    """Progress on stderr; stdout carries the JSON alone."""
    print(message, file=sys.stderr, flush=True)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 2)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    base = QUICK if args.quick else FULL
    settings = Settings(args.target if args.target is not None else base.target,
                        args.eval_interval or base.eval_interval, args.eval_iters or base.eval_iters, base.max_iters)
    threads = args.threads or base.threads or devices.default_threads()
    torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    text = args.text
    if not text.is_file():
        raise SystemExit(f"error: {text} is missing: give Tiny Shakespeare with --text PATH")
    tail = heldout_tail(text.read_text(encoding="utf-8"))[: base.heldout_chars]
    auto = devices.check_dtype(torch.device("cpu"), "auto")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] >= os.cpu_count():
        say(f"warning: the load average is {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other work shares "
            "this machine, and its times are not a measurement (the JSON keeps the load average)")
    sds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        problem = nanogpt_problem(args.nanogpt)
        nano: dict[str, Any] = {"skipped": problem}
        if problem is None:
            repo = prepare_nanogpt(args.nanogpt, work, text)
            say(f"nanoGPT's train.py to val loss {settings.target} …")
            nano, checkpoint = run_nanogpt(repo, settings, env)
            if checkpoint is not None:
                say(f"nanoGPT reached it at step {nano['step']}; its checkpoint on the held-out tail …")
                loss, sd = nanogpt_heldout(repo, checkpoint, tail)
                nano["val_loss_heldout"], sds = round(loss, 4), [*sds, sd]
        home = work / "runs"
        sides = {}
        for dtype in ("float32",) if auto == "float32" else ("float32", "auto"):
            runs = []
            for seed in SEEDS[:args.seeds]:
                say(f"python -m babygpt train --preset modern ({dtype}, seed {seed}) to val loss {settings.target} …")
                result, run = run_ours(home, settings, text, threads, dtype, env, seed)
                if run is not None:
                    say(f"it reached it at step {result['step']}; its checkpoint on the held-out tail …")
                    loss, sd = ours_heldout(home, run, tail)
                    result["val_loss_heldout"], sds = round(loss, 4), [*sds, sd]
                runs.append(result)
            sides[dtype] = over_seeds(runs)
    ours_auto = sides.get("auto") or {"same_as_float32": f"--dtype auto settles to {auto} on this machine"}
    return build_result(settings, args.quick, threads, nano, sides["float32"], ours_auto,
                        max(sds) if sds else None, len(tail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, help="a checkout of karpathy/nanoGPT (without it: ours alone)")
    parser.add_argument("--text", type=Path, default=SHARED_TEXT, help="Tiny Shakespeare (default: %(default)s)")
    parser.add_argument("--target", type=float, help=f"validation loss to reach (default {FULL.target}; "
                                                     f"--quick {QUICK.target})")
    parser.add_argument("--threads", type=int, help="CPU threads for both (default: this project's choice)")
    parser.add_argument("--eval-interval", type=int, help=f"steps between evaluations (default {FULL.eval_interval})")
    parser.add_argument("--eval-iters", type=int, help=f"batches per evaluation (default {FULL.eval_iters})")
    parser.add_argument("--seeds", type=int, default=3, choices=range(1, len(SEEDS) + 1),
                        help="this project's runs, one per seed (default 3; nanoGPT's train.py fixes its seed)")
    parser.add_argument("--quick", action="store_true", help="prove it works: tiny target, few steps")
    emit(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
