"""Training until it is good enough: ``until_val_loss`` stops a run at the first evaluation at or below it, keeps
that checkpoint, says how long it took with evaluations excluded, is stored with the run (so resume honours it), and
is set from the command line and the training page."""

import json
from types import SimpleNamespace

import pytest

from babygpt.cli import main
from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from babygpt.training.trainer import Callbacks
from tests.helpers import plan_trainer, tiny_plan, wait_for

TINY_RUN = ["--preset", "gpt", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
            "--batch-size", "8", "--max-iters", "60", "--eval-interval", "5", "--eval-iters", "4", "--lr", "1e-2",
            "--warmup-iters", "5", "--seed", "0", "--device", "cpu", "--dtype", "float32"]


def _train(capsys, home, *args: str) -> dict:
    assert main(["--home", str(home), "train", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _val_losses(store: RunStore, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.loss) for m in store.metrics(run_id) if m.split == "val")


def _first_at_or_below(losses: list[tuple[int, float]], target: float) -> int:
    return next(step for step, loss in losses if loss <= target)


def test_the_cli_stops_at_the_first_evaluation_at_or_below_the_target_and_keeps_its_checkpoint(
        tmp_path, capsys, small_text):
    text = tmp_path / "cats.txt"
    text.write_text(small_text)
    home = tmp_path / "home"
    reference = _train(capsys, home, "--data", str(text), *TINY_RUN)
    store = RunStore(home)
    curve = _val_losses(store, reference["run"])
    target = dict(curve)[30]  # a loss the same run reaches part way: exactly, in float32 on the CPU
    expected = _first_at_or_below(curve, target)
    assert 0 < expected < 60, curve

    summary = _train(capsys, home, "--data", str(text), *TINY_RUN, "--until-val-loss", repr(target))
    own = _val_losses(store, summary["run"])
    stop = _first_at_or_below(own, target)
    assert summary["target_step"] == summary["step"] == stop == expected
    assert own[-1][0] == stop and all(loss > target for step, loss in own if step < stop), "nothing after it"
    assert summary["status"] == RunStatus.DONE and summary["target_reached"] is True
    assert summary["target_val_loss"] == target
    assert summary["target_wall_s"] > 0 and summary["target_eval_s"] > 0
    assert store.load_trainer_state(summary["run"])["step"] == stop, "the checkpoint kept is that evaluation's"
    info = store.get(summary["run"])
    assert info.config["train"]["until_val_loss"] == target, "stored with the run"
    assert f"Stopped at step {stop}" in info.message and "reached the target" in info.message

    resumed = _train(capsys, home, "--resume", summary["run"])
    after = [(step, loss) for step, loss in _val_losses(store, summary["run"]) if step > stop]
    assert resumed["target_step"] == resumed["step"] == _first_at_or_below(after, target), "resume honours it"

    untouched = _train(capsys, home, "--data", str(text), *TINY_RUN, "--max-iters", "10")
    assert "target_step" not in untouched and untouched["step"] == 10, "off by default"


def test_a_target_never_reached_trains_every_step_and_says_so(tmp_path, capsys, small_text):
    text = tmp_path / "cats.txt"
    text.write_text(small_text)
    summary = _train(capsys, tmp_path / "home", "--data", str(text), *TINY_RUN, "--max-iters", "10",
                     "--until-val-loss", "0.001")
    assert summary["step"] == 10 and summary["target_reached"] is False
    assert summary["target_step"] is None and summary["target_wall_s"] is None


def test_a_negative_target_is_a_sentence(capsys):
    assert main(["train", "--data", "python-docs", "--until-val-loss", "-1"]) == 2
    err = capsys.readouterr().err
    assert "until_val_loss must be zero" in err and "Traceback" not in err


class Checkpoints(Callbacks):
    def __init__(self):
        self.steps: list[int] = []

    def on_checkpoint(self, trainer):
        self.steps.append(trainer.step)


def test_the_time_to_the_target_excludes_every_evaluation(small_text, monkeypatch):
    """On the test's own clock (each step 0.02 s, each evaluation 3 s) with scripted evaluations: the target is met
    at the third evaluation (step 20), after 20 steps of training and three evaluations."""
    from babygpt.training import trainer as trainer_module

    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    plan = tiny_plan(small_text, max_iters=100, eval_interval=10, checkpoint_interval=15, until_val_loss=2.5)
    checkpoints = Checkpoints()
    trainer = plan_trainer(plan, [checkpoints])
    train_step, scripted = trainer._train_step, iter([4.0, 3.0, 2.5, 2.0, 1.5])

    def step(lr):
        clock.now += 0.02
        return train_step(lr)

    def evaluate(eval_iters=None):
        clock.now += 3.0
        loss = next(scripted)
        return {"train": loss, "val": loss}

    trainer._train_step, trainer.estimate_loss = step, evaluate
    result = trainer.run()
    assert result.status == RunStatus.DONE and result.step == 20
    assert result.target.step == 20 and result.target.val_loss == 2.5
    assert result.target.wall_s == pytest.approx(20 * 0.02), "the steps alone"
    assert result.target.eval_s == pytest.approx(3 * 3.0), "the evaluations at steps 0, 10 and 20"
    assert checkpoints.steps == [15, 20], "the target's step is checkpointed even off the checkpoint interval"


@pytest.mark.usefixtures("fresh_resources")
def test_the_training_page_sets_the_target_and_says_when_it_was_reached():
    from tests.helpers import app
    from ui.state import scheduler

    at = app()
    at.switch_page("views/train.py").run()
    target = at.number_input(key="hp_until_val_loss")
    assert target.value == 0.0 and "0: off" in target.help, "off by default"
    at.slider(key="hp_n_layer").set_value(1).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.select_slider(key="hp_block_size").set_value(16).run()
    at.number_input(key="hp_until_val_loss").set_value(20.0).run()  # above ln(V): met at the first evaluation
    at.button(key="start").click().run()
    assert not at.error, [e.value for e in at.error]
    store = RunStore()
    (run,) = store.list_runs()
    run_id = run.id
    assert store.get(run_id).config["train"]["until_val_loss"] == 20.0, "passed through the run's config"
    wait_for(lambda: scheduler().snapshot(run_id).status is RunStatus.DONE, 120, "the run to reach its target")
    assert scheduler().snapshot(run_id).step == 0
    at.run()
    assert any("Stopped at step 0" in i.value and "reached the target" in i.value for i in at.info), \
        [i.value for i in at.info]

    at.number_input(key="hp_until_val_loss").set_value(0.0).run()  # off again: Resume trains every step
    at.number_input(key="hp_max_iters").set_value(120).run()  # fewer than it was started with: it stopped early
    at.button(key="resume").click().run()
    assert not at.error, [e.value for e in at.error]
    wait_for(lambda: scheduler().snapshot(run_id).status is RunStatus.DONE and scheduler().snapshot(run_id).step,
             120, "the resumed run to finish")
    assert scheduler().snapshot(run_id).step == 120 and store.get(run_id).config["train"]["until_val_loss"] == 0.0


def test_a_run_that_met_its_target_may_resume_without_more_steps(small_text):
    """A finished run is given more steps to resume, unless it stopped early at its target: it has steps left."""
    from babygpt.errors import BabyGPTError
    from babygpt.orchestration.runs import start_run
    from babygpt.server.scheduler import check_can_resume
    from babygpt.server.users import Actor

    store, teacher = RunStore(), Actor("teacher-key-0000000000", admin=True)
    finished = {}
    for target in (0.0, 20.0):  # 20 nats: met at the first evaluation, step 0
        trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5, until_val_loss=target))
        assert trainer.run().status == RunStatus.DONE
        finished[target] = store.get(info.id)
    with pytest.raises(BabyGPTError, match="finished its 10 steps"):
        check_can_resume(teacher, finished[0.0], 10)
    check_can_resume(teacher, finished[20.0], 10)
    assert store.load_trainer_state(finished[20.0].id)["step"] == 0
