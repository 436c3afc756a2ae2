"""Who may do what on a shared server: user keys, the teacher's admin token, and run ownership.

A user is a browser: it keeps a random key (in the page's URL and a cookie) that the server never
shows to anyone else. A key is a bearer secret, not a login: whoever has the link with the key is
that user. The rules live here, not in the pages, so the app, the CLI and tests apply the same ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.store.runs import RunInfo

USER_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
ADMIN_TOKEN_ENV = "BABYGPT_ADMIN_TOKEN"


def new_user_key() -> str:
    """128 random bits, URL-safe: unguessable, so nobody reaches another user's runs by trying keys."""
    return secrets.token_urlsafe(16)


def is_user_key(value: object) -> bool:
    return isinstance(value, str) and bool(USER_KEY.match(value))


def public_handle(key: str | None) -> str:
    """A short name for a user that others may see (a hash: the key itself is the user's secret)."""
    if key is None:
        return "command line"
    return "user " + hashlib.sha256(key.encode()).hexdigest()[:6]


def admin_token_matches(given: str | None, configured: str | None = None) -> bool:
    """Whether ``given`` is the server's admin token; without one configured, nobody is admin."""
    configured = os.environ.get(ADMIN_TOKEN_ENV) if configured is None else configured
    if not configured or not given:
        return False
    return hmac.compare_digest(given.encode(), configured.encode())


@dataclass(frozen=True)
class Actor:
    """Who asks: a user of the app (by key), possibly with the admin token, or the machine's own command line."""

    user: str | None
    admin: bool = False

    def owns(self, info: RunInfo) -> bool:
        return self.user is not None and info.owner == self.user


def check_can_manage(actor: Actor, info: RunInfo, action: str) -> None:
    """Stop, resume, cancel and delete are the owner's alone, or the teacher's with the admin token."""
    if actor.admin or actor.owns(info):
        return
    if info.owner is None:
        raise BabyGPTError(f"Run {info.label} was trained from the command line, not in the app: only the teacher, "
                           f"with the admin token in the sidebar, can {action} it here.")
    raise BabyGPTError(f"Run {info.label} belongs to {public_handle(info.owner)}: only its owner, or the teacher "
                       f"with the admin token, can {action} it.")


def check_teacher(actor: Actor, action: str) -> None:
    """What only the teacher does to the whole class (stop every run, clear the queue, set or end a challenge)."""
    if not actor.admin:
        raise BabyGPTError(f"Only the teacher can {action}: enter the admin token in the sidebar's Teacher box.")


HANDLE_MAX = 24


def clean_handle(text: str) -> str:
    """The name a student shows on the class board: printable, on one line, at most ``HANDLE_MAX`` characters
    (empty: go back to the anonymous ``user 3fa2b1``)."""
    handle = " ".join(str(text).split())
    if len(handle) > HANDLE_MAX:
        raise BabyGPTError(f"A name on the board has at most {HANDLE_MAX} characters; {handle[:HANDLE_MAX]!r}… has "
                           f"{len(handle)}.")
    odd = sorted({c for c in handle if not c.isprintable()})
    if odd:
        raise BabyGPTError(f"A name on the board cannot contain {', '.join(repr(c) for c in odd)}.")
    return handle
