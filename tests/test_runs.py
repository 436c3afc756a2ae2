import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from babygpt.errors import BabyGPTError
from babygpt.orchestration.runs import start_run
from babygpt.store.archive import export_run, import_run
from babygpt.store.runs import RunStore
from babygpt.training.sample import SamplingConfig, generate
from tests.helpers import LIMITS, tiny_plan


@pytest.fixture
def trained(small_text, tmp_path):
    store = RunStore(tmp_path / "store")
    trainer, info = start_run(store, tiny_plan(small_text, max_iters=20, eval_interval=10), name="tiny")
    trainer.run()
    return store, info


def test_run_folder_and_database(trained):
    store, info = trained
    folder = store.run_dir(info.id)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "trainer.pt"]
    doc = json.loads((folder / "config.json").read_text())
    assert doc["tokenizer"]["kind"] == "char" and doc["model"]["preset"] == "gpt"
    assert store.get(info.id).status == "done"
    splits = {m.split for m in store.metrics(info.id)}
    assert splits == {"train", "train_eval", "val"}
    summary = store.summaries()[0]
    assert summary.steps == 20 and summary.best_val_loss < 3.5
    with store._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_load_decodes_on_its_own(trained):
    store, info = trained
    loaded = store.load(info.id)
    text = generate(loaded.model, loaded.tokenizer, "the", SamplingConfig(max_new_tokens=20, seed=0))
    assert text.startswith("the") and len(text) == 23
    assert store.get("tiny").id == info.id, "a run can be found by its name"


def test_export_import_round_trip(trained, tmp_path):
    store, info = trained
    path = export_run(store, info.id, tmp_path / "run.zip")
    other = RunStore(tmp_path / "other")
    imported = import_run(other, path, limits=LIMITS)
    assert imported.id != info.id and imported.status == "done"
    a, b = store.load(info.id).model, other.load(imported.id).model
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    assert len(other.metrics(imported.id)) == len(store.metrics(info.id))


def _rezip(src, dst, replace=None, extra=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            data = (replace or {}).get(item.filename, zin.read(item.filename))
            zout.writestr(item.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


class _CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_import_refuses_malicious_pickle(trained, tmp_path):
    store, info = trained
    good = export_run(store, info.id, tmp_path / "good.zip")
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"step": 1, "optimizer": _CreatesFile(str(marker))})
    buf = tmp_path / "evil.pt"
    # torch.save format is a zip holding a pickle; a raw pickle is refused by weights_only too
    with open(buf, "wb") as fh:
        fh.write(evil)
    bad = _rezip(good, tmp_path / "bad.zip", replace={"trainer.pt": buf.read_bytes()})
    before = len(store.list_runs())
    with pytest.raises(BabyGPTError, match="trainer.pt was refused"):
        import_run(store, bad, limits=LIMITS)
    assert not marker.exists(), "the pickle's code must never run"
    assert len(store.list_runs()) == before


def test_trainer_state_with_code_is_refused(trained, tmp_path):
    store, info = trained
    marker = tmp_path / "pwned2"
    torch.save({"step": 1, "optimizer": _CreatesFile(str(marker))}, store.run_dir(info.id) / "trainer.pt")
    with pytest.raises(BabyGPTError, match="refused"):
        store.load_trainer_state(info.id)
    assert not marker.exists()


