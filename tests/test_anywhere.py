"""The server works wherever it is started: a teacher's service or home folder, not only the checkout. A worker
process finds the code through ``babygpt.shipped.code_root``, never through the server's current directory."""

import pytest

from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from tests.browser_support import StreamlitServer, launch, new_page, require_chromium
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


def test_a_server_started_from_another_folder_trains_a_run(tmp_path):
    """``streamlit run /path/to/app.py`` from a folder with no babygpt in it and no PYTHONPATH: a run started in
    the browser trains to its last step (it used to end interrupted at step 0: "No module named 'babygpt'")."""
    playwright = pytest.importorskip("playwright.sync_api")
    require_chromium()
    elsewhere = tmp_path / "teacher-home"
    elsewhere.mkdir()
    home = tmp_path / "runs"
    server = StreamlitServer(home, started_from=elsewhere).start()
    try:
        with playwright.sync_playwright() as p:
            browser = launch(p)
            page = new_page(browser)
            page.goto(f"{server.url}/train")
            page.get_by_role("heading", name="Model & training", level=1).wait_for()
            max_iters = page.locator('input[aria-label="max_iters"]')
            max_iters.fill("250")  # the default eval_interval: one evaluation, at the end
            max_iters.press("Enter")
            page.get_by_role("button", name="Start training").click()
            store = RunStore(home)
            run = wait_for(lambda: next(iter(store.list_runs()), None), timeout=60, what="the run to be recorded")
            info = wait_for(lambda: (i := store.get(run.id)).status.ended and i, timeout=300,
                            what="the run to end")
            log = (home / run.id / "worker.log").read_text(encoding="utf-8", errors="replace")
            assert info.status is RunStatus.DONE, f"{info.status}: {info.message}\n{log[-2000:]}"
            assert max(m.step for m in store.metrics(run.id)) == 250
            assert "No module named" not in log
            browser.close()
    finally:
        server.stop()
