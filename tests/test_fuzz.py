"""Hostile or unlucky input, generated: every outcome is a working result or a BabyGPTError, and memory stays flat.

Run with ``-s`` to see how many cases ran and what was refused (the README quotes it).
"""

import json
import re
import struct
import zipfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from babygpt.config import PRESETS, TrainConfig, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import build_model
from babygpt.model.sizing import parameter_count
from babygpt.orchestration.runs import start_run
from babygpt.store import archive
from babygpt.store.archive import export_run, import_run
from babygpt.store.runs import RunStore
from babygpt.text.corpus import corpus_from_uploads, text_stats
from babygpt.text.tokenizers import build_tokenizer
from tests.helpers import LIMITS, tiny_plan

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
MEMORY_BOUND_MB = 400  # what one case may add, at its peak, to the memory the process held before it
GROWTH_BOUND_MB = 150  # what all the cases together may leave behind
OUTCOMES: dict[str, Counter] = {}
PEAKS_MB: list[float] = []


def _status_mb(field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


@contextmanager
def memory_case():
    """One case's own peak: the kernel's high-water mark is reset first (``clear_refs`` 5), so a case is measured
    even when an earlier one peaked higher; the case's rise over what the process held before is bounded."""
    before = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    yield
    rise = _status_mb("VmHWM") - before
    PEAKS_MB.append(rise)
    assert rise < MEMORY_BOUND_MB, f"one case took {rise:.0f} MB"


def built_params(config) -> int:
    """Parameters of the model really built, on the meta device: shapes without memory, so any size is counted."""
    import torch

    with torch.device("meta"):
        return build_model(config).num_params()


def record(kind: str, outcome: str) -> None:
    OUTCOMES.setdefault(kind, Counter())[outcome] += 1


@pytest.fixture(scope="module", autouse=True)
def report():
    start = _status_mb("VmRSS")
    yield
    growth = _status_mb("VmRSS") - start
    print(f"\nmemory: {len(PEAKS_MB)} cases measured, the largest rose {max(PEAKS_MB, default=0):.0f} MB; "
          f"{growth:.0f} MB more held after all of them")
    assert PEAKS_MB, "no case measured its memory"
    assert growth < GROWTH_BOUND_MB, f"the cases together left {growth:.0f} MB behind"
    for kind, counts in OUTCOMES.items():
        refused = ", ".join(f"{reason} {n}" for reason, n in counts.most_common() if reason != "accepted")
        print(f"\n{kind}: {sum(counts.values())} cases, {counts['accepted']} accepted; refused: {refused}")


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory, small_text=None) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-archive")
    store = RunStore(folder / "store")
    text = "\n".join(f"the cat sat on the mat {i % 7}." for i in range(200))
    trainer, info = start_run(store, tiny_plan(text, max_iters=10, eval_interval=5, device="cpu"), name="fuzz")
    trainer.run()
    return export_run(store, info.id, folder / "good.zip")


def members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def refusal_reason(message: str) -> str:
    """A short name for why an input was refused, to count them."""
    for key in ("limit", "shape", "does not match", "stored as", "corrupted", "damaged", "missing", "unexpected",
                "must be", "tokenizer", "not a Baby GPT", "not valid JSON", "Unknown preset", "zip"):
        if key.lower() in message.lower():
            return key
    return "other"


def try_import(store: RunStore, path: Path, kind: str) -> None:
    try:
        info = import_run(store, path, limits=LIMITS)
    except BabyGPTError as exc:
        record(kind, refusal_reason(str(exc)))
        return
    store.load(info.id)  # an accepted run loads and can be used
    record(kind, "accepted")


# -- run archives ---------------------------------------------------------------------------------
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**7), st.floats(allow_nan=True),
                      st.text(max_size=12), st.lists(st.integers(-2, 300), max_size=4), st.sampled_from(list(PRESETS)))
MODEL_KEYS = ["vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "positional",
              "use_attention", "use_ffn", "use_residual", "use_layernorm", "tie_weights", "activation", "preset",
              "unknown_field"]
TRAIN_KEYS = ["batch_size", "max_iters", "lr", "eval_interval", "dtype", "device", "val_fraction"]


@FUZZ
@given(section=st.sampled_from(["model", "train", "tokenizer", "top"]), key=st.sampled_from(MODEL_KEYS + TRAIN_KEYS),
       value=ANY_VALUE, delete=st.booleans())
def test_mutated_configs_are_imported_or_refused(good_archive, tmp_path_factory, section, key, value, delete):
    with memory_case():
        files = members(good_archive)
        config = json.loads(files["config.json"])
        target = config if section == "top" else config[section]
        if section == "tokenizer":
            key = "chars"
        if delete:
            target.pop(key, None)
        else:
            target[key] = value
        files["config.json"] = json.dumps(config).encode()
        folder = tmp_path_factory.mktemp("case")
        try_import(RunStore(folder / "store"), write_zip(folder / "case.zip", files), "config mutations")


def header_of(weights: bytes) -> dict:
    (length,) = struct.unpack("<Q", weights[:8])
    return json.loads(weights[8:8 + length])


