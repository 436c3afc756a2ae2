"""The Data page's own BPE in AppTest: choosing bpe learns it and shows it learning (merges, the text re-cut merge by
merge, compression, GPT-2's bad cuts, the trainer's code); the size is bounded by the server in a sentence; the
choice outlives a reload, travels in a link, and a run started on Model & training trains with it."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.figures.bpe_figures import cut_html, merges_html
from babygpt.lessons.bpe_lesson import (
    merge_rows,
)
from babygpt.plain_text import markdown_literal
from babygpt.store.runs import RunStore
from babygpt.text.bpe import encode_first_k, readable_fits, train_bpe
from babygpt.text.datasets import default_dataset, load_corpus
from tests.conftest import ROOT
from ui.bpe_section import MERGES_LISTED, recut_stretch

pytestmark = pytest.mark.usefixtures("fresh_resources")


def app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    return at.run()


def user_of(at: AppTest) -> str:
    key = at.query_params["user"]
    return key[0] if isinstance(key, list) else key


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def default_bpe():
    """What the page learns from the default text with the default settings: 1,024 tokens, GPT-4's pre-split."""
    text = load_corpus(default_dataset()).text
    return text, train_bpe(text, 1024, "gpt4")


def test_choosing_bpe_learns_it_and_the_slider_replays_training(default_bpe):
    text, bpe = default_bpe
    at = app()
    at.radio(key="tokenizer_radio").set_value("bpe").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metrics(at)["Vocabulary size"] == "1,024"
    assert "Watch the BPE learn" in [s.value for s in at.subheader]
    assert any(c.value.startswith("The fast trainer (Hugging Face `tokenizers`, in Rust) learned these 1,024 tokens "
                                  "(768 merges)") for c in at.caption)
    assert merges_html(merge_rows(bpe)[:MERGES_LISTED]) in [m.value for m in at.markdown]
    assert any("def learn_merges_readable(" in c.value for c in at.code)
    assert at.get("plotly_chart") and any("bpe_compression" in c.proto.id for c in at.get("plotly_chart"))
    assert any(c.value.startswith("line ") and "GPT-2" in c.value for c in at.caption), "the lines GPT-2 cuts worst"

    slider = at.slider(key="bpe_k")
    assert (slider.min, slider.max, slider.value) == (0, 768, 768)
    stretch = recut_stretch(text)
    for k in (3, 0, 200):
        at.slider(key="bpe_k").set_value(k).run()
        ids = encode_first_k(bpe, stretch, k)
        shown = metrics(at)
        assert shown["Vocabulary after these merges"] == f"{256 + k:,}"
        assert shown["Tokens in this stretch"] == f"{len(ids):,}"
        assert cut_html(stretch, [(i, bpe.vocab[i]) for i in ids]) in [m.value for m in at.markdown]
        merge_line = [m.value for m in at.markdown if m.value.startswith("**Merge ")]
        assert merge_line == ([f"**Merge {k}:** {markdown_literal(merge_rows(bpe)[k - 1].sentence())}"] if k else [])
    assert metrics(at)["Vocabulary size"] == "1,024", "the slider replays; the tokenizer keeps every merge"


def test_a_size_and_split_change_relearns_and_a_size_out_of_bounds_is_a_sentence(monkeypatch):
    monkeypatch.setenv("BABYGPT_MAX_BPE_VOCAB", "512")
    at = app()
    at.radio(key="tokenizer_radio").set_value("bpe").run()
    assert metrics(at)["Vocabulary size"] == "512", "the default 1,024 is over this server's bound: its bound is used"
    at.number_input(key="bpe_vocab").set_value(600).run()
    refused = markdown_literal("A BPE vocabulary holds from 256 tokens (the bytes alone) to 512; got 600.")
    assert [e.value for e in at.error] == [f"{refused} The BPE stays at 512 tokens."]
    assert metrics(at)["Vocabulary size"] == "512"
    at.number_input(key="bpe_vocab").set_value(300).run()
    at.radio(key="bpe_split").set_value("none").run()
    assert not at.error
    assert metrics(at)["Vocabulary size"] == "300" and at.slider(key="bpe_k").max == 44
    trainer = "The readable trainer below" if readable_fits(load_corpus(default_dataset()).text, 300, None) else \
        "The fast trainer (Hugging Face `tokenizers`, in Rust)"
    assert any(c.value.startswith(f"{trainer} learned these 300 tokens (44 merges)") for c in at.caption)


