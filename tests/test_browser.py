"""A new user's first ten minutes, in real Chromium (Debian's, through Playwright) against ``streamlit run app.py``.

The walk goes through every page the way a person does: upload a text (and a bad file), switch tokenizers,
train with the live view, look at attention, generate, export and re-import the run, open every lesson. On
every screen it fails on an exception, a request to any host but the server, text cut by its box, a chart
wider than the column or a legend over an axis title, and an axis whose tick labels repeat.

Set BABYGPT_SCREENSHOTS to a folder to keep the screenshots (the README's pictures come from here).
"""

import os
import sqlite3
import time
from pathlib import Path

import pytest

from babygpt.store.runs import process_alive
from tests.browser_support import PageAudit, StreamlitServer, glyph_drawn, launch, page_button, require_chromium
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

LESSON_TABS = ["The ladder race", "Which tokenizer?", "Why scale q·k", "Positional encodings", "Embeddings",
               "The first step", "Where it is surprised", "Induction heads"]


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def server(tmp_path):
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    yield server
    server.close()


def chart_points(page) -> int:
    return page.evaluate("""() => {
        const plot = document.querySelector('.js-plotly-plot');
        if (!plot || !plot._fullData) return 0;  // the drawn traces (numpy arrays arrive base64-encoded)
        return plot._fullData.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0);
    }""")


def training_worker_pid(home: Path) -> int | None:
    with sqlite3.connect(home / "runs.db") as db:
        row = db.execute("SELECT pid FROM runs WHERE status = 'running'").fetchone()
    return row[0] if row and row[0] else None


def go(page, link: str) -> None:
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=link, level=1).wait_for()


def test_a_new_user_walks_through_every_page(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    text = tmp_path / "poem.txt"
    alphabet = "".join(chr(c) for c in range(33, 127))  # ~95 symbols: an untrained model gives each about 1%
    text.write_text("".join(f"the quick brown fox {i % 9} jumps over the lazy dog.\n" for i in range(400)) + alphabet)
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    folder = os.environ.get("BABYGPT_SCREENSHOTS")
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        audit = PageAudit(page, server.url, Path(folder) if folder else None)
        page.goto(server.url)
        page.get_by_role("heading", name="Data", level=1).wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        audit.check("data-bundled")

        # Data: two files, one of them bad: the good one is used and the bad one is named
        page.get_by_text("Upload .txt files").click()
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(text), str(binary)])
        page.get_by_text("photo.txt looks binary").wait_for()
        page.get_by_text("Current corpus: poem.txt").wait_for()
        wait_for(lambda: page.get_by_label("Preview").input_value().startswith("the quick brown fox"), timeout=30,
                 what="the preview to show the new text")
        audit.check("data-upload")
        assert glyph_drawn(page, "\u2423") and glyph_drawn(page, "\u21b5"), "the space and newline glyphs must draw"
        assert not glyph_drawn(page, "\u2420"), "the glyph check must tell a missing glyph (U+2420 here) apart"

        page.locator("label").get_by_text("gpt2", exact=True).click()
        page.get_by_text("Characters per token").wait_for()
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert [e for e in errors if "photo.txt" not in e] == [], errors
        audit.check("data-gpt2")
        page.locator("label").get_by_text("char", exact=True).click()
        page.get_by_text("Vocabulary size").wait_for()

        # Model & training: a short run, watched live
        go(page, "Model & training")
        page.locator(".stSlider").first.wait_for()
        audit.check("train-settings")
        max_iters = page.locator('input[aria-label="max_iters"]')
        max_iters.fill("100000")  # far more than any machine trains while this is checked: Stop ends it
        max_iters.press("Enter")
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Training: step").first.wait_for()
        seen = [chart_points(page)]
        deadline = time.time() + 90
        while len(set(seen)) < 3 and time.time() < deadline:
            time.sleep(1.0)
            seen.append(chart_points(page))
        assert len(set(seen)) >= 3, f"the loss chart should update at least twice, saw {seen}"
        worker = training_worker_pid(server.home)
        assert worker and process_alive(worker)
        worker_peak = peak_rss_mb(worker)
        page.get_by_text("What it writes at step").first.wait_for()
        audit.check("train-live")
        loss_chart = page.locator(".js-plotly-plot").first  # the live chart keeps its menu: PNG and SVG
        loss_chart.hover()
        loss_chart.locator('.modebar-btn[data-babygpt="svg"]').wait_for()
        page_button(page, "Stop").click()
        page.get_by_text("Stopped: step").first.wait_for()
        audit.check("train-stopped")

        go(page, "Attention")
        page.get_by_text("Layer 0, head 0").first.wait_for()
        kinds = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.data[0].type)")
        assert "heatmap" in kinds
        audit.check("attention")

        # Generate, typed out: the text grows a token at a time where a person can see it
        go(page, "Generate")
        page.locator('input[aria-label="Max new tokens"]').fill("60")
        page.get_by_text("Typed out (30 tokens/s)").click()
        page.get_by_role("button", name="Generate").click()
        lengths = []
        deadline = time.time() + 30
        while not page.get_by_text("tokens generated").is_visible() and time.time() < deadline:
            code = page.locator('[data-testid="stCode"]')
            lengths.append(len(code.first.inner_text()) if code.count() else 0)
            time.sleep(0.2)
        assert len(set(lengths)) >= 5, f"typed out, the text should grow visibly, saw lengths {lengths}"
        assert len(page.locator('[data-testid="stCode"]').first.inner_text().strip()) > 20
        audit.check("generate")

        # Runs: export the run, import the archive again
        go(page, "Runs")
        page.locator(".js-plotly-plot").first.wait_for()
        with page.expect_download() as download:
            page.get_by_role("button", name="Export .zip").click()
        archive = tmp_path / "exported.zip"
        download.value.save_as(archive)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(archive))
        page.get_by_text("Imported as").wait_for()
        audit.check("runs")

        go(page, "Lessons")
        for tab in LESSON_TABS:
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(500)
            audit.check("lessons-" + tab.lower().replace(" ", "-").replace("·", ""))
        browser.close()
    server_peak = peak_rss_mb(server.pid)
    print(f"peak RSS: streamlit server {server_peak:.0f} MB, training worker {worker_peak:.0f} MB")
    assert 0 < server_peak < 1536, "the app process must stay under 1.5 GB"
    assert 0 < worker_peak < 1536, "a worker training the default preset must stay under 1.5 GB"
