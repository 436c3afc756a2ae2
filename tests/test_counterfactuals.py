"""Counterfactual switches: each breaks exactly one idea, and the explicit path agrees with the fused one."""

import dataclasses
import os

import pytest
import torch

from babygpt.config import model_config_for_preset
from babygpt.interpret.hooked import attention_maps
from babygpt.model.gpt import LanguageModel, build_model
from babygpt.model.hooks import Hooks
from babygpt.model.sizing import parameter_count
from babygpt.text.tokenizers import CharTokenizer
from babygpt.training.sample import SamplingConfig, generate


def _model(n_layer: int = 2, **switches) -> LanguageModel:
    torch.manual_seed(0)
    config = model_config_for_preset("gpt", vocab_size=11, n_layer=n_layer, n_head=2, n_embd=16, block_size=8,
                                     **switches)
    model = build_model(config).eval()
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
        explicit, _ = model(idx, hooks=Hooks({}))
        maps = attention_maps(model, idx)
        assert torch.allclose(explicit, first, atol=1e-4)  # the lesson's formula agrees with the fused path
        assert (maps[0].weights[0, :, 0, 1:].abs().sum() > 0).item() is not causal


def test_without_scaling_and_without_positions():
    idx = torch.randint(11, (1, 8))
    unscaled = _model(scale_scores=False)
    fused, _ = unscaled(idx)
    explicit, _ = unscaled(idx, hooks=Hooks({}))
    maps = attention_maps(unscaled, idx)
    assert torch.allclose(fused, explicit, atol=1e-4) and torch.equal(maps[0].raw, maps[0].scaled)
    plain = _model(positional="none")
    assert parameter_count(plain.config) == plain.num_params() == _model().num_params() - 8 * 16
    shuffled = idx[:, [1, 0, 2, 3, 4, 5, 6, 7]]
    one_layer = _model(n_layer=1, positional="none")  # one layer without positions sees a bag of earlier tokens
    assert torch.allclose(one_layer(idx)[0][0, -1], one_layer(shuffled)[0][0, -1], atol=1e-5)
    # with two layers the causal mask itself leaks order (position 0 saw one token, position 1 two)
    assert not torch.allclose(plain(idx)[0][0, -1], plain(shuffled)[0][0, -1], atol=1e-5)


def test_a_model_without_the_mask_generates_from_its_full_unmasked_forward():
    """It cannot use the KV cache (earlier positions would see later ones): within one block, greedy sampling must
    equal a hand-written loop over the full forward pass, and beyond it the default must equal the uncached path."""
    model = _model(causal=False)
    tokenizer = CharTokenizer(list("abcdefghij\n"))
    text = generate(model, tokenizer, "ab", SamplingConfig(max_new_tokens=6, top_k=1, seed=0))  # fills the block
    ids = tokenizer.encode("ab")
    with torch.no_grad():
        for _ in range(6):
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    assert text == tokenizer.decode(ids)
    longer = SamplingConfig(max_new_tokens=30, top_k=1, seed=0)
    assert generate(model, tokenizer, "ab", longer) == generate(model, tokenizer, "ab",
                                                                 dataclasses.replace(longer, use_cache=False))


def test_without_the_mask_the_loss_collapses_because_the_model_reads_the_answer():
    import math
    import random

    from babygpt.lessons.counterfactuals import active
    from tests.helpers import plan_trainer, tiny_plan

    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghij ") for _ in range(20_000))  # nothing to predict: the best is ln 11
    losses = {}
    for causal in (True, False):
        plan = tiny_plan(noise, max_iters=150, eval_interval=150, causal=causal)
        losses[causal] = plan_trainer(plan).run().val_loss
    assert losses[True] > math.log(11) - 0.05, losses  # with the mask: no better than guessing, as it must be
    assert losses[False] < 1.0, losses  # without it: far "better" than possible, because it reads the answer
    assert [c.key for c in active(plan.model_config.to_dict())] == ["no-mask"]


@pytest.fixture(scope="module")
def class_length_runs(tmp_path_factory):
    """Each counterfactual, and a normal run, trained as a student would from the page: its default model and batch
    on the bundled text, for 200 steps (a class-length run, as the walkthrough that found the false promise)."""
    from babygpt.config import FORM_SETTINGS, TrainConfig, form_defaults
    from babygpt.lessons.counterfactuals import COUNTERFACTUALS
    from babygpt.orchestration.plan import plan_training
    from babygpt.orchestration.runs import start_run
    from babygpt.store.runs import RunStore
    from babygpt.text.datasets import default_dataset, load_corpus

    store = RunStore(tmp_path_factory.mktemp("counterfactual-runs"))
    defaults = form_defaults()
    sizes = {s.name: defaults[s.name] for s in FORM_SETTINGS if s.section == "model"}
    train = {s.name: defaults[s.name] for s in FORM_SETTINGS if s.section == "train"}
    train.update(max_iters=200, eval_interval=100, device="cpu", dtype="float32")
    corpus = load_corpus(default_dataset())
    runs = {}
    for key, switches in [("normal", {}), *((c.key, c.switches) for c in COUNTERFACTUALS)]:
        plan = plan_training(corpus, "char", "gpt", TrainConfig(**train), **{**sizes, **switches})
        trainer, info = start_run(store, plan, name=key)
        trainer.run()
        runs[key] = info.id
    return store, runs


