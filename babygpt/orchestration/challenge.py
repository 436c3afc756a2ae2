"""A class challenge from rules to board: what the teacher fixes, what an entry must obey, how entries are planned,
re-trained with other seeds, scored and ranked, and how the board freezes when the challenge ends.

The teacher fixes the text, the tokenizer, the validation split and a budget of training tokens (steps × batch ×
block), and may set an end time. The tokenizer is fixed itself, not only its kind: a BPE's size and pre-split are
kept to rebuild it, and its fingerprint (``tokenizer_sha256``: the merges, for a BPE) to check that every entry
trains with exactly it. What the student may set (the rung, sizes, learning rate, batch, block, seed...)
is an allow-list, ``ENTRY_MODEL_SETTINGS`` and ``ENTRY_TRAIN_SETTINGS``, within the server's limits; an entry trains
the whole budget. Each entry is scored by its worker when it stops training (``lessons.leaderboard.held_out_loss``);
the board ranks the scores of finished runs with the seed-to-seed spread measured on finished runs. Scores are in
bits per byte of the held-out text (``babygpt.units``), so a char, a GPT-2 and a BPE challenge read alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from array import array
from dataclasses import dataclass
from itertools import chain
from typing import Any

from babygpt.config import ModelConfig, TrainConfig, model_config_for_preset, tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.lessons.counterfactuals import active
from babygpt.model.sizing import size_in_words
from babygpt.orchestration.plan import TrainingPlan, encode_corpus, split_corpus
from babygpt.scoring.leaderboard import (
    BEST_OF_EACH,
    BITS_PER_BYTE,
    BITS_PER_CHAR,
    ENTRY_RULES,
    Board,
    Entry,
    Refusal,
    Unranked,
    bits_per_char_of,
    counted_entries,
    held_out_ids,
    rank_entries,
    seed_spread,
)
from babygpt.status import RunStatus
from babygpt.store.classroom import ChallengeRecord
from babygpt.store.corpora import TextNotHere, TextRef, find_text
from babygpt.store.run_record import RunRecord
from babygpt.store.runs import RunInfo, RunStore, checked_tokenizer, parse_config_document
from babygpt.text.bpe import SPLIT_NAMES, BPESettings, split_of
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import Corpus, split_ids
from babygpt.text.tokenizers import Tokenizer, build_tokenizer, text_bytes
from babygpt.units import bits_per_byte_of

MAX_BUDGET_TOKENS = 10**10  # a typo guard, far above what a lesson trains
CHECK_PRIORITY = -1  # the teacher's re-trainings wait behind every student's run
CHECK_SEEDS = 2  # other seeds per checked entry: with the entry itself, three runs of its settings
SEED_STRIDE = 1000  # the check seeds: the entry's seed + 1000, + 2000, ...
SPLIT_WORDS = {"gpt4": "GPT-4 split", "gpt2": "GPT-2 split", "none": "no pre-split"}
# What a tokenizer's description may keep that does not change how it cuts a text: how a BPE was learned.
LEARNING_FACTS = ("asked", "learned_bytes", "text_bytes")


def _bpe_sha256(split: str, flat_merges: list[int]) -> str:
    digest = hashlib.sha256(f"bpe|{split}|".encode())
    digest.update(array("q", flat_merges).tobytes())
    return digest.hexdigest()


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """The tokenizer itself, as a fingerprint: two tokenizers with the same one cut every text into the same ids.
    For a BPE, its pre-split and merges in order (not the size asked or how much text it learned from), hashed as
    packed integers: 8,000 merges in a millisecond (as JSON, 20). For char and GPT-2, the vocabulary each keeps."""
    if isinstance(tokenizer, BPETokenizer):
        return _bpe_sha256(tokenizer.bpe.split or "none",
                           [i for (left, right), new_id in tokenizer.bpe.merges for i in (left, right, new_id)])
    described = {k: v for k, v in tokenizer.to_dict().items() if k not in LEARNING_FACTS}
    return hashlib.sha256(f"{tokenizer.kind}|".encode()
                          + json.dumps(described, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def stored_bpe_sha256(described: Any) -> str | None:
    """``tokenizer_sha256`` of a BPE as a run's config.json stores it, without rebuilding it (None: not a BPE
    description of merges of three whole numbers each). Rebuilding checks every merge, 15 ms for an 8,192-token
    BPE: the board, which checks every entry once a second, rebuilds only a tokenizer whose fingerprint is not the
    challenge's (then it is checked whole, and refused or named). The checks here run at C speed."""
    if not isinstance(described, dict) or described.get("kind") != "bpe" or described.get("split") not in SPLIT_NAMES:
        return None
    merges = described.get("merges")
    if not isinstance(merges, list) or (merges and (set(map(type, merges)) != {list} or set(map(len, merges)) != {3})):
        return None
    flat = list(chain.from_iterable(merges))
    if flat and set(map(type, flat)) != {int}:
        return None
    try:
        return _bpe_sha256(described["split"], flat)
    except OverflowError:  # a number no merge holds: not the challenge's
        return None


