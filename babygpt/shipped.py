"""Where the files the project ships live: the top-level ``data/`` folder of a checkout, or its copy inside an
installed package (``babygpt/_data``, put there by ``pip install .``). Every reader of shipped data goes through
``data_file`` so a checkout and an install behave the same, and a classroom with no network has everything.
"""

from __future__ import annotations

from pathlib import Path

from babygpt.errors import BabyGPTError

_CHECKOUT = Path(__file__).resolve().parent.parent / "data"
_INSTALLED = Path(__file__).resolve().parent / "_data"


def data_dir() -> Path:
    """The folder holding ``registry.json``, the corpora and the tokenizer files."""
    for folder in (_CHECKOUT, _INSTALLED):
        if (folder / "registry.json").is_file():
            return folder
    raise BabyGPTError(f"The shipped data folder is missing (looked in {_CHECKOUT} and {_INSTALLED}); "
                       "reinstall Baby GPT or restore data/ from the repository.")


def data_file(*parts: str) -> Path:
    """A shipped file, by its path under ``data/``; a clear error when the install lacks it."""
    path = data_dir().joinpath(*parts)
    if not path.is_file():
        raise BabyGPTError(f"The shipped file data/{'/'.join(parts)} is missing; restore data/ from the repository.")
    return path
