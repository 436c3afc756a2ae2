"""One rule in one place: a model's size in words, its forward FLOPs, the app's training defaults, and where the
library reads its environment. Each test holds the places that show or use a rule to its one definition."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from babygpt.config import PRESETS, ModelConfig, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import build_model
from babygpt.model.sizing import forward_flops_per_token, parameter_count, size_in_words
from babygpt.units import format_count

TEXT = "the cat sat on the mat. the dog sat on the log. " * 40


def test_a_bigram_is_a_table_and_an_attention_rung_its_layers_width_and_heads():
    bigram = model_config_for_preset("bigram", vocab_size=65)
    assert size_in_words(bigram) == "65×65 table · 4,225 parameters"  # never "0×128 · 0.00M"
    one_head = model_config_for_preset("single-head", vocab_size=65, n_embd=32)
    assert size_in_words(one_head).startswith("1×32, 1 head · ")
    gpt = ModelConfig()
    words = size_in_words(gpt)
    assert words.startswith("4×128, 4 heads · ") and words.endswith(f"{format_count(parameter_count(gpt))} parameters")


def test_the_runs_table_and_the_class_board_write_a_runs_size_alike():
    """The Runs page's size column (the store's summary) and the board's model column (``describe_model``) are
    both ``size_in_words`` of the run's model: for the bigram, its table, not a zero-layer shape."""
    from babygpt.orchestration.challenge import describe_model
    from babygpt.orchestration.runs import create_run
    from babygpt.store.runs import RunStore
    from tests.helpers import tiny_plan

    store = RunStore()
    plan = tiny_plan(TEXT, preset="bigram")
    create_run(store, plan, name="table")
    (row,) = store.summaries()
    vocab = plan.model_config.vocab_size
    assert row.size == f"{vocab}×{vocab} table · {vocab * vocab:,} parameters"
    assert describe_model(plan.model_config) == f"bigram {row.size}"


@pytest.mark.parametrize("preset, tied", [(p, t) for p in PRESETS for t in (False, True) if not (p == "bigram" and t)])
def test_forward_flops_equal_what_torch_counts_in_a_forward_pass(preset, tied):
    """An independent count: torch's FlopCounterMode over one forward pass, attention by the math kernel (plain
    matmuls torch can count). Like training's 6N, the formula counts 2 FLOPs per token for each parameter outside
    a matmul: an untied token table (a lookup) and the norms."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    config = model_config_for_preset(preset, vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = build_model(dataclasses.replace(config, tie_weights=tied)).eval()
    idx = torch.randint(37, (3, 16))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    counted = counter.get_total_flops() / idx.numel()
    lookups = 0 if tied else model.token_embedding.weight.numel()
    norms = sum(p.numel() for name, p in model.named_parameters() if ".ln" in f".{name}" or "_norm." in name)  # QK-norm gains too
    assert forward_flops_per_token(model.config) == counted + 2 * (lookups + norms)


# --- the environment: read in babygpt.server.settings, elsewhere only where its docstring says why ----------------
ENVIRONMENT_READERS = {  # module: why it cannot leave it to settings (each named in settings' docstring)
    "babygpt.server.settings": "the one place",
    "babygpt.store.database": "the store's home, below the server",
    "babygpt.training.devices": "torch's thread and precision setup in the training process",
    "babygpt.training.distributed": "torchrun's protocol",
    "babygpt.features.cost": "the sparse autoencoder's limits, read by the command line too",
    "babygpt.server.backend": "passes PYTHONPATH on to a job",
    "babygpt.server.local": "passes the environment on to a job",
    "babygpt.server.sae_jobs": "passes the environment on to a sparse autoencoder's job",
}


def _environment_readers() -> dict[str, list[int]]:
    import ast

    from tests.conftest import ROOT

    found: dict[str, list[int]] = {}
    paths = [*(ROOT / "babygpt").rglob("*.py"), *(ROOT / "ui").rglob("*.py"), *(ROOT / "views").rglob("*.py"),
             ROOT / "app.py"]
    for path in sorted(paths):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                found.setdefault(module, []).append(node.lineno)
    return found


def test_only_settings_and_the_modules_it_names_read_the_environment():
    """A teacher's setting read anywhere else is a second place to look for it: move it to settings, or say in
    settings' docstring why it cannot be there."""
    from babygpt.server import settings

    strays = {m: lines for m, lines in _environment_readers().items() if m not in ENVIRONMENT_READERS}
    assert strays == {}
    unexplained = [m for m in ENVIRONMENT_READERS if m != "babygpt.server.settings" and f"``{m}``" not in settings.__doc__]
    assert unexplained == []


