"""The Hugging Face bridge, held to ``transformers`` itself: an exported run gives Baby GPT's logits, ids and greedy
text in ``transformers``; a GPT-2 made by ``transformers`` imports and gives its logits; export → import keeps every
weight; and what GPT-2 cannot compute, or a folder that is not what it claims, is refused with the reason."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.interpret.hooked import attention_maps
from babygpt.model.gpt2_layout import gpt2_obstacle
from babygpt.model.hooks import Hooks
from babygpt.model.sizing import ModelLimits
from babygpt.shipped import data_file
from babygpt.store.checkpoints import WEIGHTS_FILE
from babygpt.store.huggingface import export_hf, import_hf
from babygpt.store.runs import RunStore
from babygpt.training.sample import SamplingConfig, generate
from tests.helpers import LIMITS
from tests.import_support import assert_sentence, recorded_run
from tests.needs import required_module
from tests.wording import says

transformers = required_module("transformers", "pip install -r requirements.txt")

PROMPT = "the cat sat on the mat"


CASES = [  # every activation, tied and untied, with and without biases, both position tables, both tokenizers
    dict(activation="relu2", tie_weights=False, bias=False, positional="learned", tokenizer="char"),
    dict(activation="gelu", tie_weights=True, bias=True, positional="sinusoidal", tokenizer="char"),
    dict(activation="relu", tie_weights=False, bias=True, positional="learned", tokenizer="gpt2"),
    dict(activation="gelu_tanh", tie_weights=True, bias=False, positional="sinusoidal", tokenizer="gpt2"),
    dict(activation="relu2", tie_weights=True, bias=True, positional="learned", tokenizer="gpt2"),
    dict(activation="gelu_tanh", tie_weights=False, bias=True, positional="learned", tokenizer="char"),
    dict(activation="gelu", tie_weights=False, bias=False, positional="sinusoidal", tokenizer="gpt2"),
    dict(activation="relu", tie_weights=True, bias=False, positional="sinusoidal", tokenizer="char"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_an_export_computes_in_transformers_what_it_computes_here(small_text, tmp_path, case):
    case = dict(case)
    store, run_id = recorded_run(small_text, case.pop("tokenizer"), **case)
    folder = export_hf(store, run_id, tmp_path / "export")
    loaded = store.load(run_id)
    model = loaded.model.eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)

    ids = loaded.tokenizer.encode(PROMPT)
    assert tokenizer(PROMPT)["input_ids"] == ids, "the same ids from the exported tokenizer"
    assert tokenizer.decode(ids) == PROMPT
    with torch.no_grad():
        expected = model(torch.tensor([ids]))[0]
        got = theirs(torch.tensor([ids])).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    new = model.config.block_size - len(ids)
    ours = generate(model, loaded.tokenizer, PROMPT, SamplingConfig(max_new_tokens=new, temperature=0.0))
    out = theirs.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False, pad_token_id=0)
    assert tokenizer.decode(out[0]) == ours, "greedy generation writes the same text"

    back = RunStore(tmp_path / "other")
    imported = back.load(import_hf(back, folder, LIMITS).id)
    assert imported.model_config == loaded.model_config
    mine, returned = model.state_dict(), imported.model.state_dict()
    assert mine.keys() == returned.keys()
    for name in mine:
        assert torch.equal(mine[name], returned[name]), name
    assert imported.tokenizer.to_dict() == loaded.tokenizer.to_dict()


def test_the_export_looks_like_a_hub_folder(small_text, tmp_path):
    store, run_id = recorded_run(small_text)
    folder = export_hf(store, run_id, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["activation_function"] == "relu2" and config["n_positions"] == 32
    assert config["n_ctx"] == 32, "GPT-2's own config.json names the context twice; TransformerLens reads n_ctx"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "bits per byte" in card
    assert "AutoModelForCausalLM.from_pretrained" in card
    generation = transformers.GenerationConfig.from_pretrained(folder)
    assert generation.temperature == 0.8 and generation.max_length == 32
    with pytest.raises(BabyGPTError, match="not empty"):
        export_hf(store, run_id, folder)


def test_a_character_the_run_never_saw_gets_an_id_the_model_refuses(small_text, tmp_path):
    store, run_id = recorded_run(small_text)
    folder = export_hf(store, run_id, tmp_path / "export")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    vocab = store.load(run_id).model_config.vocab_size
    assert tokenizer("cat Z")["input_ids"][-1] == vocab
    with pytest.raises(BabyGPTError, match="never saw"):
        store.load(run_id).tokenizer.encode("cat Z")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder)
    with pytest.raises(IndexError):
        theirs(torch.tensor([tokenizer("cat Z")["input_ids"]]))


@pytest.mark.parametrize(("preset", "switch", "reason"), [
    ("bigram", {}, "bigram rung is a table"),
    ("single-head", {}, "no output projection"),
    ("multi-head", {}, "no feed-forward"),
    ("multi-head+ffn", {}, "no residual connections"),
    ("residual", {}, "no layer norm; GPT-2 always normalises"),
    ("gpt", {"causal": False}, "without the causal mask"),
    ("gpt", {"positional": "none"}, "without positions"),
])
def test_what_gpt2_cannot_compute_is_refused_with_the_reason(small_text, tmp_path, preset, switch, reason):
    store, run_id = recorded_run(small_text, preset=preset, **switch)
    assert reason in gpt2_obstacle(store.load(run_id).model_config)
    with pytest.raises(BabyGPTError, match=reason):
        export_hf(store, run_id, tmp_path / "export")
    assert not (tmp_path / "export").exists(), "nothing is written for a refused run"


def gpt2_made_by_transformers(folder, activation="gelu_new", tied=True, with_tokenizer_json=True):
    """A tiny random GPT-2 (GPT-2's vocabulary and tokenizer), saved by transformers the way the Hub has it."""
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64, activation_function=activation,
                                     tie_word_embeddings=tied)
    torch.manual_seed(3)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(folder)
    # GPT-2's tokenizer files as the Hub has them (vocab.json, merges.txt), from the copies the project ships
    shutil.copy(data_file("tokenizers", "gpt2", "encoder.json"), folder / "vocab.json")
    shutil.copy(data_file("tokenizers", "gpt2", "vocab.bpe"), folder / "merges.txt")
    tokenizer = transformers.GPT2TokenizerFast.from_pretrained(folder)
    if with_tokenizer_json:
        tokenizer.save_pretrained(folder)  # adds tokenizer.json, as a saved fast tokenizer does
    return model, tokenizer


