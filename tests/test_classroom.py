"""A class on one server, in real Chromium: several users, reloads, a killed worker, a restarted server,
and presenter mode on projector-sized screens.

Set BABYGPT_SCREENSHOTS to a folder to keep the presenter-mode screenshots.
"""

import os
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from babygpt.store.runs import RunStore
from tests.browser_support import (
    PAGES,
    StreamlitServer,
    launch,
    layout_problems,
    page_button,
    require_chromium,
    train_demo_run,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.browser
ADMIN_TOKEN = "teach-me"
playwright_api = pytest.importorskip("playwright.sync_api")


def user_key(page) -> str:
    return parse_qs(urlparse(page.url).query)["user"][0]


def open_training_page(browser, url: str):
    """A new browser (its own cookies: another user) on the training page, set to a quick model."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("link", name="Model & training").click()
    page.get_by_role("button", name="Start training").wait_for()
    for label, value in (("max_iters", "100000"), ("eval_interval", "10")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
    time.sleep(1.0)
    return page


def runs_of(store: RunStore, key: str):
    return [r for r in store.list_runs() if r.owner == key]


def test_classroom_soak(tmp_path):
    """Three users, two slots: two train, one waits; a reload, a SIGKILLed worker and a server restart lose
    nothing, start nothing twice, touch nobody else's run, and the queue drains in order."""
    require_chromium()
    home = tmp_path / "runs"
    server = StreamlitServer(home, BABYGPT_MAX_JOBS="2", BABYGPT_CORES="2").start()
    store = RunStore(home)
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            alice, bob, carol = (open_training_page(browser, server.url) for _ in range(3))
            keys = [user_key(page) for page in (alice, bob, carol)]
            assert len(set(keys)) == 3, "three browsers are three users"
            for page in (alice, bob):
                page.get_by_role("button", name="Start training").click()
                page.get_by_text("Training: step").first.wait_for()
            carol.get_by_role("button", name="Start training").click()
            carol.get_by_text("Queued: position 1 in the queue").first.wait_for()
            assert carol.get_by_role("button", name="Cancel").is_enabled()

            # a reload keeps Alice's job, her settings and her controls
            alice.reload()
            alice.get_by_text("Training: step").first.wait_for()
            assert page_button(alice, "Stop").is_enabled()
            assert alice.get_by_role("button", name="Start training").is_disabled()
            assert alice.get_by_label("max_iters", exact=True).input_value() == "100000"

            a_run, b_run, c_run = (runs_of(store, k)[0].id for k in keys)
            wait_for(lambda: store.has_checkpoint(a_run) and store.load_trainer_state(a_run)["step"] >= 20,
                     what="Alice's first checkpoints", timeout=90)
            # Alice's worker is killed: her run is interrupted and Carol's queued run takes the slot
            os.kill(store.get(a_run).pid, signal.SIGKILL)
            wait_for(lambda: store.get(a_run).status == "interrupted", what="the interrupted status", timeout=90)
            wait_for(lambda: store.get(c_run).status == "running", what="the queue to move on", timeout=90)
            carol.get_by_text("Training: step").first.wait_for()
            checkpoint = store.load_trainer_state(a_run)["step"]

            server.restart()  # the workers of Bob and Carol outlive it and are adopted
            for page in (alice, bob, carol):
                page.reload()
            bob.get_by_text("Training: step").first.wait_for()
            carol.get_by_text("Training: step").first.wait_for()
            alice.get_by_text("Interrupted: step").first.wait_for()
            alice.get_by_role("button", name="Resume").click()
            alice.get_by_text("Queued: position 1 in the queue").first.wait_for()  # both slots are taken

            page_button(bob, "Stop").click()
            bob.get_by_text("Stopped: step").first.wait_for()
            alice.get_by_text("Training: step").first.wait_for()
            wait_for(lambda: store.load_trainer_state(a_run)["step"] > checkpoint, what="Alice's resumed run", timeout=90)
            resumed_first = min(m.step for m in store.metrics(a_run) if m.split == "train" and m.step > checkpoint)
            assert resumed_first <= checkpoint + 10, "the resume continued from the checkpoint"

            assert [len(runs_of(store, k)) for k in keys] == [1, 1, 1], "every user has their one run, once"
            assert len(store.list_runs()) == 3
            assert {store.get(r).owner for r in (a_run, b_run, c_run)} == set(keys), "owners never change"
            b_steps = store.load_trainer_state(b_run)["step"]
            assert store.get(b_run).status == "stopped"
            steps = [m.step for m in store.metrics(c_run) if m.split == "val"]
            assert steps == sorted(set(steps)), "Carol's run was never started twice"
            time.sleep(2)
            assert store.load_trainer_state(b_run)["step"] == b_steps, "nobody else's stopped run moved"
            for page in (alice, carol):
                page_button(page, "Stop").click()
                page.get_by_text("Stopped: step").first.wait_for()
            browser.close()
        wait_for(lambda: all(store.get(r).status not in ("running", "starting") for r in (a_run, c_run)),
                 what="the last jobs to stop", timeout=90)
    finally:
        for info in store.list_runs():
            if info.status in ("running", "starting") and info.pid:
                try:
                    os.kill(info.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        server.stop()


@pytest.fixture
def server_with_a_run(tmp_path):
    require_chromium()
    home = tmp_path / "runs"
    train_demo_run(home)
    server = StreamlitServer(home, BABYGPT_ADMIN_TOKEN=ADMIN_TOKEN).start()
    yield server
    server.stop()


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_presenter_mode_fits_a_projector(server_with_a_run, width, height):
    folder = os.environ.get("BABYGPT_SCREENSHOTS")
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(60_000)
        page.goto(server_with_a_run.url)
        page.get_by_text("Current corpus").wait_for()
        page.get_by_role("link", name="Runs").click()  # the demo run on every page: its chart, metrics and maps
        page.get_by_test_id("stCheckbox").get_by_text("Show everyone's runs").click()
        page.get_by_role("button", name="Make active").click()
        page.get_by_text("is now the active run").wait_for()
        page.get_by_text("Presenter mode").click()
        page.wait_for_function("() => parseFloat(getComputedStyle(document.documentElement).fontSize) >= 20")
        problems = {}
        for name, link in PAGES:
            page.get_by_role("link", name=link).click()
            page.locator("h1").first.wait_for()
            page.wait_for_timeout(2500)  # charts finish drawing
            title_px = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")
            assert title_px >= 48, f"{name}: the title is {title_px}px in presenter mode"
            problems[name] = layout_problems(page)
            if name == "attention":  # the first screen shows the map, not only its controls
                top = page.evaluate("() => document.querySelector('.js-plotly-plot').getBoundingClientRect().top")
                if top > height - 200:
                    problems[name].append(f"the attention map starts at {top:.0f} px, below the first screen")
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(folder) / f"presenter-{name}-{width}.png"))
        browser.close()
    assert not any(problems.values()), problems


