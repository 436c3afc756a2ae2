"""A BPE learned from a text written without spaces (here, random characters of 300 common CJK ideographs), as JSON.

    python -m bench.bpe_no_spaces [--vocab-size 1024] [--sizes 20000 60000]

Pre-split or not, such a text is one long "word" that every merge reads again, so the time to learn grows with the
square of its length. ``unbounded`` learns the merges from the first ``--sizes`` characters whole;
``as_the_app_does`` is ``train_bpe`` on a 900 kB text, which learns from its first
``MAX_LEARN_BYTES[False]`` bytes of long stretches (``babygpt.text.bpe.learning_text``; docs/tokenizers.md).
"""

from __future__ import annotations

import argparse
import random
import time

from babygpt.text import bpe_fast
from babygpt.text.bpe import MAX_LEARN_BYTES, train_bpe, utf8, word_counts
from bench.common import emit, environment


def no_spaces(n_chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(chr(0x4E00 + rng.randrange(300)) for _ in range(n_chars))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 60_000])
    args = parser.parse_args()
    unbounded = []
    for n in args.sizes:
        text = no_spaces(n)
        start = time.perf_counter()
        bpe_fast.learn_merges(word_counts(text, "gpt4"), args.vocab_size)
        unbounded.append({"bytes": len(utf8(text)), "seconds": round(time.perf_counter() - start, 2)})
    text = no_spaces(300_000)
    start = time.perf_counter()
    bpe = train_bpe(text, args.vocab_size, "gpt4")
    emit({"benchmark": "bpe_no_spaces", "vocab_size": args.vocab_size, "split": "gpt4", "unbounded": unbounded,
          "as_the_app_does": {"text_bytes": bpe.text_bytes, "learned_bytes": bpe.learned_bytes,
                              "bound": MAX_LEARN_BYTES[False], "tokens": bpe.vocab_size,
                              "seconds": round(time.perf_counter() - start, 2)},
          "env": environment()})


if __name__ == "__main__":
    main()
