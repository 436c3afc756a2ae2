"""A run's model and what the pages measure on it, loaded or computed once per checkpoint (keyed by when its
weights last changed on disk) and shared by every session: every rerun of a page draws everything on it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.lessons.counterfactuals import Finding
from babygpt.lessons.surprise import TokenSurprise, surprise
from babygpt.orchestration.runs import counterfactual_findings as counterfactual_findings_of
from babygpt.orchestration.runs import run_split
from babygpt.store.runs import LoadedRun, RunStore
from ui import identity
from ui.state import store


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _load_run(home: str, run_id: str, stamp: float) -> LoadedRun:
    return RunStore(home).load(run_id)


def load_run(run_id: str) -> LoadedRun:
    """A run's model, cached until its weights change on disk."""
    version = store().weights_version(run_id)
    if version is None:
        raise BabyGPTError(f"Run {run_id} has no saved weights yet; wait for its first checkpoint.")
    return _load_run(str(store().home), run_id, version)


def runs_with_weights() -> list[dict[str, Any]]:
    """Runs that can be looked at, the user's own first (newest first within each)."""
    mine = identity.user()
    rows = [r for r in store().summaries() if store().has_weights(r["id"])]
    return sorted(rows, key=lambda r: r["owner"] != mine)


def surprise_for(run_id: str, text: str) -> list[TokenSurprise]:
    """Per-token losses of a run on a text, computed once per checkpoint: every rerun of the Lessons page draws
    all its tabs, and a model's weights change only when a new checkpoint lands."""
    return _surprise_for(run_id, text, store().weights_version(run_id) or 0.0)


@st.cache_data(max_entries=8, show_spinner="Measuring the model's surprise…")
def _surprise_for(run_id: str, text: str, weights_version: float) -> list[TokenSurprise]:
    loaded = load_run(run_id)
    return surprise(loaded.model, loaded.tokenizer, text)


def counterfactual_findings(run_id: str) -> list[Finding]:
    """What the ideas a run was trained without did to it, measured once per checkpoint (its weights' mtime)."""
    version = store().weights_version(run_id)
    return _counterfactual_findings(run_id, version) if version is not None else []


@st.cache_data(max_entries=16, show_spinner=False)
def _counterfactual_findings(run_id: str, weights_version: float) -> list[Finding]:
    loaded = load_run(run_id)
    step = store().load_trainer_state(run_id)["step"] if store().has_checkpoint(run_id) else 0  # the weights' step
    return counterfactual_findings_of(store(), loaded, step, _validation_ids(run_id))


@st.cache_resource(max_entries=8, show_spinner=False)
def _validation_ids(run_id: str):
    """A run's validation ids, tokenized once per server: its text never changes, and a large one takes seconds."""
    return run_split(store(), load_run(run_id)).val