def tokenizer_phrase(kind: str, vocab_size: int = 0, split: str | None = None, asked: int = 0) -> str:
    """A tokenizer as the challenge states it: "bpe, 2,048 tokens, GPT-4 split", "char, 65 tokens" (the kind alone
    when its size is not known: a challenge set before it was kept)."""
    if not vocab_size:
        return kind
    size = f"{vocab_size:,} tokens" + (f" ({asked:,} asked)" if asked and asked != vocab_size else "")
    return ", ".join([kind, size, *([SPLIT_WORDS[split or "none"]] if kind == "bpe" else [])])


def describe_tokenizer(tokenizer: Tokenizer) -> str:
    """``tokenizer_phrase`` of a built tokenizer."""
    bpe = tokenizer.bpe if isinstance(tokenizer, BPETokenizer) else None
    return tokenizer_phrase(tokenizer.kind, tokenizer.vocab_size, bpe.split if bpe else None, bpe.asked if bpe else 0)


@dataclass(frozen=True)
class ChallengeRules:
    """What every entry shares. ``held_out_tokens``/``held_out_bytes``: the scored tokens and the UTF-8 bytes they
    stand for, measured once when the challenge is set, so every entry's bits per byte use the same count
    (``held_out_chars``: the characters, which challenges set before bytes were counted scored with).

    The tokenizer: its kind, for a BPE the size asked and the pre-split (``bpe_vocab``, ``bpe_split``) that rebuild
    it from the text, its vocabulary's size, and ``tokenizer_sha256``, which every entry's tokenizer must match."""

    corpus_name: str
    corpus_source: str
    corpus_sha256: str
    tokenizer: str
    val_fraction: float
    budget_tokens: int
    ends_at: float | None = None
    held_out_tokens: int = 0
    held_out_chars: int = 0
    entry_rule: str = BEST_OF_EACH  # how several entries from one student count: a key of leaderboard.ENTRY_RULES
    held_out_bytes: int = 0  # 0: a challenge set before bytes were counted (scored in bits per character)
    bpe_vocab: int = 0  # the BPE's size as the teacher asked it (0: not a BPE)
    bpe_split: str = ""  # the BPE's pre-split as a person names it: "gpt2", "gpt4" or "none" ("": not a BPE)
    tokenizer_vocab: int = 0  # the tokenizer's vocabulary on the text (0: not kept, a challenge set before)
    tokenizer_sha256: str = ""  # ``tokenizer_sha256`` of the tokenizer ("": not kept; then only the kind is compared)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChallengeRules:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def bpe_settings(self) -> BPESettings | None:
        """The size and pre-split that rebuild the challenge's BPE from its text (None: not a BPE). A BPE challenge
        set before they were kept had the library's default, which is what it gives."""
        if self.tokenizer != "bpe":
            return None
        if not self.bpe_vocab:
            return BPESettings()
        return BPESettings(self.bpe_vocab, split_of(self.bpe_split or "none"))

    def tokenizer_phrase(self) -> str:
        """"bpe, 2,048 tokens, GPT-4 split": the tokenizer every entry trains with."""
        return tokenizer_phrase(self.tokenizer, self.tokenizer_vocab, self.bpe_split or None, self.bpe_vocab)

    @property
    def unit(self) -> str:
        """What the board's scores are in: bits per byte (bits per character for a challenge set before)."""
        return BITS_PER_BYTE if self.held_out_bytes else BITS_PER_CHAR

    def score(self, nats_per_token: float, tokens: int) -> float:
        """An entry's held-out loss (mean nats per token over ``tokens`` tokens) in the board's unit: total nats ÷
        (ln 2 × the UTF-8 bytes the scored tokens stand for, counted when the challenge was set)."""
        if self.held_out_bytes:
            return bits_per_byte_of(nats_per_token, tokens, self.held_out_bytes)
        return bits_per_char_of(nats_per_token, tokens, self.held_out_chars)

    def sentence(self, ended_at: float | None = None) -> str:
        """The rules in one line; once the challenge has ended (``ended_at``), when it actually ended, not when
        it was planned to (a teacher may end it early)."""
        if ended_at is not None:
            ends = f" · ended {time.strftime('%H:%M', time.localtime(ended_at))}"
        else:
            ends = f" · ends {time.strftime('%H:%M', time.localtime(self.ends_at))}" if self.ends_at else ""
        return (f"Text {self.corpus_name} · tokenizer {self.tokenizer_phrase()} · last {self.val_fraction:.0%} held "
                f"out · budget {self.budget_tokens:,} training tokens{ends}")

    def about(self) -> dict[str, str]:
        """Which challenge this is, fact by fact, for the head of its board's CSV."""
        return {"text": self.corpus_name, "text sha256": self.corpus_sha256, "tokenizer": self.tokenizer_phrase(),
                "held out": f"last {self.val_fraction:.0%}", "budget (training tokens)": str(self.budget_tokens),
                "planned end": "" if self.ends_at is None else
                time.strftime("%Y-%m-%d %H:%M", time.localtime(self.ends_at))}

    def max_steps(self, model_config: ModelConfig, train_config: TrainConfig) -> int:
        """The most steps these settings may train within the budget."""
        return self.budget_tokens // tokens_per_step(model_config, train_config)

    def ended(self, now: float | None = None) -> bool:
        return self.ends_at is not None and (time.time() if now is None else now) >= self.ends_at


