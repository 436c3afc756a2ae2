"""Counterfactual switches: each breaks exactly one idea, and the explicit path agrees with the fused one."""

import torch

from babygpt.config import model_config_for_preset
from babygpt.model.gpt import GPT
from babygpt.model.sizing import parameter_count
from babygpt.text.tokenizers import CharTokenizer
from babygpt.training.sample import SamplingConfig, generate


def _model(n_layer: int = 2, **switches) -> GPT:
    torch.manual_seed(0)
    config = model_config_for_preset("gpt", vocab_size=11, n_layer=n_layer, n_head=2, n_embd=16, block_size=8,
                                     **switches)
    model = GPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def test_without_the_mask_a_position_sees_the_future():
    idx = torch.randint(11, (1, 8))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 11  # change only the last token
    for causal, should_move in ((True, False), (False, True)):
        model = _model(causal=causal)
        first, _ = model(idx)
        second, _ = model(changed)
        moved = not torch.allclose(first[0, 0], second[0, 0], atol=1e-6)
        assert moved is should_move  # position 0's prediction depends on the last token only without the mask
        explicit, maps = model.forward_with_attention(idx)
        assert torch.allclose(explicit, first, atol=1e-4)  # the lesson's formula agrees with the fused path
        assert (maps[0].weights[0, :, 0, 1:].abs().sum() > 0).item() is not causal


def test_without_scaling_and_without_positions():
    idx = torch.randint(11, (1, 8))
    unscaled = _model(scale_scores=False)
    fused, _ = unscaled(idx)
    explicit, maps = unscaled.forward_with_attention(idx)
    assert torch.allclose(fused, explicit, atol=1e-4) and torch.equal(maps[0].raw, maps[0].scaled)
    plain = _model(positional="none")
    assert parameter_count(plain.config) == plain.num_params() == _model().num_params() - 8 * 16
    shuffled = idx[:, [1, 0, 2, 3, 4, 5, 6, 7]]
    one_layer = _model(n_layer=1, positional="none")  # one layer without positions sees a bag of earlier tokens
    assert torch.allclose(one_layer(idx)[0][0, -1], one_layer(shuffled)[0][0, -1], atol=1e-5)
    # with two layers the causal mask itself leaks order (position 0 saw one token, position 1 two)
    assert not torch.allclose(plain(idx)[0][0, -1], plain(shuffled)[0][0, -1], atol=1e-5)


def test_a_model_without_the_mask_still_generates_without_a_cache():
    model = _model(causal=False)
    text = generate(model, CharTokenizer(list("abcdefghij\n")), "ab", SamplingConfig(max_new_tokens=20, seed=0))
    assert len(text) >= 20


def test_without_the_mask_the_loss_collapses_because_the_model_reads_the_answer():
    import math
    import random

    from babygpt.lessons.counterfactuals import BY_KEY, active
    from babygpt.training.trainer import Trainer
    from tests.helpers import tiny_plan

    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghij ") for _ in range(20_000))  # nothing to predict: the best is ln 11
    losses = {}
    for causal in (True, False):
        plan = tiny_plan(noise, max_iters=150, eval_interval=150, causal=causal)
        losses[causal] = Trainer(plan.model_config, plan.train_config, plan.split).run().val_loss
    assert losses[True] > math.log(11) - 0.05, losses  # with the mask: no better than guessing, as it must be
    assert losses[False] < 1.0, losses  # without it: far "better" than possible, because it reads the answer
    assert [c.key for c in active(plan.model_config.to_dict())] == ["no-mask"]
    assert "garbage" in BY_KEY["no-mask"].explanation
