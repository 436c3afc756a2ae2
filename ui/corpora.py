"""What the pages compute from a text, once per text (by its sha256) and tokenizer, shared by every session."""

from __future__ import annotations

import streamlit as st

from babygpt.orchestration.challenge import ChallengeRules
from babygpt.orchestration.challenge import challenge_corpus as challenge_corpus_in
from babygpt.text.corpus import Corpus, text_stats
from babygpt.text.datasets import load_corpus
from babygpt.text.tokenizers import Tokenizer, build_tokenizer, whole_words_prefix
from ui.state import store


@st.cache_data(show_spinner="Loading the corpus…", max_entries=8)
def load_named(name: str) -> Corpus:
    return load_corpus(name)


def challenge_corpus(rules: ChallengeRules) -> Corpus:
    """The open challenge's text, read from the store once per text for every session."""
    return _challenge_text(rules.corpus_sha256, rules)


@st.cache_resource(show_spinner="Loading the challenge's text…", max_entries=4)
def _challenge_text(sha256: str, _rules: ChallengeRules) -> Corpus:
    return challenge_corpus_in(store(), _rules)


@st.cache_data(show_spinner=False, max_entries=16)
def stats_for(sha256: str, _text: str):
    return text_stats(_text)


@st.cache_resource(show_spinner="Tokenizing…", max_entries=8)
def tokenizer_for(sha256: str, kind: str, _text: str) -> Tokenizer:
    return build_tokenizer(kind, _text)


@st.cache_data(show_spinner=False, max_entries=16)
def token_preview(sha256: str, kind: str, _text: str, limit: int) -> tuple[list[int], float]:
    """The first ``limit`` token ids of a text and its characters per token, once per text and tokenizer: a text
    with no spaces has no short whole-word prefix, so this may encode all of it (up to the upload limit)."""
    tokenizer = tokenizer_for(sha256, kind, _text)
    ids = tokenizer.encode(whole_words_prefix(_text, 600))[:limit]
    counted = whole_words_prefix(_text, 200_000)
    return ids, len(counted) / max(1, len(tokenizer.encode(counted)))