def set_rules(corpus: Corpus, tokenizer_kind: str, val_fraction: float, budget_tokens: int,
              ends_at: float | None = None, now: float | None = None, entry_rule: str = BEST_OF_EACH,
              bpe: BPESettings | None = None) -> ChallengeRules:
    """Check what the teacher chose, build the tokenizer (``bpe``: the teacher's BPE size and pre-split, for kind
    "bpe"; None there means the library's default) and measure the scored tokens and their bytes; raises
    BabyGPTError naming what is wrong."""
    now = time.time() if now is None else now
    if entry_rule not in ENTRY_RULES:
        raise BabyGPTError(f"Several entries from one student count as {' or '.join(map(repr, ENTRY_RULES))}, "
                           f"not {entry_rule!r}.")
    if not 0 < budget_tokens <= MAX_BUDGET_TOKENS:
        raise BabyGPTError(f"The budget must be between 1 and {MAX_BUDGET_TOKENS:,} training tokens, "
                           f"got {budget_tokens:,}.")
    if ends_at is not None and ends_at <= now:
        raise BabyGPTError("The end time has already passed: choose a time later today, or no end time.")
    if tokenizer_kind == "bpe":
        bpe = (bpe or BPESettings()).validate()
    tokenizer = build_tokenizer(tokenizer_kind, corpus.text, bpe)
    val = split_ids(encode_corpus(corpus, tokenizer), val_fraction, 1).val
    scored = held_out_ids(val)
    return ChallengeRules(
        corpus.name, corpus.source, corpus.sha256, tokenizer_kind, val_fraction, int(budget_tokens), ends_at,
        len(scored) - 1, len(tokenizer.decode(scored[1:].tolist())), entry_rule,
        held_out_bytes=text_bytes(tokenizer, scored[1:]),
        bpe_vocab=bpe.vocab_size if bpe else 0, bpe_split=(bpe.split or "none") if bpe else "",
        tokenizer_vocab=tokenizer.vocab_size, tokenizer_sha256=tokenizer_sha256(tokenizer))


