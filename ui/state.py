"""Session keys in one place, the user's identity, and the resources every session shares.

The scheduler lives in ``st.cache_resource``: one per server process, so a reload, a page switch or a
second tab finds the same jobs. A reload or a new tab is a new Streamlit session with an empty
``session_state``, so who the user is comes from what the browser sends back: the ``user`` key in
the URL (re-set on every run, because Streamlit drops query parameters on a page switch) or the
``babygpt_user`` cookie (for a second tab). What the user chose (corpus, tokenizer, split,
hyperparameters, active run, presenter mode, ladder race) is saved in the run store under that key and
restored at the first run of each session.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from babygpt.config import form_defaults
from babygpt.errors import BabyGPTError
from babygpt.lessons.counterfactuals import Finding
from babygpt.lessons.links import LESSON_TABS, parse_link
from babygpt.lessons.surprise import TokenSurprise, surprise
from babygpt.orchestration.runs import counterfactual_findings as counterfactual_findings_of
from babygpt.orchestration.runs import run_split
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor, admin_token_matches, is_user_key, new_user_key
from babygpt.store.corpora import persist_corpus
from babygpt.store.runs import LoadedRun, RunStore
from babygpt.text.corpus import Corpus, text_stats
from babygpt.text.datasets import default_dataset, load_corpus
from babygpt.text.tokenizers import Tokenizer, build_tokenizer, whole_words_prefix

USER_PARAM, USER_COOKIE = "user", "babygpt_user"
# lasting per-user choices (saved to the run store), then per-session keys
CORPUS, TOKENIZER, VAL_FRACTION, RUN, PRESENTER, HPARAMS, RACE = (
    "corpus", "tokenizer_kind", "val_fraction", "active_run", "presenter", "hparams", "race_group")
USER, ADMIN, SAVED, RESTORED = "user_key", "admin", "_saved_user_state", "_restored"
LESSON_TAB = "lesson_tab"  # the Lessons tab a link asked to open on
PAGE_FLAGS = "page_flags"  # what pages keep between runs (an error to show, a prompt, a result) under one key


@st.cache_resource
def scheduler() -> Scheduler:
    return Scheduler(RunStore(), SchedulerSettings.from_env())


def store() -> RunStore:
    return scheduler().store


# -- identity ------------------------------------------------------------------------------------
def begin_session() -> str:
    """Run by app.py before any page, on every rerun: find who this browser is (the session, else the URL, else
    the cookie, else a new key), keep the key in the URL (Streamlit clears the query when the page changes), and
    on the first run of a session bring back the user's saved choices and apply a lesson link's settings."""
    key = st.session_state.get(USER)
    if key is None:
        candidates = (st.query_params.get(USER_PARAM), st.context.cookies.get(USER_COOKIE))
        key = next((c for c in candidates if is_user_key(c)), None) or new_user_key()
        st.session_state[USER] = key
    if st.query_params.get(USER_PARAM) != key:
        st.query_params[USER_PARAM] = key
    if not st.session_state.get(RESTORED):
        st.session_state[RESTORED] = True
        _restore(key)
        _apply_link()  # a lesson link's settings win over the user's saved ones, once per session
    return key


def user() -> str:
    """This browser's key, as ``begin_session`` found it."""
    return st.session_state[USER] if USER in st.session_state else begin_session()


def _apply_link() -> None:
    """Settings a teacher's link carries (``babygpt.lessons.links``); bad values are named on the page, never fatal."""
    link = parse_link(st.query_params)
    values = link.values
    if "corpus" in values:
        st.session_state[CORPUS] = _load_named(values["corpus"])
    if "tokenizer" in values:
        st.session_state[TOKENIZER] = values["tokenizer"]
    hparams = {k: v for k, v in values.items() if k not in ("corpus", "tokenizer", "lesson")}
    if hparams:
        st.session_state[HPARAMS] = {**st.session_state.get(HPARAMS, {}), **hparams}
    if "lesson" in values:
        st.session_state[LESSON_TAB] = LESSON_TABS[values["lesson"]]
    if link.problems:
        page_flags()["link_problems"] = link.problems


def remember_in_cookie() -> None:
    """Set the cookie when the browser does not have this key yet (a second tab then finds the same user)."""
    key = user()
    if st.context.cookies.get(USER_COOKIE) != key:
        st.html(f"<script>document.cookie = '{USER_COOKIE}={key}; path=/; max-age=31536000; SameSite=Lax';</script>",
                unsafe_allow_javascript=True)


def actor() -> Actor:
    return Actor(user(), admin=bool(st.session_state.get(ADMIN)))


def try_admin(token: str) -> bool:
    st.session_state[ADMIN] = admin_token_matches(token)
    return st.session_state[ADMIN]


def page_flags() -> dict[str, Any]:
    return st.session_state.setdefault(PAGE_FLAGS, {})


# -- what the user chose, kept across reloads ------------------------------------------------------
def _lasting_state() -> dict[str, Any]:
    corpus = st.session_state.get(CORPUS)
    return {
        "corpus": {"name": corpus.name, "source": corpus.source} if corpus else None,
        TOKENIZER: st.session_state.get(TOKENIZER), VAL_FRACTION: st.session_state.get(VAL_FRACTION),
        HPARAMS: st.session_state.get(HPARAMS), RUN: st.session_state.get(RUN),
        PRESENTER: st.session_state.get(PRESENTER), RACE: st.session_state.get(RACE),
    }


