"""Training throughput: tokens/s, ms/step, GFLOP/s and MFU, against a lecture-style reference in the same run.

    python -m bench.train_throughput [--config cpu-baby|gpt-py] [--compile] [--device auto] [--dtype auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from babygpt.config import TrainConfig, model_config_for_preset
from babygpt.text.corpus import Split
from babygpt.training import devices
from babygpt.training.placement import prepare
from babygpt.training.trainer import Trainer
from bench.common import CONFIGS, emit, environment, matmul_peak_gflops


# --- the lecture's way: a Python loop over heads and an explicit masked softmax ------------------------
class LectureHead(nn.Module):
    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k, q = self.key(x), self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = self.dropout(F.softmax(wei, dim=-1))
        return wei @ self.value(x)


class LectureBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.heads = nn.ModuleList(LectureHead(n_embd, n_embd // n_head, block_size, dropout) for _ in range(n_head))
        self.proj = nn.Linear(n_embd, n_embd)
        self.drop = nn.Dropout(dropout)
        self.ffwd = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(), nn.Linear(4 * n_embd, n_embd),
                                  nn.Dropout(dropout))
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.drop(self.proj(torch.cat([head(h) for head in self.heads], dim=-1)))
        return x + self.ffwd(self.ln2(x))


class LectureGPT(nn.Module):
    def __init__(self, vocab, n_embd, n_head, n_layer, block_size, dropout):
        super().__init__()
        self.tok = nn.Embedding(vocab, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[LectureBlock(n_embd, n_head, block_size, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.blocks(self.tok(idx) + self.pos(torch.arange(T, device=idx.device)))
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def reference_step(cfg: dict, vocab: int, device: torch.device):
    torch.manual_seed(0)
    model = LectureGPT(vocab, cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["block_size"], cfg["dropout"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.randint(vocab, (200_000,))
    gen = torch.Generator().manual_seed(0)

    def step():
        ix = torch.randint(len(data) - cfg["block_size"], (cfg["batch_size"],), generator=gen)
        x = torch.stack([data[i:i + cfg["block_size"]] for i in ix]).to(device)
        y = torch.stack([data[i + 1:i + cfg["block_size"] + 1] for i in ix]).to(device)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _timed(step, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def interleaved(steppers: dict[str, Callable[[], None]], rounds: int, steps: int, warmup: int,
                device: torch.device) -> dict[str, float]:
    """Median seconds per step of each stepper, timed in alternating rounds so that the drift of a shared
    machine (±30% over minutes here) lands on every variant alike."""
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            times[name].append(_timed(step, steps, device))
    return {name: statistics.median(t) for name, t in times.items()}


def babygpt_trainer(cfg: dict, vocab: int, device_name: str, compile_: bool, dtype: str) -> Trainer:
    model_cfg = model_config_for_preset("gpt", vocab_size=vocab, **{k: cfg[k] for k in
                                                                    ("n_layer", "n_head", "n_embd", "block_size", "dropout")})
    train_cfg = TrainConfig(batch_size=cfg["batch_size"], max_iters=10**6, eval_interval=10**6, device=device_name,
                            compile=compile_, dtype=dtype)
    data = torch.randint(vocab, (200_000,))
    model, placement = prepare(model_cfg, train_cfg)
    return Trainer(model, train_cfg, Split(data, data[:50_000]), placement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", choices=list(CONFIGS), default="cpu-baby")
    parser.add_argument("--steps", type=int, default=0, help="steps per round (default: 20 cpu-baby, 2 gpt-py on CPU)")
    parser.add_argument("--rounds", type=int, default=0, help="alternating timing rounds (default 5; 2 for gpt-py on CPU)")
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="also time with torch.compile")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto (the shipped default) also times float32 beside it")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    device = devices.resolve_device(args.device)
    if device.type == "cpu":
        devices.configure_threads()
    cfg = CONFIGS[args.config]
    vocab = 65
    big = args.config == "gpt-py" and device.type == "cpu"
    steps = args.steps or (2 if big else 20 if device.type == "cpu" else 50)
    rounds = args.rounds or (2 if big else 5)
    warmup = args.warmup or (2 if big else 5 if device.type == "cpu" else 20)  # the heap settles in ~2 big steps
    tokens = cfg["batch_size"] * cfg["block_size"]
    shipped = devices.resolve_dtype(device, args.dtype)
    dtypes = list(dict.fromkeys(["float32", shipped] if args.dtype == "auto" else [shipped]))
    peaks = {d: matmul_peak_gflops(4096 if device.type == "cuda" else 1024, device=device.type, dtype=getattr(torch, d))
             for d in dtypes}
    result = {"benchmark": "train_throughput", "config": args.config, **cfg, "vocab_size": vocab,
              "device": devices.describe(device), "shipped_dtype": shipped, "env": environment(),
              "timing": f"median of {rounds} alternating rounds of {steps} steps",
              "matmul_peak_gflops": {d: round(p, 1) for d, p in peaks.items()}}
    trainers: dict[str, tuple[str, Trainer]] = {}
    for dtype in dtypes:
        for compiled in (False, True) if args.compile else (False,):
            label = dtype + ("_compiled" if compiled else "")
            trainers[label] = dtype, babygpt_trainer(cfg, vocab, args.device, compiled, dtype)
    steppers = {label: (lambda t=t: t._train_step(1e-3)) for label, (_, t) in trainers.items()}  # the step Trainer.run makes
    first_step_s = {}
    for label, step in steppers.items():  # a compiled model compiles in its first step: a run pays that too
        start = time.perf_counter()
        step()
        first_step_s[label] = time.perf_counter() - start
    if not args.no_reference:
        # The lecture's code, fp32 as written, in the same process (so with the same allocator setting).
        steppers["lecture_reference"] = reference_step(cfg, vocab, device)
    seconds = interleaved(steppers, rounds, steps, warmup, device)
    for label, (dtype, trainer) in trainers.items():
        sec = seconds[label]
        flops = trainer.model.flops_per_token() * tokens / sec
        result[label] = {"tokens_per_sec": round(tokens / sec, 1), "ms_per_step": round(sec * 1000, 2),
                         "gflops": round(flops / 1e9, 1), "mfu": round(flops / 1e9 / peaks[dtype], 3),
                         "compiled": trainer.forward is not trainer.model,
                         "first_step_s": round(first_step_s[label], 2)}
        eager = seconds.get(dtype)
        if label.endswith("_compiled") and eager and eager > sec:
            # steps after which compiling has paid for its first step: shorter runs are faster eager
            result[label]["break_even_steps"] = round((first_step_s[label] - first_step_s[dtype]) / (eager - sec))
    # The floor no implementation beats at a precision: the step's matmul FLOPs at the measured peak.
    per_token = next(iter(trainers.values()))[1].model.flops_per_token()
    result["matmul_floor_tokens_per_sec"] = {d: round(p * 1e9 / per_token, 1) for d, p in peaks.items()}
    if not args.no_reference:
        ref = seconds["lecture_reference"]
        result["lecture_reference"] = {"tokens_per_sec": round(tokens / ref, 1), "ms_per_step": round(ref * 1000, 2)}
        result["speedup_vs_reference"] = {label: round(ref / seconds[label], 2) for label in trainers}
    emit(result)


if __name__ == "__main__":
    main()
