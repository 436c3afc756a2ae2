"""Sparse autoencoders: the TopK SAE and its training, each figure on a case whose answer is known, planted
directions given back, the SAELens export read the way SAELens reads it, steering, features over training."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.features import metrics, saelens
from babygpt.features.collect import collect_activations, text_windows
from babygpt.features.fit import fit_sae, split_windows
from babygpt.features.over_training import feature_history, history_over_checkpoints
from babygpt.features.sae import SAEConfig, TopKSAE, aux_k_loss, train_sae
from babygpt.features.truth import plant_in_embeddings, planted_activations, recovered
from babygpt.interpret.hooked import run_with_cache
from babygpt.model.gpt import build_model


def tiny_model(n_layer: int = 2, n_embd: int = 32, vocab: int = 40, seed: int = 0, **kw):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab, block_size=16, n_layer=n_layer, n_head=4, n_embd=n_embd,
                         zero_init_residual=False, **kw)
    return build_model(config).eval()


def identity_sae(width: int, layer: int, hook: str = "resid_post") -> TopKSAE:
    """An SAE that reconstructs exactly: features ±e_i, z = (ReLU(x), ReLU(−x)), x̂ = ReLU(x) − ReLU(−x) = x."""
    sae = TopKSAE(SAEConfig(d_in=width, n_features=2 * width, k=2 * width, layer=layer, hook=hook))
    eye = torch.eye(width)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


# -- the SAE ---------------------------------------------------------------------------------------

def test_topk_keeps_exactly_k_features_and_the_decoder_stays_unit_length():
    acts, _ = planted_activations(4096, 16, 32, seed=1)
    result = train_sae(acts, SAEConfig(d_in=16, n_features=64, k=4, batch_size=256, lr=3e-3))
    z = result.sae.encode(acts[:512])
    assert ((z > 0).sum(dim=1) <= 4).all() and ((z > 0).sum(dim=1) == 4).float().mean() > 0.9
    assert torch.allclose(result.sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)
    assert result.steps == 4096 // 256 and result.tokens == 4096 and not result.stopped


def test_a_stop_ends_training_at_the_next_step():
    acts = torch.randn(2048, 8)
    asked = []
    result = train_sae(acts, SAEConfig(d_in=8, n_features=32, k=2, batch_size=64),
                       should_stop=lambda: len(asked) >= 3, on_step=asked.append, report_every=1)
    assert result.stopped and result.steps == 3


def test_training_does_not_depend_on_the_scale_the_layer_writes_at():
    """A layer writing tiny numbers (an early feed-forward) learns the same directions as a loud one: training sees
    the activations at one scale and the scale is folded back into the biases after."""
    acts, _ = planted_activations(4096, 16, 32, seed=2)
    config = SAEConfig(d_in=16, n_features=64, k=4, batch_size=256, lr=3e-3)
    loud, quiet = train_sae(acts, config).sae, train_sae(acts * 1e-4, config).sae
    assert torch.allclose(loud.W_dec, quiet.W_dec, atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(quiet.encode(acts[:64] * 1e-4) * 1e4, loud.encode(acts[:64]), atol=1e-2)
        assert torch.allclose(quiet(acts[:64] * 1e-4) * 1e4, loud(acts[:64]), atol=1e-2)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(d_in=128, n_features=64), "between 128 and 8,192"),
    (dict(d_in=16, n_features=64, k=0), "k must be between 1 and the 64 features"),
    (dict(hook="attn_out"), "choose resid_post or mlp_out"),
])
def test_settings_are_refused_with_a_sentence(settings, message):
    with pytest.raises(BabyGPTError, match=message):
        SAEConfig(**settings).validate()


def test_aux_k_gives_gradient_to_dead_features_only_through_the_auxiliary_loss():
    sae = TopKSAE(SAEConfig(d_in=8, n_features=64, k=2, aux_k=4))
    x = torch.randn(64, 8)
    pre = sae.pre_activations(x)
    top = pre.topk(2, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    x_hat = sae.decode(z)
    dead = ~z.detach().bool().any(dim=0)  # the features that did not fire in this batch count as dead
    assert dead.sum() >= 4
    aux_k_loss(sae, x, x_hat, pre, dead).backward()
    grad = sae.W_enc.grad.abs().sum(dim=0)
    assert grad[dead].sum() > 0 and (grad[~dead] == 0).all()


# -- the figures, on cases whose answer is known -----------------------------------------------------

def test_variance_explained_is_one_for_the_activation_zero_for_its_mean_and_written_out_between():
    x = torch.randn(100, 6)
    assert metrics.variance_explained(x, x) == pytest.approx(1.0)
    assert metrics.variance_explained(x, x.mean(dim=0).expand_as(x)) == pytest.approx(0.0, abs=1e-12)
    half = x.mean(dim=0) + 0.5 * (x - x.mean(dim=0))  # the centred part halved: 1 − 0.25
    assert metrics.variance_explained(x, half) == pytest.approx(0.75)


def test_l0_dead_and_dense_on_hand_made_strengths():
    z = torch.zeros(10, 4)
    z[:, 0] = 1.0  # fires everywhere: dense
    z[0, 1] = 2.0  # once in ten: not dense (exactly 0.1 is not over the threshold)
    z[:5, 2] = 0.5  # half the tokens: dense
    assert metrics.l0(z) == pytest.approx((10 + 1 + 5) / 10)
    frequency = metrics.firing_frequency(z)
    assert frequency.tolist() == [1.0, 0.1, 0.5, 0.0]
    assert int((frequency == 0).sum()) == 1 and int((frequency > metrics.DENSE_FREQUENCY).sum()) == 2


def test_an_exact_sae_recovers_all_of_the_loss_and_explains_all_variance():
    model = tiny_model()
    sae = identity_sae(32, layer=0)
    windows = torch.randint(0, 40, (6, 16))
    acts = collect_activations(model, windows, "blocks.0.hook_resid_post").acts
    figures = metrics.all_figures(model, sae, acts, windows)
    assert figures.variance_explained == pytest.approx(1.0, abs=1e-6)
    assert figures.loss_with_sae == pytest.approx(figures.loss_intact, abs=1e-5)
    assert figures.loss_recovered == pytest.approx(1.0, abs=1e-3)
    assert figures.l0 <= 64 and figures.dead == sum(int((acts[:, i] > 0).sum() == 0) + int((acts[:, i] < 0).sum() == 0)
                                                    for i in range(32))


def test_loss_recovered_equals_the_computation_written_out_at_the_last_layer():
    """At the last block's output the rest of the model is the final norm and the unembedding, so the three losses
    are written out here from the cached activation alone."""
    model = tiny_model()
    torch.manual_seed(3)
    sae = TopKSAE(SAEConfig(d_in=32, n_features=64, k=4, layer=1))
    windows = torch.randint(0, 40, (5, 16))
    _, cache = run_with_cache(model, windows, ["blocks.1.hook_resid_post"])
    x = cache["blocks.1.hook_resid_post"]

    def loss_of(resid: torch.Tensor) -> float:
        logits = model.lm_head(model.ln_f(resid))
        return float(F.cross_entropy(logits[:, :-1].reshape(-1, 40), windows[:, 1:].reshape(-1)))

    with torch.no_grad():
        intact, zero, with_sae = loss_of(x), loss_of(torch.zeros_like(x)), loss_of(sae(x))
    got = metrics.loss_figures(model, sae, windows)
    assert got == pytest.approx((intact, zero, with_sae), abs=1e-5)
    assert metrics.loss_recovered(*got) == pytest.approx((zero - with_sae) / (zero - intact), abs=1e-4)


# -- truth: planted directions come back -------------------------------------------------------------

def test_planted_sparse_directions_are_recovered():
    acts, planted = planted_activations(60_000, 32, 64, active=3.0, seed=0)
    config = SAEConfig(d_in=32, n_features=128, k=6, batch_size=1024, epochs=2, lr=3e-3, aux_k=16,
                       dead_after_tokens=20_000)
    sae = train_sae(acts, config).sae
    cosines = recovered(sae, planted.directions)
    assert (cosines > 0.9).float().mean() >= 0.9, cosines.sort().values[:10]


def test_directions_planted_in_a_model_come_back_through_its_hooks():
    """The whole chain: the text's tokens through the model's pass, the cached layer, training, the figures."""
    model = tiny_model(n_layer=2, n_embd=32, vocab=1024, seed=1)
    planted = plant_in_embeddings(model, n_directions=48, per_token=3, seed=2)
    ids = torch.randint(0, 1024, (60_000,), generator=torch.Generator().manual_seed(0))
    config = SAEConfig(d_in=32, n_features=96, k=4, layer=1, batch_size=1024, epochs=4, lr=3e-3, aux_k=16,
                       dead_after_tokens=20_000)
    fitted = fit_sae(model, ids, config, tokens=50_000, eval_tokens=4096)
    cosines = recovered(fitted.sae, planted.directions)
    assert (cosines > 0.9).float().mean() >= 0.8, cosines.sort().values[:10]
    assert fitted.figures.variance_explained > 0.9 and fitted.figures.l0 <= 4


def test_windows_cover_the_text_and_the_held_out_ones_are_apart():
    ids = torch.arange(1000)
    windows = text_windows(ids, 10, 400)
    assert windows.shape == (40, 10) and windows[0, 0] == 0 and windows[-1, 0] == 990
    train, held = split_windows(windows, 100)
    assert held.size(0) == 10 and train.size(0) == 30
    assert not set(held[:, 0].tolist()) & set(train[:, 0].tolist())
    with pytest.raises(BabyGPTError, match="fewer than the model's context of 10"):
        text_windows(torch.arange(5), 10, 100)


# -- export in SAELens's format -----------------------------------------------------------------------

# SAELens 6's TopKSAEConfig fields (sae_lens/saes/sae.py SAEConfig + sae_lens/saes/topk_sae.py TopKSAEConfig) and
# what SAE.load_from_disk does with them, written out: it reads cfg.json, keeps the config class's fields, takes
# the architecture from "architecture", converts configs whose metadata.sae_lens_version is older than 6.0.0, and
# loads every tensor of sae_weights.safetensors by name into W_enc, W_dec, b_enc, b_dec.
SAELENS_TOPK_FIELDS = {"d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations",
                       "reshape_activations", "metadata", "k", "rescale_acts_by_decoder_norm"}
SAELENS_SHAPES = {"W_enc": ("d_in", "d_sae"), "W_dec": ("d_sae", "d_in"), "b_enc": ("d_sae",), "b_dec": ("d_in",)}


def saelens_encode(cfg: dict, tensors: dict, x: torch.Tensor) -> torch.Tensor:
    """SAELens's TopKSAE.encode: x − b_dec (apply_b_dec_to_input), @ W_enc + b_enc, top k, then ReLU."""
    sae_in = x - tensors["b_dec"] * cfg["apply_b_dec_to_input"]
    hidden_pre = sae_in @ tensors["W_enc"] + tensors["b_enc"]
    top = hidden_pre.topk(cfg["k"], dim=-1)
    return torch.zeros_like(hidden_pre).scatter(-1, top.indices, torch.relu(top.values))


