"""Charts leave the app: every chart's menu saves it as PNG and as SVG, in the browser, with no other host asked,
and the file carries the chart's own title and axis labels (real Chromium against ``streamlit run app.py``)."""

import re
from pathlib import Path

import pytest

from tests.browser_support import StreamlitServer, launch, new_page, require_chromium

pytestmark = pytest.mark.browser


def download(page, chart, button: str, folder: Path) -> Path:
    chart.hover()
    with page.expect_download() as info:
        chart.locator(f'.modebar-btn[data-title="{button}"]').click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_a_chart_saves_as_png_and_svg_from_its_menu(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    try:
        with playwright.sync_playwright() as p:
            browser = launch(p)
            page = new_page(browser, accept_downloads=True)
            hosts = set()
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.goto(server.url)
            chart = page.locator(".js-plotly-plot").first
            chart.wait_for()
            chart.hover()
            chart.locator('.modebar-btn[data-babygpt="svg"]').wait_for()
            png = download(page, chart, "Download as PNG", tmp_path)
            svg = download(page, chart, "Download as SVG", tmp_path)
            assert png.suffix == ".png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            text = svg.read_text(encoding="utf-8")
            assert svg.suffix == ".svg" and text.lstrip().startswith("<svg")
            title = re.sub(r"<[^>]+>", "", page.evaluate("() => document.querySelector('.js-plotly-plot').layout.title.text"))
            assert title and title in text, "the saved chart carries its title"
            assert ">count<" in text and ">character<" in text, "and its axis labels"
            assert png.stem.lower().startswith(title.split()[0].lower()), "and is named after it"
            assert hosts == {f"127.0.0.1:{server.port}"}, hosts
            browser.close()
    finally:
        server.stop()
