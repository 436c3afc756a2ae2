"""Looking inside, held to models whose answer is known by construction: heads set by hand to be a previous-token
head, a sink, a self head and an induction circuit score near 1 on their own type and near 0 on the others; the
explicit pass is the model's own; the lens's last layer is the model's prediction; ablation through the lesson's
pass equals ablation by a hook on the fused path."""

import numpy as np
import pytest
import torch

from babygpt.config import model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import attention_maps
from babygpt.interpret.inside import Ablation, head_ablation_losses, head_scores, logit_lens, trace
from babygpt.model.gpt import build_model

# tokens and positions, each one-hot in its own dimensions of the stream; a long context, so a head with nothing
# to find (uniform weights) scores about 1/t on every positional type, near 0
V, T = 64, 64
C = V + T + V  # tokens | positions | "the previous token", written by the previous-token head
HS = C // 2  # two heads a layer
SHARP = 14.0  # q·k of a match, before 1/√hs: softmax puts ~all weight on it


def tok(j):
    return j


def pos(t):
    return V + t


def prev(j):
    return V + T + j


def hand_built():
    """Layer 0: head 0 looks at the previous token and copies its identity into the "previous token" dimensions;
    head 1 looks at position 0 (a sink). Layer 1: head 0 looks where the previous token is the current token (an
    induction head, reading what layer 0 wrote); head 1 looks at itself. The feed-forward networks add nothing."""
    config = model_config_for_preset("residual", vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=C,
                                     dropout=0.0, bias=False)
    model = build_model(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for j in range(V):
            model.token_embedding.weight[j, tok(j)] = 1.0
        for t in range(T):
            model.position_embedding.weight[t, pos(t)] = 1.0
        model.lm_head.weight.normal_()
        q, k, v = (slice(0, C), slice(C, 2 * C), slice(2 * C, 3 * C))
        first, second = model.blocks[0].attn, model.blocks[1].attn
        wq, wk, wv = (first.qkv.weight[s] for s in (q, k, v))
        for t in range(T):  # head 0: the query of position t matches the key of position t - 1
            wq[t, pos(t)] = SHARP
            if t + 1 < T:
                wk[t + 1, pos(t)] = SHARP
        for j in range(V):  # ... and carries that token's identity, written to "previous token" by the projection
            wv[j, tok(j)] = 1.0
            first.proj.weight[prev(j), j] = 1.0
        for t in range(T):  # head 1: every query the same, only position 0 has a key: a sink
            wq[HS, pos(t)] = SHARP
        wk[HS, pos(0)] = SHARP
        wq, wk = second.qkv.weight[q], second.qkv.weight[k]
        for j in range(V):  # head 0: the current token's query matches a key "the previous token was j"
            wq[j, tok(j)] = SHARP
            wk[j, prev(j)] = SHARP
        for t in range(T):  # head 1: position t's query matches its own key
            wq[HS + t, pos(t)] = SHARP
            wk[HS + t, pos(t)] = SHARP
    return model


def random_model(preset="gpt", n_layer=2, n_head=2, n_embd=16, block=16):
    """A model whose every weight is random (the init zeroes the residual projections and the biases)."""
    torch.manual_seed(0)
    model = build_model(model_config_for_preset(preset, vocab_size=V, block_size=block, n_layer=n_layer,
                                                n_head=n_head, n_embd=n_embd)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model


def distinct_windows(n=6, seed=1, length=T):
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(V, generator=generator)[:length] for _ in range(n)])


def test_heads_set_by_hand_score_near_one_on_their_type_and_near_zero_on_the_others():
    scores = head_scores(hand_built(), distinct_windows())
    expected = {(0, 0): "previous", (0, 1): "first", (1, 0): "induction", (1, 1): "self"}
    for (layer, head), kind in expected.items():
        for other in ("previous", "first", "self", "induction"):
            value = getattr(scores, other)[layer, head]
            if other == kind:
                assert value > 0.95, (layer, head, other, value)
            else:
                assert value < 0.1, (layer, head, other, value)
    assert scores.reading(0, 0, "character") == "layer 0 head 0 mostly looks at the previous character: 1.00"
    assert "is an induction head" in scores.reading(1, 0)
    assert scores.spread[0, 0] < 0.1, "one position: no spread"


