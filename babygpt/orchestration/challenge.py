"""A class challenge from rules to board: what the teacher fixes, what an entry must obey, how entries are planned,
re-trained with other seeds, scored and ranked, and how the board freezes when the challenge ends.

The teacher fixes the text, the tokenizer, the validation split and a budget of training tokens (steps × batch ×
block), and may set an end time. Everything else (the rung, sizes, learning rate, batch, block, seed) is the
student's, within the server's limits. Each entry is scored by its worker when it stops training
(``lessons.leaderboard.held_out_loss``); the board ranks the scores with the measured seed-to-seed spread.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babygpt.config import ModelConfig, TrainConfig, tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.lessons.leaderboard import Board, Entry, Refusal, bits_per_char_of, held_out_ids, rank_entries, seed_spread
from babygpt.model.sizing import parameter_count
from babygpt.orchestration.plan import TrainingPlan, encode_corpus, split_corpus
from babygpt.status import RunStatus
from babygpt.store.classroom import ChallengeRecord
from babygpt.store.runs import UPLOADS_DIR, RunInfo, RunStore, parse_config_document
from babygpt.text.corpus import Corpus, corpus_from_path, split_ids
from babygpt.text.datasets import load_corpus, registry
from babygpt.text.tokenizers import build_tokenizer

MAX_BUDGET_TOKENS = 10**10  # a typo guard, far above what a lesson trains
CHECK_PRIORITY = -1  # the teacher's re-trainings wait behind every student's run
CHECK_SEEDS = 2  # other seeds per checked entry: with the entry itself, three runs of its settings
SEED_STRIDE = 1000  # the check seeds: the entry's seed + 1000, + 2000, ...


@dataclass(frozen=True)
class ChallengeRules:
    """What every entry shares. ``held_out_tokens``/``held_out_chars``: the scored tokens and the characters they
    spell, measured once when the challenge is set, so every entry's bits per character use the same count."""

    corpus_name: str
    corpus_source: str
    corpus_sha256: str
    tokenizer: str
    val_fraction: float
    budget_tokens: int
    ends_at: float | None = None
    held_out_tokens: int = 0
    held_out_chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChallengeRules:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def sentence(self) -> str:
        ends = f" · ends {time.strftime('%H:%M', time.localtime(self.ends_at))}" if self.ends_at else ""
        return (f"Text {self.corpus_name} · {self.tokenizer} tokens · last {self.val_fraction:.0%} held out · "
                f"budget {self.budget_tokens:,} training tokens{ends}")

    def max_steps(self, model_config: ModelConfig, train_config: TrainConfig) -> int:
        """The most steps these settings may train within the budget."""
        return self.budget_tokens // tokens_per_step(model_config, train_config)

    def ended(self, now: float | None = None) -> bool:
        return self.ends_at is not None and (time.time() if now is None else now) >= self.ends_at


def set_rules(corpus: Corpus, tokenizer_kind: str, val_fraction: float, budget_tokens: int,
              ends_at: float | None = None, now: float | None = None) -> ChallengeRules:
    """Check what the teacher chose and measure the scored tokens; raises BabyGPTError naming what is wrong."""
    now = time.time() if now is None else now
    if not 0 < budget_tokens <= MAX_BUDGET_TOKENS:
        raise BabyGPTError(f"The budget must be between 1 and {MAX_BUDGET_TOKENS:,} training tokens, "
                           f"got {budget_tokens:,}.")
    if ends_at is not None and ends_at <= now:
        raise BabyGPTError("The end time has already passed: choose a time later today, or no end time.")
    tokenizer = build_tokenizer(tokenizer_kind, corpus.text)
    val = split_ids(encode_corpus(corpus, tokenizer), val_fraction, 1).val
    scored = held_out_ids(val)
    return ChallengeRules(corpus.name, corpus.source, corpus.sha256, tokenizer_kind, val_fraction, int(budget_tokens),
                          ends_at, len(scored) - 1, len(tokenizer.decode(scored[1:].tolist())))


