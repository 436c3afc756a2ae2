"""A class of students written straight into a run store, no training: what the board's browser tests and
``bench.class_board`` look at. Runs "train" in the writer's process (its pid is alive), so a server reads them as
training; ``ClassWriter`` then logs new steps for them, as workers would."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from dataclasses import dataclass

from babygpt.config import TrainConfig
from babygpt.orchestration.challenge import set_rules
from babygpt.orchestration.plan import TrainingPlan, plan_training
from babygpt.orchestration.runs import create_run
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.datasets import load_corpus

SIZES = [dict(n_layer=2, n_embd=64), dict(n_layer=4, n_embd=128), dict(n_layer=6, n_embd=192)]
LONG_HANDLE = "Maximiliana-Dorothea Q."  # 23 characters: the longest kind of name a class types
LONG_LINE = "KING RICHARD III: Now is the winter of our discontent made glorious summer by this sun of York"


@dataclass
class SeededClass:
    store: RunStore
    keys: list[str]  # the students' user keys, in order
    training: list[str]  # run ids that "train" (logged by ClassWriter)
    finished: list[str]
    challenge_id: str


def _curve(step: int, rate: float) -> float:
    return 1.2 + 3.0 * math.exp(-step / rate)


def seed_class(store: RunStore, students: int = 30, training: int = 16, steps: int = 300,
               seed: int = 0) -> SeededClass:
    """``students`` users, each with one run of this lesson: the first ``training`` still training (with
    ``steps`` logged so far), the rest finished; the even ones entered in an open challenge, the finished
    entries scored."""
    rng = random.Random(seed)
    corpus = load_corpus("tinyshakespeare")
    train = TrainConfig(max_iters=2000, eval_interval=100, batch_size=12, device="cpu")
    plans: list[TrainingPlan] = [plan_training(corpus, "char", "gpt", train, block_size=64, **s) for s in SIZES]
    rules = set_rules(corpus, "char", train.val_fraction, budget_tokens=2000 * 12 * 64)
    challenge = store.create_challenge(rules.to_dict())
    keys, live, done = [], [], []
    for i in range(students):
        key = f"student-{i:02d}-{'k' * 16}"
        keys.append(key)
        store.set_handle(key, LONG_HANDLE if i == 1 else f"Student {i + 1}")
        plan = plans[i % len(plans)]
        plan.train_config = dataclasses.replace(train, seed=1337 + i // len(plans))  # classmates repeat with seeds
        entered = {"id": challenge.id, "check_of": None} if i % 2 == 0 else None
        info = create_run(store, plan, f"gpt on {corpus.name}", owner=key, status=RunStatus.RUNNING,
                          challenge=entered)
        rate = rng.uniform(150, 400)
        last = steps if i < training else train.max_iters
        rows = [MetricRow(s, "train", _curve(s, rate) + rng.uniform(0, 0.05), 1e-3, rng.uniform(8e3, 2e4), s * 0.05)
                for s in range(0, last + 1, 10)]
        for s in range(0, last + 1, train.eval_interval):
            rows += [MetricRow(s, "train_eval", _curve(s, rate), None, None, s * 0.05),
                     MetricRow(s, "val", _curve(s, rate) + 0.1, None, None, s * 0.05)]
        store.log_metrics(info.id, rows)
        store.log_sample(info.id, last, f"First Citizen:\nWe are accounted poor citizens\n{LONG_LINE}")
        if i < training:
            live.append(info.id)
        else:
            if entered:
                store.log_score(info.id, last, _curve(last, rate) + 0.1 + rng.uniform(0, 0.02), rules.held_out_tokens)
            store.set_status(info.id, RunStatus.DONE)
            done.append(info.id)
    return SeededClass(store, keys, live, done, challenge.id)


class ClassWriter:
    """Logs a training step every ``every_s`` for each training run of a seeded class, as thirty workers would."""

    def __init__(self, seeded: SeededClass, every_s: float = 0.5):
        self.seeded, self.every_s = seeded, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self.step = {r: max(m.step for m in seeded.store.metrics(r)) for r in seeded.training}

    def start(self) -> ClassWriter:
        self._thread.start()
        return self

    def _write(self) -> None:
        while not self._stop.wait(self.every_s):
            for run_id in self.seeded.training:
                self.step[run_id] += 10
                s = self.step[run_id]
                rows = [MetricRow(s, "train", _curve(s, 300), 1e-3, 1.2e4, s * 0.05)]
                if s % 100 == 0:
                    rows.append(MetricRow(s, "val", _curve(s, 300) + 0.1, None, None, s * 0.05))
                self.seeded.store.log_metrics(run_id, rows)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
