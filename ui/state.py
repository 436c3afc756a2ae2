"""Session keys in one place and the resources every session shares.

The scheduler lives in ``st.cache_resource``: one per server process, so a reload, a page switch or a second tab
finds the same jobs. The rest of the app's glue is split by job: who the browser is (``identity``), what the user
chose and how it outlives a reload (``choices``), the per-text caches (``corpora``), and the per-run caches
(``run_cache``).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from babygpt.server.admin_guard import AdminGuard
from babygpt.server.classroom import Classroom
from babygpt.server.laboratory import Laboratory
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore

USER_PARAM, USER_COOKIE = "user", "babygpt_user"
ADMIN_COOKIE = "babygpt_teacher"  # the teacher's session secret (babygpt.server.admin_guard), never in the URL
# lasting per-user choices (saved to the run store), then per-session keys
CORPUS, TOKENIZER, VAL_FRACTION, RUN, PRESENTER, HPARAMS, RACE = (
    "corpus", "tokenizer_kind", "val_fraction", "active_run", "presenter", "hparams", "race_group")
USER, ADMIN, SAVED, RESTORED = "user_key", "admin", "_saved_user_state", "_restored"  # ADMIN: the session secret
CHALLENGE_ENTRY = "challenge_entry"  # the training page starts runs for the open challenge
LESSON_TAB = "lesson_tab"  # the Lessons tab a link asked to open on
PAGE_FLAGS = "page_flags"  # what pages keep between runs (an error to show, a prompt, a result) under one key


@st.cache_resource
def scheduler() -> Scheduler:
    return Scheduler(RunStore(), SchedulerSettings.from_env())


@st.cache_resource
def classroom() -> Classroom:
    """The class board and the teacher's controls: one per server, so every viewer shares its board."""
    return Classroom(scheduler())


@st.cache_resource
def laboratory() -> Laboratory:
    """The class experiment and its board: one per server, like the class board."""
    return Laboratory(scheduler())


@st.cache_resource
def admin_guard() -> AdminGuard:
    """The teacher's sign-in, its throttle and its log of wrong tokens: one per server, shared by every browser."""
    return AdminGuard()


def store() -> RunStore:
    return scheduler().store


def page_flags() -> dict[str, Any]:
    return st.session_state.setdefault(PAGE_FLAGS, {})
