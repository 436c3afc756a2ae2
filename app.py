"""Baby GPT explorer: train a small GPT on your own text, watch it learn, look inside."""

import streamlit as st

from babygpt.devices import auto_dtype, available_devices
from ui import state
from ui.widgets import format_duration

st.set_page_config(page_title="Baby GPT", page_icon=":material/child_care:", layout="wide")

pages = st.navigation([
    st.Page("pages/data.py", title="Data", icon=":material/description:", default=True),
    st.Page("pages/train.py", title="Model & training", icon=":material/model_training:"),
    st.Page("pages/attention.py", title="Attention", icon=":material/visibility:"),
    st.Page("pages/generate.py", title="Generate", icon=":material/edit_note:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:"),
    st.Page("pages/lessons.py", title="Lessons", icon=":material/school:"),
])


@st.fragment(run_every=1.0 if state.registry().active() else None)
def sidebar_status() -> None:
    jobs = state.registry().active()
    active = state.active_run_id()
    st.caption(f"**Active run:** `{active}`" if active else "**Active run:** none yet")
    if not jobs:
        st.caption("No training in progress.")
    for job in jobs:
        snap = job.snapshot()
        mine = " (yours)" if snap.owner == state.owner() else ""
        st.progress(snap.progress, text=f"Job {snap.id}{mine}: step {snap.step}/{snap.max_iters} · "
                                        f"{snap.tokens_per_sec:,.0f} tok/s · ETA {format_duration(snap.eta_s)}")


with st.sidebar:
    sidebar_status()
    st.caption(f"**Devices:** {', '.join(available_devices())} · auto precision "
               f"{auto_dtype()} · job limit {state.registry().max_jobs}")
    st.toggle("Presenter mode", key="presenter_toggle", value=state.presenter(),
              on_change=lambda: st.session_state.update({state.PRESENTER: st.session_state["presenter_toggle"]}),
              help="Larger fonts and charts for a projector; advanced controls are hidden.")

if state.presenter():
    st.markdown("<style>html, body, [class*='st-'] {font-size: 1.25rem;} "
                "h1 {font-size: 3rem !important;} .js-plotly-plot {zoom: 1.15;}</style>", unsafe_allow_html=True)

pages.run()
