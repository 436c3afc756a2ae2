"""Which tokenizer for the bundled text: the Lessons page's tokenizer race with its defaults, as JSON.

    python -m bench.tokenizer_race [--data python-docs] [--vocab-sizes 512 1024 2048] [--text-bytes 768000]
                                   [--seeds 3] [--slots 2]

``char``, GPT-2's BPE and BPEs learned from the text, the same model (the ladder's ``gpt`` rung at the race's sizes)
trained on the same bytes of training text with several seeds, queued as jobs of one scheduler and trained in worker
processes ``--slots`` at a time, exactly as the app and ``python -m babygpt race-tokenizers`` do; each entry's
facts, mean and spread in bits per byte and verdict against the best (docs/tokenizers.md records a run).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from babygpt.orchestration.race import race_running
from babygpt.orchestration.tokenizer_race import (
    DEFAULT_VOCAB_SIZES,
    TOKENIZER_RACE_BYTES,
    TokenizerRaceSettings,
    race_report,
    tokenizer_race_plans,
)
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from babygpt.text.datasets import default_dataset, load_corpus
from bench.common import emit, environment


def race(corpus, settings: TokenizerRaceSettings, slots: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        scheduler = Scheduler(RunStore(home), SchedulerSettings(max_jobs=slots))
        start = time.perf_counter()
        plans = tokenizer_race_plans(corpus, settings)
        planned = time.perf_counter() - start
        group = scheduler.submit_group("bench-tokenizer-race-00", plans)
        while race_running(scheduler.store, group):
            time.sleep(0.5)
        wall = time.perf_counter() - start
        return {"plan_s": round(planned, 1), "wall_s": round(wall, 1), "runs": len(plans),
                **race_report(scheduler.store, group)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_dataset())
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=list(DEFAULT_VOCAB_SIZES))
    parser.add_argument("--text-bytes", type=int, default=TOKENIZER_RACE_BYTES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    settings = TokenizerRaceSettings(tuple(args.vocab_sizes), text_bytes=args.text_bytes,
                                     seeds=tuple(range(1, args.seeds + 1)))
    emit({"benchmark": "tokenizer_race", "data": args.data, "text_bytes": args.text_bytes, "seeds": args.seeds,
          "slots": args.slots, "race": race(load_corpus(args.data), settings, args.slots), "env": environment()})


if __name__ == "__main__":
    main()
