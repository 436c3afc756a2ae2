"""Checkpoint files: written atomically, read back without trusting them.

Every file is written to a temporary name and renamed into place, so a crash leaves the previous
checkpoint, never half of a new one. Weights are safetensors checked name by name and shape by shape
against the model; the trainer state loads with ``weights_only`` so no pickled code ever runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_model

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import LanguageModel, build_model

WEIGHTS_FILE, TRAINER_FILE = "model.safetensors", "trainer.pt"
INITIAL_WEIGHTS_FILE = "init.safetensors"  # a fine-tune's starting point: another run's weights, until step 0 runs


def atomic_write_with(path: Path, writer: Callable[[str], None]) -> None:
    """Let ``writer(tmp_path)`` produce the file, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write_with(path, write)


def save_checkpoint(folder: Path, model: torch.nn.Module, trainer_state: dict[str, Any]) -> None:
    """Weights first, then the trainer state: a resume reads the step from trainer.pt, so a crash
    between the two renames at worst pairs older trainer state with newer weights of the same run."""
    raw = getattr(model, "_orig_mod", model)
    atomic_write_with(folder / WEIGHTS_FILE, lambda tmp: save_model(raw, tmp))
    atomic_write_with(folder / TRAINER_FILE, lambda tmp: torch.save(trainer_state, tmp))


def read_checkpoint_files(folder: Path) -> tuple[bytes, bytes]:
    """The checkpoint's two files as bytes, to send to a machine that does not share this disk."""
    return (folder / WEIGHTS_FILE).read_bytes(), (folder / TRAINER_FILE).read_bytes()


def write_checkpoint_files(folder: Path, weights: bytes, trainer_state: bytes) -> None:
    """Put a checkpoint received as bytes in place, in the same order and as atomically as ``save_checkpoint``."""
    atomic_write_bytes(folder / WEIGHTS_FILE, weights)
    atomic_write_bytes(folder / TRAINER_FILE, trainer_state)


def has_checkpoint(folder: Path) -> bool:
    return (folder / WEIGHTS_FILE).is_file() and (folder / TRAINER_FILE).is_file()


WEIGHT_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
TIED_NAMES = {"lm_head.weight", "token_embedding.weight"}


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a model of this config stores, by name, from a model on the meta device (no memory)."""
    with torch.device("meta"):
        return {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}


def check_weights_file(path: Path, expected: dict[str, tuple[int, ...]], tied: bool = False) -> None:
    """Check names, dtypes and shapes from the safetensors header alone, before any tensor is read.

    A file that declares other tensors than the model's (another vocabulary, size or a crafted archive) is
    refused here, so nothing is allocated for it. Tied weights are stored once, under either name.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {name: (tuple(f.get_slice(name).get_shape()), f.get_slice(name).get_dtype()) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise BabyGPTError(f"{path.name} is corrupted or truncated and cannot be read ({exc}).") from exc
    names = set(header)
    if tied and names & TIED_NAMES:
        names |= TIED_NAMES
    missing = [k for k in expected if k not in names]
    unexpected = [k for k in header if k not in expected]
    if missing or unexpected:
        raise BabyGPTError(
            f"{path.name} does not match the run's model (missing: {missing[:3]}, unexpected: {unexpected[:3]}); "
            "it comes from another configuration."
        )
    for name, (shape, dtype) in header.items():
        if dtype not in WEIGHT_DTYPES:
            raise BabyGPTError(f"{path.name}: {name} is stored as {dtype}; weights must be "
                               f"{', '.join(WEIGHT_DTYPES.values())}.")
        if shape != expected[name]:
            raise BabyGPTError(
                f"{path.name}: {name} has shape {shape} but the model needs {expected[name]} — the checkpoint "
                "belongs to another tokenizer, vocabulary or size."
            )


def load_weights(model: LanguageModel, path: Path) -> None:
    """Load safetensors weights after checking every name, dtype and shape against the model."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    check_weights_file(path, expected, tied=model.config.tie_weights and model.config.use_attention)
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise BabyGPTError(f"{path.name} is corrupted or truncated and cannot be read ({exc}).") from exc
    if model.config.tie_weights and model.config.use_attention:
        shared = tensors.get("lm_head.weight", tensors.get("token_embedding.weight"))
        tensors.setdefault("lm_head.weight", shared)
        tensors.setdefault("token_embedding.weight", shared)
    model.load_state_dict(tensors, strict=False)


def initial_weights_in(folder: Path, config: ModelConfig) -> dict[str, torch.Tensor] | None:
    """The weights a fine-tune in ``folder`` starts from, checked against its model; None: it starts fresh."""
    path = folder / INITIAL_WEIGHTS_FILE
    if not path.is_file():
        return None
    model = build_model(config)
    load_weights(model, path)
    return model.state_dict()


def load_trainer_state(path: Path) -> dict[str, Any]:
    """trainer.pt holds tensors and plain data only; ``weights_only`` refuses anything executable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BabyGPTError(
            f"{path.name} was refused: it is corrupted or contains objects other than tensors and plain data "
            f"(possibly code). ({type(exc).__name__})"
        ) from exc
    if not isinstance(state, dict) or "step" not in state or "optimizer" not in state:
        raise BabyGPTError(f"{path.name} is not a Baby GPT trainer state.")
    return state
