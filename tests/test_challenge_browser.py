"""The challenge's honesty as a student meets it in real Chromium: an entry that breaks an idea is refused with one
sentence before it trains (Start off), and after the teacher's checks, everyone's runs open on the Runs page
without an error. The runs are recorded in the store as a worker leaves them; nothing trains."""

from __future__ import annotations

import math

import pytest
from playwright import sync_api as playwright_api

from babygpt.config import TrainConfig
from babygpt.orchestration.challenge import set_rules
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.runs import create_run
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.datasets import load_corpus
from tests.browser_support import StreamlitServer, launch, new_page, page_button, require_chromium

pytestmark = pytest.mark.browser
STUDENT = "student-key-0000000000000000"
REFUSED = ("This run cannot enter the challenge: it trains without the causal mask, an idea broken on purpose for "
           "a lesson.")


def seed(home) -> None:
    """A challenge of 1,000 steps of the form's default batch (12) and block (64), one finished and scored entry of
    the student's, and the teacher's check of it (owned by nobody)."""
    store = RunStore(home)
    corpus = load_corpus("tinyshakespeare")
    train = TrainConfig(max_iters=1000, batch_size=12, eval_interval=100, device="cpu")
    rules = set_rules(corpus, "char", train.val_fraction, 1000 * 12 * 64)
    record = store.create_challenge(rules.to_dict())
    plan = plan_training(corpus, "char", "gpt", train, block_size=64)
    entry = create_run(store, plan, "my entry", owner=STUDENT, status=RunStatus.DONE,
                       challenge={"id": record.id, "check_of": None})
    check = create_run(store, plan, "check of my entry", owner=None, status=RunStatus.DONE,
                       challenge={"id": record.id, "check_of": entry.id})
    for info in (entry, check):
        store.log_metrics(info.id, [MetricRow(1000, "train", 1.5), MetricRow(1000, "val", 1.6)])
        store.log_score(info.id, 1000, 1.5 * math.log(2), rules.held_out_tokens)


def test_a_broken_idea_is_refused_before_it_trains_and_everyones_runs_open(tmp_path):
    require_chromium()
    home = tmp_path / "runs"
    seed(home)
    server = StreamlitServer(home).start()
    try:
        with playwright_api.sync_playwright() as p:
            page = new_page(launch(p))
            page.goto(f"{server.url}/train?user={STUDENT}")
            page_button(page, "Start training").wait_for()
            page.get_by_text("Enter the challenge", exact=True).click()
            page.get_by_text("The challenge's budget allows 1,000 steps").wait_for()
            assert page_button(page, "Start training").is_enabled(), "the form's defaults fit the budget"
            page.get_by_test_id("stMultiSelect").filter(has_text="Break one idea").click()
            page.get_by_role("option", name="No causal mask").click()
            page.keyboard.press("Escape")
            page.get_by_text(REFUSED, exact=True).wait_for()
            assert page_button(page, "Start training").is_disabled(), "Start stays off"
            assert not RunStore(home).queued(), "nothing was queued"

            page.goto(f"{server.url}/runs?user={STUDENT}")
            page.get_by_text("Show everyone's runs").click()
            page.get_by_text("Select rows in the table").wait_for()
            page.wait_for_timeout(1000)
            assert not page.get_by_test_id("stException").all_inner_texts(), "no traceback"
    finally:
        server.stop()
