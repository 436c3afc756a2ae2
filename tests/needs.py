"""What a test needs from outside the library (a browser, ``transformers`` for the independent check of the Hugging
Face bridge): on a developer's machine a missing one skips its tests; under ``CI=true`` it fails them, so CI never
passes by checking less than it should."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(what: str, fix: str) -> None:
    """Fail under CI (``what`` is missing and ``fix`` installs it), skip elsewhere; callable in a test or at a
    test module's top level."""
    if under_ci():
        pytest.fail(f"CI=true but {what} is missing: {fix}", pytrace=False)
    pytest.skip(f"{what} is not installed ({fix})", allow_module_level=True)


def required_module(name: str, fix: str = 'pip install -e ".[test]"') -> ModuleType:
    """``pytest.importorskip``, except that under CI a missing module fails instead of skipping silently."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        missing(f"the {name} package", fix)
        raise  # not reached: missing() fails or skips
