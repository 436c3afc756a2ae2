"""Small view helpers used by several pages."""

from __future__ import annotations

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.runs import LoadedRun
from ui import state


def run_picker(key: str) -> LoadedRun | None:
    """Choose a trained run (the active one first); shows guidance when there is none."""
    runs = state.runs_with_weights()
    if not runs:
        st.info("No trained run yet. Train one on **Model & training** (a minute on a laptop), "
                "or import one on **Runs**.")
        return None
    ids = [r["id"] for r in runs]
    labels = {r["id"]: f"{r['name']} · {r['preset']} · {r['steps']} steps"
              + (f" · val {r['best_val_loss']:.3f}" if r["best_val_loss"] is not None else "") for r in runs}
    active = state.active_run_id()
    index = ids.index(active) if active in ids else 0
    run_id = st.selectbox("Run", ids, index=index, format_func=labels.get, key=key,
                          help="Which trained model to look at. The run you trained last is chosen by default.")
    state.set_active_run(run_id)
    try:
        return state.load_run(run_id)
    except BabyGPTError as exc:
        st.error(str(exc))
        return None


def default_prompt(loaded: LoadedRun, n_chars: int = 32) -> str:
    """A prompt the run can encode: the start of its own corpus when that is loaded, else its first token."""
    corpus = state.corpus()
    if loaded.info.data_sha256 == corpus.sha256:
        return loaded.tokenizer.decode(loaded.tokenizer.encode(corpus.text[:n_chars]))
    return loaded.tokenizer.token_text(0)


def explain(title: str, body: str, formula: str | None = None) -> None:
    """A collapsible explanation of the step a page shows, for students."""
    with st.expander(f":material/school: {title}", expanded=False):
        st.markdown(body)
        if formula:
            st.latex(formula)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
