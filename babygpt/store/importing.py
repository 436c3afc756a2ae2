"""One answer to "what is this, and how is it imported?" for every way a run comes in: the Runs page's upload and
its teacher's folder box, and the command line's ``runs import``.

A folder is a Hugging Face model folder (``hf_import.import_hf``); a file is a zip, which ``archive.import_zip``
recognises by its files' names as a Hugging Face folder zipped or a Baby GPT run archive. Nothing at the path is
said in a sentence of its own, since neither importer can say which of the two was meant. A full disk while
importing is a sentence (``errors.full_disk_as_sentence``), never a traceback naming a server path.
"""

from __future__ import annotations

from pathlib import Path

from babygpt.errors import ImportRefused, full_disk_as_sentence
from babygpt.model.sizing import ModelLimits
from babygpt.store.archive import import_zip
from babygpt.store.hf_import import import_hf
from babygpt.store.quota import DiskQuota
from babygpt.store.runs import RunInfo, RunStore

FOLDER, ZIP = "folder", "zip"


def import_kind(source: str | Path) -> str:
    """Which importer reads ``source``: ``FOLDER`` for a folder, ``ZIP`` for a file; nothing there is refused
    by its name alone (never the server's path)."""
    path = Path(source).expanduser()
    try:
        if path.is_dir():
            return FOLDER
        if path.is_file():
            return ZIP
    except OSError:  # a name too long for the system, or a place it cannot look into
        pass
    raise ImportRefused(f"Refused: there is no file or folder named {path.name[:80]!r} there; give a run archive "
                        "(.zip), a Hugging Face model folder, or that folder zipped.")


def import_source(store: RunStore, source: str | Path, limits: ModelLimits, owner: str | None = None,
                  quota: DiskQuota | None = None) -> RunInfo:
    """Import whatever ``source`` is (``import_kind``) as a finished run, held to ``limits`` and the owner's disk
    ``quota``; every refusal is a sentence naming the file or folder by its own name."""
    path = Path(source).expanduser()
    with full_disk_as_sentence():
        if import_kind(path) == FOLDER:
            return import_hf(store, path, limits, owner=owner, quota=quota)
        return import_zip(store, path, limits, owner=owner, quota=quota)
