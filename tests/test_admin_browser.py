"""The teacher's sign-in in real Chromium: a student's guesses are slowed and logged, the teacher stays signed in
across a reload (the token is never in the URL), and signing out ends it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from playwright import sync_api as playwright_api

from babygpt.server.admin_guard import FREE_TRIES
from babygpt.server.users import public_handle
from tests.browser_support import StreamlitServer, launch, new_page, require_chromium

pytestmark = pytest.mark.browser
TOKEN = "a-long-teacher-token-4f9c"


def open_teacher_box(page, url: str):
    page.goto(f"{url}/class")
    page.get_by_role("heading", name="This lesson's runs").wait_for()
    page.get_by_text("Teacher", exact=True).first.click()


def type_token(page, token: str) -> None:
    box = page.get_by_label("Admin token", exact=True)
    box.fill(token)
    box.press("Enter")


def user_key(page) -> str:
    return parse_qs(urlparse(page.url).query)["user"][0]


def test_guesses_are_slowed_and_logged_and_the_teacher_stays_signed_in_across_a_reload(tmp_path):
    require_chromium()
    server = StreamlitServer(tmp_path / "runs", BABYGPT_ADMIN_TOKEN=TOKEN).start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            student = new_page(browser)
            open_teacher_box(student, server.url)
            for i in range(FREE_TRIES):
                type_token(student, f"guess-{i}")
                student.get_by_text("That is not the admin token.").wait_for()
            student.get_by_text("compared in 2 s").wait_for()  # the refusal while it waits: test_admin_guard.py
            assert student.get_by_text("Admin: you can stop and delete every run.").count() == 0
            assert student.get_by_role("button", name="Stop all").count() == 0

            teacher = new_page(browser)
            open_teacher_box(teacher, server.url)
            type_token(teacher, TOKEN)
            teacher.get_by_text("Admin: you can stop and delete every run.").wait_for()
            teacher.get_by_role("button", name="Stop all").wait_for()
            # one line per address: both browsers are on this machine, so it is "this server machine"
            log = f"this server machine: {FREE_TRIES} wrong tokens from one browser ({public_handle(user_key(student))})"
            teacher.get_by_text(log).wait_for()
            assert user_key(student) not in teacher.inner_text("body"), "the log shows no user key"

            teacher.reload()  # a new Streamlit session: the cookie's session, not the token, signs it in
            teacher.get_by_role("button", name="Stop all").wait_for()
            assert TOKEN not in teacher.url
            cookies = {c["name"]: c["value"] for c in teacher.context.cookies()}
            assert TOKEN not in cookies.values() and "babygpt_teacher" in cookies
            assert cookies["babygpt_teacher"] not in teacher.url

            # the teacher's session cookie copied into the student's browser is nothing there
            student.context.add_cookies([{"name": "babygpt_teacher", "value": cookies["babygpt_teacher"],
                                          "url": server.url}])
            student.reload()
            student.get_by_role("heading", name="This lesson's runs").wait_for()
            student.wait_for_timeout(1000)
            assert student.get_by_role("button", name="Stop all").count() == 0

            teacher.get_by_text("Teacher", exact=True).first.click()
            teacher.get_by_role("button", name="Sign out", exact=True).click()
            teacher.get_by_label("Admin token", exact=True).wait_for()
            teacher.reload()
            teacher.get_by_role("heading", name="This lesson's runs").wait_for()
            teacher.get_by_text("Teacher", exact=True).first.click()
            teacher.get_by_label("Admin token", exact=True).wait_for()
            assert teacher.get_by_role("button", name="Stop all").count() == 0
            browser.close()
    finally:
        server.stop()