def rewrite_header(weights: bytes, change) -> bytes:
    """safetensors is an 8-byte header length, a JSON header (names, dtypes, shapes, offsets), then the data."""
    (length,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8:8 + length])
    change(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + weights[8 + length:]


@FUZZ
@given(what=st.sampled_from(["rename", "dtype", "shape", "offsets", "drop", "huge"]), pick=st.integers(0, 100),
       number=st.integers(0, 2**40), dtype=st.sampled_from(["F64", "I64", "U8", "BOOL", "F16", "BF16", "X"]))
def test_mutated_weight_headers_are_refused_before_loading(good_archive, tmp_path_factory, what, pick, number, dtype):
    with memory_case():
        files = members(good_archive)

        def change(header: dict) -> None:
            names = sorted(k for k in header if k != "__metadata__")
            name = names[pick % len(names)]
            entry = header[name]
            if what == "rename":
                header[name + ".evil"] = header.pop(name)
            elif what == "dtype":
                entry["dtype"] = dtype
            elif what == "shape":
                entry["shape"] = [number % 5000 + 1] + entry["shape"][1:]
            elif what == "offsets":
                entry["data_offsets"] = [0, number]
            elif what == "drop":
                del header[name]
            else:
                entry["shape"] = [2**20, 2**20]

        mutated = rewrite_header(files["model.safetensors"], change)
        assume(header_of(mutated) != header_of(files["model.safetensors"]))  # e.g. a shape set to what it was
        files["model.safetensors"] = mutated
        folder = tmp_path_factory.mktemp("case")
        store = RunStore(folder / "store")
        with mock.patch.object(archive, "load_weights", side_effect=AssertionError("the weights were loaded")):
            with pytest.raises(BabyGPTError) as refused:
                import_run(store, write_zip(folder / "case.zip", files), limits=LIMITS)
        assert store.list_runs() == [], "a refused archive leaves no run behind"
        record("weight header mutations", refusal_reason(str(refused.value)))


@FUZZ
@given(member=st.sampled_from(["config.json", "model.safetensors", "trainer.pt", "metrics.jsonl", "run.json"]),
       cut=st.floats(0, 1), action=st.sampled_from(["truncate", "drop", "garbage", "extra"]),
       garbage=st.binary(max_size=64))
def test_truncated_missing_and_extra_members(good_archive, tmp_path_factory, member, cut, action, garbage):
    with memory_case():
        files = members(good_archive)
        if action == "truncate":
            files[member] = files[member][: int(len(files[member]) * cut)]
        elif action == "drop":
            files.pop(member)
        elif action == "garbage":
            files[member] = garbage
        else:
            files["extra_" + member] = garbage
        folder = tmp_path_factory.mktemp("case")
        try_import(RunStore(folder / "store"), write_zip(folder / "case.zip", files), "truncated, missing, extra files")


def test_a_huge_model_is_refused_from_its_config(good_archive, tmp_path):
    """n_layer 48, n_embd 16384 with the small weights: refused before anything is built (600 GB otherwise)."""
    files = members(good_archive)
    config = json.loads(files["config.json"])
    config["model"].update(n_layer=48, n_embd=16384, n_head=16)
    files["config.json"] = json.dumps(config).encode()
    with memory_case():
        with pytest.raises(BabyGPTError, match="parameters, over this server's limit"):
            import_run(RunStore(tmp_path / "store"), write_zip(tmp_path / "huge.zip", files), limits=LIMITS)
    assert PEAKS_MB[-1] < 100, "refused from the config: nothing of its size was allocated"


# -- uploads and settings -------------------------------------------------------------------------
ENCODINGS = ["utf-8", "utf-16", "latin-1", "cp1252", "utf-32"]


@FUZZ
@given(texts=st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=400), min_size=1, max_size=3),
       encoding=st.sampled_from(ENCODINGS), raw=st.binary(max_size=200), mix=st.booleans())
def test_uploads_in_any_encoding_are_used_or_named(texts, encoding, raw, mix):
    files = []
    for i, text in enumerate(texts):
        try:
            files.append((f"f{i}.txt", text.encode(encoding)))
        except UnicodeEncodeError:
            files.append((f"f{i}.txt", text.encode("utf-8")))
    if mix:
        files.append(("raw.bin", raw))
    result = corpus_from_uploads(files)
    assert len(result.rejected) + (result.corpus is not None) >= 1
    assert {name for name, _ in result.rejected} <= {name for name, _ in files}
    if result.corpus is None:
        record("uploads", "all refused")
        return
    record("uploads", "accepted" if not result.rejected else "some refused")
    stats = text_stats(result.corpus.text)
    tokenizer = build_tokenizer("char", result.corpus.text)
    assert tokenizer.vocab_size == stats.n_distinct
    bigram = model_config_for_preset("bigram", vocab_size=max(2, tokenizer.vocab_size))
    assert parameter_count(bigram) == built_params(bigram)


SETTING = st.one_of(st.integers(-3, 10**6), st.floats(-1, 10**6, allow_nan=False), st.none())


@FUZZ
@given(preset=st.sampled_from(list(PRESETS)), n_layer=SETTING, n_head=SETTING, n_embd=SETTING, block_size=SETTING,
       vocab=st.integers(2, 200_000), batch_size=SETTING, lr=SETTING, max_iters=SETTING)
def test_page_settings_give_a_config_or_a_message(preset, n_layer, n_head, n_embd, block_size, vocab, batch_size, lr,
                                                  max_iters):
    sizes = {k: v for k, v in dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size).items()
             if v is not None}
    train = {k: v for k, v in dict(batch_size=batch_size, lr=lr, max_iters=max_iters).items() if v is not None}
    try:
        model = model_config_for_preset(preset, vocab_size=vocab, **sizes)
        config = TrainConfig(**train).validate()
        LIMITS.check(model, config.batch_size)
    except BabyGPTError as exc:
        record("page settings", refusal_reason(str(exc)))
        return
    record("page settings", "accepted")
    assert built_params(model) <= LIMITS.max_params  # counted on a model built for real, on the meta device
