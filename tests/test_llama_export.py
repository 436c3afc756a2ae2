"""Taking a modern model out: a run with rotary positions, RMSNorm and SwiGLU is exported as ``transformers``' Llama,
held to ``transformers`` itself (the same logits and the same greedy text, as the GPT-2 bridge is); a run neither
GPT-2 nor Llama computes exactly is refused with what each lacks, and nothing is written."""

from __future__ import annotations

import json

import pytest
import torch

from babygpt.errors import BabyGPTError
from babygpt.model.gpt2_layout import gpt2_obstacle
from babygpt.model.llama_layout import llama_obstacle
from babygpt.store.huggingface import export_hf
from babygpt.training.sample import SamplingConfig, generate
from tests.import_support import recorded_run
from tests.needs import required_module

transformers = required_module("transformers", "pip install -r requirements.txt")

PROMPT = "the cat sat on the mat"
LLAMA = dict(preset="gpt+rope", norm="rmsnorm", activation="swiglu")
CASES = [  # untied and tied, with and without biases, both tokenizers
    dict(tie_weights=False, bias=False, tokenizer="char"),
    dict(tie_weights=True, bias=True, tokenizer="gpt2"),
    dict(tie_weights=False, bias=True, tokenizer="char"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_a_rope_rmsnorm_swiglu_run_computes_in_transformers_llama_what_it_computes_here(small_text, tmp_path, case):
    case = dict(case)
    store, run_id = recorded_run(small_text, case.pop("tokenizer"), **LLAMA, **case)
    folder = export_hf(store, run_id, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert "a Llama model" in (folder / "README.md").read_text()
    loaded = store.load(run_id)
    model = loaded.model.eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(theirs).__name__ == "LlamaForCausalLM"
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)

    ids = loaded.tokenizer.encode(PROMPT)
    assert tokenizer(PROMPT)["input_ids"] == ids
    with torch.no_grad():
        expected = model(torch.tensor([ids]))[0]
        got = theirs(torch.tensor([ids])).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    new = model.config.block_size - len(ids)
    ours = generate(model, loaded.tokenizer, PROMPT, SamplingConfig(max_new_tokens=new, temperature=0.0))
    out = theirs.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False, pad_token_id=0)
    assert tokenizer.decode(out[0]) == ours, "greedy generation writes the same text (KV cache and RoPE offsets)"


@pytest.mark.parametrize(("model", "reasons"), [
    (dict(preset="modern"), ["GPT-2: This run's positions are rotary", "Llama: This run normalises with layernorm"]),
    (dict(LLAMA, activation="relu2"), ["Llama: This run's feed-forward uses relu2"]),
    (dict(LLAMA, qk_norm=True), ["Llama: This run normalises queries and keys (QK-norm)"]),
    (dict(LLAMA, value_embeddings=True), ["Llama: This run adds value embeddings"]),
    (dict(LLAMA, logit_softcap=15.0), ["Llama: This run soft-caps its logits"]),
    (dict(preset="gpt+rope"), ["Llama: This run normalises with layernorm; Llama's norms are RMSNorms."]),
    (dict(preset="gpt+rmsnorm"), ["GPT-2: This run normalises with rmsnorm; GPT-2's norms are LayerNorms.",
                                  "Llama: This run's positions are learned"]),
    (dict(preset="bigram"), ["bigram rung is a table"]),
])
def test_what_neither_gpt2_nor_llama_computes_is_refused_with_each_reason(small_text, tmp_path, model, reasons):
    store, run_id = recorded_run(small_text, **model)
    config = store.load(run_id).model_config
    assert gpt2_obstacle(config) and llama_obstacle(config)
    with pytest.raises(BabyGPTError) as refused:
        export_hf(store, run_id, tmp_path / "export")
    for reason in reasons:
        assert reason in str(refused.value)
    assert not (tmp_path / "export").exists(), "nothing is written for a refused run"
