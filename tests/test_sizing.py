"""Sizes come from arithmetic on the config; the limits refuse what does not fit, in words."""

import dataclasses

import pytest

from babygpt.config import PRESETS, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import GPT
from babygpt.model.sizing import ModelLimits, flops_per_token, parameter_count, training_memory_bytes


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("variant", [
    {}, {"bias": True}, {"tie_weights": True}, {"positional": "sinusoidal"}, {"n_layer": 3, "n_embd": 48, "n_head": 3},
])
def test_parameter_count_equals_the_built_model(preset, variant):
    config = model_config_for_preset(preset, vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32)
    config = dataclasses.replace(config, **variant)
    if not config.use_attention and variant.get("tie_weights"):
        pytest.skip("the bigram table has no separate output layer to tie")
    model = GPT(config)
    assert parameter_count(config) == model.num_params()
    assert parameter_count(config, exclude_positions=True) == model.num_params(exclude_positions=True)
    assert flops_per_token(config) == model.flops_per_token()


def test_a_huge_bigram_is_sized_without_allocating_and_refused_in_words():
    config = model_config_for_preset("bigram", vocab_size=40_000)
    assert parameter_count(config) == 1_600_000_000  # instant: nothing is built
    assert training_memory_bytes(config, 32) > 1_600_000_000 * 16
    limits = ModelLimits(max_params=10_000_000, job_memory_bytes=4 * 2**30)
    with pytest.raises(BabyGPTError) as exc:
        limits.check(config, batch_size=32)
    message = str(exc.value)
    assert "1.6 B parameters" in message and "10.0 M" in message and "BABYGPT_MAX_PARAMS" in message
    assert "40,000 × 40,000" in message and "gpt2 tokenizer" in message
    small = model_config_for_preset("gpt", vocab_size=65)
    assert limits.problems(small, batch_size=32) == []


def test_memory_limit_names_what_to_lower():
    config = model_config_for_preset("gpt", vocab_size=50_000, block_size=512, n_embd=128)
    limits = ModelLimits(max_params=10**9, job_memory_bytes=2**30)
    problems = limits.problems(config, batch_size=128)
    assert len(problems) == 1 and "GB" in problems[0] and "batch_size" in problems[0]


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "5e6")
    monkeypatch.setenv("BABYGPT_JOB_MEMORY_MB", "1024")
    assert ModelLimits.from_env(jobs_at_once=2) == ModelLimits(5_000_000, 2**30)
    monkeypatch.delenv("BABYGPT_MAX_PARAMS")
    assert ModelLimits.from_env().max_params == 2**30 // 32  # half the job's memory at 16 bytes a parameter
    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "lots")
    with pytest.raises(BabyGPTError, match="BABYGPT_MAX_PARAMS='lots' is not a number"):
        ModelLimits.from_env()
