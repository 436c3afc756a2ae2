"""Small builders shared by tests: a tiny plan on a tiny text."""

from __future__ import annotations

from babygpt.config import TrainConfig
from babygpt.store.pipeline import TrainingPlan, plan_training
from babygpt.text.corpus import Corpus

TINY_SIZES = dict(n_layer=2, n_head=2, n_embd=32, block_size=16)


def tiny_config(**overrides) -> TrainConfig:
    base = dict(batch_size=8, max_iters=50, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=25,
                eval_iters=4, log_interval=5, device="cpu")
    base.update(overrides)
    return TrainConfig(**base)


def tiny_plan(text: str, preset: str = "gpt", tokenizer: str = "char", **overrides) -> TrainingPlan:
    sizes = dict(TINY_SIZES)
    model_keys = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "positional", "causal", "scale_scores")
    sizes.update({k: overrides.pop(k) for k in list(overrides) if k in model_keys})
    return plan_training(Corpus.from_text("tiny", text), tokenizer, preset, tiny_config(**overrides), **sizes)