def test_the_bpe_choice_comes_back_after_a_reload_and_travels_in_a_link():
    first = app()
    first.radio(key="tokenizer_radio").set_value("bpe").run()
    first.number_input(key="bpe_vocab").set_value(512).run()
    first.radio(key="bpe_split").set_value("gpt2").run()
    again = app(user=user_of(first))  # a reload: a new session, the same URL
    assert again.radio(key="tokenizer_radio").value == "bpe"
    assert (again.number_input(key="bpe_vocab").value, again.radio(key="bpe_split").value) == (512, "gpt2")
    assert metrics(again)["Vocabulary size"] == "512"

    linked = app(tokenizer="bpe", bpe_vocab="768", bpe_split="none")
    assert (linked.radio(key="tokenizer_radio").value, linked.number_input(key="bpe_vocab").value,
            linked.radio(key="bpe_split").value) == ("bpe", 768, "none")
    too_big = app(tokenizer="bpe", bpe_vocab="9000")
    warning = markdown_literal("bpe_vocab=9000 in the link is above this server's bound of 8,192 tokens; 8,192 is used.")
    assert warning in [w.value for w in too_big.warning]
    assert too_big.number_input(key="bpe_vocab").value == 8192


def test_a_run_started_on_model_and_training_trains_with_the_data_pages_bpe():
    at = app()
    at.radio(key="tokenizer_radio").set_value("bpe").run()
    at.number_input(key="bpe_vocab").set_value(512).run()
    at.radio(key="bpe_split").set_value("gpt2").run()
    at.switch_page("views/train.py").run()
    at.slider(key="hp_n_layer").set_value(1).run()
    at.select_slider(key="hp_n_embd").set_value(32).run()
    at.select_slider(key="hp_block_size").set_value(16).run()
    at.number_input(key="hp_max_iters").set_value(20).run()
    at.number_input(key="hp_eval_interval").set_value(10).run()
    assert metrics(at)["Expected initial loss ln(V)"] == f"{math.log(512):.3f}"
    at.button(key="start").click().run()
    assert not at.error, [e.value for e in at.error]
    from ui.state import scheduler

    scheduler().stop_all(wait=30)
    run = RunStore().list_runs()[0]
    tokenizer = run.config["tokenizer"]
    assert (tokenizer["kind"], tokenizer["split"], len(tokenizer["merges"]), tokenizer["asked"]) == ("bpe", "gpt2", 256, 512)
    assert run.config["model"]["vocab_size"] == 512


def test_a_hostile_text_stays_text_in_every_part_of_the_lesson():
    line = "<img src=x onerror=alert(1)> **bold** [link](http://x.org) :red[red] $x$ <b>tag</b>\n"
    at = app()
    at.radio(key="data_source").set_value("Upload .txt files").run()
    at.file_uploader(key="uploads").upload("hostile.txt", (line * 40).encode(), "text/plain").run()
    at.radio(key="tokenizer_radio").set_value("bpe").run()
    at.number_input(key="bpe_vocab").set_value(300).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    html = [m.value for m in at.markdown if "token-view" in m.value or "bpe-merges" in m.value]
    assert len(html) >= 4, "the token preview, the merges, the re-cut text, the longest tokens and GPT-2's cuts"
    for block in html:
        assert "<img" not in block and "<b>" not in block and "</b>" not in block
    assert any("&lt;img" in block or "&lt;" in block for block in html)
    assert any(c.value.startswith("line 1: GPT-2") for c in at.caption), "the hostile line is among GPT-2's worst"
    assert any(c.value.startswith("The readable trainer below learned these") for c in at.caption), \
        "a small text is learned by the loop the page shows"
