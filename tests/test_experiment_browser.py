"""The class experiment in real Chromium: a student opens the Class page, presses Join, and watches the run they were
handed train on the open page, their name (typed with markup) shown as text."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from playwright import sync_api as playwright_api

from babygpt.server.laboratory import Laboratory
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from tests.browser_support import StreamlitServer, launch, new_page, page_button, require_chromium

pytestmark = pytest.mark.browser
STUDENT = "student-key-1"
NAME = "<b>Bo</b> *x*"


def experiment_rows(page) -> list[list[str]]:
    return page.evaluate("""() => [...document.querySelectorAll('table.experiment tbody tr')]
        .map(r => [...r.querySelectorAll('td')].map(c => c.innerText))""")


def test_a_student_joins_from_the_browser_and_watches_their_run_train(tmp_path, small_text):
    require_chromium()
    home = tmp_path / "runs"
    store = RunStore(home)
    scheduler = Scheduler(store, SchedulerSettings(max_jobs=1, cores=1))
    Laboratory(scheduler).start(Actor("teacher", admin=True), Corpus.from_text("tiny", small_text), "char", ("gpt",),
                                [(1, 2, 16), (1, 2, 24), (1, 2, 32)], [1], steps=400, batch_size=4, block_size=16,
                                lr=3e-3, val_fraction=0.1, axis="parameters")
    server = StreamlitServer(home).start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            page = new_page(browser)
            page.goto(f"{server.url}/class?user={STUDENT}")
            page.locator("table.experiment").wait_for()
            assert [r[2] for r in experiment_rows(page)] == ["waiting for a student"] * 3
            name = page.get_by_label("Your name on the board", exact=True)
            name.fill(NAME)
            name.press("Enter")
            page.get_by_text("Name saved.").wait_for()
            page_button(page, "Join: train one run of the experiment").click()
            page.get_by_text("Your run:").wait_for()
            # the run trains on the open page: its step moves without a reload (or it is already done)
            page.wait_for_function("""() => [...document.querySelectorAll('p')].some(p =>
                p.innerText.startsWith('Your run:') && /step [1-9][\\d,]* \\/ 400|done, 400 steps/.test(p.innerText))""")
            rows = experiment_rows(page)
            assert rows[0][0] == "gpt 1×16, 2 heads · seed 1" and rows[0][1] == f"{NAME} (you)", rows[0]
            assert page.locator("table.experiment b").count() == 0, "a name is text, never markup"
            assert page.get_by_role("button", name="Start the experiment").count() == 0, "the teacher's alone"
            browser.close()
    finally:
        server.stop()
        scheduler.stop_all(wait=20)
        for info in store.list_runs():  # a worker outlives its server: stop the one this test started
            if info.status.training and info.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGTERM)