@pytest.mark.parametrize(("activation", "tied", "tokenizer_json"), [("gelu_new", True, True), ("gelu", False, False)])
def test_a_gpt2_made_by_transformers_imports_and_gives_its_logits(tmp_path, activation, tied, tokenizer_json):
    theirs, tokenizer = gpt2_made_by_transformers(tmp_path / "gpt2", activation, tied, tokenizer_json)
    store = RunStore()
    info = import_hf(store, tmp_path / "gpt2", LIMITS, owner="alice", name="tiny gpt2")
    loaded = store.load(info.id)
    assert info.owner == "alice" and info.status == "done" and loaded.tokenizer.kind == "gpt2"
    text = "Hello world, this is a test of the bridge."
    ids = loaded.tokenizer.encode(text)
    assert ids == tokenizer(text)["input_ids"], "GPT-2's own ids: the full vocabulary"
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(torch.tensor([ids]))[0], theirs(torch.tensor([ids])).logits,
                                   rtol=1e-5, atol=1e-5)
    assert loaded.model_config.activation == {"gelu_new": "gelu_tanh", "gelu": "gelu"}[activation]
    assert loaded.model_config.bias and loaded.model_config.tie_weights is tied


def test_an_imported_folder_is_checked_before_anything_is_read(tmp_path, monkeypatch):
    gpt2_made_by_transformers(tmp_path / "gpt2")
    store = RunStore()

    def refused(folder, match, limits=LIMITS):
        with pytest.raises(BabyGPTError, match=match):
            import_hf(store, folder, limits)

    # over the server's limits: refused from config.json, before the weights are opened
    from babygpt.store import hf_import

    monkeypatch.setattr(hf_import, "load_file", lambda *a: pytest.fail("weights read for a refused model"))
    refused(tmp_path / "gpt2", "over this server's limit", ModelLimits(max_params=10_000, job_memory_bytes=2**30))

    def variant(name, change):
        copy = tmp_path / name
        shutil.copytree(tmp_path / "gpt2", copy)
        change(copy)
        return copy

    def edit_config(**values):
        def change(folder):
            config = json.loads((folder / "config.json").read_text())
            config.update(values)
            (folder / "config.json").write_text(json.dumps(config))
        return change

    refused(variant("bert", edit_config(model_type="bert")), "only GPT-2-shaped")
    refused(variant("wide", edit_config(n_embd=64)), "has shape .* config.json implies")
    refused(variant("deep", edit_config(n_layer=3)), "does not match its config.json")
    refused(variant("swish", edit_config(activation_function="swish")), "no 'swish' activation")
    refused(variant("eps", edit_config(layer_norm_epsilon=1e-6)), "epsilon")
    refused(variant("pickle", lambda f: ((f / WEIGHTS_FILE).rename(f / "pytorch_model.bin"))), "a pickle, which is never")
    refused(variant("no-tokenizer", lambda f: [(f / n).unlink() for n in ("tokenizer.json", "vocab.json",
                                                                          "merges.txt") if (f / n).exists()]),
            "has no tokenizer")
    refused(variant("garbled", lambda f: (f / WEIGHTS_FILE).write_bytes(b"\x00" * 64)), "corrupted or truncated")
    assert store.list_runs() == [], "nothing refused leaves a run behind"


