"""Who this browser is. A reload or a new tab is a new Streamlit session with an empty ``session_state``, so the
user comes from what the browser sends back: the ``babygpt_user`` cookie (for a second tab), or the ``user`` key in
the URL (re-set on every run, because Streamlit drops query parameters on a page switch) for a browser without one.
A link with another key never silently replaces the cookie's (``babygpt.server.browser_key``).

The teacher is a browser that signed in with the admin token: it holds a session secret from
``babygpt.server.admin_guard`` (the rules: throttle, log, expiry) in this session and in a cookie, so a reload keeps it
signed in without the token ever being kept or put in the URL."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.plain_text import markdown_literal
from babygpt.server.admin_guard import SESSION_S
from babygpt.server.browser_key import LINK_CARRIED_ANOTHER, choose_key
from babygpt.server.classroom import owner_name
from babygpt.server.users import Actor, is_user_key
from ui.state import ADMIN, ADMIN_COOKIE, USER, USER_COOKIE, USER_PARAM, admin_guard, page_flags, store

LINK_KEY = "link_other_user"  # another valid key this session's link carried, offered but not taken
TOKEN_INPUT = "admin_token"
SIGN_IN_ERROR = "admin_sign_in_error"


def identify() -> str:
    """This browser's key: the session's, else the cookie's, else the URL's, else a new one (the rule:
    ``babygpt.server.browser_key.choose_key``); kept in the URL. A link that carried another key is remembered for
    ``link_identity_notice``, which offers it, never takes it."""
    key = st.session_state.get(USER)
    if key is None:
        choice = choose_key(st.query_params.get(USER_PARAM), st.context.cookies.get(USER_COOKIE))
        key = st.session_state[USER] = choice.key
        st.session_state[LINK_KEY] = choice.link_key
    if st.query_params.get(USER_PARAM) != key:
        st.query_params[USER_PARAM] = key
    return key


def _switch_to_link_key() -> None:
    """The notice's button: become the link's user, as a new session of it would (its choices restored, this
    browser's cookie then rewritten to it by ``remember_in_cookie``)."""
    other = st.session_state.get(LINK_KEY)
    if is_user_key(other):
        st.session_state.clear()
        st.session_state[USER] = other


def _keep_myself() -> None:
    st.session_state[LINK_KEY] = None


def link_identity_notice() -> None:
    """When the link carried another browser's key: say this browser is still itself, and offer the switch (the
    student's own link from another machine); the cookie is never overwritten without that click."""
    if not is_user_key(st.session_state.get(LINK_KEY)):
        return
    st.info(markdown_literal(LINK_CARRIED_ANOTHER), icon=":material/badge:")
    c1, c2 = st.columns(2)
    c1.button("Switch to the link's identity", key="identity_switch", on_click=_switch_to_link_key,
              help="Only if this is your own link, from another machine: this browser then becomes that user "
                   "and stops being the one it was.")
    c2.button("Stay myself", key="identity_stay", on_click=_keep_myself)


def user() -> str:
    """This browser's key."""
    return st.session_state[USER] if USER in st.session_state else identify()


def owner_names(owners: list[str | None]) -> Callable[[str | None, bool], str]:
    """Name the owners of several runs as the Class board does (``classroom.owner_name`` with the names students
    chose), reading those names once. Plain text: escape it where it is shown."""
    handles = store().handles(sorted({o for o in owners if isinstance(o, str)}))
    me = user()
    return lambda owner, check=False: owner_name(owner, me, check, handles)


def remember_in_cookie() -> None:
    """Set the cookie when the browser does not have this key yet (a second tab then finds the same user)."""
    key = user()
    if st.context.cookies.get(USER_COOKIE) != key:
        st.html(f"<script>document.cookie = '{USER_COOKIE}={key}; path=/; max-age=31536000; SameSite=Lax';</script>",
                unsafe_allow_javascript=True)


def _set_cookie(name: str, value: str, max_age: int) -> None:
    st.html(f"<script>document.cookie = '{name}={value}; path=/; max-age={max_age}; SameSite=Strict';</script>",
            unsafe_allow_javascript=True)


# --- the teacher -----------------------------------------------------------------------------------
# The rules (throttle, log, sessions) are babygpt.server.admin_guard's; here only where the session secret is kept:
# this session's state, else the cookie a signed-in browser sends back after a reload.

def admin_secret() -> str | None:
    """This browser's teacher session secret: the session's (None once it signed out), else the cookie's."""
    if ADMIN in st.session_state:
        return st.session_state[ADMIN]
    sent = st.context.cookies.get(ADMIN_COOKIE)
    return sent if isinstance(sent, str) else None


def client_address() -> str | None:
    """The IP address this browser's connection comes from (None: the server machine itself, as Streamlit reports a
    loopback connection); the admin guard throttles wrong tokens by it, since an address costs more than a key."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else None


def actor() -> Actor:
    return Actor(user(), admin=admin_guard().is_admin(user(), admin_secret()))


def sign_in() -> None:
    """The token box's on_change: sign in once with what was typed, then forget the token (it never stays in the
    session, so a rerun does not send it again as another guess)."""
    token = st.session_state.get(TOKEN_INPUT, "")
    st.session_state[TOKEN_INPUT] = ""
    page_flags()[SIGN_IN_ERROR] = None
    if not token:
        return
    try:
        st.session_state[ADMIN] = admin_guard().sign_in(user(), token, client_address())
    except BabyGPTError as exc:
        page_flags()[SIGN_IN_ERROR] = str(exc)


def sign_out() -> None:
    admin_guard().sign_out(admin_secret())
    st.session_state[ADMIN] = None


def sign_out_everywhere() -> None:
    admin_guard().sign_out_everywhere()
    st.session_state[ADMIN] = None


def remember_admin_in_cookie() -> None:
    """Keep the teacher's session secret in a cookie (a reload then finds it), or drop the cookie after sign-out."""
    secret, sent = st.session_state.get(ADMIN), st.context.cookies.get(ADMIN_COOKIE)
    sent = sent if isinstance(sent, str) else None
    if secret and sent != secret:
        _set_cookie(ADMIN_COOKIE, secret, int(SESSION_S))
    elif ADMIN in st.session_state and not secret and sent:
        _set_cookie(ADMIN_COOKIE, "", 0)


