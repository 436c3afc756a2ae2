"""Hugging Face folders: a run exported as a ``transformers`` GPT-2 model, and a GPT-2-shaped folder imported as a run.

An export is the folder a person would upload to the Hub: ``config.json`` (GPT-2's), ``model.safetensors`` in
GPT-2's names and layout, the tokenizer (``tokenizer.json`` with its config) so that ``AutoTokenizer`` gives the
run's ids, ``generation_config.json`` with the Generate page's defaults, and a model card (``README.md``). It is
written with safetensors and JSON alone: no ``transformers`` at run time. The mapping of names lives in
``babygpt.model.gpt2_layout``.

An import reads a folder from disk (GPT-2 small or distilgpt2 on a USB stick, or an export): it checks config.json
and the safetensors header against the server's limits before a tensor is read or a model built, never reads a
pickle, and records a run the pages open and that can be trained further on a text of the user's.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file, save_model

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import bits_per_char
from babygpt.model.gpt import build_model
from babygpt.model.gpt2_layout import (
    BUFFERS,
    PREFIX,
    from_gpt2,
    gpt2_config,
    gpt2_shapes,
    model_config_from_gpt2,
    settle_imported,
    to_gpt2,
)
from babygpt.model.sizing import ModelLimits, parameter_count
from babygpt.shipped import data_file
from babygpt.status import RunStatus
from babygpt.store.checkpoints import WEIGHT_DTYPES, WEIGHTS_FILE, atomic_write_bytes, atomic_write_with
from babygpt.store.corpora import portable_source
from babygpt.store.quota import DiskQuota
from babygpt.store.runs import RunInfo, RunStore, build_config_document
from babygpt.text.tokenizers import CharTokenizer, GPT2Tokenizer, Tokenizer
from babygpt.units import format_count

CHAR_UNKNOWN = "<unk>"  # what a character the run never saw becomes: an id past the model's vocabulary
ENDOFTEXT = "<|endoftext|>"
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.8, "top_p": 1.0}  # the Generate page's
TEXT_CAPS = {"config.json": 1 << 20, "tokenizer.json": 32 << 20, "vocab.json": 8 << 20, "merges.txt": 8 << 20,
             "tokenizer_config.json": 1 << 20}
PICKLES = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
IMPORT_BATCH = 8  # the batch a fine-tune of an imported model starts with: what the size check assumes


# --- tokenizers as tokenizer.json ----------------------------------------------------------------

def _added(token_id: int, content: str) -> dict[str, Any]:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def char_tokenizer_json(tokenizer: CharTokenizer) -> dict[str, Any]:
    """Every character its own token with the run's id; a character the run never saw becomes ``<unk>``, whose id
    (the vocabulary's size) the model refuses, as Baby GPT refuses such a prompt."""
    unknown = tokenizer.vocab_size
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [_added(unknown, CHAR_UNKNOWN)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": False},
        "post_processor": None, "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": {**{c: i for i, c in enumerate(tokenizer.chars)}, CHAR_UNKNOWN: unknown},
                  "unk_token": CHAR_UNKNOWN},
    }


def _gpt2_files() -> tuple[dict[str, int], list[str]]:
    """GPT-2's own vocabulary (token -> id) and merges, from the files shipped in data/."""
    vocab = json.loads(data_file("tokenizers", "gpt2", "encoder.json").read_text(encoding="utf-8"))
    lines = data_file("tokenizers", "gpt2", "vocab.bpe").read_text(encoding="utf-8").splitlines()
    return vocab, [line for line in lines[1:] if line.strip()]  # the first line is a version comment


def gpt2_tokenizer_json(tokenizer: GPT2Tokenizer) -> dict[str, Any]:
    """GPT-2's byte-level BPE with its ids renumbered: the tokens the run knows get the run's ids 0..V-1, every other
    GPT-2 token an id from V on, which the model refuses (the run refuses a prompt with such a token too)."""
    vocab, merges = _gpt2_files()
    order = {gpt2_id: i for i, gpt2_id in enumerate(tokenizer.gpt2_ids)}
    unseen = sorted(i for i in vocab.values() if i not in order)
    order.update({gpt2_id: len(tokenizer.gpt2_ids) + k for k, gpt2_id in enumerate(unseen)})
    renumbered = {token: order[i] for token, i in vocab.items()}
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [_added(renumbered[ENDOFTEXT], ENDOFTEXT)], "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": renumbered, "merges": merges},
    }


