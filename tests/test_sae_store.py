"""SAEs kept with their run: the command line trains one on a finished run's own text, stores it beside the
checkpoint, finds it again instead of training twice, and exports it in SAELens's format."""

from __future__ import annotations

import json

import pytest
import torch

from babygpt.cli import main
from babygpt.errors import BabyGPTError
from babygpt.features import saelens
from babygpt.features.metrics import SAEFigures
from babygpt.features.sae import SAEConfig, TopKSAE
from babygpt.store import features as stored
from babygpt.store.runs import RunStore


@pytest.fixture
def finished_run(tmp_path, small_text, capsys) -> tuple[RunStore, str]:
    text = tmp_path / "cats.txt"
    text.write_text(small_text * 2, encoding="utf-8")
    home = tmp_path / "runs"
    assert main(["--home", str(home), "train", "--data", str(text), "--n-layer", "2", "--n-head", "2", "--n-embd",
                 "16", "--block-size", "16", "--batch-size", "4", "--max-iters", "4", "--eval-interval", "4",
                 "--eval-iters", "1", "--device", "cpu", "--name", "cats"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]
    return RunStore(home), run


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_command_line_trains_stores_finds_and_exports_an_sae(finished_run, tmp_path, capsys):
    store, run = finished_run
    home = str(store.home)
    args = ["--home", home, "sae", "train", run, "--layer", "1", "--hook", "mlp_out", "--features", "64", "--k", "4",
            "--tokens", "4000"]
    assert main(args) == 0
    first = last_json(capsys)
    assert first["sae"] == "L1-mlp_out-64-k4" and not first["cached"] and not first["stale"]
    figures = first["figures"]
    assert figures["l0"] <= 4 and 0 < figures["variance_explained"] <= 1 and figures["loss_recovered"] is not None
    folder = store.run_dir(run) / "sae" / "L1-mlp_out-64-k4"
    assert sorted(p.name for p in folder.iterdir()) == ["sae.json", "sae.safetensors"]

    assert main(args) == 0  # asked again: found, not trained twice
    again = last_json(capsys)
    assert again["cached"] and again["figures"] == figures

    kept = stored.get(store, run, "L1-mlp_out-64-k4")
    sae, windows = kept.load()
    assert kept.load()[0] is sae  # read once per file version
    assert windows.shape[1] == 16 and sae.config.hook_name == "blocks.1.hook_mlp_out"

    assert main(["--home", home, "sae", "list", run]) == 0
    assert json.loads(capsys.readouterr().out.strip())["sae"] == "L1-mlp_out-64-k4"

    out = tmp_path / "export"
    assert main(["--home", home, "sae", "export", run, "L1-mlp_out-64-k4", str(out)]) == 0
    capsys.readouterr()
    back = saelens.read_saelens(out)
    assert torch.equal(back.W_enc, sae.W_enc) and back.config.hook_name == sae.config.hook_name
    assert json.loads((out / "cfg.json").read_text())["metadata"]["context_size"] == 16

    assert main(["--home", home, "sae", "export", run, "L1-mlp_out-64-k4", str(out)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err


def test_command_line_refusals_are_sentences(finished_run, capsys, monkeypatch):
    store, run = finished_run
    home = str(store.home)
    assert main(["--home", home, "sae", "train", run, "--layer", "5"]) == 2
    assert "The model has 2 layer(s), numbered 0 to 1; there is no layer 5." in capsys.readouterr().err
    assert main(["--home", home, "sae", "train", run, "--features", "8"]) == 2
    assert "8 features for a layer of width 16: choose between 16 and 1,024" in capsys.readouterr().err
    monkeypatch.setenv("BABYGPT_SAE_MAX_TOKENS", "1000")
    assert main(["--home", home, "sae", "train", run, "--tokens", "5000"]) == 2
    assert "tokens of activations is over this server's limit of 1,000" in capsys.readouterr().err
    assert main(["--home", home, "sae", "export", run, "nothing", "x"]) == 2
    assert "has no SAE named 'nothing' (it has: none yet)" in capsys.readouterr().err


def test_an_sae_goes_stale_when_its_run_trains_on_and_a_damaged_file_is_a_sentence(finished_run):
    store, run = finished_run
    sae = TopKSAE(SAEConfig(d_in=16, n_features=32, k=2, layer=0))
    figures = SAEFigures(0.5, 2.0, 1, 0, 32, 100)
    kept = stored.save(store, run, sae, figures, torch.zeros(2, 16, dtype=torch.long), 100, 1.0, False,
                       weights_version=store.weights_version(run))
    assert not kept.stale and stored.find(store, run, sae.config).figures == figures
    weights = store.run_dir(run) / "model.safetensors"
    stamp = weights.stat().st_mtime + 10
    import os

    os.utime(weights, (stamp, stamp))  # a resumed run wrote new weights
    assert stored.find(store, run, sae.config).stale
    (kept.folder / "sae.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BabyGPTError, match="corrupted or truncated"):
        stored.find(store, run, sae.config).load()
