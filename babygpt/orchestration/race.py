"""The ladder race as runs: every rung × every seed planned and validated before anything is queued (the scheduler
trains them as jobs), and a race's runs read back out of the store as the rows the lesson reads
(``babygpt.lessons.race``).

Each rung trains at the learning rate that suits it (a small network without residual paths wants a higher rate
than a deep one; the lecture tuned each step too), found by ``python -m bench.race_sweep`` on the bundled corpus and
used unchanged on every text. The modern rungs (``gpt`` with one switch, and ``modern``) race against ``gpt`` at
gpt's own rate, so the switch is the only difference; Muon's hidden matrices follow ``muon_lr`` as in any run.
"""

from __future__ import annotations

from dataclasses import dataclass

from babygpt.config import LECTURE_LADDER, MODERN_SWITCHES, TrainConfig, preset_switches
from babygpt.errors import BabyGPTError
from babygpt.lessons.race import RaceEntry
from babygpt.lessons.tokenizer_race import race_key
from babygpt.orchestration.plan import TrainingPlan, plan_baselines, plan_training, plan_validation
from babygpt.pace import step_seconds
from babygpt.store.records import curves
from babygpt.store.runs import RunStore, run_tokens_per_step
from babygpt.text.corpus import Corpus
from babygpt.text.tokenizers import Tokenizer


@dataclass(frozen=True)
class RungSettings:
    lr: float
    warmup_iters: int


# From `python -m bench.race_sweep --steps 2000 --lrs 0.001 0.003 0.01 0.02 0.05 --warmups 0` on the bundled corpus
# (n_embd 64, 2 layers, block 32, 2 seeds; warm-up made no difference at 500 steps). The README has the table.
RUNG_SETTINGS = {
    "bigram": RungSettings(5e-2, 0),
    "single-head": RungSettings(2e-2, 0),
    "multi-head": RungSettings(2e-2, 0),
    "multi-head+ffn": RungSettings(1e-2, 0),
    "residual": RungSettings(1e-2, 0),
    "gpt": RungSettings(3e-3, 0),
}
RACE_SEEDS = (1, 2, 3)
RACE_STEPS = 2000  # the same token budget for every rung: 2000 × 12 × 32 tokens
RACE_SIZES = dict(n_layer=2, n_head=4, n_embd=64, block_size=32)


# the rungs after GPT-2 a race can set against gpt: each gpt with one switch, then all of modern's together
MODERN_RUNGS = (*(m.preset for m in MODERN_SWITCHES), "modern")


def modern_race(chosen: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The presets of a race of modern rungs: ``gpt`` first, then the chosen rungs in the ladder's order, each
    judged against gpt (``babygpt.lessons.race.ladder_steps``)."""
    unknown = [p for p in chosen if p not in MODERN_RUNGS]
    if unknown:
        raise BabyGPTError(f"{', '.join(map(repr, unknown))} is not a modern rung; choose from "
                           f"{', '.join(MODERN_RUNGS)}.")
    if not chosen:
        raise BabyGPTError("Choose at least one modern rung to race against gpt.")
    return ("gpt", *(p for p in MODERN_RUNGS if p in chosen))


def rung_settings(preset: str) -> RungSettings:
    """A rung's rate: its own from the sweep, or for a modern rung gpt's (one switch apart, one rate)."""
    if preset in RUNG_SETTINGS:
        return RUNG_SETTINGS[preset]
    if preset_switches(preset):
        return RUNG_SETTINGS["gpt"]
    raise BabyGPTError(f"{preset!r} is not a rung the race trains; choose from "
                       f"{', '.join((*RUNG_SETTINGS, *MODERN_RUNGS))}.")


def rung_config(preset: str, steps: int, seed: int, val_fraction: float = 0.1) -> TrainConfig:
    s = rung_settings(preset)
    return TrainConfig(max_iters=steps, eval_interval=max(1, steps // 5), eval_iters=20, lr=s.lr, min_lr=s.lr / 10,
                       warmup_iters=min(s.warmup_iters, steps // 5), val_fraction=val_fraction, log_interval=5,
                       seed=seed).validate()


def race_plans(corpus: Corpus, tokenizer: str | Tokenizer, steps: int = RACE_STEPS, sizes: dict | None = None,
               seeds: tuple[int, ...] = RACE_SEEDS, presets: tuple[str, ...] = LECTURE_LADDER,
               val_fraction: float = 0.1) -> list[tuple[TrainingPlan, str]]:
    """Every rung × every seed, validated before anything is queued; the scheduler trains them as jobs. Every run
    cuts the text with one tokenizer (``tokenizer``: a kind, built once here, or the Data page's own), so a BPE is
    learned once and every rung reads the same tokens."""
    sizes = sizes or RACE_SIZES
    plans = []
    for preset in presets:
        base = plan_training(corpus, tokenizer, preset, rung_config(preset, steps, seeds[0], val_fraction), **sizes)
        tokenizer = base.tokenizer
        plans += seeded_plans(base, steps, seeds, f"ladder race: {preset}")
    return plans


def seeded_plans(base: TrainingPlan, steps: int, seeds: tuple[int, ...], name: str) -> list[tuple[TrainingPlan, str]]:
    """One plan per seed from one planned rung: the seeds differ in their training config only, so the text is
    tokenised, split and counted once (its baselines and validation text shared), not once per seed."""
    preset, val_fraction = base.model_config.preset, base.train_config.val_fraction
    baselines, validation = plan_baselines(base), plan_validation(base)
    return [(TrainingPlan(base.corpus, base.tokenizer, base.model_config, rung_config(preset, steps, seed, val_fraction),
                          base.split, baselines, validation), f"{name} · seed {seed}") for seed in seeds]


def race_entries(store: RunStore, group_id: str) -> list[RaceEntry]:
    """A race's runs as the lesson reads them, each with its validation curve so far and its seconds per training
    step, evaluations excluded, from its own step rows (``babygpt.pace.step_seconds``)."""
    infos = store.list_runs(group_id)
    key = race_key([info.config for info in infos])  # a rung, or in a tokenizer race the tokenizer
    entries = []
    for info in infos:
        rows = store.metrics(info.id)
        entries.append(RaceEntry(key(info.config), info.config, info.status.ended,
                                 {m.step: m.loss for m in rows if m.split == "val" and m.loss is not None},
                                 seconds_per_step=step_seconds(curves(rows)[0], run_tokens_per_step(info))))
    return entries


def race_running(store: RunStore, group_id: str | None) -> bool:
    return bool(group_id) and any(i.status.active for i in store.list_runs(group_id))
