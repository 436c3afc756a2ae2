"""torchrun with two CPU ranks (gloo) against one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest

from babygpt.store.runs import RunStore
from tests.conftest import ROOT

ARGS = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--max-iters", "60",
        "--eval-interval", "20", "--eval-iters", "20", "--lr", "3e-3", "--warmup-iters", "5", "--log-interval", "10",
        "--seed", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(home, corpus, *prefix: str, batch: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), BABYGPT_HOME=str(home), OMP_NUM_THREADS="1")
    cmd = [sys.executable, *prefix, "-m", "babygpt", "train", "--data", str(corpus), *ARGS, "--batch-size", str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def corpus(tmp_path, small_text):
    path = tmp_path / "corpus.txt"
    path.write_text(small_text * 3)
    return path


def test_torchrun_two_ranks_matches_single_process(tmp_path, corpus):
    ddp_home, single_home = tmp_path / "ddp", tmp_path / "single"
    port = _free_port()
    ddp = _train(ddp_home, corpus, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                 "--master_addr=127.0.0.1", batch=8)
    single = _train(single_home, corpus, batch=16)
    assert ddp["world_size"] == 2 and ddp["step"] == 60
    runs = RunStore(ddp_home).list_runs()
    assert len(runs) == 1, "only rank 0 writes the run store"
    assert sorted(p.name for p in (ddp_home / runs[0].id).iterdir()) == ["config.json", "model.safetensors", "trainer.pt"]
    ddp_curve = [m.loss for m in RunStore(ddp_home).metrics(runs[0].id) if m.split == "val"]
    single_curve = [m.loss for m in RunStore(single_home).metrics(single["run"]) if m.split == "val"]
    assert len(ddp_curve) == len(single_curve) == 4
    for a, b in zip(ddp_curve, single_curve, strict=True):
        assert abs(a - b) <= 0.1 * b, (ddp_curve, single_curve)  # same global batch, different draws
    assert ddp_curve[-1] < ddp_curve[0] - 0.5
