"""What the user chose (corpus, tokenizer and a BPE's size and pre-split, validation split, hyperparameters, active
run, presenter mode, ladder race), kept in
the run store under their key and restored at the first run of each session, so a reload loses nothing; and the
settings a teacher's link carries, applied once on top."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from babygpt.config import form_defaults
from babygpt.errors import BabyGPTError
from babygpt.lessons.links import BPE_VOCAB, LESSON_TABS, parse_link
from babygpt.store.corpora import persist_corpus
from babygpt.text.bpe import BYTES, DEFAULT_BPE_VOCAB, DEFAULT_SPLIT, SPLIT_NAMES, BPESettings, split_of
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
BPE_CHOICE = "bpe_choice"  # a BPE learned from the text: {"vocab_size": int, "split": "gpt2" | "gpt4" | "none"}


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
    if BPE_VOCAB in values or "bpe_split" in values:
        _link_bpe(values, link.problems)
    hparams = {k: v for k, v in values.items() if k not in ("corpus", "tokenizer", BPE_VOCAB, "bpe_split", "lesson")}
    if hparams:
        st.session_state[HPARAMS] = {**st.session_state.get(HPARAMS, {}), **hparams}
    if "lesson" in values:
        st.session_state[LESSON_TAB] = LESSON_TABS[values["lesson"]]
    if link.problems:
        page_flags()["link_problems"] = link.problems


def _link_bpe(values: dict[str, Any], problems: list[str]) -> None:
    """A link's BPE size and pre-split; a size above this server's bound is named and brought down to it."""
    saved = bpe_settings()
    vocab, limit = values.get(BPE_VOCAB, saved.vocab_size), bpe_limit()
    if vocab > limit:
        problems.append(f"{BPE_VOCAB}={vocab} in the link is above this server's bound of {limit:,} tokens; "
                        f"{limit:,} is used.")
        vocab = limit
    st.session_state[BPE_CHOICE] = {"vocab_size": vocab, "split": values.get("bpe_split", saved.split or "none")}


def _lasting_state() -> dict[str, Any]:
    corpus = st.session_state.get(CORPUS)
    return {
        "corpus": {"name": corpus.name, "source": corpus.source} if corpus else None,
        TOKENIZER: st.session_state.get(TOKENIZER), VAL_FRACTION: st.session_state.get(VAL_FRACTION),
        HPARAMS: st.session_state.get(HPARAMS), RUN: st.session_state.get(RUN),
        PRESENTER: st.session_state.get(PRESENTER), RACE: st.session_state.get(RACE),
        RACE_CHOICE: st.session_state.get(RACE_CHOICE), BPE_CHOICE: st.session_state.get(BPE_CHOICE),
    }


def _restore(key: str) -> None:
    saved = store().user_state(key)
    for name in (TOKENIZER, VAL_FRACTION, HPARAMS, RUN, PRESENTER, RACE, RACE_CHOICE, BPE_CHOICE):
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


def bpe_limit() -> int:
    """The largest BPE this server learns from a student's text (``BABYGPT_MAX_BPE_VOCAB``)."""
    return scheduler().settings.max_bpe_vocab


def bpe_settings() -> BPESettings:
    """The size and pre-split of the BPE this user learns from their text: what they last chose, within this
    server's bound (a size saved before the teacher lowered it is brought down to it); the defaults until then."""
    saved = st.session_state.get(BPE_CHOICE)
    saved = saved if isinstance(saved, dict) else {}
    limit = bpe_limit()
    vocab = saved.get("vocab_size")
    if type(vocab) is not int or vocab < BYTES:
        vocab = DEFAULT_BPE_VOCAB
    split = saved.get("split")
    return BPESettings(min(vocab, limit), split_of(split) if split in SPLIT_NAMES else DEFAULT_SPLIT)


def set_bpe_settings(settings: BPESettings) -> None:
    """Keep a BPE's size and pre-split; one outside 256 … this server's bound is refused in a sentence."""
    settings.validate(bpe_limit())
    value = {"vocab_size": settings.vocab_size, "split": settings.split or "none"}
    if st.session_state.get(BPE_CHOICE) != value:
        st.session_state[BPE_CHOICE] = value
        save()


def bpe_for(kind: str) -> BPESettings | None:
    """The BPE settings a run with tokenizer ``kind`` trains with: the user's for ``bpe``, none for the others."""
    return bpe_settings() if kind == "bpe" else None


def bpe_link_values() -> dict[str, Any]:
    """What a lesson link carries of the user's BPE: its size and pre-split, when the tokenizer is ``bpe``."""
    bpe = bpe_for(tokenizer_kind())
    return {} if bpe is None else {BPE_VOCAB: bpe.vocab_size, "bpe_split": bpe.split or "none"}


def val_fraction() -> float:
    return st.session_state.get(VAL_FRACTION, 0.1)


def set_val_fraction(fraction: float) -> None:
    st.session_state[VAL_FRACTION] = fraction
    save()


def current_tokenizer() -> Tokenizer:
    c, kind = corpus(), tokenizer_kind()
    return corpora.tokenizer_for(c.sha256, kind, c.text, bpe_for(kind))


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
