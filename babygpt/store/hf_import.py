"""A GPT-2-shaped Hugging Face folder imported as a run: from a folder on the server's disk (the teacher's USB stick)
or from its zip (a browser uploads files, not folders).

Everything is held to what such a folder needs before it is read, in this order, and nothing is allocated for a
refused one:

1. the files an import reads, by role: ``config.json`` (``CONFIG_BUDGET``), the tokenizer (``tokenizer.json``,
   or ``vocab.json`` with ``merges.txt``: ``TOKENIZER_BUDGET``, ``VOCAB_BUDGET``, ``MERGES_CAP``) and
   ``model.safetensors`` (the size its config implies in float32, with room for the causal masks older checkpoints
   store: ``weights_cap``). Every other file of the folder (the model card, the tokenizer's settings, a pickle) is
   left alone, and in a zip never unpacked;
2. the model config.json describes, against the server's limits for looking inside and generating
   (``ModelLimits.check_import``: the weights and one forward pass; training memory is fine-tuning's question),
   and the owner's disk quota at the size the run will take (float32, whatever the file's precision);
3. the safetensors header (its length first, then every name, shape and dtype), the tokenizer, and the tensors,
   which must all be finite.

Imports take the store's one import slot (``babygpt.store.untrusted.import_slot``): a second import at the same
moment is told to try again, so imports hold one import's memory however many students press at once.
"""

from __future__ import annotations

import math
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_model

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError, ImportRefused
from babygpt.model.gpt import build_model
from babygpt.model.gpt2_layout import BUFFERS, PREFIX, from_gpt2, gpt2_shapes, model_config_from_gpt2, settle_imported
from babygpt.model.sizing import ModelLimits
from babygpt.status import RunStatus
from babygpt.store.checkpoints import WEIGHT_DTYPES, WEIGHTS_FILE, atomic_write_with
from babygpt.store.quota import DiskQuota, weights_bytes
from babygpt.store.runs import STAGING_PREFIX, RunInfo, RunStore, build_config_document
from babygpt.store.safe_zip import Entry, Wanted, check_wanted, entries, open_zip, read_entry, unpack_entry
from babygpt.store.untrusted import JsonBudget, check_finite, format_size, import_slot, load_json
from babygpt.text.tokenizer_files import tokenizer_from_json, tokenizer_from_vocab_merges
from babygpt.text.tokenizers import Tokenizer

# GPT-2's own files, measured: config.json 0.7 KB, tokenizer.json 3.6 MB with 260,000 values as transformers saves
# it, vocab.json 1.0 MB with 100,000, merges.txt 456 KB of 50,001 lines; each budget leaves room, and no more
CONFIG_BUDGET = JsonBudget(64 << 10, 4_000)
TOKENIZER_BUDGET = JsonBudget(6 << 20, 400_000)
VOCAB_BUDGET = JsonBudget(2 << 20, 150_000)
MERGES_CAP, MERGES_LINES = 1 << 20, 60_000
WEIGHTS_HEADER_ALLOWANCE = 1 << 20  # a safetensors header: the names, shapes and offsets of every tensor
DEFAULT_MAX_UNPACKED = 4 << 30
PICKLES = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
IMPORT_BATCH = 8  # the batch a fine-tune of an imported model starts with (the fine-tune form may lower it)


def weights_cap(config: ModelConfig) -> int:
    """The most a model.safetensors of this model can hold: every tensor in float32, the head stored a second time
    (some checkpoints do, tied or not), the causal masks older GPT-2 checkpoints store, and the header."""
    tensors = sum(math.prod(shape) for shape in gpt2_shapes(config).values())
    head = 0 if "lm_head.weight" in gpt2_shapes(config) else config.vocab_size * config.n_embd
    masks = config.n_layer * config.block_size ** 2
    return 4 * (tensors + head + masks) + WEIGHTS_HEADER_ALLOWANCE


