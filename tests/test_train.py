import math
import sys

import pytest
import torch

from babygpt.config import PRESETS, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.runs import resume_run, start_run
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from babygpt.training.trainer import Callbacks, lr_at
from tests.helpers import plan_trainer, tiny_config, tiny_plan


class Recorder(Callbacks):
    def __init__(self, stop_at=None):
        self.steps, self.evals, self.checkpoints, self.done, self.failed = [], [], [], [], []
        self.stop_at = stop_at

    def on_step(self, trainer, m):
        self.steps.append(m)
        if self.stop_at and m.step >= self.stop_at:
            trainer.request_stop()

    def on_eval(self, trainer, m):
        self.evals.append(m)

    def on_checkpoint(self, trainer):
        self.checkpoints.append(trainer.step)

    def on_done(self, trainer, result):
        self.done.append(result)

    def on_failed(self, trainer, message):
        self.failed.append(message)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_learns_in_50_steps(small_text, preset):
    plan = tiny_plan(small_text, preset, max_iters=50, seed=0, lr=1e-2, min_lr=1e-3)
    rec = Recorder()
    result = plan_trainer(plan, [rec]).run()
    first, last = rec.evals[0], rec.evals[-1]
    assert first.step == 0 and last.step == 50
    assert abs(first.val_loss - math.log(plan.tokenizer.vocab_size)) < 0.3
    assert last.val_loss < first.val_loss - 0.3, f"{preset}: {first.val_loss:.3f} -> {last.val_loss:.3f}"
    assert result.status == "done" and result.step == 50
    assert rec.checkpoints == [25, 50]


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=110, eval_interval=10)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 11)
    assert lr_at(9, cfg) == pytest.approx(1e-3 * 10 / 11)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-4) / 2)
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 110))


def test_weight_decay_only_on_matrices(small_text):
    plan = tiny_plan(small_text)
    trainer = plan_trainer(plan)
    decayed, plain = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])


def test_stop_is_honoured_within_one_step(small_text):
    plan = tiny_plan(small_text, max_iters=200, log_interval=1, eval_interval=100)
    rec = Recorder(stop_at=7)
    result = plan_trainer(plan, [rec]).run()
    assert result.status == "stopped" and result.step == 7
    assert rec.checkpoints == [7], "stopping keeps a checkpoint"


def _val_curve(store, run_id):
    return [(m.step, m.split, round(m.loss, 6)) for m in store.metrics(run_id) if m.split in ("val", "train")]


def test_resume_equals_uninterrupted(small_text, tmp_path):
    corpus = Corpus.from_text("tiny", small_text)
    cfg = tiny_config(max_iters=40, eval_interval=10, log_interval=5, checkpoint_interval=10)
    sizes = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, dropout=0.1)
    store = RunStore(tmp_path / "store")
    trainer, full = start_run(store, plan_training(corpus, "char", "gpt", cfg, **sizes))
    trainer.run()

    trainer, part = start_run(store, plan_training(corpus, "char", "gpt", cfg, **sizes))
    trainer.callbacks.append(Recorder(stop_at=20))
    assert trainer.run().status == "stopped"
    assert store.get(part.id).status == "stopped"
    resumed, _ = resume_run(store, part.id, corpus)
    assert resumed.step == 20
    assert resumed.run().status == "done"
    assert _val_curve(store, part.id) == _val_curve(store, full.id)
    assert store.get(part.id).status == "done"


def test_nan_stops_and_keeps_last_good_checkpoint(small_text, tmp_path):
    corpus = Corpus.from_text("tiny", small_text)
    store = RunStore(tmp_path / "store")
    trainer, info = start_run(store, plan_training(corpus, "char", "gpt", tiny_config(max_iters=40, eval_interval=10),
                                                   n_layer=1, n_head=2, n_embd=16, block_size=8))
    poison_at = 15

    class Poison(Callbacks):
        def on_step(self, tr, m):
            if m.step >= poison_at:
                with torch.no_grad():
                    tr.model.token_embedding.weight.fill_(float("nan"))

    trainer.callbacks.append(Poison())
    result = trainer.run()
    assert result.status == "failed"
    assert "diverged" in result.message and "last good checkpoint (step 10)" in result.message
    assert store.get(info.id).status == "failed"
    assert store.load_trainer_state(info.id)["step"] == 10
    assert torch.isfinite(store.load(info.id).model.token_embedding.weight).all()


