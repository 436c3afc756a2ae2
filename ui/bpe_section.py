"""The Data page's own BPE: its size and pre-split, learned while the page says so, and the lesson of watching it
learn (the merges in order, the text re-cut merge by merge, compression beside char and GPT-2, the longest tokens,
where GPT-2 cuts a text badly, and the trainer's code). The numbers and figures come from
``babygpt.lessons.bpe_lesson``; this module reads the widgets and draws."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.bpe_figures import compression_figure, cut_html, merges_html
from babygpt.figures.viz import tokens_html
from babygpt.lessons.bpe_lesson import (
    GPT2_VOCAB,
    Cut,
    LearnedBPE,
    longest_tokens,
    merge_rows,
    readable_trainer_source,
    shown,
    vocab_after,
)
from babygpt.plain_text import markdown_literal
from babygpt.text.bpe import BYTES, BPESettings, encode_first_k, split_of, utf8
from babygpt.text.corpus import Corpus
from babygpt.text.tokenizers import whole_words_prefix
from ui import choices, corpora

SPLITS = {"gpt4": "GPT-4's", "gpt2": "GPT-2's", "none": "none"}  # the radio's options, as a person reads them
MERGES_LISTED = 240  # the merges listed on the page; the table below the list holds them all
RECUT_CHARS = 500  # the stretch of text re-cut merge by merge


def settings_input() -> BPESettings:
    """The vocabulary size and pre-split; returns the settings in use. A size outside 256 … this server's bound is
    refused in a sentence and the last one accepted stays."""
    limit, current = choices.bpe_limit(), choices.bpe_settings()
    left, right = st.columns(2)
    vocab = left.number_input(
        "Vocabulary size", value=current.vocab_size, step=256, key="bpe_vocab",
        help=f"How many tokens the BPE ends with: from {BYTES} (the bytes alone) to {limit:,}, this server's bound. "
             "Each token above 256 is one merge learned from the text.")
    split = right.radio(
        "Pre-split", list(SPLITS), index=list(SPLITS).index(current.split or "none"), format_func=SPLITS.get,
        horizontal=True, key="bpe_split",
        help="Cut the text into words first (GPT-2's or GPT-4's pattern), so a merge never joins the end of one "
             "word to the start of the next; none lets merges cross spaces and lines.")
    try:
        choices.set_bpe_settings(BPESettings(vocab, split_of(split)))
    except BabyGPTError as exc:
        st.error(f"{markdown_literal(exc)} The BPE stays at {current.vocab_size:,} tokens.")
    return choices.bpe_settings()


def learn(corpus: Corpus, settings: BPESettings) -> LearnedBPE | None:
    """The BPE for this text and these settings, learned once for every session; the wait is shown with a clock."""
    size = len(utf8(corpus.text))
    with st.spinner(f"Learning a {settings.vocab_size:,}-token BPE from {size / 1e6:.2f} MB of text…", show_time=True):
        try:
            return corpora.learned_bpe(corpus.sha256, corpus.text, settings)
        except BabyGPTError as exc:
            st.error(markdown_literal(exc))
            return None


def watch_it_learn(corpus: Corpus, settings: BPESettings, learned: LearnedBPE) -> None:
    st.subheader("Watch the BPE learn")
    st.caption(learned.trained_by())
    for note in learned.bpe.notes():
        st.info(note)
    tabs = st.tabs(["Merges", "Merge by merge", "Compression", "Longest tokens", "Where GPT-2 cuts badly",
                    "The trainer's code"])
    sections = (lambda: merges(learned), lambda: merge_by_merge(corpus, learned), lambda: compression(corpus, settings),
                lambda: longest(learned), lambda: gpt2_cuts(corpus, settings), trainer_code)
    for tab, section in zip(tabs, sections, strict=True):
        with tab:
            section()


def merges(learned: LearnedBPE) -> None:
    rows = merge_rows(learned.bpe)
    if not rows:
        st.info("No pair of bytes occurs twice in this text, so there is nothing to merge: every token is a byte.")
        return
    st.caption(f"Training starts from the {BYTES} byte values and repeats one step: count every pair of adjacent "
               "tokens, join the most frequent into a new token. Merge 1 came first. ␣ is a space, ↵ a line break; "
               r"\xe6 is one byte of a character written in several.")
    st.markdown(merges_html(rows[:MERGES_LISTED]), unsafe_allow_html=True)
    with st.expander(f"All {len(rows):,} merges as a table"):
        st.dataframe(pd.DataFrame({"merge": [r.rank for r in rows], "left": [shown(r.left) for r in rows],
                                   "right": [shown(r.right) for r in rows], "new token": [shown(r.token) for r in rows],
                                   "id": [r.token_id for r in rows], "bytes": [len(r.token) for r in rows]}),
                     hide_index=True, key="bpe_merge_table")


@st.fragment
def merge_by_merge(corpus: Corpus, learned: LearnedBPE) -> None:
    """A slider over the merges; only this part reruns while it moves."""
    bpe, n = learned.bpe, len(learned.bpe.merges)
    if st.session_state.get("bpe_k_of") != (corpus.sha256, bpe.merges[-1:], n):  # another BPE: start at its end
        st.session_state.pop("bpe_k", None)
        st.session_state["bpe_k_of"] = (corpus.sha256, bpe.merges[-1:], n)
    if n == 0:
        st.info("This BPE learned no merges: the text stays in bytes.")
        return
    k = st.slider("Merges applied", 0, n, n, key="bpe_k",
                  help="0: the text as bytes. Move right to replay training: each step joins one more pair.")
    text = recut_stretch(corpus.text)
    ids = encode_first_k(bpe, text, k)
    n_bytes = len(utf8(text))
    c1, c2, c3 = st.columns(3)
    c1.metric("Vocabulary after these merges", f"{vocab_after(bpe, k):,}")
    c2.metric("Tokens in this stretch", f"{len(ids):,}")
    c3.metric("Bytes per token", f"{n_bytes / max(1, len(ids)):.2f}")
    if k:
        st.markdown(f"**Merge {k:,}:** {markdown_literal(merge_rows(bpe)[k - 1].sentence())}")
    st.markdown(cut_html(text, [(i, bpe.vocab[i]) for i in ids]), unsafe_allow_html=True)
    st.caption(f"The first {n_bytes:,} bytes of the text, cut as the trainer had them after {k:,} merges. Each box is "
               "one token; a dashed one holds part of a character's bytes. Hover to see its id.")


def recut_stretch(text: str) -> str:
    """The text's first RECUT_CHARS characters, ending at a word where there is one."""
    stretch = whole_words_prefix(text, RECUT_CHARS)
    return stretch if len(stretch) <= RECUT_CHARS else text[:RECUT_CHARS]


