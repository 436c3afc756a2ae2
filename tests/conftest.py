"""Shared fixtures: an isolated run store and caches per test, offline GPT-2 files, tiny texts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare.txt"
TIKTOKEN_FILES = SHARED / "tiktoken-cache"


def missing_shared(what: str) -> None:
    """Skip on a developer's machine without ../shared; under CI a missing file is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what} is missing: CI runs with ../shared beside the checkout")
    pytest.skip(f"{what} is absent")


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory) -> Path | None:
    if not TIKTOKEN_FILES.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {TIKTOKEN_FILES} is missing: CI runs with ../shared beside the checkout")
        return None
    target = tmp_path_factory.mktemp("tiktoken")
    for f in TIKTOKEN_FILES.iterdir():
        if f.name != "README.md":
            shutil.copy(f, target / f.name)
    return target


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, tiktoken_cache):
    """Every test gets its own BABYGPT_HOME and download cache; GPT-2 files come from shared/."""
    monkeypatch.setenv("BABYGPT_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("BABYGPT_CACHE", str(tmp_path / "cache"))
    if tiktoken_cache is not None:
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))
    yield


@pytest.fixture
def shakespeare() -> Path:
    """The path of Tiny Shakespeare in ../shared/data."""
    if not SHAKESPEARE.is_file():
        missing_shared(str(SHAKESPEARE))
    return SHAKESPEARE


@pytest.fixture
def gpt2_available(tiktoken_cache):
    if tiktoken_cache is None:
        missing_shared("../shared/tiktoken-cache (GPT-2 tokenizer files for offline use)")


@pytest.fixture(scope="session")
def small_text() -> str:
    """A few thousand characters of structured text: enough for tiny models to learn something."""
    lines = []
    for i in range(300):
        lines.append(f"the cat sat on the mat {i % 7}. a dog ran to the log {i % 5}!")
    return "\n".join(lines) + "\n"


@pytest.fixture
def fresh_resources():
    """A clean Streamlit cache per AppTest, and no job left running afterwards."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    from ui.state import scheduler

    scheduler().stop_all(wait=20)
    st.cache_resource.clear()
