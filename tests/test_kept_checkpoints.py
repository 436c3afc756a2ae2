"""Kept checkpoints: a run keeps copies of its weights at evenly spread steps, in its folder, counted in its
owner's quota, deleted with it, left out of its archive, kept the same across a resume, and read back for
features over training."""

from __future__ import annotations

import zipfile

import pytest
import torch
from safetensors.torch import load_file

from babygpt.config import TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.features.fit import fit_sae
from babygpt.features.over_training import history_over_checkpoints
from babygpt.features.sae import SAEConfig
from babygpt.orchestration.plan import encode_corpus
from babygpt.orchestration.runs import resume_run, start_run
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.archive import export_run
from babygpt.store.kept import kept_checkpoints, kept_models
from babygpt.store.quota import format_bytes, run_bytes, weights_bytes
from babygpt.store.runs import RunStore
from babygpt.training.trainer import Callbacks
from tests.helpers import tiny_plan


class WeightsAt(Callbacks):
    """The model's weights at every checkpoint, as the trainer holds them then; optionally stops at a step."""

    def __init__(self, stop_at: int | None = None):
        self.at: dict[int, dict[str, torch.Tensor]] = {}
        self.stop_at = stop_at

    def on_step(self, trainer, metrics) -> None:
        if metrics.step == self.stop_at:
            trainer.request_stop()

    def on_checkpoint(self, trainer) -> None:
        self.at[trainer.step] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_same_weights(path, expected: dict[str, torch.Tensor]) -> None:
    stored = load_file(str(path))
    assert set(stored) == set(expected)
    for name, tensor in stored.items():
        assert torch.equal(tensor, expected[name]), name


def test_kept_steps_are_spread_evenly_before_the_end_and_never_more_than_the_checkpoints():
    every_100 = dict(max_iters=1000, eval_interval=100)
    assert TrainConfig(**every_100, keep_checkpoints=4).kept_steps() == (200, 400, 600, 800)
    assert TrainConfig(**every_100, keep_checkpoints=1).kept_steps() == (500,)
    assert TrainConfig(**every_100, keep_checkpoints=3).kept_steps() == (300, 500, 800)
    assert TrainConfig(**every_100, keep_checkpoints=20).kept_steps() == tuple(range(100, 1000, 100))
    assert TrainConfig(**every_100).kept_steps() == ()
    with pytest.raises(BabyGPTError, match="keep_checkpoints must be zero"):
        TrainConfig(keep_checkpoints=-1).validate()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_run_keeps_the_weights_it_had_at_each_kept_step(small_text, dtype):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=40, eval_interval=5, keep_checkpoints=3, dtype=dtype)
    seen = WeightsAt()
    trainer, info = start_run(store, plan, callbacks=[seen])
    assert trainer.run().status == "done"
    kept = kept_checkpoints(store, info.id)
    assert [k.step for k in kept] == [10, 20, 30]
    for k in kept:
        assert_same_weights(k.path, seen.at[k.step])
    assert not torch.equal(load_file(str(kept[0].path))["lm_head.weight"], seen.at[40]["lm_head.weight"])
    models = kept_models(store, info.id)
    assert [s for s, _ in models] == [10, 20, 30]
    assert all(torch.equal(m.state_dict()[n], seen.at[s][n]) for s, m in models for n in seen.at[s])
    # weights only: the copies together take three times the float32 weights, and the quota sees them
    assert sum(k.path.stat().st_size for k in kept) == pytest.approx(3 * weights_bytes(plan.model_config), rel=0.05)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_resumed_run_keeps_the_same_steps_with_the_same_weights(small_text, dtype):
    store = RunStore()
    whole = tiny_plan(small_text, max_iters=40, eval_interval=5, keep_checkpoints=3, dtype=dtype)
    trainer, straight = start_run(store, whole, name="straight")
    trainer.run()
    stopped = tiny_plan(small_text, max_iters=40, eval_interval=5, keep_checkpoints=3, dtype=dtype)
    trainer, info = start_run(store, stopped, name="stopped", callbacks=[WeightsAt(stop_at=15)])
    assert trainer.run().status == "stopped" and trainer.step == 15
    assert [k.step for k in kept_checkpoints(store, info.id)] == [10]
    trainer, _ = resume_run(store, info.id, stopped.corpus)
    assert trainer.run().status == "done"
    resumed = kept_checkpoints(store, info.id)
    assert [k.step for k in resumed] == [10, 20, 30]
    for mine, theirs in zip(resumed, kept_checkpoints(store, straight.id), strict=True):
        assert_same_weights(mine.path, load_file(str(theirs.path)))