def challenge_corpus(store: RunStore, rules: ChallengeRules) -> Corpus:
    """The challenge's text on this server: a shipped dataset, a file, or an upload kept under its sha256."""
    if rules.corpus_source in registry() or Path(rules.corpus_source).is_file():
        corpus = load_corpus(rules.corpus_source)
    else:
        kept = store.home / UPLOADS_DIR / f"{rules.corpus_sha256}.txt"
        if not kept.is_file():
            raise BabyGPTError(f"The challenge's text ({rules.corpus_name}) is no longer on this server; the teacher "
                               "can end this challenge and set it again.")
        corpus = corpus_from_path(kept)
    if corpus.sha256 != rules.corpus_sha256:
        raise BabyGPTError(f"The challenge's text ({rules.corpus_name}) changed on disk since the challenge was set.")
    return Corpus(rules.corpus_name, corpus.text, corpus.sha256, corpus.source)


# --- the rules an entry obeys ------------------------------------------------------------------

def _shared_problems(rules: ChallengeRules, sha256: str | None, data_name: str | None, tokenizer: str,
                     val_fraction: float) -> list[str]:
    problems = []
    if sha256 != rules.corpus_sha256:
        problems.append(f"it trains on {data_name or 'another text'}, not the challenge's text ({rules.corpus_name})")
    if tokenizer != rules.tokenizer:
        problems.append(f"it uses {tokenizer} tokens, not the challenge's {rules.tokenizer}")
    if abs(val_fraction - rules.val_fraction) > 1e-12:
        problems.append(f"it holds out {val_fraction:.0%} of the text, not the challenge's {rules.val_fraction:.0%}")
    return problems


def _budget_problem(rules: ChallengeRules, steps: int, model_config: ModelConfig, train_config: TrainConfig,
                    verb: str) -> str | None:
    per_step = tokens_per_step(model_config, train_config)
    if steps * per_step <= rules.budget_tokens:
        return None
    return (f"{steps:,} steps × {per_step:,} tokens per step {verb} {steps * per_step:,} tokens, over the budget of "
            f"{rules.budget_tokens:,}: at most {rules.budget_tokens // per_step:,} steps with this batch and block size")


def plan_problems(rules: ChallengeRules, plan: TrainingPlan, now: float | None = None) -> list[str]:
    """Why a planned run cannot enter (empty: it can)."""
    problems = _shared_problems(rules, plan.corpus.sha256, plan.corpus.name, plan.tokenizer.kind,
                                plan.train_config.val_fraction)
    budget = _budget_problem(rules, plan.train_config.max_iters, plan.model_config, plan.train_config, "would train")
    if budget:
        problems.append(budget)
    if plan.init_from:
        problems.append("it starts from another run's weights; entries start from scratch")
    if rules.ended(now):
        problems.append("the challenge has ended")
    return problems


def run_problems(rules: ChallengeRules, info: RunInfo, steps_trained: int, ended_at: float | None = None) -> list[str]:
    """Why a recorded run does not count (empty: it does): checked again on the board, since a run can be changed
    after it entered (resumed past the budget) or reach the board by another way (an import)."""
    model_config, train_config, tokenizer = parse_config_document(info.config)
    problems = _shared_problems(rules, info.data_sha256, info.data_name, tokenizer.kind, train_config.val_fraction)
    budget = _budget_problem(rules, steps_trained, model_config, train_config, "trained")
    if budget:
        problems.append(budget)
    if info.config.get("init"):
        problems.append("it started from another run's weights; entries start from scratch")
    cutoff = ended_at if ended_at is not None else rules.ends_at
    if cutoff is not None and info.created_at > cutoff:
        problems.append("it was started after the challenge ended")
    return problems


def check_entry(rules: ChallengeRules, plan: TrainingPlan, now: float | None = None) -> None:
    problems = plan_problems(rules, plan, now)
    if problems:
        raise BabyGPTError("This run cannot enter the challenge: " + "; ".join(problems) + ".")


def check_resume_within(rules: ChallengeRules, info: RunInfo, max_iters: int) -> None:
    """A challenge entry resumes only within the budget."""
    model_config, train_config, _ = parse_config_document(info.config)
    problem = _budget_problem(rules, max_iters, model_config, train_config, "would train")
    if problem:
        raise BabyGPTError(f"Run {info.label} is a challenge entry: {problem}.")


# --- checks: the top entries again with other seeds ----------------------------------------------