def test_the_saelens_export_loads_field_by_field_as_saelens_loads_it(tmp_path):
    acts, _ = planted_activations(2048, 16, 32, seed=4)
    sae = train_sae(acts, SAEConfig(d_in=16, n_features=64, k=4, layer=3, hook="mlp_out", batch_size=256)).sae
    folder = saelens.export_saelens(sae, tmp_path / "out", "babygpt/bard", 64)
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and set(cfg) - {"architecture"} == SAELENS_TOPK_FIELDS
    assert (cfg["d_in"], cfg["d_sae"], cfg["k"]) == (16, 64, 4)
    assert cfg["normalize_activations"] == "none" and cfg["reshape_activations"] == "none"
    assert cfg["dtype"] == "float32" and cfg["apply_b_dec_to_input"] is True and not cfg["rescale_acts_by_decoder_norm"]
    meta = cfg["metadata"]
    assert tuple(int(p) for p in meta["sae_lens_version"].split(".")[:2]) >= (6, 0)  # read as SAELens 6, not converted
    assert meta["hook_name"] == "blocks.3.hook_mlp_out" and meta["model_name"] == "babygpt/bard"
    assert meta["context_size"] == 64 and meta["hook_head_index"] is None
    with safe_open(str(folder / "sae_weights.safetensors"), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    assert {name: tuple(t.shape) for name, t in tensors.items()} == {
        name: tuple(cfg[d] for d in dims) for name, dims in SAELENS_SHAPES.items()}
    assert all(t.dtype == torch.float32 for t in tensors.values())
    x = acts[:100]
    with torch.no_grad():
        z = saelens_encode(cfg, tensors, x)
        assert torch.allclose(z, sae.encode(x), atol=1e-5)
        assert torch.allclose(z @ tensors["W_dec"] + tensors["b_dec"], sae(x), atol=1e-5)  # SAELens's decode
    back = saelens.read_saelens(folder)
    assert back.config.hook_name == "blocks.3.hook_mlp_out" and torch.equal(back.W_dec, sae.W_dec)


def test_a_folder_that_is_not_a_topk_sae_is_refused_with_a_sentence(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "jumprelu"}))
    with pytest.raises(BabyGPTError, match="Only TopK SAEs"):
        saelens.read_saelens(tmp_path)
    with pytest.raises(BabyGPTError, match="has no cfg.json"):
        saelens.read_saelens(tmp_path / "nothing")