def _restore(key: str) -> None:
    saved = store().user_state(key)
    for name in (TOKENIZER, VAL_FRACTION, HPARAMS, RUN, PRESENTER, RACE):
        if saved.get(name) is not None:
            st.session_state[name] = saved[name]
    corpus = saved.get("corpus")
    if corpus:
        try:
            loaded = _load_named(corpus["source"])
            st.session_state[CORPUS] = Corpus(corpus["name"], loaded.text, loaded.sha256, loaded.source)
        except BabyGPTError:
            pass  # the file is gone: the default corpus it is
    st.session_state[SAVED] = json.dumps(_lasting_state(), sort_keys=True)


def save() -> None:
    """Write the user's choices to the store when they changed: by the setters above, by pages that edit
    them in place (the hyperparameters) and once at the end of every run of app.py."""
    current = json.dumps(_lasting_state(), sort_keys=True)
    if st.session_state.get(SAVED) != current:
        store().save_user_state(user(), json.loads(current))
        st.session_state[SAVED] = current


# -- corpus and tokenizer --------------------------------------------------------------------------
@st.cache_data(show_spinner="Loading the corpus…", max_entries=8)
def _load_named(name: str) -> Corpus:
    return load_corpus(name)


def corpus() -> Corpus:
    """The current corpus; the offline default until the user picks another."""
    if CORPUS not in st.session_state:
        st.session_state[CORPUS] = _load_named(default_dataset())
    return st.session_state[CORPUS]


def set_corpus(value: Corpus) -> None:
    """An upload gets a file in the store now, so a reload (or a worker) can read it again."""
    st.session_state[CORPUS] = persist_corpus(store(), value, owner=user(), quota=scheduler().quota)
    save()


def load_named_corpus(name: str) -> Corpus:
    return _load_named(name)


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


@st.cache_data(show_spinner=False, max_entries=16)
def stats_for(sha256: str, _text: str):
    return text_stats(_text)


@st.cache_resource(show_spinner="Tokenizing…", max_entries=8)
def tokenizer_for(sha256: str, kind: str, _text: str) -> Tokenizer:
    return build_tokenizer(kind, _text)


def current_tokenizer() -> Tokenizer:
    c = corpus()
    return tokenizer_for(c.sha256, tokenizer_kind(), c.text)


@st.cache_data(show_spinner=False, max_entries=16)
def token_preview(sha256: str, kind: str, _text: str, limit: int) -> tuple[list[int], float]:
    """The first ``limit`` token ids of a text and its characters per token, once per text and tokenizer: a text
    with no spaces has no short whole-word prefix, so this may encode all of it (up to the upload limit)."""
    tokenizer = tokenizer_for(sha256, kind, _text)
    ids = tokenizer.encode(whole_words_prefix(_text, 600))[:limit]
    counted = whole_words_prefix(_text, 200_000)
    return ids, len(counted) / max(1, len(tokenizer.encode(counted)))


# -- runs ------------------------------------------------------------------------------------------
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
    """Runs that can be looked at, the user's own first (newest first within each)."""
    mine = user()
    rows = [r for r in store().summaries() if store().has_weights(r["id"])]
    return sorted(rows, key=lambda r: r["owner"] != mine)


def presenter() -> bool:
    return bool(st.session_state.get(PRESENTER, False))


def surprise_for(run_id: str, text: str) -> list[TokenSurprise]:
    """Per-token losses of a run on a text, computed once per checkpoint: every rerun of the Lessons page draws
    all its tabs, and a model's weights change only when a new checkpoint lands."""
    weights = store().run_dir(run_id) / "model.safetensors"
    return _surprise_for(run_id, text, weights.stat().st_mtime if weights.is_file() else 0.0)


@st.cache_data(max_entries=8, show_spinner="Measuring the model's surprise…")
def _surprise_for(run_id: str, text: str, weights_version: float) -> list[TokenSurprise]:
    loaded = load_run(run_id)
    return surprise(loaded.model, loaded.tokenizer, text)


def counterfactual_findings(run_id: str) -> list[Finding]:
    """What the ideas a run was trained without did to it, measured once per checkpoint (its weights' mtime)."""
    weights = store().run_dir(run_id) / "model.safetensors"
    return _counterfactual_findings(run_id, weights.stat().st_mtime) if weights.is_file() else []


@st.cache_data(max_entries=16, show_spinner=False)
def _counterfactual_findings(run_id: str, weights_version: float) -> list[Finding]:
    loaded = load_run(run_id)
    step = store().load_trainer_state(run_id)["step"] if store().has_checkpoint(run_id) else 0  # the weights' step
    return counterfactual_findings_of(store(), loaded, step, _validation_ids(run_id))


@st.cache_resource(max_entries=8, show_spinner=False)
def _validation_ids(run_id: str):
    """A run's validation ids, tokenized once per server: its text never changes, and a large one takes seconds."""
    return run_split(store(), load_run(run_id)).val
