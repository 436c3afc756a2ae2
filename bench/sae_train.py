"""What an SAE costs on the app's default model: 1,024 features (8× the width), k = 32, on a million tokens of
activations of the last block's output of the default 4 layers × 128 model over Tiny Shakespeare, on two cores.
Reading the activations (the model's hooked pass) and training the SAE are timed apart; the figures are read on
held-out windows as the app reads them. The model is the default config freshly initialised from a seed: the
cost does not depend on what it learned.

    python -m bench.sae_train [--tokens 1000000] [--features 1024] [--k 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import torch

from babygpt.config import ModelConfig
from babygpt.features.collect import collect_activations, text_windows
from babygpt.features.cost import estimate_cost
from babygpt.features.fit import EVAL_TOKENS, split_windows
from babygpt.features.metrics import all_figures
from babygpt.features.sae import SAEConfig, train_sae
from babygpt.model.gpt import build_model
from babygpt.text.tokenizers import CharTokenizer
from bench.common import emit, environment, shakespeare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hook", default="resid_post")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    corpus = shakespeare()
    tokenizer = CharTokenizer.from_text(corpus.text)
    model_config = ModelConfig(vocab_size=tokenizer.vocab_size)
    model = build_model(model_config).eval()
    layer = model_config.n_layer - 1
    config = SAEConfig(d_in=model_config.n_embd, n_features=args.features, k=args.k, layer=layer, hook=args.hook)
    ids = torch.tensor(tokenizer.encode(corpus.text))
    windows = text_windows(ids, model_config.block_size, args.tokens + EVAL_TOKENS)
    train_windows, eval_windows = split_windows(windows, EVAL_TOKENS)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    acts = collect_activations(model, train_windows, config.hook_name).acts[: args.tokens]
    collect_s = time.perf_counter() - start
    print(f"read {acts.size(0):,} activations in {collect_s:.1f}s", file=sys.stderr, flush=True)
    result = train_sae(acts, config)
    held = collect_activations(model, eval_windows, config.hook_name)
    figures = all_figures(model, result.sae, held.acts, held.windows)
    estimate = estimate_cost(model_config, config, args.tokens + EVAL_TOKENS, cores=args.threads,
                             eval_tokens=EVAL_TOKENS)
    emit({
        "bench": "sae_train", **environment(), "threads": args.threads,
        "model": f"{model_config.n_layer}x{model_config.n_embd}", "hook": config.hook_name,
        "features": args.features, "k": args.k, "tokens": int(acts.size(0)), "steps": result.steps,
        "collect_s": round(collect_s, 1), "train_s": round(result.elapsed_s, 1),
        "total_s": round(collect_s + result.elapsed_s, 1),
        "train_tokens_per_s": round(acts.size(0) / result.elapsed_s),
        # the SAE's matmuls (about 12·C·F FLOPs a token) per second and thread: babygpt.features.cost.FLOPS_PER_CORE
        "sae_gflops_per_thread": round(acts.size(0) * 12 * config.d_in * config.n_features / result.elapsed_s
                                       / args.threads / 1e9, 1),
        "estimated_s": round(estimate.seconds, 1), "estimated_memory_mb": round(estimate.memory_bytes / 2**20),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # other work on this machine
        "cpu_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "variance_explained": round(figures.variance_explained, 4), "l0": round(figures.l0, 2),
        "dead": figures.dead, "dense": figures.dense, "loss_recovered": round(figures.loss_recovered, 4),
    })


if __name__ == "__main__":
    main()
