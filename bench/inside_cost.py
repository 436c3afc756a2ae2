"""What the look-inside measurements cost on this machine, for the app's default run (4 layers × 128, block 64,
the Python reference in characters) and optionally the lecture's size: head types, one recorded evaluation's scores,
the logit lens on a 40-token prompt, and the full ablation (every head by zero and by mean, every layer's attention
and feed-forward). Each is cached per checkpoint by the app: this is the price of the first look.

    python -m bench.inside_cost [--configs default gpt-py] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from babygpt.config import ModelConfig, model_config_for_preset
from babygpt.interpret.inside import head_scores, scores_during_training
from babygpt.interpret.looking import (
    MEASURE_FLOPS,
    ablation_passes,
    ablation_view,
    lens_view,
    measurement_windows,
)
from babygpt.model.gpt import build_model
from babygpt.model.sizing import parameter_count
from babygpt.text import datasets
from babygpt.text.tokenizers import CharTokenizer
from babygpt.training import devices
from bench.common import CONFIGS, emit, environment


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def measure(name: str, config: ModelConfig, tokenizer: CharTokenizer, val: torch.Tensor, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model(config).eval()
    windows = measurement_windows(val, config, passes=2)
    ablation_windows = measurement_windows(val, config, ablation_passes(config))
    prompt = val[:40].tolist()
    return {
        "config": name, "parameters": parameter_count(config),
        "head_types_ms": timed(lambda: head_scores(model, windows[:, :-1]), repeats),
        "head_types_tokens": int(windows[:, :-1].numel()),
        "recorded_per_evaluation_ms": timed(lambda: scores_during_training(model, prompt[:24]), repeats),
        "logit_lens_40_tokens_ms": timed(lambda: lens_view(model, tokenizer, prompt), repeats),
        "ablation_ms": timed(lambda: ablation_view(model, tokenizer, ablation_windows), max(1, repeats // 3)),
        "ablation_tokens": int(ablation_windows[:, 1:].numel()), "ablation_passes": ablation_passes(config),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["default"], choices=["default", *CONFIGS])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    devices.configure_threads()
    text = datasets.load_corpus(datasets.default_dataset()).text
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    val = ids[int(len(ids) * 0.9):]
    results = []
    for name in args.configs:
        sizes = {} if name == "default" else {k: CONFIGS[name][k] for k in ("n_layer", "n_head", "n_embd", "block_size")}
        config = model_config_for_preset("gpt", vocab_size=tokenizer.vocab_size, **sizes)
        results.append(measure(name, config, tokenizer, val, args.repeats))
    emit({"benchmark": "inside_cost", "env": environment(), "budget_flops": MEASURE_FLOPS, "results": results})


if __name__ == "__main__":
    main()
