"""The feature browser's data, steering and the cost check, each against a computation written out here."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.features import browser
from babygpt.features.collect import Activations, collect_activations
from babygpt.features.cost import SAELimits, estimate_cost
from babygpt.features.sae import SAEConfig, TopKSAE
from babygpt.features.steering import sample_with_hooks, steer
from babygpt.interpret.hooked import run_with_cache, run_with_hooks
from babygpt.model.gpt import build_model
from babygpt.text.tokenizers import CharTokenizer
from babygpt.training.sample import SamplingConfig, stream

TEXT = "abcdefghijklmnopqrstuvwxyz .,\n"


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.from_text(TEXT)
    model = build_model(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=4, n_embd=32,
                                    zero_init_residual=False)).eval()
    sae = TopKSAE(SAEConfig(d_in=32, n_features=64, k=4, layer=1, seed=seed))
    with torch.no_grad():
        sae.b_enc.fill_(0.05)  # so that most features fire somewhere on random text
    return model, tokenizer, sae


def activations(model, seed: int = 0, windows: int = 12) -> Activations:
    ids = torch.randint(0, 30, (windows, 16), generator=torch.Generator().manual_seed(seed))
    return collect_activations(model, ids, "blocks.1.hook_resid_post")


def test_the_feature_table_equals_a_brute_force_reading_batch_by_batch():
    model, _, sae = tiny()
    acts = activations(model)
    table = browser.feature_table(sae, acts.acts, n_top=5, batch=37)  # batches that cut windows in odd places
    z = sae.encode(acts.acts)
    assert torch.allclose(table.frequency, (z > 0).double().mean(dim=0))
    assert torch.equal(table.fired, (z > 0).sum(dim=0))
    assert torch.allclose(table.max_activation, z.max(dim=0).values)
    best = z.topk(5, dim=0)
    assert torch.allclose(table.top_values, best.values.T)
    fired = best.values.T > 0
    features = torch.arange(64).unsqueeze(1).expand(64, 5)
    assert torch.allclose(z[table.top_index[fired], features[fired]], table.top_values[fired])  # each index's value
    assert (table.top_index[~fired] == -1).all()


def test_passages_show_the_peak_token_with_its_strength_and_its_neighbours():
    model, tokenizer, sae = tiny()
    acts = activations(model)
    table = browser.feature_table(sae, acts.acts)
    feature = int(table.fired.argmax())
    passages = browser.top_passages(sae, acts, table, feature, tokenizer, n=3, before=4, after=2)
    assert len(passages) == 3
    first = passages[0]
    assert first.strength == pytest.approx(float(table.max_activation[feature]), rel=1e-5)
    index = int(table.top_index[feature, 0])
    w, p = divmod(index, 16)
    assert [t.text for t in first.tokens] == [tokenizer.token_text(int(i)) for i in acts.windows[w, max(0, p - 4):p + 3]]
    assert [round(t.strength, 5) for t in first.tokens] == [
        round(float(v), 5) for v in sae.encode(acts.acts[w * 16 + max(0, p - 4):w * 16 + p + 3]).detach()[:, feature]]


def test_the_order_puts_features_that_fire_sometimes_first_then_rare_dense_and_dead():
    n = 6
    table = browser.FeatureTable(
        frequency=torch.tensor([0.0, 0.5, 0.01, 0.0001, 0.02, 0.2], dtype=torch.float64),
        max_activation=torch.tensor([0.0, 9.0, 2.0, 8.0, 5.0, 7.0]),
        fired=torch.tensor([0, 5000, 100, 1, 200, 2000]),
        top_values=torch.zeros(n, 1), top_index=torch.zeros(n, 1, dtype=torch.long), n_tokens=10_000)
    assert browser.interest_order(table) == [4, 2, 3, 1, 5, 0]


def test_the_label_names_the_tokens_a_feature_fires_on_most():
    _, tokenizer, _ = tiny()
    ids = torch.tensor([[0, 1, 0, 2, 0, 1]])
    acts = Activations(torch.zeros(6, 4), ids, "blocks.0.hook_resid_post")
    table = browser.FeatureTable(torch.tensor([0.5, 0.0], dtype=torch.float64), torch.tensor([3.0, 0.0]),
                                 torch.tensor([6, 0]), torch.tensor([[3.0, 2.0, 2.0, 1.0], [0, 0, 0, 0]]),
                                 torch.tensor([[0, 2, 4, 1], [-1, -1, -1, -1]]), 6)
    a, b = tokenizer.token_text(0), tokenizer.token_text(1)
    assert browser.feature_label(table, acts, 0, tokenizer) == f"{a!r} · {b!r}"
    assert browser.feature_label(table, acts, 1, tokenizer) == "dead"


def test_promoted_tokens_are_the_direct_effect_of_adding_the_direction_before_the_final_norm():
    """With the final norm's spread σ held at the token's own, adding ε·d to the last block's output moves the
    logits by exactly ε·W_U(γ ⊙ (d − mean d))/σ: the library's direction. The model's true change (σ moving too)
    points the same way."""
    model, tokenizer, sae = tiny()
    with torch.no_grad():
        model.ln_f.weight.copy_(torch.rand(32) + 0.5)
    effects = browser.output_direction(model, sae)
    ids = torch.randint(0, 30, (1, 16), generator=torch.Generator().manual_seed(3))
    eps, feature = 1e-3, 7
    plain = run_with_hooks(model, ids, [])[0, -1]
    pushed = run_with_hooks(model, ids, [("blocks.1.hook_resid_post",
                                          lambda x, _n: x + eps * sae.W_dec[feature].detach())])[0, -1]
    change = (pushed - plain).double()
    direction = effects[feature].double()
    assert torch.nn.functional.cosine_similarity(change, direction, dim=0) > 0.95
    _, cache = run_with_cache(model, ids, ["blocks.1.hook_resid_post"])
    x = cache["blocks.1.hook_resid_post"][0, -1].double()
    d = sae.W_dec[feature].detach().double()
    sigma = (x.var(unbiased=False) + model.ln_f.eps).sqrt()
    gamma, unembed = model.ln_f.weight.detach().double(), model.lm_head.weight.detach().double()

    def frozen(v: torch.Tensor) -> torch.Tensor:
        return unembed @ (gamma * (v - v.mean()) / sigma)

    assert torch.allclose((frozen(x + eps * d) - frozen(x)) * sigma / eps, direction, atol=1e-5)
    up, down = browser.promoted_and_suppressed(effects, feature, tokenizer, n=3)
    assert [t.text for t in up] == [tokenizer.token_text(int(i)) for i in direction.topk(3).indices]
    assert [t.text for t in down] == [tokenizer.token_text(int(i)) for i in (-direction).topk(3).indices]
    assert up[0].logit == pytest.approx(float(direction.max()), rel=1e-5)


def test_features_on_a_prompt_are_the_sae_of_the_cached_layer():
    model, tokenizer, sae = tiny()
    found = browser.features_on_prompt(model, sae, tokenizer, "hello world")
    ids = torch.tensor([tokenizer.encode("hello world")])
    _, cache = run_with_cache(model, ids, ["blocks.1.hook_resid_post"])
    assert torch.allclose(found.strengths, sae.encode(cache["blocks.1.hook_resid_post"][0]))
    assert found.tokens == [tokenizer.token_text(i) for i in tokenizer.encode("hello world")]
    assert len(found.at(0, n=10)) == 4  # TopK: exactly k fire at each token
    assert found.strongest(1)[0][1] == pytest.approx(float(found.strengths.max()))
    with pytest.raises(BabyGPTError, match="Type a prompt"):
        browser.features_on_prompt(model, sae, tokenizer, "")


def test_steering_at_strength_zero_writes_the_text_written_without_it():
    model, tokenizer, sae = tiny()
    cfg = SamplingConfig(max_new_tokens=40, seed=3)
    zero = steer(model, tokenizer, sae, 5, 0.0, "abc", cfg)
    assert zero.with_feature == zero.without_feature and len(zero.with_feature) == 40
    strong = steer(model, tokenizer, sae, 5, 50.0, "abc", cfg)
    assert strong.without_feature == zero.without_feature  # the same seed writes the same plain text
    assert strong.with_feature != strong.without_feature


def test_the_steering_loop_without_hooks_writes_what_the_apps_sampler_writes_from_the_same_seed():
    """Past the context the window jumps forward by half a block, as ``babygpt.training.sample`` does."""
    model, tokenizer, _ = tiny()
    ids = tokenizer.encode("abc")
    for cfg in (SamplingConfig(max_new_tokens=40, temperature=0.0), SamplingConfig(max_new_tokens=40, seed=7)):
        ours = sample_with_hooks(model, ids, cfg, [])
        theirs = [t.token_id for t in stream(model, tokenizer, list(ids), replace(cfg, use_cache=False))]
        assert ours == theirs


def test_steering_refuses_a_feature_the_sae_lacks():
    model, tokenizer, sae = tiny()
    with pytest.raises(BabyGPTError, match="no feature 64"):
        steer(model, tokenizer, sae, 64, 1.0, "abc", SamplingConfig(max_new_tokens=2))


def test_an_sae_over_the_limits_is_refused_with_each_reason_before_it_starts():
    model = ModelConfig()
    config = SAEConfig(d_in=128, n_features=4096, k=32)
    cost = estimate_cost(model, config, 2_000_000, cores=2)
    assert cost.memory_bytes > 2_000_000 * 128 * 4  # the activations alone
    limits = SAELimits(memory_bytes=256 * 2**20, max_tokens=1_000_000, max_seconds=60)
    problems = limits.problems(cost)
    assert len(problems) == 3
    assert "2,000,000 tokens of activations is over this server's limit of 1,000,000" in problems[0]
    assert "over this server's limit of 256 MB for one job" in problems[1]
    assert "over this server's limit of 1:00" in problems[2]
    with pytest.raises(BabyGPTError, match="read fewer tokens"):
        limits.check(cost)
    SAELimits(memory_bytes=8 * 2**30, max_tokens=2_000_000, max_seconds=10**6).check(cost)


def test_the_browser_data_bundles_the_table_order_labels_and_effects_of_the_held_out_windows():
    model, tokenizer, sae = tiny()
    windows = torch.randint(0, 30, (6, 16), generator=torch.Generator().manual_seed(4))
    data = browser.browser_data(model, sae, windows, tokenizer)
    assert torch.equal(data.activations.windows, windows) and data.activations.n_tokens == 96
    assert sorted(data.order) == list(range(64)) and data.order == browser.interest_order(data.table)
    assert data.labels[data.order[-1]] == "dead" or int(data.table.fired[data.order[-1]]) > 0
    assert all(label == browser.feature_label(data.table, data.activations, f, tokenizer)
               for f, label in enumerate(data.labels))
    assert data.effects.shape == (64, tokenizer.vocab_size)
