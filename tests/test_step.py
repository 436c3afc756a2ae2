"""The GPU step's pieces, held to the plain step on the CPU (CI has no GPU): the step a CUDA graph records, the
warm-up it undoes, batches drawn ahead, checkpoints that travel between the two, and batched evaluation."""

import pytest
import torch

from babygpt.config import ModelConfig
from babygpt.model.sizing import eval_batches_per_forward
from babygpt.training import evaluation
from babygpt.training.step import BatchFeed, _Snapshot, graph_obstacle, portable_optimizer_state
from babygpt.training.trainer import Callbacks
from tests.helpers import plan_trainer, tiny_plan


class Notes(Callbacks):
    def __init__(self):
        self.notes = []

    def on_notice(self, trainer, message):
        self.notes.append(message)


def _trainer(text, **overrides):
    """A tiny trainer in float32 unless a test asks for another precision: the recordable step is held to the plain
    one as tightly as float32 allows, which ``auto`` would not give on a CPU with fast bfloat16."""
    plan = tiny_plan(text, **{"max_iters": 30, "eval_interval": 30, "seed": 3, "dropout": 0.0, "dtype": "float32",
                              **overrides})
    notes = Notes()
    return plan_trainer(plan, [notes]), notes


def _weights(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


# How far the recordable step may drift from the plain one in 30 steps. In float32 the learning rate travels as a
# float32 tensor instead of a Python float, so rounding differs slightly; in bfloat16 the matmuls round those
# differences to 8 bits of mantissa, and they grow step by step.
STEP_BOUNDS = {"float32": dict(rtol=1e-4, atol=1e-5, val=1e-4), "bfloat16": dict(rtol=1e-2, atol=1e-3, val=1e-2)}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_recordable_step_trains_as_the_plain_step(small_text, dtype):
    bound = STEP_BOUNDS[dtype]
    plain, _ = _trainer(small_text, dtype=dtype)
    static, _ = _trainer(small_text, dtype=dtype)
    static.step_program = static.build_static_step()
    plain_result, static_result = plain.run(), static.run()
    assert plain.dtype == static.dtype == dtype
    assert static_result.step == plain_result.step == 30
    for a, b in zip(_weights(plain), _weights(static), strict=True):
        torch.testing.assert_close(a, b, rtol=bound["rtol"], atol=bound["atol"])
    assert static_result.val_loss == pytest.approx(plain_result.val_loss, abs=bound["val"])


def test_the_recordable_step_never_waits_for_the_host(small_text, monkeypatch):
    """A CUDA graph cannot contain a host sync; on the CPU a call that would sync is made to fail instead."""
    trainer, _ = _trainer(small_text, grad_clip=1.0)
    program = trainer.build_static_step()
    x, y = trainer.feed.next()

    def no_sync(*args, **kwargs):
        raise AssertionError("the step read a tensor on the host")

    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, no_sync)
    losses = [program(x, y, 1e-3) for _ in range(3)]
    monkeypatch.undo()
    assert losses[2].item() < losses[0].item()  # the same batch three times: the loss falls


def test_undoing_the_warm_up_restores_weights_optimizer_and_random_state(small_text):
    trainer, _ = _trainer(small_text)
    program = trainer.build_static_step()
    x, y = trainer.feed.next()
    program(x, y, 1e-3)  # the optimizer has state now
    before = _weights(trainer)
    moments = {k: v.clone() for k, v in next(iter(trainer.optimizer.state.values())).items()}
    snapshot = _Snapshot(trainer.model, trainer.optimizer, trainer.device)
    for _ in range(3):
        program(x, y, 1e-2)
    assert not torch.equal(before[0], _weights(trainer)[0])
    rng_after_warmup = torch.rand(1)
    snapshot.restore()
    for a, b in zip(before, _weights(trainer), strict=True):
        assert torch.equal(a, b)
    for key, value in next(iter(trainer.optimizer.state.values())).items():
        assert torch.equal(value, moments[key]), key
    assert torch.equal(torch.rand(1), rng_after_warmup)  # the random stream is back where it was


def test_undoing_the_warm_up_of_a_fresh_optimizer_clears_its_state(small_text):
    trainer, _ = _trainer(small_text)
    snapshot = _Snapshot(trainer.model, trainer.optimizer, trainer.device)
    program = trainer.build_static_step()
    program(*trainer.feed.next(), 1e-3)
    snapshot.restore()
    state = next(iter(trainer.optimizer.state.values()))
    assert float(state["step"]) == 0 and not state["exp_avg"].any() and not state["exp_avg_sq"].any()


