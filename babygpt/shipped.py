"""Where the project's code and the files it ships live.

The code: the folder that holds the ``babygpt`` package (``code_root``), what a worker process needs on its path.
The files: the top-level ``data/`` folder of a checkout, or its copy inside an installed package
(``babygpt/_data``, put there by ``pip install .``). Every reader of shipped data goes through ``data_file`` so a
checkout and an install behave the same, and a classroom with no network has everything.
"""

from __future__ import annotations

from pathlib import Path

from babygpt.errors import BabyGPTError

_CODE_ROOT = Path(__file__).resolve().parent.parent
_CHECKOUT = _CODE_ROOT / "data"
_INSTALLED = Path(__file__).resolve().parent / "_data"


def code_root() -> Path:
    """The folder holding the ``babygpt`` package: a checkout's top, or ``site-packages`` in an install. Not the
    current directory, which is wherever the server was started from."""
    return _CODE_ROOT


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
