"""The GPU benchmarks keep working on the CPU, where CI runs them: a device lent for minutes must not be the
first place they run."""

import json
import subprocess
import sys

import pytest

from bench.common import ROOT
from bench.gpu_check import LOSS_TOLERANCE
from bench.gpu_suite import TARGETS, summarise


def _bench(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_graph_check_compares_the_recordable_step_with_the_plain_one(dtype):
    """Each precision held to its own bound: float32 as tightly as it allows, bfloat16 to what 8 bits round to."""
    result = _bench("bench.gpu_check", "--device", "cpu", "--steps", "20", "--dtype", dtype)
    assert result["dtype"] == dtype
    assert result["recorded"] == "StaticStep"  # on the CPU: the step a graph records, run without recording
    assert result["step_loss_ok"] and result["weight_ok"] and result["resume_ok"] and result["batched_eval_ok"]
    bound = LOSS_TOLERANCE[dtype]
    assert result["step_loss_max_difference"] < bound and result["resume_loss_max_difference"] < bound


def test_the_gpu_class_benchmark_runs_a_class_and_reports_what_fell_back():
    result = _bench("bench.gpu_class", "--jobs", "1", "--graphs", "on", "--steps", "20")
    (one,) = result["classes"]
    assert one["jobs"] == 1 and one["cuda_graphs"] is True and one["class_tokens_per_sec"] > 0
    assert one["device"][0].startswith("cpu")
    assert one["notes"] == ["CUDA graphs are off for this run: CUDA graphs need a CUDA GPU. It trains with the "
                            "plain step."]


def test_the_suite_summary_names_each_target_met_or_not():
    check = {"step_loss_ok": True, "weight_ok": True, "resume_ok": True, "batched_eval_ok": True,
             "recorded": "CudaGraphStep"}
    lecture = {"tokens_per_sec": {"nanogpt_compiled": 1_000_000, "babygpt_compiled_graphs": 1_600_000},
               "val_loss": {"nanogpt_compiled": [1.46], "babygpt_compiled_graphs": [1.47]}}
    classes = {"classes": [
        {"jobs": 1, "cuda_graphs": False, "tokens_per_sec_each": [90_000], "tokens_per_sec_total": 90_000},
        {"jobs": 1, "cuda_graphs": True, "tokens_per_sec_each": [450_000], "tokens_per_sec_total": 450_000},
        {"jobs": 16, "cuda_graphs": True, "tokens_per_sec_each": [150_000] * 16, "tokens_per_sec_total": 2_400_000},
    ]}
    summary = summarise(check, lecture, classes)
    assert summary["graphs_train_as_plain"] is True and summary["targets"] == TARGETS
    assert summary["lecture_vs_nanogpt_compiled"] == {
        "ratio": 1.6, "met": True, "val_loss": {"nanogpt_compiled": 1.46, "babygpt_compiled_graphs": 1.47},
        "val_no_worse": False}
    assert summary["app_model_one_job_tokens_per_sec"] == {"value": 450_000, "met": True}
    assert summary["sixteen_jobs_total_tokens_per_sec"] == {"value": 2_400_000, "met": False}
    assert summarise(None, None, None) == {"graphs_train_as_plain": None, "targets": TARGETS}


def test_the_suite_runs_its_parts_in_order_within_its_budget(tmp_path):
    """On a CPU, a few steps a part (``--quick``, so no part's outcome depends on how busy the machine is): the
    check passes, the GPU comparisons fail (no CUDA) and the class is started after them; the suite records each,
    and still writes its summary."""
    fake_nanogpt = tmp_path / "nanoGPT"
    fake_nanogpt.mkdir()
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "bench.gpu_suite", "--nanogpt", str(fake_nanogpt), "--out", str(out),
                           "--budget-s", "1200", "--skip-mps", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    check = json.loads((out / "gpu_check.json").read_text())
    assert check["recorded"] == "StaticStep" and check["step_loss_ok"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["graphs_train_as_plain"] is False  # recorded on a CPU means not recorded as a CUDA graph
    log = (out / "suite.log").read_text()
    assert "=== vs_nanogpt_cuda:" in log and "exit 1" in log
    assert "=== gpu_class:" in log
    assert not (out / "vs_nanogpt_cuda.json").exists()


def test_the_gpu_benchmarks_need_only_what_a_bare_gpu_machine_has():
    """A lent GPU machine has torch, numpy, tiktoken and safetensors, not Streamlit, plotly or Ray."""
    modules = ["bench.gpu_suite", "bench.gpu_check", "bench.gpu_class", "bench.vs_nanogpt", "babygpt.server.worker",
               "babygpt.cli"]
    probe = ("import importlib, sys\n"
             f"for name in {modules!r}: importlib.import_module(name)\n"
             "print(sorted(n for n in ('streamlit', 'plotly', 'ray', 'pandas') if n in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