def test_deleting_a_run_deletes_its_kept_weights_and_its_archive_leaves_them_out(small_text, tmp_path):
    store = RunStore()
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=5, keep_checkpoints=2))
    trainer.run()
    kept = kept_checkpoints(store, info.id)
    assert [k.step for k in kept] == [5, 15]
    with zipfile.ZipFile(export_run(store, info.id, tmp_path / "run.zip")) as z:
        assert not [n for n in z.namelist() if "kept" in n]
    store.delete(info.id)
    assert not any(k.path.exists() for k in kept) and not store.run_dir(info.id).exists()


def test_a_run_whose_kept_weights_would_not_fit_the_quota_is_refused_before_it_trains(monkeypatch, small_text):
    monkeypatch.setenv("BABYGPT_USER_DISK_MB", "1")
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=2))
    plan = tiny_plan(small_text, max_iters=100, eval_interval=10, keep_checkpoints=9)  # ~26 k parameters
    needed = run_bytes(plan.model_config, plan.train_config)
    assert needed > 2**20 > run_bytes(plan.model_config, TrainConfig(max_iters=100, eval_interval=10))
    with pytest.raises(BabyGPTError, match=rf"This run \(its checkpoint and 9 kept copies of its weights\) needs "
                                           rf"about {format_bytes(needed)}, and your runs and uploads already use "
                                           r"0.0 MB of the 1.0 MB"):
        scheduler.submit("a" * 22, plan)
    assert scheduler.store.list_runs() == []


def test_features_over_training_match_each_kept_checkpoint_of_a_real_run(small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=40, eval_interval=5, keep_checkpoints=3)
    trainer, info = start_run(store, plan)
    trainer.run()
    loaded = store.load(info.id)
    ids = encode_corpus(plan.corpus, loaded.tokenizer)
    config = SAEConfig(d_in=32, n_features=64, k=4, layer=1, batch_size=256)
    final = fit_sae(loaded.model, ids, config, tokens=2000, eval_tokens=256).sae
    history = history_over_checkpoints(final, kept_models(store, info.id), ids, tokens=2000)
    assert history.steps == [10, 20, 30]
    assert history.best_cosine.shape == (64, 3) and history.best_match.shape == (64, 3)
    assert ((history.best_cosine > 0) & (history.best_cosine <= 1 + 1e-5)).all()
    assert len(history.of(0)) == 3 and len(history.appeared) == 64


