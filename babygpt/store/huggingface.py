"""Hugging Face folders: a run exported as a ``transformers`` GPT-2 model, and a GPT-2-shaped folder imported as a run.

An export is the folder a person would upload to the Hub: ``config.json`` (GPT-2's), ``model.safetensors`` in
GPT-2's names and layout, the tokenizer (``tokenizer.json`` with its config; for a BPE learned from the text, GPT-2's
``vocab.json`` and ``merges.txt`` too: ``babygpt.text.bpe_files``) so that ``AutoTokenizer`` gives the run's ids,
``generation_config.json`` with the Generate page's defaults, and a model card (``README.md``). It is written with
safetensors and JSON alone: no ``transformers`` at run time. The mapping of names lives in ``babygpt.model.gpt2_layout``.

An import (``babygpt.store.hf_import``, whose three entry points this module names too) reads a folder from disk
(GPT-2 small or distilgpt2 on a USB stick, or an export) or its zip: it checks config.json and the safetensors header
against the server's limits before a tensor is read or a model built, never reads a pickle, and records a run the
pages open and that can be trained further on a text of the user's.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.model.gpt2_layout import gpt2_config, to_gpt2
from babygpt.model.sizing import parameter_count
from babygpt.plain_text import markdown_literal
from babygpt.store.checkpoints import WEIGHTS_FILE, atomic_write_bytes, atomic_write_with
from babygpt.store.corpora import portable_source
from babygpt.store.hf_import import import_hf, import_hf_zip, is_hf_zip
from babygpt.store.runs import RunInfo, RunStore
from babygpt.text.bpe_files import bpe_tokenizer_json, hf_vocab, merges_txt
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.measured import ValidationText
from babygpt.text.tokenizer_files import gpt2_files
from babygpt.text.tokenizers import CharTokenizer, GPT2Tokenizer, Tokenizer
from babygpt.units import format_count

__all__ = ["export_hf", "export_hf_zip", "import_hf", "import_hf_zip", "is_hf_zip", "tokenizer_files"]

CHAR_UNKNOWN = "<unk>"  # what a character the run never saw becomes: an id past the model's vocabulary
ENDOFTEXT = "<|endoftext|>"
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.8, "top_p": 1.0}  # the Generate page's


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


def gpt2_tokenizer_json(tokenizer: GPT2Tokenizer) -> dict[str, Any]:
    """GPT-2's byte-level BPE with its ids renumbered: the tokens the run knows get the run's ids 0..V-1, every other
    GPT-2 token an id from V on, which the model refuses (the run refuses a prompt with such a token too)."""
    vocab, merges = gpt2_files()
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
                  "vocab": renumbered, "merges": list(merges)},
    }


def tokenizer_files(tokenizer: Tokenizer, block_size: int) -> dict[str, Any]:
    """The tokenizer's files of an export, by name: JSON documents, and text for merges.txt. A BPE learned from the
    text goes out as GPT-2's folders have theirs too (vocab.json and merges.txt beside tokenizer.json)."""
    extra: dict[str, Any] = {}
    if isinstance(tokenizer, CharTokenizer):
        body, special = char_tokenizer_json(tokenizer), {"unk_token": CHAR_UNKNOWN}
    elif isinstance(tokenizer, GPT2Tokenizer):
        body, special = gpt2_tokenizer_json(tokenizer), {"unk_token": ENDOFTEXT, "bos_token": ENDOFTEXT,
                                                         "eos_token": ENDOFTEXT}
    elif isinstance(tokenizer, BPETokenizer):  # byte-level: every text encodes, so no unknown token is needed
        body, special = bpe_tokenizer_json(tokenizer), {}
        extra = {"vocab.json": hf_vocab(tokenizer), "merges.txt": merges_txt(tokenizer)}
    else:
        raise BabyGPTError(f"A {tokenizer.kind} tokenizer has no transformers export; export the run as a Baby GPT "
                           "archive, which keeps it whole.")
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": block_size,
                "clean_up_tokenization_spaces": False, **special}
    return {"tokenizer.json": body, "tokenizer_config.json": settings, "special_tokens_map.json": special, **extra}


# --- export --------------------------------------------------------------------------------------

def model_card(info: RunInfo, document: dict[str, Any], steps: int, val_loss: float | None) -> str:
    """The README.md of an export: what it was trained on, its size, how well, and how to load it."""
    model, train, data = document["model"], document["train"], document.get("data", {})
    quality = "not evaluated"
    if val_loss is not None:
        validation = ValidationText.from_config(document)
        quality = f"{val_loss:.3f} nats per token" + (f", {validation.bits_per_byte(val_loss):.3f} bits per byte"
                                                      if validation else "")
    params = parameter_count(ModelConfig.from_dict(model))
    text = markdown_literal(portable_source(data) or "an unnamed text")  # a person's names: text, never Markdown
    architecture = (f"GPT-2 (`{model['preset']}` rung): {model['n_layer']} layers, {model['n_head']} heads, n_embd "
                    f"{model['n_embd']}, context {model['block_size']} tokens, activation `{model['activation']}`, "
                    f"{'tied' if model['tie_weights'] else 'untied'} head, {model['positional']} positions")
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [gpt2, babygpt, {document['tokenizer']['kind']}-level]
---

# {markdown_literal(info.name or info.id)}

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

{_tokenizer_note(document['tokenizer']['kind'], model['vocab_size'])} Generation cannot go past
{model['block_size']} tokens (the position table's length).
"""


def _tokenizer_note(kind: str, vocab_size: int) -> str:
    if kind == "bpe":
        return ("The tokenizer is a byte-level BPE learned from the training text: every text encodes, since every "
                "character is some bytes and each byte is a token. `vocab.json` and `merges.txt` are GPT-2's form of "
                "it; they give the same ids only where the text is cut by GPT-2's pattern (`tokenizer.json` is "
                "exact).")
    known = "characters" if kind == "char" else "GPT-2 tokens"
    return (f"The tokenizer knows only the {known} of the training text: anything else gets an id at or past the "
            f"vocabulary size ({vocab_size}), which the model refuses.")


def _prompt_example(document: dict[str, Any]) -> str:
    if document["tokenizer"]["kind"] == "char":
        chars = [c for c in document["tokenizer"]["chars"] if c.isalpha()]
        return "".join(chars[:1]) or " "
    return "The"


def export_hf(store: RunStore, run_id: str, folder: str | Path) -> Path:
    """Write run ``run_id`` as a ``transformers`` GPT-2 folder; a run GPT-2 cannot compute is refused, naming why."""
    loaded = store.load(run_id)
    config_json = gpt2_config(loaded.model_config)  # refuses what GPT-2 cannot compute, before any file
    tokenizer_json = tokenizer_files(loaded.tokenizer, loaded.model_config.block_size)  # and a tokenizer it cannot
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
        **tokenizer_json,
    }
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        atomic_write_bytes(folder / name, text.encode("utf-8"))
    card = model_card(loaded.info, loaded.document, steps, vals[-1].loss if vals else None)
    atomic_write_bytes(folder / "README.md", card.encode("utf-8"))
    tensors = to_gpt2(loaded.model)
    atomic_write_with(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    return folder


def export_hf_zip(store: RunStore, run_id: str) -> bytes:
    """The export folder as a .zip of one folder named after the run (what the Runs page's download gives)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_hf(store, run_id, Path(tmp) / run_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:  # safetensors barely compresses
            for path in sorted(folder.iterdir()):
                zf.write(path, arcname=f"{run_id}/{path.name}")
        return buffer.getvalue()
