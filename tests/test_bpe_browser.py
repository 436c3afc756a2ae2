"""In Chromium: a student picks bpe on the Data page, sees its merges in order and replays them on the slider, is
refused a size over the server's bound in a sentence, and starts a short run on Model & training that trains with
that BPE (its run record's tokenizer is the BPE, merges and all)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from babygpt.lessons.bpe_lesson import merge_rows
from babygpt.store.runs import RunStore
from babygpt.text.bpe import train_bpe
from babygpt.text.datasets import default_dataset, load_corpus
from tests.browser_support import PageAudit, StreamlitServer, glyph_drawn, launch, new_page, page_button, require_chromium
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path):
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    yield server
    server.stop()


def metric(page, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def test_a_student_picks_bpe_watches_it_merge_and_trains_with_it(server):
    playwright = pytest.importorskip("playwright.sync_api")
    first_merges = [row.sentence() for row in merge_rows(train_bpe(load_corpus(default_dataset()).text, 512, "gpt4"))[:3]]
    folder = os.environ.get("BABYGPT_SCREENSHOTS")
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = new_page(browser)
        audit = PageAudit(page, server.url, Path(folder) if folder else None)
        page.goto(server.url)
        page.get_by_role("heading", name="Data", level=1).wait_for()

        page.locator("label").get_by_text("bpe", exact=True).click()
        page.get_by_role("heading", name="Watch the BPE learn").wait_for()
        size = page.locator('input[aria-label="Vocabulary size"]')
        size.fill("512")
        size.press("Enter")
        wait_for(lambda: metric(page, "Vocabulary size") == "512", 60, "the BPE to be learned again at 512 tokens")
        merges = page.locator(".bpe-merges")
        wait_for(lambda: all(f"{i}. {s}" in merges.inner_text() for i, s in enumerate(first_merges, 1)), 30,
                 "the first merges in order")
        assert glyph_drawn(page, "␣") and glyph_drawn(page, "→"), "a merge's space and arrow draw as glyphs"
        page.get_by_text("learned these 512 tokens (256 merges)").wait_for()
        audit.check("data-bpe-merges")

        page.get_by_role("tab", name="Merge by merge").click()
        assert metric(page, "Vocabulary after these merges") == "512"
        page.get_by_role("slider", name="Merges applied").press("Home")  # back to the bytes
        wait_for(lambda: metric(page, "Vocabulary after these merges") == "256", 30, "the text re-cut into bytes")
        assert metric(page, "Bytes per token") == "1.00"
        audit.check("data-bpe-merge-by-merge")
        page.get_by_role("tab", name="Compression").click()
        page.locator(".js-plotly-plot").filter(has_text="bytes per token").first.wait_for()
        audit.check("data-bpe-compression")

        size.fill("100000")  # over the server's bound: a sentence, and the BPE stays
        size.press("Enter")
        page.get_by_text("The BPE stays at 512 tokens.").wait_for()
        assert page.get_by_test_id("stAlertContentError").inner_text() == (
            "A BPE vocabulary holds from 256 tokens (the bytes alone) to 8,192; got 100000. The BPE stays at 512 tokens.")

        page.get_by_role("link", name="Model & training").click()
        page.get_by_role("heading", name="Model & training", level=1).wait_for()
        for name, value in (("max_iters", "20"), ("eval_interval", "10")):
            box = page.locator(f'input[aria-label="{name}"]')
            box.fill(value)
            box.press("Enter")
        wait_for(lambda: metric(page, "Expected initial loss ln(V)") == "6.238", 30, "ln(512) as the initial loss")
        page_button(page, "Start training").click()
        store = RunStore(server.home)
        run = wait_for(lambda: next(iter(store.list_runs()), None), 60, "the run to be recorded")
        wait_for(lambda: store.get(run.id).status.ended, 180, "the short run to finish")
        tokenizer = store.get(run.id).config["tokenizer"]
        assert (tokenizer["kind"], tokenizer["split"], tokenizer["asked"], len(tokenizer["merges"])) == \
            ("bpe", "gpt4", 512, 256)
        assert store.get(run.id).config["model"]["vocab_size"] == 512
        browser.close()