def test_the_command_line_keeps_checkpoints_with_keep_checkpoints(small_text, tmp_path, capsys):
    import json

    from babygpt.cli import main

    text = tmp_path / "cats.txt"
    text.write_text(small_text)
    assert main(["train", "--data", str(text), "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                 "--block-size", "16", "--batch-size", "4", "--max-iters", "20", "--eval-interval", "5",
                 "--eval-iters", "1", "--device", "cpu", "--keep-checkpoints", "2"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]
    store = RunStore()
    assert [k.step for k in kept_checkpoints(store, run)] == [5, 15]
    assert store.get(run).record.training.keep_checkpoints == 2
    assert main(["train", "--data", str(text), "--keep-checkpoints", "-1"]) == 2
    assert "keep_checkpoints must be" in capsys.readouterr().err


def test_the_training_page_offers_kept_checkpoints_and_the_run_keeps_them():
    from babygpt.config import BY_NAME
    from tests.helpers import app, wait_for
    from ui.state import scheduler

    at = app()
    at.switch_page("views/train.py").run()
    kept_slider = at.slider(key="hp_keep_checkpoints")
    assert kept_slider.label == "kept checkpoints" and kept_slider.value == 0
    assert kept_slider.help == BY_NAME["keep_checkpoints"].help
    at.slider(key="hp_n_layer").set_value(1).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.select_slider(key="hp_block_size").set_value(16).run()
    at.number_input(key="hp_max_iters").set_value(40).run()
    at.number_input(key="hp_eval_interval").set_value(10).run()
    at.slider(key="hp_keep_checkpoints").set_value(2).run()
    at.button(key="start").click().run()
    assert not at.error, [e.value for e in at.error]
    run_id = scheduler().store.list_runs()[0].id
    wait_for(lambda: scheduler().store.get(run_id).status == "done", 120, "the run to finish")
    assert [k.step for k in kept_checkpoints(RunStore(), run_id)] == [10, 30]
    scheduler().stop_all(wait=30)


def test_the_features_page_matches_a_feature_across_the_runs_kept_checkpoints(small_text, tmp_path,
                                                                              fresh_resources):
    from babygpt.features import browser
    from babygpt.features.over_training import history_over_checkpoints
    from babygpt.orchestration.plan import plan_training
    from babygpt.store.corpora import run_corpus
    from babygpt.text.corpus import corpus_from_path
    from tests.helpers import tiny_config
    from tests.test_features_page import frame, page_on, store_sae
    from ui.features_cache import history_tokens

    path = tmp_path / "cats.txt"
    path.write_text(small_text * 3)
    store = RunStore()
    plans = {keep: plan_training(corpus_from_path(path), "char", "gpt",
                                 tiny_config(max_iters=30, eval_interval=10, dtype="float32", keep_checkpoints=keep),
                                 n_layer=2, n_head=2, n_embd=16, block_size=16) for keep in (0, 2)}
    runs = {}
    for keep, plan in plans.items():
        trainer, runs[keep] = start_run(store, plan, name=f"keep {keep}")
        trainer.run()
    config = SAEConfig(d_in=16, n_features=64, k=4, layer=1, batch_size=256)
    kept = store_sae(store, runs[2].id, config)
    store_sae(store, runs[0].id, config)

    without = page_on(runs[0].id)
    assert "kept only its latest checkpoint" in " ".join(c.value for c in without.caption)
    assert not [b for b in without.button if b.key == "over_training"]

    at = page_on(runs[2].id)
    assert "This run kept its weights at steps 10, 20." in " ".join(c.value for c in at.caption)
    at.button(key="over_training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    feature = at.selectbox(key="features_feature").value
    loaded = store.load(runs[2].id)
    sae, _ = kept.load()
    ids = encode_corpus(run_corpus(store, loaded.info), loaded.tokenizer)
    live = browser.browser_data(loaded.model, sae, *kept.load()[1:], loaded.tokenizer).table.frequency > 0
    history = history_over_checkpoints(sae, kept_models(store, runs[2].id), ids, tokens=history_tokens(kept),
                                       live=live)
    shown = frame(at, "best cosine")
    assert list(shown["step"]) == [10, 20]
    assert list(shown["best cosine"]) == [round(c, 3) for _, c, _ in history.of(feature)]
    assert list(shown["matching feature"]) == [m for _, _, m in history.of(feature)]
    caption = " ".join(c.value for c in at.caption)
    assert f"{history.n_appeared:,} of the {history.n_live:,} live features match a direction with cosine ≥ " \
        f"{history.threshold:.2f}" in caption
    assert f"the best match averages {history.chance.mean:.2f} and 99% of features stay under " \
        f"{history.chance.top:.2f}" in caption, "the chance level beside the figures"
    other = 0 if feature else 1
    at.selectbox(key="features_feature").set_value(other).run()
    assert list(frame(at, "best cosine")["best cosine"]) == [round(c, 3) for _, c, _ in history.of(other)], \
        "the match stays on the page while another feature is picked"
