"""Small view helpers used by several pages."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from babygpt.config import Setting
from babygpt.errors import BabyGPTError
from babygpt.plain_text import markdown_literal, visible_controls
from babygpt.server.progress import JobSnapshot
from babygpt.status import RunStatus
from babygpt.store.runs import LoadedRun
from babygpt.text.tokenizers import Tokenizer, whole_words_prefix
from babygpt.units import format_duration
from ui import choices, identity, run_cache

# Labels, metric values and button captions wrap instead of being cut with an ellipsis, on every screen.
WRAP_CSS = """<style>
[data-testid="stMetricLabel"] *, [data-testid="stMetricValue"] *, [data-testid="stMetricValue"],
.stButton button p, .stDownloadButton button p {white-space: normal !important; overflow-wrap: anywhere;
  text-overflow: clip !important; overflow: visible !important;}
[data-testid="stMetricValue"] {font-size: 1.9rem;}
</style>"""
# Presenter mode scales every rem-sized element (titles included) by 1.25. Charts are left to plotly: it places
# legend items and labels by the font size it knows, so text enlarged behind its back overlapped and was cut
# (their text is 14 px everywhere, set in babygpt.figures.viz, large enough for a projector).
PRESENTER_CSS = """<style>
html {font-size: 20px;}
</style>"""

# Every chart's menu saves it as PNG (plotly's camera, at twice the size, named after the chart's title) and as SVG
# (a second button beside it that asks plotly's own download for SVG), offline: plotly draws both in the browser.
# Added to each chart as it appears; once per browser page, however often the script is sent.
CHART_MENU_JS = """<script>
(() => {
  if (window.__babygptChartMenu) return;
  window.__babygptChartMenu = true;
  // a title's text as shown: its tags dropped, then its entities decoded (a textarea never makes elements)
  const shown = title => {
    const box = document.createElement('textarea');
    box.innerHTML = title.replace(/<[^>]*>/g, '');
    return box.value;
  };
  const slug = gd => shown(((gd.layout && gd.layout.title && (gd.layout.title.text || gd.layout.title)) || 'chart')
    .toString()).replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'chart';
  const equip = gd => {
    const ctx = gd._context;
    const camera = gd.querySelector('.modebar-btn[data-attr="toImage"], .modebar-btn[data-title^="Download plot"]');
    if (!ctx || !camera || gd.querySelector('.modebar-btn[data-babygpt="svg"]')) return;
    const options = ctx.toImageButtonOptions = ctx.toImageButtonOptions || {};
    options.format = 'png'; options.scale = 2; options.filename = slug(gd);
    camera.setAttribute('data-title', 'Download as PNG');
    const svg = camera.cloneNode(true);
    svg.setAttribute('data-babygpt', 'svg');
    svg.setAttribute('data-title', 'Download as SVG');
    svg.addEventListener('click', event => {
      event.preventDefault(); event.stopPropagation();
      options.format = 'svg'; options.scale = 1; options.filename = slug(gd);
      camera.click();
      options.format = 'png'; options.scale = 2;
    });
    camera.parentNode.insertBefore(svg, camera.nextSibling);
  };
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; document.querySelectorAll('.js-plotly-plot').forEach(equip); });
  }).observe(document.body, {childList: true, subtree: true});
})();
</script>"""


def chart_menu() -> None:
    """Give every chart of the page its PNG and SVG downloads (see CHART_MENU_JS)."""
    st.html(CHART_MENU_JS, unsafe_allow_javascript=True)


def run_label(row: dict, name: Callable[[str | None, bool], str] | None = None) -> str:
    """A run in a picker: an imported run says so instead of a step count it does not have; its owner by the name
    the Class board shows (``name``: ``identity.owner_names``)."""
    name = name or identity.owner_names([row["owner"]])
    mine = row["owner"] == identity.user() and not row.get("check", False)
    who = "" if mine else f" · {name(row['owner'], row.get('check', False))}"
    loss = f" · best val {row['best_val_loss']:.3f}" if row["best_val_loss"] is not None else ""
    trained = "imported" if row.get("imported") else f"{row['steps']:,} steps"
    return visible_controls(f"{row['label']} · {row['preset']} · {trained}{loss}{who}")  # shown to classmates


def _is_own(row: dict) -> bool:
    """A run of this user's own (a teacher's check of it is the teacher's, not theirs)."""
    return row["owner"] == identity.user() and not row.get("check", False)


def picker_default(rows: list[dict], active: str | None) -> int:
    """Where a run picker starts: the active run, else the user's own newest run, else the first run (which is then
    only looked at: a picker never makes a classmate's run the active run by itself)."""
    ids = [r["id"] for r in rows]
    if active in ids:
        return ids.index(active)
    return next((i for i, row in enumerate(rows) if _is_own(row)), 0)


