"""Faults and many users: a killed process, a full disk, concurrent jobs, arbitrary text."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from babygpt.errors import BabyGPTError
from babygpt.orchestration.runs import resume_run, start_run
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus, corpus_from_bytes, decode_text
from tests.conftest import ROOT
from tests.helpers import tiny_plan


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=300).filter(lambda t: "\x00" not in t))
def test_utf8_bytes_round_trip(text):
    assert decode_text(text.encode("utf-8")) == text.removeprefix("\ufeff")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=200))
def test_arbitrary_bytes_never_crash(raw):
    try:
        corpus_from_bytes(raw, "blob")
    except BabyGPTError as exc:
        assert "blob" in str(exc)


def test_sigkill_mid_run_then_resume(tmp_path, small_text):
    """A real training process killed with SIGKILL: store readable, run interrupted, resume loses ≤ 1 interval."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(small_text * 4)
    home = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=str(ROOT), BABYGPT_HOME=str(home))
    cmd = [sys.executable, "-m", "babygpt", "train", "--data", str(corpus), "--n-layer", "1", "--n-head", "2",
           "--n-embd", "32", "--block-size", "16", "--max-iters", "100000", "--eval-interval", "20",
           "--eval-iters", "2", "--log-interval", "5"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = None
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        if (home / "runs.db").exists():
            store = RunStore(home)
            runs = store.list_runs()
            if runs and store.has_checkpoint(runs[0].id) and store.load_trainer_state(runs[0].id)["step"] >= 40:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert store is not None
    run = store.list_runs()[0]  # list_runs notices the owner died
    assert run.status == "interrupted" and "ended unexpectedly" in run.message
    logged = max(m.step for m in store.metrics(run.id))
    checkpoint = store.load_trainer_state(run.id)["step"]
    assert checkpoint % 20 == 0 and logged - checkpoint <= 20, "at most one checkpoint interval is lost"

    resumed = subprocess.run([sys.executable, "-m", "babygpt", "train", "--resume", run.id,
                              "--max-iters", str(checkpoint + 10)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["step"] == checkpoint + 10 and summary["status"] == "done"
    steps = [m.step for m in store.metrics(run.id) if m.split == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), "metrics after the checkpoint were replaced"


def test_full_disk_stops_with_message_and_keeps_checkpoint(tmp_path, small_text, monkeypatch):
    store = RunStore(tmp_path / "store")
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=40, eval_interval=10), name="disk")
    real_save = store.save_checkpoint
    calls = {"n": 0}

    def flaky_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(store, "save_checkpoint", flaky_save)
    result = trainer.run()
    assert result.status == "failed" and "No space left on device" in result.message
    assert store.get(info.id).status == "failed"
    assert store.load_trainer_state(info.id)["step"] == 10


def test_resume_refuses_other_data(tmp_path, small_text):
    store = RunStore(tmp_path / "store")
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=10, eval_interval=5))
    trainer.run()
    with pytest.raises(BabyGPTError, match="differs from the one run"):
        resume_run(store, info.id, Corpus.from_text("other", small_text.upper()))