def test_an_imported_model_opens_in_the_views_paths_and_samples(tmp_path):
    """What the Attention, Generate and look-inside pages call: the explicit path and sampling."""
    gpt2_made_by_transformers(tmp_path / "gpt2")
    store = RunStore()
    loaded = store.load(import_hf(store, tmp_path / "gpt2", LIMITS).id)
    ids = torch.tensor([loaded.tokenizer.encode("Hello there")])
    with torch.no_grad():
        logits, _ = loaded.model(ids, hooks=Hooks({}))
        maps = attention_maps(loaded.model, ids)
        torch.testing.assert_close(logits, loaded.model(ids)[0], rtol=1e-5, atol=1e-5)
    assert len(maps) == 2 and maps[0].weights.shape == (1, 4, ids.size(1), ids.size(1))
    text = generate(loaded.model, loaded.tokenizer, "Hello", SamplingConfig(max_new_tokens=5, seed=0))
    assert text.startswith("Hello")


def test_a_configuration_round_trip_keeps_baby_gpt_only_settings():
    from babygpt.model.gpt2_layout import gpt2_config, model_config_from_gpt2

    config = ModelConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=8, bias=False,
                         positional="sinusoidal", activation="relu2", zero_init_residual=False).validate()
    assert model_config_from_gpt2(json.loads(json.dumps(gpt2_config(config)))) == config


def test_the_command_line_exports_and_imports_folders_and_zips(small_text, tmp_path, capsys):
    from babygpt.cli import main
    from babygpt.store.huggingface import export_hf_zip

    store, run_id = recorded_run(small_text)
    assert main(["runs", "export", run_id, str(tmp_path / "hf"), "--format", "hf"]) == 0
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "hf" / "tokenizer.json").is_file()
    assert main(["runs", "import", str(tmp_path / "hf")]) == 0
    (tmp_path / "hf.zip").write_bytes(export_hf_zip(store, run_id))
    assert main(["runs", "import", str(tmp_path / "hf.zip")]) == 0
    assert main(["runs", "export", run_id, str(tmp_path / "run.zip")]) == 0  # the Baby GPT archive still works
    assert main(["runs", "import", str(tmp_path / "run.zip")]) == 0
    out = capsys.readouterr().out
    assert out.count("imported as") == 3
    originals = store.load(run_id).model.state_dict()
    for info in RunStore().list_runs():
        for name, tensor in RunStore().load(info.id).model.state_dict().items():
            assert torch.equal(tensor, originals[name]), (info.name, name)
    store2, residual = recorded_run(small_text, preset="residual")
    assert main(["runs", "export", residual, str(tmp_path / "no"), "--format", "hf"]) == 2
    assert "GPT-2 always normalises" in capsys.readouterr().err


