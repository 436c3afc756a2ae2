"""What the user chose (corpus, tokenizer, split, hyperparameters, active run, presenter mode, ladder race), kept in
the run store under their key and restored at the first run of each session, so a reload loses nothing; and the
settings a teacher's link carries, applied once on top."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from babygpt.config import form_defaults
from babygpt.errors import BabyGPTError
from babygpt.lessons.links import LESSON_TABS, parse_link
from babygpt.store.corpora import persist_corpus
from babygpt.text.corpus import Corpus
from babygpt.text.datasets import default_dataset
from babygpt.text.tokenizers import Tokenizer
from ui import corpora, identity
from ui.state import (
    CORPUS,
    HPARAMS,
    LESSON_TAB,
    PRESENTER,
    RACE,
    RESTORED,
    RUN,
    SAVED,
    TOKENIZER,
    VAL_FRACTION,
    page_flags,
    scheduler,
    store,
)

RACE_CHOICE = "race_choice"  # the ladder race's settings: steps, seeds, layers, the idea broken in every rung


def begin_session() -> str:
    """Run by app.py before any page, on every rerun: find who this browser is and, on the first run of a session,
    bring back the user's saved choices and apply a lesson link's settings."""
    key = identity.identify()
    if not st.session_state.get(RESTORED):
        st.session_state[RESTORED] = True
        _restore(key)
        _apply_link()  # a lesson link's settings win over the user's saved ones, once per session
    return key


def _apply_link() -> None:
    """Settings a teacher's link carries (``babygpt.lessons.links``); bad values are named on the page, never fatal."""
    link = parse_link(st.query_params)
    values = link.values
    if "corpus" in values:
        st.session_state[CORPUS] = corpora.load_named(values["corpus"])
    if "tokenizer" in values:
        st.session_state[TOKENIZER] = values["tokenizer"]
    hparams = {k: v for k, v in values.items() if k not in ("corpus", "tokenizer", "lesson")}
    if hparams:
        st.session_state[HPARAMS] = {**st.session_state.get(HPARAMS, {}), **hparams}
    if "lesson" in values:
        st.session_state[LESSON_TAB] = LESSON_TABS[values["lesson"]]
    if link.problems:
        page_flags()["link_problems"] = link.problems


def _lasting_state() -> dict[str, Any]:
    corpus = st.session_state.get(CORPUS)
    return {
        "corpus": {"name": corpus.name, "source": corpus.source} if corpus else None,
        TOKENIZER: st.session_state.get(TOKENIZER), VAL_FRACTION: st.session_state.get(VAL_FRACTION),
        HPARAMS: st.session_state.get(HPARAMS), RUN: st.session_state.get(RUN),
        PRESENTER: st.session_state.get(PRESENTER), RACE: st.session_state.get(RACE),
        RACE_CHOICE: st.session_state.get(RACE_CHOICE),
    }


def _restore(key: str) -> None:
    saved = store().user_state(key)
    for name in (TOKENIZER, VAL_FRACTION, HPARAMS, RUN, PRESENTER, RACE, RACE_CHOICE):
        if saved.get(name) is not None:
            st.session_state[name] = saved[name]
    corpus = saved.get("corpus")
    if corpus:
        try:
            loaded = corpora.load_named(corpus["source"])
            st.session_state[CORPUS] = Corpus(corpus["name"], loaded.text, loaded.sha256, loaded.source)
        except BabyGPTError:
            pass  # the file is gone: the default corpus it is
    st.session_state[SAVED] = json.dumps(_lasting_state(), sort_keys=True)


def save() -> None:
    """Write the user's choices to the store when they changed: by the setters above, by pages that edit
    them in place (the hyperparameters) and once at the end of every run of app.py."""
    current = json.dumps(_lasting_state(), sort_keys=True)
    if st.session_state.get(SAVED) != current:
        store().save_user_state(identity.user(), json.loads(current))
        st.session_state[SAVED] = current


def corpus() -> Corpus:
    """The current corpus; the offline default until the user picks another."""
    if CORPUS not in st.session_state:
        st.session_state[CORPUS] = corpora.load_named(default_dataset())
    return st.session_state[CORPUS]


def set_corpus(value: Corpus) -> None:
    """An upload gets a file in the store now, so a reload (or a worker) can read it again."""
    st.session_state[CORPUS] = persist_corpus(store(), value, owner=identity.user(), quota=scheduler().quota)
    save()


def tokenizer_kind() -> str:
    return st.session_state.get(TOKENIZER, "char")


def set_tokenizer_kind(kind: str) -> None:
    st.session_state[TOKENIZER] = kind
    save()


def val_fraction() -> float:
    return st.session_state.get(VAL_FRACTION, 0.1)


def set_val_fraction(fraction: float) -> None:
    st.session_state[VAL_FRACTION] = fraction
    save()


def current_tokenizer() -> Tokenizer:
    c = corpus()
    return corpora.tokenizer_for(c.sha256, tokenizer_kind(), c.text)


def active_run_id() -> str | None:
    """The run this user looks at; forgotten once the run is gone (deleted by its owner or the teacher), so no
    page names a run that no longer exists."""
    run_id = st.session_state.get(RUN)
    if run_id and not store().exists(run_id):
        st.session_state[RUN] = None
        return None
    return run_id


def hparam(name: str):
    """A setting of the Model & training form: the user's choice, else the form's default."""
    return st.session_state.get(HPARAMS, {}).get(name, form_defaults()[name])


def set_active_run(run_id: str | None) -> None:
    st.session_state[RUN] = run_id
    save()


def race_choice() -> dict[str, Any]:
    """The ladder race's settings as the user last left them (the Lessons page checks them before use)."""
    saved = st.session_state.get(RACE_CHOICE)
    return dict(saved) if isinstance(saved, dict) else {}


def set_race_choice(values: dict[str, Any]) -> None:
    if st.session_state.get(RACE_CHOICE) != values:
        st.session_state[RACE_CHOICE] = values
        save()


def presenter() -> bool:
    return bool(st.session_state.get(PRESENTER, False))
