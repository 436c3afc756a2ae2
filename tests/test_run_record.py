"""A run's record (``babygpt.store.run_record``) and the one answer to "where is this run's text?"
(``babygpt.store.corpora.find_text``): parsed once, typed, old configs still readable, texts found by content."""

from __future__ import annotations

import json
import time

import pytest

from babygpt.cli import main
from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.orchestration.challenge import challenge_corpus, set_rules
from babygpt.orchestration.runs import start_run
from babygpt.status import RunStatus
from babygpt.store.archive import export_run, import_run
from babygpt.store.corpora import TextNotHere, TextRef, find_text, persist_corpus, run_corpus
from babygpt.store.records import RunSummary
from babygpt.store.run_record import RunRecord, RunRecordError, Runtime, parse_run_record
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus, corpus_from_path
from tests.helpers import LIMITS, tiny_plan

CHARS = list("abc ")
MODEL = {"preset": "gpt", "vocab_size": 4, "block_size": 8, "n_layer": 1, "n_head": 1, "n_embd": 8}


def old_document() -> dict:
    """A config.json as an early version wrote it: no data, runtime, challenge or init sections, the model without
    the switches added since, and the training settings under a name since changed (``sample_chars``)."""
    return {"model": dict(MODEL), "train": {"max_iters": 30, "eval_interval": 10, "batch_size": 4, "sample_chars": 50},
            "tokenizer": {"kind": "char", "chars": CHARS}}


def full_document() -> dict:
    return {**old_document(), "format": 1,
            "data": {"name": "notes.txt", "source": "/srv/uploads/x.txt", "sha256": "ab" * 32, "n_chars": 120,
                     "imported_from": "archive"},
            "challenge": {"id": "c1", "check_of": "run-7"}, "init": {"run": "run-3", "label": "base · 0003"},
            "runtime": {"device": "cpu", "dtype": "float32", "pid": 42, "where": "ray:node12345678", "world_size": 2}}


def test_a_full_config_reads_into_typed_parts():
    record = parse_run_record(full_document())
    assert record.model == ModelConfig.from_dict(MODEL) and record.training.max_iters == 30
    assert record.training.sample_tokens == 50, "a setting saved under its old name is read under its new one"
    assert record.tokenizer.kind == "char" and record.tokenizer.build().vocab_size == 4
    assert (record.data.name, record.data.sha256, record.data.n_chars, record.data.imported_from) == (
        "notes.txt", "ab" * 32, 120, "archive")
    assert record.challenge.id == "c1" and record.challenge.check_of == "run-7" and record.is_check
    assert record.starting_weights.run == "run-3" and record.starting_weights.label == "base · 0003"
    assert record.runtime == Runtime("cpu", "float32", 42, "ray:node12345678", 2)
    assert record.where == "ray:node12345678" and record.tokens_per_step == 4 * 8 * 1 * 2


def test_an_old_config_missing_optional_keys_still_loads():
    record = parse_run_record(old_document())
    assert record.data.name is None and record.data.source == "" and record.data.sha256 is None
    assert record.challenge is None and not record.is_check and record.starting_weights is None
    assert record.runtime is None and record.where == "local" and record.world_size == 1
    assert record.model.causal and record.model.activation == ModelConfig().activation, "newer fields: defaults"
    assert record.training.lr == TrainConfig().lr


def test_an_old_run_in_the_store_lists_labels_and_summarises(tmp_path):
    store = RunStore(tmp_path / "store")
    info = store.create_run("old", old_document(), text_name="notes.txt", status=RunStatus.DONE)
    got = store.get(info.id)
    assert isinstance(got.record, RunRecord) and got.record.training.max_iters == 30
    assert got.label == "old · " + info.id[-4:] and not got.imported and got.check_of is None and not got.is_check
    (summary,) = store.summaries()
    assert isinstance(summary, RunSummary)
    assert (summary.where, summary.n_layer, summary.vocab_size, summary.tokenizer, summary.check) == (
        "local", 1, 4, "char", False)
    assert summary.tokens == 0 and summary.row()["id"] == info.id


