"""Which user key a new session of a browser takes, when its link and its cookie disagree.

A user key is a bearer secret carried two ways: in the page's address (``?user=``, which a student can copy into a
message) and in a cookie (which only that browser sends). A link is easy to hand to someone else, so it must not
silently make its reader into its sender: a browser that already has a valid cookie key **stays that user** when
a link carries a different key, and switches only when the person asks to (the link may really be their own, from
another machine). A browser without a cookie takes the link's key: that is how a student moves to another machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from babygpt.server.users import is_user_key, new_user_key

LINK_CARRIED_ANOTHER = "This link carried another browser's identity; you are still yourself."


@dataclass(frozen=True)
class KeyChoice:
    """The key this session is, and the other valid key its link carried (None when there was none): the browser
    becomes that one only on an explicit request, never by opening the link."""

    key: str
    link_key: str | None = None


def choose_key(from_link: object, from_cookie: object, new: Callable[[], str] = new_user_key) -> KeyChoice:
    """The cookie's key when it is valid (the link's, when different, is only offered), else the link's, else a
    new one. Anything that is not a user key (a typo, a tampered value) counts as absent."""
    link = from_link if is_user_key(from_link) else None
    cookie = from_cookie if is_user_key(from_cookie) else None
    if cookie is not None:
        return KeyChoice(cookie, link if link is not None and link != cookie else None)
    return KeyChoice(link if link is not None else new())