# -- features over training -------------------------------------------------------------------------

def test_a_feature_appears_at_the_first_kept_step_from_which_it_stays_matched():
    config = SAEConfig(d_in=64, n_features=64, k=2)  # 64 random directions in 64 dimensions: far apart
    final, same, other, half = (TopKSAE(config) for _ in range(4))
    with torch.no_grad():
        other.W_dec.copy_(-final.W_dec)  # every direction reversed: cosine −1, never a match
        half.W_dec[32:] = -final.W_dec[32:]  # features 0–31 present, 32–63 reversed
    history = feature_history(final, [(300, same), (100, other), (200, half)])
    assert history.steps == [100, 200, 300]
    assert history.appeared[:32] == [200] * 32 and history.appeared[32:] == [300] * 32
    step, cosine, match = history.of(0)[2]
    assert (step, match) == (300, 0) and cosine == pytest.approx(1.0)


def planted_model_and_text(vocab: int = 256):
    """A model whose last layer holds known sparse directions, and a text to read it over."""
    model = tiny_model(n_layer=1, n_embd=16, vocab=vocab, seed=2)
    plant_in_embeddings(model, n_directions=24, per_token=2, seed=1)
    ids = torch.randint(0, vocab, (40_000,), generator=torch.Generator().manual_seed(1))
    return model, ids