def tokenizer_files(tokenizer: Tokenizer, block_size: int) -> dict[str, dict[str, Any]]:
    if isinstance(tokenizer, CharTokenizer):
        body, special = char_tokenizer_json(tokenizer), {"unk_token": CHAR_UNKNOWN}
    else:
        body, special = gpt2_tokenizer_json(tokenizer), {"unk_token": ENDOFTEXT, "bos_token": ENDOFTEXT,
                                                         "eos_token": ENDOFTEXT}
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": block_size,
                "clean_up_tokenization_spaces": False, **special}
    return {"tokenizer.json": body, "tokenizer_config.json": settings, "special_tokens_map.json": special}


# --- export --------------------------------------------------------------------------------------

def model_card(info: RunInfo, document: dict[str, Any], steps: int, val_loss: float | None) -> str:
    """The README.md of an export: what it was trained on, its size, how well, and how to load it."""
    model, train, data = document["model"], document["train"], document.get("data", {})
    baselines = data.get("baselines") or {}
    cpt = baselines.get("chars_per_token")
    quality = "not evaluated"
    if val_loss is not None:
        quality = f"{val_loss:.3f} nats per token" + (f", {bits_per_char(val_loss, cpt):.3f} bits per character"
                                                      if cpt else "")
    params = parameter_count(ModelConfig.from_dict(model))
    text = portable_source(data) or "an unnamed text"
    architecture = (f"GPT-2 (`{model['preset']}` rung): {model['n_layer']} layers, {model['n_head']} heads, n_embd "
                    f"{model['n_embd']}, context {model['block_size']} tokens, activation `{model['activation']}`, "
                    f"{'tied' if model['tie_weights'] else 'untied'} head, {model['positional']} positions")
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [gpt2, babygpt, {document['tokenizer']['kind']}-level]
---

# {info.name or info.id}

A small GPT trained from scratch with Baby GPT on **{text}** ({data.get('n_chars', '?'):,} characters), exported as
a GPT-2 model: `transformers` computes the same logits as Baby GPT on the same token ids.

