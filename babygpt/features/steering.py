"""Steering: text written with one feature's direction added to the model's activation at the SAE's hook point,
beside the text written without it, from the same seed.

Every generated token comes from the model's one explicit pass (``run_with_hooks``), the hook adding
``strength × W_dec[feature]`` at every position of the window. Both texts are sampled by the same loop, the same
window rule as ``babygpt.training.sample`` (the context jumps forward by half a block when full) and the same
random stream, so at strength 0 they are identical and any difference is the feature's doing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from babygpt.errors import BabyGPTError
from babygpt.features.sae import TopKSAE
from babygpt.interpret.hooked import run_with_hooks
from babygpt.model.gpt import LanguageModel
from babygpt.text.tokenizers import Tokenizer
from babygpt.training.sample import SamplingConfig, filter_probs, prepare_prompt

MAX_STRENGTH = 1000.0


@dataclass(frozen=True)
class SteeredText:
    prompt: str
    with_feature: str  # the generated text only (the prompt is not repeated)
    without_feature: str
    feature: int
    strength: float
    notices: list[str]


def feature_hook(sae: TopKSAE, feature: int, strength: float):
    """The (name, function) pair that adds the feature's direction, scaled, at the SAE's hook point."""
    direction = sae.W_dec[feature].detach()

    def add(act: torch.Tensor, _name: str) -> torch.Tensor:
        return act + strength * direction.to(device=act.device, dtype=act.dtype)

    return sae.config.hook_name, add


@torch.no_grad()
def sample_with_hooks(model: LanguageModel, ids: list[int], cfg: SamplingConfig, hooks: list) -> list[int]:
    """``cfg.max_new_tokens`` tokens after ``ids``, each from one hooked pass over the current window."""
    cfg = cfg.validate()
    block, keep = model.config.block_size, max(1, model.config.block_size // 2)
    tokens, start = list(ids), max(0, len(ids) - block)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(cfg.seed if cfg.seed is not None else 0)
    device = next(model.parameters()).device
    new = []
    for _ in range(cfg.max_new_tokens):
        window = torch.tensor([tokens[start:]], device=device)
        logits = run_with_hooks(model, window, hooks)[0, -1]
        token = int(torch.multinomial(filter_probs(logits, cfg).cpu(), 1, generator=generator))
        tokens.append(token)
        new.append(token)
        if len(tokens) - start > block:
            start = len(tokens) - keep
    return new


def steer(model: LanguageModel, tokenizer: Tokenizer, sae: TopKSAE, feature: int, strength: float, prompt: str,
          cfg: SamplingConfig) -> SteeredText:
    """The text with the feature added at ``strength`` and without it, same prompt, same seed (0 when unset)."""
    if not 0 <= feature < sae.config.n_features:
        raise BabyGPTError(f"The SAE has features 0 to {sae.config.n_features - 1}; there is no feature {feature}.")
    if not abs(strength) <= MAX_STRENGTH:
        raise BabyGPTError(f"Choose a strength between −{MAX_STRENGTH:g} and {MAX_STRENGTH:g}, got {strength}.")
    encoded = prepare_prompt(tokenizer, prompt, model.config.block_size)
    steered = sample_with_hooks(model, encoded.ids, cfg, [feature_hook(sae, feature, strength)])
    plain = sample_with_hooks(model, encoded.ids, cfg, [])
    return SteeredText(prompt, tokenizer.decode(steered), tokenizer.decode(plain), feature, strength, encoded.notices)
