"""Training a byte-level BPE: the fast trainer on 1 MB, the readable one on small texts, and where it stops being
fast enough to run while a person waits.

    python -m bench.bpe_train [--vocab-size 4096] [--repeats 2] [--wait 2.0]

The fast trainer (Hugging Face ``tokenizers``) learns Tiny Shakespeare (1.1 MB) to ``--vocab-size`` tokens with
each pre-split, and without one on as much as ``MAX_LEARN_BYTES`` allows (50 kB); the whole text is then
encoded. The readable trainer learns growing prefixes to 512 tokens until one takes longer than ``--wait`` seconds;
``readable_work`` (distinct words' bytes x merges) per second gives the bound ``READABLE_WORK_LIMIT``. Every size
checks that both trainers learn the same merges.
"""

from __future__ import annotations

import argparse
import time

from babygpt.text.bpe import MAX_LEARN_BYTES, readable_work, train_bpe
from babygpt.text.bpe_tokenizer import BPETokenizer
from bench.common import emit, environment, shakespeare


def best_of(repeats: int, job) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = job()
        best = min(best, time.perf_counter() - start)
    return best, result


def fast_rows(text: str, vocab_size: int, repeats: int) -> list[dict]:
    rows = []
    for split in ("gpt4", "gpt2", None):
        seconds, bpe = best_of(repeats, lambda split=split: train_bpe(text, vocab_size, split, "fast"))
        tokenizer = BPETokenizer(bpe)
        encode_s, ids = best_of(repeats, lambda tokenizer=tokenizer: tokenizer.encode(text))
        rows.append({"split": split or "none", "text_bytes": bpe.text_bytes, "learned_bytes": bpe.learned_bytes,
                     "vocab_size": bpe.vocab_size, "train_s": round(seconds, 3), "encode_s": round(encode_s, 3),
                     "bytes_per_token": round(bpe.text_bytes / len(ids), 3)})
    return rows


READABLE_VOCAB = 512


def readable_rows(text: str, wait: float) -> list[dict]:
    rows, chars, vocab_size = [], 2_500, READABLE_VOCAB
    while chars <= len(text):
        part = text[:chars]
        seconds, readable = best_of(1, lambda part=part: train_bpe(part, READABLE_VOCAB, "gpt4", "readable"))
        work = readable_work(part, vocab_size, "gpt4")
        rows.append({"text_bytes": readable.text_bytes, "vocab_size": vocab_size, "train_s": round(seconds, 3),
                     "work": work, "work_per_s": round(work / seconds),
                     "same_as_fast": readable == train_bpe(part, vocab_size, "gpt4", "fast")})
        if seconds > wait:
            break
        chars *= 2
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--wait", type=float, default=2.0, help="seconds a person waits for the readable trainer")
    args = parser.parse_args()
    text = shakespeare().text
    readable = readable_rows(text, args.wait)
    fast_enough = [r for r in readable if r["train_s"] <= args.wait]
    emit({"benchmark": "bpe_train", "corpus": "tinyshakespeare", "fast": fast_rows(text, args.vocab_size, args.repeats),
          "unsplit_learn_bytes": MAX_LEARN_BYTES[False], "readable": readable, "wait_s": args.wait,
          "readable_fast_enough_up_to_bytes": fast_enough[-1]["text_bytes"] if fast_enough else 0,
          "readable_work_per_s": min(r["work_per_s"] for r in readable), "env": environment()})


if __name__ == "__main__":
    main()
