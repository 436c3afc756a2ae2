"""Why ``modern`` trains as it does: each of its choices measured by the time it takes to reach a good model, on
texts of different kinds.

    python -m bench.modern_recipe [--texts tinyshakespeare python-docs] [--seeds 2] [--workers 2]
    python -m bench.modern_recipe --steps-from EARLIER.json   # the same steps, timed again on a quiet machine
    python -m bench.modern_recipe --table RESULT.json         # its tables, as docs/modern.md shows them

A *good model* is one text's target validation loss: where the plain ``gpt`` command (``python -m babygpt train``
with TrainConfig's defaults: batch 12, 2,000 steps) stands at step ``REFERENCE_STEP`` — on Tiny Shakespeare that is
about 1.88, the loss nanoGPT's CPU recipe reaches at its end, so every text's target is the same point of the same
recipe's curve. One such ``gpt`` run per text (``reference``, evaluating on four times the batches) gives it.

Then each variant (``VARIANTS``: modern as shipped, modern without each switch it keeps, with the one it leaves out,
with other batches and schedules, gpt with modern's recipe) trains with ``--until-val-loss TARGET`` from the command
line, one run per seed, and the JSON gives per text and variant:
- ``steps``: the step of its first evaluation at or below the target, per seed (None: not within its steps);
- ``ms_per_step``: the milliseconds of one training step, timed apart, every variant's model and optimizer in one
  process with this machine's threads, interleaved step by step (one step of each variant in turn, ``TIMING_STEPS``
  times a round, ``TIMING_ROUNDS`` rounds; median of the rounds, and their range) — the runs themselves train
  ``--workers`` at a time on one thread each, so their own clocks are not compared;
- ``step_cost_against_modern``: each round's ms_per_step over modern's *in the same round*, median and range. A
  shared machine's speed drifts by a third over seconds; interleaving puts every variant under the same drift, so
  this paired ratio is steady where the milliseconds themselves are not;
- ``seconds``: steps × ms_per_step, per seed: the time to a good model, evaluation excluded;
- ``steps_against_modern``: fewer or more steps than modern on every seed, or within the seeds' spread;
- ``against_modern``: the median seconds' ratio to modern's, and whether they differ beyond the spread of seeds and
  timing rounds (``time_ratio_range``: fewest steps over modern's most at the lowest paired step-cost ratio, to
  most steps over modern's fewest at the highest; a choice whose range holds 1 is not justified by this
  measurement either way).

Evaluations every ``GRID`` steps of ``EVAL_ITERS`` batches (about ±0.015 nats per estimate, two standard errors),
so a step count is good to about a grid. Results: docs/modern.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from babygpt.config import (
    MODERN_KEEPS,
    MODERN_SWITCHES,
    ModelConfig,
    TrainConfig,
    model_config_for_preset,
    preset_settings,
    preset_training,
)
from babygpt.model.gpt import build_model
from babygpt.store.runs import RunStore
from babygpt.text.datasets import load_corpus
from babygpt.text.tokenizers import build_tokenizer
from babygpt.training import devices
from babygpt.training.trainer import make_optimizer
from bench.common import ROOT, emit, environment

REFERENCE_STEP = 1200
REFERENCE = "gpt, TrainConfig's training"  # the reference command: REFERENCE_STEP steps to the target by definition
GRID, EVAL_ITERS = 25, 50
SEEDS = (1337, 1, 2, 3)
TIMING_ROUNDS, TIMING_STEPS = 7, 8


@dataclass(frozen=True)
class Variant:
    """One way to train: the gpt preset with these model switches and these training settings (``None``: none
    beyond TrainConfig's), named for the table."""

    name: str
    switches: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def model_config(self, vocab_size: int) -> ModelConfig:
        model = {k: v for k, v in self.switches.items() if k != "optimizer"}
        return model_config_for_preset("gpt", vocab_size=vocab_size, **model)

    def train_config(self) -> TrainConfig:
        optimizer = self.switches.get("optimizer", "adamw")
        return TrainConfig(**{**self.training, "optimizer": optimizer, "eval_interval": GRID}).validate()

    def cli_args(self) -> list[str]:
        args = ["--preset", "gpt"]
        for name, value in {**self.switches, **self.training}.items():
            if name == "eval_interval":  # every variant evaluates on the same grid
                continue
            flag = f"--{name.replace('_', '-')}"
            args += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
        return args


MODERN = preset_settings("modern")
RECIPE = preset_training("modern")
# TrainConfig's own, named so a variant can say it trains with them: the contrast to the recipe
PLAIN = {name: getattr(TrainConfig(), name) for name in ("batch_size", "max_iters", "warmup_iters")}


def variants() -> list[Variant]:
    """modern as shipped first (the one every other is read against), then one change each."""
    shipped = Variant("modern", MODERN, RECIPE, "as shipped: gpt + its switches, its recipe")
    without = [Variant(f"modern without {s.preset.removeprefix('gpt+')}",
                       {k: v for k, v in MODERN.items() if k not in s.settings}, RECIPE)
               for s in MODERN_KEEPS]
    left_out = [Variant(f"modern with {s.preset.removeprefix('gpt+')}", {**MODERN, **s.settings}, RECIPE)
                for s in MODERN_SWITCHES if not s.in_modern]
    recipes = [
        Variant("modern, TrainConfig's training", MODERN, PLAIN, "batch 12, 2,000 steps, warm-up 100"),
        Variant("modern, batch 12", MODERN, {**RECIPE, "batch_size": 12}),
        Variant("modern, 600 steps", MODERN, {**RECIPE, "max_iters": 600, "warmup_iters": 60}),
        Variant("modern, learning rate 1e-3", MODERN, {**RECIPE, "lr": 1e-3, "min_lr": 1e-4}, "TrainConfig's rate"),
        Variant("gpt, modern's recipe", {}, RECIPE, "no switch: what the recipe alone does"),
    ]
    return [shipped, *without, *left_out, *recipes]


def train(text: str, home: Path, args: list[str], seed: int) -> dict[str, Any]:
    """One command-line run on one thread; its summary."""
    cmd = [sys.executable, "-m", "babygpt", "--home", str(home), "train", "--data", text, "--device", "cpu",
           "--dtype", "float32", "--threads", "1", "--eval-iters", str(EVAL_ITERS), "--seed", str(seed), *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def reference_target(text: str, home: Path) -> float:
    """The plain gpt command's validation loss at REFERENCE_STEP on ``text``."""
    summary = train(text, home, ["--preset", "gpt", "--eval-interval", "100", "--eval-iters", str(4 * EVAL_ITERS)],
                    SEEDS[0])
    curve = {m.step: m.loss for m in RunStore(home).metrics(summary["run"]) if m.split == "val"}
    return round(curve[REFERENCE_STEP], 4)


def steps_to_target(text: str, home: Path, variant: Variant, seed: int, target: float) -> int | None:
    args = [*variant.cli_args(), "--eval-interval", str(GRID), "--until-val-loss", str(target)]
    summary = train(text, home, args, seed)
    return summary.get("target_step") if summary.get("target_reached") else None


def step_milliseconds(text: str, chosen: list[Variant]) -> dict[str, list[float]]:
    """Each variant's training step in milliseconds, on random tokens of the text's vocabulary (a step's cost does
    not depend on which tokens): per round, the mean of ``TIMING_STEPS`` steps, taken one step of each variant in
    turn (the order rotating by round), so the machine's drift falls on all of them alike."""
    torch.set_num_threads(devices.default_threads())
    vocab = build_tokenizer("char", load_corpus(text).text).vocab_size
    setups = {}
    for v in chosen:
        torch.manual_seed(0)
        model_config, train_config = v.model_config(vocab), v.train_config()
        model = build_model(model_config)
        model.train()
        optimizer = make_optimizer(model, train_config, torch.device("cpu"))
        x = torch.randint(0, vocab, (train_config.batch_size, model_config.block_size))
        setups[v.name] = (model, optimizer, x, x.roll(-1, dims=1), train_config.grad_clip)

    def step(name: str) -> None:  # the trainer's step: forward, backward, clip, step
        model, optimizer, x, y, clip = setups[name]
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for name in setups:  # warm-up: the first steps allocate
        for _ in range(3):
            step(name)
    names = list(setups)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(TIMING_ROUNDS):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        spent = dict.fromkeys(names, 0.0)
        for _ in range(TIMING_STEPS):
            for name in order:
                start = time.perf_counter()
                step(name)
                spent[name] += time.perf_counter() - start
        for name in names:
            times[name].append(spent[name] / TIMING_STEPS * 1000)
    return times


def paired_ratios(ms_rounds: list[float], modern_rounds: list[float]) -> list[float]:
    """Each round's step time over modern's in the same round (``step_milliseconds`` interleaves them)."""
    return [mine / theirs for mine, theirs in zip(ms_rounds, modern_rounds, strict=True)]


def seconds_range(steps: list[int], ms_rounds: list[float]) -> tuple[float, float]:
    """The least and the most a variant's time to the target can be: its fewest steps at its fastest timing round,
    its most steps at its slowest (so both the seeds and the clock's wobble are inside)."""
    return min(steps) * min(ms_rounds) / 1000, max(steps) * max(ms_rounds) / 1000


def time_ratio_range(steps: list[int], modern_steps: list[int], ratios: list[float]) -> tuple[float, float]:
    """The least and the most a variant's time to the target can be over modern's: the seeds' spread of steps on
    both sides, times the spread of the paired step-cost ratios (``paired_ratios``)."""
    return min(steps) / max(modern_steps) * min(ratios), max(steps) / min(modern_steps) * max(ratios)


def spread_verdict(ratio_range: tuple[float, float]) -> str:
    """Faster or slower than modern only where the whole range of time ratios (``time_ratio_range``) is below or
    above 1."""
    if ratio_range[1] < 1:
        return "faster than modern beyond the spread of seeds and timing rounds"
    if ratio_range[0] > 1:
        return "slower than modern beyond the spread of seeds and timing rounds"
    return "within the spread of seeds and timing rounds"


def steps_verdict(mine: list[int | None], modern: list[int | None]) -> str:
    """Steps alone (the machine's load cannot move them): fewer or more on every seed than modern's, or overlapping."""
    if None in mine:
        return "missed the target within its steps on some seed"
    if max(mine) < min(modern):
        return "fewer steps than modern on every seed"
    if min(mine) > max(modern):
        return "more steps than modern on every seed"
    return "as many steps as modern, within the seeds' spread"


def train_to_targets(texts: list[str], chosen: list[Variant], seeds: int,
                     workers: int) -> tuple[dict[str, float], dict[tuple[str, str, int], int | None]]:
    """Each text's target, then every variant's steps to it per seed, ``workers`` runs at a time."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        home = Path(tmp)
        targets = dict(zip(texts, pool.map(lambda t: reference_target(t, home), texts), strict=True))
        jobs = {(t, v.name, s): pool.submit(steps_to_target, t, home, v, s, targets[t])
                for t in texts for v in chosen for s in SEEDS[:seeds]}
        return targets, {key: job.result() for key, job in jobs.items()}


def earlier_steps(earlier: dict[str, Any], texts: list[str], chosen: list[Variant],
                  seeds: int) -> tuple[dict[str, float], dict[tuple[str, str, int], int | None]]:
    """The targets and steps an earlier run of this bench measured (steps do not depend on the machine's load;
    the step timings, taken again, do): for re-timing on a quiet machine without training everything again."""
    targets, steps = {}, {}
    for text in texts:
        measured = earlier["texts"][text]
        targets[text] = measured["target_val_loss"]
        rows = {row["variant"]: row["steps"] for row in measured["variants"]}
        for v in chosen:
            for i, seed in enumerate(SEEDS[:seeds]):
                steps[(text, v.name, seed)] = rows[v.name][i]
    return targets, steps


def measure(texts: list[str], seeds: int, workers: int, earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    chosen = variants()
    result: dict[str, Any] = {"benchmark": "modern_recipe", "environment": environment(),
                              "reference": f"python -m babygpt train --preset gpt (TrainConfig's defaults) at step "
                                           f"{REFERENCE_STEP}", "grid": GRID, "eval_iters": EVAL_ITERS,
                              "seeds": list(SEEDS[:seeds]), "texts": {}}
    if earlier is not None:
        targets, steps = earlier_steps(earlier, texts, chosen, seeds)
        result["steps_from"] = "an earlier run of this bench (--steps-from): only the step timings are new"
    else:
        targets, steps = train_to_targets(texts, chosen, seeds, workers)
    reference = Variant(REFERENCE, {}, PLAIN, "the reference command: the target is its loss at this step")
    for text in texts:
        timing = step_milliseconds(text, [*chosen, reference])
        rows = []
        for v in chosen:
            ms = statistics.median(timing[v.name])
            seed_steps = [steps[(text, v.name, s)] for s in SEEDS[:seeds]]
            seconds = [None if n is None else round(n * ms / 1000, 1) for n in seed_steps]
            rows.append({"variant": v.name, "note": v.note, "command": "python -m babygpt train " + " ".join(v.cli_args()),
                         "steps": seed_steps, "ms_per_step": round(ms, 1),
                         "ms_rounds": [round(t, 1) for t in timing[v.name]], "seconds": seconds})
        ms = statistics.median(timing[REFERENCE])
        rows.append({"variant": REFERENCE, "note": reference.note, "command": "python -m babygpt train",
                     "steps": [REFERENCE_STEP], "ms_per_step": round(ms, 1),
                     "ms_rounds": [round(t, 1) for t in timing[REFERENCE]],
                     "seconds": [round(REFERENCE_STEP * ms / 1000, 1)]})
        modern = rows[0]
        for row, name in zip(rows, [*(v.name for v in chosen), REFERENCE], strict=True):
            ratios = paired_ratios(timing[name], timing[modern["variant"]])
            row["step_cost_against_modern"] = {"median": round(statistics.median(ratios), 3),
                                               "range": [round(min(ratios), 3), round(max(ratios), 3)]}
            row["steps_against_modern"] = steps_verdict(row["steps"], modern["steps"])
            if None in row["steps"] or None in modern["steps"]:
                row["against_modern"] = "missed the target within its steps on some seed"
                continue
            row["seconds_range"] = [round(x, 1) for x in seconds_range(row["steps"], row["ms_rounds"])]
            ratio = statistics.median(row["seconds"]) / statistics.median(modern["seconds"])
            ratio_range = time_ratio_range(row["steps"], modern["steps"], ratios)
            row["time_ratio_range"] = [round(x, 2) for x in ratio_range]
            row["against_modern"] = f"{ratio:.2f}× modern's time; {spread_verdict(ratio_range)}"
        result["texts"][text] = {"target_val_loss": targets[text], "variants": rows}
    return result


def markdown_tables(result: dict[str, Any]) -> str:
    """One table per text of a result of this bench, as docs/modern.md shows it."""
    def steps(row: dict[str, Any]) -> str:
        return ", ".join("missed" if n is None else f"{n:,}" for n in row["steps"])

    def cost(row: dict[str, Any]) -> str:
        c = row["step_cost_against_modern"]
        return f"{c['median']:.2f}× ({c['range'][0]:.2f}–{c['range'][1]:.2f})"

    def time(row: dict[str, Any]) -> str:
        if "time_ratio_range" not in row:
            return "—"
        low, high = row["time_ratio_range"]
        return f"{row['against_modern'].split(';')[0]} ({low:.2f}–{high:.2f}×)"

    out = []
    for text, measured in result["texts"].items():
        out += [f"**{text}** (target {measured['target_val_loss']:.3f})", "",
                "| variant | steps to the target (per seed) | step cost against modern (rounds) | ms per step "
                "| time against modern (range) | verdict |", "| --- | --- | --- | --- | --- | --- |"]
        for row in measured["variants"]:
            verdict = row["against_modern"].split("; ")[-1]
            out.append(f"| {row['variant']} | {steps(row)} | {cost(row)} | {row['ms_per_step']:.0f} | {time(row)} "
                       f"| {verdict} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", nargs="+", default=["tinyshakespeare", "python-docs"])
    parser.add_argument("--seeds", type=int, default=2, choices=range(1, len(SEEDS) + 1))
    parser.add_argument("--workers", type=int, default=devices.default_threads(),
                        help="runs trained at once, one thread each (default: this machine's cores)")
    parser.add_argument("--steps-from", type=Path,
                        help="the JSON of an earlier run: take its targets and steps, time the steps again")
    parser.add_argument("--table", type=Path, help="print the tables of an earlier run's JSON, as docs/modern.md shows "
                                                   "them, and measure nothing")
    args = parser.parse_args()
    if args.table:
        print(markdown_tables(json.loads(args.table.read_text(encoding="utf-8"))))
        return
    earlier = json.loads(args.steps_from.read_text(encoding="utf-8")) if args.steps_from else None
    emit(measure(args.texts, args.seeds, args.workers, earlier))


if __name__ == "__main__":
    main()
