"""Take the features anywhere: an SAE written in SAELens's folder format (``cfg.json`` and
``sae_weights.safetensors``), which SAELens loads with ``SAE.load_from_disk(folder)`` and Neuronpedia accepts.

The fields are SAELens 6's for its ``topk`` architecture (``sae_lens/saes/sae.py`` ``SAEConfig`` and
``sae_lens/saes/topk_sae.py`` ``TopKSAEConfig``): our encoder is theirs with ``apply_b_dec_to_input`` (x − b_dec
before W_enc), no activation normalization, and TopK followed by ReLU, so the same four tensors give the same
features. ``metadata.sae_lens_version`` names the format version we write (6.0.0), so SAELens reads it as its own
format instead of converting an older one. docs/features.md lists every field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from babygpt.errors import BabyGPTError
from babygpt.features.sae import SAEConfig, TopKSAE

CFG_FILE, WEIGHTS_FILE = "cfg.json", "sae_weights.safetensors"  # SAELens's SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
FORMAT_VERSION = "6.0.0"  # the SAELens release whose on-disk format this writes
TENSORS = ("W_enc", "W_dec", "b_enc", "b_dec")


def saelens_config(sae: TopKSAE, model_name: str, context_size: int) -> dict[str, Any]:
    """The ``cfg.json`` SAELens 6 writes for a TopK SAE (``TopKSAEConfig.to_dict()``), with our SAE's numbers."""
    cfg = sae.config
    return {
        "d_in": cfg.d_in,
        "d_sae": cfg.n_features,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "k": cfg.k,
        "rescale_acts_by_decoder_norm": False,
        "architecture": "topk",
        "metadata": {
            "sae_lens_version": FORMAT_VERSION,
            "sae_lens_training_version": FORMAT_VERSION,
            "model_name": model_name,
            "hook_name": cfg.hook_name,
            "hook_head_index": None,
            "context_size": context_size,
            "prepend_bos": False,  # Baby GPT has no beginning-of-text token
            "trained_with": "babygpt",
            "babygpt_config": cfg.to_dict(),
        },
    }


def export_saelens(sae: TopKSAE, folder: Path, model_name: str, context_size: int) -> Path:
    """Write ``folder/cfg.json`` and ``folder/sae_weights.safetensors``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(sae, name).detach().float().contiguous().cpu() for name in TENSORS}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / CFG_FILE).write_text(json.dumps(saelens_config(sae, model_name, context_size), indent=2),
                                   encoding="utf-8")
    return folder


def read_saelens(folder: Path) -> TopKSAE:
    """A TopK SAE from a SAELens folder (ours, or one trained with SAELens on a Baby GPT hook point)."""
    folder = Path(folder)
    try:
        cfg = json.loads((folder / CFG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BabyGPTError(f"The folder has no {CFG_FILE}: it is not a SAELens SAE.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BabyGPTError(f"{CFG_FILE} is not valid JSON ({exc}).") from exc
    if not isinstance(cfg, dict) or cfg.get("architecture") != "topk":
        raise BabyGPTError(f"Only TopK SAEs are read here; this one is {cfg.get('architecture')!r}."
                           if isinstance(cfg, dict) else f"{CFG_FILE} is not a JSON object.")
    if cfg.get("normalize_activations", "none") != "none" or not cfg.get("apply_b_dec_to_input", True):
        raise BabyGPTError("This SAE normalizes its input or skips the decoder bias on it; only the plain TopK "
                           "encoder is read here.")
    hook = str(cfg.get("metadata", {}).get("hook_name", ""))
    parts = hook.split(".")
    if len(parts) != 3 or parts[0] != "blocks" or not parts[1].isdigit() or parts[2][5:] not in ("resid_post", "mlp_out"):
        raise BabyGPTError(f"The SAE reads {hook!r}; Baby GPT's SAEs read blocks.L.hook_resid_post or hook_mlp_out.")
    config = SAEConfig(d_in=int(cfg["d_in"]), n_features=int(cfg["d_sae"]), k=int(cfg["k"]), layer=int(parts[1]),
                       hook=parts[2][5:]).validate()
    sae = TopKSAE(config)
    try:
        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise BabyGPTError(f"{WEIGHTS_FILE} cannot be read ({exc}).") from exc
    expected = {name: tuple(getattr(sae, name).shape) for name in TENSORS}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    if found != expected:
        raise BabyGPTError(f"{WEIGHTS_FILE} holds {found}, but the config needs {expected}.")
    with torch.no_grad():
        for name in TENSORS:
            getattr(sae, name).copy_(tensors[name].float())
    return sae.eval()
