"""Shared fixtures: an isolated run store per test, the shipped texts, tiny texts."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "data" / "corpora" / "tinyshakespeare.txt"  # shipped with the project


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own BABYGPT_HOME, and an empty tiktoken cache: GPT-2's files come from data/, never
    from a download or an earlier cache."""
    monkeypatch.setenv("BABYGPT_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # transformers reads the folders the tests write, never a hub
    yield


@pytest.fixture(params=["float32", "bfloat16"])
def auto_precision(request, monkeypatch) -> str:
    """What ``auto`` trains in on the CPU, forced for this test (and the workers it starts), once each way, so a
    test that depends on precision sees both branches whatever this machine's CPU would choose."""
    from babygpt.training.devices import CPU_BFLOAT16_ENV

    monkeypatch.setenv(CPU_BFLOAT16_ENV, "on" if request.param == "bfloat16" else "off")
    return request.param


@pytest.fixture
def shakespeare() -> Path:
    """The path of the shipped Tiny Shakespeare."""
    return SHAKESPEARE


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
