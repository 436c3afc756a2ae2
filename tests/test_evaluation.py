"""Estimating a loss is a plain function: the CLI's ``eval`` of a saved run computes what a trainer's evaluation of
the same weights computes, and builds neither a trainer nor an optimizer to do it."""

import json

import pytest
import torch

from babygpt.cli import eval_split, main
from babygpt.store.runs import RunStore
from babygpt.text.datasets import load_corpus
from babygpt.training import trainer as trainer_module
from babygpt.training.evaluation import estimate_loss, eval_seed
from babygpt.training.placement import prepare


def test_the_cli_eval_is_the_trainers_estimate_without_a_trainer_or_an_optimizer(small_text, tmp_path, capsys,
                                                                                  monkeypatch):
    text = tmp_path / "cats.txt"
    text.write_text(small_text)
    home = str(tmp_path / "home")
    assert main(["--home", home, "train", "--data", str(text), "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
                 "--block-size", "16", "--batch-size", "8", "--max-iters", "10", "--eval-interval", "10",
                 "--eval-iters", "2", "--device", "cpu", "--dtype", "float32"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]
    loaded = RunStore(home).load(run)
    model, placement = prepare(loaded.model_config, loaded.train_config, loaded.model.state_dict())
    trainer = trainer_module.Trainer(model, loaded.train_config, eval_split(loaded, load_corpus(str(text))),
                                     placement)
    expected = trainer.estimate_loss(3)  # a fresh trainer is at step 0: eval's batches

    def refused(*args, **kwargs):
        raise AssertionError("eval built a trainer or an optimizer")

    monkeypatch.setattr(trainer_module.Trainer, "__init__", refused)
    monkeypatch.setattr(torch.optim, "AdamW", refused)
    assert main(["--home", home, "eval", "--run", run, "--eval-iters", "3"]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (measured["train_loss"], measured["val_loss"]) == (expected["train"], expected["val"])


def test_the_estimate_puts_the_models_mode_back_and_depends_only_on_its_seed(small_text):
    from tests.helpers import tiny_plan

    plan = tiny_plan(small_text, dtype="float32")
    model, _ = prepare(plan.model_config, plan.train_config)
    model.eval()
    first = estimate_loss(model, plan.split, 4, 3, "float32", eval_seed(1, 0))
    assert not model.training, "an evaluated model stays in the mode it was in"
    model.train()
    assert estimate_loss(model, plan.split, 4, 3, "float32", eval_seed(1, 0)) == first
    assert model.training
    other = estimate_loss(model, plan.split, 4, 3, "float32", eval_seed(1, 5))
    assert other["val"] != pytest.approx(first["val"], abs=1e-9), "another step's seed draws other batches"
