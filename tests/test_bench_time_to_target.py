"""bench/time_to_target.py's pure parts: reading nanoGPT's log lines, its training time without evaluation, the
target rule, the speed-up, the common held-out estimate and the JSON's shape. No timing is asserted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bench.time_to_target import (
    FULL,
    NANOGPT_README,
    QUICK,
    RESULT_KEYS,
    SIDE_KEYS,
    EvalLine,
    IterLine,
    build_result,
    cpu_name,
    first_at_or_below,
    heldout_loss,
    heldout_tail,
    nanogpt_args,
    nanogpt_problem,
    ours_args,
    over_seeds,
    parse_nanogpt_line,
    side,
    speedup,
    standard_error,
    train_seconds_at_evals,
    trained_dtype,
)


def test_nanogpt_lines_are_read_as_evaluations_and_steps():
    assert parse_nanogpt_line("step 250: train loss 1.9721, val loss 2.0640\n") == EvalLine(250, 1.9721, 2.064)
    assert parse_nanogpt_line("iter 249: loss 1.9874, time 61.23ms, mfu 0.04%") == IterLine(249, 1.9874, 61.23)
    assert parse_nanogpt_line("saving checkpoint to out-shakespeare-char") is None
    assert parse_nanogpt_line("number of parameters: 0.80M") is None


def test_training_seconds_leave_each_evaluation_out():
    # step 0's evaluation at t=10, steps 0..1 at 11 and 12, evaluation 2 takes 12 → 15, step 2 at 16, steps 3 at 17,
    # evaluation 4 takes 17 → 27
    lines = [(10.0, EvalLine(0, 4.2, 4.2)), (11.0, IterLine(0, 4.1, 1000)), (12.0, IterLine(1, 4.0, 1000)),
             (15.0, EvalLine(2, 3.9, 3.95)), (16.0, IterLine(2, 3.8, 4000)), (17.0, IterLine(3, 3.7, 1000)),
             (27.0, EvalLine(4, 3.6, 3.65))]
    assert train_seconds_at_evals(lines) == {0: 0.0, 2: 2.0, 4: 4.0}


def test_the_first_evaluation_at_or_below_the_target_counts():
    evals = [EvalLine(0, 4.2, 4.2), EvalLine(50, 2.0, 1.9), EvalLine(100, 1.9, 1.88), EvalLine(150, 1.8, 1.85)]
    assert first_at_or_below(evals, 1.88) == EvalLine(100, 1.9, 1.88)
    assert first_at_or_below(evals, 1.5) is None


def test_speedup_is_nanogpts_seconds_over_ours_and_none_when_either_missed():
    assert speedup(120.0, 40.0) == 3.0
    assert speedup(None, 40.0) is None
    assert speedup(120.0, None) is None


def test_standard_error_of_the_training_time_estimate():
    assert standard_error(0.6, 300) == pytest.approx(0.6 / 60)
    # 300 batches of 12 windows: two standard errors are 0.01 where the windows' losses spread by 0.3
    assert 2 * standard_error(0.3, FULL.eval_iters) == pytest.approx(0.01)


def test_cpu_name_reads_proc_cpuinfo():
    info = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n"
    assert cpu_name(info) == "AMD EPYC 7B13"


def test_result_has_every_key_and_each_side_the_same_keys():
    nano = side(True, 2000, 120.0, 1.879, 1.881, command="x")
    ours = side(True, 600, 40.0, 1.877, 1.883, command="y", dtype="float32")
    result = build_result(FULL, False, 2, nano, ours, {"same_as_float32": "float32"}, 0.3, 111539)
    assert set(result) == set(RESULT_KEYS)
    assert set(SIDE_KEYS) <= set(nano) and set(SIDE_KEYS) <= set(ours)
    assert result["speedup_float32"] == result["speedup_auto"] == 3.0
    assert result["eval_tokens"] == FULL.eval_iters * 12 * 64
    assert result["eval_standard_error"] == round(0.3 / math.sqrt(12 * FULL.eval_iters), 4)
    assert result["resolved_to_target"] is True


def test_a_missing_nanogpt_is_said_in_the_result(tmp_path: Path):
    assert "no nanoGPT checkout" in nanogpt_problem(None)
    assert "lacks train.py" in nanogpt_problem(tmp_path)
    result = build_result(QUICK, True, 1, {"skipped": nanogpt_problem(None)},
                          side(True, 10, 1.0, 3.5, 3.6), {"same_as_float32": "float32"}, None, 4096)
    assert result["nanogpt"]["skipped"].startswith("no nanoGPT checkout")
    assert result["speedup_float32"] is None and result["eval_standard_error"] is None


def test_nanogpt_runs_its_readme_command_with_the_grid_after_it():
    args = nanogpt_args(FULL, Path("/tmp/out"))
    assert args[: len(NANOGPT_README)] == list(NANOGPT_README)  # later pairs override earlier ones
    assert "--eval_iters=300" in args and "--eval_interval=25" in args and "--dtype=float32" in args
    quick = nanogpt_args(QUICK, Path("/tmp/out"))
    assert quick[-2:] == ["--max_iters=40", "--lr_decay_iters=40"]


def test_the_held_out_tail_is_the_last_tenth():
    text = "a" * 95 + "b" * 10
    assert heldout_tail(text) == "b" * 10


class _Uniform(torch.nn.Module):
    """Equal logits everywhere: every position's loss is ln(vocab)."""

    def forward(self, x, y):
        return torch.zeros(*x.shape, 5), None


