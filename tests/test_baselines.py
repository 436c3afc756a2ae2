"""The baselines and bits per character, against values worked out by hand on tiny inputs."""

import math

import pytest
import torch

from babygpt.lessons.baselines import bits_per_char, compute_baselines, step_passed


def test_baselines_by_hand():
    train, val = torch.tensor([0, 1, 0, 1, 0]), torch.tensor([0, 1, 1])
    b = compute_baselines(train, val, vocab_size=2, val_chars=6)
    assert b.uniform == pytest.approx(math.log(2))
    # unigram, add-one: counts 3+1 and 2+1 → p0 = 4/7, p1 = 3/7
    assert b.unigram == pytest.approx(-(math.log(4 / 7) + 2 * math.log(3 / 7)) / 3)
    # bigram, add-one: c(0→1) = 2 of c(0) = 2 → 3/4; c(1→1) = 0 of c(1) = 2 → 1/4
    assert b.bigram == pytest.approx(-(math.log(3 / 4) + math.log(1 / 4)) / 2)
    assert b.chars_per_token == 2.0


def test_a_large_vocabulary_needs_no_table():
    g = torch.Generator().manual_seed(0)
    train, val = torch.randint(0, 50_000, (20_000,), generator=g), torch.randint(0, 50_000, (2_000,), generator=g)
    b = compute_baselines(train, val, vocab_size=50_000, val_chars=8_000)
    assert b.uniform == pytest.approx(math.log(50_000))  # random tokens: nothing beats guessing by much
    assert abs(b.unigram - b.uniform) < 0.1 and abs(b.bigram - b.uniform) < 0.1


def test_bits_per_char_and_the_step_a_level_was_passed():
    assert bits_per_char(2 * math.log(2), 2.0) == pytest.approx(1.0)
    assert bits_per_char(math.log(2), 1.0) == pytest.approx(1.0)
    evals = [(0, 4.0), (100, 2.5), (200, 2.0)]
    assert step_passed(evals, 2.6) == 100 and step_passed(evals, 1.0) is None


def test_a_run_records_its_baselines_and_runs_show_bits_per_char(small_text, tmp_path):
    from babygpt.lessons.baselines import Baselines
    from babygpt.store.archive import export_run, import_run
    from babygpt.store.pipeline import start_run
    from babygpt.store.runs import RunStore
    from tests.helpers import tiny_plan

    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=10))
    trainer.run()
    b = Baselines.from_config(store.get(info.id).config)
    assert b.bigram < b.unigram < b.uniform  # structured text: counts beat guessing, pairs beat single tokens
    assert b.chars_per_token == 1.0  # the char tokenizer
    row = next(r for r in store.summaries() if r["id"] == info.id)
    assert row["best_val_bpc"] == pytest.approx(row["best_val_loss"] / math.log(2))
    imported = import_run(store, export_run(store, info.id, tmp_path / "run.zip"))
    assert Baselines.from_config(store.get(imported.id).config) == b
    assert Baselines.from_config({"data": {"baselines": {"uniform": "x"}}}) is None  # damaged: no levels, no crash
