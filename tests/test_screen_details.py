"""Small things a person sees, checked in real Chromium: the Class tables' headers break only between words in
presenter mode at 1280×720; "This lesson began at" takes the time typed when Set is pressed, with no Tab between;
the Data page's token preview shows whole rows; the loss chart's baseline labels sit in the right margin, where no
curve can run over them and none covers another; a second press of Start leaves no error behind once the run
has started."""

from __future__ import annotations

import math
from datetime import datetime, time

import pytest
from playwright import sync_api as playwright_api

from babygpt.figures.viz import LABEL_CHAR_PX, TOKEN_VIEW_ROWS, loss_figure, tokens_html
from babygpt.lessons.baselines import Baselines
from babygpt.store.runs import RunStore
from tests.browser_support import StreamlitServer, launch, layout_problems, new_page, page_button, require_chromium
from tests.class_seed import seed_class
from tests.helpers import wait_for

pytestmark = pytest.mark.browser
TOKEN = "class-secret"

# Every header of the Class page's tables: where its text goes onto a new line, the break must fall at a space
# (never inside "bits/byte"), and its text must not run past its cell.
HEADER_BREAKS_JS = """() => {
  const bad = [];
  for (const th of document.querySelectorAll('table.class-board th')) {
    const chars = [];
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const box = [...range.getClientRects()].find(b => b.width > 0);
        chars.push([node.data[i], box ? box.top : null]);
      }
    }
    let previous = null;
    for (let i = 0; i < chars.length; i++) {
      if (chars[i][1] === null) continue;
      if (previous !== null && chars[i][1] > chars[previous][1] + 2) {
        const between = chars.slice(previous, i + 1).map(c => c[0]).join('');
        if (!/\\s/.test(between)) bad.push(`"${th.innerText}" broken inside a word, before "${chars[i][0]}"`);
      }
      previous = i;
    }
    if (th.scrollWidth > th.clientWidth + 1) bad.push(`"${th.innerText}" runs past its cell`);
  }
  return bad;
}"""

# Rows of a scrolling box that its bottom edge cuts: a token's line box neither wholly inside nor wholly below.
CUT_ROWS_JS = """(selector) => {
  const box = document.querySelector(selector);
  const edge = box.getBoundingClientRect().bottom;
  const cut = [];
  for (const span of box.querySelectorAll('span'))
    for (const r of span.getClientRects())
      if (r.top < edge - 0.5 && r.bottom > edge + 0.5) cut.push(span.textContent);
  return {cut, scrolls: box.scrollHeight > box.clientHeight + 1, rows: box.clientHeight};
}"""

# Where a chart's annotations (the baselines' labels) lie against its plot area and against each other.
LABELS_JS = """(plot) => {
  const area = plot.querySelector('.nsewdrag').getBoundingClientRect();
  const whole = plot.getBoundingClientRect();
  const labels = [...plot.querySelectorAll('.annotation')].map(a => a.getBoundingClientRect());
  const problems = [];
  labels.forEach((b, i) => {
    if (b.left < area.right) problems.push(`label ${i} reaches into the plot area`);
    if (b.right > whole.right + 1) problems.push(`label ${i} is cut by the chart's edge`);
    labels.slice(i + 1).forEach((o, j) => {
      if (b.left < o.right && o.left < b.right && b.top < o.bottom - 1 && o.top < b.bottom - 1)
        problems.push(`labels ${i} and ${i + j + 1} overlap`);
    });
  });
  return {count: labels.length, problems};
}"""


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with playwright_api.sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


def presenter(page) -> None:
    page.get_by_text("Presenter mode").click()
    page.wait_for_function("() => parseFloat(getComputedStyle(document.documentElement).fontSize) >= 20")


def test_the_class_tables_headers_break_between_words_and_the_lesson_start_is_set_without_a_tab(browser, tmp_path):
    home = tmp_path / "runs"
    seed_class(RunStore(home), students=6, training=3)
    server = StreamlitServer(home, BABYGPT_ADMIN_TOKEN=TOKEN).start()
    try:
        page = new_page(browser, 1280, 720)
        page.goto(f"{server.url}/class?user=teacher-key-000000000000")
        page.locator("table.class-board").last.wait_for()
        presenter(page)
        page.get_by_text("Teacher", exact=True).first.click()
        token = page.get_by_label("Admin token", exact=True)
        token.fill(TOKEN)
        token.press("Enter")
        hour = page.get_by_role("spinbutton", name="hour, This lesson began at")
        hour.wait_for()
        page.wait_for_timeout(800)
        assert page.locator("table.class-board").count() == 2, "the challenge's table and the lesson's runs"
        assert page.evaluate(HEADER_BREAKS_JS) == []
        assert layout_problems(page) == []

        # the time typed, then Set pressed straight away: the board starts at the time typed
        hour.click()
        page.keyboard.type("07")
        page.get_by_role("spinbutton", name="minute, This lesson began at").click()
        page.keyboard.type("45")
        page.get_by_role("button", name="Set", exact=True).click()
        started = wait_for(lambda: RunStore(home).lesson_start(), 20, "the lesson's start to be stored")
        assert datetime.fromtimestamp(started).time() == time(7, 45)
    finally:
        server.stop()