def _refuse(message: str) -> ImportRefused:
    return ImportRefused(f"Refused: {message}")


# --- the roles of a folder's files -------------------------------------------------------------------

def _tokenizer_roles(names: set[str]) -> tuple[str, ...]:
    """The tokenizer files an import reads: tokenizer.json when there is one, else GPT-2's two files."""
    if "tokenizer.json" in names:
        return ("tokenizer.json",)
    if {"vocab.json", "merges.txt"} <= names:
        return ("vocab.json", "merges.txt")
    raise _refuse("the folder has no tokenizer (tokenizer.json, or vocab.json and merges.txt).")


def _no_weights(names: set[str]) -> ImportRefused:
    found = [name for name in PICKLES if name in names]
    hint = (f" It has {found[0]}, a pickle, which is never loaded here: save the model with safetensors "
            "(model.save_pretrained(folder, safe_serialization=True))." if found else "")
    return _refuse(f"the folder has no {WEIGHTS_FILE}.{hint}")


def _caps(config: ModelConfig) -> dict[str, int]:
    return {"config.json": CONFIG_BUDGET.max_bytes, "tokenizer.json": TOKENIZER_BUDGET.max_bytes,
            "vocab.json": VOCAB_BUDGET.max_bytes, "merges.txt": MERGES_CAP, WEIGHTS_FILE: weights_cap(config)}


def _config(raw: bytes) -> ModelConfig:
    return model_config_from_gpt2(load_json(raw, "config.json", CONFIG_BUDGET))