def until_text(ends: float, now: float | None = None) -> str:
    """When a session ends: its time, with its day when that is not today (a session can outlast midnight)."""
    end, today = time.localtime(ends), time.localtime(time.time() if now is None else now)
    if end[:3] == today[:3]:
        return time.strftime("%H:%M", end)
    return time.strftime("%H:%M on %a %d %b", end)


def teacher_box() -> None:
    """The sidebar's Teacher box: the token, or once signed in, the session and the log of wrong tokens."""
    guard = admin_guard()
    ends = guard.session_ends(user(), admin_secret())
    if ends is None:
        st.text_input("Admin token", type="password", key=TOKEN_INPUT, on_change=sign_in,
                      help="For the teacher: the token the teacher started the server with. It lets you stop or "
                           "delete any run; this browser then stays signed in across reloads until you sign out.")
        if page_flags().get(SIGN_IN_ERROR):
            st.error(markdown_literal(page_flags()[SIGN_IN_ERROR]))
    else:
        st.caption("Admin: you can stop and delete every run.")
        st.caption(f"Signed in on this browser until {until_text(ends)}; "
                   "a reload keeps you signed in.")
        c1, c2 = st.columns(2)
        c1.button("Sign out", key="admin_sign_out", on_click=sign_out, width="stretch")
        c2.button("Sign out all", key="admin_sign_out_all", on_click=sign_out_everywhere,
                  width="stretch", help="Sign out every browser: ends every teacher session on this server (a "
                                        "browser you signed in on and left).")
        failed = guard.failed_attempts()
        if failed:
            st.caption("Wrong admin tokens since the server started, by network address:")
            for attempt in failed:
                st.caption(markdown_literal(attempt.sentence()))
        else:
            st.caption("No wrong admin token since the server started.")
    remember_admin_in_cookie()
