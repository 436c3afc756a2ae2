"""Kept checkpoints: copies of a run's weights at earlier steps, for asking when something the finished model
knows appeared (``babygpt.features.over_training``).

Which steps are kept is the run's setting (``TrainConfig.keep_checkpoints`` and ``kept_steps``). Each copy is the
weights alone (no optimizer state: nothing resumes from it), as safetensors written atomically like the latest
checkpoint, in the run's own folder as ``kept-<step>.safetensors``, so the user's disk quota counts it and
deleting the run deletes it. A run archive leaves them out (``babygpt.store.archive`` writes the latest checkpoint
only): an archive shares a model, and its kept copies would multiply its size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_model

from babygpt.config import ModelConfig
from babygpt.model.gpt import LanguageModel, build_model
from babygpt.store.checkpoints import atomic_write_with, load_weights
from babygpt.store.runs import RunStore

KEPT_NAME = re.compile(r"kept-(\d{6,})\.safetensors")


def kept_file_name(step: int) -> str:
    """Zero-padded, so a folder listing reads oldest first."""
    return f"kept-{step:06d}.safetensors"


@dataclass(frozen=True)
class KeptCheckpoint:
    step: int
    path: Path


def keep_weights(folder: Path, step: int, model: LanguageModel) -> None:
    """Write a copy of ``model``'s weights at ``step`` (the weights the checkpoint of that step holds)."""
    raw = getattr(model, "_orig_mod", model)
    atomic_write_with(folder / kept_file_name(step), lambda tmp: save_model(raw, tmp))


def kept_checkpoints_in(folder: Path) -> list[KeptCheckpoint]:
    """The copies in a run's folder, oldest step first (half-written temporary files are not listed)."""
    found = []
    for path in folder.glob("kept-*.safetensors") if folder.is_dir() else ():
        match = KEPT_NAME.fullmatch(path.name)
        if match and path.is_file():
            found.append(KeptCheckpoint(int(match.group(1)), path))
    return sorted(found, key=lambda k: k.step)


def kept_checkpoints(store: RunStore, run_id: str) -> list[KeptCheckpoint]:
    """A run's kept copies with their steps, oldest first."""
    return kept_checkpoints_in(store.run_dir(store.get(run_id).id))


def kept_models(store: RunStore, run_id: str, device: str = "cpu") -> list[tuple[int, LanguageModel]]:
    """Each kept copy as a model of the run's configuration, checked name by name and shape by shape like the
    run's own weights, oldest first: what ``history_over_checkpoints`` trains its earlier SAEs on. The one way
    the library and the Features page read kept checkpoints."""
    config: ModelConfig = store.get(run_id).record.model
    models = []
    for kept in kept_checkpoints(store, run_id):
        model = build_model(config)
        load_weights(model, kept.path)
        models.append((kept.step, model.to(device).eval()))
    return models