def _tokenizer(folder: Path, roles: tuple[str, ...], vocab_size: int) -> Tokenizer:
    if roles == ("tokenizer.json",):
        raw = _read_at_most(folder / "tokenizer.json", TOKENIZER_BUDGET.max_bytes)
        return tokenizer_from_json(load_json(raw, "tokenizer.json", TOKENIZER_BUDGET), vocab_size)
    vocab = load_json(_read_at_most(folder / "vocab.json", VOCAB_BUDGET.max_bytes), "vocab.json", VOCAB_BUDGET)
    raw = _read_at_most(folder / "merges.txt", MERGES_CAP)
    if len(raw) > MERGES_CAP or raw.count(b"\n") > MERGES_LINES:
        raise _refuse("merges.txt is larger than GPT-2's.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("merges.txt is not UTF-8 text.") from None
    return tokenizer_from_vocab_merges(vocab, text, vocab_size)


# --- the weights --------------------------------------------------------------------------------------

def _header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes from the safetensors header, its length held to ``WEIGHTS_HEADER_ALLOWANCE``
    before it is parsed: nothing is allocated for the tensors."""
    with open(path, "rb") as handle:
        start = handle.read(8)
    if len(start) < 8 or struct.unpack("<Q", start)[0] > WEIGHTS_HEADER_ALLOWANCE:
        raise _refuse(f"{WEIGHTS_FILE} is corrupted or truncated (its header is not a safetensors header).")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: (tuple(f.get_slice(name).get_shape()), f.get_slice(name).get_dtype()) for name in f.keys()}
    except Exception:  # safetensors raises its own error types for truncated or corrupt files
        raise _refuse(f"{WEIGHTS_FILE} is corrupted or truncated (its header cannot be read).") from None


def _unprefixed(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _short_list(names: list[str]) -> str:
    shown = [name if len(name) <= 40 else name[:40] + "…" for name in names[:3]]
    return ", ".join(shown) + (f" and {len(names) - 3} more" if len(names) > 3 else "") if names else "none"


def _check_header(header: dict[str, tuple[tuple[int, ...], str]], config: ModelConfig) -> None:
    expected = gpt2_shapes(config)
    found = {_unprefixed(n): v for n, v in header.items() if not n.endswith(BUFFERS)}
    if config.tie_weights:
        found.pop("lm_head.weight", None)  # some checkpoints store the tied head twice; the embedding is used
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise _refuse(f"{WEIGHTS_FILE} does not match its config.json (missing: {_short_list(missing)}; "
                      f"unexpected: {_short_list(unexpected)}).")
    for name, (shape, dtype) in found.items():
        if dtype not in WEIGHT_DTYPES:
            raise _refuse(f"{name} is stored as {dtype}; weights must be {', '.join(WEIGHT_DTYPES)}.")
        if shape != expected[name]:
            raise _refuse(f"{name} has shape {list(shape)}, config.json implies {list(expected[name])}.")


def _tensors(path: Path) -> dict[str, Any]:
    try:
        loaded = load_file(str(path))
    except Exception:
        raise _refuse(f"{WEIGHTS_FILE} could not be read (it is corrupted or truncated).") from None
    tensors = {_unprefixed(k): v for k, v in loaded.items() if not k.endswith(BUFFERS)}
    check_finite(tensors, WEIGHTS_FILE)
    return tensors


# --- import ---------------------------------------------------------------------------------------------

def _check_sizes(sizes: dict[str, int], config: ModelConfig) -> None:
    """Each file the import reads from a folder, held to its role's cap by its size on disk."""
    caps = _caps(config)
    for name, size in sizes.items():
        if size > caps[name]:
            raise _refuse(f"{name} is {format_size(size)}, more than such a file can need here "
                          f"({format_size(caps[name])}).")


def _read_at_most(path: Path, cap: int) -> bytes:
    """A file's bytes, one past ``cap`` at most: enough for the budget that reads them to refuse a larger one."""
    with open(path, "rb") as handle:
        return handle.read(cap + 1)


def _admit(store: RunStore, config: ModelConfig, limits: ModelLimits, owner: str | None, quota: DiskQuota | None,
           shown: str) -> None:
    limits.check_import(config)
    if quota is not None:
        quota.check(store, owner, weights_bytes(config), f"Importing {shown}")


def _record(store: RunStore, folder: Path, roles: tuple[str, ...], config: ModelConfig, name: str,
            owner: str | None) -> RunInfo:
    """Read the checked folder's weights and tokenizer, and record the run (nothing is left of a failed one)."""
    weights = folder / WEIGHTS_FILE
    _check_header(_header(weights), config)
    tokenizer = _tokenizer(folder, roles, config.vocab_size)
    tensors = _tensors(weights)
    config = settle_imported(config, tensors)
    model = build_model(config)
    model.load_state_dict(from_gpt2(tensors, config), strict=True)
    del tensors
    train = TrainConfig(batch_size=IMPORT_BATCH).validate()  # what a fine-tune starts from; the form may change it
    data = {"name": f"{name} (imported)", "source": "", "sha256": None, "imported_from": "huggingface"}
    document = build_config_document(config, train, tokenizer, data)
    info = store.create_run(name, document, text_name=data["name"], status=RunStatus.DONE, owner=owner)
    try:
        atomic_write_with(store.run_dir(info.id) / WEIGHTS_FILE, lambda tmp: save_model(model, tmp))
    except BaseException:
        store.delete(info.id)
        raise
    return store.get(info.id)


def _check_folder(folder: Path) -> tuple[Path, set[str]]:
    """A real folder whose files are real files inside it (no link leading elsewhere); its file names."""
    try:
        found = folder.is_dir()
    except OSError:  # a path too long for the system, or one it cannot look into
        found = False
    if not found:
        raise _refuse(f"there is no folder named {folder.name[:80]!r} there.")
    root = folder.resolve()
    names = set()
    for path in folder.iterdir():
        if path.is_symlink() and root not in path.resolve().parents:
            raise _refuse(f"{path.name} links outside the folder.")
        if path.is_file():
            names.add(path.name)
    return root, names


def import_hf(store: RunStore, folder: str | Path, limits: ModelLimits, owner: str | None = None,
              quota: DiskQuota | None = None, name: str | None = None) -> RunInfo:
    """Record a GPT-2-shaped ``transformers`` folder as a finished run. Sizes come from config.json and the
    safetensors header, checked against ``limits`` (and the owner's disk quota) before a tensor is read."""
    folder = Path(folder)
    with import_slot(store.home):
        root, names = _check_folder(folder)
        if "config.json" not in names:
            raise _refuse(f"{folder.name} has no config.json.")
        if WEIGHTS_FILE not in names:
            raise _no_weights(names)
        roles = _tokenizer_roles(names)
        config = _config(_read_at_most(root / "config.json", CONFIG_BUDGET.max_bytes))
        _check_sizes({role: (root / role).stat().st_size for role in (WEIGHTS_FILE, *roles)}, config)
        _admit(store, config, limits, owner, quota, folder.name)
        return _record(store, root, roles, config, name or folder.name, owner)


def _model_folder(found: list[Entry]) -> tuple[dict[str, Entry], set[str]]:
    """The zip's model folder (where its one config.json is, at the top or in a folder): its files by name, and
    the names of all of them, whatever they are (the others are skipped, never unpacked)."""
    configs = [e for e in found if e.name == "config.json"]
    if not configs:
        raise _refuse("the zip has no config.json; a model folder needs config.json and model.safetensors.")
    if len(configs) > 1:
        raise _refuse(f"the zip holds {len(configs)} config.json files; zip one model folder at a time.")
    here = [e for e in found if e.folder == configs[0].folder]
    return {e.name: e for e in here}, {e.name for e in here}


# files only a Hugging Face folder has (a run archive holds config.json, model.safetensors, trainer.pt,
# metrics.jsonl and run.json, all at the top): one of them, or any file in a folder, makes a zip a Hugging Face one
HF_MARKERS = frozenset({"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                        "special_tokens_map.json", "generation_config.json", "README.md", *PICKLES})


def is_hf_zip(archive: str | Path) -> bool:
    """Whether a .zip holds a Hugging Face folder rather than a run archive, decided from its files' names alone
    (never a value of its config.json), so that each kind is refused by its own importer's sentence: a zip with a
    file in a folder or a file only Hugging Face folders have is one. A zip refused while its directory is read is
    not one: importing it as a run archive says why, by the rules both importers share."""
    try:
        with open_zip(archive, Path(archive).name) as zf:
            found = entries(zf)
    except BabyGPTError:
        return False
    return any("/" in entry.path or entry.name in HF_MARKERS for entry in found)


def import_hf_zip(store: RunStore, archive: str | Path, limits: ModelLimits, max_unpacked: int = DEFAULT_MAX_UNPACKED,
                  owner: str | None = None, quota: DiskQuota | None = None) -> RunInfo:
    """A Hugging Face folder uploaded as a .zip: the zip's directory and names checked, config.json read (bounded)
    and held to the server's limits, and every file the import reads held to its role's cap, all before a byte of
    the others is unpacked; then imported as a folder."""
    archive = Path(archive)
    with import_slot(store.home), open_zip(archive, archive.name) as zf:
        by_name, names = _model_folder(entries(zf))
        config = _config(read_entry(zf, Wanted(by_name["config.json"], CONFIG_BUDGET.max_bytes)))
        if WEIGHTS_FILE not in names:
            raise _no_weights(names)
        roles = _tokenizer_roles(names)
        caps = _caps(config)
        wanted = [Wanted(by_name[role], caps[role]) for role in ("config.json", WEIGHTS_FILE, *roles)]
        check_wanted(wanted, max_unpacked, archive.name)
        _admit(store, config, limits, owner, quota, archive.name)
        staging = Path(tempfile.mkdtemp(dir=store.home, prefix=STAGING_PREFIX))
        try:
            for want in wanted:
                unpack_entry(zf, want, staging / want.entry.name)
            return _record(store, staging, roles, _config((staging / "config.json").read_bytes()), archive.stem,
                           owner)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
