"""The Class page's experiment: the teacher's grid of runs, a student's Join that hands them one, the points as they
train, each rung's scaling law with every finished run on it, the model ten times larger with its prediction, and
the law to download as CSV and SVG. The rules are ``babygpt.server.laboratory``'s (and the orchestration and
lessons modules it names); this module reads the widgets and draws."""

from __future__ import annotations

import time

import streamlit as st

from babygpt.config import PRESETS
from babygpt.errors import BabyGPTError
from babygpt.figures.scaling_figures import law_figure, law_svg
from babygpt.orchestration.challenge import tokenizer_phrase
from babygpt.orchestration.experiment import (
    AXES,
    DEFAULT_SEEDS,
    DEFAULT_SIZES,
    PARAMETERS,
    UNIT,
    law_notes,
    law_plot,
    parse_seeds,
    parse_sizes,
    results_csv,
    sizes_text,
    switch_sentence,
)
from babygpt.plain_text import html_literal, markdown_literal
from babygpt.server.laboratory import ALL_TAKEN, ExperimentView, PointRow
from babygpt.units import format_count
from ui import choices, identity, state

ERROR = "experiment_error"
REFRESH_S = 3.0  # while a point is queued or training: a run's steps, and the law as each run finishes
STATE_WORDS = {"open": "waiting for a student", "claiming": "being queued", "given up": "given up"}
TABLE_CSS = """<style>
table.experiment {width: 100%; border-collapse: collapse; font-size: 0.8rem;}
table.experiment th, table.experiment td {padding: 3px 6px; text-align: left; overflow-wrap: anywhere;
  border-bottom: 1px solid rgba(128,128,128,0.25);}
table.experiment td.num {text-align: right; white-space: nowrap;}
table.experiment tr.you td {background: rgba(37, 99, 235, 0.10); font-weight: 600;}
</style>"""


def act(action) -> None:
    """A button's action; a refusal is shown above the experiment until the next press."""
    flags = state.page_flags()
    flags[ERROR] = None
    try:
        result = action()
        if isinstance(result, str):
            st.toast(markdown_literal(result))
    except BabyGPTError as exc:
        flags[ERROR] = str(exc)


def step_words(row: PointRow) -> str:
    if row.state.value in STATE_WORDS:
        return STATE_WORDS[row.state.value]
    if row.state.value in ("queued", "done"):
        return row.state.value if row.state.value == "queued" else f"done, {row.max_iters:,} steps"
    return f"step {row.step:,} / {row.max_iters:,}"


def points_table(view: ExperimentView, me: str) -> str:
    """Every point: whose run, where it stands, its loss, what happened to its runs that died (names as text)."""
    head = "".join(f"<th>{t}</th>" for t in ("Run", "Who", "Where it stands", f"Val {UNIT}", "Runs died"))
    body = []
    for r in view.rows:
        what = f"{r.point.preset} {r.point.shape} · seed {r.point.seed}" + (" · ten times larger" if
                                                                           r.is_prediction else "")
        who = r.who + (" (you)" if r.owner is not None and r.owner == me else "")
        died = "; ".join(r.lost) or "–"
        loss = "–" if r.loss is None else f"{r.loss:.3f}"
        body.append(f'<tr class="{"you" if r.owner == me and r.owner else ""}"><td>{html_literal(what)}</td>'
                    f"<td>{html_literal(who)}</td><td>{html_literal(step_words(r))}</td>"
                    f'<td class="num">{loss}</td><td>{html_literal(died)}</td></tr>')
    return f'{TABLE_CSS}<table class="experiment"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def my_run(view: ExperimentView) -> None:
    """The viewer's own point: Join when they have none, else their run training, step by step."""
    lab, me = state.laboratory(), identity.user()
    mine = lab.run_of(me)
    free = mine is None or mine.state.value in ("done", "given up")
    if view.record.ended_at is None and free and not view.open_points:  # said now, not after a press that fails
        st.caption(ALL_TAKEN)
    elif view.record.ended_at is None and free:
        st.button("Join: train one run of the experiment", key="experiment_join", type="primary",
                  help="You get the next run nobody has taken: it trains on the server as your run (follow it "
                       "here or on Model & training), and its loss joins the law when it finishes.",
                  on_click=act, args=(lambda: f"You train {lab.join(me).name}.",))
    if mine is not None:
        loss = "" if mine.loss is None else f" · val {mine.loss:.3f} {UNIT}"
        st.markdown(f"**Your run:** {markdown_literal(mine.point.preset)} {markdown_literal(mine.point.shape)} · "
                    f"seed {mine.point.seed} — {markdown_literal(step_words(mine))}{loss}")


def law_section(view: ExperimentView) -> None:
    plot = law_plot(view.spec, view.results, view.arms, view.checks)
    notes = law_notes(view.spec, view.arms, view.checks)
    if view.results:
        st.plotly_chart(law_figure(plot), key="experiment_law")
    for note in notes:
        st.caption(markdown_literal(note))
    stamp = time.strftime("%Y%m%d-%H%M", time.localtime(view.record.created_at))
    c1, c2 = st.columns(2)
    c1.download_button("Download the experiment (CSV)", results_csv(view.spec, view.results, view.arms, view.checks),
                       f"experiment-{stamp}.csv", "text/csv", key="experiment_csv", width="stretch")
    c2.download_button("Download the law (picture, SVG)", law_svg(plot, notes), f"experiment-{stamp}.svg",
                       "image/svg+xml", key="experiment_svg", width="stretch")