| | |
| --- | --- |
| architecture | {architecture} |
| parameters | {format_count(params)} |
| tokenizer | {document['tokenizer']['kind']}, {model['vocab_size']} tokens (ids are the run's own) |
| training | {steps} steps of {train['batch_size']} × {model['block_size']} tokens, learning rate {train['lr']:g} |
| validation loss | {quality} |

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
print(tokenizer.decode(model.generate(**tokenizer("{_prompt_example(document)}", return_tensors="pt"),
                                      max_new_tokens=100)[0]))
```

The tokenizer knows only the {'characters' if document['tokenizer']['kind'] == 'char' else 'GPT-2 tokens'} of the
training text: anything else gets an id at or past the vocabulary size ({model['vocab_size']}), which the model
refuses. Generation cannot go past {model['block_size']} tokens (the position table's length).
"""


def _prompt_example(document: dict[str, Any]) -> str:
    if document["tokenizer"]["kind"] == "char":
        chars = [c for c in document["tokenizer"]["chars"] if c.isalpha()]
        return "".join(chars[:1]) or " "
    return "The"


def export_hf(store: RunStore, run_id: str, folder: str | Path) -> Path:
    """Write run ``run_id`` as a ``transformers`` GPT-2 folder; a run GPT-2 cannot compute is refused, naming why."""
    loaded = store.load(run_id)
    config_json = gpt2_config(loaded.model_config)  # refuses what GPT-2 cannot compute, before any file
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BabyGPTError(f"{folder} is not empty; choose a new folder for the export.")
    folder.mkdir(parents=True, exist_ok=True)
    vals = [m for m in store.metrics(run_id) if m.split == "val" and m.loss is not None]
    steps = max((m.step for m in store.metrics(run_id)), default=0)
    files: dict[str, Any] = {
        "config.json": config_json,
        "generation_config.json": {**GENERATION_DEFAULTS, "max_length": loaded.model_config.block_size,
                                   "bos_token_id": None, "eos_token_id": None, "pad_token_id": None},
        **tokenizer_files(loaded.tokenizer, loaded.model_config.block_size),
    }
    for name, content in files.items():
        atomic_write_bytes(folder / name, (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode())
    card = model_card(loaded.info, loaded.document, steps, vals[-1].loss if vals else None)
    atomic_write_bytes(folder / "README.md", card.encode("utf-8"))
    tensors = to_gpt2(loaded.model)
    atomic_write_with(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    return folder


# --- import --------------------------------------------------------------------------------------

def _read_json(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.is_file():
        raise BabyGPTError(f"Refused: {folder.name} has no {name}.")
    if path.stat().st_size > TEXT_CAPS.get(name, 1 << 20):
        raise BabyGPTError(f"Refused: {name} is {path.stat().st_size / 2**20:.0f} MB, more than such a file needs.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BabyGPTError(f"Refused: {name} is not valid JSON ({exc}).") from exc


def _check_folder(folder: Path) -> Path:
    """A real folder whose files are real files inside it (no link leading elsewhere), with safetensors weights."""
    if not folder.is_dir():
        raise BabyGPTError(f"Refused: {folder} is not a folder.")
    root = folder.resolve()
    for path in folder.iterdir():
        if path.is_symlink() and root not in path.resolve().parents:
            raise BabyGPTError(f"Refused: {path.name} links outside the folder.")
    if not (folder / WEIGHTS_FILE).is_file():
        found = [name for name in PICKLES if (folder / name).exists()]
        hint = (f" It has {found[0]}, a pickle, which is never loaded here: save the model with safetensors "
                "(model.save_pretrained(folder, safe_serialization=True))." if found else "")
        raise BabyGPTError(f"Refused: {folder.name} has no {WEIGHTS_FILE}.{hint}")
    return root


def _header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes from the safetensors header: nothing is allocated for the tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: (tuple(f.get_slice(name).get_shape()), f.get_slice(name).get_dtype()) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated or corrupt files
        raise BabyGPTError(f"Refused: {path.name} is corrupted or truncated ({exc}).") from exc


def _unprefixed(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _check_header(header: dict[str, tuple[tuple[int, ...], str]], config) -> None:
    expected = gpt2_shapes(config)
    found = {_unprefixed(n): v for n, v in header.items() if not n.endswith(BUFFERS)}
    if config.tie_weights:
        found.pop("lm_head.weight", None)  # some checkpoints store the tied head twice; the embedding is used
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise BabyGPTError(f"Refused: {WEIGHTS_FILE} does not match its config.json (missing: {missing[:3]}, "
                           f"unexpected: {unexpected[:3]}).")
    for name, (shape, dtype) in found.items():
        if dtype not in WEIGHT_DTYPES:
            raise BabyGPTError(f"Refused: {name} is stored as {dtype}; weights must be {', '.join(WEIGHT_DTYPES)}.")
        if shape != expected[name]:
            raise BabyGPTError(f"Refused: {name} has shape {list(shape)}, config.json implies {list(expected[name])}.")


def _tokenizer_from_folder(folder: Path, vocab_size: int) -> Tokenizer:
    """A Baby GPT tokenizer giving the same ids as the folder's: a character vocabulary, or GPT-2's BPE (its
    own ids, or an export's renumbering of them). Any other tokenizer is refused."""
    if (folder / "tokenizer.json").is_file():
        document = _read_json(folder, "tokenizer.json")
        model = document.get("model") or {}
        kind, vocab, merges = model.get("type"), model.get("vocab"), model.get("merges")
        if isinstance(vocab, dict):  # special tokens may live only among the added tokens (GPT-2's <|endoftext|>)
            added = {t.get("content"): t.get("id") for t in document.get("added_tokens") or [] if isinstance(t, dict)}
            vocab = {**{k: v for k, v in added.items() if isinstance(k, str) and k != CHAR_UNKNOWN}, **vocab}
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        kind, vocab = "BPE", _read_json(folder, "vocab.json")
        merges_path = folder / "merges.txt"
        if merges_path.stat().st_size > TEXT_CAPS["merges.txt"]:
            raise BabyGPTError("Refused: merges.txt is larger than GPT-2's.")
        merges = [m for m in merges_path.read_text(encoding="utf-8").splitlines()[1:] if m.strip()]
    else:
        raise BabyGPTError(f"Refused: {folder.name} has no tokenizer (tokenizer.json, or vocab.json and merges.txt).")
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise BabyGPTError("Refused: the tokenizer's vocabulary is not a map of tokens to ids.")
    by_id = {i: token for token, i in vocab.items() if 0 <= i < vocab_size}
    if sorted(by_id) != list(range(vocab_size)):
        raise BabyGPTError(f"Refused: the tokenizer does not give every id of the model's {vocab_size} exactly once.")
    if kind == "WordLevel":
        chars = [by_id[i] for i in range(vocab_size)]
        if not all(len(c) == 1 for c in chars):
            raise BabyGPTError("Refused: a word-level tokenizer opens here only as characters (one character a token).")
        return CharTokenizer(chars)
    if kind == "BPE":
        gpt2_vocab, gpt2_merges = _gpt2_files()
        normal = [" ".join(m) if isinstance(m, list) else m for m in merges or []]
        if set(vocab) != set(gpt2_vocab) or normal != gpt2_merges:
            raise BabyGPTError("Refused: the tokenizer is a BPE other than GPT-2's; Baby GPT reads characters and "
                               "GPT-2's BPE.")
        return GPT2Tokenizer([gpt2_vocab[by_id[i]] for i in range(vocab_size)])
    raise BabyGPTError(f"Refused: a {kind!r} tokenizer; Baby GPT reads characters and GPT-2's BPE.")


def import_hf(store: RunStore, folder: str | Path, limits: ModelLimits, owner: str | None = None,
              quota: DiskQuota | None = None, name: str | None = None) -> RunInfo:
    """Record a GPT-2-shaped ``transformers`` folder as a finished run. Sizes come from config.json and the
    safetensors header, checked against ``limits`` (and the owner's disk quota) before a tensor is read."""
    folder = Path(folder)
    root = _check_folder(folder)
    config = model_config_from_gpt2(_read_json(folder, "config.json"))
    limits.check(config, IMPORT_BATCH)
    weights = root / WEIGHTS_FILE
    if quota is not None:
        quota.check(store, owner, weights.stat().st_size, f"Importing {folder.name}")
    _check_header(_header(weights), config)
    tokenizer = _tokenizer_from_folder(root, config.vocab_size)
    try:
        tensors = {_unprefixed(k): v for k, v in load_file(str(weights)).items() if not k.endswith(BUFFERS)}
    except Exception as exc:
        raise BabyGPTError(f"Refused: {WEIGHTS_FILE} could not be read ({exc}).") from exc
    config = settle_imported(config, tensors)
    model = build_model(config)
    model.load_state_dict(from_gpt2(tensors, config), strict=True)
    train = TrainConfig(batch_size=IMPORT_BATCH).validate()  # what a fine-tune starts from; the form may change it
    data = {"name": f"{folder.name} (imported)", "source": "", "sha256": None, "imported_from": "huggingface"}
    document = build_config_document(config, train, tokenizer, data)
    info = store.create_run(name or folder.name, document, data_name=data["name"], status=RunStatus.DONE, owner=owner)
    atomic_write_with(store.run_dir(info.id) / WEIGHTS_FILE, lambda tmp: save_model(model, tmp))
    return store.get(info.id)



# --- the same folders as a .zip (a browser downloads and uploads files, not folders) -------------

FOLDER_FILES = {"config.json", WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "vocab.json", "merges.txt", "generation_config.json", "README.md", "added_tokens.json"}


def export_hf_zip(store: RunStore, run_id: str) -> bytes:
    """The export folder as a .zip of one folder named after the run (what the Runs page's download gives)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_hf(store, run_id, Path(tmp) / run_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:  # safetensors barely compresses
            for path in sorted(folder.iterdir()):
                zf.write(path, arcname=f"{run_id}/{path.name}")
        return buffer.getvalue()


def is_hf_zip(archive: str | Path) -> bool:
    """Whether a .zip holds a Hugging Face folder (its config.json names a model_type) rather than a run archive."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "config.json"]
            if len(names) != 1 or zf.getinfo(names[0]).file_size > TEXT_CAPS["config.json"]:
                return False
            return "model_type" in json.loads(zf.read(names[0]))
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError):
        return False


def import_hf_zip(store: RunStore, archive: str | Path, limits: ModelLimits, max_unpacked: int = 4 << 30,
                  owner: str | None = None, quota: DiskQuota | None = None) -> RunInfo:
    """A Hugging Face folder uploaded as a .zip (its files at the top or in one folder): every member's name and
    declared size checked before anything is unpacked, then imported as a folder."""
    archive = Path(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BabyGPTError(f"Refused: {archive.name} is not a readable zip file ({exc}).") from exc
    with zf, tempfile.TemporaryDirectory(dir=store.home) as tmp:
        members = [m for m in zf.infolist() if not m.is_dir()]
        tops = {m.filename.split("/")[0] for m in members if "/" in m.filename}
        for member in members:
            parts = member.filename.split("/")
            if len(parts) > 2 or (len(parts) == 2 and len(tops) > 1) or parts[-1] not in FOLDER_FILES:
                raise BabyGPTError(f"Refused: unexpected member {member.filename!r}; a model folder holds "
                                   f"{', '.join(sorted(FOLDER_FILES))}.")
        by_name = {m.filename.split("/")[-1]: m for m in members}
        _check_zipped_sizes(zf, by_name, limits)  # from config.json alone, before a byte of the weights is unpacked
        declared = sum(m.file_size for m in members)
        if declared > max_unpacked:
            raise BabyGPTError(f"Refused: it unpacks to {declared / 2**30:.1f} GB, over the {max_unpacked / 2**30:.0f} "
                               "GB limit.")
        if quota is not None:
            quota.check(store, owner, declared, f"Importing {archive.name}")
        folder = Path(tmp) / (tops.pop() if tops else "model")
        folder.mkdir()
        for member in members:
            with zf.open(member) as source, open(folder / member.filename.split("/")[-1], "wb") as target:
                copied = _copy_at_most(source, target, member.file_size)
                if copied != member.file_size:
                    raise BabyGPTError(f"Refused: {member.filename} is not the size its zip entry declares.")
        return import_hf(store, folder, limits, owner=owner, name=archive.stem)


def _check_zipped_sizes(zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], limits: ModelLimits) -> None:
    """The model config.json describes must fit the server, and the weights file must be no larger than that model
    in float32 (plus its header): a crafted zip cannot make the server unpack more than the model it claims."""
    config_entry, weights_entry = by_name.get("config.json"), by_name.get(WEIGHTS_FILE)
    if config_entry is None or weights_entry is None:
        missing = "config.json" if config_entry is None else WEIGHTS_FILE
        raise BabyGPTError(f"Refused: the zip has no {missing}; a model folder needs config.json and {WEIGHTS_FILE}.")
    if config_entry.file_size > TEXT_CAPS["config.json"]:
        raise BabyGPTError("Refused: config.json is larger than such a file needs.")
    try:
        config_json = json.loads(zf.read(config_entry))
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise BabyGPTError(f"Refused: config.json is not valid JSON ({exc}).") from exc
    config = model_config_from_gpt2(config_json if isinstance(config_json, dict) else {})
    limits.check(config, IMPORT_BATCH)
    largest = 4 * sum(math.prod(shape) for shape in gpt2_shapes(config).values()) + WEIGHTS_HEADER_ALLOWANCE
    if weights_entry.file_size > largest:
        raise BabyGPTError(f"Refused: {WEIGHTS_FILE} declares {weights_entry.file_size / 2**20:.0f} MB, more than the "
                           f"model config.json describes can take ({largest / 2**20:.0f} MB in float32).")


WEIGHTS_HEADER_ALLOWANCE = 1 << 20  # a safetensors header: names, shapes and offsets of every tensor


def _copy_at_most(source, target, limit: int) -> int:
    """Copy at most ``limit`` bytes (a lying zip entry cannot fill the disk); returns what the entry held, up to
    one byte past the limit."""
    copied = 0
    while chunk := source.read(min(1 << 20, limit + 1 - copied)):
        target.write(chunk)
        copied += len(chunk)
        if copied > limit:
            break
    return copied
