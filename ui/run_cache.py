"""A run's model and what the pages measure on it, loaded or computed once per checkpoint (keyed by when its
weights last changed on disk) and shared by every session: every rerun of a page draws everything on it."""

from __future__ import annotations

from typing import Any

import streamlit as st
import torch

from babygpt.errors import BabyGPTError
from babygpt.interpret.inside import HeadScores, head_scores, heads_of_type
from babygpt.interpret.looking import (
    AblationView,
    HeadSetKnockOut,
    ablation_passes,
    ablation_view,
    head_set_knock_out,
    measurement_windows,
)
from babygpt.lessons.counterfactuals import Finding
from babygpt.lessons.surprise import TokenSurprise, surprise
from babygpt.orchestration import inside
from babygpt.orchestration.runs import counterfactual_findings as counterfactual_findings_of
from babygpt.orchestration.runs import run_split
from babygpt.store.runs import LoadedRun, RunStore
from babygpt.text.tokenizers import unknown_pieces
from ui import choices, identity
from ui.state import scheduler, store


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _load_run(home: str, run_id: str, stamp: float) -> LoadedRun:
    return RunStore(home).load(run_id)


def load_run(run_id: str) -> LoadedRun:
    """A run's model, cached until its weights change on disk; a run that is gone is a sentence, not the store's
    message for the command line."""
    scheduler().run_info(run_id)
    version = store().weights_version(run_id)
    if version is None:
        raise BabyGPTError(f"Run {run_id} has no saved weights yet; wait for its first checkpoint.")
    return _load_run(str(store().home), run_id, version)


def runs_with_weights() -> list[dict[str, Any]]:
    """Runs that can be looked at, the user's own first (newest first within each)."""
    mine = identity.user()
    rows = [r.row() for r in store().summaries() if store().has_weights(r.id)]  # a table's rows
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


# --- looking inside: every measurement once per checkpoint, its cost bounded before it runs -------------------

def measure_ids(run_id: str) -> tuple[torch.Tensor, str]:
    """The token ids a run is measured on, and what they are: its own validation text, or for a run whose text
    this server does not have (an imported model) the current corpus, when the run's tokenizer reads it whole."""
    try:
        return _validation_ids(run_id), "its validation text"
    except BabyGPTError:
        loaded, corpus = load_run(run_id), choices.corpus()
        unknown = unknown_pieces(loaded.tokenizer, corpus.text)
        if unknown:
            raise BabyGPTError(f"This run's text is not on this server, and the current corpus ({corpus.name}) has "
                               "tokens it never saw: choose a text it can read on the Data page.") from None
        ids = torch.tensor(loaded.tokenizer.encode(corpus.text[:200_000]), dtype=torch.long)
        return ids[int(len(ids) * 0.9):], f"the end of {corpus.name} (its own text is not on this server)"


def _text_key(run_id: str) -> str:
    """Which text a run is measured on, for the caches: its own (always the same), or the current corpus's sha256
    when its own is not here, so one user's corpus never answers for another's."""
    try:
        _validation_ids(run_id)
        return "own"
    except BabyGPTError:
        return choices.corpus().sha256


def head_types(run_id: str) -> tuple[HeadScores, str]:
    version = store().weights_version(run_id) or 0.0
    return _head_types(run_id, version, _text_key(run_id))


@st.cache_data(max_entries=16, show_spinner="Measuring what each head does…")
def _head_types(run_id: str, weights_version: float, text_key: str) -> tuple[HeadScores, str]:
    loaded = load_run(run_id)
    ids, source = measure_ids(run_id)
    windows = measurement_windows(ids, loaded.model_config, passes=2)
    return head_scores(loaded.model, windows[:, :-1]), source


def ablations(run_id: str) -> tuple[AblationView, int, str]:
    version = store().weights_version(run_id) or 0.0
    return _ablations(run_id, version, _text_key(run_id))


@st.cache_data(max_entries=8, show_spinner="Knocking out each part in turn…")
def _ablations(run_id: str, weights_version: float, text_key: str) -> tuple[AblationView, int, str]:
    loaded = load_run(run_id)
    ids, source = measure_ids(run_id)
    windows = measurement_windows(ids, loaded.model_config, ablation_passes(loaded.model_config))
    return ablation_view(loaded.model, loaded.tokenizer, windows), int(windows[:, 1:].numel()), source


def ablated_samples(run_id: str, layer: int, head: int, mode: str, prompt: str) -> inside.AblatedSamples:
    """The same seed written with and without one head, once per checkpoint, text and choice: every rerun of the
    Inside page (any widget touched) draws the two texts again without writing them again."""
    version = store().weights_version(run_id) or 0.0
    return _ablated_samples(run_id, version, _text_key(run_id), layer, head, mode, prompt)


@st.cache_data(max_entries=32, show_spinner="Writing with and without the head…")
def _ablated_samples(run_id: str, weights_version: float, text_key: str, layer: int, head: int, mode: str,
                     prompt: str) -> inside.AblatedSamples:
    ids, _ = measure_ids(run_id)
    return inside.ablated_samples(load_run(run_id), ids, layer, head, mode, prompt)


def heads_together(run_id: str, type_key: str, mode: str) -> HeadSetKnockOut:
    """Every head of one type knocked out at once, on the windows and by the kind the ablation grid used, once per
    checkpoint, text and choice."""
    version = store().weights_version(run_id) or 0.0
    return _heads_together(run_id, version, _text_key(run_id), type_key, mode)


@st.cache_data(max_entries=16, show_spinner="Knocking the heads out together…")
def _heads_together(run_id: str, weights_version: float, text_key: str, type_key: str, mode: str) -> HeadSetKnockOut:
    loaded = load_run(run_id)
    ids, _ = measure_ids(run_id)
    windows = measurement_windows(ids, loaded.model_config, ablation_passes(loaded.model_config))
    view, _, _ = ablations(run_id)
    scores, _ = head_types(run_id)
    return head_set_knock_out(loaded.model, windows, heads_of_type(scores, type_key), type_key, mode,
                              view.by(mode).heads, view.intact)
