"""The Runs page's import in Chromium: a hostile zip ends in a sentence a student can read (never a traceback or a
server path), a member name written as Markdown stays text and fetches nothing, the 54 KB tokenizer of the issue is
refused, and a good Hugging Face zip imports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from babygpt.store.runs import RunStore
from tests.browser_support import StreamlitServer, launch, new_page, require_chromium
from tests.import_support import LEAKS, entry_name, good_zips, make_zip, recorded_run

playwright_api = pytest.importorskip("playwright.sync_api")

LURE = "![lure](http://127.0.0.1:9/lure.png)"


def zips(tmp_path: Path) -> dict[str, Path]:
    store, run_id = recorded_run(store=RunStore(tmp_path / "source"))
    files = good_zips(store, run_id)["hf"]
    folder = entry_name(files, "config.json").rsplit("/", 1)[0]
    made = {
        "escape": {**files, f"{folder}/../{LURE}": b"x"},
        "tokenizer": {**files, entry_name(files, "tokenizer.json"): b"[" + b"[]," * (18 << 20) + b"[]]"},
        "good": files,
    }
    paths = {}
    for name, content in made.items():
        paths[name] = tmp_path / f"{name}.zip"
        paths[name].write_bytes(make_zip(content))
    return paths


def test_imports_refuse_with_a_sentence_and_import_a_good_zip(tmp_path):
    require_chromium()
    uploads = zips(tmp_path)
    server = StreamlitServer(tmp_path / "runs").start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            page = new_page(browser)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.url}/runs")
            page.get_by_role("heading", name="Runs", level=1).wait_for()
            chooser = page.locator('[data-testid="stFileUploader"] input[type="file"]')

            chooser.set_input_files(str(uploads["escape"]))
            alert = page.get_by_role("alert").filter(has_text="escapes its folder")
            alert.wait_for()
            shown = alert.inner_text().replace("\u2060", "")  # the word joiner that keeps "http:" from linking
            assert "/../![lure](http://127.0.0.1:9/lure" in shown, "the member's name is shown as the text it is"
            assert page.locator('[data-testid="stMainBlockContainer"] img').count() == 0

            chooser.set_input_files(str(uploads["tokenizer"]))
            page.get_by_role("alert").filter(has_text="tokenizer.json is 54.0 MB, more than such a file can need "
                                                      "here (6.0 MB)").wait_for()

            chooser.set_input_files(str(uploads["good"]))
            page.get_by_text(re.compile(r"Imported as good")).wait_for()
            text = page.locator('[data-testid="stMain"]').inner_text()
            assert not LEAKS.search(text) and str(tmp_path) not in text, text[:2000]
            assert not [url for url in requested if ":9/" in url], "nothing was fetched for the lure"
            browser.close()
    finally:
        server.stop()
    assert [r.name for r in RunStore(tmp_path / "runs").list_runs()] == ["good"]
