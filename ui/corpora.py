"""What the pages compute from a text, once per text (by its sha256) and tokenizer, shared by every session."""

from __future__ import annotations

import streamlit as st

from babygpt.lessons.bpe_lesson import (
    Compression,
    Cut,
    LearnedBPE,
    compression,
    learn_bpe,
    sample_cuts,
    worst_lines_for_gpt2,
)
from babygpt.orchestration.challenge import ChallengeRules
from babygpt.orchestration.challenge import challenge_corpus as challenge_corpus_in
from babygpt.store.corpora import run_corpus
from babygpt.store.records import RunInfo
from babygpt.text.bpe import BPESettings, split_of
from babygpt.text.bpe_gate import LearningGate
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import Corpus, text_stats
from babygpt.text.datasets import load_corpus
from babygpt.text.tokenizers import Tokenizer, build_tokenizer, whole_words_prefix
from ui.state import scheduler, store


@st.cache_data(show_spinner="Loading the corpus…", max_entries=8)
def load_named(name: str) -> Corpus:
    return load_corpus(name)


def run_text(info: RunInfo, at_hand: Corpus | None = None) -> Corpus:
    """The text a run trained on (``run_corpus``: found by its content; ``at_hand``, the Data page's text, when it is
    the same), read once per text for every session."""
    return _run_text(info.text_sha256 or info.id, info, at_hand)


@st.cache_resource(show_spinner="Loading the run's text…", max_entries=4)
def _run_text(key: str, _info: RunInfo, _at_hand: Corpus | None) -> Corpus:
    return run_corpus(store(), _info, _at_hand)


def challenge_corpus(rules: ChallengeRules) -> Corpus:
    """The open challenge's text, read from the store once per text for every session."""
    return _challenge_text(rules.corpus_sha256, rules)


@st.cache_resource(show_spinner="Loading the challenge's text…", max_entries=4)
def _challenge_text(sha256: str, _rules: ChallengeRules) -> Corpus:
    return challenge_corpus_in(store(), _rules)


@st.cache_data(show_spinner=False, max_entries=16)
def stats_for(sha256: str, _text: str):
    return text_stats(_text)


def _split_name(settings: BPESettings) -> str:
    return settings.split or "none"  # the caches' keys are plain values: the split as a person names it


def tokenizer_for(sha256: str, kind: str, _text: str, bpe: BPESettings | None = None) -> Tokenizer:
    """The tokenizer of ``kind`` for a text, built once per text and tokenizer for every session; for ``bpe``, once
    per text, vocabulary size and pre-split (``bpe``: the size and split; None: the library's default)."""
    if kind == "bpe":
        settings = bpe or BPESettings()
        return _bpe_tokenizer(sha256, _text, settings.vocab_size, _split_name(settings))
    return _tokenizer(sha256, kind, _text)


@st.cache_resource(show_spinner="Tokenizing…", max_entries=8)
def _tokenizer(sha256: str, kind: str, _text: str) -> Tokenizer:
    return build_tokenizer(kind, _text)


@st.cache_resource(show_spinner=False, max_entries=16)
def _bpe_tokenizer(sha256: str, _text: str, vocab_size: int, split: str) -> BPETokenizer:
    return BPETokenizer(_learned(sha256, _text, vocab_size, split).bpe)


def learned_bpe(sha256: str, _text: str, settings: BPESettings) -> LearnedBPE:
    """The BPE learned from a text with these settings, and which trainer learned it: once per (text, vocabulary
    size, pre-split) for every session, so a class choosing the same settings waits once."""
    return _learned(sha256, _text, settings.vocab_size, _split_name(settings))


@st.cache_resource(show_spinner=False, max_entries=16)
def _learned(sha256: str, _text: str, vocab_size: int, split: str) -> LearnedBPE:
    with learning_gate().slot():  # past the server's limit: a sentence, and nothing cached, so a retry learns it
        return learn_bpe(_text, BPESettings(vocab_size, split_of(split)))


@st.cache_resource
def learning_gate() -> LearningGate:
    """How many BPEs this server learns at once, shared by every session (``BABYGPT_MAX_BPE_LEARNING``)."""
    return LearningGate(scheduler().settings.max_bpe_learning)


@st.cache_data(show_spinner=False, max_entries=16)
def _compression(sha256: str, _text: str, vocab_size: int, split: str) -> Compression:
    return compression(_learned(sha256, _text, vocab_size, split).bpe, _text)


def compression_for(sha256: str, _text: str, settings: BPESettings) -> Compression:
    """Bytes per token as the learned BPE grows, beside char and GPT-2, once per text and settings."""
    return _compression(sha256, _text, settings.vocab_size, _split_name(settings))


@st.cache_data(show_spinner=False, max_entries=16)
def _gpt2_cuts(sha256: str, _text: str, vocab_size: int, split: str) -> tuple[list[Cut], list[Cut]]:
    bpe = _learned(sha256, _text, vocab_size, split).bpe
    return worst_lines_for_gpt2(_text, bpe), sample_cuts(bpe)


def gpt2_cuts_for(sha256: str, _text: str, settings: BPESettings) -> tuple[list[Cut], list[Cut]]:
    """The text's lines GPT-2 cuts worst, and the shipped samples of other scripts, each beside the learned BPE."""
    return _gpt2_cuts(sha256, _text, settings.vocab_size, _split_name(settings))


def token_preview(sha256: str, kind: str, _text: str, limit: int,
                  bpe: BPESettings | None = None) -> tuple[list[int], float]:
    """The first ``limit`` token ids of a text and its characters per token, once per text and tokenizer: a text
    with no spaces has no short whole-word prefix, so this may encode all of it (up to the upload limit)."""
    settings = (bpe or BPESettings()) if kind == "bpe" else None
    return _token_preview(sha256, kind, _text, limit, settings.vocab_size if settings else 0,
                          _split_name(settings) if settings else "")


@st.cache_data(show_spinner=False, max_entries=16)
def _token_preview(sha256: str, kind: str, _text: str, limit: int, vocab_size: int, split: str
                   ) -> tuple[list[int], float]:
    settings = BPESettings(vocab_size, split_of(split)) if kind == "bpe" else None
    tokenizer = tokenizer_for(sha256, kind, _text, settings)
    ids = tokenizer.encode(whole_words_prefix(_text, 600))[:limit]
    counted = whole_words_prefix(_text, 200_000)
    return ids, len(counted) / max(1, len(tokenizer.encode(counted)))