def challenge_tokenizer(rules: ChallengeRules, corpus: Corpus) -> Tokenizer:
    """The challenge's tokenizer, rebuilt from its text and settings and checked against the one the teacher set
    (the library that learns a BPE may have changed since): what an entry trains with."""
    tokenizer = build_tokenizer(rules.tokenizer, corpus.text, rules.bpe_settings())
    problem = tokenizer_problem(rules, tokenizer)
    if problem:
        raise BabyGPTError(f"This server no longer builds the challenge's tokenizer from its text ({problem}); the "
                           "teacher can end this challenge and set it again.")
    return tokenizer


def challenge_corpus(store: RunStore, rules: ChallengeRules) -> Corpus:
    """The challenge's text on this server (``find_text``: a shipped dataset, a file, or an upload kept under its
    sha256, by its content)."""
    try:
        return find_text(store, TextRef(rules.corpus_name, rules.corpus_source, rules.corpus_sha256))
    except TextNotHere as exc:
        if exc.changed:
            raise BabyGPTError(f"The challenge's text ({rules.corpus_name}) changed on disk since the challenge was "
                               "set.") from None
        raise BabyGPTError(f"The challenge's text ({rules.corpus_name}) is no longer on this server; the teacher "
                           "can end this challenge and set it again.") from None


# --- the rules an entry obeys ------------------------------------------------------------------

# What a student may set in an entry: an allow-list, not a deny-list. Every other ModelConfig field must be what the
# chosen rung gives it (the causal mask, 1/√d, the rung's switches, the challenge's vocabulary) and every other
# TrainConfig field its library default, so a field added to either config is refused in entries until someone
# decides it is fair and names it here. ``val_fraction`` is the challenge's own (checked with the text).
ENTRY_MODEL_SETTINGS = ("preset", "n_layer", "n_head", "n_embd", "block_size", "dropout", "positional", "activation")
ENTRY_TRAIN_SETTINGS = ("max_iters", "batch_size", "lr", "min_lr", "warmup_iters", "weight_decay", "beta1", "beta2",
                        "grad_clip", "seed", "eval_interval", "eval_iters", "log_interval", "checkpoint_interval",
                        "sample_tokens", "device", "dtype", "compile", "cuda_graphs", "threads")
CHALLENGE_TRAIN_SETTINGS = ("val_fraction",)
CHECK_HANDLE = "teacher's check"  # who the board names for the teacher's re-trainings of an entry


def tokenizer_problem(rules: ChallengeRules, tokenizer: Tokenizer) -> str | None:
    """Why this is not the challenge's tokenizer (None: it is): another kind, or the same kind cut otherwise (a BPE
    of another size, split or merges). Compared by fingerprint, so no setting of an entry can change it."""
    if tokenizer.kind != rules.tokenizer:
        return f"it uses {tokenizer.kind} tokens, not the challenge's {rules.tokenizer}"
    if not rules.tokenizer_sha256 or tokenizer_sha256(tokenizer) == rules.tokenizer_sha256:
        return None
    theirs, ours = describe_tokenizer(tokenizer), rules.tokenizer_phrase()
    if theirs == ours:
        return f"its tokenizer ({theirs}) cuts the text otherwise than the challenge's (other merges)"
    return f"its tokenizer is {theirs}, not the challenge's {ours}"


def _stored_sha256(described: Any, seen: dict[tuple[int, Any, Any], str | None] | None) -> str | None:
    """``stored_bpe_sha256``, once per list of merges in one board: the store hands the runs that hold the same
    merges one list (``ClassRecords.runs_for_challenge``), alive while the board is built, so its id is a key."""
    if seen is None or not isinstance(described, dict):
        return stored_bpe_sha256(described)
    key = (id(described.get("merges")), described.get("split"), described.get("kind"))
    if key not in seen:
        seen[key] = stored_bpe_sha256(described)
    return seen[key]


def _recorded_tokenizer(rules: ChallengeRules, record: RunRecord,
                        seen: dict[tuple[int, Any, Any], str | None] | None = None) -> tuple[str | None, int]:
    """(why a recorded run's tokenizer is not the challenge's, or None; its vocabulary size). A stored BPE whose
    fingerprint is the challenge's is the challenge's own tokenizer, known without being rebuilt; any other is
    rebuilt (checked whole) and compared."""
    if rules.tokenizer_vocab and _stored_sha256(record.tokenizer.described, seen) == rules.tokenizer_sha256:
        return None, rules.tokenizer_vocab
    tokenizer = checked_tokenizer(record)
    return tokenizer_problem(rules, tokenizer), tokenizer.vocab_size