@pytest.mark.parametrize("overrides, message", [
    (dict(lr=0.0), "learning rate must be positive"),
    (dict(lr=-1.0), "learning rate must be positive"),
    (dict(lr=10.0), "far too large"),
    (dict(eval_interval=100, max_iters=50), r"eval_interval \(100\) is larger than max_iters \(50\)"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
])
def test_bad_train_config(overrides, message):
    with pytest.raises(BabyGPTError, match=message):
        tiny_config(**overrides).validate()


@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=2.5), "batch_size must be a whole number, got 2.5"),
    (dict(lr="fast"), "lr must be a finite number, got 'fast'"),
    (dict(compile=1), "compile must be true or false, got 1"),
    (dict(device=None), "device must be text, got None"),
])
def test_config_fields_must_have_their_type(overrides, message):
    with pytest.raises(BabyGPTError, match=message):
        TrainConfig(**overrides).validate()


def test_runs_saved_with_the_old_sample_field_name_still_load():
    assert TrainConfig.from_dict({"sample_chars": 50}).sample_tokens == 50


def test_text_shorter_than_block(small_text):
    with pytest.raises(BabyGPTError, match="too short"):
        tiny_plan(small_text[:200], block_size=64)


def test_cuda_requested_but_absent(small_text):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(BabyGPTError, match="CUDA was requested but no CUDA GPU is available"):
        tiny_plan(small_text, device="cuda")
    with pytest.raises(BabyGPTError, match="float16 training needs a GPU"):
        tiny_plan(small_text, dtype="float16")


def test_same_seed_same_curve(small_text):
    curves = []
    for _ in range(2):
        plan = tiny_plan(small_text, max_iters=20, eval_interval=10, seed=5)
        rec = Recorder()
        plan_trainer(plan, [rec]).run()
        curves.append([(m.step, m.loss) for m in rec.steps] + [(e.step, e.val_loss) for e in rec.evals])
    assert curves[0] == curves[1]


def test_thread_setting_follows_omp_num_threads(monkeypatch):
    from babygpt.training import devices

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert devices.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: set(range(5)))
    assert devices.default_threads() == 5, "unset: the cores this process may use"
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert devices.default_threads() == 8, "capped: oversubscribing small matmuls slows them"


def test_auto_dtype_follows_the_hardware(monkeypatch):
    from babygpt.training import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_bfloat16_is_faster", lambda: True)
    assert devices.resolve_dtype(cpu, "auto") == "bfloat16"
    monkeypatch.setattr(devices, "cpu_bfloat16_is_faster", lambda: False)
    assert devices.resolve_dtype(cpu, "auto") == "float32"
    assert devices.resolve_dtype(cpu, "bfloat16") == "bfloat16"  # an explicit choice is kept
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert devices.resolve_dtype(torch.device("cuda"), "auto") == "float32"
    with pytest.raises(BabyGPTError, match="choose auto, float32, bfloat16 or float16"):
        devices.check_dtype(cpu, "float64")


@pytest.mark.parametrize("native", [True, False])
def test_trainer_settles_auto_dtype_and_keeps_the_setting(small_text, monkeypatch, native):
    from babygpt.training import devices

    monkeypatch.setattr(devices, "cpu_bfloat16_is_faster", lambda: native)
    plan = tiny_plan(small_text, max_iters=30, eval_interval=30, dtype="auto")
    trainer = plan_trainer(plan)
    assert trainer.dtype == ("bfloat16" if native else "float32")
    assert trainer.config.dtype == "auto"  # a resumed run settles again on the machine it resumes on
    result = trainer.run()
    assert result.val_loss < math.log(plan.model_config.vocab_size) - 0.3