def test_a_zip_that_is_not_a_model_folder_is_refused_before_unpacking(tmp_path):
    import zipfile

    from babygpt.store.huggingface import import_hf_zip

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("model/config.json", json.dumps({"model_type": "gpt2"}))
        zf.writestr("model/../../escape.sh", "echo hi")
    with pytest.raises(BabyGPTError, match="escapes its folder"):
        import_hf_zip(RunStore(), bad, LIMITS)
    assert not (tmp_path / "escape.sh").exists()


def test_an_imported_gpt2_fine_tunes_on_a_text_of_ones_own(tmp_path, small_text):
    """A fine-tune starts from the imported weights exactly (step 0 is the imported model), trains on the user's
    text through the same recorder as any run, and its loss on that text falls."""
    from babygpt.orchestration.plan import plan_finetune
    from babygpt.orchestration.runs import start_run
    from babygpt.text.corpus import Corpus
    from tests.helpers import tiny_config

    gpt2_made_by_transformers(tmp_path / "gpt2")
    store = RunStore()
    base = store.load(import_hf(store, tmp_path / "gpt2", LIMITS).id)
    plan = plan_finetune(base, Corpus.from_text("cats", small_text), tiny_config(max_iters=30, eval_interval=10,
                                                                                 dtype="float32"))
    trainer, info = start_run(store, plan, name="fine-tuned")
    for name, tensor in base.model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
    result = trainer.run()
    vals = [m.loss for m in store.metrics(info.id) if m.split == "val"]
    assert result.status == "done" and vals[-1] < vals[0] - 0.5
    assert store.get(info.id).config["init"]["run"] == base.info.id
    assert not (store.run_dir(info.id) / "init.safetensors").exists(), "the starting weights go at the first checkpoint"


def test_a_fine_tune_on_text_the_tokenizer_cannot_read_is_refused(small_text, tmp_path):
    from babygpt.orchestration.plan import plan_finetune
    from babygpt.text.corpus import Corpus
    from tests.helpers import tiny_config

    store, run_id = recorded_run(small_text)
    with pytest.raises(BabyGPTError, match=r"never saw \('Z', 'é'\); fine-tuning keeps the model's vocabulary"):
        plan_finetune(store.load(run_id), Corpus.from_text("other", small_text + "Zé"), tiny_config())


def test_a_queued_fine_tune_trains_in_a_worker_from_the_copied_weights(small_text, tmp_path):
    """Through the scheduler: the starting weights are copied when the run is queued, so the base run may be
    deleted meanwhile; the worker process starts from them."""
    from babygpt.orchestration.plan import plan_finetune
    from babygpt.server.scheduler import Scheduler
    from babygpt.server.settings import SchedulerSettings
    from babygpt.text.corpus import Corpus
    from tests.helpers import plan_trainer, tiny_config, wait_for

    store, run_id = recorded_run(small_text)
    base = store.load(run_id)
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1))
    try:
        plan = plan_finetune(base, Corpus.from_text("cats", small_text), tiny_config(max_iters=20, eval_interval=10,
                                                                                     dtype="float32"))
        info = scheduler.submit("alice", plan, name="fine-tune")
        store.delete(run_id)
        done = wait_for(lambda: (i := store.get(info.id)).status.ended and i, 120, "the fine-tune to end")
        assert done.status == "done", done.message
        worker_step0 = next(m.loss for m in store.metrics(info.id) if m.split == "val" and m.step == 0)
        # the same evaluation in this process, from the base weights and from fresh ones
        from_base = plan_trainer(plan, model_state=base.model.state_dict())
        fresh = plan_trainer(plan)
        assert worker_step0 == pytest.approx(from_base.estimate_loss()["val"], abs=1e-4)
        assert abs(worker_step0 - fresh.estimate_loss()["val"]) > 0.1
    finally:
        scheduler.stop_all(wait=20)


