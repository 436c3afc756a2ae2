"""Who may do what on a shared server: user keys, the teacher's admin token, and run ownership.

A user is a browser: it keeps a random key (in the page's URL and a cookie) that the server never
shows to anyone else. A key is a bearer secret, not a login: whoever has the link with the key is
that user. The rules live here, not in the pages, so the app, the CLI and tests apply the same ones.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.plain_text import BIDI_CONTROLS
from babygpt.server.settings import admin_token
from babygpt.store.runs import RunInfo

USER_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


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
    configured = admin_token() if configured is None else configured
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


def can_manage(actor: Actor, info: RunInfo) -> bool:
    """Whether ``actor`` may stop, resume, cancel or delete ``info``: its owner, or the teacher with the admin
    token. Every page asks this (a button's state) and every action checks it (``check_can_manage``)."""
    return actor.admin or actor.owns(info)


def check_can_manage(actor: Actor, info: RunInfo, action: str) -> None:
    """Stop, resume, cancel and delete are the owner's alone, or the teacher's with the admin token."""
    if can_manage(actor, info):
        return
    if info.owner is None:
        raise BabyGPTError(f"Run {info.label} was trained from the command line, not in the app: only the teacher, "
                           f"with the admin token in the sidebar, can {action} it here.")
    raise BabyGPTError(f"Run {info.label} belongs to {public_handle(info.owner)}: only its owner, or the teacher "
                       f"with the admin token, can {action} it.")


def check_can_train_sae(actor: Actor, info: RunInfo) -> None:
    """Training an SAE on a run writes into the run's folder and replaces the SAE of the same settings kept there,
    so it is the run's owner's or the teacher's (``check_can_manage``); whoever may see the run may still browse
    its SAEs, steer with them and export them."""
    check_can_manage(actor, info, "train or replace an SAE on")


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
# machine, an anonymous classmate or the viewer. Compared by skeleton (``name_skeleton``), so "Teacher's  Check",
# "TEACHERS CHECK", "teacher’s check" and "ᴛᴇᴀᴄʜᴇʀ" are all a reserved name.
RESERVED_NAMES = ("teacher", "teacher's check", "teachers check", "command line", "you", "yours", "admin",
                  "administrator", "anonymous", "everyone", "nobody", "server")
# Words no name may contain, whatever is around them: "Mr Teacher" and "Ada (you)" would pass for the app's own.
RESERVED_WORDS = ("teacher", "you")
# public_handle's "user 3fa2b1", as a skeleton: user + 6 letters or digits, or any run of hex digits.
ANONYMOUS_LOOKALIKE = re.compile(r"^user(?:[0-9a-f]{1,12}|[a-z0-9]{6})$")
# Controls that reorder what follows them (plain_text.BIDI_CONTROLS): a name could show one thing and sort as another.
# Letters that look like Latin ones, by case (a capital Greek eta is an H, a small one an n). Small capitals are
# mapped by their Unicode name (``_latin_look_alike``).
CONFUSABLE = dict(zip(
    "АВЕЅІЈКМНОРСТУХЁЇаеёіїјоѕрсухԁһӏԛԝьвкмнт"
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαβεικνορτυχγωϲϳ",
    "abesijkmhopctyxeiaeeiijospcyxdhlqwbbkmht"
    "abezhikmnoptyxabeikvoptuxywcj", strict=True))
# Scripts that one word may mix: Japanese writes kanji, hiragana and katakana side by side.
SCRIPT_FAMILY = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK", "IDEOGRAPHIC": "CJK"}


def _invisible(c: str) -> bool:
    """A character that shows nothing: a format control, a filler (Hangul fillers look like a space but are letters
    to Unicode), a blank braille cell, a variation selector or the combining grapheme joiner."""
    name = unicodedata.name(c, "")
    return (unicodedata.category(c) in ("Cf", "Cc", "Co", "Cs", "Cn", "Zl", "Zp")
            or "FILLER" in name or name in ("BRAILLE PATTERN BLANK", "COMBINING GRAPHEME JOINER")
            or name.startswith(("VARIATION SELECTOR", "KHMER VOWEL INHERENT")))


def _latin_look_alike(c: str) -> str:
    """``c`` as the Latin letter it passes for (itself when it passes for none)."""
    if c in CONFUSABLE:
        return CONFUSABLE[c]
    name = unicodedata.name(c, "")
    if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name.split()[-1]) == 1:
        return name.split()[-1].lower()
    return c