def check_plans(store: RunStore, record: ChallengeRecord, run_ids: list[str]) -> list[tuple[TrainingPlan, str, str]]:
    """For each run, ``CHECK_SEEDS`` plans of exactly its settings with other seeds (those not queued or done
    already): (plan, name, run id checked)."""
    rules = ChallengeRules.from_dict(record.rules)
    corpus = challenge_corpus(store, rules)
    existing = {(i.config["challenge"].get("check_of"), i.config["train"]["seed"])
                for i in store.runs_for_challenge(record.id) if i.config.get("challenge", {}).get("check_of")}
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

def settings_key(config: dict[str, Any]) -> str:
    """Everything that decides how a run trains except its seed: runs with the same key are seed repeats."""
    train = {k: v for k, v in config.get("train", {}).items() if k != "seed"}
    return json.dumps({"model": config.get("model"), "train": train, "data": config.get("data", {}).get("sha256")},
                      sort_keys=True)


def model_size(model: ModelConfig) -> str:
    """A model's size as the board writes it: layers × width, and parameters in millions."""
    return f"{model.n_layer}×{model.n_embd} · {parameter_count(model) / 1e6:.2f}M"


def describe_model(config: dict[str, Any]) -> str:
    model = ModelConfig.from_dict(config["model"])
    return f"{model.preset} {model_size(model)}"


def _waiting_reason(info: RunInfo, steps: int) -> str:
    if info.status is RunStatus.QUEUED:
        return "queued"
    if info.status.training:
        return f"training, step {steps:,}"
    if info.status is RunStatus.FAILED:
        return f"failed: {info.message or 'no message'}"
    return f"{info.status} before it was scored"


def build_board(store: RunStore, record: ChallengeRecord, handle_of: Any, cutoff: float | None = None) -> Board:
    """The board now, or as it stood at ``cutoff`` (scores measured later are left out). ``handle_of(owner)``
    names a run's owner."""
    rules = ChallengeRules.from_dict(record.rules)
    runs = store.runs_for_challenge(record.id)
    scores = [s for s in store.scores([i.id for i in runs]) if cutoff is None or s.measured_at <= cutoff]
    best: dict[str, tuple[float, int]] = {}
    for s in scores:
        bpc = bits_per_char_of(s.nats_per_token, s.tokens, rules.held_out_chars)
        if s.run_id not in best or bpc < best[s.run_id][0]:
            best[s.run_id] = (bpc, s.step)
    steps = store.steps_trained([i.id for i in runs])
    entries, waiting, refused, by_settings = [], [], [], {}
    for info in runs:
        is_check = bool(info.config.get("challenge", {}).get("check_of"))
        handle = "teacher's check" if is_check else handle_of(info.owner)
        problems = run_problems(rules, info, steps.get(info.id, 0), record.ended_at or cutoff)
        if problems:
            if not is_check:
                refused.append(Refusal(handle, info.label, "; ".join(problems)))
            continue
        if info.id in best:  # one score per seed: two runs of the same seed are not a seed-to-seed difference
            by_settings.setdefault(settings_key(info.config), {}).setdefault(info.config["train"]["seed"],
                                                                             best[info.id][0])
            if not is_check:
                entries.append(Entry(info.id, handle, info.label, best[info.id][0], describe_model(info.config)))
        elif not is_check:
            waiting.append((handle, info.label, _waiting_reason(info, steps.get(info.id, 0))))
    spread = seed_spread({key: list(by_seed.values()) for key, by_seed in by_settings.items()})
    title = "Challenge" + (" (final)" if record.ended_at or cutoff else "")
    return Board(title, rules.sentence(), spread, rank_entries(entries, spread.bits), waiting, refused,
                 record.ended_at or cutoff)


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
        return Board.from_dict(record.board)
    return build_board(store, record, handle_of)


def end_now(store: RunStore, record: ChallengeRecord, handle_of: Any, now: float | None = None) -> Board:
    """End a challenge: its board is computed once more and frozen; later scores never change it."""
    now = time.time() if now is None else now
    board = build_board(store, record, handle_of, cutoff=now)
    if not store.end_challenge(record.id, now, board.to_dict()):
        raise BabyGPTError("This challenge has already ended.")
    return board