def test_the_servers_settings_are_read_from_the_environment(monkeypatch):
    from babygpt.server import settings
    from babygpt.server.users import admin_token_matches

    monkeypatch.setenv("BABYGPT_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("BABYGPT_RAY_ADDRESS", " auto ")
    monkeypatch.setenv("BABYGPT_GPUS_PER_JOB", "0.25")
    monkeypatch.setenv("BABYGPT_GPUS", "0, 1")
    monkeypatch.setenv("BABYGPT_JOBS_PER_GPU", "3")
    monkeypatch.setenv("BABYGPT_USER_DISK_MB", "5")
    monkeypatch.setenv("BABYGPT_JOB_MEMORY_MB", "512")
    monkeypatch.setenv("BABYGPT_GPU_MEMORY_SHARE", "0.5000")
    assert admin_token_matches("s3cret") and not admin_token_matches("guess")
    assert settings.ray_address() == "auto" and settings.gpus_per_job() == 0.25
    assert settings.visible_gpus() == ("0", "1") and settings.jobs_per_gpu() == 3
    assert settings.disk_quota_from_env().bytes_per_user == 5 * 2**20
    assert settings.job_memory_mb() == 512 and settings.job_gpu_share() == 0.5
    monkeypatch.setenv("BABYGPT_USER_DISK_MB", "lots")
    with pytest.raises(BabyGPTError, match="BABYGPT_USER_DISK_MB must be a whole number of megabytes"):
        settings.disk_quota_from_env()
    monkeypatch.setenv("BABYGPT_GPUS", "O")
    with pytest.raises(BabyGPTError, match="give GPU indices"):
        settings.visible_gpus()


def test_a_long_prompt_is_kept_whole_with_a_notice_not_cropped():
    """``prepare_prompt`` says what it does: the ids are the whole prompt; the window is cropped by its readers."""
    from babygpt.text.tokenizers import CharTokenizer
    from babygpt.training.sample import prepare_prompt

    prompt = prepare_prompt(CharTokenizer.from_text("abcdefgh"), "abcdefgh", block_size=4)
    assert len(prompt.ids) == 8
    assert len(prompt.notices) == 1 and "8 tokens" in prompt.notices[0] and "last 4 tokens" in prompt.notices[0]


# --- the app's training settings: config's, never a view's ----------------------------------------------------------
def test_a_run_from_the_form_starts_from_the_interactive_defaults_under_what_was_chosen():
    from babygpt.config import FORM_SETTINGS, app_train_config, form_defaults

    defaults, train = form_defaults(), app_train_config()
    assert {s.name: getattr(train, s.name) for s in FORM_SETTINGS if s.section == "train"} == {
        s.name: defaults[s.name] for s in FORM_SETTINGS if s.section == "train"}
    assert (train.max_iters, train.eval_interval, train.log_interval, train.sample_tokens) == (1000, 100, 5, 120)
    chosen = app_train_config(max_iters=400, val_fraction=0.2)
    assert (chosen.max_iters, chosen.val_fraction, chosen.log_interval) == (400, 0.2, 5)
    with pytest.raises(BabyGPTError, match="eval_interval"):
        app_train_config(max_iters=50)  # still checked: an evaluation every 100 steps never comes


def test_a_fine_tune_decays_to_a_tenth_without_warm_up_with_five_evaluations():
    from babygpt.config import FINE_TUNE_LR, FINE_TUNE_STEPS, fine_tune_config

    tune = fine_tune_config(FINE_TUNE_STEPS, FINE_TUNE_LR, 8, 0.1)
    assert (tune.max_iters, tune.lr, tune.min_lr, tune.warmup_iters) == (300, 3e-4, pytest.approx(3e-5), 0)
    assert (tune.eval_interval, tune.batch_size, tune.log_interval, tune.sample_tokens) == (60, 8, 5, 120)


def test_no_view_writes_training_settings_of_its_own():
    """A view that builds a TrainConfig is a second place for the app's defaults: it calls config's instead."""
    import ast

    from tests.conftest import ROOT

    found = []
    for path in sorted([*(ROOT / "views").glob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TrainConfig":
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


# --- a run's text: its name for people, its source for finding it --------------------------------------------------
def test_an_uploaded_texts_run_is_listed_by_the_texts_name_never_its_path():
    """Before, the row kept an upload's path (``data_name`` = the corpus' source) where an import kept a name; the
    Runs table and the challenge's refusal showed the server's path. Now the row holds the name, the record the
    source, and an old row's path shows as its file name only."""
    from babygpt.orchestration.runs import create_run
    from babygpt.status import RunStatus
    from babygpt.store.corpora import TextRef, persist_corpus
    from babygpt.store.runs import RunStore
    from babygpt.text.corpus import Corpus
    from tests.helpers import tiny_plan

    store = RunStore()
    kept = persist_corpus(store, Corpus.from_text("my fables.txt", TEXT))
    assert str(store.home) in kept.source  # an upload is read from the store's file named by its hash
    plan = tiny_plan(TEXT)
    plan = dataclasses.replace(plan, corpus=kept)
    info = create_run(store, plan, name="fables")
    assert info.text_name == "my fables.txt" and info.data_name == "my fables.txt"
    (row,) = store.summaries()
    assert row.data == "my fables.txt"
    assert TextRef.of_run(info).source == kept.source  # found by its source, shown by its name
    old = store.create_run("old", {**info.config, "data": {}}, text_name=kept.source, status=RunStatus.DONE)
    assert store.get(old.id).text_name == f"{kept.sha256}.txt"  # an older row's path: its file name, not the folder


def test_a_sentence_is_matched_on_its_figures_in_order():
    from tests.wording import says

    sentence = "it would train 10 steps, but the budget allows 20 steps"
    assert says(sentence, "10 steps", "20 steps") == sentence
    for wrong in (("20 steps", "10 steps"), ("30 steps",)):
        with pytest.raises(AssertionError, match="missing"):
            says(sentence, *wrong)


def test_an_saes_cost_reads_the_models_forward_pass_from_sizing():
    """Collecting activations is one forward pass per token: ``forward_flops_per_token``, not a fraction of training's."""
    from babygpt.features.cost import estimate_cost
    from babygpt.features.sae import SAEConfig

    model, sae = ModelConfig(), SAEConfig(d_in=128, n_features=512)
    cost = estimate_cost(model, sae, tokens=10_000)
    by_hand = 10_000 * forward_flops_per_token(model) + 10_000 * sae.epochs * 12 * 128 * 512
    assert cost.flops == by_hand
