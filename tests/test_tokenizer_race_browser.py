"""In Chromium: a student opens Lessons → Which tokenizer?, is refused a budget too small in a sentence, races the
tokenizers (the runs queued as jobs, the table one row per tokenizer) and stops the race with Stop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from tests.browser_support import PageAudit, StreamlitServer, launch, new_page, page_button, require_chromium
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path):
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    yield server
    server.stop()


def test_a_student_races_the_tokenizers_and_stops_the_race(server):
    playwright = pytest.importorskip("playwright.sync_api")
    folder = os.environ.get("BABYGPT_SCREENSHOTS")
    store = RunStore(server.home)
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = new_page(browser)
        audit = PageAudit(page, server.url, Path(folder) if folder else None)
        page.goto(server.url + "/lessons")
        page.get_by_role("heading", name="Lessons", level=1).wait_for()
        page.get_by_role("tab", name="Which tokenizer?").click()
        kilobytes = page.locator('input[aria-label="Text each entry sees (kB)"]')
        kilobytes.fill("10")
        kilobytes.press("Enter")
        page_button(page, "Race the tokenizers").click()
        refusal = page.get_by_test_id("stAlertContentError").filter(has_text="bytes of text per entry")
        refusal.wait_for()
        assert refusal.inner_text().startswith("With 10,000 bytes of text per entry, ")
        assert "would train only" in refusal.inner_text() and not store.list_runs()
        audit.check("lessons-tokenizer-race-refused")

        kilobytes.fill("5000")  # thousands of steps: the race trains until Stop
        kilobytes.press("Enter")
        page_button(page, "Race the tokenizers").click()
        wait_for(lambda: len(store.list_runs()) == 15, 120, "5 tokenizers × 3 seeds queued")
        table = page.get_by_test_id("stDataFrame").filter(has_text="bpe 2048")
        table.wait_for()
        audit.check("lessons-tokenizer-race-running")
        page_button(page, "Stop").click()
        wait_for(lambda: not any(r.status.active for r in store.list_runs()), 120, "every run of the race stopped")
        assert RunStatus.DONE not in {r.status for r in store.list_runs()}
        browser.close()