def test_a_zip_claiming_more_weights_than_its_model_is_refused_before_unpacking(small_text, tmp_path, monkeypatch):
    """The sizes come from the zip's directory and config.json: nothing is unpacked for a refused one."""
    import zipfile

    from babygpt.store import hf_import
    from babygpt.store.huggingface import export_hf_zip, import_hf_zip

    store, run_id = recorded_run(small_text)
    good = export_hf_zip(store, run_id)
    with zipfile.ZipFile(__import__("io").BytesIO(good)) as zf:
        files = {info.filename: zf.read(info) for info in zf.infolist()}
    weights = next(name for name in files if name.endswith(WEIGHTS_FILE))
    files[weights] += b"\x00" * (8 << 20)  # 8 MB more than a 2×32 model can take
    padded = tmp_path / "padded.zip"
    with zipfile.ZipFile(padded, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    monkeypatch.setattr(hf_import, "unpack_entry", lambda *a: pytest.fail("unpacked a refused zip"))
    with pytest.raises(BabyGPTError, match="model.safetensors is .* MB, more than such a file can need here"):
        import_hf_zip(RunStore(tmp_path / "other"), padded, LIMITS)
    small_limits = ModelLimits(max_params=1_000, job_memory_bytes=2**30)
    (tmp_path / "good.zip").write_bytes(good)
    with pytest.raises(BabyGPTError, match="over this server's limit"):
        import_hf_zip(RunStore(tmp_path / "other"), tmp_path / "good.zip", small_limits)


def test_gpt2_small_imports_on_a_24_gb_class_server_and_its_fine_tune_says_what_fits(tmp_path, monkeypatch):
    """The README's example at full size (12 layers, n_embd 768, context 1,024, GPT-2's 50,257 tokens), saved by
    transformers. A 24 GB server that trains two jobs at once gives a job 9.6 GB. Training it at batch 8 × 1,024
    would need 38.5 GB, which is what importing used to check; importing and then looking inside it needs some
    2.4 GB, so it imports and gives transformers' logits. A fine-tune at batch 8 is refused naming the batch that
    fits, and that batch is accepted."""
    from babygpt.model.sizing import JOB_MEMORY_ENV, MAX_PARAMS_ENV, inference_memory_bytes, parameter_count
    from babygpt.server.settings import DEFAULT_LOCAL_JOBS, model_limits_from_env

    for name in (JOB_MEMORY_ENV, MAX_PARAMS_ENV):
        monkeypatch.delenv(name, raising=False)
    limits = model_limits_from_env(DEFAULT_LOCAL_JOBS, machine_memory=24 * 2**30)
    config = transformers.GPT2Config()
    assert (config.n_layer, config.n_embd, config.n_positions, config.vocab_size) == (12, 768, 1024, 50257)
    torch.manual_seed(0)
    theirs = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path / "gpt2"
    theirs.save_pretrained(folder)
    shutil.copy(data_file("tokenizers", "gpt2", "encoder.json"), folder / "vocab.json")
    shutil.copy(data_file("tokenizers", "gpt2", "vocab.bpe"), folder / "merges.txt")

    store = RunStore()
    loaded = store.load(import_hf(store, folder, limits, owner="teacher").id)
    model = loaded.model_config
    assert parameter_count(model) == 124_439_808 and inference_memory_bytes(model) < 2.5 * 2**30
    ids = loaded.tokenizer.encode("Hello, class of 2026")
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(torch.tensor([ids]))[0], theirs(torch.tensor([ids])).logits,
                                   rtol=1e-4, atol=1e-4)
    with pytest.raises(BabyGPTError, match="Training it would need about 38.5 GB, over this server's limit of "
                                           "9.6 GB for one job"):
        limits.check(model, 8)  # the training check, which importing no longer asks
    with pytest.raises(BabyGPTError) as refused:
        limits.check_fine_tune(model, 8)
    says(str(refused.value), "batch 8 × 1,024 tokens", "38.5 GB", "limit of 9.6 GB", "Batch 1 × 1,024 fits",
         "6.4 GB", "the context is the model's own")
    limits.check_fine_tune(model, 1)


