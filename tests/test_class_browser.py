"""The Class page in real Chromium with thirty students on the board: legible at 1920×1080 and at 1280×720 in
presenter mode (nothing cut, no row over another), live without a reload, and shared by several users at once
(a student's new name reaches the others; only the teacher has the controls, and ending the challenge freezes the
board for everyone).

Set BABYGPT_SCREENSHOTS to a folder to keep the screenshots (docs/screenshots/class-*.png come from here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api

from babygpt.store.runs import RunStore
from tests.browser_support import StreamlitServer, launch, layout_problems, new_page, require_chromium
from tests.class_seed import LONG_HANDLE, ClassWriter, seed_class
from tests.helpers import wait_for

pytestmark = pytest.mark.browser
TOKEN = "class-secret"

# The board's own tables: no wider than the column, no cell whose text runs past its box, no row drawn over the
# next, and the page itself never scrolls sideways.
TABLE_PROBLEMS_JS = """() => {
  const problems = [];
  const main = document.querySelector('[data-testid="stMain"]');
  if (main && main.scrollWidth > main.clientWidth + 1) problems.push('the page scrolls sideways');
  const column = document.querySelector('[data-testid="stMainBlockContainer"]').getBoundingClientRect();
  for (const table of document.querySelectorAll('table.class-board')) {
    const t = table.getBoundingClientRect();
    if (t.right > column.right + 1 || t.left < column.left - 1) problems.push('a table wider than the column');
    for (const cell of table.querySelectorAll('td, th'))
      if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`cut: "${cell.innerText.slice(0, 40)}"`);
    const rows = [...table.querySelectorAll('tr')].map(r => r.getBoundingClientRect());
    for (let i = 1; i < rows.length; i++)
      if (rows[i].top < rows[i - 1].bottom - 1) problems.push(`row ${i} over row ${i - 1}`);
  }
  return problems;
}"""


def board_rows(page) -> list[list[str]]:
    """The runs table (the last board table on the page), one list of cell texts per row."""
    return page.evaluate("""() => {
      const tables = document.querySelectorAll('table.class-board');
      const runs = tables[tables.length - 1];
      return [...runs.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('td')].map(c => c.innerText));
    }""")


def check_screen(page, name: str) -> None:
    page.wait_for_timeout(800)
    assert not page.locator('[data-testid="stException"]').all_inner_texts(), name
    problems = layout_problems(page) + page.evaluate(TABLE_PROBLEMS_JS)
    folder = os.environ.get("BABYGPT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
    assert not problems, f"{name}: {problems}"


def open_board(browser, key: str, width: int, height: int):
    page = new_page(browser, width, height)
    page.goto(f"{server_url}/class?user={key}")
    page.get_by_role("heading", name="This lesson's runs").wait_for()
    page.locator("table.class-board").last.wait_for()
    return page


server_url = ""


@pytest.fixture
def seeded_server(tmp_path):
    require_chromium()
    global server_url
    home = tmp_path / "runs"
    seeded = seed_class(RunStore(home), students=30, training=16)
    writer = ClassWriter(seeded).start()
    server = StreamlitServer(home, BABYGPT_ADMIN_TOKEN=TOKEN).start()
    server_url = server.url
    yield seeded
    writer.stop()
    server.stop()


def test_thirty_students_on_the_board_projected_live_and_shared(seeded_server):
    seeded = seeded_server
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        student = open_board(browser, seeded.keys[3], 1920, 1080)
        rows = board_rows(student)
        assert len(rows) == 30, "every run of the lesson, one row each"
        assert sum("(you)" in r[0] for r in rows) == 1 and any(LONG_HANDLE in r[0] for r in rows)
        assert student.get_by_text("Check the top three").count() == 0, "a student has no teacher's controls"
        check_screen(student, "class-1920x1080")
        student.get_by_text("Presenter mode").click()
        student.wait_for_function("() => parseFloat(getComputedStyle(document.documentElement).fontSize) >= 20")
        check_screen(student, "class-presenter-1920x1080")

        # live: the training rows move on without a reload (the board ticks every 2 s)
        first = {r[0]: r[2] for r in rows}
        wait_for(lambda: any(first.get(r[0]) != r[2] for r in board_rows(student) if "/2,000" in r[2]), 15,
                 "a training row's step to change on the open board")

        # a reload in the middle of the lesson: the same student, the same board
        student.reload()
        student.locator("table.class-board").last.wait_for()
        rows = board_rows(student)
        assert len(rows) == 30 and sum("(you)" in r[0] for r in rows) == 1

        # another student renames themself; the first student's board shows it
        other = open_board(browser, seeded.keys[5], 1280, 720)
        name = other.get_by_label("Your name on the board", exact=True)
        name.fill("Zed the Great")
        name.press("Enter")
        wait_for(lambda: any(r[0].startswith("Zed the Great") for r in board_rows(student)), 20,
                 "the new name on another student's board")

        # the teacher, projecting in presenter mode at 1280×720
        teacher = open_board(browser, "teacher-key-000000000000", 1280, 720)
        teacher.get_by_text("Presenter mode").click()
        teacher.get_by_text("Teacher", exact=True).first.click()
        token = teacher.get_by_label("Admin token", exact=True)
        token.fill(TOKEN)
        token.press("Enter")
        teacher.get_by_role("button", name="Check the top three").wait_for()
        check_screen(teacher, "class-presenter-1280x720")
        teacher.locator("table.class-board").last.scroll_into_view_if_needed()
        check_screen(teacher, "class-presenter-1280x720-runs")

        teacher.get_by_role("button", name="End the challenge").click()
        teacher.get_by_role("button", name="End it now").click()
        teacher.get_by_role("button", name="Download the board (CSV)").wait_for()
        with teacher.expect_download() as download:
            teacher.get_by_role("button", name="Download the board (CSV)").click()
        csv_text = Path(download.value.path()).read_text()
        lines = [line for line in csv_text.strip().splitlines() if not line.startswith("#")]  # which challenge
        assert csv_text.startswith("# challenge,Challenge (final)")
        assert lines[0].startswith("rank,handle,run,model,bits_per_byte")
        assert len(lines) == 1 + 15, "the 15 entries (the even students): 7 scored, 8 still training"
        assert sum(line.startswith("not ranked,") for line in lines) == 8
        student.get_by_text("Ended", exact=True).wait_for(timeout=20_000)  # the student's board froze too
        browser.close()
