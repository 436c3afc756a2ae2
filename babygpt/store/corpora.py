"""The texts runs train on, as the store keeps them: an uploaded text gets a file named by its sha256 so a worker,
a resume or the command line can read it again; ``find_text`` is the one answer to "where is this text?" for a
run, a challenge, the command line and the pages, comparing texts by their content (sha256), never by name; and an
export names its text without a path of the server that trained it."""

from __future__ import annotations

from dataclasses import dataclass
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
    if info.text_sha256 and corpus.sha256 != info.text_sha256:
        raise BabyGPTError(
            f"The text given differs from the one run {info.label} was trained on ({TextRef.of_run(info).shown}); "
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


@dataclass(frozen=True)
class TextRef:
    """A text as a run or a challenge recorded it: its name, where it was read (a shipped dataset's name or a path)
    and its content's sha256, which is what identifies it (None only for runs recorded before runs kept it)."""

    name: str | None
    source: str
    sha256: str | None

    @classmethod
    def of_run(cls, info: RunInfo) -> TextRef:
        record = info.readable  # None: a config this version cannot read; an older row still holds where it was read
        return cls(info.text_name, record.data.source if record else info.data_name or "", info.text_sha256)

    @property
    def shown(self) -> str:
        return self.name or Path(self.source).name or "an unnamed text"


class TextNotHere(BabyGPTError):
    """No text on this server has the recorded content. ``changed``: one is at the recorded place, with other content
    (a file edited since), rather than none at all."""

    def __init__(self, ref: TextRef, changed: bool) -> None:
        self.ref, self.changed = ref, changed
        how = "has changed since it was recorded" if changed else "is not on this server"
        super().__init__(f"The text {ref.shown} {how}.")


def _at_source(source: str) -> Corpus | None:
    return load_corpus(source) if source in registry() or (source and Path(source).is_file()) else None


def find_text(store: RunStore, ref: TextRef, at_hand: Corpus | None = None) -> Corpus:
    """Where a recorded text is on this server, by its content: the text ``at_hand`` (one a page already holds),
    a shipped dataset or a file at the recorded place, or an upload kept in the store under its sha256 (an imported
    run finds its text there once someone on this server has uploaded the same text, under whatever name), each
    taken only when its sha256 is the recorded one. Raises ``TextNotHere`` when none is.

    The one answer for a run's worker, its resume and evaluation (the app's and the command line's), a challenge
    and the pages; the text keeps its recorded name."""
    if at_hand is not None and ref.sha256 and at_hand.sha256 == ref.sha256:
        found: Corpus | None = at_hand
    else:
        found = _at_source(ref.source)
    changed = found is not None and bool(ref.sha256) and found.sha256 != ref.sha256
    if found is None or changed:
        kept = store.home / UPLOADS_DIR / f"{ref.sha256}.txt"
        found = corpus_from_path(kept) if ref.sha256 and kept.is_file() else None
        if found is None or found.sha256 != ref.sha256:
            raise TextNotHere(ref, changed)
    return Corpus(ref.name or found.name, found.text, found.sha256, found.source)


def run_corpus(store: RunStore, info: RunInfo, at_hand: Corpus | None = None) -> Corpus:
    """The text a recorded run trained on, found on this server by ``find_text``."""
    try:
        return find_text(store, TextRef.of_run(info), at_hand)
    except TextNotHere as exc:
        how = "has changed on this server since it trained" if exc.changed else "is not on this server"
        raise BabyGPTError(f"The text run {info.label} trained on ({exc.ref.shown}) {how}; upload it on the Data "
                           "page (the same file), then resume.") from None


def portable_source(data: dict[str, Any]) -> str:
    """Where a run's text came from, as an export may carry it: a shipped dataset's name, else the text's own
    name, never a path of the server that trained it."""
    source = str(data.get("source", ""))
    return source if source in registry() else str(data.get("name") or Path(source).name)
