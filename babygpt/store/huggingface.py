"""Hugging Face folders: a run exported as a ``transformers`` GPT-2 model, and a GPT-2-shaped folder imported as a run.

An export is the folder a person would upload to the Hub: ``config.json`` (GPT-2's), ``model.safetensors`` in
GPT-2's names and layout, the tokenizer (``tokenizer.json`` with its config; for a BPE learned from the text, GPT-2's
``vocab.json`` and ``merges.txt`` too: ``babygpt.text.bpe_files``) so that ``AutoTokenizer`` gives the run's ids,
``generation_config.json`` with the Generate page's defaults, and a model card (``README.md``). It is written with
safetensors and JSON alone: no ``transformers`` at run time. The mapping of names lives in ``babygpt.model.gpt2_layout``, the
tokenizer's files in ``babygpt.text.tokenizer_export``, the card in ``babygpt.store.model_card``.

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

from babygpt.errors import BabyGPTError
from babygpt.model.llama_layout import export_architecture
from babygpt.store.checkpoints import WEIGHTS_FILE, atomic_write_bytes, atomic_write_with
from babygpt.store.hf_import import import_hf, import_hf_zip, is_hf_zip
from babygpt.store.model_card import model_card
from babygpt.store.runs import RunStore
from babygpt.text.tokenizer_export import tokenizer_files

__all__ = ["export_hf", "export_hf_zip", "import_hf", "import_hf_zip", "is_hf_zip", "model_card", "tokenizer_files"]

GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.8, "top_p": 1.0}  # the Generate page's


# --- export --------------------------------------------------------------------------------------

def export_hf(store: RunStore, run_id: str, folder: str | Path) -> Path:
    """Write run ``run_id`` as a ``transformers`` GPT-2 folder, or a Llama one for rotary positions with RMSNorm and
    SwiGLU (``export_architecture``); a run neither computes is refused, naming why."""
    loaded = store.load(run_id)
    architecture = export_architecture(loaded.model_config)  # refuses what neither computes, before any file
    config_json = architecture.config(loaded.model_config)
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
    card = model_card(loaded.info, loaded.document, steps, vals[-1].loss if vals else None, architecture)
    atomic_write_bytes(folder / "README.md", card.encode("utf-8"))
    tensors = architecture.tensors(loaded.model)
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