def test_two_saes_that_learned_nothing_do_not_match_whatever_their_seeds():
    """Trained 0 steps from different seeds, no feature matches above the threshold, which sits above chance."""
    config = SAEConfig(d_in=16, n_features=64, k=4)
    final, fresh = TopKSAE(config), TopKSAE(replace(config, seed=7))
    history = feature_history(final, [(10, fresh), (20, TopKSAE(replace(config, seed=8)))])
    assert history.n_appeared == 0 and history.appeared == [None] * 64
    assert 0.3 < history.chance.mean < history.chance.top < history.threshold <= 1
    assert float(history.best_cosine.max()) < history.threshold
    assert float(history.best_cosine.mean()) == pytest.approx(history.chance.mean, abs=0.1)


def test_each_kept_checkpoints_sae_starts_from_its_own_seed_so_a_shared_start_is_no_match():
    """SAEs that barely move from their start (a learning rate of 1e-9) must not match the final one: they would
    all "match" if every SAE started from the same seed."""
    model, ids = planted_model_and_text()
    config = SAEConfig(d_in=16, n_features=64, k=4, layer=0, batch_size=256, lr=1e-9)
    final = TopKSAE(config)
    heard = []
    history = history_over_checkpoints(final, [(10, model), (20, model)], ids, tokens=2000,
                                       on_checkpoint=lambda step, i, n: heard.append((step, i, n)))
    assert heard == [(10, 1, 2), (20, 2, 2)]
    assert history.n_appeared == 0
    assert float(history.best_cosine.max()) < history.threshold


def test_saes_trained_from_different_seeds_on_planted_directions_match():
    """Where there is something to learn, SAEs from different seeds learn the same directions and match."""
    model, ids = planted_model_and_text()
    config = SAEConfig(d_in=16, n_features=32, k=2, layer=0, batch_size=512, epochs=4, lr=3e-3, aux_k=8,
                       dead_after_tokens=10_000)
    final = fit_sae(model, ids, config, tokens=30_000, eval_tokens=2048)
    z, _ = metrics.encode_all(final.sae, collect_activations(model, final.browse_windows, config.hook_name).acts)
    live = metrics.firing_frequency(z) > 0
    history = history_over_checkpoints(final.sae, [(50, model), (10, model)], ids, tokens=30_000, live=live)
    assert history.steps == [10, 50] and history.threshold > history.chance.top
    assert history.n_appeared >= 0.6 * history.n_live, history.best_cosine[live].min(dim=1).values.sort().values
    assert all(history.appeared[f] in (None, 10, 50) for f in range(32))


