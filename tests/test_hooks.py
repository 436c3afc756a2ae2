"""The one explicit pass and its named hook points: every point is reached, with TransformerLens's shapes; the pass
is the model's own; caching, knocking heads out, patching and a hook that fails leave nothing behind; a set of heads
knocked out together is held to a knock-out written as weight surgery, and the page's sentence to those numbers."""

import copy

import numpy as np
import pytest
import torch

from babygpt.config import PRESETS, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import model_hook_names, run_with_cache, run_with_hooks
from babygpt.interpret.inside import (
    HeadScores,
    heads_of_type,
    loss_of,
    trace,
    without_heads,
)
from babygpt.interpret.looking import HeadSetKnockOut, head_set_knock_out
from babygpt.model.gpt import build_model
from babygpt.model.hooks import BLOCK_POINTS, MODEL_POINTS, hook_name

V, T = 23, 12


def model_for(preset="gpt", n_layer=2, n_head=4, n_embd=32):
    torch.manual_seed(0)
    model = build_model(model_config_for_preset(preset, vocab_size=V, block_size=T, n_layer=n_layer, n_head=n_head,
                                                n_embd=n_embd))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)  # the init zeroes the residual projections
    return model.eval()


def ids(batch=3, seed=0):
    return torch.randint(V, (batch, T), generator=torch.Generator().manual_seed(seed))


def test_every_named_point_is_reached_with_transformerlens_shapes():
    model = model_for()
    logits, cache = run_with_cache(model, ids())
    assert set(cache) == set(model_hook_names(model))
    assert {n.split(".", 2)[-1] for n in cache if n.startswith("blocks.1.")} == set(BLOCK_POINTS)
    assert set(MODEL_POINTS) <= set(cache)
    B, C, nh, hs = 3, 32, 4, 8
    shapes = {"hook_resid_pre": (B, T, C), "attn.hook_q": (B, T, nh, hs), "attn.hook_z": (B, T, nh, hs),
              "attn.hook_attn_scores": (B, nh, T, T), "attn.hook_pattern": (B, nh, T, T), "hook_attn_out": (B, T, C),
              "mlp.hook_post": (B, T, 4 * C), "hook_mlp_out": (B, T, C), "hook_resid_post": (B, T, C)}
    for point, shape in shapes.items():
        assert tuple(cache[hook_name(0, point)].shape) == shape, point
    # the stream adds up: pre + attention's update = mid; mid + the feed-forward's = post; post of 0 = pre of 1
    torch.testing.assert_close(cache[hook_name(0, "hook_resid_pre")] + cache[hook_name(0, "hook_attn_out")],
                               cache[hook_name(0, "hook_resid_mid")])
    torch.testing.assert_close(cache[hook_name(0, "hook_resid_mid")] + cache[hook_name(0, "hook_mlp_out")],
                               cache[hook_name(0, "hook_resid_post")])
    torch.testing.assert_close(cache[hook_name(0, "hook_resid_post")], cache[hook_name(1, "hook_resid_pre")])
    pattern = cache[hook_name(1, "attn.hook_pattern")]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(B, nh, T))
    assert torch.all(pattern.triu(1) == 0)
    assert torch.isinf(cache[hook_name(1, "attn.hook_attn_scores")][..., 0, 1:]).all(), "the future is masked"
    torch.testing.assert_close(logits, model(ids())[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "bigram"])
def test_the_explicit_pass_gives_the_fused_logits_on_every_rung(preset):
    model = model_for(preset)
    logits, cache = run_with_cache(model, ids())
    torch.testing.assert_close(logits, model(ids())[0], rtol=1e-5, atol=1e-5)
    assert (hook_name(0, "hook_mlp_out") in cache) is model.config.use_ffn


def test_a_head_knocked_out_at_hook_z_equals_the_same_head_removed_from_the_weights():
    model = model_for()
    surgery = copy.deepcopy(model)
    with torch.no_grad():  # head 2 of layer 1 writes through columns 16..23 of the projection: zero them
        surgery.blocks[1].attn.proj.weight[:, 16:24] = 0.0
    head_two_off = (hook_name(1, "attn.hook_z"), lambda z, name: z.index_fill(2, torch.tensor([2]), 0.0))
    knocked = run_with_hooks(model, ids(), [head_two_off])
    torch.testing.assert_close(knocked, surgery(ids())[0], rtol=1e-5, atol=1e-5)


def test_heads_knocked_out_together_equal_weight_surgery_of_all_of_them():
    model = model_for()
    heads = [(0, 1), (1, 0), (1, 3)]
    surgery = copy.deepcopy(model)
    with torch.no_grad():
        for layer, head in heads:
            surgery.blocks[layer].attn.proj.weight[:, head * 8:(head + 1) * 8] = 0.0
    together = trace(model, ids(), without_heads(heads, None)).logits
    torch.testing.assert_close(together, surgery(ids())[0], rtol=1e-5, atol=1e-5)