def test_a_checkpoint_written_with_the_recordable_step_resumes_in_the_plain_one(small_text):
    static, _ = _trainer(small_text, max_iters=10, eval_interval=10)
    static.step_program = static.build_static_step()
    static.run()
    state = static.state_dict()
    groups = state["optimizer"]["param_groups"]
    assert all(isinstance(g["lr"], float) and g["capturable"] is False for g in groups)
    assert isinstance(static.optimizer.param_groups[0]["lr"], torch.Tensor)  # the live optimizer is untouched
    plan = tiny_plan(small_text, max_iters=20, eval_interval=10, seed=3, dropout=0.0)
    resumed = plan_trainer(plan, model_state=static.model.state_dict(), trainer_state=state)
    assert resumed.optimizer.param_groups[0]["lr"] == groups[0]["lr"]
    assert resumed.run().step == 20


def test_batches_drawn_ahead_are_the_same_batches_and_checkpoint_before_the_draw():
    data = torch.arange(5000) % 97
    plain = BatchFeed(data, 16, 4, torch.Generator().manual_seed(1), torch.device("cpu"))
    ahead = BatchFeed(data, 16, 4, torch.Generator().manual_seed(1), torch.device("cpu"))
    ahead.ahead = True  # as on a GPU
    for _ in range(5):
        for a, b in zip(plain.next(), ahead.next(), strict=True):
            assert torch.equal(a, b)
        # a checkpoint now must resume with the batch the next step would get, not the one after it
        assert torch.equal(plain.generator_state(), ahead.generator_state())
    resumed = BatchFeed(data, 16, 4, torch.Generator(), torch.device("cpu"))
    resumed.generator.set_state(ahead.generator_state())
    assert torch.equal(resumed.next()[0], plain.next()[0])


def test_a_step_that_cannot_be_recorded_falls_back_and_says_so(small_text):
    plain, _ = _trainer(small_text, max_iters=10, eval_interval=10)
    broken, notes = _trainer(small_text, max_iters=10, eval_interval=10)

    class Unrecordable:
        def __call__(self, x, y, lr):
            for param in broken.model.parameters():  # a recording that fails half way leaves memory in .grad
                param.grad = torch.full_like(param, 1e3)
            raise RuntimeError("operation not permitted when stream is capturing\ndetails")

    broken.step_program = Unrecordable()
    assert broken.run().val_loss == plain.run().val_loss  # the failed attempt changed nothing
    assert notes.notes == ["CUDA graphs could not record this step (RuntimeError: operation not permitted when "
                           "stream is capturing); training goes on with the plain step: the same results, slower."]


def test_cuda_graphs_asked_for_where_they_cannot_run_are_named(small_text):
    trainer, notes = _trainer(small_text, cuda_graphs=True)
    assert trainer.step_program is None
    assert notes.notes == ["CUDA graphs are off for this run: CUDA graphs need a CUDA GPU. It trains with the "
                           "plain step."]
    cuda = torch.device("cuda")
    assert graph_obstacle(cuda, "bfloat16", 1, False) is None
    assert "loss scaler" in graph_obstacle(cuda, "float16", 1, False)
    assert "accumulation" in graph_obstacle(cuda, "float32", 4, False)
    assert "processes" in graph_obstacle(cuda, "float32", 1, True)


def test_portable_state_leaves_a_plain_optimizer_as_it_was():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    assert portable_optimizer_state(optimizer)["param_groups"][0]["lr"] == 1e-3


def test_batched_evaluation_equals_one_batch_at_a_time(small_text, monkeypatch):
    trainer, _ = _trainer(small_text, eval_iters=12)
    assert eval_batches_per_forward(trainer.model_config, 12) > 1  # otherwise this test compares nothing
    batched = trainer.estimate_loss()
    monkeypatch.setattr(evaluation, "eval_batches_per_forward", lambda config, iters: 1)
    one_by_one = trainer.estimate_loss()
    assert batched["train"] == pytest.approx(one_by_one["train"], abs=1e-6)
    assert batched["val"] == pytest.approx(one_by_one["val"], abs=1e-6)


def test_evaluation_takes_as_many_batches_as_a_training_step_has_memory_for():
    baby = ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65)
    lecture = ModelConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65)
    assert eval_batches_per_forward(baby, 200) == 16
    assert eval_batches_per_forward(lecture, 200) == 31
    assert eval_batches_per_forward(lecture, 20) == 20  # never more than asked for
    assert eval_batches_per_forward(ModelConfig(n_layer=4, n_head=4, n_embd=128, vocab_size=50257), 200) == 1

