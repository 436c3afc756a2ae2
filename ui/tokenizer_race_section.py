"""The Lessons page's tokenizer race: which tokenizer for your text? ``char``, GPT-2's BPE and BPEs learned from the
text, trained by the same model on the same bytes of text with several seeds, as jobs of the server's queue with
progress and Stop, then read in bits per byte with the ladder race's verdicts. Planning, verdicts and figures come
from the library (``babygpt.orchestration.tokenizer_race``, ``babygpt.lessons.tokenizer_race``); this module reads
the widgets and draws."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.bpe_figures import tokenizer_race_figure
from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE
from babygpt.lessons.race import race_bands, race_results
from babygpt.lessons.tokenizer_race import (
    WHAT_TO_SEE,
    bands_by_text_seen,
    tokenizer_note,
    tokenizer_table,
    tokenizer_verdict,
)
from babygpt.orchestration.race import race_entries, race_running
from babygpt.orchestration.tokenizer_race import (
    DEFAULT_VOCAB_SIZES,
    MAX_RACE_BYTES,
    MAX_SEEDS,
    MAX_VOCAB_SIZES,
    TOKENIZER_RACE_BYTES,
    TokenizerRaceSettings,
    entry_facts,
    latest_tokenizer_race,
    tokenizer_race_plans,
)
from babygpt.plain_text import markdown_literal
from ui import choices, corpora, identity, state
from ui.widgets import explain

SIZES = (384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192)  # the vocabulary sizes offered (to this server's bound)
ERROR = "tokenizer_race_error"  # the last refusal, kept in the page's flags until the next press


def settings_input() -> TokenizerRaceSettings:
    """The BPE sizes, the text every entry sees and the seeds; the pre-split is the Data page's."""
    offered = [s for s in SIZES if s <= choices.bpe_limit()]
    c1, c2, c3 = st.columns([2, 1, 1])
    sizes = c1.multiselect("BPE vocabulary sizes (beside char and GPT-2)", offered,
                           [s for s in DEFAULT_VOCAB_SIZES if s in offered], max_selections=MAX_VOCAB_SIZES,
                           key="tokrace_sizes", help="Each is a BPE learned from your text. A bigger vocabulary "
                                                     "cuts the text into fewer, longer tokens.")
    kilobytes = c2.number_input("Text each entry sees (kB)", 10, MAX_RACE_BYTES // 1000,
                                TOKENIZER_RACE_BYTES // 1000, 64, key="tokrace_kb",
                                help="The training compute, equal for every entry: steps × tokens per step × the "
                                     "tokenizer's bytes per token. More text: slower, and a bigger vocabulary has "
                                     "more data for each of its tokens.")
    seeds = c3.select_slider("Seeds per tokenizer", list(range(1, MAX_SEEDS + 1)), 3, key="tokrace_seeds",
                             help="A difference counts only when it is larger than the spread between seeds.")
    return TokenizerRaceSettings(tuple(sizes), choices.bpe_settings().split, int(kilobytes) * 1000,
                                 tuple(range(1, seeds + 1)), choices.val_fraction())


def start(settings: TokenizerRaceSettings) -> None:
    """Plan every run (the BPEs from the shared cache: a BPE the Data page learned is not learned again) and queue
    them as one race; a refusal is kept for the page to show."""
    flags = state.page_flags()
    corpus = choices.corpus()
    try:
        plans = tokenizer_race_plans(
            corpus, settings, lambda kind, bpe: corpora.tokenizer_for(corpus.sha256, kind, corpus.text, bpe),
            max_vocab=choices.bpe_limit())
        state.scheduler().submit_group(identity.user(), plans)
        flags[ERROR] = None
    except BabyGPTError as exc:
        flags[ERROR] = str(exc)


@st.cache_data(show_spinner=False, max_entries=16)
def facts_for(group: str) -> dict:
    """What each tokenizer of a race trained with: fixed when the race was planned, and counted from its text once
    (a pass over the text per tokenizer), not at every tick of the live table."""
    return entry_facts(state.store(), group)


def draw(group: str) -> None:
    """The race so far: a row per tokenizer with what it cost and its verdict, the answer in a sentence once every
    run ended, and each tokenizer's validation band against the text it had seen."""
    store = state.store()
    entries = race_entries(store, group)
    results = race_results(entries)
    if not results:
        st.caption("This race's runs were deleted.")
        return
    facts = facts_for(group)
    st.dataframe(pd.DataFrame(tokenizer_table(results, facts)), hide_index=True, key="tokrace_table")
    if all(r.finished == r.seeds for r in results):
        st.info(tokenizer_verdict(results))
    st.caption(tokenizer_note())
    bands = bands_by_text_seen(race_bands(entries), facts)
    if bands:
        st.plotly_chart(tokenizer_race_figure(bands), key="tokrace_chart")
        st.caption(BITS_PER_BYTE_SENTENCE)


def lesson() -> None:
    """The tab: what to look for, the settings, Run and Stop, and the race so far."""
    explain("Which tokenizer for your text?", WHAT_TO_SEE)
    settings = settings_input()
    group = latest_tokenizer_race(state.store(), identity.user())
    racing = race_running(state.store(), group)
    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Race the tokenizers", type="primary", key="tokrace_start", on_click=start, args=(settings,),
              disabled=racing)
    b2.button("Stop", key="tokrace_stop", disabled=not racing,
              on_click=lambda: state.scheduler().stop_group(identity.actor(), group))
    if state.page_flags().get(ERROR):
        st.error(markdown_literal(state.page_flags()[ERROR]))

    @st.fragment(run_every=1.0 if racing else None)
    def race_view() -> None:
        if not group:
            st.caption(f"Press **Race the tokenizers** to train the same model on "
                       f"**{markdown_literal(choices.corpus().name)}** with char, GPT-2's BPE and the BPEs chosen "
                       "above, each on the same bytes of text and with several seeds. Each run is one job in the "
                       "server's queue; the BPEs are learned first, which takes a few seconds.")
            return
        draw(group)
        if racing and not race_running(state.store(), group):
            st.rerun()

    race_view()