def test_a_model_too_large_to_fine_tune_still_imports_and_says_so_when_fine_tuned():
    from babygpt.model.gpt2_layout import model_config_from_gpt2
    from babygpt.model.sizing import ModelLimits

    gpt2 = model_config_from_gpt2({"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768,
                                   "n_layer": 12, "n_head": 12})
    small_server = ModelLimits(max_params=10**9, job_memory_bytes=4 * 2**30)
    small_server.check_import(gpt2)
    with pytest.raises(BabyGPTError, match="even at batch 1 × 1,024 tokens, over this server.s limit of 4.0 GB "
                                           "for one job. It can be looked "
                                           "inside and generate here; fine-tuning it needs a server with more memory"):
        small_server.check_fine_tune(gpt2, 1)
    with pytest.raises(BabyGPTError, match="Looking inside it and generating would need about 2.4 GB, over "
                                           "this server's limit of 1.0 GB for one job"):
        ModelLimits(max_params=10**9, job_memory_bytes=2**30).check_import(gpt2)


def test_a_half_precision_model_is_counted_at_the_size_it_will_take(tmp_path):
    """A run keeps float32 weights: a float16 file of 3 MB becomes a run of 6 MB, and the quota counts the 6."""
    from babygpt.model.gpt2_layout import model_config_from_gpt2
    from babygpt.store.quota import DiskQuota, format_bytes, weights_bytes

    model, tokenizer = gpt2_made_by_transformers(tmp_path / "gpt2")
    half = tmp_path / "half"
    model.half().save_pretrained(half)
    tokenizer.save_pretrained(half)
    store = RunStore()
    config = model_config_from_gpt2(json.loads((half / "config.json").read_text()))
    file_size, run_size = (half / WEIGHTS_FILE).stat().st_size, weights_bytes(config)
    assert run_size > 1.9 * file_size
    between = DiskQuota(bytes_per_user=(file_size + run_size) // 2)
    with pytest.raises(BabyGPTError, match=f"Importing half needs about {format_bytes(run_size)}"):
        import_hf(store, half, LIMITS, owner="alice", quota=between)
    info = import_hf(store, half, LIMITS, owner="alice", quota=DiskQuota(bytes_per_user=run_size + (1 << 20)))
    assert abs((store.run_dir(info.id) / WEIGHTS_FILE).stat().st_size - run_size) < 64 << 10
    assert store.load(info.id).model.token_embedding.weight.dtype == torch.float32


def edit_weights(path, change) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_weights_that_are_not_finite_are_refused_at_import(tmp_path, small_text, value):
    """Such a model used to import, and then Generate failed for whoever opened it."""
    from babygpt.store.archive import export_run, import_run

    gpt2_made_by_transformers(tmp_path / "gpt2")
    edit_weights(tmp_path / "gpt2" / WEIGHTS_FILE, lambda t: t["transformer.h.1.mlp.c_fc.weight"].__setitem__(
        (3, 4), value))
    store = RunStore()
    with pytest.raises(BabyGPTError, match=r"holds values that are not numbers \(NaN or infinity\) in "
                                           r"h.1.mlp.c_fc.weight") as refused:
        import_hf(store, tmp_path / "gpt2", LIMITS)
    assert_sentence(refused.value, tmp_path)
    source, run_id = recorded_run(small_text, store=RunStore(tmp_path / "source"))
    edit_weights(source.run_dir(run_id) / WEIGHTS_FILE, lambda t: t["blocks.0.ln1.weight"].__setitem__(0, value))
    with pytest.raises(BabyGPTError, match="not numbers .* in blocks.0.ln1.weight"):
        import_run(store, export_run(source, run_id, tmp_path / "run.zip"), LIMITS)
    assert store.list_runs() == []


def char_export(tmp_path, small_text):
    store, run_id = recorded_run(small_text)
    return export_hf(store, run_id, tmp_path / "export")


def edit_tokenizer(folder, change) -> None:
    document = json.loads((folder / "tokenizer.json").read_text())
    change(document)
    (folder / "tokenizer.json").write_text(json.dumps(document))


def test_a_tokenizer_that_gives_two_tokens_one_id_is_refused(tmp_path, small_text):
    folder = char_export(tmp_path, small_text)

    def refused(change, match):
        edit_tokenizer(folder, change)
        with pytest.raises(BabyGPTError, match=match) as caught:
            import_hf(RunStore(tmp_path / "other"), folder, LIMITS)
        assert_sentence(caught.value, tmp_path)

    vocab_of = lambda d: d["model"]["vocab"]  # noqa: E731
    refused(lambda d: vocab_of(d).update({"Z": vocab_of(d)["a"]}), r"gives two tokens one id \(\d+: 'a' and 'Z'\)")
    refused(lambda d: (vocab_of(d).pop("Z"), d["added_tokens"].append({"content": "Q", "id": vocab_of(d)["t"]})),
            r"gives two tokens one id \(\d+: 't' and 'Q'\)")
    refused(lambda d: (d["added_tokens"].pop(), d["added_tokens"][0].update(id=0)), "gives the token '<unk>' two ids")
    refused(lambda d: d["added_tokens"][0].update(id=True), "without a text \\(content\\) and a whole-number id")
    refused(lambda d: vocab_of(d).update({"a": 1.5}), "gives the token 'a' the id 1.5; ids are whole numbers")


@pytest.mark.parametrize(("edit", "match"), [
    (lambda c: c.update(activation_function=["gelu"]), "activation_function must be text, got \\['gelu'\\]"),
    (lambda c: c.update(layer_norm_epsilon="1e-5"), "layer_norm_epsilon must be a number"),
    (lambda c: c.update(tie_word_embeddings="false"), "tie_word_embeddings must be true or false"),
    (lambda c: c.update(n_inner=[]), "n_inner must be a whole number"),
    (lambda c: c.update(babygpt=[1]), "babygpt must be an object"),
    (lambda c: c.update(n_embd=True), "n_embd must be a positive integer, got True"),
], ids=["activation-list", "eps-text", "tie-text", "inner-list", "babygpt-list", "embd-bool"])
def test_config_values_of_the_wrong_type_are_named(tmp_path, small_text, edit, match):
    """Each of these ended in a traceback with the server's paths in it."""
    folder = char_export(tmp_path, small_text)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BabyGPTError, match=match) as refused:
        import_hf(RunStore(tmp_path / "other"), folder, LIMITS)
    assert_sentence(refused.value, tmp_path)