def _full_steps_of(rules: ChallengeRules, info: RunInfo) -> int:
    return full_steps(rules, info.record.model, info.record.training)


def _shared_problems(rules: ChallengeRules, sha256: str | None, data_name: str | None, tokenizer_wrong: str | None,
                     val_fraction: float) -> list[str]:
    problems = []
    if sha256 != rules.corpus_sha256:
        problems.append(f"it trains on {data_name or 'another text'}, not the challenge's text ({rules.corpus_name})")
    if tokenizer_wrong:
        problems.append(tokenizer_wrong)
    if abs(val_fraction - rules.val_fraction) > 1e-12:
        problems.append(f"it holds out {val_fraction:.0%} of the text, not the challenge's {rules.val_fraction:.0%}")
    return problems


def settings_problems(model_config: ModelConfig, train_config: TrainConfig, vocab_size: int) -> list[str]:
    """Why these settings are not the student's to choose in an entry (empty: they are). ``vocab_size``: the
    challenge's tokenizer's, on the challenge's text."""
    broken = active(model_config.to_dict())
    problems = [f"it trains without {c.idea}, an idea broken on purpose for a lesson" for c in broken]
    switched = {name for c in broken for name in c.switches}
    chosen = {name: getattr(model_config, name) for name in ENTRY_MODEL_SETTINGS if name not in switched}
    try:
        rung = model_config_for_preset(chosen.pop("preset"), vocab_size=vocab_size, **chosen)
    except BabyGPTError as exc:
        return [*problems, f"its model is not one the {model_config.preset} rung builds ({exc})"]
    for f in dataclasses.fields(model_config):
        value, expected = getattr(model_config, f.name), getattr(rung, f.name, f.default)
        if f.name in switched or value == expected:
            continue
        if f.name == "vocab_size":
            problems.append(f"its vocabulary has {value:,} tokens, not the {expected:,} of the challenge's tokenizer")
        else:
            problems.append(f"it sets {f.name} to {value!r}, which entries leave as the {rung.preset} rung has it "
                            f"({expected!r})")
    defaults = TrainConfig()
    for f in dataclasses.fields(train_config):
        value, expected = getattr(train_config, f.name), getattr(defaults, f.name, f.default)
        if f.name not in ENTRY_TRAIN_SETTINGS + CHALLENGE_TRAIN_SETTINGS and value != expected:
            problems.append(f"it sets {f.name} to {value!r}, which entries leave at {expected!r}")
    return problems


def full_steps(rules: ChallengeRules, model_config: ModelConfig, train_config: TrainConfig) -> int:
    """The steps an entry with these settings trains: the whole budget, as many steps as fit in it."""
    return rules.max_steps(model_config, train_config)


def budget_allowance(rules: ChallengeRules, model_config: ModelConfig, train_config: TrainConfig) -> str:
    """What the budget allows with these settings, in the one phrase the training page's caption and every refusal
    about the budget share: "budget allows 20 steps with batch_size 4 and block_size 16"."""
    return (f"budget allows {full_steps(rules, model_config, train_config):,} steps with batch_size "
            f"{train_config.batch_size} and block_size {model_config.block_size}")


def budget_caption(rules: ChallengeRules, model_config: ModelConfig, train_config: TrainConfig) -> str:
    """The training page's line under the sizes while entering the challenge."""
    return f"The challenge's {budget_allowance(rules, model_config, train_config)}."


def _budget_problem(rules: ChallengeRules, steps: int, model_config: ModelConfig, train_config: TrainConfig,
                    verb: str) -> str | None:
    """The one check of "over the budget", for a planned entry and a recorded run alike."""
    if steps <= full_steps(rules, model_config, train_config):
        return None
    per_step = tokens_per_step(model_config, train_config)
    return (f"{steps:,} steps × {per_step:,} tokens per step {verb} {steps * per_step:,} tokens, over the budget of "
            f"{rules.budget_tokens:,}: the {budget_allowance(rules, model_config, train_config)}")


