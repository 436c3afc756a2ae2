"""The dataset registry: named corpora that ship with Python or are downloaded once and verified.

Downloads are checked against a sha256 before they are cached, so a truncated or tampered
file never reaches training; once cached a dataset works offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babygpt.data import Corpus, corpus_from_path
from babygpt.errors import BabyGPTError

REGISTRY_FILE = Path(__file__).resolve().parent / "datasets.json"
ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total or 0 when unknown)


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "builtin" or "download"
    title: str
    description: str
    url: str = ""
    sha256: str = ""
    size: int = 0
    default: bool = False


def registry() -> dict[str, Dataset]:
    entries = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    return {name: Dataset(name=name, **spec) for name, spec in entries.items()}


def default_dataset() -> str:
    return next(name for name, ds in registry().items() if ds.default)


def cache_dir() -> Path:
    """Where downloads live: $BABYGPT_CACHE, else ~/.cache/babygpt."""
    return Path(os.environ.get("BABYGPT_CACHE", Path.home() / ".cache" / "babygpt"))


def cached_path(name: str) -> Path:
    return cache_dir() / f"{name}.txt"


def is_available(name: str) -> bool:
    ds = get_dataset(name)
    return ds.kind == "builtin" or cached_path(name).is_file()


def get_dataset(name: str) -> Dataset:
    datasets = registry()
    if name not in datasets:
        raise BabyGPTError(f"Unknown dataset {name!r}; known: {', '.join(datasets)} (or give a file path).")
    return datasets[name]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _install(ds: Dataset, tmp: Path) -> Path:
    actual = _sha256_file(tmp)
    if actual != ds.sha256:
        tmp.unlink(missing_ok=True)
        raise BabyGPTError(
            f"The download of {ds.title} is damaged (sha256 {actual[:12]}… instead of {ds.sha256[:12]}…); "
            "it was discarded. Try again later."
        )
    target = cached_path(ds.name)
    os.replace(tmp, target)
    return target


def download(name: str, progress: ProgressFn | None = None, url: str | None = None, timeout: float = 30) -> Path:
    """Fetch a downloadable dataset into the cache (verified); returns its path. Idempotent."""
    ds = get_dataset(name)
    if ds.kind != "download":
        raise BabyGPTError(f"{ds.title} ships with Python and needs no download.")
    target = cached_path(name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url or ds.url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or ds.size or 0)
            done = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise BabyGPTError(
            f"Could not download {ds.title} ({getattr(exc, 'reason', exc)}). Check the network connection, "
            "or use the offline Python reference corpus or upload a text file."
        ) from exc
    return _install(ds, tmp)


def install_local_copy(name: str, path: str | Path) -> Path:
    """Seed the cache from a file you already have (checked against the registry's sha256)."""
    ds = get_dataset(name)
    target = cached_path(name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-", suffix=".part")
    os.close(fd)
    shutil.copyfile(path, tmp_name)
    return _install(ds, Path(tmp_name))


def _builtin_text(name: str) -> str:
    if name == "python-docs":
        import pydoc_data.topics as topics

        return "\n\n".join(topics.topics[key].strip() + "\n" for key in sorted(topics.topics))
    raise BabyGPTError(f"No built-in text for {name!r}.")


def load_dataset(name: str, progress: ProgressFn | None = None) -> Corpus:
    ds = get_dataset(name)
    if ds.kind == "builtin":
        return Corpus.from_text(name, _builtin_text(name), source=name)
    corpus = corpus_from_path(download(name, progress))
    return Corpus(name, corpus.text, corpus.sha256, name)


def load_corpus(source: str | Path, progress: ProgressFn | None = None) -> Corpus:
    """A dataset name from the registry, or a path to a UTF-8 text file."""
    if str(source) in registry():
        return load_dataset(str(source), progress)
    return corpus_from_path(source)
