"""In Chromium: on Model & training, a student picks ``modern`` and presses "Use modern's training recipe"; the
form's own boxes show the recipe (a browser keeps each widget's state and sends it back, so the values must reach
the widgets, not only the settings), keep it after a reload, and Start trains with it."""

from __future__ import annotations

import pytest

from babygpt.config import preset_training_words
from tests.browser_support import StreamlitServer, launch, new_page, page_button, require_chromium
from tests.helpers import wait_for

pytestmark = pytest.mark.browser
STUDENT = "recipe-student-0001"


def box(page, name: str):
    return page.locator(f'input[aria-label="{name}"]')


def test_the_recipe_button_fills_the_forms_boxes_and_they_keep_it(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    try:
        with playwright.sync_playwright() as p:
            page = new_page(launch(p))
            page.goto(f"{server.url}/train?user={STUDENT}")
            page_button(page, "Start training").wait_for()
            assert box(page, "max_iters").input_value() == "1000"
            page.get_by_test_id("stSelectbox").filter(has_text="Preset (rung of the ladder)").click()
            page.get_by_role("option", name="modern", exact=True).click()
            label = f"Use modern's training recipe: {preset_training_words('modern')}"
            page_button(page, label).click()
            caption = f"Training with modern's recipe: {preset_training_words('modern')}"
            page.get_by_text(caption).wait_for()
            wait_for(lambda: box(page, "max_iters").input_value() == "300", 30, "the steps box to show 300")
            assert box(page, "eval_interval").input_value() == "50"
            assert float(box(page, "learning rate").input_value()) == 2e-3
            slider = page.get_by_test_id("stSlider").filter(has_text="batch_size")
            assert slider.get_by_test_id("stSliderThumbValue").inner_text().strip() == "24"
            assert page_button(page, label).count() == 0, "offered only while the form differs from it"

            page.reload()
            page_button(page, "Start training").wait_for()
            page.get_by_text(caption).wait_for()
            assert box(page, "max_iters").input_value() == "300", "kept across a reload"
    finally:
        server.stop()