def _whole_budget_problem(rules: ChallengeRules, model_config: ModelConfig, train_config: TrainConfig) -> str | None:
    """A planned entry trains exactly the budget: more is unfair, fewer can never be ranked (only finished runs of
    the whole budget are compared, and only they measure the seed-to-seed spread)."""
    steps, full = train_config.max_iters, full_steps(rules, model_config, train_config)
    if full == 0:
        return (f"one step of batch_size {train_config.batch_size} × block_size {model_config.block_size} is "
                f"{tokens_per_step(model_config, train_config):,} tokens, over the budget of {rules.budget_tokens:,}")
    if steps < full:
        return (f"it would train {steps:,} steps, but the {budget_allowance(rules, model_config, train_config)}: an "
                f"entry trains the whole budget (set max_iters to {full:,})")
    return _budget_problem(rules, steps, model_config, train_config, "would train")


def entry_problems(rules: ChallengeRules, model_config: ModelConfig, train_config: TrainConfig, vocab_size: int,
                   now: float | None = None) -> list[str]:
    """Why an entry with these settings, on the challenge's text, tokenizer and split, cannot start (empty: it
    can). The training page asks this before Start is on; ``plan_problems`` adds what a plan can get wrong."""
    problems = settings_problems(model_config, train_config, vocab_size)
    budget = _whole_budget_problem(rules, model_config, train_config)
    if budget:
        problems.append(budget)
    if rules.ended(now):
        problems.append("the challenge has ended")
    return problems


def refusal(problems: list[str]) -> str | None:
    """The one sentence a refused entry gets, on the page and from the library alike (None: nothing refused)."""
    return "This run cannot enter the challenge: " + "; ".join(problems) + "." if problems else None


def plan_problems(rules: ChallengeRules, plan: TrainingPlan, now: float | None = None) -> list[str]:
    """Why a planned run cannot enter (empty: it can)."""
    problems = _shared_problems(rules, plan.corpus.sha256, plan.corpus.name, tokenizer_problem(rules, plan.tokenizer),
                                plan.train_config.val_fraction)
    if plan.init_from:
        problems.append("it starts from another run's weights; entries start from scratch")
    return problems + entry_problems(rules, plan.model_config, plan.train_config, plan.tokenizer.vocab_size, now)


def run_problems(rules: ChallengeRules, info: RunInfo, steps_trained: int, ended_at: float | None = None,
                 seen: dict[tuple[int, Any, Any], str | None] | None = None) -> list[str]:
    """Why a recorded run does not count (empty: it does): checked again on the board, since a run can be changed
    after it entered (its config rewritten, resumed past the budget) or reach the board by another way. ``seen``:
    the fingerprints one board has taken already (``_stored_sha256``)."""
    record = info.record
    model_config, train_config = record.model, record.training
    tokenizer_wrong, vocab_size = _recorded_tokenizer(rules, record, seen)
    problems = _shared_problems(rules, info.data_sha256, info.text_name, tokenizer_wrong, train_config.val_fraction)
    problems += settings_problems(model_config, train_config, vocab_size)
    budget = _budget_problem(rules, steps_trained, model_config, train_config, "trained")
    if budget:
        problems.append(budget)
    if record.starting_weights:
        problems.append("it started from another run's weights; entries start from scratch")
    cutoff = ended_at if ended_at is not None else rules.ends_at
    if cutoff is not None and info.created_at > cutoff:
        problems.append("it was started after the challenge ended")
    return problems


def check_entry(rules: ChallengeRules, plan: TrainingPlan, now: float | None = None) -> None:
    sentence = refusal(plan_problems(rules, plan, now))
    if sentence:
        raise BabyGPTError(sentence)


def check_resume_within(rules: ChallengeRules, info: RunInfo, train_config: TrainConfig) -> None:
    """A challenge entry resumes only with settings an entry may have, to the end of the budget and no further."""
    model_config, tokenizer = info.record.model, checked_tokenizer(info.record)
    problems = settings_problems(model_config, train_config, tokenizer.vocab_size)
    problems += _shared_problems(rules, info.data_sha256, info.text_name, tokenizer_problem(rules, tokenizer),
                                 train_config.val_fraction)
    budget = _whole_budget_problem(rules, model_config, train_config)
    if budget:
        problems.append(budget)
    if problems:
        raise BabyGPTError(f"Run {info.label} is a challenge entry: " + "; ".join(problems) + ".")


