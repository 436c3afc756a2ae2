"""The texts runs train on, as the store keeps them: an uploaded text gets a file named by its sha256 so a worker,
a resume or the command line can read it again; a recorded run finds its text again by name, path or sha256; and
an export names its text without a path of the server that trained it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babygpt.errors import BabyGPTError
from babygpt.store.checkpoints import atomic_write_bytes
from babygpt.store.quota import DiskQuota
from babygpt.store.runs import UPLOADS_DIR, RunInfo, RunStore
from babygpt.text.corpus import Corpus, corpus_from_path
from babygpt.text.datasets import load_corpus, registry


def check_same_corpus(info: RunInfo, corpus: Corpus) -> None:
    """A run trains, resumes and evaluates only on the text it was created for (compared by sha256)."""
    if info.data_sha256 and corpus.sha256 != info.data_sha256:
        raise BabyGPTError(
            f"The text given differs from the one run {info.label} was trained on ({info.data_name}); "
            "choose that text again to continue it."
        )


def persist_corpus(store: RunStore, corpus: Corpus, owner: str | None = None,
                   quota: DiskQuota | None = None) -> Corpus:
    """Give an uploaded text a file in the store (named by its sha256) so a worker process, a resume or the
    CLI can read it again; named datasets and files on disk are used where they are. An app user's upload
    counts towards their disk quota."""
    if corpus.source in registry() or Path(corpus.source).is_file():
        return corpus
    n_bytes = len(corpus.text.encode("utf-8"))
    if owner is not None:
        store.release_uploads(owner, keep=corpus.sha256)
        if not store.has_upload(owner, corpus.sha256):
            if quota is not None:
                quota.check(store, owner, n_bytes, f"Keeping {corpus.name}")
            store.record_upload(owner, corpus.sha256, n_bytes)
    folder = store.home / UPLOADS_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{corpus.sha256}.txt"
    if not path.is_file():
        atomic_write_bytes(path, corpus.text.encode("utf-8"))
    return Corpus(corpus.name, corpus.text, corpus.sha256, str(path.resolve()))


def run_corpus(store: RunStore, info: RunInfo) -> Corpus:
    """The text a recorded run trained on, found on this server: a shipped dataset by name, a file on disk (runs
    from the command line), or an uploaded text kept in the store under its sha256 (an imported run finds its
    text there once someone on this server has uploaded the same text)."""
    data = info.config.get("data", {})
    source, sha256 = str(data.get("source", "")), data.get("sha256") or info.data_sha256
    if source in registry() or (source and Path(source).is_file()):
        return load_corpus(source)
    kept = store.home / UPLOADS_DIR / f"{sha256}.txt"
    if sha256 and kept.is_file():
        corpus = corpus_from_path(kept)
        return Corpus(data.get("name") or corpus.name, corpus.text, corpus.sha256, str(kept))
    raise BabyGPTError(f"The text run {info.label} trained on ({data.get('name') or source}) is not on this server; "
                       "upload it on the Data page (the same file), then resume.")


def portable_source(data: dict[str, Any]) -> str:
    """Where a run's text came from, as an export may carry it: a shipped dataset's name, else the text's own
    name, never a path of the server that trained it."""
    source = str(data.get("source", ""))
    return source if source in registry() else str(data.get("name") or Path(source).name)
