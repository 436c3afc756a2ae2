"""The teacher's sign-in: the admin token guarded against guessing, and a session that outlives a reload.

**Guessing.** A student who types tokens into the Teacher box (or scripts it) is slowed down: each browser has
``FREE_TRIES`` wrong tokens, then waits twice as long after each further one (up to ``MAX_WAIT_S``) before another
is even compared; and the whole server takes at most ``SERVER_TRIES_PER_MINUTE`` wrong tokens a minute, since a
student can be a new browser at will (a new user key). A token is compared in constant time
(``users.admin_token_matches``). Every wrong token is logged for the teacher: when, which browser (its public
handle, never its key), how many.

**The session.** A reload is a new Streamlit session, and asking the teacher for the token on every reload invites
it to be written down or put in the URL. After a correct token the teacher's browser gets a random session secret
(kept in a cookie, never in the URL that a projector shows), valid only with the same user key, for ``SESSION_S``,
and revoked by *Sign out*. The server keeps only its hash.

One guard per server process (the app keeps it in ``st.cache_resource``); a restart forgets sessions and
throttles, which only asks the teacher to sign in again.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from babygpt.errors import BabyGPTError
from babygpt.server.users import admin_token_matches, public_handle

FREE_TRIES = 3  # wrong tokens a browser may type before it must wait (typos happen)
FIRST_WAIT_S = 2.0  # the wait after the first wrong token past the free ones; doubles with each further one
MAX_WAIT_S = 300.0
FORGET_S = 3600.0  # a browser's throttle starts over after an hour without a wrong token
SERVER_TRIES_PER_MINUTE = 30  # wrong tokens the whole server takes per minute, from every browser together
SESSION_S = 12 * 3600.0  # a teacher stays signed in for a school day
LOG_MAX = 200  # browsers kept in the failed-attempt log (the oldest are dropped first)


@dataclass
class FailedAttempts:
    """Wrong tokens from one browser, as the teacher sees them (the public handle, never the user key)."""

    handle: str
    count: int
    first_at: float
    last_at: float

    def sentence(self) -> str:
        first, last = (time.strftime("%H:%M:%S", time.localtime(t)) for t in (self.first_at, self.last_at))
        when = f"at {last}" if self.count == 1 else f"from {first} to {last}"
        return f"{self.handle}: {self.count} wrong token{'s' if self.count != 1 else ''} {when}"


@dataclass
class _Throttle:
    failures: int = 0  # wrong tokens since the throttle last started over
    last_at: float = 0.0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def in_words(seconds: float) -> str:
    """A wait as a person reads it: "5 s", "3 min" (rounded up, so the try after it is never early)."""
    whole = max(1, math.ceil(seconds))
    return f"{whole} s" if whole < 120 else f"{math.ceil(whole / 60)} min"


def wait_after(failures: int) -> float:
    """How long a browser waits after ``failures`` wrong tokens before its next one is compared."""
    if failures < FREE_TRIES:
        return 0.0
    return min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** (failures - FREE_TRIES))


class AdminGuard:
    """Signs the teacher in and out, throttles wrong tokens, logs them. Thread-safe: every viewer shares one."""

    def __init__(self, token: str | None = None, clock: Callable[[], float] = time.time):
        """``token``: the configured admin token (None: read ``BABYGPT_ADMIN_TOKEN`` at each sign-in)."""
        self._token, self._clock = token, clock
        self._lock = threading.Lock()
        self._throttles: dict[str, _Throttle] = {}
        self._recent: deque[float] = deque()  # when the server's recent wrong tokens came, oldest first
        self._log: dict[str, FailedAttempts] = {}  # by user key, in the order first seen
        self._sessions: dict[str, tuple[str, float]] = {}  # hash of the session secret -> (user key, expires at)

    # -- signing in -------------------------------------------------------------------------------
    def sign_in(self, user: str, token: str) -> str:
        """A new session secret for ``user`` when ``token`` is the admin token; otherwise a BabyGPTError that says
        why (wrong, or wait this long), and a wrong token is counted and logged."""
        now = self._clock()
        with self._lock:
            self._check_not_throttled(user, now)
            if not admin_token_matches(token, self._token):
                self._fail(user, now)
                raise BabyGPTError("That is not the admin token." + self._wait_sentence(user, now))
            self._throttles.pop(user, None)
            secret = secrets.token_urlsafe(32)
            self._sessions[_digest(secret)] = (user, now + SESSION_S)
            return secret

    def _check_not_throttled(self, user: str, now: float) -> None:
        throttle = self._throttles.get(user)
        if throttle and now - throttle.last_at > FORGET_S:
            self._throttles.pop(user)
            throttle = None
        if throttle:
            left = throttle.last_at + wait_after(throttle.failures) - now
            if left > 0:
                raise BabyGPTError(f"Too many wrong admin tokens from this browser: try again in "
                                   f"{in_words(left)}.")
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        if len(self._recent) >= SERVER_TRIES_PER_MINUTE:
            left = self._recent[0] + 60 - now
            raise BabyGPTError(f"Too many wrong admin tokens on this server in the last minute: try again in "
                               f"{in_words(left)}.")

    def _fail(self, user: str, now: float) -> None:
        throttle = self._throttles.setdefault(user, _Throttle())
        throttle.failures += 1
        throttle.last_at = now
        self._recent.append(now)
        entry = self._log.pop(user, None) or FailedAttempts(public_handle(user), 0, now, now)
        entry.count += 1
        entry.last_at = now
        self._log[user] = entry  # re-inserted: the dict keeps browsers in the order they last failed
        while len(self._log) > LOG_MAX:
            self._log.pop(next(iter(self._log)))

    def _wait_sentence(self, user: str, now: float) -> str:
        wait = wait_after(self._throttles[user].failures)
        return f" The next try from this browser is compared in {in_words(wait)}." if wait else ""

    # -- sessions ---------------------------------------------------------------------------------
    def is_admin(self, user: str | None, secret: str | None) -> bool:
        """Whether ``secret`` is a live session granted to this ``user`` (a secret copied to another browser,
        with another user key, is nothing)."""
        return self.session_ends(user, secret) is not None

    def session_ends(self, user: str | None, secret: str | None) -> float | None:
        """When this browser's session ends (None: it is not signed in)."""
        if not isinstance(user, str) or not isinstance(secret, str) or not user or not secret:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(_digest(secret))
            if session is None:
                return None
            if session[1] <= now:
                self._sessions.pop(_digest(secret))
                return None
            return session[1] if secrets.compare_digest(session[0], user) else None

    def sign_out(self, secret: str | None) -> None:
        """Revoke one session (the teacher's *Sign out*)."""
        if secret:
            with self._lock:
                self._sessions.pop(_digest(secret), None)

    def sign_out_everywhere(self) -> int:
        """Revoke every session (a teacher who thinks a session leaked); returns how many there were."""
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    # -- the log ----------------------------------------------------------------------------------
    def failed_attempts(self) -> list[FailedAttempts]:
        """Wrong tokens per browser, the most recent first (what the teacher sees once signed in)."""
        with self._lock:
            return [FailedAttempts(**vars(a)) for a in reversed(self._log.values())]
