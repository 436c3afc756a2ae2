"""A hostile student's imports (issue 35): every metric row and name of a run archive checked, an imported run
marked so and kept off the class board, each kind of zip refused by its own importer's sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from babygpt.errors import BabyGPTError
from babygpt.server.classroom import Classroom
from babygpt.server.scheduler import Scheduler, SchedulerSettings
from babygpt.store.archive import import_zip
from babygpt.store.runs import RunStore
from babygpt.store.untrusted import plain_name
from tests.helpers import LIMITS
from tests.import_support import assert_sentence, entry_name, good_zips, make_zip, patch_entry, recorded_run


@pytest.fixture(scope="module")
def zips() -> dict[str, dict[str, bytes]]:
    store, run_id = recorded_run()
    return good_zips(store, run_id)


def archive_with(zips, tmp_path: Path, **files: bytes) -> Path:
    path = tmp_path / "run.zip"
    path.write_bytes(make_zip({**zips["archive"], **{k.replace("_", "."): v for k, v in files.items()}}))
    return path


def refusal(store, path: Path, match: str) -> str:
    with pytest.raises(BabyGPTError) as caught:
        import_zip(store, path, LIMITS)
    message = assert_sentence(caught.value, path)
    assert match in message, message
    assert store.list_runs() == [], "nothing is recorded for a refused zip"
    return message


@pytest.mark.parametrize("line, match", [
    ({"step": 9223372036854775808, "split": "val", "loss": 1.0}, "step"),
    ({"step": 10, "split": "val", "loss": 1.0, "elapsed_s": 10000000000000000000}, "elapsed_s"),
    ({"step": 10, "split": "val", "loss": 1.0, "elapsed_s": 1e19}, "elapsed_s"),
    ({"step": -1, "split": "val", "loss": 1.0}, "step"),
    ({"step": 10**13, "split": "val", "loss": 1.0}, "step"),
    ({"step": 10, "split": "val", "loss": -3.0}, "loss"),
    ({"step": 10, "split": "val", "loss": "low"}, "loss"),
    ({"step": 1.5, "split": "val", "loss": 1.0}, "step"),
])
def test_every_metric_row_of_an_archive_is_checked(zips, tmp_path, line, match):
    store = RunStore(tmp_path / "home")
    path = archive_with(zips, tmp_path, metrics_jsonl=(json.dumps(line) + "\n").encode())
    message = refusal(store, path, match)
    assert "metrics.jsonl line 1" in message and "SQLite" not in message


def test_an_imported_name_loses_bidi_and_zero_width_characters(zips, tmp_path):
    store = RunStore(tmp_path / "home")
    meta = json.loads(zips["archive"]["run.json"])
    meta["name"] = "top\u202escore\u200b\u200d \u2066run\u2069\x07"
    info = import_zip(store, archive_with(zips, tmp_path, run_json=json.dumps(meta).encode()), LIMITS)
    assert info.name == "topscore run"
    assert plain_name("\u200b\u202e", "fallback") == "fallback"


def test_an_imported_archive_is_marked_imported_and_kept_off_the_board(zips, tmp_path):
    store = RunStore(tmp_path / "home")
    forged = b"".join(json.dumps({"step": s, "split": "val", "loss": 0.02}).encode() + b"\n" for s in (10, 20))
    info = import_zip(store, archive_with(zips, tmp_path, metrics_jsonl=forged), LIMITS)
    assert info.imported and info.config["data"]["imported_from"] == "archive"
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    try:
        assert [row.run_id for row in Classroom(scheduler).rows()] == []
    finally:
        scheduler.stop_all(wait=30)


def hf_with(zips, config: bytes | None = None, *extra: tuple[str, bytes]) -> bytes:
    files = dict(zips["hf"])
    if config is not None:
        files[entry_name(files, "config.json")] = config
    return make_zip([*files.items(), *extra])


def hf_config(zips, **changes) -> dict:
    document = json.loads(zips["hf"][entry_name(zips["hf"], "config.json")])
    return {k: v for k, v in {**document, **changes}.items() if v is not None}


@pytest.mark.parametrize("case, match", [
    ("nan", "config.json holds NaN"),
    ("large", "config.json is 79 KB, more than such a file can need here (64 KB)"),
    ("deep", "config.json nests more than"),
    ("no model_type", "only GPT-2-shaped models"),
    ("encrypted", "config.json is encrypted"),
    ("two configs", "the zip holds 2 config.json files"),
])
def test_a_hugging_face_zip_is_refused_by_its_own_sentence(zips, tmp_path, case, match):
    """The kind of zip is decided from its names, never its config's values: a damaged config.json of a Hugging
    Face folder is refused for what is wrong with it, not as an unexpected file of a run archive."""
    config_path = entry_name(zips["hf"], "config.json")
    if case == "nan":
        raw = hf_with(zips, json.dumps(hf_config(zips)).replace('"n_layer": ', '"n_layer": NaN, "x": ').encode())
    elif case == "large":
        raw = hf_with(zips, json.dumps(hf_config(zips, pad=["x" * 1000] * 80)).encode())
    elif case == "deep":
        raw = hf_with(zips, json.dumps(hf_config(zips, pad=json.loads("[" * 20 + "1" + "]" * 20))).encode())
    elif case == "no model_type":
        raw = hf_with(zips, json.dumps(hf_config(zips, model_type=None)).encode())
    elif case == "encrypted":
        raw = patch_entry(hf_with(zips), config_path, flags=1)
    else:
        raw = hf_with(zips, None, ("other/config.json", json.dumps(hf_config(zips)).encode()))
    path = tmp_path / "model.zip"
    path.write_bytes(raw)
    message = refusal(RunStore(tmp_path / "home"), path, match)
    assert "unexpected file" not in message and "run archive" not in message


def test_a_run_archive_with_a_stray_file_is_refused_as_a_run_archive(zips, tmp_path):
    path = archive_with(zips, tmp_path, notes_txt=b"hello")
    refusal(RunStore(tmp_path / "home"), path, "unexpected file 'notes.txt'; a run archive holds only")


def test_a_huge_imported_model_is_refused_in_readable_numbers_without_a_setting_name():
    """A crafted config of 12 trillion parameters: the sentence reads '12.4 T' and a size in TB, and names this
    server's limit, never an environment variable a student cannot set."""
    from babygpt.config import ModelConfig
    from babygpt.model.sizing import ModelLimits, inference_memory_bytes, parameter_count
    from babygpt.units import format_bytes, format_count

    config = ModelConfig(n_layer=48, n_head=64, n_embd=143_360 // 10 * 10 // 64 * 64, block_size=1024,
                         vocab_size=50_257)
    assert parameter_count(config) > 1e11
    limits = ModelLimits(max_params=10_000_000, job_memory_bytes=512 * 2**20)
    with pytest.raises(BabyGPTError) as caught:
        limits.check_import(config)
    message = str(caught.value)
    assert "BABYGPT_" not in message and "this server's limit of 10.0 M" in message
    assert f"about {format_bytes(inference_memory_bytes(config))}, over this server's limit of 512 MB" in message
    assert format_count(12_352_000_000_000) == "12.4 T" and format_count(2_000_000_000_000_000) == "2,000 T"
    assert format_bytes(1490139.3 * 2**30) == "1,455 TB" and format_bytes(64 << 10) == "64 KB"
    assert format_bytes(6.4 * 2**30) == "6.4 GB" and format_bytes(300) == "300 bytes"