@pytest.mark.parametrize(("document", "said"), [
    ({"model": MODEL, "train": {}}, "not a Baby GPT run configuration (model, train, tokenizer missing)"),
    ({**old_document(), "model": [1, 2]}, "ModelConfig section must be a JSON object"),
    ({**old_document(), "train": {"max_iters": "many"}}, "max_iters must be a whole number"),
    ({**old_document(), "model": {**MODEL, "wings": 2}}, "Unknown ModelConfig field(s): wings"),
    ({**old_document(), "tokenizer": "char"}, "its tokenizer section is str, not an object"),
    ({**old_document(), "runtime": "gpu"}, "its runtime section is str, not an object"),
    ({**old_document(), "challenge": ["c1"]}, "its challenge section is list, not an object"),
])
def test_a_malformed_config_is_one_specific_sentence(document, said):
    with pytest.raises(RunRecordError) as caught:
        parse_run_record(document)
    assert said in str(caught.value)


def test_a_run_whose_config_this_version_cannot_read_still_lists(tmp_path):
    """A table of runs is not broken by one it cannot read: it lists it without a size; opening it says why."""
    store = RunStore(tmp_path / "store")
    info = store.create_run("odd", {**old_document(), "model": {**MODEL, "wings": 2}}, status=RunStatus.DONE)
    got = store.get(info.id)
    assert got.readable is None and got.label == "odd · " + info.id[-4:]
    (summary,) = store.summaries()
    assert summary.id == info.id and summary.n_layer is None and summary.tokens == 0
    with pytest.raises(RunRecordError, match=f"Run {info.id}: Unknown ModelConfig field"):
        got.record  # noqa: B018
    with pytest.raises(BabyGPTError, match="Unknown ModelConfig field"):
        store.load(info.id)


def test_a_teachers_check_is_decided_once(tmp_path):
    store = RunStore(tmp_path / "store")
    entry = store.create_run("entry", {**old_document(), "challenge": {"id": "c1", "check_of": None}},
                             challenge_id="c1")
    check = store.create_run("check", {**old_document(), "challenge": {"id": "c1", "check_of": entry.id}},
                             challenge_id="c1")
    assert not store.get(entry.id).is_check and store.get(entry.id).record.challenge.id == "c1"
    assert store.get(check.id).is_check and store.get(check.id).check_of == entry.id
    assert {s.id: s.check for s in store.summaries()} == {entry.id: False, check.id: True}


def test_with_document_replaces_one_section_and_keeps_the_rest():
    record = parse_run_record(full_document())
    document = record.with_document(train={"max_iters": 99})
    assert document["train"] == {"max_iters": 99} and document["data"] == full_document()["data"]
    assert record.document["train"]["max_iters"] == 30, "the record itself never changes"


# --- where is this run's text? ------------------------------------------------------------------------------

def test_find_text_by_source_by_hash_and_at_hand(tmp_path, small_text):
    store = RunStore(tmp_path / "store")
    path = tmp_path / "notes.txt"
    path.write_text(small_text)
    text = Corpus.from_text("notes.txt", small_text)
    found = find_text(store, TextRef("notes.txt", str(path), text.sha256))
    assert found.text == small_text and found.source == str(path)
    kept = persist_corpus(store, Corpus.from_text("a copy.txt", small_text, source="upload"))
    path.unlink()  # gone from where it was read: found among the uploads by its content, under its recorded name
    found = find_text(store, TextRef("notes.txt", str(path), text.sha256))
    assert (found.name, found.text, found.source) == ("notes.txt", small_text, kept.source)
    other = Corpus.from_text("notes.txt", small_text.upper(), source="upload")
    at_hand = Corpus.from_text("whatever it is called", small_text, source="upload")
    assert find_text(store, TextRef("notes.txt", "", text.sha256), at_hand=at_hand).text == small_text
    assert find_text(store, TextRef("notes.txt", "", text.sha256), at_hand=other).text == small_text, \
        "a text at hand with the same name but other content is not the run's text"


def test_find_text_says_whether_the_text_is_missing_or_changed(tmp_path, small_text):
    store = RunStore(tmp_path / "store")
    path = tmp_path / "notes.txt"
    path.write_text(small_text.upper())  # edited since the run recorded it
    sha = Corpus.from_text("notes.txt", small_text).sha256
    with pytest.raises(TextNotHere, match="notes.txt has changed") as changed:
        find_text(store, TextRef("notes.txt", str(path), sha))
    assert changed.value.changed
    with pytest.raises(TextNotHere, match="notes.txt is not on this server") as missing:
        find_text(store, TextRef("notes.txt", str(tmp_path / "gone.txt"), sha))
    assert not missing.value.changed
    persist_corpus(store, Corpus.from_text("x", small_text, source="upload"))
    assert find_text(store, TextRef("notes.txt", str(path), sha)).text == small_text, "the kept copy, by content"


