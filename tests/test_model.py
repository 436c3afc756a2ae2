import math

import pytest
import torch

from babygpt.config import PRESETS, ModelConfig, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import attention_maps
from babygpt.model.decode import forward_cached, new_caches
from babygpt.model.gpt import build_model, explicit_attention, sinusoidal_encoding
from babygpt.model.hooks import Hooks


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_introspection_equals_fused_path(preset, positional):
    torch.manual_seed(0)
    model = build_model(model_config_for_preset(preset, vocab_size=20, n_layer=2, n_head=4, n_embd=32, block_size=12,
                                        positional=positional)).eval()
    idx = torch.randint(20, (3, 12))
    fused, _ = model(idx)
    explicit, _ = model(idx, hooks=Hooks({}))
    maps = [] if preset == "bigram" else attention_maps(model, idx)
    assert fused.shape == (3, 12, 20)
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-5)
    if preset == "bigram":
        assert maps == []
        return
    n_head = 1 if preset == "single-head" else 4
    n_layer = 1 if preset in ("single-head", "multi-head", "multi-head+ffn") else 2
    assert len(maps) == n_layer
    for m in maps:
        assert m.weights.shape == (3, n_head, 12, 12)
        torch.testing.assert_close(m.scaled, m.raw / math.sqrt(32 // n_head))
        torch.testing.assert_close(m.weights.sum(-1), torch.ones(3, n_head, 12))
        assert torch.all(m.weights.triu(1) == 0), "the causal mask must hide the future"


def test_explicit_attention_matches_sdpa():
    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    out, maps = explicit_attention(q, k, v)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.allclose(maps.weights[..., 0, 0], torch.ones(2, 4))


def test_kv_cache_matches_full_forward():
    torch.manual_seed(1)
    model = build_model(model_config_for_preset("gpt", vocab_size=30, n_layer=2, n_head=2, n_embd=16, block_size=10)).eval()
    idx = torch.randint(30, (1, 10))
    full, _ = model(idx)
    caches = new_caches(model, 1)
    first = forward_cached(model, idx[:, :6], caches)
    torch.testing.assert_close(first, full[:, 5])
    for t in range(6, 10):
        step = forward_cached(model, idx[:, t:t + 1], caches)
        torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)


def test_initial_loss_is_ln_vocab():
    torch.manual_seed(0)
    model = build_model(model_config_for_preset("gpt", vocab_size=65))
    idx = torch.randint(65, (8, 64))
    _, loss = model(idx, torch.randint(65, (8, 64)))
    assert abs(loss.item() - math.log(65)) < 0.1


def test_counts_and_tying():
    model = build_model(ModelConfig(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=64, tie_weights=True))
    # nanoGPT's baby config: 0.80M parameters with tied embeddings
    assert model.num_params() == 804_096
    assert model.lm_head.weight is model.token_embedding.weight
    untied = build_model(ModelConfig(vocab_size=65))
    assert untied.num_params() == 804_096 + 65 * 128


def test_ladder_shapes():
    cfgs = {p: model_config_for_preset(p, vocab_size=10, n_layer=3, n_head=4, n_embd=16) for p in PRESETS}
    assert not cfgs["bigram"].use_attention
    assert cfgs["single-head"].n_head == 1 and not cfgs["single-head"].use_projection
    assert cfgs["multi-head"].n_layer == 1 and not cfgs["multi-head"].use_ffn
    assert cfgs["multi-head+ffn"].use_ffn and not cfgs["multi-head+ffn"].use_residual
    assert cfgs["residual"].n_layer == 3 and not cfgs["residual"].use_layernorm
    assert cfgs["gpt"].use_layernorm
    assert build_model(cfgs["bigram"]).num_params() == 100


@pytest.mark.parametrize("sizes, message", [
    (dict(n_embd=30, n_head=4), r"n_embd \(30\) must be divisible by n_head \(4\)"),
    (dict(n_embd=0), "n_embd must be a positive integer"),
    (dict(block_size=-1), "block_size must be a positive integer"),
    (dict(dropout=1.5), "dropout must be in"),
    (dict(positional="rotary"), "positional must be one of"),
])
def test_bad_model_config(sizes, message):
    with pytest.raises(BabyGPTError, match=message):
        model_config_for_preset("gpt", **sizes)


def test_sinusoidal_table():
    table = sinusoidal_encoding(50, 16)
    assert table.shape == (50, 16)
    torch.testing.assert_close(table[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(table[0, 1::2], torch.ones(8))
    assert table.abs().max() <= 1.0
