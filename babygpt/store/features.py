"""A run's sparse autoencoders, kept in its folder: ``sae/<name>/sae.safetensors`` (the SAE's four tensors and
the windows of text its figures were read on) and ``sae/<name>/sae.json`` (its config, figures and what it was
trained on).

One SAE per (layer, hook, features, k) of a run: ``name`` says which (``L2-resid_post-1024-k32``), so asking again
for the same settings finds the stored one (``find``) instead of training it twice, until the run's weights change
(a resumed run): then it is stale and trains again. Reads are checked like checkpoints (names, shapes, dtypes from
the header) and cached by file time, so a page asking every rerun reads the file once. While an SAE trains as
a job of the scheduler, ``job.json`` beside it holds the request and the worker's progress.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from babygpt.errors import BabyGPTError
from babygpt.features.metrics import SAEFigures
from babygpt.features.sae import SAEConfig, TopKSAE
from babygpt.store.checkpoints import atomic_write_bytes, atomic_write_with
from babygpt.store.runs import RunStore

SAE_DIR, WEIGHTS_FILE, CONFIG_FILE = "sae", "sae.safetensors", "sae.json"
JOB_FILE = "job.json"  # a training job's request and progress, beside what it trains (``babygpt.server.sae_jobs``)
FORMAT_VERSION = 1
TENSORS = ("W_enc", "W_dec", "b_enc", "b_dec")


def sae_name(config: SAEConfig) -> str:
    """The folder name of an SAE's settings: the same settings, the same folder."""
    return f"L{config.layer}-{config.hook}-{config.n_features}-k{config.k}"


@dataclass(frozen=True)
class StoredSAE:
    """An SAE as its run keeps it; ``stale``: the run's weights changed after it was trained."""

    run_id: str
    name: str
    config: SAEConfig
    figures: SAEFigures
    trained_tokens: int
    elapsed_s: float
    stopped: bool
    created_at: float
    weights_version: float | None  # the run's weights (their file time) the SAE was trained on
    stale: bool
    folder: Path

    def load(self) -> tuple[TopKSAE, torch.Tensor]:
        """(the SAE, its browsing windows (W, T)), read once per file version."""
        path = self.folder / WEIGHTS_FILE
        return _read_weights(str(path), path.stat().st_mtime_ns, self.config)


def features_dir(store: RunStore, run_id: str) -> Path:
    return store.run_dir(store.get(run_id).id) / SAE_DIR


def save(store: RunStore, run_id: str, sae: TopKSAE, figures: SAEFigures, browse_windows: torch.Tensor,
         trained_tokens: int, elapsed_s: float, stopped: bool, weights_version: float | None) -> StoredSAE:
    """Keep an SAE with its run: the weights first, then the JSON that names them (a crash leaves no JSON
    pointing at missing weights)."""
    folder = features_dir(store, run_id) / sae_name(sae.config)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(sae, name).detach().float().contiguous().cpu() for name in TENSORS}
    tensors["browse_windows"] = browse_windows.to(torch.int64).contiguous().cpu()
    atomic_write_with(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    document = {"format": FORMAT_VERSION, "config": sae.config.to_dict(), "figures": figures.to_dict(),
                "trained_tokens": trained_tokens, "elapsed_s": elapsed_s, "stopped": stopped,
                "created_at": time.time(), "weights_version": weights_version}
    atomic_write_bytes(folder / CONFIG_FILE, json.dumps(document, indent=2).encode())
    return _stored(store, store.get(run_id).id, folder)


def _stored(store: RunStore, run_id: str, folder: Path) -> StoredSAE:
    try:
        document: Any = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BabyGPTError(f"The SAE {folder.name} of run {run_id} cannot be read ({type(exc).__name__}).") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise BabyGPTError(f"The SAE {folder.name} of run {run_id} was written by another version.")
    trained_on = document.get("weights_version")
    current = store.weights_version(run_id)
    return StoredSAE(run_id, folder.name, SAEConfig.from_dict(document["config"]),
                     SAEFigures.from_dict(document.get("figures", {})), int(document.get("trained_tokens", 0)),
                     float(document.get("elapsed_s", 0.0)), bool(document.get("stopped", False)),
                     float(document.get("created_at", 0.0)), trained_on,
                     trained_on is not None and current is not None and current != trained_on, folder)


def list_saes(store: RunStore, run_id: str) -> list[StoredSAE]:
    """The run's SAEs, newest first; a damaged one is left out (``find`` names what is wrong with it)."""
    root = features_dir(store, run_id)
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
            try:
                out.append(_stored(store, store.get(run_id).id, folder))
            except BabyGPTError:
                continue
    return sorted(out, key=lambda s: -s.created_at)


def find(store: RunStore, run_id: str, config: SAEConfig) -> StoredSAE | None:
    """The stored SAE of these settings, if one was trained (stale or not: the caller decides)."""
    folder = features_dir(store, run_id) / sae_name(config)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        return None
    return _stored(store, store.get(run_id).id, folder)


def get(store: RunStore, run_id: str, name: str) -> StoredSAE:
    """A stored SAE by its name, or a sentence listing the run's SAEs."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise BabyGPTError(f"{name!r} is not an SAE name.")
    folder = features_dir(store, run_id) / name
    if not (folder / CONFIG_FILE).is_file():
        names = ", ".join(s.name for s in list_saes(store, run_id)) or "none yet"
        raise BabyGPTError(f"Run {run_id} has no SAE named {name!r} (it has: {names}).")
    return _stored(store, store.get(run_id).id, folder)


def delete(store: RunStore, run_id: str, name: str) -> None:
    shutil.rmtree(get(store, run_id, name).folder)


@lru_cache(maxsize=8)
def _read_weights(path: str, _mtime_ns: int, config: SAEConfig) -> tuple[TopKSAE, torch.Tensor]:
    """The SAE's tensors checked by name and shape against its config before they are read."""
    sae = TopKSAE(config)
    expected = {name: tuple(getattr(sae, name).shape) for name in TENSORS}
    try:
        with safe_open(path, framework="pt") as f:
            found = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
            windows_shape = found.pop("browse_windows", None)
            if found != expected or windows_shape is None or len(windows_shape) != 2:
                raise BabyGPTError(f"{Path(path).name} does not match its config (it holds {sorted(found)}).")
            tensors = {name: f.get_tensor(name) for name in TENSORS}
            windows = f.get_tensor("browse_windows").long()
    except BabyGPTError:
        raise
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise BabyGPTError(f"{Path(path).name} is corrupted or truncated ({exc}).") from exc
    with torch.no_grad():
        for name in TENSORS:
            getattr(sae, name).copy_(tensors[name].float())
    return sae.eval(), windows


def job_file(store: RunStore, run_id: str, config: SAEConfig) -> Path:
    """Where the job training these settings keeps its request and progress (its folder made if needed)."""
    folder = features_dir(store, run_id) / sae_name(config)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / JOB_FILE


def write_job(path: Path, job: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(job, indent=2).encode())


def read_job(path: Path) -> dict[str, Any]:
    """A job's request and progress; an unreadable file reads as empty (a job being written, or none)."""
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return job if isinstance(job, dict) else {}


def update_job(path: Path, **changes: Any) -> None:
    """Merge ``changes`` into the job file. One writer at a time: the worker while it runs, the server before."""
    write_job(path, {**read_job(path), **changes})