def test_teacher_admin_token_manages_a_run_that_is_not_theirs(server_with_a_run):
    """The run was trained from the command line: nobody's in the app, so only the admin token deletes it."""
    store = RunStore(server_with_a_run.home)
    (run,) = store.list_runs()
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(server_with_a_run.url)
        page.get_by_role("link", name="Runs").click()
        page.get_by_test_id("stCheckbox").get_by_text("Show everyone's runs").click()
        page.get_by_role("button", name="Delete").click()
        page.get_by_text("was trained from the command line").wait_for()
        page.get_by_text("Teacher", exact=True).click()
        token = page.get_by_label("Admin token", exact=True)
        token.fill("guess")
        token.press("Enter")
        page.get_by_text("That is not the admin token.").wait_for()
        token.fill(ADMIN_TOKEN)
        token.press("Enter")
        page.get_by_text("Admin: you can stop and delete every run.").wait_for()
        page.get_by_role("button", name="Delete").click()
        page.get_by_text("This cannot be undone. It belongs to the command line.").wait_for()
        assert store.list_runs(), "nothing is deleted before the confirmation"
        page.get_by_role("button", name="Yes, delete it").click()
        page.get_by_text("Deleted demo").wait_for()
        page.get_by_text("No runs yet").wait_for()
        browser.close()
    assert store.list_runs() == [] and not store.run_dir(run.id).exists()
