"""Small builders shared by tests: a tiny plan on a tiny text."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from babygpt.config import ModelConfig, TrainConfig
from babygpt.model.sizing import ModelLimits
from babygpt.orchestration.plan import TrainingPlan, plan_training
from babygpt.text.corpus import Corpus
from babygpt.training.placement import prepare
from babygpt.training.trainer import Callbacks, Trainer

TINY_SIZES = dict(n_layer=2, n_head=2, n_embd=32, block_size=16)
LIMITS = ModelLimits(max_params=50_000_000, job_memory_bytes=4 * 2**30)  # a modest server's, for imports


def tiny_config(**overrides) -> TrainConfig:
    base = dict(batch_size=8, max_iters=50, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=25,
                eval_iters=4, log_interval=5, device="cpu")
    base.update(overrides)
    return TrainConfig(**base)


def tiny_plan(text: str, preset: str = "gpt", tokenizer: str = "char", **overrides) -> TrainingPlan:
    sizes = dict(TINY_SIZES)
    model_keys = {f.name for f in fields(ModelConfig)}  # sizes, and the switches a counterfactual flips
    sizes.update({k: overrides.pop(k) for k in list(overrides) if k in model_keys})
    return plan_training(Corpus.from_text("tiny", text), tokenizer, preset, tiny_config(**overrides), **sizes)


def plan_trainer(plan: TrainingPlan, callbacks: Sequence[Callbacks] = (), train_config: TrainConfig | None = None,
                 model_state: dict | None = None, trainer_state: dict | None = None) -> Trainer:
    """A Trainer for ``plan`` (or ``train_config`` on its split), its model built and placed as a run's is."""
    train = train_config or plan.train_config
    model, placement = prepare(plan.model_config, train, model_state)
    return Trainer(model, train, plan.split, placement, callbacks, trainer_state=trainer_state)


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "", poll: float = 0.3) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail naming ``what`` on timeout."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(poll)


def chart_spec(at, key: str) -> dict:
    """The plotly figure an AppTest page sent for the chart with widget key ``key``, as the browser gets it."""
    import json

    charts = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    assert len(charts) == 1, f"{len(charts)} charts keyed {key}"
    return json.loads(charts[0].proto.spec)


def plotly_array(value) -> np.ndarray:
    """A figure's array as the browser receives it: a list of lists (None for gaps), or plotly's typed array."""
    import base64

    if isinstance(value, dict):  # a 1-D typed array has no shape
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape).astype(float)
    return np.array([[np.nan if v is None else v for v in row] for row in value], dtype=float)


def app():
    """The whole app in Streamlit's AppTest, run once: a new browser session on its first page."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parent.parent
    return AppTest.from_file(str(root / "app.py"), default_timeout=60).run()
