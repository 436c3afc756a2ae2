"""Sampling throughput at batch 1: tokens/s for 500 new tokens, with and without the KV cache.

    python -m bench.sample_throughput [--config cpu-baby] [--tokens 500] [--run RUN]
"""

from __future__ import annotations

import argparse
import time

import torch

from babygpt.config import model_config_for_preset
from babygpt.model.gpt import build_model
from babygpt.store.runs import RunStore
from babygpt.text.tokenizers import CharTokenizer
from babygpt.training import devices
from babygpt.training.sample import SamplingConfig, generate
from bench.common import CONFIGS, emit, environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", choices=list(CONFIGS), default="cpu-baby")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--run", help="a trained run to sample from instead of a fresh model")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    devices.configure_threads()
    if args.run:
        loaded = RunStore().load(args.run)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        tokenizer = CharTokenizer([chr(c) for c in range(32, 97)])
        cfg = CONFIGS[args.config]
        torch.manual_seed(0)
        model = build_model(model_config_for_preset("gpt", vocab_size=tokenizer.vocab_size,
                                            **{k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")})).eval()
    result = {"benchmark": "sample_throughput", "config": args.run or args.config, "new_tokens": args.tokens,
              "batch": 1, "block_size": model.config.block_size, "env": environment()}
    outputs = {}
    for label, cache in (("kv_cache", True), ("no_cache", False)):
        cfg = SamplingConfig(max_new_tokens=args.tokens, temperature=1.0, seed=1, use_cache=cache)
        generate(model, tokenizer, "A", SamplingConfig(max_new_tokens=20, seed=0, use_cache=cache))
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            outputs[label] = generate(model, tokenizer, "A", cfg)
            best = min(best, time.perf_counter() - t0)
        result[label] = {"tokens_per_sec": round(args.tokens / best, 1), "seconds": round(best, 3)}
    result["speedup"] = round(result["kv_cache"]["tokens_per_sec"] / result["no_cache"]["tokens_per_sec"], 2)
    result["identical_output"] = outputs["kv_cache"] == outputs["no_cache"]
    emit(result)


if __name__ == "__main__":
    main()
