"""``python -m babygpt race-tokenizers``: which tokenizer for your text, from a terminal. The race is queued as jobs
of a scheduler on the run store (as the Lessons page queues it), followed on stderr, and its verdicts printed as one
JSON object on stdout; Ctrl-C stops it and prints what it measured so far."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from babygpt.orchestration.tokenizer_race import (
    DEFAULT_VOCAB_SIZES,
    TOKENIZER_RACE_BYTES,
    TokenizerRaceSettings,
    race_report,
    tokenizer_race_plans,
)
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.store.runs import RunStore
from babygpt.text.bpe import DEFAULT_SPLIT, SPLIT_NAMES, split_of
from babygpt.text.datasets import default_dataset, load_corpus


def _eprint(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def add_tokenizer_race_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("race-tokenizers", help="which tokenizer for your text: char, GPT-2's BPE and BPEs learned from "
                       "it, trained on the same bytes of text with several seeds, compared in bits per byte")
    p.add_argument("--data", help="dataset name or a path to a UTF-8 text file (default: the bundled text)")
    p.add_argument("--vocab-sizes", type=int, nargs="+", default=list(DEFAULT_VOCAB_SIZES), metavar="N",
                   help="the BPEs learned from the text, raced beside char and GPT-2 (one to three sizes)")
    p.add_argument("--bpe-split", choices=SPLIT_NAMES, default=DEFAULT_SPLIT,
                   help="the pattern that cuts the text into words before the BPEs learn their merges")
    p.add_argument("--text-bytes", type=int, default=TOKENIZER_RACE_BYTES,
                   help="the training compute every entry gets: bytes of training text seen (steps × tokens per step "
                        "× the tokenizer's bytes per token)")
    p.add_argument("--seeds", type=int, default=3, help="runs per tokenizer, one per seed (1 to 5)")
    p.add_argument("--jobs", type=int, default=None, help="runs trained at once (default: BABYGPT_MAX_JOBS or 2)")


def _race_progress(scheduler: Scheduler, group: str) -> str:
    """One line of a race's progress: how many runs ended, and where each training one is."""
    infos = scheduler.store.list_runs(group)
    training = [s for s in scheduler.snapshots([i for i in infos if i.status.active]) if s.step]
    where = ", ".join(f"{s.label} {s.step}/{s.max_iters}" for s in training)
    return f"{sum(i.status.ended for i in infos)} of {len(infos)} runs done" + (f"; training {where}" if where else "")


def cmd_race_tokenizers(args: argparse.Namespace, store: RunStore) -> int:
    """Queue the race as jobs of a scheduler on this run store, follow it on stderr, print its verdicts as JSON;
    Ctrl-C stops every run of the race (their checkpoints kept) and prints what it measured so far."""
    corpus = load_corpus(args.data or default_dataset())
    server = SchedulerSettings.from_env()
    if args.jobs is not None:
        server = dataclasses.replace(server, max_jobs=args.jobs)
    settings = TokenizerRaceSettings(tuple(args.vocab_sizes), split_of(args.bpe_split), args.text_bytes,
                                     tuple(range(1, args.seeds + 1)))
    plans = tokenizer_race_plans(corpus, settings, max_vocab=server.max_bpe_vocab)
    scheduler = Scheduler(store, server)
    group = scheduler.submit_group(None, plans)
    _eprint(f"tokenizer race {group}: {len(plans)} runs queued on {corpus.name}")
    try:
        while any(i.status.active for i in store.list_runs(group)):
            _eprint(_race_progress(scheduler, group))
            time.sleep(2.0)
    except KeyboardInterrupt:
        _eprint("stopping the race (checkpoints are kept)…")
        scheduler.stop_group(Actor(None, admin=True), group)  # this machine's own command line runs the store
        while any(i.status.active for i in store.list_runs(group)):
            time.sleep(0.5)
    finally:
        scheduler.close()
    print(json.dumps(race_report(store, group)))
    return 0
