"""Who this browser is. A reload or a new tab is a new Streamlit session with an empty ``session_state``, so the
user comes from what the browser sends back: the ``user`` key in the URL (re-set on every run, because Streamlit
drops query parameters on a page switch) or the ``babygpt_user`` cookie (for a second tab)."""

from __future__ import annotations

import streamlit as st

from babygpt.server.users import Actor, admin_token_matches, is_user_key, new_user_key
from ui.state import ADMIN, USER, USER_COOKIE, USER_PARAM


def identify() -> str:
    """This browser's key: the session's, else the URL's, else the cookie's, else a new one; kept in the URL."""
    key = st.session_state.get(USER)
    if key is None:
        candidates = (st.query_params.get(USER_PARAM), st.context.cookies.get(USER_COOKIE))
        key = next((c for c in candidates if is_user_key(c)), None) or new_user_key()
        st.session_state[USER] = key
    if st.query_params.get(USER_PARAM) != key:
        st.query_params[USER_PARAM] = key
    return key


def user() -> str:
    """This browser's key."""
    return st.session_state[USER] if USER in st.session_state else identify()


def remember_in_cookie() -> None:
    """Set the cookie when the browser does not have this key yet (a second tab then finds the same user)."""
    key = user()
    if st.context.cookies.get(USER_COOKIE) != key:
        st.html(f"<script>document.cookie = '{USER_COOKIE}={key}; path=/; max-age=31536000; SameSite=Lax';</script>",
                unsafe_allow_javascript=True)


def actor() -> Actor:
    return Actor(user(), admin=bool(st.session_state.get(ADMIN)))


def try_admin(token: str) -> bool:
    st.session_state[ADMIN] = admin_token_matches(token)
    return st.session_state[ADMIN]