@pytest.mark.parametrize("case, message", [
    ("escape", "escapes its folder"),
    ("absolute", "escapes its folder"),
    ("extra", "unexpected file"),
    ("missing", "missing model.safetensors"),
    ("truncated", "corrupted or truncated"),
    ("vocab", "belongs to another tokenizer"),
    ("notzip", "not a readable zip"),
])
def test_import_refuses_bad_archives(trained, tmp_path, case, message):
    store, info = trained
    good = export_run(store, info.id, tmp_path / "good.zip")
    with zipfile.ZipFile(good) as z:
        weights, config = z.read("model.safetensors"), json.loads(z.read("config.json"))
    target = tmp_path / f"{case}.zip"
    if case == "escape":
        _rezip(good, target, extra={"../evil.txt": b"x"})
    elif case == "absolute":
        _rezip(good, target, extra={"/etc/evil": b"x"})
    elif case == "extra":
        _rezip(good, target, extra={"notes.py": b"print('hi')"})
    elif case == "missing":
        _rezip(good, target, drop=("model.safetensors",))
    elif case == "truncated":
        _rezip(good, target, replace={"model.safetensors": weights[: len(weights) // 2]})
    elif case == "vocab":
        config["model"]["vocab_size"] += 1
        config["tokenizer"]["chars"].append("\u2603")
        _rezip(good, target, replace={"config.json": json.dumps(config)})
    else:
        target.write_bytes(b"this is not a zip")
    with pytest.raises(BabyGPTError, match=message):
        import_run(store, target, limits=LIMITS)
    assert not (tmp_path / "evil.txt").exists()
    assert [p.name for p in store.home.iterdir() if p.name.startswith(".import-")] == []


def test_import_refuses_zip_bomb(trained, tmp_path):
    store, info = trained
    good = export_run(store, info.id, tmp_path / "good.zip")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
    size = os.path.getsize(store.run_dir(info.id) / "model.safetensors")
    with pytest.raises(BabyGPTError, match="zip bomb"):
        import_run(store, bomb, limits=LIMITS, max_unpacked=size // 2)


def test_run_ids_cannot_escape(trained):
    store, _ = trained
    for bad in ("../etc", "/abs", "a/../../b", "..", ""):
        with pytest.raises(BabyGPTError, match="not a valid run id"):
            store.run_dir(bad)


def test_delete(trained):
    store, info = trained
    store.delete(info.id)
    assert not store.run_dir(info.id).exists()
    with pytest.raises(BabyGPTError, match="No run named"):
        store.get(info.id)


def test_unwritable_home(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(BabyGPTError, match="cannot be written.*BABYGPT_HOME"):
        RunStore(blocked / "runs")


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    from babygpt.store.checkpoints import atomic_write_bytes, atomic_write_with

    target = tmp_path / "model.safetensors"
    atomic_write_bytes(target, b"old")

    def crash_midway(tmp):
        Path(tmp).write_bytes(b"half a fi")
        raise OSError("No space left on device")

    with pytest.raises(OSError):
        atomic_write_with(target, crash_midway)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"], "no temporary file is left behind"


def test_store_recovers_when_its_database_is_removed(tmp_path):
    store = RunStore(tmp_path / "store")
    (tmp_path / "store" / "runs.db").unlink()
    assert store.list_runs() == []


def test_an_exported_upload_run_carries_names_not_server_paths_and_resumes_where_its_text_is(small_text, tmp_path):
    import json
    import zipfile

    from babygpt.orchestration.runs import resume_run, start_run
    from babygpt.store.archive import export_run, import_run
    from babygpt.store.corpora import persist_corpus, run_corpus
    from babygpt.text.corpus import Corpus

    here = RunStore(tmp_path / "server-a")
    plan = tiny_plan(small_text, max_iters=10, eval_interval=5)
    plan.corpus = persist_corpus(here, Corpus.from_text("contextlib.txt", small_text, source="upload"), owner="u" * 22)
    assert str(here.home) in plan.corpus.source  # on this server the text is a file in its store
    trainer, info = start_run(here, plan, name="mine")
    trainer.run()
    archive = export_run(here, info.id, tmp_path / "run.zip")
    with zipfile.ZipFile(archive) as z:
        for member in ("config.json", "run.json"):
            text = z.read(member).decode()
            assert str(tmp_path) not in text and "uploads" not in text, member
        assert json.loads(z.read("config.json"))["data"]["source"] == "contextlib.txt"

    there = RunStore(tmp_path / "server-b")
    imported = import_run(there, archive, limits=LIMITS)
    with pytest.raises(BabyGPTError, match="contextlib.txt.*is not on this server; upload it on the Data page"):
        run_corpus(there, there.get(imported.id))
    persist_corpus(there, Corpus.from_text("my copy.txt", small_text, source="upload"), owner="v" * 22)
    corpus = run_corpus(there, there.get(imported.id))  # found by its sha256 among this server's uploads
    trainer, _ = resume_run(there, imported.id, corpus, max_iters=15)
    assert trainer.run().status == "done" and trainer.step == 15
