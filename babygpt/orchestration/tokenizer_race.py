"""The tokenizer race as runs: ``char``, GPT-2's BPE and BPEs learned from the text at a few vocabulary sizes, each
trained by the same model on the same bytes of text with several seeds, planned and validated before anything is
queued (the scheduler trains them as jobs, like the ladder race's), and read back as the lesson's rows
(``babygpt.lessons.tokenizer_race``).

The model is the ladder's top rung (``gpt``) at the race's sizes and learning rate (``babygpt.orchestration.race``);
only the tokenizer and, to see the same text, the number of steps differ between entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from babygpt.config import tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.lessons.race import RaceEntry, race_results
from babygpt.lessons.tokenizer_race import (
    TOKENIZER_RACE,
    Budget,
    EntryFacts,
    against_best,
    tokenizer_name,
    tokenizer_verdict,
    tokenizers_differ,
)
from babygpt.orchestration.plan import TrainingPlan, plan_training, split_corpus
from babygpt.orchestration.race import RACE_SEEDS, RACE_SIZES, RACE_STEPS, race_entries, rung_config, seeded_plans
from babygpt.store.corpora import TextRef, find_text
from babygpt.store.runs import RunInfo, RunStore
from babygpt.text.bpe import DEFAULT_SPLIT, MAX_BPE_VOCAB, BPESettings, check_vocab_size, split_of
from babygpt.text.corpus import Corpus
from babygpt.text.tokenizers import Tokenizer, build_tokenizer, text_bytes

PRESET = "gpt"  # the same model for every entry: the ladder's top rung at the race's sizes
DEFAULT_VOCAB_SIZES = (512, 1024, 2048)
MAX_VOCAB_SIZES = 3  # BPE entries in one race: with char, GPT-2 and three seeds, 15 runs
# The ladder race's budget for char on an ASCII text: 2000 steps of 12 × 32 tokens, one byte each
TOKENIZER_RACE_BYTES = RACE_STEPS * 12 * RACE_SIZES["block_size"]
MAX_RACE_BYTES = 20_000_000  # per entry: with 15 runs, what a class server trains in an afternoon, not a week
MAX_SEEDS = 5

# A tokenizer of a kind, with a BPE's size and pre-split (None for char and gpt2): the app passes its cache, so
# a BPE the Data page learned is not learned again; the CLI builds them from the text
TokenizerSource = Callable[[str, BPESettings | None], Tokenizer]


@dataclass(frozen=True)
class TokenizerRaceSettings:
    """What a person chooses: the BPE sizes (beside char and GPT-2), their pre-split, the bytes of text every entry
    sees, and the seeds."""

    vocab_sizes: tuple[int, ...] = DEFAULT_VOCAB_SIZES
    split: str | None = DEFAULT_SPLIT
    text_bytes: int = TOKENIZER_RACE_BYTES
    seeds: tuple[int, ...] = RACE_SEEDS
    val_fraction: float = 0.1
    sizes: dict[str, int] | None = None  # the model's sizes; None: the ladder race's (RACE_SIZES)

    def validate(self, max_vocab: int = MAX_BPE_VOCAB) -> TokenizerRaceSettings:
        """Every choice checked before a BPE is learned or a run queued; ``max_vocab``: this server's bound."""
        if not 1 <= len(self.vocab_sizes) <= MAX_VOCAB_SIZES:
            raise BabyGPTError(f"Choose from 1 to {MAX_VOCAB_SIZES} BPE vocabulary sizes to race beside char and "
                               f"GPT-2 (got {len(self.vocab_sizes)}).")
        for size in self.vocab_sizes:
            check_vocab_size(size, max_vocab)
        if len(set(self.vocab_sizes)) != len(self.vocab_sizes):
            raise BabyGPTError("Each BPE vocabulary size may be raced once; two are the same.")
        if not 1 <= len(self.seeds) <= MAX_SEEDS or len(set(self.seeds)) != len(self.seeds):
            raise BabyGPTError(f"Race from 1 to {MAX_SEEDS} different seeds (got {len(self.seeds)}).")
        if type(self.text_bytes) is not int or not 1 <= self.text_bytes <= MAX_RACE_BYTES:
            raise BabyGPTError(f"The text each entry sees must be from 1 byte to {MAX_RACE_BYTES:,} bytes "
                               f"(got {self.text_bytes!r}).")
        split_of(self.split)
        return self

    def entries(self) -> list[tuple[str, BPESettings | None]]:
        """The tokenizers raced, in the order the table reads them: char, GPT-2, then the BPEs from the smallest."""
        return [("char", None), ("gpt2", None),
                *(("bpe", BPESettings(size, self.split)) for size in sorted(self.vocab_sizes))]


def _built(corpus: Corpus) -> TokenizerSource:
    return lambda kind, bpe: build_tokenizer(kind, corpus.text, bpe)


def _check_filled(name: str, tokenizer: Tokenizer, filled: dict[int, str]) -> None:
    """Two BPE sizes the text fills to the same vocabulary are one tokenizer raced twice: refused in a sentence."""
    size = tokenizer.vocab_size
    if size in filled:
        raise BabyGPTError(f"This text filled only {size:,} tokens (after that no pair of tokens occurs twice), so "
                           f"{filled[size]} and {name} would be the same tokenizer: choose sizes up to {size:,}.")
    filled[size] = name


@dataclass(frozen=True)
class PlannedEntry:
    """One tokenizer planned once (tokenised, split, measured): its seeds' plans differ in their seed and steps."""

    name: str
    base: TrainingPlan
    bytes_per_token: float  # on the training split itself: what sets its steps