def test_heldout_loss_is_the_mean_over_every_window():
    loss, spread = heldout_loss(_Uniform(), list(range(5)) * 100, block=8, batch=3)
    assert loss == pytest.approx(math.log(5))
    assert spread == pytest.approx(0.0, abs=1e-6)


def test_the_precision_a_run_settled_to_is_read_from_its_first_line():
    line = "run 20261206-205720-modern-9fd2: modern, 837,760 parameters, vocab 65, device cpu (2 threads), bfloat16\n"
    assert trained_dtype("note: x\n" + line + "eval      0: train 4.2139  val 4.2200\n") == "bfloat16"
    assert trained_dtype("eval 0: train 4.2 val 4.2\n") is None


def test_our_side_is_read_at_the_median_seed_with_the_range_beside_it():
    runs = [side(True, 225, t, 1.87, 1.88, seed=seed) for seed, t in ((1337, 30.0), (1, 26.0), (2, 40.0))]
    ours = over_seeds(runs)
    assert ours["seed"] == 1337 and ours["train_s"] == 30.0, "the median time's run"
    assert ours["seeds"]["train_s"] == [30.0, 26.0, 40.0] and ours["seeds"]["train_s_range"] == [26.0, 40.0]
    result = build_result(FULL, False, 2, side(True, 2000, 120.0, 1.879, 1.881), ours,
                          {"same_as_float32": "float32"}, 0.3, 111539)
    assert result["speedup_float32"] == 4.0 and result["speedup_float32_range"] == [3.0, 4.62]
    missed = over_seeds([*runs[:2], side(False, None, None, None, None, seed=2)])
    assert missed["reached"] is False and missed["seed"] == 2, "a seed that missed makes the side not reached"
    assert missed["seeds"]["train_s_range"] == [26.0, 30.0]


def test_each_seed_is_passed_to_the_command_line():
    args = ours_args(FULL, Path("t.txt"), 2, "float32", seed=7)
    assert args[args.index("--seed") + 1] == "7" and args[args.index("--preset") + 1] == "modern"
    assert "--max-iters" not in args and "--batch-size" not in args, "the preset's own recipe"


def test_a_nanogpt_that_ends_above_the_target_gives_a_lower_bound():
    nano = side(False, None, None, None, None, train_s_at_last_step=100.0, last_step=2000)
    ours = over_seeds([side(True, 225, 25.0, 1.87, 1.88, seed=1337)])
    result = build_result(FULL, False, 2, nano, ours, {"same_as_float32": "float32"}, 0.3, 111539)
    assert result["speedup_float32"] is None, "no time to the target to divide"
    assert result["speedup_float32_at_least"] == 4.0, "it would take longer than all of its 2,000 steps took"
    reached = build_result(FULL, False, 2, side(True, 2000, 100.0, 1.87, 1.88), ours, {}, 0.3, 111539)
    assert reached["speedup_float32_at_least"] is None and reached["speedup_float32"] == 4.0
