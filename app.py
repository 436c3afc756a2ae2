"""Baby GPT explorer: train a small GPT on your own text, watch it learn, look inside."""

from pathlib import Path

# Imported here, once, before any session's thread: plotly and Streamlit import pandas lazily, and two students'
# first charts drawn at the same moment could each find the other's half-imported module ("partially initialized
# module 'pandas' has no attribute 'Series'"), a traceback on one of their screens.
import pandas  # noqa: F401
import plotly.graph_objects  # noqa: F401
import streamlit as st

from babygpt.errors import BabyGPTError, DiskFull
from babygpt.plain_text import markdown_literal
from babygpt.server.settings import admin_token
from babygpt.training.devices import auto_dtype, available_devices
from ui import choices, identity, state
from ui.widgets import PRESENTER_CSS, WRAP_CSS, chart_menu, progress_text

# a file served by this server: an emoji or :material: icon makes the browser fetch it from another host
FAVICON = Path(__file__).parent / "ui" / "favicon.png"

st.set_page_config(page_title="Baby GPT", page_icon=str(FAVICON), layout="wide")
try:
    state.scheduler()  # built once per server; not cached when it fails, so a reload tries again
except BabyGPTError as exc:  # a BABYGPT_* setting is wrong, or the cluster it names does not answer
    st.error(f"The server cannot start its training jobs: {exc}")
    st.stop()
choices.begin_session()  # who this browser is; the first run of a session restores the user's choices

pages = st.navigation([
    st.Page("views/data.py", title="Data", icon=":material/description:", default=True),
    st.Page("views/train.py", title="Model & training", icon=":material/model_training:"),
    st.Page("views/attention.py", title="Attention", icon=":material/visibility:"),
    st.Page("views/inside.py", title="Inside", icon=":material/neurology:"),
    st.Page("views/features.py", title="Features", icon=":material/scatter_plot:"),
    st.Page("views/generate.py", title="Generate", icon=":material/edit_note:"),
    st.Page("views/runs.py", title="Runs", icon=":material/folder_open:"),
    st.Page("views/lessons.py", title="Lessons", icon=":material/school:"),
    st.Page("views/class_board.py", title="Class", icon=":material/groups:", url_path="class"),
])


def busy() -> bool:
    return bool(state.scheduler().running() or state.store().queued())


@st.fragment(run_every=2.0 if busy() else None)  # the server's jobs at a glance
def sidebar_status() -> None:
    scheduler = state.scheduler()
    active = choices.active_run_id()
    st.caption(f"**Active run:** {markdown_literal(active)}" if active else "**Active run:** none yet")
    jobs = scheduler.running()
    if not jobs:
        st.caption("No training in progress.")
    snaps = [scheduler.snapshot(job.run_id) for job in jobs]
    name = identity.owner_names([s.owner for s in snaps])  # the names the Class board shows
    for snap in snaps:
        check = bool(state.store().get(snap.run_id).check_of)  # the teacher's check: no owner, not the command line
        who = "yours" if snap.owner == identity.user() and not check else name(snap.owner, check)
        st.progress(snap.progress, text=f"{markdown_literal(snap.label)} ({markdown_literal(who)}): "
                                        f"{progress_text(snap)}")
    waiting = len(state.store().queued())
    if waiting:
        st.caption(f"{waiting} job(s) waiting in the queue.")


with st.sidebar:
    sidebar_status()
    st.caption(f"**Devices:** {', '.join(available_devices())} · auto precision {auto_dtype()} · "
               f"{state.scheduler().backend.describe()}")
    st.toggle("Presenter mode", key="presenter_toggle", value=choices.presenter(),
              on_change=lambda: st.session_state.update({state.PRESENTER: st.session_state["presenter_toggle"]}),
              help="Larger text for a projector; advanced controls are hidden.")
    if admin_token():
        with st.expander("Teacher", expanded=False):
            identity.teacher_box()
    identity.remember_in_cookie()
    chart_menu()

st.markdown(WRAP_CSS + (PRESENTER_CSS if choices.presenter() else ""), unsafe_allow_html=True)
identity.link_identity_notice()  # a link that carried another browser's key: still yourself, unless you switch
for problem in state.page_flags().pop("link_problems", []):
    st.warning(markdown_literal(problem))  # a link's bad value, quoted

try:
    pages.run()
    choices.save()
except DiskFull as exc:  # every page saves the user's choices: a full disk is one sentence, not a traceback
    st.error(markdown_literal(exc))
