"""``python -m babygpt sae …``: train a sparse autoencoder on a finished run, list a run's SAEs, export one in
SAELens's format. Progress goes to stderr; the last stdout line is one JSON object, as for ``train`` and ``eval``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import torch

from babygpt.errors import BabyGPTError
from babygpt.features.cost import SAELimits, estimate_cost
from babygpt.features.fit import DEFAULT_TOKENS, EVAL_TOKENS, fit_sae
from babygpt.features.sae import HOOKS, SAEConfig, TrainProgress
from babygpt.features.saelens import export_saelens
from babygpt.orchestration.plan import encode_corpus
from babygpt.store import features as stored_features
from babygpt.store.corpora import run_corpus
from babygpt.store.runs import RunStore


def _eprint(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def add_sae_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sae", help="sparse autoencoders: the features of a finished run's layer")
    ps = p.add_subparsers(dest="sae_command", required=True)
    t = ps.add_parser("train", help="train an SAE on one layer of a run, over the run's own text")
    t.add_argument("run")
    t.add_argument("--layer", type=int, default=None, help="the block whose output is read (default: the last)")
    t.add_argument("--hook", choices=HOOKS, default="resid_post",
                   help="resid_post: the residual stream after the block; mlp_out: the block's feed-forward output")
    t.add_argument("--features", type=int, default=None, help="dictionary size (default 8× the width; 4×–32× usual)")
    t.add_argument("--k", type=int, default=32, help="features active per token (default 32)")
    t.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help=f"activations to train on (default {DEFAULT_TOKENS:,})")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--force", action="store_true", help="train again even if this SAE is stored and current")
    ls = ps.add_parser("list", help="the SAEs a run keeps, with their figures")
    ls.add_argument("run")
    e = ps.add_parser("export", help="an SAE in SAELens's folder format (cfg.json, sae_weights.safetensors)")
    e.add_argument("run")
    e.add_argument("sae", help="its name, as `sae list` shows it (e.g. L3-resid_post-1024-k32)")
    e.add_argument("folder", help="the folder to write (new or empty)")


def _summary(stored: stored_features.StoredSAE) -> dict:
    return {"run": stored.run_id, "sae": stored.name, "config": stored.config.to_dict(),
            "figures": stored.figures.to_dict(), "trained_tokens": stored.trained_tokens,
            "elapsed_s": round(stored.elapsed_s, 2), "stopped": stored.stopped, "stale": stored.stale}


def cmd_sae(args: argparse.Namespace, store: RunStore) -> int:
    if args.sae_command == "list":
        for stored in stored_features.list_saes(store, args.run):
            print(json.dumps(_summary(stored)))
        return 0
    if args.sae_command == "export":
        stored = stored_features.get(store, args.run, args.sae)
        return _export(store, stored, args.folder)
    return _train(args, store)


def _export(store: RunStore, stored: stored_features.StoredSAE, folder: str) -> int:
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BabyGPTError(f"{folder} exists and is not an empty folder; choose a new one.")
    sae, _ = stored.load()
    info = store.get(stored.run_id)
    export_saelens(sae, target, f"babygpt/{info.label}", info.record.model.block_size)
    print(json.dumps({"run": stored.run_id, "sae": stored.name, "folder": str(target)}))
    return 0


def _train(args: argparse.Namespace, store: RunStore) -> int:
    loaded = store.load(args.run)
    model_config = loaded.model_config
    if not model_config.use_attention:
        raise BabyGPTError("The bigram model has no layers to read features from: pick a run with attention.")
    layer = model_config.n_layer - 1 if args.layer is None else args.layer
    width = model_config.n_embd
    settings = dict(d_in=width, n_features=args.features or 8 * width, k=args.k, layer=layer, hook=args.hook,
                    epochs=args.epochs, seed=args.seed)
    if args.lr is not None:
        settings["lr"] = args.lr
    config = SAEConfig(**settings).validate()
    kept = stored_features.find(store, loaded.info.id, config)
    if kept is not None and not kept.stale and not kept.stopped and not args.force:
        _eprint(f"{kept.name} is already trained on these weights (--force to train it again).")
        print(json.dumps({**_summary(kept), "cached": True}))
        return 0
    limits = SAELimits.from_env()
    cost = estimate_cost(model_config, config, args.tokens + EVAL_TOKENS, cores=_threads(), eval_tokens=EVAL_TOKENS)
    limits.check(cost)
    _eprint(f"SAE {stored_features.sae_name(config)} on run {loaded.info.label}: {cost.describe()} estimated")
    ids = encode_corpus(run_corpus(store, loaded.info), loaded.tokenizer)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def progress(p: TrainProgress) -> None:
        _eprint(f"step {p.step:>6}/{p.steps}  nmse {p.loss:.4f}  dead {p.dead}  {p.elapsed_s:.1f}s")

    version = store.weights_version(loaded.info.id)
    fitted = fit_sae(loaded.model, ids, config, tokens=args.tokens, on_step=progress, should_stop=stop.is_set,
                     on_stage=lambda stage: _eprint(f"{stage}…"))
    kept = stored_features.save(store, loaded.info.id, fitted.sae, fitted.figures, fitted.browse_windows,
                                fitted.tokens, fitted.elapsed_s, fitted.stopped, version)
    print(json.dumps({**_summary(kept), "cached": False}))
    return 0


def _threads() -> int:
    return torch.get_num_threads()
