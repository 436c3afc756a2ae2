"""The dataset registry: the named corpora that ship in ``data/`` (``data/registry.json``).

Each corpus is a file with a recorded sha256, checked when it is read, so a damaged copy is named instead of
trained on; nothing is downloaded, so a classroom without internet has every corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from babygpt.errors import BabyGPTError
from babygpt.shipped import data_file
from babygpt.text.corpus import Corpus, corpus_from_path


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str  # under data/
    title: str
    description: str
    sha256: str
    size: int
    licence: str
    source: str
    default: bool = False


def registry() -> dict[str, Dataset]:
    entries = json.loads(data_file("registry.json").read_text(encoding="utf-8"))
    return {name: Dataset(name=name, **spec) for name, spec in entries.items()}


def default_dataset() -> str:
    return next(name for name, ds in registry().items() if ds.default)


def get_dataset(name: str) -> Dataset:
    datasets = registry()
    if name not in datasets:
        raise BabyGPTError(f"Unknown dataset {name!r}; known: {', '.join(datasets)} (or give a file path).")
    return datasets[name]


def load_dataset(name: str) -> Corpus:
    ds = get_dataset(name)
    corpus = corpus_from_path(data_file(*ds.file.split("/")))
    if corpus.sha256 != ds.sha256:
        raise BabyGPTError(f"The shipped text of {ds.title} is damaged (sha256 {corpus.sha256[:12]}… instead of "
                           f"{ds.sha256[:12]}…); restore data/{ds.file} from the repository.")
    return Corpus(name, corpus.text, corpus.sha256, name)


def load_corpus(source: str | Path) -> Corpus:
    """A dataset name from the registry, or a path to a UTF-8 text file."""
    if str(source) in registry():
        return load_dataset(str(source))
    return corpus_from_path(source)
