"""Break one idea and watch what it was for: the training switches a lesson can flip, with what they teach.

Each is a ``ModelConfig`` setting named in ``babygpt.config.IDEA_SWITCHES`` (the store labels runs from there; this
module adds what each teaches), so a run records it, the race can apply it to every rung, and the model, the
decoder and the explicit attention view all honour it (tested in ``tests/test_counterfactuals.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from babygpt.config import IDEA_SWITCHES, IdeaSwitch
from babygpt.interpret.hooked import attention_maps
from babygpt.model.gpt import LanguageModel
from babygpt.scoring.leaderboard import future_hidden


@dataclass(frozen=True)
class Counterfactual:
    """A switch of ``babygpt.config.IDEA_SWITCHES`` (its key, the idea's name, the settings) with what it teaches."""

    switch: IdeaSwitch
    label: str
    explanation: str

    @property
    def key(self) -> str:
        return self.switch.key

    @property
    def idea(self) -> str:  # what is switched off, as a run's name shows it: "… · without the causal mask"
        return self.switch.idea

    @property
    def switches(self) -> dict[str, Any]:
        return self.switch.switches

    def applies_to(self, model_config: dict[str, Any]) -> bool:
        return self.switch.applies_to(model_config)


_SWITCH = {s.key: s for s in IDEA_SWITCHES}
COUNTERFACTUALS = (
    Counterfactual(
        _SWITCH["no-mask"], "No causal mask",
        "Without the causal mask every position also sees the tokens after it, the one it must predict included. "
        "A model that learns to read the answer instead of predicting it can push its loss far below what any "
        "honest predictor reaches, on the validation text too (the answer is there as well); how soon it learns "
        "that depends on the run, and in a short one the curve can look like a normal run's. When it generates "
        "there is no next token to read, so its loss with the future hidden is the one that counts."),
    Counterfactual(
        _SWITCH["no-scale"], "No 1/√d scaling",
        "Without dividing by √d the scores q·k grow with the head size (n_embd / n_head), so the softmax turns "
        "sharper, nearer one-hot, where its gradients vanish and learning slows. How much that costs grows with "
        "the head size: with small heads it is little (see Why scale q·k)."),
    Counterfactual(
        _SWITCH["no-positions"], "No positional encoding",
        "Without positions one layer of attention sees the earlier tokens as a bag: it cannot tell 'dog bites man' "
        "from 'man bites dog'. With several layers the causal mask itself leaks some order (the first position "
        "saw one token, the second two), so the model loses less than you might expect, but it loses."),
)
BY_KEY = {c.key: c for c in COUNTERFACTUALS}


def switches_for(keys: list[str]) -> dict[str, Any]:
    """The ModelConfig settings of the chosen counterfactuals."""
    out: dict[str, Any] = {}
    for key in keys:
        out.update(BY_KEY[key].switches)
    return out


def active(model_config: dict[str, Any]) -> list[Counterfactual]:
    """The counterfactuals a run was trained with, from its recorded model config."""
    return [c for c in COUNTERFACTUALS if c.applies_to(model_config)]


# --- what this run shows: measured on its own weights and validation text ----------------------------------------
MEASURE_WINDOWS = 32  # evenly spaced validation windows: enough for a stable mean, a fraction of a second


@dataclass(frozen=True)
class Finding:
    """What one counterfactual did to this run, in numbers measured on it, and the sentence the page shows."""

    key: str
    numbers: dict[str, float]
    sentence: str


def _windows(val_ids: torch.Tensor, block_size: int, count: int = MEASURE_WINDOWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Evenly spaced windows of the validation ids and their targets: the same every time, unlike training batches."""
    T = min(block_size, len(val_ids) - 1)
    starts = torch.linspace(0, len(val_ids) - T - 1, steps=min(count, len(val_ids) - T)).long()
    offsets = starts[:, None] + torch.arange(T + 1)
    windows = val_ids[offsets]
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def _mean_loss(model: LanguageModel, x: torch.Tensor, y: torch.Tensor) -> float:
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1)).item()


@torch.no_grad()
def measure(key: str, model: LanguageModel, val_ids: torch.Tensor, step: int) -> Finding:
    """The finding of counterfactual ``key`` for a model trained with it, on its validation ids at ``step``."""
    model.eval()
    x, y = _windows(val_ids, model.config.block_size)
    if key == "no-mask":
        seen = _mean_loss(model, x, y)
        with future_hidden(model):  # the mask put back, as the challenge scores every run
            hidden = _mean_loss(model, x, y)
        lean = hidden - seen
        sentence = (f"At step {step}, on this run's validation text: loss {seen:.2f} with each next token visible "
                    f"(what the chart shows), {hidden:.2f} with the future hidden, as when it generates. ")
        sentence += (f"The {lean:.2f} between them is what it gained by reading the answer instead of predicting it."
                     if lean > 0.05 else
                     "It has not learned to read the answer yet: the gap opens as training goes on.")
        return Finding(key, {"loss_seen": seen, "loss_hidden": hidden}, sentence)
    if key == "no-scale":
        maps = attention_maps(model, x[:8])
        raw = maps[0].raw.float()  # (B, nh, T, T): what this run's softmax is given, unscaled
        visible = torch.ones(raw.shape[-2:], dtype=torch.bool).tril()
        used = _top_weight(raw, visible)
        scaled = _top_weight(raw / math.sqrt(model.config.head_size), visible)
        sentence = (f"At step {step}, this run's first-layer heads put on average {used:.0%} of their weight on a "
                    f"single token; the same scores divided by √{model.config.head_size} would put {scaled:.0%}. ")
        sentence += ("Unscaled, the softmax is sharper, nearer one-hot, where its gradients vanish."
                     if used > scaled + 0.02 else
                     "At this head size the difference is small; it grows with n_embd / n_head.")
        return Finding(key, {"top_weight_unscaled": used, "top_weight_scaled": scaled}, sentence)
    if key == "no-positions":
        reordered = torch.cat([x[:, :-1].flip(1), x[:, -1:]], dim=1)  # the same tokens, the earlier ones reversed
        p = F.softmax(model(x)[0][:, -1].float(), dim=-1)
        q = F.softmax(model(reordered)[0][:, -1].float(), dim=-1)
        change = 0.5 * (p - q).abs().sum(-1).mean().item()  # total variation distance, 0..1
        sentence = (f"At step {step}, reversing the order of the earlier tokens of a window changes this run's "
                    f"prediction of the next token by {change:.1%} on average (total variation). ")
        sentence += ("With one layer it cannot change at all: the context is a bag of tokens."
                     if model.config.n_layer == 1 else
                     f"With {model.config.n_layer} layers the causal mask leaks a little order (the first position "
                     "saw one token, the second two), and that is all the order it has.")
        return Finding(key, {"order_change": change}, sentence)
    raise ValueError(f"unknown counterfactual {key!r}")


def _top_weight(scores: torch.Tensor, visible: torch.Tensor) -> float:
    """Mean over rows of the largest softmax weight, the masked future excluded: 1.0 is one-hot."""
    weights = F.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    return weights.max(-1).values.mean().item()
