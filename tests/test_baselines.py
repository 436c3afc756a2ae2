"""The baselines and bits per character, against values worked out by hand on tiny inputs."""

import math

import pytest
import torch

from babygpt.lessons.baselines import bits_per_char, compute_baselines, step_passed


def test_baselines_by_hand(monkeypatch):
    from babygpt.lessons import baselines

    monkeypatch.setattr(baselines, "PRIOR_WEIGHTS", [1.0])  # one pseudo-count: the arithmetic below by hand
    train, val = torch.tensor([0, 1, 0, 1, 0]), torch.tensor([0, 1, 1])
    b = compute_baselines(train, val, vocab_size=2, val_chars=6)
    assert b.uniform == pytest.approx(math.log(2))
    # unigram: counts 3+1 and 2+1 → p0 = 4/7, p1 = 3/7
    assert b.unigram == pytest.approx(-(math.log(4 / 7) + 2 * math.log(3 / 7)) / 3)
    # bigram, towards the unigram: c(0→1) = 2 of c(0) = 2 → (2 + 3/7) / 3; c(1→1) = 0 of c(1) = 2 → (0 + 3/7) / 3
    assert b.bigram == pytest.approx(-(math.log(17 / 21) + math.log(1 / 7)) / 2)
    assert b.chars_per_token == 2.0


@pytest.mark.parametrize("vocab, n", [(5_000, 5_000), (50_000, 22_000), (300, 2_000)])
def test_thin_counts_are_not_worse_than_guessing(vocab, n):
    """The walkthrough's defect: add-one unigram counts over 5,000 symbols of a short text scored 8.59 against
    uniform guessing's 8.52. On random text nothing can beat guessing; the smoothed counts now come within
    noise of it, where add-one was far above."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (n,), generator=g)
    train, val = ids[: n * 9 // 10], ids[n * 9 // 10:]
    b = compute_baselines(train, val, vocab_size=vocab, val_chars=len(val))
    add_one = float(-torch.log((torch.bincount(train, minlength=vocab) + 1.0) / (len(train) + vocab))[val].mean())
    assert add_one > b.uniform + 0.05  # the old smoothing's failure, on the same text
    assert abs(b.unigram - b.uniform) < 0.01 and abs(b.bigram - b.uniform) < 0.01


def test_plenty_of_text_gives_the_plain_frequencies(shakespeare):
    import numpy as np

    text = shakespeare.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text[:300_000]])
    train, val = ids[:270_000], ids[270_000:]
    b = compute_baselines(train, val, vocab_size=len(vocab), val_chars=len(val))
    counts = np.bincount(train.numpy(), minlength=len(vocab)).astype(float)
    seen = counts[val.numpy()] > 0
    plain = -np.log(counts[val.numpy()][seen] / counts.sum()).mean()  # no smoothing, over the tokens it saw
    assert abs(b.unigram - plain) < 0.02
    assert b.bigram < b.unigram - 0.5 < b.uniform  # pairs tell far more than single letters


def test_a_count_model_no_better_than_guessing_is_named_not_passed():
    from babygpt.figures.viz import loss_figure
    from babygpt.lessons.baselines import Baselines

    b = Baselines(uniform=8.52, unigram=8.53, bigram=8.0, chars_per_token=1.0)
    assert b.worse_than_guessing() == ["unigram counts"]
    fig = loss_figure([], [{"step": 0, "train_loss": 8.6, "val_loss": 8.6, "elapsed_s": 0.0},
                           {"step": 100, "train_loss": 7.0, "val_loss": 7.5, "elapsed_s": 9.0}], baselines=b)
    notes = [a.text for a in fig.layout.annotations]
    assert "unigram counts 8.53<br>no better than guessing<br>on this little text" in notes
    assert "bigram counts 8.00<br>passed by step 100" in notes


def test_bits_per_char_and_the_step_a_level_was_passed():
    assert bits_per_char(2 * math.log(2), 2.0) == pytest.approx(1.0)
    assert bits_per_char(math.log(2), 1.0) == pytest.approx(1.0)
    evals = [(0, 4.0), (100, 2.5), (200, 2.0)]
    assert step_passed(evals, 2.6) == 100 and step_passed(evals, 1.0) is None


def test_a_run_records_its_baselines_and_runs_show_bits_per_char(small_text, tmp_path):
    from babygpt.lessons.baselines import Baselines
    from babygpt.orchestration.runs import start_run
    from babygpt.store.archive import export_run, import_run
    from babygpt.store.runs import RunStore
    from tests.helpers import LIMITS, tiny_plan

    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=10))
    trainer.run()
    b = Baselines.from_config(store.get(info.id).config)
    assert b.bigram < b.unigram < b.uniform  # structured text: counts beat guessing, pairs beat single tokens
    assert b.chars_per_token == 1.0  # the char tokenizer
    row = next(r for r in store.summaries() if r.id == info.id)
    assert row.best_val_bpc == pytest.approx(row.best_val_loss / math.log(2))
    imported = import_run(store, export_run(store, info.id, tmp_path / "run.zip"), limits=LIMITS)
    assert Baselines.from_config(store.get(imported.id).config) == b
    assert Baselines.from_config({"data": {"baselines": {"uniform": "x"}}}) is None  # damaged: no levels, no crash
