"""Session keys in one place, and the resources every session shares (run store, job registry).

The registry lives in ``st.cache_resource``: one per server process, so a reload, a page switch
or a second tab finds the same jobs. Lasting per-user choices are kept under non-widget keys,
because Streamlit drops a widget's state when a page without that widget renders.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import streamlit as st

from babygpt.data import Corpus, text_stats
from babygpt.datasets import default_dataset, load_corpus
from babygpt.errors import BabyGPTError
from babygpt.jobs import JobRegistry
from babygpt.runs import LoadedRun, RunStore
from babygpt.tokenizers import Tokenizer, build_tokenizer

CORPUS, TOKENIZER, VAL_FRACTION, RUN, OWNER, PRESENTER, HPARAMS = (
    "corpus", "tokenizer_kind", "val_fraction", "active_run", "owner", "presenter", "hparams")


@st.cache_resource
def registry() -> JobRegistry:
    home = os.environ.get("BABYGPT_HOME", "runs")
    return JobRegistry(RunStore(home), max_jobs=int(os.environ.get("BABYGPT_MAX_JOBS", "2")),
                       threads_per_job=int(os.environ.get("BABYGPT_THREADS_PER_JOB", "0")))


def store() -> RunStore:
    return registry().store


def owner() -> str:
    """An id for this browser session, so a user's job is found again after a page switch."""
    if OWNER not in st.session_state:
        st.session_state[OWNER] = uuid.uuid4().hex[:12]
    return st.session_state[OWNER]


@st.cache_data(show_spinner="Loading the corpus…", max_entries=8)
def _load_named(name: str) -> Corpus:
    return load_corpus(name)


def corpus() -> Corpus:
    """The current corpus; the offline default until the user picks another."""
    if CORPUS not in st.session_state:
        st.session_state[CORPUS] = _load_named(default_dataset())
    return st.session_state[CORPUS]


def set_corpus(value: Corpus) -> None:
    st.session_state[CORPUS] = value


def load_named_corpus(name: str) -> Corpus:
    return _load_named(name)


def tokenizer_kind() -> str:
    return st.session_state.get(TOKENIZER, "char")


def val_fraction() -> float:
    return st.session_state.get(VAL_FRACTION, 0.1)


@st.cache_data(show_spinner=False, max_entries=16)
def stats_for(sha256: str, _text: str):
    return text_stats(_text)


@st.cache_resource(show_spinner="Tokenizing…", max_entries=8)
def tokenizer_for(sha256: str, kind: str, _text: str) -> Tokenizer:
    return build_tokenizer(kind, _text)


def current_tokenizer() -> Tokenizer:
    c = corpus()
    return tokenizer_for(c.sha256, tokenizer_kind(), c.text)


def active_run_id() -> str | None:
    return st.session_state.get(RUN)


def set_active_run(run_id: str | None) -> None:
    st.session_state[RUN] = run_id


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _load_run(home: str, run_id: str, stamp: float) -> LoadedRun:
    return RunStore(home).load(run_id)


def load_run(run_id: str) -> LoadedRun:
    """A run's model, cached until its weights change on disk."""
    s = store()
    weights = s.run_dir(run_id) / "model.safetensors"
    if not weights.is_file():
        raise BabyGPTError(f"Run {run_id} has no saved weights yet; wait for its first checkpoint.")
    return _load_run(str(s.home), run_id, weights.stat().st_mtime)


def runs_with_weights() -> list[dict[str, Any]]:
    return [r for r in store().summaries() if (store().run_dir(r["id"]) / "model.safetensors").is_file()]


def presenter() -> bool:
    return bool(st.session_state.get(PRESENTER, False))