def test_patching_the_last_stream_gives_the_other_inputs_prediction():
    model = model_for()
    a, b = ids(seed=1), ids(seed=2)
    _, cache = run_with_cache(model, b, [hook_name(1, "hook_resid_post")])
    patched = run_with_hooks(model, a, [(hook_name(1, "hook_resid_post"), lambda x, name: cache[name])])
    torch.testing.assert_close(patched, model(b)[0], rtol=1e-5, atol=1e-5)


def test_a_failing_hook_leaves_the_model_as_it_was_and_no_hook_behind():
    model = model_for().train()
    before = model.eval()(ids())[0]
    model.train()

    def boom(x, name):
        raise RuntimeError("inside a hook")

    with pytest.raises(RuntimeError):
        run_with_hooks(model, ids(), [(hook_name(0, "hook_resid_pre"), boom)])
    assert model.training, "the model's own mode is restored"
    torch.testing.assert_close(model.eval()(ids())[0], before)


def test_a_name_the_model_does_not_have_gets_a_sentence():
    model = model_for("multi-head")  # no feed-forward
    with pytest.raises(BabyGPTError, match="no hook point 'blocks.0.hook_mlp_out'"):
        run_with_cache(model, ids(), [hook_name(0, "hook_mlp_out")])
    with pytest.raises(BabyGPTError, match="bigram"):
        run_with_cache(model_for("bigram"), ids())


def scores_with(induction_heads):
    grid = np.zeros((2, 4))
    induction = grid.copy()
    for layer, head in induction_heads:
        induction[layer, head] = 0.8
    return HeadScores(previous=grid, first=grid, self=grid, spread=grid, induction=induction)


def test_heads_of_a_type_are_those_whose_strongest_type_passes_the_threshold():
    scores = scores_with([(1, 0), (1, 3)])
    assert heads_of_type(scores, "induction") == [(1, 0), (1, 3)]
    assert heads_of_type(scores, "previous") == []
    with pytest.raises(BabyGPTError, match="not 'spread'"):
        heads_of_type(scores, "spread")


def test_the_head_set_knock_out_measures_the_joint_cost_on_the_same_windows():
    model = model_for()
    windows = torch.randint(V, (4, T + 1), generator=torch.Generator().manual_seed(5))
    inputs, targets = windows[:, :-1], windows[:, 1:]
    intact = loss_of(model(inputs)[0], targets)
    alone = np.full((2, 4), 0.01)
    result = head_set_knock_out(model, windows, [(1, 0), (1, 3)], "induction", "zero", alone, intact)
    expected = loss_of(trace(model, inputs, without_heads([(1, 0), (1, 3)], None)).logits, targets) - intact
    assert result.together == pytest.approx(expected) and result.alone == (0.01, 0.01)
    with pytest.raises(BabyGPTError, match="No head of this model is a previous token head"):
        head_set_knock_out(model, windows, [], "previous", "zero", alone, intact)


def test_the_sentence_says_when_heads_together_cost_more_than_their_parts():
    more = HeadSetKnockOut("induction", "zero", ((1, 0), (1, 1), (1, 2)), 2.1, (0.05, 0.08, 0.03))
    assert "+2.100 nats per token" in more.sentence() and "(sum +0.160)" in more.sentence()
    assert "understates" in more.sentence()
    same = HeadSetKnockOut("induction", "mean", ((1, 0), (1, 1)), 0.30, (0.14, 0.15))
    assert "about what their parts add up to" in same.sentence()
    less = HeadSetKnockOut("previous", "zero", ((0, 0), (0, 1)), 0.10, (0.2, 0.2))
    assert "overlaps" in less.sentence() and "previous token head(s)" in less.sentence()


@pytest.mark.parametrize("preset", ["gpt", "gpt+rope", "gpt+qk-norm", "modern"])
def test_the_attention_maps_scores_are_what_the_softmax_read(preset):
    """On every rung the maps' scaled scores, masked, give the weights: on a rotary model they are taken between
    the queries and keys after their turn by position, not before."""
    from babygpt.interpret.hooked import attention_maps

    model = model_for(preset)
    for maps in attention_maps(model, ids()):
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        torch.testing.assert_close(torch.softmax(maps.scaled.masked_fill(future, float("-inf")), -1), maps.weights,
                                   rtol=1e-5, atol=1e-5)
    if model.config.positional == "rope":
        _, cache = run_with_cache(model, ids(), [hook_name(0, "attn.hook_rot_q")])
        assert hook_name(0, "attn.hook_rot_q") in cache
