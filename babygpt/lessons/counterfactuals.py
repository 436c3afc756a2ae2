"""Break one idea and watch what it was for: the training switches a lesson can flip, with what they teach.

Each is a ``ModelConfig`` setting, so a run records it, the race can apply it to every rung, and the model,
the decoder and the explicit attention view all honour it (tested in ``tests/test_counterfactuals.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Counterfactual:
    key: str
    label: str
    switches: dict[str, Any]
    explanation: str

    def applies_to(self, model_config: dict[str, Any]) -> bool:
        return all(model_config.get(k) == v for k, v in self.switches.items())


COUNTERFACTUALS = (
    Counterfactual(
        "no-mask", "No causal mask", {"causal": False},
        "Without the causal mask every position also sees the tokens after it, the one it must predict included. "
        "Training loss collapses towards zero because the model copies the answer instead of predicting it, and "
        "validation loss falls the same way (the answer is in the validation text too). But when it generates "
        "there is no next token to copy, so what it writes is garbage. A low loss means something only when the "
        "model cannot see what it is asked to predict."),
    Counterfactual(
        "no-scale", "No 1/√d scaling", {"scale_scores": False},
        "Without dividing by √d the scores q·k grow with the head size, the softmax turns almost one-hot and its "
        "gradients vanish: the loss falls more slowly at the start and may settle higher. With small heads "
        "(head size 16, say) the difference is small; it grows with the head size (see Why scale q·k)."),
    Counterfactual(
        "no-positions", "No positional encoding", {"positional": "none"},
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
