"""The admin token cannot be guessed at speed: wrong tokens are slowed per browser and per server, logged for the
teacher, and a correct one gives a session that outlives a reload without the token in the URL."""

from __future__ import annotations

import pytest

from babygpt.errors import BabyGPTError
from babygpt.server.admin_guard import (
    ADDRESS_TRIES_PER_MINUTE,
    FIRST_WAIT_S,
    FREE_TRIES,
    MAX_WAIT_S,
    SERVER_TRIES_PER_MINUTE,
    SESSION_S,
    AdminGuard,
    wait_after,
)
from babygpt.server.users import public_handle
from tests.wording import says

TOKEN = "a-long-teacher-token-4f9c"
STUDENT, TEACHER = "student-key-aaaaaaaaaa", "teacher-key-bbbbbbbbbb"
STUDENT_IP, TEACHER_IP = "192.168.1.23", "192.168.1.5"


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


def wrong(guard: AdminGuard, user: str = STUDENT, token: str = "guess", address: str | None = STUDENT_IP) -> str:
    with pytest.raises(BabyGPTError) as caught:
        guard.sign_in(user, token, address)
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


def test_one_address_takes_only_so_many_wrong_tokens_a_minute_however_many_browsers_it_makes(guard, clock):
    for i in range(ADDRESS_TRIES_PER_MINUTE):  # a student who makes a new user key for every guess
        assert wrong(guard, user=f"fresh-key-{i:012d}") == "That is not the admin token."
    assert wrong(guard, user="fresh-key-last-000000", token=TOKEN) == \
        "Too many wrong admin tokens from this network address in the last minute: try again in 60 s."
    assert guard.is_admin(TEACHER, guard.sign_in(TEACHER, TOKEN, TEACHER_IP)), "another address is not refused"
    clock.now += 60
    assert wrong(guard, user="fresh-key-last-000000") == "That is not the admin token."


def test_a_student_with_fresh_keys_cannot_lock_the_teacher_out(guard, clock):
    # the attack of issue 35: eleven browsers, three wrong tokens each, all from one laptop
    for b in range(11):
        for _ in range(FREE_TRIES):
            wrong(guard, user=f"fake-browser-{b:08d}")
    assert guard.is_admin(TEACHER, guard.sign_in(TEACHER, TOKEN, TEACHER_IP))
    assert guard.is_admin(TEACHER, guard.sign_in(TEACHER, TOKEN, None)), "the server machine itself"


def test_the_server_takes_only_so_many_wrong_tokens_a_minute_but_never_refuses_the_server_machine(guard, clock):
    for i in range(SERVER_TRIES_PER_MINUTE):  # a class guessing from many machines at once
        wrong(guard, user=f"fresh-key-{i:012d}", address=f"10.0.{i // ADDRESS_TRIES_PER_MINUTE}.{i}")
    says(wrong(guard, user="fresh-key-last-000000", address="10.9.9.9"), "Too many wrong admin tokens",
         "try again in 60 s", "sign in on the server machine")
    assert guard.is_admin(TEACHER, guard.sign_in(TEACHER, TOKEN, None)), "loopback is never refused by the backstop"
    assert guard.is_admin(TEACHER, guard.sign_in(TEACHER, TOKEN, "::1"))
    for i in range(ADDRESS_TRIES_PER_MINUTE + 1):  # the server machine is not refused by the address limit either
        assert wrong(guard, user=f"local-key-{i:012d}", address="127.0.0.1") == "That is not the admin token."
    clock.now += 60
    assert wrong(guard, user="fresh-key-last-000000", address="10.9.9.9") == "That is not the admin token."


def test_wrong_tokens_are_logged_one_line_per_address_most_recent_first(guard, clock):
    wrong(guard, TEACHER, address=TEACHER_IP)
    clock.now += 1
    for b in range(5):
        wrong(guard, f"fake-browser-{b:08d}")
    clock.now += 1
    wrong(guard)
    wrong(guard, TEACHER, address=None)
    log = guard.failed_attempts()
    assert [(a.address, a.count, a.browsers) for a in log] == [("127.0.0.1", 1, 1), (STUDENT_IP, 6, 6),
                                                               (TEACHER_IP, 1, 1)]
    assert log[1].last_at - log[1].first_at == 1
    text = " ".join(a.sentence() for a in log)
    assert STUDENT not in text and TEACHER not in text, "the log never shows a user key"
    assert log[1].sentence().startswith(f"{STUDENT_IP}: 6 wrong tokens from 6 browsers, from ")
    assert log[2].sentence().startswith(f"{TEACHER_IP}: 1 wrong token from one browser ({public_handle(TEACHER)}), at ")
    assert log[0].sentence().startswith("this server machine: 1 wrong token from one browser")


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