def test_a_head_that_fits_no_type_is_said_so():
    model = random_model(n_layer=1, block=T)
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight[:32].zero_()  # no query, no key: every score 0, uniform weights
    scores = head_scores(model, distinct_windows())
    assert "fits no known type" in scores.reading(0, 0) and "spread out (spread 1.00)" in scores.reading(0, 0)


@pytest.mark.parametrize("preset", ["single-head", "multi-head+ffn", "residual", "gpt"])
def test_the_explicit_pass_is_the_models_own(preset):
    model = random_model(preset)
    ids = distinct_windows(3, length=16)
    traced = trace(model, ids)
    torch.testing.assert_close(traced.logits, model(ids)[0], rtol=1e-5, atol=1e-5)
    maps = attention_maps(model, ids)
    for ours, theirs in zip(traced.weights, maps, strict=True):
        torch.testing.assert_close(ours, theirs.weights)


def test_the_lens_at_the_last_layer_is_the_models_prediction():
    model = random_model(n_layer=3)
    ids = distinct_windows(1, length=16)
    lens = logit_lens(model, ids)
    assert lens.shape == (4, 16, V)
    torch.testing.assert_close(lens[-1], torch.softmax(model(ids)[0][0], -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lens.sum(-1), torch.ones(4, 16))


def test_ablating_a_head_whose_output_weights_are_zero_changes_nothing():
    model = random_model()
    hs = 8
    with torch.no_grad():
        model.blocks[1].attn.proj.weight[:, hs:] = 0.0  # head 1 of layer 1 writes nothing into the stream
    ids = distinct_windows(4, length=16)
    targets = torch.roll(ids, -1, dims=1)
    deltas = head_ablation_losses(model, ids, targets)
    assert deltas[1, 1] == pytest.approx(0.0, abs=1e-6)
    assert np.abs(np.delete(deltas.ravel(), 3)).max() > 1e-4, "the other heads do matter"


@pytest.mark.parametrize(("layer", "head"), [(0, 0), (1, 1)])
def test_ablation_through_the_lesson_equals_a_hook_on_the_fused_path(layer, head):
    model = random_model()
    ids = distinct_windows(2, length=16)
    hs = 8

    def knock_out(module, inputs):
        (merged,) = inputs
        merged = merged.clone()
        merged[..., head * hs:(head + 1) * hs] = 0.0
        return (merged,)

    handle = model.blocks[layer].attn.proj.register_forward_pre_hook(knock_out)
    try:
        hooked = model(ids)[0]
    finally:
        handle.remove()
    ours = trace(model, ids, Ablation(heads={(layer, head): None})).logits
    torch.testing.assert_close(ours, hooked, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, model(ids)[0], atol=1e-4), "the ablation did something"


def history(induction_by_step, layers=2, previous_by_step=None):
    """A recorded history by construction: layer ``layers - 1`` head 0's induction score at four evaluations,
    and (given) layer 0 head 1's previous-token score; every other score 0."""
    from babygpt.interpret.looking import Formation

    steps = [0, 100, 200, 300]
    induction, previous = np.zeros((4, layers, 2)), np.zeros((4, layers, 2))
    induction[:, -1, 0] = induction_by_step
    if previous_by_step is not None:
        previous[:, 0, 1] = previous_by_step
    return Formation(steps, {"previous": previous, "induction": induction})


VAL = [(0, 4.0), (100, 3.0), (200, 2.5), (300, 1.5)]


def test_the_formation_sentence_says_what_the_history_shows():
    from babygpt.interpret.looking import formation_sentence

    formed = formation_sentence(history([0.0, 0.1, 0.6, 0.9]), VAL, "character")
    assert formed.startswith("An induction head formed by step 200: layer 1 head 0 reached 0.60")
    assert "at the last evaluation (step 300) it scores 0.90" in formed
    assert "-0.750 per 100 steps over the evaluations before it and -1.000 after it" in formed
    one_layer = formation_sentence(history([0.0, 0.1, 0.1, 0.2], layers=1), VAL, "x")
    assert "layer 0 head 0 with 0.20" in one_layer and "This model has one layer" in one_layer
    assert "too few recorded evaluations" in formation_sentence(None, VAL, "character")


def test_no_induction_head_is_told_only_what_was_measured():
    """A run that copies through a fixed-offset head (here a previous-token head that formed) and grew no
    induction head: the sentence states the scores it has, and guesses no reason (its text may well reward
    copying: that is not measured here)."""
    from babygpt.interpret.looking import formation_sentence

    copies_by_offset = history([0.0, 0.1, 0.15, 0.2], previous_by_step=[0.1, 0.5, 0.8, 0.9])
    said = formation_sentence(copies_by_offset, VAL, "character")
    assert said == ("No induction head formed: no head reached 0.4 on repeated random tokens at any of the 4 "
                    "recorded evaluations; at the last one (step 300) the highest is layer 1 head 0 with 0.20.")
    for guess in ("copying little to gain", "may need", "train longer", "enough for one"):
        assert guess not in said


def test_the_formation_chart_names_the_head_that_passed_and_where_it_stands_at_the_end():
    from babygpt.figures.inside_figures import formation_figure
    from babygpt.interpret.looking import formation_reading, onset

    rose_and_fell = history([0.0, 0.5, 0.3, 0.2])
    found = onset(rose_and_fell)
    fig = formation_figure(rose_and_fell, "induction", VAL, found, "t")
    assert [a.text for a in fig.layout.annotations if a.text != "t"] == ["layer 1 head 0 passed 0.4 at step 100"]
    assert formation_reading(rose_and_fell, "induction", "induction") == (
        "The dashed line: layer 1 head 0 first reached 0.4 on induction at step 100 (0.50); at the last evaluation "
        "(step 300) it scores 0.20 and is below 0.4 again.")
    assert "still passes" in formation_reading(history([0.0, 0.5, 0.6, 0.7]), "induction", "induction")
    assert formation_reading(history([0.0, 0.1, 0.2, 0.3]), "induction", "induction") == (
        "No head reached 0.4 on induction at any recorded evaluation; at the last one (step 300) the highest is "
        "layer 1 head 0 with 0.30.")
    spread = history([0.0, 0.1, 0.2, 0.3])
    assert onset(type(spread)(spread.steps, {"spread": np.ones((4, 2, 2))}), "spread") is None, "a shape, not a type"


@pytest.mark.parametrize(("n_layer", "n_head"), [(2, 2), (4, 8), (12, 12), (7, 25)])
def test_every_head_of_the_formation_chart_has_a_style_of_its_own(n_layer, n_head):
    from babygpt.figures.inside_figures import formation_figure
    from babygpt.interpret.looking import Formation

    formation = Formation([0, 10], {"induction": np.zeros((2, n_layer, n_head))})
    fig = formation_figure(formation, "induction", [], None, "t")
    styles = [(t.line.color, t.line.dash, t.marker.symbol) for t in fig.data]
    assert len(styles) == n_layer * n_head and len(set(styles)) == len(styles)


def constant_parts_model():
    """Layer 1 head 1 writes the same vector whatever the context (its values are a bias alone), and so does
    layer 0's feed-forward (a bias through GELU): knocked out by zero they cost loss, by mean nothing at all."""
    torch.manual_seed(0)
    config = model_config_for_preset("gpt", vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16,
                                     dropout=0.0, bias=True)
    model = build_model(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        values = model.blocks[1].attn.qkv
        values.weight[2 * 16 + 8:] = 0.0  # head 1's value rows: no dependence on the stream
        values.bias[2 * 16 + 8:] = 3.0
        model.blocks[1].attn.proj.weight[:, 8:] *= 4.0
        model.blocks[0].ffn.up.weight.zero_()
        model.blocks[0].ffn.up.bias.fill_(1.5)
    return model


def test_mean_ablation_leaves_a_constant_part_alone_and_every_figure_follows_the_kind():
    from babygpt.interpret.looking import ablation_view
    from babygpt.text.tokenizers import CharTokenizer

    model = constant_parts_model()
    tokenizer = CharTokenizer([chr(0x4E00 + i) for i in range(V)])
    view = ablation_view(model, tokenizer, distinct_windows(4, length=17))
    zero, mean = view.by("zero"), view.by("mean")
    assert zero.worst == (1, 1) and zero.heads[1, 1] > 0.05
    assert mean.heads[1, 1] == pytest.approx(0.0, abs=1e-5), "its mean is all it ever says"
    assert mean.worst != (1, 1)
    assert abs(zero.feed_forward[0]) > 1e-3 and mean.feed_forward[0] == pytest.approx(0.0, abs=1e-5)
    assert not np.allclose(zero.attention, mean.attention)
    assert mean.hurt != zero.hurt, "the tokens hurt most are those of the head the kind names"
    with pytest.raises(BabyGPTError, match="zero or by mean"):
        view.by("half")