def name_skeleton(name: str) -> str:
    """What a name looks like, as two names are compared: Unicode's compatibility forms folded (full-width letters,
    ligatures), letters that look Latin made Latin, case folded, accents, invisible characters, punctuation and
    spaces dropped. "Аda Lee" (a Cyrillic А), "Ada Lee." and "ADA LEE" all have the skeleton "adalee"."""
    text = "".join(_latin_look_alike(c) for c in unicodedata.normalize("NFKC", name))
    text = unicodedata.normalize("NFD", text.casefold())
    return "".join(c for c in text if c.isalnum() and not _invisible(c) and not unicodedata.combining(c))


def name_key(handle: str) -> str:
    """What two names must differ in to be two names (``name_skeleton``)."""
    return name_skeleton(handle)


def _script(c: str) -> str | None:
    """The script of a letter, from its Unicode name (None for digits, marks and modifier letters)."""
    if not unicodedata.category(c).startswith("L") or unicodedata.category(c) == "Lm":
        return None
    first = unicodedata.name(c, "?").split()[0]
    return SCRIPT_FAMILY.get(first, first)


def _mixed_script_word(handle: str) -> str | None:
    """The first word of ``handle`` that mixes scripts (Latin with Cyrillic: "Аda"), or None."""
    for word in unicodedata.normalize("NFKC", handle).split():
        if len({s for s in map(_script, word) if s}) > 1:
            return word
    return None


def _refusal(handle: str) -> str | None:
    """Why ``handle`` cannot be a name on the board, as a sentence (None: it can)."""
    if len(handle) > HANDLE_MAX:
        return f"A name on the board has at most {HANDLE_MAX} characters; {handle[:HANDLE_MAX]!r}… has {len(handle)}."
    if any(c in BIDI_CONTROLS for c in handle):
        return ("A name on the board cannot contain a direction control (it would make the text that follows it "
                "show in another order than it is typed).")
    hidden = sorted({c for c in handle if _invisible(c)})
    if hidden:
        return (f"A name on the board cannot contain invisible characters ({', '.join(f'U+{ord(c):04X}' for c in hidden)}"
                "): two names that look the same would be two names.")
    odd = sorted({c for c in handle if not c.isprintable()})
    if odd:
        return f"A name on the board cannot contain {', '.join(repr(c) for c in odd)}."
    skeleton = name_skeleton(handle)
    if not skeleton:
        return "A name on the board needs at least one letter or digit."
    words = {name_skeleton(w) for w in re.split(r"[\W_]+", unicodedata.normalize("NFKC", handle))}
    if (skeleton in {name_skeleton(r) for r in RESERVED_NAMES} or skeleton.startswith("teacher")
            or words & set(RESERVED_WORDS)):
        return (f"{handle!r} is a name the app itself uses on the board (for the teacher, the command line or you), "
                "or contains one of its words (teacher, you): choose your own.")
    if ANONYMOUS_LOOKALIKE.match(skeleton):
        return (f"{handle!r} looks like an anonymous name (user + 6 letters), which the board gives to whoever has "
                "not chosen one: choose a name of your own, or leave it empty to be anonymous.")
    mixed = _mixed_script_word(handle)
    if mixed:
        return (f"{mixed!r} in {handle!r} mixes letters of two alphabets (such as a Cyrillic а among Latin ones), "
                "which would pass for another name: type each word in one alphabet.")
    return None


def clean_handle(text: str) -> str:
    """The name a student shows on the class board: printable, visible, on one line, at most ``HANDLE_MAX``
    characters, each word in one alphabet, none of the names or words the app writes itself (empty: go back to the
    anonymous ``user 3fa2b1``)."""
    handle = " ".join(str(text).split())
    refusal = _refusal(handle) if handle else None
    if refusal:
        raise BabyGPTError(refusal)
    return handle


def check_name_free(user: str, handle: str, taken: dict[str, str]) -> None:
    """A name is one student's: refused when another user key already has one that looks the same (the same
    ``name_skeleton``: case, spacing, punctuation, accents and look-alike letters do not count).
    ``taken``: every name chosen on this server, by user key."""
    key = name_skeleton(handle)
    if handle and any(name_skeleton(other) == key for owner, other in taken.items() if owner != user):
        raise BabyGPTError(f"Another student already shows as {handle!r} on the board: choose another name (add an "
                           "initial or a number); names that differ only in case, spacing, punctuation, accents or "
                           "look-alike letters are the same name.")
