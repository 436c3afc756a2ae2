"""Data: choose or upload a corpus, inspect it, pick a tokenizer and the train/val split."""

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.viz import char_frequency_figure, tokens_html
from babygpt.plain_text import markdown_literal
from babygpt.text import datasets
from babygpt.text.corpus import corpus_from_uploads
from babygpt.text.tokenizers import TOKENIZERS
from ui import bpe_section, choices, corpora
from ui.widgets import explain

TOKENS_SHOWN = 300  # the token view's length: a text with no spaces has no short whole-word prefix

st.title("Data")
explain(
    "From text to numbers",
    "A language model learns to predict the **next token** of a text. First we choose the text, then a "
    "**tokenizer** that cuts it into pieces and gives each piece an integer id. The `char` tokenizer uses one "
    "token per character; `gpt2` uses GPT-2's byte-pair encoding, where frequent words are one token; `bpe` "
    "learns a byte-pair encoding from this text itself, and shows how it learns. "
    "The last part of the text is held out as **validation** data: the model never trains on it, so its loss "
    "there tells us whether it learned the language or memorised the training text.",
)

registry = datasets.registry()
current = choices.corpus()
SHIPPED, UPLOAD = "A text that ships with Baby GPT", "Upload .txt files"
if "data_source" not in st.session_state:  # coming back to the page: show where the current text came from
    st.session_state["data_source"] = SHIPPED if current.source in registry else UPLOAD
source = st.radio("Source", [SHIPPED, UPLOAD], horizontal=True, key="data_source",
                  help="The shipped texts need no network; an upload stays on this server for your runs.")

if source == SHIPPED:
    names = list(registry)
    name = st.selectbox("Corpus", names, index=names.index(current.source) if current.source in registry else 0,
                        format_func=lambda n: registry[n].title, key="shipped_name")
    st.caption(f"{registry[name].description} Licence: {registry[name].licence}.")
    if name == current.source:
        st.caption("✓ This is the text in use.")
    elif st.button("Use this corpus", key="use_shipped", type="primary"):
        choices.set_corpus(corpora.load_named(name))
        st.rerun()
else:
    uploads = st.file_uploader("Text files (UTF-8)", type=["txt", "md", "csv", "py"], accept_multiple_files=True,
                               key="uploads", help="Several files are joined with a blank line between them.")
    if uploads:
        result = corpus_from_uploads([(f.name, f.getvalue()) for f in uploads])
        if result.corpus is not None:
            try:
                choices.set_corpus(result.corpus)
            except BabyGPTError as exc:  # over the user's disk quota: the corpus stays as it was
                st.error(markdown_literal(exc))
        for _file, reason in result.rejected:  # the reason names the file: the user's text, shown as typed
            st.error(f"**Not used:** {markdown_literal(reason)}")
        if result.rejected:
            used = ("The other files were used." if result.corpus is not None
                    else f"No file was used: the corpus is still **{markdown_literal(choices.corpus().name)}**.")
            st.caption(used)

corpus = choices.corpus()
stats = corpora.stats_for(corpus.sha256, corpus.text)
st.subheader(f"Current corpus: {markdown_literal(corpus.name)}")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Characters", f"{stats.n_chars:,}")
c2.metric("Lines", f"{stats.n_lines:,}")
c3.metric("Distinct characters", f"{stats.n_distinct:,}")
c4.metric("Size", f"{len(corpus.text.encode()) / 1e6:.2f} MB")
for warning in stats.warnings:
    st.warning(markdown_literal(warning))
left, right = st.columns([3, 2])
left.plotly_chart(char_frequency_figure(stats.top_chars[:40]), key="char_freq")
right.text_area("Preview", corpus.text[:2000], height=300, disabled=True,
                key=f"preview_{corpus.sha256[:16]}")  # a new key per corpus, or the widget keeps the old text

st.subheader("Tokenizer")
kind = st.radio("Tokenizer", TOKENIZERS, horizontal=True, index=TOKENIZERS.index(choices.tokenizer_kind()),
                key="tokenizer_radio",
                help="char: one token per character, tiny vocabulary. gpt2: GPT-2's BPE (tiktoken), restricted to "
                     "the tokens that occur in this text. bpe: a byte-pair encoding learned from this text, of the "
                     "size you choose.")
choices.set_tokenizer_kind(kind)
bpe = bpe_section.settings_input() if kind == "bpe" else None
learned = bpe_section.learn(corpus, bpe) if bpe else None
try:
    tokenizer = choices.current_tokenizer()
    ids, chars_per_token = corpora.token_preview(corpus.sha256, kind, corpus.text, TOKENS_SHOWN, bpe)
    c1, c2 = st.columns(2)
    c1.metric("Vocabulary size", f"{tokenizer.vocab_size:,}")
    c2.metric("Characters per token", f"{chars_per_token:.2f}")
    st.markdown(tokens_html([(tokenizer.token_text(i), i) for i in ids]), unsafe_allow_html=True)
    st.caption(f"The first {len(ids):,} tokens of the text. Each coloured box is one token; hover to see its id.")
except BabyGPTError as exc:
    st.error(markdown_literal(exc))

st.subheader("Train / validation split")
fraction = st.slider("Validation fraction", 0.05, 0.5, choices.val_fraction(), 0.05, key="val_slider",
                     help="The last part of the text, held out to measure generalisation. 10% is usual.")
choices.set_val_fraction(fraction)
n_val = int(stats.n_chars * fraction)
st.caption(f"Training on the first {stats.n_chars - n_val:,} characters, validating on the last {n_val:,}.")

if learned is not None:
    bpe_section.watch_it_learn(corpus, bpe, learned)
elif kind != "bpe":
    st.caption("Choose **bpe** above to learn a tokenizer from this text and watch it learn, merge by merge.")