def teacher_controls(view: ExperimentView | None) -> None:
    actor = identity.actor()
    if not actor.admin:
        return
    lab = state.laboratory()
    if view is None or view.record.ended_at is not None:
        with st.expander("Start an experiment", expanded=view is None):
            start_form()
        return
    c1, c2, c3 = st.columns(3)
    c1.button("Queue the rest on the server", key="experiment_queue_rest", width="stretch",
              help="Every run no student has taken trains on the server (behind students' own runs), and so does "
                   "every run that dies from now on.",
              on_click=act, args=(lambda: f"Queued {lab.queue_rest(actor)} run(s) on the server.",))
    c2.button("Run the model ten times larger", key="experiment_test", width="stretch",
              help="Queues a model of about ten times the largest one's parameters, with what the law predicts "
                   "for it now, frozen before it trains.",
              on_click=act, args=(lambda: f"Queued {lab.test_larger(actor).name()}.",))
    with c3.popover("End the experiment", width="stretch"):
        st.caption("No more runs are handed out or re-queued; those queued or training finish and join the law.")
        st.button("End it now", key="experiment_end", type="primary",
                  on_click=act, args=(lambda: (lab.end(actor), "Experiment ended.")[1],))


def teachers_tokenizer() -> str:
    """The tokenizer a challenge or an experiment set now fixes, with its size: "bpe, 2,048 tokens, GPT-4 split"."""
    kind, bpe = choices.tokenizer_kind(), choices.bpe_for(choices.tokenizer_kind())
    if bpe is not None:  # the size asked: stated before anything is learned (Set learns it, as the Data page did)
        return tokenizer_phrase(kind, bpe.vocab_size, bpe.split)
    return tokenizer_phrase(kind, choices.current_tokenizer().vocab_size)


def start_form() -> None:
    corpus = choices.corpus()
    st.markdown(f"On your current text **{markdown_literal(corpus.name)}**, tokenizer "
                f"{markdown_literal(teachers_tokenizer())}, last {choices.val_fraction():.0%} held out (change "
                "them on the Data page).")
    rungs = [p for p in PRESETS if p != "bigram"]
    c1, c2 = st.columns(2)
    first = c1.selectbox("Rung", rungs, index=rungs.index("gpt"), key="exp_rung")
    second = c2.selectbox("Against (a switch on and off)", ["–", *[r for r in rungs if r != first]],
                          key="exp_rung_b", help="A second rung trained at the same sizes and seeds: one law each.")
    sizes = st.text_input("Sizes (layers × heads × width)", sizes_text(DEFAULT_SIZES), key="exp_sizes",
                          help="The default: five sizes spanning about 30× in the blocks' parameters.")
    seeds = st.text_input("Seeds", ", ".join(map(str, DEFAULT_SEEDS)), key="exp_seeds")
    c1, c2, c3, c4 = st.columns(4)
    steps = c1.number_input("Steps", min_value=1, value=500, key="exp_steps")
    batch = c2.number_input("Batch", min_value=1, value=12, key="exp_batch")
    block = c3.number_input("Block", min_value=2, value=64, key="exp_block")
    lr = c4.number_input("Learning rate", min_value=1e-5, max_value=1.0, value=3e-3, format="%g", key="exp_lr")
    axis = st.radio("Loss against", list(AXES), format_func=AXES.get, horizontal=True, key="exp_axis")
    on_server = st.toggle("Queue every run on the server now (else students take them as they join)",
                          key="exp_on_server")

    def start() -> str:
        presets = (first,) if second == "–" else (first, second)
        record = state.laboratory().start(
            identity.actor(), corpus, choices.tokenizer_kind(), presets, parse_sizes(sizes), parse_seeds(seeds),
            int(steps), int(batch), int(block), float(lr), choices.val_fraction(), axis or PARAMETERS, on_server,
            choices.bpe_for(choices.tokenizer_kind()))
        return f"Experiment started: {len(state.laboratory().records.points(record.id))} runs."

    st.button("Start the experiment", type="primary", key="experiment_start", on_click=act, args=(start,))


def experiment_section() -> None:
    """The page's Experiment section, after the challenge."""
    lab = state.laboratory()
    st.subheader("Experiment")
    if state.page_flags().get(ERROR):
        st.error(markdown_literal(state.page_flags()[ERROR]))
    view = lab.view()
    teacher_controls(view)
    if view is None:
        st.caption("No experiment yet. The teacher starts one here: models of several sizes (or one switch on and "
                   "off) × seeds, each run trained by a student who joins or on the server, and a scaling law "
                   "fitted to them as they finish.")
        return
    busy = any(r.state.value in ("queued", "training", "claiming") for r in view.rows)

    @st.fragment(run_every=REFRESH_S if busy else None)
    def live() -> None:
        current = lab.view()
        if current is None:
            return
        ended = " · **Ended**" if current.record.ended_at else ""
        st.markdown(markdown_literal(current.spec.sentence()) + ended)
        lesson = switch_sentence(current.spec)
        if lesson:
            st.caption(markdown_literal(f"{current.spec.presets[1]}: {lesson}"))
        counts = current.counts()
        st.caption(" · ".join(f"{n} {markdown_literal(STATE_WORDS.get(k, k))}" for k, n in counts.items()) +
                   f" · {format_count(len(current.rows))} runs in all")
        my_run(current)
        st.html(points_table(current, identity.user()))
        law_section(current)
        if any(r.state.value in ("queued", "training", "claiming") for r in current.rows) != busy:
            st.rerun()

    live()
