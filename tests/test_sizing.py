"""Sizes come from arithmetic on the config; the limits refuse what does not fit, in words."""

import dataclasses

import pytest

from babygpt.config import PRESETS, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import build_model
from babygpt.model.hooks import Hooks
from babygpt.model.sizing import ModelLimits, flops_per_token, parameter_count, training_memory_bytes

VARIANTS = [{}, {"bias": True}, {"tie_weights": True}, {"positional": "sinusoidal"},
            {"n_layer": 3, "n_embd": 48, "n_head": 3}]
# the bigram table has no separate output layer to tie: tying is a case of the attention rungs only
CASES = [(p, v) for p in PRESETS for v in VARIANTS if not (p == "bigram" and v.get("tie_weights"))]


@pytest.mark.parametrize("preset, variant", CASES)
def test_parameter_count_equals_the_built_model(preset, variant):
    config = model_config_for_preset(preset, vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32)
    config = dataclasses.replace(config, **variant)
    model = build_model(config)
    assert parameter_count(config) == model.num_params()
    assert parameter_count(config, exclude_positions=True) == model.num_params(exclude_positions=True)


@pytest.mark.parametrize("preset, tied", [(p, t) for p in PRESETS for t in (False, True) if not (p == "bigram" and t)])
def test_flops_per_token_equals_what_torch_counts_in_a_training_step(preset, tied):
    """An independent count: torch's FlopCounterMode over one forward and backward pass of the explicit path (its
    attention is plain matmuls torch can count). The formula follows nanoGPT's 6N convention, so it also counts 6
    FLOPs per token for each parameter that is not in a matmul: an untied token table (a lookup), the norms."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    config = model_config_for_preset(preset, vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = build_model(dataclasses.replace(config, tie_weights=tied))
    idx = torch.randint(37, (3, 16))
    with FlopCounterMode(display=False) as counter:
        logits, _ = model(idx, hooks=Hooks({}))  # the explicit pass: every matmul written out
        F.cross_entropy(logits.view(-1, 37), idx.view(-1)).backward()
    counted = counter.get_total_flops() / idx.numel()
    lookups = 0 if tied else model.token_embedding.weight.numel()
    norms = sum(p.numel() for name, p in model.named_parameters() if ".ln" in f".{name}" or "_norm." in name)  # QK-norm gains too
    assert counted > 0 or preset == "bigram"
    assert flops_per_token(model.config) == counted + 6 * (lookups + norms)


def test_a_huge_bigram_is_sized_without_allocating_and_refused_in_words():
    config = model_config_for_preset("bigram", vocab_size=40_000)
    assert parameter_count(config) == 1_600_000_000  # instant: nothing is built
    assert training_memory_bytes(config, 32) > 1_600_000_000 * 16
    limits = ModelLimits(max_params=10_000_000, job_memory_bytes=4 * 2**30)
    with pytest.raises(BabyGPTError) as exc:
        limits.check(config, batch_size=32)
    message = str(exc.value)
    assert "1.6 B parameters" in message and "10.0 M" in message and "BABYGPT_" not in message
    assert "40,000 × 40,000" in message and "gpt2 tokenizer" in message
    small = model_config_for_preset("gpt", vocab_size=65)
    assert limits.problems(small, batch_size=32) == []


def test_memory_limit_names_what_to_lower():
    config = model_config_for_preset("gpt", vocab_size=50_000, block_size=512, n_embd=128)
    limits = ModelLimits(max_params=10**9, job_memory_bytes=2**30)
    problems = limits.problems(config, batch_size=128)
    assert len(problems) == 1 and "GB" in problems[0] and "batch_size" in problems[0]


def test_limits_from_the_environment(monkeypatch):
    from babygpt.server.settings import model_limits_from_env

    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "5e6")
    monkeypatch.setenv("BABYGPT_JOB_MEMORY_MB", "1024")
    assert model_limits_from_env(jobs_at_once=2) == ModelLimits(5_000_000, 2**30)
    monkeypatch.delenv("BABYGPT_MAX_PARAMS")
    assert model_limits_from_env().max_params == 2**30 // 32  # half the job's memory at 16 bytes a parameter
    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "lots")
    with pytest.raises(BabyGPTError, match="BABYGPT_MAX_PARAMS='lots' is not a number"):
        model_limits_from_env()