# --- checks: the top entries again with other seeds ----------------------------------------------

def check_plans(store: RunStore, record: ChallengeRecord, run_ids: list[str]) -> list[tuple[TrainingPlan, str, str]]:
    """For each run, ``CHECK_SEEDS`` plans of exactly its settings with other seeds (those not queued or done
    already): (plan, name, run id checked)."""
    rules = ChallengeRules.from_dict(record.rules)
    corpus = challenge_corpus(store, rules)
    existing = {(i.check_of, i.record.training.seed) for i in store.runs_for_challenge(record.id) if i.is_check}
    plans = []
    for run_id in run_ids:
        info = store.get(run_id)
        model_config, train_config, tokenizer = parse_config_document(info.config)
        for k in range(1, CHECK_SEEDS + 1):
            seed = train_config.seed + SEED_STRIDE * k
            if (info.id, seed) in existing:
                continue
            train = dataclasses.replace(train_config, seed=seed)
            plan = TrainingPlan(corpus, tokenizer, model_config, train,
                                split_corpus(corpus, tokenizer, model_config, train))
            plans.append((plan, f"check of {info.label} · seed {seed}", info.id))
    return plans


# --- the board ---------------------------------------------------------------------------------

def settings_key(record: RunRecord) -> str:
    """Everything that decides how a run trains except its seed: runs with the same key are seed repeats."""
    train = {k: v for k, v in record.training.to_dict().items() if k != "seed"}
    return json.dumps({"model": record.model.to_dict(), "train": train, "data": record.data.sha256}, sort_keys=True)


def describe_model(model: ModelConfig) -> str:
    return f"{model.preset} {size_in_words(model)}"


def _unranked_reason(info: RunInfo, step: int, full: int, ended: bool) -> str:
    """Why an entry has no rank, from what its run is doing now: on a final board, what happened after the end."""
    of = f"step {step:,} of {full:,}"
    if info.status is RunStatus.QUEUED:
        return "still queued when the challenge ended" if ended else "queued"
    if info.status.training:
        return f"still training after the challenge ended, {of}" if ended else f"training, {of}"
    if info.status is RunStatus.FAILED:
        return f"failed at {of}: {info.message or 'no message'}"
    if info.status is RunStatus.DONE and step >= full:
        return f"finished {of} after the challenge ended" if ended else f"finished {of}, being scored"
    if info.status is RunStatus.DONE:
        return f"finished at {of}: only entries that train the whole budget are ranked"
    return f"{info.status} at {of}" + ("" if ended else ": resume it to finish the budget and be ranked")


def _final_scores(store: RunStore, rules: ChallengeRules, runs: list[RunInfo], cutoff: float | None
                  ) -> dict[str, float]:
    """Each run's score at the end of the whole budget (in ``rules.unit``: bits per byte), measured by ``cutoff``: the only
    scores the board ranks or measures the spread with. A run stopped early was scored where it stopped; that
    score ranks nothing and widens no spread (a run stopped at step 0 is as far from the others as it gets)."""
    full = {info.id: _full_steps_of(rules, info) for info in runs}
    final: dict[str, float] = {}
    for s in store.scores(list(full)):  # oldest first: a later measurement of the same step wins
        if s.step == full[s.run_id] and (cutoff is None or s.measured_at <= cutoff):
            final[s.run_id] = rules.score(s.nats_per_token, s.tokens)
    return final