def test_a_challenge_entry_resumes_on_the_challenges_text_whatever_the_data_page_says(tmp_path):
    """Ada stopped her entry and chose another text on the Data page: Resume takes the challenge's text, and the
    sentence for a run given a different text names no command-line flag (the command line adds its own)."""
    from babygpt.server.users import Actor
    from babygpt.store.corpora import check_same_corpus
    from babygpt.text.corpus import Corpus

    store = RunStore(tmp_path / "home")
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    try:
        classroom = Classroom(scheduler)
        text = "\n".join(f"the cat sat on the mat {i % 7}." for i in range(200)) + "\n"
        record = classroom.set_challenge(Actor("teacher-key-0000000000", admin=True), Corpus.from_text("fables", text), "char",
                                         0.1, 10_000)
        _, run_id = recorded_run(text=text, store=store)
        entry = store.create_run("entry", store.get(run_id).config, text_name="fables",
                                 data_sha256=store.get(run_id).data_sha256, status="stopped", challenge_id=record.id)
        other = Corpus.from_text("recipes", "mix the flour and the eggs.\n" * 50)
        assert classroom.resume_corpus(entry, other).sha256 == classroom.corpus(record).sha256
        assert classroom.resume_corpus(store.get(run_id), other) is other, "any other run: the text chosen"
        with pytest.raises(BabyGPTError) as caught:
            check_same_corpus(entry, other)
        assert "--data" not in str(caught.value) and "choose that text again" in str(caught.value)
    finally:
        scheduler.stop_all(wait=30)
