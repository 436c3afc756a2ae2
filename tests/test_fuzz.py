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
from babygpt.store.hf_import import import_hf_zip
from babygpt.store.runs import RunStore
from babygpt.text.corpus import corpus_from_uploads, text_stats
from babygpt.text.tokenizers import build_tokenizer
from tests.helpers import LIMITS, tiny_plan
from tests.import_support import assert_sentence, entry_name, good_zips, patch_entry, recorded_run

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_IMPORTS = settings(FUZZ, max_examples=80)  # each case a whole import: fewer cases, five kinds of file
MEMORY_BOUND_MB = 400  # what one case may add, at its peak, to the memory the process held before it
GROWTH_BOUND_MB = 150  # what all the cases together may leave behind
OUTCOMES: dict[str, Counter] = {}
PEAKS_MB: list[float] = []
FIRST_RSS_MB: list[float] = []  # what the process held as each case began: the first is the baseline


def _status_mb(field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


@contextmanager
def memory_case():
    """One case's own peak: the kernel's high-water mark is reset first (``clear_refs`` 5), so a case is measured
    even when an earlier one peaked higher; the case's rise over what the process held before is bounded."""
    before = _status_mb("VmRSS")
    FIRST_RSS_MB.append(before)
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
    yield
    assert PEAKS_MB, "no case measured its memory"
    growth = _status_mb("VmRSS") - FIRST_RSS_MB[0]  # after torch's first use, which is no case's to keep
    print(f"\nmemory: {len(PEAKS_MB)} cases measured, the largest rose {max(PEAKS_MB):.0f} MB; "
          f"{growth:.0f} MB more held after all of them")
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
                "must be", "tokenizer", "not a Baby GPT", "not valid JSON", "Unknown preset", "zip", "values",
                "nests", "string longer", "number", "escapes", "encrypted", "compressed", "twice", "id", "no "):
        if key.lower() in message.lower():
            return key
    return "other"


def try_import(store: RunStore, path: Path, kind: str, importer=import_run) -> None:
    """An import ends in a run that loads, or in a sentence (a BabyGPTError naming no path of this server), and in
    nothing else: any other exception fails the test."""
    try:
        info = importer(store, path, limits=LIMITS)
    except BabyGPTError as exc:
        assert_sentence(exc, path.parent)
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


# -- Hugging Face folders, and the zip itself -------------------------------------------------------
# Every case below imports a zipped Hugging Face folder (a Baby GPT export of a character-level model) with one file
# changed: each ends in a run that loads or in a sentence naming no path of this server, and in nothing else.
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
                   st.sampled_from([10**19, 10**25, -1, 0, 2**63, 1e308, "gpt2", "gelu_new", ""]))
JSON_VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                                            inner, max_size=4),
                          max_leaves=10)
CONFIG_KEYS = ["model_type", "vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "n_inner",
               "activation_function", "layer_norm_epsilon", "tie_word_embeddings", "scale_attn_weights",
               "scale_attn_by_inverse_layer_idx", "add_cross_attention", "resid_pdrop", "babygpt", "unknown"]
# what a hand-edited or crafted JSON file can hold that a generated value does not
SPLICES = [b"NaN", b"-Infinity", b"1e999", b"9" * 5000, b"[" * 3000, b"{" * 50, b'"', b"\\u0000", b"\xff\xfe",
           b'{"a":' * 40, b"[]," * 50_000, b'"' + b"x" * 70_000 + b'"']


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory) -> dict[str, bytes]:
    store, run_id = recorded_run(store=RunStore(tmp_path_factory.mktemp("fuzz-hf")))
    return good_zips(store, run_id)["hf"]


def try_hf(files: dict[str, bytes], tmp_path_factory, kind: str) -> None:
    folder = tmp_path_factory.mktemp("case")
    try_import(RunStore(folder / "store"), write_zip(folder / "case.zip", files), kind, import_hf_zip)


def splice(raw: bytes, at: float, piece: bytes, cut: bool) -> bytes:
    """``piece`` written into ``raw`` at a fraction of its length, replacing as much (``cut``) or inserted."""
    i = int(len(raw) * at)
    return raw[:i] + piece + raw[i + (len(piece) if cut else 0):]


@FUZZ_IMPORTS
@given(key=st.sampled_from(CONFIG_KEYS), value=JSON_VALUE, delete=st.booleans(), whole=st.booleans())
def test_mutated_hugging_face_configs_are_imported_or_refused(hf_files, tmp_path_factory, key, value, delete, whole):
    with memory_case():
        files = dict(hf_files)
        name = entry_name(files, "config.json")
        config = json.loads(files[name])
        if whole:
            config = value
        elif delete:
            config.pop(key, None)
        else:
            config[key] = value
        files[name] = json.dumps(config).encode()
        try_hf(files, tmp_path_factory, "Hugging Face config.json")


TOKENIZER_PLACES = [("model", "type"), ("model", "vocab"), ("model", "vocab", "a"), ("model", "vocab", "new"),
                    ("model", "merges"), ("model", "unk_token"), ("model",), ("added_tokens",),
                    ("added_tokens", 0, "id"), ("added_tokens", 0, "content"), ("added_tokens", 0), ()]


