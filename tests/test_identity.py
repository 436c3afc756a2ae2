"""Who a browser is: a link that carries another browser's key never silently makes its reader that user (the
cookie's key stays, the switch is a click), while a browser without a cookie still takes the link's key."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from playwright import sync_api as playwright_api

from babygpt.server.browser_key import LINK_CARRIED_ANOTHER, KeyChoice, choose_key
from tests.browser_support import StreamlitServer, launch, new_page, require_chromium

ADA, MALLORY, FRESH = "ada-key-aaaaaaaaaaaaaa", "mallory-key-mmmmmmmmmm", "fresh-key-ffffffffffff"


def fresh() -> str:
    return FRESH


def test_a_browser_with_a_cookie_stays_itself_when_a_link_carries_another_key():
    assert choose_key(MALLORY, ADA, fresh) == KeyChoice(ADA, link_key=MALLORY)


def test_a_browser_without_a_cookie_takes_the_links_key():
    assert choose_key(MALLORY, None, fresh) == KeyChoice(MALLORY)
    assert choose_key(MALLORY, "not a key!", fresh) == KeyChoice(MALLORY), "a tampered cookie counts as none"


def test_the_same_key_or_no_key_in_the_link_offers_nothing():
    assert choose_key(ADA, ADA, fresh) == KeyChoice(ADA)
    assert choose_key(None, ADA, fresh) == KeyChoice(ADA)
    assert choose_key("<b>x</b>", ADA, fresh) == KeyChoice(ADA), "a value that is no key is not offered"
    assert choose_key(None, None, fresh) == KeyChoice(FRESH)


def url_user(page) -> str:
    return parse_qs(urlparse(page.url).query)["user"][0]


def cookie_user(page) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == "babygpt_user"), None)


def wait_for_cookie(page, key: str) -> None:
    for _ in range(100):
        if cookie_user(page) == key:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the cookie holds {cookie_user(page)!r}, not {key!r}")


@pytest.mark.browser
def test_a_link_with_a_classmates_key_does_not_take_over_and_switching_is_a_click(tmp_path):
    require_chromium()
    server = StreamlitServer(tmp_path / "runs").start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            ada, mallory = new_page(browser), new_page(browser)
            for page in (ada, mallory):
                page.goto(f"{server.url}/train")
                page.get_by_text("Active run:").first.wait_for()
                wait_for_cookie(page, url_user(page))
            ada_key, mallory_key = url_user(ada), url_user(mallory)
            link = f"{server.url}/train?user={mallory_key}"

            ada.goto(link)  # the link Mallory sent her
            ada.get_by_text(LINK_CARRIED_ANOTHER).wait_for()
            ada.wait_for_function(f"() => location.search.includes({ada_key!r})")
            assert url_user(ada) == ada_key and cookie_user(ada) == ada_key
            ada.reload()  # the address now holds her own key: no notice, still Ada
            ada.get_by_text("Active run:").first.wait_for()
            assert url_user(ada) == ada_key and cookie_user(ada) == ada_key
            assert ada.get_by_text(LINK_CARRIED_ANOTHER).count() == 0

            ada.goto(link)  # her own link from another machine, after all: she asks to switch
            ada.get_by_role("button", name="Switch to the link's identity").click()
            ada.wait_for_function(f"() => location.search.includes({mallory_key!r})")
            wait_for_cookie(ada, mallory_key)
            ada.get_by_text(LINK_CARRIED_ANOTHER).wait_for(state="detached")

            elsewhere = new_page(browser)  # a new browser without a cookie takes the link's key
            elsewhere.goto(link)
            elsewhere.get_by_text("Active run:").first.wait_for()
            wait_for_cookie(elsewhere, mallory_key)
            assert url_user(elsewhere) == mallory_key
            assert elsewhere.get_by_text(LINK_CARRIED_ANOTHER).count() == 0
            browser.close()
    finally:
        server.stop()