def test_auto_bfloat16_needs_the_flag_and_a_measured_gain(monkeypatch):
    from babygpt.training import devices

    monkeypatch.delenv(devices.CPU_BFLOAT16_ENV, raising=False)
    calls = []
    monkeypatch.setattr(devices, "bfloat16_speedup", lambda: calls.append(1) or 2.0)
    monkeypatch.setattr(devices, "cpu_has_native_bfloat16", lambda: False)
    devices._measured_cpu_bfloat16_is_faster.cache_clear()
    assert devices.cpu_bfloat16_is_faster() is False and calls == []  # no flag: not even measured
    monkeypatch.setattr(devices, "cpu_has_native_bfloat16", lambda: True)
    for speedup, chosen in ((0.53, False), (1.2, False), (2.0, True)):  # the Xeon's 0.53×: the flag is not enough
        monkeypatch.setattr(devices, "bfloat16_speedup", lambda s=speedup: s)
        devices._measured_cpu_bfloat16_is_faster.cache_clear()
        assert devices.cpu_bfloat16_is_faster() is chosen
    devices._measured_cpu_bfloat16_is_faster.cache_clear()


@pytest.mark.parametrize("measured", [True, False])
def test_what_auto_chooses_on_a_cpu_can_be_forced_either_way(monkeypatch, measured):
    """Both branches of ``auto`` run on any machine: the setting wins over the measurement, read on every call."""
    from babygpt.training import devices

    monkeypatch.setattr(devices, "_measured_cpu_bfloat16_is_faster", lambda: measured)
    cpu = torch.device("cpu")
    for value, chosen in (("on", "bfloat16"), ("1", "bfloat16"), ("off", "float32"), ("0", "float32"),
                          ("auto", "bfloat16" if measured else "float32")):
        monkeypatch.setenv(devices.CPU_BFLOAT16_ENV, value)
        assert devices.resolve_dtype(cpu, "auto") == chosen, value
    monkeypatch.setenv(devices.CPU_BFLOAT16_ENV, "maybe")
    with pytest.raises(BabyGPTError, match="BABYGPT_CPU_BFLOAT16 must be on, off or auto"):
        devices.resolve_dtype(cpu, "auto")


class ProductClock:
    """A clock that moves only when a product is taken, by what a product of that precision costs: the
    measurement's logic checked without timing anything (the timed comparison is ``bench.bfloat16_speedup``)."""

    def __init__(self, cost: dict, first_cost: float = 0.0, slow_round: int | None = None):
        self.now, self.cost, self.first_cost, self.slow_round = 0.0, cost, first_cost, slow_round
        self.products, self.seen, self.rounds = 0, set(), 0

    def clock(self) -> float:
        self.rounds += 1  # read at the start and the end of each round
        return self.now

    def multiply(self, a, b):
        self.products += 1
        cost = self.cost[a.dtype] + (self.first_cost if a.dtype not in self.seen else 0.0)
        if self.slow_round is not None and (self.rounds + 1) // 2 == self.slow_round:
            cost *= 10  # the machine was busy during this round
        self.seen.add(a.dtype)
        self.now += cost


def test_the_bfloat16_measurement_times_the_products_and_keeps_the_best_round():
    from babygpt.training import devices

    cost = {torch.float32: 7.2, torch.bfloat16: 1.0}  # the AMX Xeon's ratio
    products = ProductClock(cost)
    assert devices.bfloat16_speedup(size=8, repeats=10, clock=products.clock,
                                    multiply=products.multiply) == pytest.approx(7.2)
    assert products.products == 2 * (3 + 2 * 10), "three warm-up products, then two rounds of ten, per precision"
    warming = ProductClock(cost, first_cost=1000.0)  # a first product that sets up kernels is not counted
    assert devices.bfloat16_speedup(size=8, clock=warming.clock, multiply=warming.multiply) == pytest.approx(7.2)
    busy = ProductClock(cost, slow_round=3)  # bfloat16's first round ran on a busy machine: the other one counts
    assert devices.bfloat16_speedup(size=8, clock=busy.clock, multiply=busy.multiply) == pytest.approx(7.2)
    slower = ProductClock({torch.float32: 1.0, torch.bfloat16: 1.9})  # the Xeon without AMX: 0.53×
    assert devices.bfloat16_speedup(size=8, clock=slower.clock, multiply=slower.multiply) == pytest.approx(1 / 1.9)