def test_a_challenge_finds_its_uploaded_text_by_hash(tmp_path, small_text):
    store = RunStore(tmp_path / "store")
    kept = persist_corpus(store, Corpus.from_text("class text.txt", small_text, source="upload"))
    rules = set_rules(kept, "char", 0.1, 10_000, now=time.time())
    (store.home / "uploads" / f"{kept.sha256}.txt").rename(tmp_path / "elsewhere.txt")
    with pytest.raises(BabyGPTError, match=r"The challenge's text \(class text.txt\) is no longer on this server"):
        challenge_corpus(store, rules)
    persist_corpus(store, Corpus.from_text("uploaded again.txt", small_text, source="upload"))
    corpus = challenge_corpus(store, rules)
    assert corpus.name == "class text.txt" and corpus.sha256 == rules.corpus_sha256


@pytest.fixture
def imported_upload_run(small_text, tmp_path):
    """A run trained on an uploaded text on one server, imported into this one (BABYGPT_HOME), where the same
    text was uploaded under another name: kept only under its sha256."""
    here = RunStore(tmp_path / "server-a")
    plan = tiny_plan(small_text, max_iters=10, eval_interval=5)
    plan.corpus = persist_corpus(here, Corpus.from_text("notes.txt", small_text, source="upload"), owner="u" * 22)
    trainer, info = start_run(here, plan, name="mine")
    trainer.run()
    there = RunStore()
    imported = import_run(there, export_run(here, info.id, tmp_path / "run.zip"), limits=LIMITS)
    persist_corpus(there, Corpus.from_text("my copy.txt", small_text, source="upload"), owner="v" * 22)
    return there, imported


def test_cli_eval_of_a_run_trained_on_an_uploaded_text(imported_upload_run, capsys):
    store, info = imported_upload_run
    assert info.data_name == "notes.txt", "the row names the text, no file of that name is here"
    assert main(["eval", "--run", info.id, "--eval-iters", "2"]) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == info.id and out["val_loss"] > 0 and out["val_bpb"] > 0


def test_cli_resume_of_a_run_trained_on_an_uploaded_text(imported_upload_run, capsys):
    store, info = imported_upload_run
    assert main(["train", "--resume", info.id, "--max-iters", "12"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["step"] == 12


def test_cli_names_the_missing_text_and_the_flag(imported_upload_run, capsys):
    store, info = imported_upload_run
    for kept in (store.home / "uploads").glob("*.txt"):
        kept.unlink()
    assert main(["eval", "--run", info.id]) == 2
    err = capsys.readouterr().err
    assert "(notes.txt) is not on this server; give it with --data PATH." in err and str(store.home) not in err


def test_the_app_and_a_worker_find_the_same_text_by_content(imported_upload_run, small_text):
    store, info = imported_upload_run
    corpus = run_corpus(store, store.get(info.id))
    assert corpus.text == small_text and corpus.name == "notes.txt"
    at_hand = Corpus.from_text("Data page.txt", small_text, source="the page's")
    assert run_corpus(store, store.get(info.id), at_hand).source == "the page's", "the text at hand, not read again"


def test_two_runs_on_one_text_under_two_names_have_one_text_hash(tmp_path, small_text):
    """What the Lessons page compares a second run by: the text's content, not its name or where it was kept."""
    store = RunStore(tmp_path / "store")
    path = tmp_path / "notes.txt"
    path.write_text(small_text)
    on_file, uploaded, other = (tiny_plan(t, max_iters=2, eval_interval=1) for t in (small_text,) * 2 + (small_text.upper(),))
    on_file.corpus = corpus_from_path(path)  # as the command line reads --data
    uploaded.corpus = persist_corpus(store, Corpus.from_text("renamed.txt", small_text, source="upload"))
    ids = [start_run(store, plan, name=name)[1].id for plan, name in ((on_file, "a"), (uploaded, "b"), (other, "c"))]
    assert store.get(ids[0]).data_name != store.get(ids[1]).data_name, "two names (a path, a kept upload)"
    by_id = {s.id: s.text_sha256 for s in store.summaries()}
    assert by_id[ids[0]] == by_id[ids[1]] == Corpus.from_text("x", small_text).sha256 != by_id[ids[2]]
