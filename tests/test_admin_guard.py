"""The admin token cannot be guessed at speed: wrong tokens are slowed per browser and per server, logged for the
teacher, and a correct one gives a session that outlives a reload without the token in the URL."""

from __future__ import annotations

import pytest

from babygpt.errors import BabyGPTError
from babygpt.server.admin_guard import (
    FIRST_WAIT_S,
    FREE_TRIES,
    MAX_WAIT_S,
    SERVER_TRIES_PER_MINUTE,
    SESSION_S,
    AdminGuard,
    wait_after,
)
from babygpt.server.users import public_handle

TOKEN = "a-long-teacher-token-4f9c"
STUDENT, TEACHER = "student-key-aaaaaaaaaa", "teacher-key-bbbbbbbbbb"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guard(clock) -> AdminGuard:
    return AdminGuard(TOKEN, clock)


def wrong(guard: AdminGuard, user: str = STUDENT, token: str = "guess") -> str:
    with pytest.raises(BabyGPTError) as caught:
        guard.sign_in(user, token)
    return str(caught.value)


def test_a_browser_waits_longer_after_each_wrong_token_and_its_guesses_are_not_compared_meanwhile(guard, clock):
    for _ in range(FREE_TRIES - 1):
        assert wrong(guard) == "That is not the admin token."
    assert wrong(guard) == f"That is not the admin token. The next try from this browser is compared in " \
                           f"{FIRST_WAIT_S:.0f} s."
    # while it waits, even the right token is refused unseen: a guess made then tells the student nothing
    assert wrong(guard, token=TOKEN) == "Too many wrong admin tokens from this browser: try again in 2 s."
    clock.now += FIRST_WAIT_S
    assert "compared in 4 s" in wrong(guard)
    clock.now += 4
    assert "compared in 8 s" in wrong(guard)
    assert wait_after(FREE_TRIES + 20) == MAX_WAIT_S, "the wait is capped"
    clock.now += 8
    assert guard.sign_in(STUDENT, TOKEN), "after the wait, the right token still works"


def test_another_browser_is_not_slowed_by_one_students_guesses(guard):
    for _ in range(FREE_TRIES + 1):
        wrong(guard)
    assert guard.is_admin(TEACHER, guard.sign_in(TEACHER, TOKEN))


def test_the_server_takes_only_so_many_wrong_tokens_a_minute_from_new_browsers(guard, clock):
    for i in range(SERVER_TRIES_PER_MINUTE):  # a student who makes a new user key for every guess
        assert wrong(guard, user=f"fresh-key-{i:012d}") == "That is not the admin token."
    assert wrong(guard, user="fresh-key-last-000000") == \
        "Too many wrong admin tokens on this server in the last minute: try again in 60 s."
    clock.now += 60
    assert wrong(guard, user="fresh-key-last-000000") == "That is not the admin token."


def test_wrong_tokens_are_logged_by_public_handle_most_recent_first(guard, clock):
    wrong(guard, TEACHER)
    clock.now += 1
    wrong(guard)
    clock.now += 1
    wrong(guard)
    log = guard.failed_attempts()
    assert [(a.handle, a.count) for a in log] == [(public_handle(STUDENT), 2), (public_handle(TEACHER), 1)]
    assert log[0].last_at - log[0].first_at == 1
    assert STUDENT not in " ".join(a.sentence() for a in log), "the log never shows a user key"
    assert log[0].sentence().startswith(f"{public_handle(STUDENT)}: 2 wrong tokens from ")


def test_a_session_belongs_to_one_browser_expires_and_can_be_revoked(guard, clock):
    secret = guard.sign_in(TEACHER, TOKEN)
    assert TOKEN not in secret and guard.is_admin(TEACHER, secret)
    assert not guard.is_admin(STUDENT, secret), "a session secret copied to another browser is nothing"
    assert not guard.is_admin(TEACHER, "forged-secret") and not guard.is_admin(TEACHER, None)
    clock.now += SESSION_S
    assert not guard.is_admin(TEACHER, secret), "expired"
    secret = guard.sign_in(TEACHER, TOKEN)
    guard.sign_out(secret)
    assert not guard.is_admin(TEACHER, secret), "signed out"
    first, second = guard.sign_in(TEACHER, TOKEN), guard.sign_in(STUDENT, TOKEN)
    assert guard.sign_out_everywhere() == 2
    assert not guard.is_admin(TEACHER, first) and not guard.is_admin(STUDENT, second)


def test_without_a_configured_token_nobody_signs_in(clock):
    guard = AdminGuard("", clock)
    assert wrong(guard, TEACHER, "") == "That is not the admin token."