def run_picker(key: str) -> LoadedRun | None:
    """Choose a trained run: the active one, else the user's own newest. Picking one's own run makes it the active
    run; a classmate's run is only looked at until the user presses Make active, so opening a page never hands
    Model & training someone else's run. Shows guidance when there is none."""
    runs = run_cache.runs_with_weights()
    if not runs:
        st.info("No trained run yet. Train one on **Model & training** (a minute on a laptop), "
                "or import one on **Runs**.")
        return None
    ids = [r["id"] for r in runs]
    by_id = {r["id"]: r for r in runs}
    name = identity.owner_names([r["owner"] for r in runs])
    labels = {r["id"]: run_label(r, name) for r in runs}
    active = choices.active_run_id()
    if active not in ids and not any(_is_own(r) for r in runs):
        st.info("You have no trained run of your own yet: train one on **Model & training**. Meanwhile you can "
                "look at a classmate's run here; it becomes your active run only if you press **Make active**.")
    run_id = st.selectbox("Run", ids, index=picker_default(runs, active), format_func=labels.get, key=key,
                          help="Which trained model to look at. Your newest run is chosen by default; "
                               "classmates' runs follow yours.")
    if _is_own(by_id[run_id]):
        choices.set_active_run(run_id)
    elif run_id != active and st.button("Make active", key=f"{key}_make_active",
                                        help="Make this run your active run: Model & training then follows it."):
        choices.set_active_run(run_id)
    try:
        return run_cache.load_run(run_id)
    except BabyGPTError as exc:
        st.error(markdown_literal(exc))
        return None


FALLBACK_PROMPT = "The cat sat on the mat, and the dog"


def default_prompt(loaded: LoadedRun, n_chars: int = 32) -> str:
    """A prompt the run can encode: the start of its own corpus when that is loaded, else an English sentence when
    its tokenizer reads it (a byte-level BPE, an imported GPT-2: their first token is "!", one lone square on
    Attention), else its first token (a char vocabulary without those letters)."""
    corpus = choices.corpus()
    if loaded.info.data_sha256 == corpus.sha256:
        return loaded.tokenizer.decode(loaded.tokenizer.encode(whole_words_prefix(corpus.text, n_chars)))
    return fallback_prompt(loaded.tokenizer)


def fallback_prompt(tokenizer: Tokenizer) -> str:
    """``default_prompt`` without the run's text: the English sentence if the tokenizer reads it back, else its
    first token."""
    try:
        if tokenizer.decode(tokenizer.encode(FALLBACK_PROMPT)) == FALLBACK_PROMPT:
            return FALLBACK_PROMPT
    except (BabyGPTError, KeyError, ValueError):  # a letter the vocabulary does not have
        pass
    return tokenizer.token_text(0)


def explain(title: str, body: str, formula: str | None = None) -> None:
    """A collapsible explanation of the step a page shows, for students."""
    with st.expander(f":material/school: {title}", expanded=False):
        st.markdown(body)
        if formula:
            st.latex(formula)


STATUS_WORDS = {RunStatus.QUEUED: "Queued", RunStatus.STARTING: "Starting", RunStatus.RUNNING: "Training",
                RunStatus.STOPPING: "Stopping…", RunStatus.DONE: "Finished", RunStatus.STOPPED: "Stopped",
                RunStatus.FAILED: "Failed", RunStatus.INTERRUPTED: "Interrupted"}


def step_fraction(step: int, total: int) -> str:
    """"2,235/3,000": a run's step of its steps, written one way wherever it is shown (sidebar, Class table)."""
    return f"{step:,}/{total:,}"


def progress_text(snap: JobSnapshot) -> str:
    """One line for a progress bar: a queue position, or the step with speed and ETA while it trains."""
    status = STATUS_WORDS.get(snap.status, snap.status)
    if snap.status is RunStatus.QUEUED:
        wait = f" · starts in about {format_duration(snap.queue_wait_s)}" if snap.queue_wait_s is not None else ""
        return f"{status}: position {snap.queue_position or '?'} in the queue{wait}"
    text = f"{status}: step {step_fraction(snap.step, snap.max_iters)}"
    if snap.training:
        speed = f"{snap.tokens_per_sec:,.0f}" if snap.tokens_per_sec else "–"  # – until babygpt.pace can measure it
        text += f" · {speed} tokens/s · ETA {format_duration(snap.eta_s)}"
    return text


def setting_input(setting: Setting, value, options: tuple | None = None, fixed: bool = False):
    """The widget of one setting, from its entry in ``babygpt.config.SETTINGS``; returns what the user chose.

    Free numbers are number inputs *without* browser-side bounds: a value out of range then reaches the page,
    which names it and blocks Start (``Setting.problem``), instead of the browser keeping the old value silently.
    ``fixed``: the preset sets it (``value``, the only option): shown, switched off, under a key of its own so the
    user's own choice waits for the next preset that offers it.
    """
    key, label, help_text = f"hp_{setting.name}{'_fixed' if fixed else ''}", setting.title, setting.help
    choices = (value,) if fixed else options or setting.choices
    if choices:
        choices = list(choices)
        index = choices.index(value) if value in choices else 0
        if all(isinstance(c, str) for c in choices):
            if len(choices) <= 3:
                return st.radio(label, choices, index=index, horizontal=True, key=key, help=help_text, disabled=fixed)
            return st.selectbox(label, choices, index=index, key=key, help=help_text, disabled=fixed)
        return st.select_slider(label, choices, choices[index], key=key, help=help_text, disabled=fixed)
    if setting.step is not None and setting.low is not None and setting.high is not None and \
            (setting.high - setting.low) / setting.step <= 200:
        return st.slider(label, setting.kind(setting.low), setting.kind(setting.high), setting.kind(value),
                         setting.kind(setting.step), key=key, help=help_text)
    # rates in powers of ten; a loss to stop at to the third decimal, so 0.004 is not shown as 0.00 ("off")
    rate = setting.name in ("lr", "min_lr", "muon_lr")
    number_format = "%.0e" if rate else "%.3f" if setting.name == "until_val_loss" else None
    step = setting.kind(setting.step) if setting.step is not None else None
    return st.number_input(label, value=setting.kind(value), step=step, format=number_format, key=key, help=help_text)