def build_board(store: RunStore, record: ChallengeRecord, handle_of: Any, cutoff: float | None = None) -> Board:
    """The board now, or as it stood at ``cutoff`` (scores measured later are left out). ``handle_of(owner)``
    names a run's owner. Ranked: entries that finished the whole budget and were scored; every other entry is
    listed as not ranked, with what its run is doing; entries that broke a rule, as refused, with the rule."""
    rules = ChallengeRules.from_dict(record.rules)
    runs = store.runs_for_challenge(record.id)
    final = _final_scores(store, rules, runs, cutoff)
    steps = store.steps_trained([i.id for i in runs])
    ended = record.ended_at or cutoff
    entries, unranked, refused, repeats = [], [], [], {}
    names = entry_names([i for i in runs if not i.is_check], handle_of)
    fingerprints: dict[tuple[int, Any, Any], str | None] = {}  # one per list of merges the store handed over
    for info in runs:
        handle = CHECK_HANDLE if info.is_check else names[info.id]
        problems = run_problems(rules, info, steps.get(info.id, 0), ended, fingerprints)
        if problems:
            if not info.is_check:
                refused.append(Refusal(handle, info.label, "; ".join(problems)))
            continue
        if info.id in final:  # one score per seed: two runs of the same seed are not a seed-to-seed difference
            repeats.setdefault(settings_key(info.record), {}).setdefault(info.record.training.seed, final[info.id])
            if not info.is_check:
                entries.append(Entry(info.id, handle, info.label, final[info.id], describe_model(info.record.model),
                                     info.owner))
        elif not info.is_check:
            full = _full_steps_of(rules, info)
            unranked.append(Unranked(handle, info.label, _unranked_reason(info, steps.get(info.id, 0), full,
                                                                         ended is not None), info.id))
    checked = {settings_key(i.record) for i in runs if i.is_check}
    spread = seed_spread({key: list(by_seed.values()) for key, by_seed in repeats.items()}, checked, rules.unit)
    title = "Challenge" + (" (final)" if ended else "")
    ranked = counted_entries(entries, rules.entry_rule)  # the teacher's rule for several entries from one student
    return Board(title, rules.sentence(ended), spread, rank_entries(ranked, spread.bits), unranked, refused, ended,
                 rules.entry_rule, rules.unit, rules.about())


def entry_names(runs: list[RunInfo], handle_of: Any) -> dict[str, str]:
    """Each entry's name on the board, by run id: the student's name, and when the student made several entries,
    "Ana, entry 2 · 1a2b" (numbered oldest first, with the end of the run's id), so one student's ranked entry and
    the one still training never read as the same line."""
    by_owner: dict[Any, list[RunInfo]] = {}
    for info in runs:
        by_owner.setdefault(info.owner, []).append(info)
    names = {}
    for own in by_owner.values():
        for k, info in enumerate(own, start=1):
            handle = handle_of(info.owner)
            names[info.id] = handle if len(own) == 1 else f"{handle}, entry {k} · {info.id.rsplit('-', 1)[-1]}"
    return names


def unranked_now(store: RunStore, rules: ChallengeRules, unranked: list[Unranked]) -> list[Unranked]:
    """A final board's unranked entries with what their runs did since the end (an entry still training when the
    challenge ended finishes later: the board says so, not "training, step 0" forever). Ranks never change."""
    ids = [u.run_id for u in unranked if u.run_id and store.exists(u.run_id)]
    infos = {run_id: store.get(run_id) for run_id in ids}
    steps = store.steps_trained(ids)
    out = []
    for u in unranked:
        info = infos.get(u.run_id)
        if info is None:
            out.append(u)
            continue
        full = _full_steps_of(rules, info)
        out.append(dataclasses.replace(u, why=_unranked_reason(info, steps.get(info.id, 0), full, True)))
    return out


def board_of(store: RunStore, record: ChallengeRecord, handle_of: Any, now: float | None = None) -> Board:
    """The board to show: the frozen one of an ended challenge, else the live one. A challenge whose end time
    has passed is frozen here, as it stood at that time, by whoever looks first."""
    now = time.time() if now is None else now
    rules = ChallengeRules.from_dict(record.rules)
    if record.ended_at is None and rules.ended(now):
        board = build_board(store, record, handle_of, cutoff=rules.ends_at)
        store.end_challenge(record.id, rules.ends_at, board.to_dict())
        record = store.challenge(record.id)
    if record.board is not None:
        board = Board.from_dict(record.board)
        board.waiting = unranked_now(store, rules, board.waiting)
        return board
    return build_board(store, record, handle_of)


def end_now(store: RunStore, record: ChallengeRecord, handle_of: Any, now: float | None = None) -> Board:
    """End a challenge: its board is computed once more and frozen; later scores never change it."""
    now = time.time() if now is None else now
    board = build_board(store, record, handle_of, cutoff=now)
    if not store.end_challenge(record.id, now, board.to_dict()):
        raise BabyGPTError("This challenge has already ended.")
    return board