def test_the_token_preview_shows_whole_rows(browser, tmp_path):
    """The default text (a little more than the box holds), and a text of short lines whose 300 tokens scroll."""
    lines = tmp_path / "lines.txt"
    lines.write_text("ab\n" * 400)
    server = StreamlitServer(tmp_path / "runs").start()
    try:
        for width, height, projector in [(1400, 1000, False), (1280, 720, True)]:
            page = new_page(browser, width, height)
            page.goto(server.url)
            page.get_by_text("Characters per token").wait_for()
            if projector:
                presenter(page)
            seen = page.evaluate(CUT_ROWS_JS, ".token-view")
            assert seen["cut"] == [], (width, seen)
            page.get_by_text("Upload .txt files").click()
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(lines))
            page.get_by_text("Current corpus: lines.txt").wait_for()
            page.wait_for_timeout(800)
            seen = page.evaluate(CUT_ROWS_JS, ".token-view")
            assert seen["scrolls"] and seen["cut"] == [], (width, seen)
            page.context.close()
    finally:
        server.stop()


def test_the_token_box_is_a_whole_number_of_rows():
    html = tokens_html([("a", 1)], font_size=15)
    assert f"line-height:{round(15 * 1.9)}px" in html and f"max-height:{TOKEN_VIEW_ROWS * round(15 * 1.9)}px" in html


def baseline_chart(log_y: bool = False):
    """Levels close together (the two count models within 0.05 of each other) under curves that cross them."""
    evals = [{"step": s, "elapsed_s": s / 10, "train_loss": 4.3 - s / 100, "val_loss": 4.35 - s / 100}
             for s in range(0, 301, 20)]
    train = [{"step": s, "elapsed_s": s / 10, "loss": 4.3 - s / 100} for s in range(301)]
    levels = Baselines(uniform=math.log(65), unigram=3.30, bigram=3.26, chars_per_token=1.0)
    return loss_figure(train, evals, log_y=log_y, baselines=levels)


def test_baseline_labels_sit_in_the_right_margin_beside_their_lines():
    fig = baseline_chart()
    assert [(a.xref, a.x, a.xanchor) for a in fig.layout.annotations] == [("paper", 1, "left")] * 3
    longest = max(len(line) for a in fig.layout.annotations for line in a.text.split("<br>"))
    assert fig.layout.margin.r >= LABEL_CHAR_PX * longest, "the margin holds the longest line"
    low, high = fig.layout.yaxis.range
    top = next(a for a in fig.layout.annotations if a.text.startswith("uniform guess"))
    assert top.y == pytest.approx((math.log(65) - low) / (high - low)), "a label with room sits on its line"


@pytest.mark.parametrize("log_y", [False, True])
def test_no_curve_runs_over_a_baseline_label_in_a_real_browser(browser, tmp_path, log_y):
    path = tmp_path / "loss.html"
    baseline_chart(log_y).write_html(str(path), include_plotlyjs=True, full_html=True)
    page = new_page(browser, 900, 500)
    page.goto(path.as_uri())
    plot = page.locator(".js-plotly-plot")
    plot.locator(".annotation").first.wait_for()
    seen = plot.evaluate(LABELS_JS)
    assert seen == {"count": 3, "problems": []}
    page.context.close()


def test_a_second_start_leaves_no_error_once_the_run_has_started(browser, tmp_path):
    """Two tabs of one student: the first starts a run; the second, not yet redrawn, still offers Start and is
    pressed. Its page then follows the run, with no refusal under the buttons while the run trains, and the live
    chart's baseline labels sit in its margin."""
    server = StreamlitServer(tmp_path / "runs").start()
    key = "student-" + "s" * 16
    try:
        first, second = (new_page(browser, 1400, 1000) for _ in range(2))
        for page in (first, second):
            page.goto(f"{server.url}/train?user={key}")
            page.get_by_role("button", name="Start training").wait_for()
        max_iters = first.locator('input[aria-label="max_iters"]')
        max_iters.fill("100000")  # far more than trains while this is checked: Stop ends it
        max_iters.press("Enter")
        first.wait_for_timeout(500)
        page_button(first, "Start training").click()
        first.get_by_text("Training: step").first.wait_for()
        page_button(second, "Start training").click()  # the second tab still shows Start enabled
        second.get_by_text("Training: step").first.wait_for()
        second.wait_for_timeout(2500)  # a refusal would be drawn under the buttons by now, and stay
        errors = second.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert errors == [], errors
        assert page_button(second, "Start training").is_disabled()
        chart = second.locator(".js-plotly-plot").first
        chart.locator(".annotation").first.wait_for()
        assert chart.evaluate(LABELS_JS)["problems"] == []
        page_button(second, "Stop").click()
        second.get_by_text("Stopped: step").first.wait_for()
        assert second.locator('[data-testid="stAlertContentError"]').all_inner_texts() == []
    finally:
        server.stop()
