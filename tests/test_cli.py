import json
import os
import subprocess
import sys

import pytest

from babygpt.cli import main
from babygpt.store.runs import RunStore
from tests.conftest import ROOT, SHAKESPEARE


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "babygpt", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_end_to_end_on_tiny_shakespeare(tmp_path, shakespeare):
    train = run_cli("train", "--data", str(SHAKESPEARE), "--preset", "gpt", "--n-layer", "2", "--n-head", "2",
                    "--n-embd", "32", "--block-size", "32", "--batch-size", "16", "--max-iters", "120",
                    "--eval-interval", "60", "--eval-iters", "5", "--lr", "3e-3", "--name", "bard")
    summary = json.loads(train.stdout.strip().splitlines()[-1])
    assert {"run", "run_dir", "step", "train_loss", "val_loss", "tokens_per_sec"} <= set(summary)
    assert summary["step"] == 120 and summary["val_loss"] < 3.0 and summary["tokens_per_sec"] > 0
    assert "tok/s" in train.stderr and "ETA" in train.stderr
    run = summary["run"]

    sample = run_cli("sample", "--run", run, "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "1")
    assert sample.stdout.startswith("ROMEO:") and len(sample.stdout.rstrip("\n")) >= 40

    ev = json.loads(run_cli("eval", "--run", run, "--eval-iters", "3").stdout.strip().splitlines()[-1])
    assert abs(ev["val_loss"] - summary["val_loss"]) < 0.3

    archive = tmp_path / "bard.zip"
    run_cli("runs", "export", run, str(archive))
    assert archive.stat().st_size > 10_000
    imported = run_cli("runs", "import", str(archive)).stdout.strip().split()[-1]
    assert imported != run
    again = run_cli("sample", "--run", imported, "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "1")
    assert again.stdout == sample.stdout
    listing = run_cli("runs", "list").stdout
    assert run in listing and imported in listing
    line = next(line for line in listing.splitlines() if line.startswith(run))
    assert "bard" in line and "command line" in line, "the list shows each run's name and owner"
    shown = json.loads(run_cli("runs", "show", "bard").stdout)
    assert shown["config"]["model"]["n_embd"] == 32

    resumed = run_cli("train", "--resume", run, "--max-iters", "140")
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == 140


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "python-docs", "--n-embd", "30", "--n-head", "4"], "must be divisible by n_head"),
    (["train", "--data", "/no/such/file.txt"], "No such file"),
    (["train", "--data", "python-docs", "--lr", "-1"], "learning rate must be positive"),
    (["sample", "--run", "nothing"], "No run named 'nothing'"),
])
def test_cli_errors_are_messages_not_tracebacks(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_rejects_binary_file(tmp_path, capsys):
    f = tmp_path / "image.txt"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["train", "--data", str(f)]) == 2
    assert "looks binary" in capsys.readouterr().err


def test_cli_asks_for_a_flag_before_training_a_model_over_the_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_PARAMS", "1000")
    f = tmp_path / "alphabet.txt"
    f.write_text("".join(chr(0x4E00 + i) for i in range(60)) * 20)
    args = ["train", "--data", str(f), "--preset", "bigram", "--max-iters", "2", "--eval-interval", "1",
            "--eval-iters", "1", "--batch-size", "2", "--block-size", "8"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "3,600 parameters, over this server's limit of 1,000" in err and "--allow-large" in err
    assert RunStore().list_runs() == []  # nothing was recorded
    assert main([*args, "--allow-large"]) == 0
    assert "warning: This model has 3,600 parameters" in capsys.readouterr().err