def test_each_counterfactual_says_what_a_class_length_run_shows(class_length_runs):
    from babygpt.lessons.counterfactuals import measure
    from babygpt.orchestration.runs import counterfactual_findings, run_split

    store, runs = class_length_runs
    normal = store.load(runs["normal"])
    val = run_split(store, normal).val
    for key in ("no-mask", "no-scale", "no-positions"):
        loaded = store.load(runs[key])
        [finding] = counterfactual_findings(store, loaded, 200)
        assert finding.key == key and "At step 200" in finding.sentence
        n = finding.numbers
        if key == "no-mask":  # it leans on the answer: hiding the future costs it, and the sentence says by how much
            assert n["loss_hidden"] > n["loss_seen"] + 0.05
            assert f"{n['loss_seen']:.2f} with each next token visible" in finding.sentence
            assert f"The {n['loss_hidden'] - n['loss_seen']:.2f} between them" in finding.sentence
            honest = measure("no-mask", normal.model, val, 200).numbers  # a normal model loses nothing by it
            assert abs(honest["loss_hidden"] - honest["loss_seen"]) < 1e-4
        elif key == "no-scale":
            assert n["top_weight_unscaled"] > n["top_weight_scaled"]
            assert f"{n['top_weight_unscaled']:.0%} of their weight" in finding.sentence
        else:  # order barely moves it; a model with positions is moved far more by the same reordering
            with_positions = measure("no-positions", normal.model, val, 200).numbers["order_change"]
            assert n["order_change"] < with_positions / 2, (n, with_positions)
            assert f"by {n['order_change']:.1%} on average" in finding.sentence


@pytest.mark.usefixtures("fresh_resources")
def test_the_training_page_shows_the_measured_finding_and_the_name_says_what_was_broken(class_length_runs):
    from streamlit.testing.v1 import AppTest

    from babygpt.orchestration.runs import counterfactual_findings
    from tests.conftest import ROOT

    store, runs = class_length_runs
    loaded = store.load(runs["no-mask"])
    assert loaded.info.label.endswith("· without the causal mask")
    [finding] = counterfactual_findings(store, loaded, 200)
    os.environ["BABYGPT_HOME"] = str(store.home)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.session_state["active_run"] = runs["no-mask"]
    at.switch_page("views/train.py").run()
    assert not at.exception
    shown = [w.value for w in at.warning if "Trained without the causal mask" in w.value]
    assert len(shown) == 1 and shown[0].endswith(f"**What this run shows:** {finding.sentence}")
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_everyone").set_value(True).run()  # command-line runs have no owner
    labels = list(at.dataframe[0].value["label"])
    assert [label.endswith("· without the causal mask") for label in labels].count(True) == 1, labels


@pytest.mark.usefixtures("fresh_resources")
def test_the_attention_page_draws_what_a_no_mask_run_computed(class_length_runs):
    """The walkthrough's worst defect: a no-mask run drawn with a causal mask, hiding the very attention to later
    tokens the experiment exists to show. Every map on the page must hold the model's own weights, future included."""
    import numpy as np
    from streamlit.testing.v1 import AppTest

    from babygpt.interpret.attention import attention_for_prompt
    from tests.conftest import ROOT
    from tests.helpers import chart_spec, plotly_array

    store, runs = class_length_runs
    loaded = store.load(runs["no-mask"])
    os.environ["BABYGPT_HOME"] = str(store.home)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.session_state["active_run"] = runs["no-mask"]
    at.switch_page("views/attention.py").run()
    assert not at.exception
    prompt = at.text_area(key="attention_prompt").value
    expected = attention_for_prompt(loaded.model, loaded.tokenizer, prompt).layers[0]["weights"]
    heatmap = plotly_array(chart_spec(at, "attention_heatmap")["data"][0]["z"])
    assert np.isfinite(heatmap).all(), "no cell is blanked out: the model had no mask"
    assert np.allclose(heatmap, expected[0], atol=1e-5)
    assert np.triu(heatmap, 1).sum() > 0.05 * heatmap.shape[0], "it does attend to later tokens"
    for head, trace in enumerate(chart_spec(at, "attention_grid")["data"]):
        assert np.allclose(plotly_array(trace["z"]), expected[head], atol=1e-5)
    formed = chart_spec(at, "attention_forming")["data"][0]["z"]
    assert np.isfinite(plotly_array(formed)).all()
