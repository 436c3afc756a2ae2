"""What one computation of a challenge's board costs when every entry holds a large BPE.

    python -m bench.challenge_board [--entries 30] [--vocab 8192] [--repeats 10]

A challenge on Tiny Shakespeare with the teacher's BPE (``--vocab`` tokens, GPT-4's pre-split) gets ``--entries``
finished and scored entries, recorded in a run store as workers leave them (no training). The board is then
computed ``--repeats`` times, as ``Classroom.board`` does at most once a second for every viewer together: the
median and the fastest time are reported, with the parts the BPE makes expensive: reading the runs, whose configs
hold the merges, and fingerprinting one entry's tokenizer (the board does it once per list of merges the store
hands over, and the store hands the entries that share the challenge's merges one list). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time

from babygpt.config import TrainConfig, tokens_per_step
from babygpt.orchestration.challenge import build_board, challenge_tokenizer, set_rules, stored_bpe_sha256
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.runs import create_run
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.bpe import BPESettings
from babygpt.text.datasets import load_corpus

STEPS = 2000


def timed(action, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=30)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    corpus = load_corpus("tinyshakespeare")
    train = TrainConfig(max_iters=STEPS, eval_interval=100, batch_size=12, device="cpu")
    started = time.perf_counter()
    probe = plan_training(corpus, "char", "gpt", train, block_size=64, n_layer=2, n_head=2, n_embd=64)
    rules = set_rules(corpus, "bpe", 0.1, STEPS * tokens_per_step(probe.model_config, probe.train_config),
                      bpe=BPESettings(args.vocab, "gpt4"))
    set_s = time.perf_counter() - started
    plan = plan_training(corpus, challenge_tokenizer(rules, corpus), "gpt", train, block_size=64, n_layer=2,
                         n_head=2, n_embd=64)
    store = RunStore(tempfile.mkdtemp(prefix="babygpt-bench-"))
    record = store.create_challenge(rules.to_dict())
    for i in range(args.entries):
        plan.train_config = dataclasses.replace(train, seed=1337 + i)
        info = create_run(store, plan, f"entry {i}", owner=f"student-{i:02d}", status=RunStatus.DONE,
                          challenge={"id": record.id, "check_of": None})
        store.log_metrics(info.id, [MetricRow(STEPS, "train", 1.0)])
        store.log_score(info.id, STEPS, 3.0 + i / 100, rules.held_out_tokens)

    board = timed(lambda: build_board(store, record, lambda owner: owner), args.repeats)
    read = timed(lambda: store.runs_for_challenge(record.id), args.repeats)
    runs = store.runs_for_challenge(record.id)
    fingerprint = timed(lambda: stored_bpe_sha256(runs[0].record.tokenizer.described), args.repeats)
    ranked = len(build_board(store, record, lambda owner: owner).standings)
    print(json.dumps({
        "entries": args.entries, "vocab": rules.tokenizer_vocab, "ranked": ranked,
        "config_kb": round(len(json.dumps(runs[0].config)) / 1024, 1), "set_challenge_s": round(set_s, 2),
        "board_s": {"median": round(statistics.median(board), 4), "fastest": round(min(board), 4)},
        "read_runs_s": {"median": round(statistics.median(read), 4), "fastest": round(min(read), 4)},
        "fingerprint_one_entry_s": {"median": round(statistics.median(fingerprint), 4),
                                    "fastest": round(min(fingerprint), 4)},
    }, indent=1))


if __name__ == "__main__":
    main()
