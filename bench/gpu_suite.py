"""Every GPU measurement in one go (under 8 minutes on one H200), for a machine that is lent for minutes.

    python -m bench.gpu_suite --nanogpt PATH/TO/nanoGPT --out DIR [--budget-s 480] [--skip-mps]

In order of what matters most, each a subprocess with its own time limit inside ``--budget-s``, each writing its
JSON into ``DIR``:

1. ``gpu_check.json``: the step replayed as a CUDA graph against the plain step (losses, weights, resume,
   batched evaluation), so nothing below is measured on a step that computes something else;
2. ``vs_nanogpt_cuda.json``: nanoGPT's GPU configuration, 2000 steps, nanoGPT compiled against this project
   compiled with CUDA graphs: tokens/s and validation loss at step 2000;
3. ``gpu_class.json``: 1, 4 and 16 students at once through the scheduler, 600 steps of the app's default run,
   plain step and graphs;
4. ``vs_nanogpt_cuda_variants.json``: this project's other steps at the lecture's sizes (eager, graphs alone,
   compiled alone), 500 steps: what each piece gives;
5. ``gpu_class_mps.json``: 16 students with graphs under CUDA MPS, where the machine has its control daemon (started
   here and stopped again);

then ``summary.json``: the GPU targets (``TARGETS``), each with the figure that meets it or not. A part that fails or runs
out of time is recorded as such in ``suite.log`` and the rest still run; a class benchmark cut short keeps the
classes it finished, and every training a part started is stopped with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT

STOP_GRACE_S = 40  # what a timed-out part gets to stop its workers (each checkpoints after its step)
TARGETS = {"lecture_vs_nanogpt_compiled": 1.5, "app_model_one_job_tokens_per_sec": 400_000,
           "sixteen_jobs_total_tokens_per_sec": 3_000_000}


def run_step(out: Path, name: str, args: list[str], timeout_s: int, env: dict | None = None) -> dict | None:
    """Run one benchmark module; its JSON (stdout) goes to ``out/name.json``, its log to ``out/suite.log``."""
    started = time.perf_counter()
    with open(out / "suite.log", "a", encoding="utf-8") as log:
        log.write(f"\n=== {name}: {' '.join(args)}\n")
        log.flush()
        # a session of its own: on a time limit the part and the trainings it started get SIGTERM together
        child = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        try:
            stdout, stderr = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # SIGTERM first: a CLI training stops after its step, and a class benchmark stops its scheduler's
            # workers (sessions of their own, which outlive a killed parent) and prints the classes it finished
            os.killpg(child.pid, signal.SIGTERM)
            try:
                stdout, stderr = child.communicate(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                stdout, stderr = child.communicate()
            log.write(f"timed out after {timeout_s} s\n")
        log.write(stderr[-4000:])
        log.write(f"exit {child.returncode} after {time.perf_counter() - started:.0f} s\n")
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        return None  # failed, or interrupted before it had anything to say
    (out / f"{name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def with_mps(out: Path, args: list[str], timeout_s: int) -> dict | None:
    """The same class with the CUDA MPS control daemon running (our own pipe directory; quit afterwards)."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        return {"skipped": "this machine has no nvidia-cuda-mps-control"}
    with tempfile.TemporaryDirectory() as pipes:
        env = dict(os.environ, CUDA_MPS_PIPE_DIRECTORY=pipes, CUDA_MPS_LOG_DIRECTORY=pipes)
        started = subprocess.run([control, "-d"], env=env, capture_output=True, text=True)
        if started.returncode != 0:
            return {"skipped": f"the MPS daemon did not start: {started.stderr.strip()[:200]}"}
        try:
            return run_step(out, "gpu_class_mps", args, timeout_s, env)
        finally:
            subprocess.run([control], input="quit\n", env=env, capture_output=True, text=True)


def summarise(check, lecture, classes) -> dict:
    summary: dict = {"graphs_train_as_plain": None, "targets": TARGETS}
    if check:
        agrees = all(check[k] for k in ("step_loss_ok", "weight_ok", "resume_ok", "batched_eval_ok"))
        summary["graphs_train_as_plain"] = agrees and check["recorded"] == "CudaGraphStep"
    if lecture:
        speed, val = lecture["tokens_per_sec"], lecture["val_loss"]
        ratio = speed["babygpt_compiled_graphs"] / speed["nanogpt_compiled"]
        summary["lecture_vs_nanogpt_compiled"] = {
            "ratio": round(ratio, 3), "met": ratio >= TARGETS["lecture_vs_nanogpt_compiled"],
            "val_loss": {k: v[-1] for k, v in val.items()},
            "val_no_worse": val["babygpt_compiled_graphs"][-1] <= val["nanogpt_compiled"][-1]}
    if classes:
        runs = classes["classes"]  # the best of the plain step and graphs counts
        one = max((c["tokens_per_sec_each"][0] for c in runs if c["jobs"] == 1), default=None)
        sixteen = max((c["tokens_per_sec_total"] for c in runs if c["jobs"] == 16), default=None)
        summary["app_model_one_job_tokens_per_sec"] = {
            "value": one, "met": one is not None and one >= TARGETS["app_model_one_job_tokens_per_sec"]}
        summary["sixteen_jobs_total_tokens_per_sec"] = {
            "value": sixteen, "met": sixteen is not None and sixteen >= TARGETS["sixteen_jobs_total_tokens_per_sec"]}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=int, default=480, help="the whole suite's time limit")
    parser.add_argument("--skip-mps", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps a part: the suite's plumbing checked on any machine, nothing measured")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    nanogpt = str(args.nanogpt.resolve())
    deadline = time.perf_counter() + args.budget_s

    def limit(seconds: int) -> int:
        # quick: a few steps a part, each allowed the whole remaining budget, so a busy machine slows it, never fails it
        return max(1, min(args.budget_s if args.quick else seconds, int(deadline - time.perf_counter())))

    steps = {"check": "6", "class": "6", "class_jobs": "1"} if args.quick else \
        {"check": "60", "class": "600", "class_jobs": "1,4,16"}
    check = run_step(args.out, "gpu_check", ["bench.gpu_check", "--steps", steps["check"]], limit(90))
    lecture = run_step(args.out, "vs_nanogpt_cuda",
                       ["bench.vs_nanogpt", "--nanogpt", nanogpt, "--device", "cuda", "--iters", "2000"], limit(210))
    classes = run_step(args.out, "gpu_class",
                       ["bench.gpu_class", "--jobs", steps["class_jobs"], "--graphs", "both", "--steps", steps["class"]],
                       limit(150))
    run_step(args.out, "vs_nanogpt_cuda_variants",
             ["bench.vs_nanogpt", "--nanogpt", nanogpt, "--device", "cuda", "--iters", "500",
              "--variants", "babygpt_eager,babygpt_graphs,babygpt_compiled"], limit(100))
    if not args.skip_mps and deadline - time.perf_counter() > 20:
        mps = with_mps(args.out, ["bench.gpu_class", "--jobs", "16", "--graphs", "on", "--steps", "600"],
                       limit(60))
        if mps and "skipped" in mps:
            (args.out / "gpu_class_mps.json").write_text(json.dumps(mps), encoding="utf-8")
    summary = summarise(check, lecture, classes)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