def plan_entry(corpus: Corpus, tokenizer: Tokenizer, settings: TokenizerRaceSettings) -> PlannedEntry:
    """The race's model on this tokenizer, planned once, with its bytes per token on its training split."""
    base = plan_training(corpus, tokenizer, PRESET,
                         rung_config(PRESET, RACE_STEPS, settings.seeds[0], settings.val_fraction),
                         **(settings.sizes or RACE_SIZES))
    name = tokenizer_name({"tokenizer": tokenizer.to_dict(), "model": base.model_config.to_dict()})
    return PlannedEntry(name, base, text_bytes(tokenizer, base.split.train) / len(base.split.train))


def tokenizer_race_plans(corpus: Corpus, settings: TokenizerRaceSettings, source: TokenizerSource | None = None,
                         max_vocab: int = MAX_BPE_VOCAB) -> list[tuple[TrainingPlan, str]]:
    """Every tokenizer × every seed, validated before anything is queued: each entry trains for as many steps as
    make it see ``settings.text_bytes`` of training text. ``source`` builds each tokenizer (the app's cache, or by
    default from the text here)."""
    settings.validate(max_vocab)
    source = source or _built(corpus)
    tokenizers = [(kind, bpe, source(kind, bpe)) for kind, bpe in settings.entries()]
    filled: dict[int, str] = {}
    for _, bpe, tokenizer in tokenizers:
        if bpe is not None:  # before the text is cut: that the sizes are one tokenizer is the first thing to say
            _check_filled(f"bpe {bpe.vocab_size}", tokenizer, filled)
    planned = [plan_entry(corpus, tokenizer, settings) for _, _, tokenizer in tokenizers]
    budget = Budget(settings.text_bytes, tokens_per_step(planned[0].base.model_config, planned[0].base.train_config))
    # the entry of the longest tokens first: a budget too small is refused with the bytes that suffice for every one
    steps = {e.name: budget.steps(e.name, e.bytes_per_token)
             for e in sorted(planned, key=lambda e: -e.bytes_per_token)}
    return [plan for e in planned
            for plan in seeded_plans(e.base, steps[e.name], settings.seeds, f"{TOKENIZER_RACE}: {e.name}")]


def training_bytes_per_token(info: RunInfo, text: Corpus | None) -> float | None:
    """A run's bytes per token on its training split, counted again from its text (the count that set its steps);
    None when the text is not on this server."""
    if text is None:
        return None
    record = info.record
    tokenizer = record.tokenizer.build()  # the run's own, as recorded (no weights read)
    split = split_corpus(text, tokenizer, record.model, record.training)
    return text_bytes(tokenizer, split.train) / len(split.train)


def entry_facts(store: RunStore, group_id: str) -> dict[str, EntryFacts]:
    """What each entry of a race trained with, from its first run (its seeds share all of it): its config, and its
    training split's bytes per token counted from the race's text (one pass per tokenizer, when the text is here)."""
    infos = store.list_runs(group_id)
    try:
        text = find_text(store, TextRef.of_run(infos[0])) if infos else None
    except BabyGPTError:  # the text is gone: the validation text's count stands in, and the table says "≈"
        text = None
    facts: dict[str, EntryFacts] = {}
    for info in infos:
        name = tokenizer_name(info.config)
        if name not in facts:
            f = EntryFacts.from_config(info.config, training_bytes_per_token(info, text))
            if f is not None:
                facts[name] = f
    return facts


def race_report(store: RunStore, group_id: str) -> dict[str, Any]:
    """A tokenizer race as JSON (the CLI's answer and the bench's): each entry's facts, losses and verdict."""
    entries: list[RaceEntry] = race_entries(store, group_id)
    results = race_results(entries)
    facts = entry_facts(store, group_id)
    steps = against_best(results)
    rows = []
    for r in results:
        f = facts.get(r.preset)
        step = steps.get(r.preset)
        rows.append({"tokenizer": r.preset, "unit": r.unit, "losses": [round(x, 4) for x in r.losses],
                     "mean": None if r.mean is None else round(r.mean, 4),
                     "spread": round(r.spread, 4) if r.spread_measured else None,
                     "seeds_done": r.finished, "seeds": r.seeds, "parameters": r.parameters,
                     **({"vocab_size": f.vocab_size, "bytes_per_token": round(f.bytes_per_token, 3), "steps": f.steps,
                         "text_seen_bytes": round(f.text_seen), "vocab_parameters": f.vocab_parameters,
                         "times_each_token_seen": round(f.tokens_per_vocab_entry, 1), "flops": f.flops} if f else {}),
                     "verdict": None if step is None else {"against": step.lower, "gain": round(step.gain, 4),
                                                           "noise": round(step.noise, 4), "words": step.verdict}})
    return {"group": group_id, "entries": rows, "verdict": tokenizer_verdict(results)}


def latest_tokenizer_race(store: RunStore, owner: str | None) -> str | None:
    """The newest tokenizer race of ``owner`` (a race whose runs differ in tokenizer), so the page finds it again
    after a reload; None when they have none."""
    groups: dict[str, list] = {}
    for info in store.list_runs():
        if info.group_id and info.owner == owner:
            groups.setdefault(info.group_id, []).append(info)
    races = [(max(i.created_at for i in infos), group) for group, infos in groups.items()
             if tokenizers_differ([i.config for i in infos])]
    return max(races)[1] if races else None
