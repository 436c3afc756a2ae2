"""What a student sees in real Chromium when the teacher clears the queue, and the ladder race's settings across
a reload. No step here waits on how fast the machine trains: the run that holds the server's one slot is far too
long to finish, and the test stops it."""

from __future__ import annotations

import pytest
from playwright import sync_api as playwright_api

from tests.browser_support import StreamlitServer, launch, new_page, page_button, require_chromium
from tests.test_admin_browser import open_teacher_box, type_token

pytestmark = pytest.mark.browser
TOKEN = "a-long-teacher-token-4f9c"
SERVER_WORDS = ("python -m", "runs list", "BABYGPT_")


def open_training(page, url: str, max_iters: int) -> None:
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Start training").wait_for()
    box = page.get_by_label("max_iters", exact=True)
    box.fill(str(max_iters))
    box.press("Enter")
    page.wait_for_timeout(1000)  # the form's rerun with the new value


def test_a_student_whose_queued_run_the_teacher_clears_reads_what_happened(tmp_path):
    require_chromium()
    home = tmp_path / "runs"
    server = StreamlitServer(home, BABYGPT_MAX_JOBS="1", BABYGPT_CORES="1", BABYGPT_ADMIN_TOKEN=TOKEN).start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            first, student, teacher = new_page(browser), new_page(browser), new_page(browser)
            open_training(first, server.url, 100_000)  # holds the one slot until this test stops it
            first.get_by_role("button", name="Start training").click()
            first.get_by_text("Training: step").first.wait_for()
            open_training(student, server.url, 100_000)
            student.get_by_role("button", name="Start training").click()
            student.get_by_text("Queued: position 1 in the queue").first.wait_for()
            assert page_button(student, "Cancel").is_enabled()

            open_teacher_box(teacher, server.url)
            type_token(teacher, TOKEN)
            teacher.get_by_role("button", name="Clear the queue").first.click()  # the popover, then its button
            teacher.get_by_role("button", name="Clear the queue").last.click()
            teacher.get_by_text("Took 1 run(s) off the queue.").wait_for()

            # the student's page, left alone, refreshes: the sentence, and no Cancel any more
            student.get_by_text("The teacher cleared the queue; your run").wait_for(timeout=30_000)
            assert page_button(student, "Cancel").count() == 0
            assert page_button(student, "Stop").is_disabled()
            assert student.get_by_role("button", name="Start training").is_enabled()
            body = student.inner_text("body")
            assert not any(word in body for word in SERVER_WORDS) and str(home) not in body, body[-800:]

            page_button(first, "Stop").click()
            first.get_by_text("Stopped: step").first.wait_for()
            browser.close()
    finally:
        server.stop()


def test_the_race_settings_survive_a_reload(tmp_path):
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            page = new_page(browser)
            page.goto(f"{server.url}/lessons")
            page.get_by_role("tab", name="The ladder race").click()
            steps = page.get_by_label("Steps per rung", exact=True)
            steps.fill("650")
            steps.press("Enter")
            page.wait_for_timeout(1500)
            page.reload()
            page.get_by_role("tab", name="The ladder race").click()
            page.get_by_label("Steps per rung", exact=True).wait_for()
            assert page.get_by_label("Steps per rung", exact=True).input_value() == "650"
            browser.close()
    finally:
        server.stop()