def compression(corpus: Corpus, settings: BPESettings) -> None:
    c = corpora.compression_for(corpus.sha256, corpus.text, settings)
    st.plotly_chart(compression_figure(c), key="bpe_compression")
    _, vocab, tokens = c.bpe[-1]
    st.caption(f"On this text, `char` holds {c.bytes_per_token(c.char_tokens):.2f} bytes per token with {c.char_vocab:,} "
               f"tokens; GPT-2 {c.bytes_per_token(c.gpt2_tokens):.2f} with {GPT2_VOCAB:,} (of which {c.gpt2_used:,} "
               f"occur here); your BPE {c.bytes_per_token(tokens):.2f} with {vocab:,}. More bytes per token means "
               "shorter sequences, so a block of the same length sees more text; but every token is a row of the "
               "embedding table to learn, and each is seen less often.")
    if c.note():
        st.caption(c.note())


def longest(learned: LearnedBPE) -> None:
    tokens = longest_tokens(learned.bpe)
    if not tokens:
        st.info("This BPE learned no tokens beyond the bytes.")
        return
    st.markdown(tokens_html([(shown(raw), i) for i, raw in tokens]), unsafe_allow_html=True)
    st.caption(f"The {len(tokens)} longest of the {learned.bpe.vocab_size:,} tokens, in bytes: what this text repeats "
               "most, whole (names, common words with their space ␣, endings).")


def gpt2_cuts(corpus: Corpus, settings: BPESettings) -> None:
    worst, samples = corpora.gpt2_cuts_for(corpus.sha256, corpus.text, settings)
    st.caption("GPT-2 learned its 50,257 tokens from WebText, mostly English web pages: in another language or "
               "script it knows few merges and falls back to pieces of characters. Your BPE knows only what your "
               "text holds.")
    st.markdown("**Other scripts**: one line each, cut by GPT-2 and by your BPE.")
    st.dataframe(pd.DataFrame({
        "language": [s.label for s in samples], "characters": [len(s.text) for s in samples],
        "bytes": [s.n_bytes for s in samples], "GPT-2 tokens": [len(s.gpt2) for s in samples],
        "GPT-2 tokens per character": [round(len(s.gpt2) / max(1, len(s.text)), 2) for s in samples],
        "your BPE's tokens": [s.bpe_tokens for s in samples], "text": [s.text for s in samples]}),
        hide_index=True, key="bpe_scripts")
    labels = [s.label for s in samples]
    chinese = next((i for i, label in enumerate(labels) if "(Han)" in label), 0)  # the plainest case
    chosen = st.selectbox("GPT-2's cut of", labels, index=chinese, key="bpe_script_shown")
    st.markdown(gpt2_html(samples[labels.index(chosen)]), unsafe_allow_html=True)
    st.caption("A dashed box holds part of a character: where one character takes two or three boxes, GPT-2 spent "
               "that many tokens on it.")
    if worst:
        st.markdown("**Lines of your text GPT-2 cuts into the most tokens per byte**")
        for cut in worst:
            st.caption(f"{cut.label}: GPT-2 {len(cut.gpt2):,} tokens for {cut.n_bytes:,} bytes "
                       f"({cut.gpt2_bytes_per_token:.2f} bytes per token); your BPE {cut.bpe_tokens:,} tokens "
                       f"({cut.bpe_bytes_per_token:.2f}).")
            st.markdown(gpt2_html(cut), unsafe_allow_html=True)


def gpt2_html(cut: Cut) -> str:
    return cut_html(cut.text, list(zip(cut.gpt2_ids, cut.gpt2, strict=True)))


def trainer_code() -> None:
    st.caption("The lesson's trainer, as it is in `babygpt/text/bpe.py`: the whole algorithm. The fast trainer "
               "learns the same merges in Rust, counting pairs once and updating only those a merge changes.")
    st.code(readable_trainer_source(), language="python")
