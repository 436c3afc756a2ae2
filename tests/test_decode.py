import pytest
import torch

from babygpt.config import PRESETS, model_config_for_preset
from babygpt.model.decode import Decoder, forward_cached, new_caches
from babygpt.model.gpt import LanguageModel, build_model


def _randomised(model: LanguageModel) -> LanguageModel:
    """Non-zero everywhere (zero-initialised projections would hide a wrong residual or projection)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("variant", [{}, {"bias": True, "positional": "sinusoidal", "activation": "gelu"},
                                     {"tie_weights": True, "activation": "relu"},
                                     {"scale_scores": False}, {"positional": "none"}])
@torch.inference_mode()
def test_decoder_equals_forward_cached(preset, variant):
    torch.manual_seed(0)
    config = model_config_for_preset(preset, vocab_size=23, n_layer=2, n_head=4, n_embd=32, block_size=12, **variant)
    model = _randomised(build_model(config))
    idx = torch.randint(23, (1, 12))
    full, _ = model(idx)
    reference, fast = new_caches(model, 1), new_caches(model, 1)
    forward_cached(model, idx[:, :5], reference)
    forward_cached(model, idx[:, :5], fast)
    decoder = Decoder(model)
    for t in range(5, 12):
        expected = forward_cached(model, idx[:, t:t + 1], reference)
        got = decoder.step(int(idx[0, t]), fast)
        assert got.shape == (1, 23)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got, full[:, t], atol=1e-4, rtol=1e-4)
    if config.use_attention:
        assert fast[0].length == 12
        with pytest.raises(ValueError, match="exceeds block_size 12"):
            decoder.step(0, fast)


@torch.inference_mode()
def test_decoder_is_a_snapshot():
    """Sampling during training must see the weights of the moment it started, not later updates."""
    torch.manual_seed(0)
    model = _randomised(build_model(model_config_for_preset("gpt", vocab_size=11, n_layer=1, n_head=2, n_embd=8, block_size=6)))
    decoder = Decoder(model)
    before = decoder.step(3, new_caches(model, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.testing.assert_close(decoder.step(3, new_caches(model, 1)), before)
    assert not torch.allclose(Decoder(model).step(3, new_caches(model, 1)), before)