@FUZZ_IMPORTS
@given(place=st.sampled_from(TOKENIZER_PLACES), value=JSON_VALUE)
def test_mutated_tokenizers_are_imported_or_refused(hf_files, tmp_path_factory, place, value):
    with memory_case():
        files = dict(hf_files)
        name = entry_name(files, "tokenizer.json")
        document = json.loads(files[name])
        if not place:
            document = value
        else:
            target = document
            for step in place[:-1]:
                target = target[step]
            target[place[-1]] = value
        files[name] = json.dumps(document).encode()
        try_hf(files, tmp_path_factory, "tokenizer.json")


@FUZZ_IMPORTS
@given(member=st.sampled_from(["config.json", "tokenizer.json"]), at=st.floats(0, 1), piece=st.sampled_from(SPLICES),
       cut=st.booleans(), noise=st.binary(max_size=40), use_noise=st.booleans())
def test_json_files_with_crafted_text_are_refused_with_a_sentence(hf_files, tmp_path_factory, member, at, piece, cut,
                                                                  noise, use_noise):
    """Deep nesting, numbers too large for a float, NaN, 5,000-digit integers, unterminated strings, bytes that
    are not UTF-8: spliced into the text of a JSON file."""
    with memory_case():
        files = dict(hf_files)
        name = entry_name(files, member)
        files[name] = splice(files[name], at, noise if use_noise else piece, cut)
        try_hf(files, tmp_path_factory, "crafted JSON text")


@FUZZ_IMPORTS
@given(what=st.sampled_from(["rename", "dtype", "shape", "offsets", "drop", "huge", "length", "bytes"]),
       pick=st.integers(0, 200), number=st.integers(0, 2**64 - 1),
       dtype=st.sampled_from(["F64", "I64", "U8", "BOOL", "F16", "BF16", "X", 7]), noise=st.binary(max_size=64))
def test_mutated_hugging_face_weight_headers_are_refused(hf_files, tmp_path_factory, what, pick, number, dtype,
                                                         noise):
    with memory_case():
        files = dict(hf_files)
        name = entry_name(files, "model.safetensors")
        weights = files[name]
        if what == "length":  # the header's length: anything from 0 to 2**64 - 1
            weights = struct.pack("<Q", number) + weights[8:]
        elif what == "bytes":
            weights = weights[:8 + pick] + noise + weights[8 + pick + len(noise):]
        else:
            def change(header: dict) -> None:
                names = sorted(k for k in header if k != "__metadata__")
                entry = header[names[pick % len(names)]]
                if what == "rename":
                    header[names[pick % len(names)] + ".evil"] = header.pop(names[pick % len(names)])
                elif what == "dtype":
                    entry["dtype"] = dtype
                elif what == "shape":
                    entry["shape"] = [number % 5000 + 1] + entry["shape"][1:]
                elif what == "offsets":
                    entry["data_offsets"] = [0, number]
                elif what == "drop":
                    del header[names[pick % len(names)]]
                else:
                    entry["shape"] = [2**40, 2**40]
            weights = rewrite_header(weights, change)
        files[name] = weights
        try_hf(files, tmp_path_factory, "Hugging Face weight headers")


@FUZZ_IMPORTS
@given(kind=st.sampled_from(["archive", "hf"]), action=st.sampled_from(["flip", "tail-flip", "truncate", "patch"]),
       at=st.floats(0, 1), byte=st.integers(0, 255), entry=st.integers(0, 20),
       field=st.sampled_from(["flags", "method", "size", "external"]), value=st.integers(0, 2**32 - 1))
def test_a_damaged_or_crafted_zip_structure_is_refused_with_a_sentence(good_archive, hf_files, tmp_path_factory,
                                                                       kind, action, at, byte, entry, field, value):
    """The zip's own bytes: any byte changed (anywhere, or in the directory at its end), cut short, or an entry's
    headers rewritten (its flags, compression, declared size or attributes), for both importers."""
    with memory_case():
        files = hf_files if kind == "hf" else members(good_archive)
        folder = tmp_path_factory.mktemp("case")
        raw = write_zip(folder / "good.zip", files).read_bytes()
        if action in ("flip", "tail-flip"):
            i = int((len(raw) - 1) * at) if action == "flip" else len(raw) - 1 - int(min(len(raw) - 1, 2000) * at)
            raw = raw[:i] + bytes([byte]) + raw[i + 1:]
        elif action == "truncate":
            raw = raw[:int(len(raw) * at)]
        else:
            names = sorted(files)
            limit = {"flags": 0xFFFF, "method": 0xFFFF, "size": 2**32 - 1, "external": 2**32 - 1}[field]
            raw = patch_entry(raw, names[entry % len(names)], **{field: value % (limit + 1)})
        (folder / "case.zip").write_bytes(raw)
        importer = import_hf_zip if kind == "hf" else import_run
        try_import(RunStore(folder / "store"), folder / "case.zip", f"zip structure ({kind})", importer)
