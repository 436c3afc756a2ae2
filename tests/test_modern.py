"""The rungs after gpt, each held to an independent reference: RoPE to a rotation written as complex multiplication,
RMSNorm and QK-norm to their formula, SwiGLU and the soft-cap to theirs, Muon's Newton–Schulz to an SVD and its
AdamW half to torch's AdamW; the explicit pass, the cache and the decoder agree on every counterfactual of modern."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from babygpt.config import MODERN_SWITCHES, PRESETS, ModelConfig, TrainConfig, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.interpret.inside import head_scores, logit_lens, trace, without_heads
from babygpt.model.decode import Decoder, forward_cached, new_caches
from babygpt.model.gpt import FeedForward, build_model, make_norm, rotary_tables, rotate
from babygpt.model.hooks import Hooks, hook_names
from babygpt.model.sizing import ffn_width, parameter_count
from babygpt.training.muon import MuonWithAdamW, orthogonalise, split_parameters
from babygpt.training.trainer import make_optimizer

V, T = 23, 12


# every model switch from after GPT-2 at once (SwiGLU aside: the feed-forward stays gpt's ReLU², SwiGLU has its own
# case): modern keeps only some (docs/modern.md), and the fused, explicit, cached and decoded passes must agree on all
EVERY_SWITCH = {k: v for s in MODERN_SWITCHES if not s.train and "activation" not in s.settings
                for k, v in s.settings.items()}


def model_for(preset, **switches):
    torch.manual_seed(0)
    config = model_config_for_preset(preset, vocab_size=V, block_size=T, n_layer=2, n_head=4, n_embd=32)
    model = build_model(dataclasses.replace(config, **switches).validate())
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)  # the init zeroes the residual projections and sets gains to 1
    return model.eval()


def ids(batch=3, seed=0):
    return torch.randint(V, (batch, T), generator=torch.Generator().manual_seed(seed))


def test_rope_turns_each_pair_by_its_position_times_its_frequency():
    hs = 8
    x = torch.randn(2, 3, T, hs, generator=torch.Generator().manual_seed(1))
    angles = torch.arange(T, dtype=torch.float32)[:, None] * 10000.0 ** (-torch.arange(0, hs, 2) / hs)  # (T, hs/2)
    turned = torch.complex(x[..., :hs // 2], x[..., hs // 2:]) * torch.polar(torch.ones_like(angles), angles)
    got = rotate(x, *rotary_tables(T, hs))
    torch.testing.assert_close(got, torch.cat((turned.real, turned.imag), dim=-1))
    # so a query·key score depends only on how far apart they are
    q, k = torch.randn(2, hs, generator=torch.Generator().manual_seed(2))
    cos, sin = rotary_tables(T, hs)
    score = [rotate(q, cos[m:m + 1], sin[m:m + 1]) @ rotate(k, cos[m - 3:m - 2], sin[m - 3:m - 2]).T for m in (3, 7, 11)]
    torch.testing.assert_close(score[0], score[1])
    torch.testing.assert_close(score[0], score[2])


def test_rope_models_name_the_turned_queries_and_keys_as_transformerlens_does():
    model = model_for("gpt+rope")
    seen = {}

    def keep(x, name):
        seen[name] = x

    points = ["attn.hook_q", "attn.hook_k", "attn.hook_rot_q", "attn.hook_rot_k"]
    hooks = Hooks({f"blocks.1.{p}": [keep] for p in points})
    logits, _ = model(ids(), hooks=hooks)
    torch.testing.assert_close(logits, model(ids())[0], rtol=1e-5, atol=1e-5)
    cos, sin = rotary_tables(T, 8)
    for raw, turned in (("q", "rot_q"), ("k", "rot_k")):
        before, after = seen[f"blocks.1.attn.hook_{raw}"], seen[f"blocks.1.attn.hook_{turned}"]  # (B, T, nh, hs)
        assert after.shape == (3, T, 4, 8)
        torch.testing.assert_close(after, rotate(before.transpose(1, 2), cos, sin).transpose(1, 2))
    names = hook_names(1, rotary=True)
    assert names.index("blocks.0.attn.hook_rot_q") == names.index("blocks.0.attn.hook_v") + 1
    assert "blocks.0.attn.hook_rot_q" not in hook_names(1)
    assert not hasattr(model, "position_embedding"), "rotary positions learn no table"


def test_rmsnorm_divides_by_the_root_mean_square_without_mean_or_bias():
    norm = make_norm(ModelConfig(n_embd=16, norm="rmsnorm", bias=True))
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 5, 16) + 2.0  # a mean RMSNorm must keep
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    assert sum(p.numel() for p in norm.parameters()) == 16, "a gain per dimension, no bias"


def test_qk_norm_hands_the_scores_unit_rms_queries_and_keys_times_their_gains():
    model = model_for("gpt+qk-norm")
    seen = {}
    hooks = Hooks({f"blocks.0.{p}": [lambda x, name: seen.__setitem__(name, x)]
                   for p in ("hook_resid_pre", "attn.hook_q", "attn.hook_k")})
    model(ids(), hooks=hooks)
    attn = model.blocks[0].attn
    projected = F.linear(model.blocks[0].ln1(seen["blocks.0.hook_resid_pre"]), attn.qkv.weight)  # (B, T, 3C)
    for part, norm in ((0, attn.q_norm), (1, attn.k_norm)):
        raw = projected[..., part * 32:(part + 1) * 32].view(3, T, 4, 8)
        expected = raw / torch.sqrt(raw.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
        torch.testing.assert_close(seen[f"blocks.0.attn.hook_{'qk'[part]}"], expected)


def test_swiglu_is_silu_of_the_gate_times_the_up_projection():
    config = ModelConfig(n_embd=32, activation="swiglu")
    ffn = FeedForward(config)
    width = ffn_width(config)
    assert width == 88 and ffn.up.out_features == 2 * width and ffn.down.in_features == width  # 8·⌈32/3⌉
    x = torch.randn(2, 5, 32)
    w_gate, w_up = ffn.up.weight[:width], ffn.up.weight[width:]
    expected = (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ ffn.down.weight.T
    torch.testing.assert_close(ffn(x), expected)


def test_the_soft_cap_is_cap_tanh_of_the_logits_over_cap_and_bounds_them():
    model = model_for("gpt+soft-cap")
    cap = model.config.logit_softcap
    assert cap == 15.0
    with torch.no_grad():
        model.lm_head.weight.mul_(1000.0)  # logits far past the cap
    seen = {}
    logits, _ = model(ids(), hooks=Hooks({"blocks.1.hook_resid_post": [lambda x, name: seen.__setitem__("x", x)]}))
    uncapped = F.linear(model.ln_f(seen["x"]), model.lm_head.weight)
    torch.testing.assert_close(logits, cap * torch.tanh(uncapped / cap))
    assert uncapped.abs().max() > 100 and logits.abs().max() <= cap
    # the head itself caps, so whatever reads logits off the stream (the logit lens) reads them capped
    torch.testing.assert_close(model.lm_head(model.ln_f(seen["x"])), logits)


def test_value_embeddings_add_each_layers_own_row_of_the_input_token_to_the_values():
    model = model_for("gpt+value-embeddings")
    seen = {}
    model(ids(), hooks=Hooks({f"blocks.1.{p}": [lambda x, name: seen.__setitem__(name, x)]
                              for p in ("hook_resid_pre", "attn.hook_v")}))
    attn = model.blocks[1].attn
    projected = F.linear(model.blocks[1].ln1(seen["blocks.1.hook_resid_pre"]), attn.qkv.weight)[..., 64:]
    expected = (projected + attn.value_embedding(ids())).view(3, T, 4, 8)
    torch.testing.assert_close(seen["blocks.1.attn.hook_v"], expected)
    assert model.blocks[0].attn.value_embedding is not attn.value_embedding


@pytest.mark.parametrize("switch", [{}, {"causal": False}, {"scale_scores": False}, {"positional": "none"},
                                    {"bias": True, "activation": "swiglu"}, {"tie_weights": True}])
@torch.inference_mode()
def test_every_switch_and_its_counterfactuals_agree_across_fused_explicit_cached_and_decoded(switch):
    model = model_for("modern", **{**EVERY_SWITCH, **switch})
    x = ids(batch=1)
    fused, _ = model(x)
    explicit, _ = model(x, hooks=Hooks({}))
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)
    if not model.config.causal:
        return  # without the mask a position sees tokens not generated yet: there is nothing to decode
    cached, fast = new_caches(model), new_caches(model)
    forward_cached(model, x[:, :4], cached)
    forward_cached(model, x[:, :4], fast)
    decoder = Decoder(model)
    for t in range(4, T):
        torch.testing.assert_close(forward_cached(model, x[:, t:t + 1], cached), fused[:, t], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(decoder.step(int(x[0, t]), fast), fused[:, t], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (32, 96), (96, 32)])  # full rank, as gradients of a batch
def test_newton_schulz_gives_the_svds_u_vt_within_its_quintic_band(shape):
    m = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    o = orthogonalise(m)
    in_svd_basis = u.T @ o @ vh.T  # U·Vᵀ would give the identity here
    singular = in_svd_basis.diagonal()
    # the same singular vectors; every singular value moved into the iteration's band around one
    torch.testing.assert_close(in_svd_basis, torch.diag(singular), atol=1e-4, rtol=0)
    assert singular.min() > 0.6 and singular.max() < 1.2, singular
    assert (o - u @ vh).norm() / (u @ vh).norm() < 0.3


def test_muon_steps_the_blocks_matrices_and_adamw_the_rest_as_torchs_adamw_would():
    model = model_for("modern", **EVERY_SWITCH)
    hidden, rest = split_parameters(model)
    named = {id(p): n for n, p in model.named_parameters()}
    assert sorted(named[id(p)] for p in hidden) == sorted(
        n for n, p in model.named_parameters() if n.startswith("blocks.") and n.endswith(("qkv.weight", "proj.weight",
                                                                                           "up.weight", "down.weight")))
    assert {"token_embedding.weight", "lm_head.weight", "blocks.0.attn.value_embedding.weight",
            "blocks.0.attn.q_norm.weight", "ln_f.weight"} <= {named[id(p)] for p in rest}
    cfg = TrainConfig(lr=3e-3, muon_lr=0.02, weight_decay=0.1)
    optimizer = make_optimizer(model, cfg, torch.device("cpu"))
    assert isinstance(optimizer, MuonWithAdamW)
    reference = copy.deepcopy(model)
    ref_hidden, ref_rest = split_parameters(reference)
    adamw = torch.optim.AdamW([{"params": [p for p in ref_rest if p.dim() >= 2], "weight_decay": 0.1},
                               {"params": [p for p in ref_rest if p.dim() < 2], "weight_decay": 0.0}],
                              lr=3e-3, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
    qkv_before = model.blocks[0].attn.qkv.weight.detach().clone()
    for step in range(3):
        for m, opt in ((model, optimizer), (reference, adamw)):
            m.train()
            loss = m(ids(seed=step), ids(seed=step + 10))[1]
            opt.zero_grad()
            loss.backward()
            opt.step()
        if step == 0:  # Muon's first step: lr · √(rows/cols) times a matrix whose largest singular values are near
            # one (a gradient's null directions stay null)
            update = (qkv_before - model.blocks[0].attn.qkv.weight.detach()) / (0.02 * 3 ** 0.5)
            singular = torch.linalg.svdvals(update)
            assert 0.6 < singular[0] < 1.2, singular
        with torch.no_grad():  # the reference's forward reads the same hidden matrices, so AdamW's inputs agree
            for mine, theirs in zip(hidden, ref_hidden, strict=True):
                theirs.copy_(mine)
    for p, q in zip(rest, ref_rest, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_muon_resumes_from_its_saved_state_to_the_same_next_step():
    model = model_for("modern", **EVERY_SWITCH).train()
    optimizer = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    for step in range(2):
        optimizer.zero_grad()
        model(ids(seed=step), ids(seed=step + 5))[1].backward()
        optimizer.step()
    twin = copy.deepcopy(model)
    twin_opt = make_optimizer(twin, TrainConfig(), torch.device("cpu"))
    twin_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for m, opt in ((model, optimizer), (twin, twin_opt)):
        opt.zero_grad()
        m(ids(seed=9), ids(seed=7))[1].backward()
        opt.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_each_modern_rung_is_gpt_with_one_switch_and_the_optimizer_follows_the_preset():
    gpt = model_config_for_preset("gpt", vocab_size=V)
    for switch in MODERN_SWITCHES:
        assert switch.preset in PRESETS and switch.lesson and switch.source
        rung = model_config_for_preset(switch.preset, vocab_size=V)
        differs = {f.name for f in dataclasses.fields(gpt) if getattr(gpt, f.name) != getattr(rung, f.name)} - {"preset"}
        assert differs == (set() if switch.train else set(switch.settings)), switch.preset
    modern = model_config_for_preset("modern", vocab_size=V)
    # what docs/modern.md measured to earn its place on two texts; RMSNorm, value embeddings and the soft-cap did not
    assert (modern.positional, modern.norm, modern.qk_norm, modern.value_embeddings) == ("rope", "layernorm", True, False)
    assert (modern.activation, modern.zero_init_residual, modern.tie_weights) == ("relu2", True, False)
    assert modern.logit_softcap == 0 and parameter_count(modern) == build_model(modern).num_params()
    assert PRESETS["modern"].startswith("gpt with the ideas from after GPT-2 that earned their place on two texts")
    assert "RoPE, QK-norm and Muon, with gpt's ReLU²" in PRESETS["modern"]
    auto = TrainConfig()
    assert [auto.optimizer_for(model_config_for_preset(p, vocab_size=V)) for p in ("gpt", "gpt+muon", "modern")] == [
        "adamw", "muon", "muon"]
    assert TrainConfig(optimizer="adamw").optimizer_for(modern) == "adamw"
    assert TrainConfig(optimizer="muon").optimizer_for(gpt) == "muon"


@pytest.mark.parametrize("config, message", [
    (dict(positional="rope", n_embd=12, n_head=4), "head size .* must be even"),
    (dict(norm="batchnorm"), "norm must be one of layernorm, rmsnorm"),
    (dict(logit_softcap=-1.0), "logit_softcap must be zero"),
])
def test_bad_modern_settings_get_a_sentence(config, message):
    with pytest.raises(BabyGPTError, match=message):
        ModelConfig(**config).validate()
    with pytest.raises(BabyGPTError, match="optimizer must be one of auto, adamw, muon"):
        TrainConfig(optimizer="sgd").validate()


@pytest.mark.parametrize("preset", [s.preset for s in MODERN_SWITCHES if not s.train] + ["modern"])
def test_the_look_inside_readings_work_on_every_modern_rung(preset):
    """The Inside page's trace, logit lens, head types and head knock-outs read the modern rungs through the same
    explicit pass: the trace is the model's logits, the lens's last layer its (soft-capped) prediction."""
    model = model_for(preset)
    x = ids()
    traced = trace(model, x)
    torch.testing.assert_close(traced.logits, model(x)[0], rtol=1e-5, atol=1e-5)
    lens = logit_lens(model, x[:1])
    torch.testing.assert_close(lens[-1], torch.softmax(model(x[:1])[0][0], -1), rtol=1e-5, atol=1e-6)
    scores = head_scores(model, torch.randint(V, (4, T), generator=torch.Generator().manual_seed(4)))
    assert scores.induction.shape == (2, 4)
    knocked = trace(model, x, without_heads([(0, 1)], None)).logits
    assert not torch.allclose(knocked, traced.logits)