def test_dead_features_never_appear_and_are_left_out_of_the_counts():
    config = SAEConfig(d_in=16, n_features=32, k=2)
    final = TopKSAE(config)
    live = torch.arange(32) % 2 == 0
    history = feature_history(final, [(10, final)], live=live)  # the same dictionary: every live feature matches
    assert history.appeared == [10 if f % 2 == 0 else None for f in range(32)]
    assert (history.n_appeared, history.n_live) == (16, 16)


def test_saelens_itself_loads_the_export_and_reads_the_same_features(tmp_path):
    """SAELens's own ``SAE.load_from_disk`` on our folder: a TopKSAE at our hook point giving our features."""
    sae_lens = pytest.importorskip("sae_lens")
    acts, _ = planted_activations(2048, 16, 32, seed=4)
    sae = train_sae(acts, SAEConfig(d_in=16, n_features=64, k=4, layer=3, hook="mlp_out", batch_size=256)).sae
    folder = saelens.export_saelens(sae, tmp_path / "out", "babygpt/bard", 64)
    theirs = sae_lens.SAE.load_from_disk(str(folder))
    assert type(theirs).__name__ == "TopKSAE" and theirs.cfg.k == 4 and theirs.cfg.d_sae == 64
    assert theirs.cfg.metadata.hook_name == "blocks.3.hook_mlp_out"
    with torch.no_grad():
        assert torch.allclose(theirs.encode(acts[:100]), sae.encode(acts[:100]), atol=1e-6)
        assert torch.allclose(theirs(acts[:100]), sae(acts[:100]), atol=1e-6)


def test_the_cost_estimate_counts_every_stage_the_activation_reading_passes_included():
    """The page once promised 0:02 for a job that took 95 s: the estimate left out stages. Each is counted now."""
    from babygpt.features.cost import FLOPS_PER_CORE, STARTUP_S, estimate_cost
    from babygpt.features.fit import EVAL_TOKENS
    from babygpt.model.sizing import forward_flops_per_token

    model, config = ModelConfig(), SAEConfig(d_in=128, n_features=128, k=32)
    read = 50_000 + EVAL_TOKENS
    cost = estimate_cost(model, config, read, cores=1, eval_tokens=EVAL_TOKENS)
    stages = dict(cost.stages)
    assert list(stages) == ["starting", "reading activations", "training", "measuring"]
    per_token = forward_flops_per_token(model)
    assert stages["reading activations"] == pytest.approx(read * per_token / FLOPS_PER_CORE)
    assert stages["measuring"] >= 3 * EVAL_TOKENS * per_token / FLOPS_PER_CORE, "loss recovered's three passes"
    assert stages["starting"] == STARTUP_S
    assert cost.flops >= read * per_token + 3 * EVAL_TOKENS * per_token + 50_000 * 12 * 128 * 128
    assert cost.seconds >= sum(stages.values()) - 1e-9
    assert cost.seconds > 30, cost.describe()  # the job that took 95 s on a loaded machine is not promised seconds


def test_every_stage_of_fitting_says_how_far_it_has_got():
    """Measuring ran for most of a minute as "step 12/12": it now says its batch, as reading does."""
    model = tiny_model(n_layer=1, n_embd=16, vocab=64, seed=2)
    ids = torch.randint(0, 64, (6000,), generator=torch.Generator().manual_seed(1))
    heard: list[str] = []
    fit_sae(model, ids, SAEConfig(d_in=16, n_features=32, k=2, layer=0, batch_size=256), tokens=2000,
            eval_tokens=1024, on_stage=heard.append)
    measuring = [h for h in heard if h.startswith("measuring · batch ")]
    reading = [h for h in heard if h.startswith("reading activations · batch ")]
    n = 4 * -(-(1024 // 16) // 32)  # 64 held-out windows in batches of 32: read once, then three loss passes
    assert measuring == [f"measuring · batch {i}/{n}" for i in (1, 2, 5, 8)]
    done, total = reading[-1].rsplit(" ", 1)[1].split("/")
    assert reading[0] == f"reading activations · batch 1/{total}" and done == total
    assert heard.index("training") > heard.index(reading[-1]) and heard.index(measuring[0]) > heard.index("training")
