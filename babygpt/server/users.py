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
import unicodedata
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


ENTRIES_STAY = "Entries stay until the challenge ends, so every try is counted; the teacher can delete it."


def check_can_delete(actor: Actor, info: RunInfo, open_challenge_id: str | None) -> None:
    """Delete is the owner's or the teacher's (``check_can_manage``), but a student's entry in the challenge still
    open stays: deleting the worse of two tries would hide a re-roll from the board's "best of 2"."""
    check_can_manage(actor, info, "delete")
    if not actor.admin and open_challenge_id is not None and info.challenge_id == open_challenge_id:
        raise BabyGPTError(f"Run {info.label} is an entry in the open challenge. {ENTRIES_STAY}")


def check_teacher(actor: Actor, action: str) -> None:
    """What only the teacher does to the whole class (stop every run, clear the queue, set or end a challenge)."""
    if not actor.admin:
        raise BabyGPTError(f"Only the teacher can {action}: enter the admin token in the sidebar's Teacher box.")


HANDLE_MAX = 24
# Names the app itself writes on the board or beside it: a student who took one would pass for the teacher, the
# machine, an anonymous classmate or the viewer. Compared squashed (see ``_squashed``), so "Teacher's  Check",
# "TEACHERS CHECK" and "teacher’s check" are all the same reserved name.
RESERVED_NAMES = ("teacher", "teacher's check", "teachers check", "command line", "you", "yours", "admin",
                  "administrator", "anonymous", "everyone", "nobody", "server")
# public_handle's "user 3fa2b1", however it is spelt: another classmate's anonymous name, or one nobody has yet.
ANONYMOUS_LOOKALIKE = re.compile(r"^user[\W_]*[0-9a-f]{1,12}$", re.IGNORECASE)


def _squashed(text: str) -> str:
    """A name as two names are compared: Unicode's compatibility forms folded (full-width letters, ligatures),
    case folded, and every space and punctuation mark dropped."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def name_key(handle: str) -> str:
    """What two names must differ in to be two names: case and spacing do not count ("Ada  Lee" is "ada lee")."""
    return "".join(unicodedata.normalize("NFKC", handle).casefold().split())


def clean_handle(text: str) -> str:
    """The name a student shows on the class board: printable, on one line, at most ``HANDLE_MAX`` characters,
    none of the names the app writes itself (empty: go back to the anonymous ``user 3fa2b1``)."""
    handle = " ".join(str(text).split())
    if len(handle) > HANDLE_MAX:
        raise BabyGPTError(f"A name on the board has at most {HANDLE_MAX} characters; {handle[:HANDLE_MAX]!r}… has "
                           f"{len(handle)}.")
    odd = sorted({c for c in handle if not c.isprintable()})
    if odd:
        raise BabyGPTError(f"A name on the board cannot contain {', '.join(repr(c) for c in odd)}.")
    squashed = _squashed(handle)
    if handle and not squashed:
        raise BabyGPTError("A name on the board needs at least one letter or digit.")
    if squashed in {_squashed(r) for r in RESERVED_NAMES} or squashed.startswith("teacher") or "(you)" in handle:
        raise BabyGPTError(f"{handle!r} is a name the app itself uses on the board (for the teacher, the command "
                           "line or you): choose your own.")
    if ANONYMOUS_LOOKALIKE.match(handle) or ANONYMOUS_LOOKALIKE.match(squashed):
        raise BabyGPTError(f"{handle!r} looks like an anonymous name (user + 6 letters), which the board gives to "
                           "whoever has not chosen one: choose a name of your own, or leave it empty to be "
                           "anonymous.")
    return handle


def check_name_free(user: str, handle: str, taken: dict[str, str]) -> None:
    """A name is one student's: refused when another user key already has it, ignoring case and spacing.
    ``taken``: every name chosen on this server, by user key."""
    key = name_key(handle)
    if handle and any(name_key(other) == key for owner, other in taken.items() if owner != user):
        raise BabyGPTError(f"Another student already shows as {handle!r} on the board: choose another name (add an "
                           "initial or a number).")
