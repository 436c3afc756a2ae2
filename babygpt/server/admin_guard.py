"""The teacher's sign-in: the admin token guarded against guessing, and a session that outlives a reload.

**Guessing.** A student who types tokens into the Teacher box (or scripts it) is slowed down three ways, each
keyed by something that costs more to change than the one before:

- *the browser* (its user key): ``FREE_TRIES`` wrong tokens, then a wait that doubles after each further one (up to
  ``MAX_WAIT_S``) before another is even compared;
- *the address* (the client's IP address): at most ``ADDRESS_TRIES_PER_MINUTE`` wrong tokens a minute, from every
  browser on it together, because a new user key costs nothing (a fresh ``?user=``) but a new address does;
- *the server*: at most ``SERVER_TRIES_PER_MINUTE`` wrong tokens a minute from all addresses together, a backstop
  against a class that guesses from many machines at once.

The rule that keeps the teacher in: **the server machine itself (a loopback address) is never refused by the
address or server limits**, only by its own browser's wait, so no student can lock the teacher out of signing in
there; and one student, from one address, can use at most ``ADDRESS_TRIES_PER_MINUTE`` of the server's budget, so
locking everyone else out takes several machines. Honest limits: students behind one NAT share an address (one
student's guesses then refuse the Teacher box to classmates on it for a minute, which students do not need); and
behind a reverse proxy on the same machine every browser arrives from loopback, so only the per-browser wait
applies. A token is compared in constant time (``users.admin_token_matches``).

**The log.** Every wrong token is logged for the teacher, one line per address (never a user key): how many wrong
tokens, from how many browsers, and when, so a student with a hundred fresh keys is one line, not a hundred.

**The session.** A reload is a new Streamlit session, and asking the teacher for the token on every reload invites
it to be written down or put in the URL. After a correct token the teacher's browser gets a random session secret
(kept in a cookie, never in the URL that a projector shows), valid only with the same user key, for ``SESSION_S``,
and revoked by *Sign out*. The server keeps only its hash.

One guard per server process (the app keeps it in ``st.cache_resource``); a restart forgets sessions and
throttles, which only asks the teacher to sign in again.
"""

from __future__ import annotations

import hashlib
import ipaddress
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
ADDRESS_TRIES_PER_MINUTE = 10  # wrong tokens one IP address may send per minute, from all its browsers together
SERVER_TRIES_PER_MINUTE = 30  # wrong tokens the whole server takes per minute, from every address together
HANDLES_MAX = 10_000  # browsers remembered per address in the log (a bound on memory, far above a class)
LOOPBACK = "127.0.0.1"  # the address of a browser on the server machine (Streamlit reports it as no address)
SESSION_S = 12 * 3600.0  # a teacher stays signed in for a school day
LOG_MAX = 200  # addresses kept in the failed-attempt log (the oldest are dropped first)


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` is the server machine itself (None, as Streamlit reports a local browser, counts)."""
    if address is None:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class FailedAttempts:
    """Wrong tokens from one address, as the teacher sees them: how many, from how many browsers (their public
    handles, never their keys), and when."""

    address: str
    count: int
    handles: set[str]
    first_at: float
    last_at: float

    @property
    def browsers(self) -> int:
        return len(self.handles)

    def sentence(self) -> str:
        first, last = (time.strftime("%H:%M:%S", time.localtime(t)) for t in (self.first_at, self.last_at))
        when = f"at {last}" if self.count == 1 else f"from {first} to {last}"
        where = "this server machine" if is_loopback(self.address) else self.address
        who = f"one browser ({next(iter(self.handles))})" if self.browsers == 1 else f"{self.browsers} browsers"
        return f"{where}: {self.count} wrong token{'s' if self.count != 1 else ''} from {who}, {when}"


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
        self._by_address: dict[str, deque[float]] = {}  # the same, per address
        self._log: dict[str, FailedAttempts] = {}  # by address, in the order they last failed
        self._sessions: dict[str, tuple[str, float]] = {}  # hash of the session secret -> (user key, expires at)

    # -- signing in -------------------------------------------------------------------------------
    def sign_in(self, user: str, token: str, address: str | None = None) -> str:
        """A new session secret for ``user`` when ``token`` is the admin token; otherwise a BabyGPTError that says
        why (wrong, or wait this long), and a wrong token is counted and logged. ``address``: the client's IP
        address (None: the server machine itself)."""
        now = self._clock()
        address = LOOPBACK if address is None else address
        with self._lock:
            self._check_not_throttled(user, address, now)
            if not admin_token_matches(token, self._token):
                self._fail(user, address, now)
                raise BabyGPTError("That is not the admin token." + self._wait_sentence(user, now))
            self._throttles.pop(user, None)
            secret = secrets.token_urlsafe(32)
            self._sessions[_digest(secret)] = (user, now + SESSION_S)
            return secret

    def _check_not_throttled(self, user: str, address: str, now: float) -> None:
        throttle = self._throttles.get(user)
        if throttle and now - throttle.last_at > FORGET_S:
            self._throttles.pop(user)
            throttle = None
        if throttle:
            left = throttle.last_at + wait_after(throttle.failures) - now
            if left > 0:
                raise BabyGPTError(f"Too many wrong admin tokens from this browser: try again in "
                                   f"{in_words(left)}.")
        _forget_older_than_a_minute(self._recent, now)
        recent_here = self._by_address.get(address)
        if recent_here is not None and not _forget_older_than_a_minute(recent_here, now):
            self._by_address.pop(address)
            recent_here = None
        if is_loopback(address):
            return  # the teacher can always sign in at the server machine
        if recent_here is not None and len(recent_here) >= ADDRESS_TRIES_PER_MINUTE:
            raise BabyGPTError(f"Too many wrong admin tokens from this network address in the last minute: try "
                               f"again in {in_words(recent_here[0] + 60 - now)}.")
        if len(self._recent) >= SERVER_TRIES_PER_MINUTE:
            raise BabyGPTError(f"Too many wrong admin tokens on this server in the last minute: try again in "
                               f"{in_words(self._recent[0] + 60 - now)}. The teacher can always sign in on the "
                               f"server machine itself.")

    def _fail(self, user: str, address: str, now: float) -> None:
        throttle = self._throttles.setdefault(user, _Throttle())
        throttle.failures += 1
        throttle.last_at = now
        self._recent.append(now)
        self._by_address.setdefault(address, deque()).append(now)
        entry = self._log.pop(address, None) or FailedAttempts(address, 0, set(), now, now)
        entry.count += 1
        if len(entry.handles) < HANDLES_MAX:
            entry.handles.add(public_handle(user))
        entry.last_at = now
        self._log[address] = entry  # re-inserted: the dict keeps addresses in the order they last failed
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
        """Wrong tokens per address, the most recent first (what the teacher sees once signed in)."""
        with self._lock:
            return [FailedAttempts(a.address, a.count, set(a.handles), a.first_at, a.last_at)
                    for a in reversed(self._log.values())]


def _forget_older_than_a_minute(times: deque[float], now: float) -> int:
    """Drop the times more than a minute old from the front of ``times``; how many are left."""
    while times and now - times[0] >= 60:
        times.popleft()
    return len(times)