@pytest.mark.usefixtures("fresh_resources")
def test_the_fine_tune_form_starts_at_a_batch_that_fits_and_says_what_fits(small_text, monkeypatch):
    """On a server whose jobs may use 1 MB, a tiny model fits at batch 1 only: the form starts there, and batch 8
    is refused before anything is queued, naming the batch that fits."""
    from streamlit.testing.v1 import AppTest

    from babygpt.store.huggingface import export_hf_zip
    from babygpt.text.corpus import Corpus
    from tests.conftest import ROOT

    monkeypatch.setenv("BABYGPT_JOB_MEMORY_MB", "1")
    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "1000000")
    source, run_id = recorded_run(small_text)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.session_state["corpus"] = Corpus.from_text("cats", small_text)
    at.switch_page("views/runs.py").run()
    at.file_uploader(key="runs_import").upload("tiny.zip", export_hf_zip(source, run_id), "application/zip").run()
    imported = next(r for r in RunStore().list_runs() if r.name == "tiny")
    at.selectbox(key="runs_target").set_value(imported.id).run()
    batch = at.number_input(key=f"finetune_batch_{imported.id}")
    assert batch.value == 1
    batch.set_value(8).run()
    at.button(key="finetune_start").click().run()
    said = [e.value for e in at.error]
    assert len(said) == 1 and "Fine-tuning at batch 8 × 32 tokens would need about" in said[0], said
    assert "Batch 1 × 32 fits" in said[0] and not [r for r in RunStore().list_runs() if r.config.get("init")]
