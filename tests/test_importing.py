"""One rule recognises what is imported, for the Runs page and the command line alike
(``babygpt.store.importing``): a folder is a Hugging Face folder, a file a zip of either kind, nothing there a
sentence of its own."""

from __future__ import annotations

import errno

import pytest

from babygpt.cli import main
from babygpt.errors import DISK_FULL_MESSAGE, BabyGPTError
from babygpt.store import importing
from babygpt.store.archive import export_bytes
from babygpt.store.huggingface import export_hf, export_hf_zip
from babygpt.store.importing import FOLDER, ZIP, import_kind, import_source
from babygpt.store.runs import RunStore
from tests.helpers import LIMITS
from tests.import_support import LEAKS, recorded_run


@pytest.fixture
def sources(tmp_path):
    """A recorded run as the three things a person imports: a run archive, a Hugging Face folder and its zip."""
    store, run_id = recorded_run()
    archive = tmp_path / "run.zip"
    archive.write_bytes(export_bytes(store, run_id))
    folder = export_hf(store, run_id, tmp_path / "hf-folder")
    hf_zip = tmp_path / "hf.zip"
    hf_zip.write_bytes(export_hf_zip(store, run_id))
    return store, {"archive": archive, "folder": folder, "hf_zip": hf_zip}


def test_each_kind_is_recognised_and_imported_by_one_function(sources):
    store, paths = sources
    assert import_kind(paths["folder"]) == FOLDER
    assert import_kind(paths["archive"]) == ZIP and import_kind(paths["hf_zip"]) == ZIP
    archived = import_source(store, paths["archive"], LIMITS, owner="alice")
    folder = import_source(store, str(paths["folder"]), LIMITS, owner="alice")  # typed text works as well
    zipped = import_source(store, paths["hf_zip"], LIMITS, owner="alice")
    assert archived.owner == folder.owner == zipped.owner == "alice"
    assert store.has_weights(archived.id) and store.has_weights(folder.id) and store.has_weights(zipped.id)
    assert folder.imported and zipped.imported, "a Hugging Face folder is recorded as an imported model"
    assert folder.name == "hf-folder" and zipped.name == "hf"


def test_nothing_there_is_a_sentence_naming_only_what_was_typed(tmp_path):
    with pytest.raises(BabyGPTError) as caught:
        import_source(RunStore(), tmp_path / "usb" / "gpt2", LIMITS)
    assert str(caught.value) == ("Refused: there is no file or folder named 'gpt2' there; give a run archive (.zip), "
                                 "a Hugging Face model folder, or that folder zipped.")
    assert not LEAKS.search(str(caught.value))


def test_a_full_disk_while_importing_is_the_disk_sentence(sources, monkeypatch):
    store, paths = sources

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(store.home / "runs" / "x"))
    monkeypatch.setattr(importing, "import_hf", full)
    with pytest.raises(BabyGPTError, match="disk is full") as caught:
        import_source(store, paths["folder"], LIMITS)
    assert str(caught.value) == DISK_FULL_MESSAGE


def test_the_command_line_imports_through_the_same_rule(sources, monkeypatch, capsys):
    store, paths = sources
    seen = []
    real = importing.import_source

    def counted(*args, **kwargs):
        seen.append(args[1])
        return real(*args, **kwargs)
    monkeypatch.setattr("babygpt.cli.import_source", counted)
    before = {info.id for info in store.list_runs()}
    assert main(["--home", str(store.home), "runs", "import", str(paths["folder"])]) == 0
    assert seen == [str(paths["folder"])]
    new = {info.id for info in store.list_runs()} - before
    assert capsys.readouterr().out.strip() == f"imported as {new.pop()}"
    assert main(["--home", str(store.home), "runs", "import", str(paths["folder"].parent / "gone.zip")]) == 2
    assert "there is no file or folder named 'gone.zip' there" in capsys.readouterr().err