def test_bfloat16_attention_matches_float32():
    """On the CPU, bfloat16 runs attention itself in float32 (faster backward); results agree to bf16 precision."""
    from babygpt.config import model_config_for_preset
    from babygpt.model.gpt import MultiHeadAttention

    torch.manual_seed(0)
    attn = MultiHeadAttention(model_config_for_preset("gpt", n_embd=32, n_head=4, block_size=16))
    x = torch.randn(2, 16, 32, requires_grad=True)
    expected = attn(x)
    expected.sum().backward()
    expected_grad, x.grad = x.grad, None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attn(x)
    assert got.dtype == torch.bfloat16
    got.float().sum().backward()
    torch.testing.assert_close(got.float(), expected, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(x.grad, expected_grad, atol=3e-2, rtol=3e-2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_allocator_reuses_pages_of_large_tensors(monkeypatch):
    """A 64 MB activation freed and allocated again (every training step) must not be faulted in anew."""
    import resource

    from babygpt.training import devices

    monkeypatch.setattr(devices, "_allocator_tuned", None)
    monkeypatch.setenv("BABYGPT_TUNE_ALLOCATOR", "0")
    assert devices.tune_cpu_allocator() is False
    monkeypatch.setattr(devices, "_allocator_tuned", None)
    monkeypatch.delenv("BABYGPT_TUNE_ALLOCATOR")
    assert devices.tune_cpu_allocator() is True
    faults = []
    for _ in range(20):  # 64 MB: glibc's own adaptive threshold stops at 32 MB; the heap settles within a few
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(16 * 2**20)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # untuned, every allocation faults its 16,384 pages in anew; tuned, once the heap has settled it reuses them
    settled = any(max(faults[i:i + 4]) < 500 for i in range(len(faults) - 3))
    assert settled, faults


def test_a_failed_compile_falls_back_to_eager_and_says_so(small_text, monkeypatch):
    def broken_compile(model, *args, **kwargs):
        def compiled(*a, **k):
            raise RuntimeError("no C compiler found\nlong details")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    store = RunStore()
    notes = []

    class Notes(Callbacks):
        def on_notice(self, trainer, message):
            notes.append(message)

    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5, compile=True),
                              callbacks=[Notes()])
    result = trainer.run()
    assert result.status == "done" and result.step == 10  # eager finished the run
    assert notes == ["torch.compile failed (RuntimeError: no C compiler found); training goes on without it "
                     "(eager): the same results, a little slower."]


def _compiled_that_fails(monkeypatch, exc: Exception, from_call: int) -> list[int]:
    """torch.compile replaced by a wrapper that runs the model eagerly until call ``from_call``, then raises."""
    calls = []

    def compile_stub(model, *args, **kwargs):
        def compiled(*a, **k):
            calls.append(1)
            if len(calls) >= from_call:
                raise exc
            return model(*a, **k)
        return compiled

    monkeypatch.setattr(torch, "compile", compile_stub)
    return calls


def test_a_compiled_run_that_fails_later_is_not_called_a_compile_failure(small_text, monkeypatch):
    """Only the first compiled call may fall back to eager: a failure at a later step is raised as it is."""
    calls = _compiled_that_fails(monkeypatch, RuntimeError("a bug at step 5"), from_call=5)
    plan = tiny_plan(small_text, max_iters=10, eval_interval=10, compile=True)
    trainer = plan_trainer(plan)
    with pytest.raises(RuntimeError, match="a bug at step 5"):
        trainer.run()
    assert len(calls) == 5 and trainer.forward is not trainer.module  # never silently swapped to eager


def test_running_out_of_memory_in_the_first_compiled_call_is_reported_as_such(small_text, monkeypatch):
    _compiled_that_fails(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"), from_call=1)
    plan = tiny_plan(small_text, max_iters=10, eval_interval=10, compile=True)
    notes = []

    class Notes(Callbacks):
        def on_notice(self, trainer, message):
            notes.append(message)

    trainer = plan_trainer(plan, [Notes()])
    result = trainer.run()
    assert result.status == "failed" and not any("torch.compile failed" in n for n in notes)
