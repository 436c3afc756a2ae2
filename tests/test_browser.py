"""The real-browser end-to-end test: streamlit run app.py, driven by Debian's Chromium via Playwright.

Set BABYGPT_SCREENSHOTS to a folder to keep the page screenshots (the README's come from here).
"""

import os
import time
from pathlib import Path

import pytest

from tests.browser_support import StreamlitServer, launch, require_chromium

pytestmark = pytest.mark.browser


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
    server.stop()


def shot(page, name: str) -> None:
    folder = os.environ.get("BABYGPT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def chart_points(page) -> int:
    return page.evaluate("""() => {
        const plot = document.querySelector('.js-plotly-plot');
        if (!plot || !plot._fullData) return 0;  // the drawn traces (numpy arrays arrive base64-encoded)
        return plot._fullData.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0);
    }""")


def test_upload_train_watch_attention_generate(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    text = tmp_path / "poem.txt"
    text.write_text("".join(f"the quick brown fox {i % 9} jumps over the lazy dog.\n" for i in range(400)))
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        page.goto(server.url)
        page.get_by_text("Upload .txt files").click()
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(text))
        page.get_by_text("Current corpus: poem.txt").wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        shot(page, "data")

        page.get_by_role("link", name="Model & training").click()
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Training: step").first.wait_for()
        seen = [chart_points(page)]
        deadline = time.time() + 90
        while len(set(seen)) < 3 and time.time() < deadline:
            time.sleep(1.0)
            seen.append(chart_points(page))
        assert len(set(seen)) >= 3, f"the loss chart should update at least twice, saw {seen}"
        page.get_by_text("What it writes at step").first.wait_for()
        shot(page, "train")
        page.get_by_role("button", name="Stop").click()
        page.get_by_text("Stopped: step").first.wait_for()

        page.get_by_role("link", name="Attention").click()
        page.get_by_text("Layer 0, head 0").first.wait_for()
        kinds = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.data[0].type)")
        assert "heatmap" in kinds
        shot(page, "attention")

        page.get_by_role("link", name="Generate").click()
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("tokens generated").wait_for()
        generated = page.locator('[data-testid="stCode"]').first.inner_text()
        assert len(generated.strip()) > 50
        shot(page, "generate")

        page.get_by_role("link", name="Runs").click()
        page.locator(".js-plotly-plot").first.wait_for()
        shot(page, "runs")
        browser.close()
    peak = peak_rss_mb(server.pid)
    print(f"streamlit server peak RSS: {peak:.0f} MB")
    assert 0 < peak < 1536, "the app process must stay under 1.5 GB while training the default preset"
