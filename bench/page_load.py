"""How long a new user waits for the Model & training page, with the server idle and with a job training.

    python -m bench.page_load [--users 5]

Each user is a fresh browser context (no cache, no cookie: a new student). Times are from ``goto`` to the
first element Streamlit draws (a grey placeholder or a widget) and to the first slider, the moment the
page can be used. Chromium runs on this machine too, so with a job training it competes with the job for the
cores; in a class the browsers are on the students' machines.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import emit, environment
from tests.browser_support import StreamlitServer, launch


def load_times(browser, url: str) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url + "/train")
    page.locator('[data-testid="stSkeleton"], .stSlider').first.wait_for()
    first = time.perf_counter() - start
    page.locator(".stSlider").first.wait_for()
    usable = time.perf_counter() - start
    context.close()
    return first, usable


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    return {"first_element_s": round(statistics.median(s[0] for s in samples), 2),
            "sliders_s": round(statistics.median(s[1] for s in samples), 2),
            "sliders_max_s": round(max(s[1] for s in samples), 2)}


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        server = StreamlitServer(Path(home) / "runs").start()
        try:
            with sync_playwright() as p:
                browser = launch(p)
                load_times(browser, server.url)  # the server's first script run imports the pages' modules
                idle = [load_times(browser, server.url) for _ in range(args.users)]
                trainer = browser.new_context().new_page()
                trainer.goto(server.url + "/train")
                trainer.get_by_role("button", name="Start training").click()
                trainer.get_by_text("Training: step").first.wait_for(timeout=60_000)
                busy = [load_times(browser, server.url) for _ in range(args.users)]
                browser.close()
        finally:
            server.stop()
    emit({"benchmark": "page_load", "environment": environment(), "users": args.users,
          "idle_server": summary(idle), "one_job_training": summary(busy)})


if __name__ == "__main__":
    main()
