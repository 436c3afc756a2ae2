"""Class: the live board of this lesson's runs, the challenge with its ranks, and the teacher's controls.

The page reads top to bottom at the end of this file; each section is a function above it. Everything it shows and
does comes from ``babygpt.server.classroom`` (shared by every viewer, computed once a second for all of them)."""

import html
import time
from datetime import datetime

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.viz import runs_overlay_figure
from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE
from babygpt.orchestration.challenge import ChallengeRules
from babygpt.plain_text import html_literal, markdown_literal
from babygpt.scoring.leaderboard import (
    BEST_OF_EACH,
    BITS_PER_BYTE,
    ENTRY_RULES,
    Board,
    Entry,
    board_csv,
    board_svg,
    entry_rule_sentence,
)
from babygpt.server.classroom import BoardRow, board_order
from babygpt.status import RunStatus
from babygpt.units import format_duration
from ui import choices, identity, state
from ui.experiment_section import experiment_section, teachers_tokenizer
from ui.widgets import STATUS_WORDS, step_fraction

# The board refreshes at the live training page's budget (see views/train.py: the progress line every 2 s, the
# curve every 5 s), while any run is queued or training; otherwise every 10 s, to notice a run starting.
TABLE_REFRESH_S, CHART_REFRESH_S, IDLE_REFRESH_S = 2.0, 5.0, 10.0
ERROR_KEY = "class_error"
LEGEND_MAX = 12  # more runs than this: the chart names them on hover only, the table names them all

BOARD_CSS = """<style>
table.class-board {width: 100%; table-layout: auto; border-collapse: collapse; font-size: 0.8rem;}
table.class-board th, table.class-board td {padding: 3px 6px; vertical-align: top; text-align: left;
  overflow-wrap: anywhere; word-break: break-word; border-bottom: 1px solid rgba(128,128,128,0.25);}
table.class-board th {overflow-wrap: normal; word-break: normal; hyphens: manual;}
table.class-board td.num, table.class-board th.num {text-align: right; white-space: nowrap; overflow-wrap: normal;
  word-break: normal;}
table.class-board tr.you td {background: rgba(37, 99, 235, 0.10); font-weight: 600;}
table.class-board td.said {font-family: monospace;}
</style>"""


def act(action) -> None:
    """A button's action; what it refuses is shown on the page until the next action."""
    flags = state.page_flags()
    flags[ERROR_KEY] = None
    try:
        result = action()
        if isinstance(result, str):
            st.toast(result)
    except BabyGPTError as exc:
        flags[ERROR_KEY] = str(exc)


def table_html(columns: list[tuple[str, str, bool]], rows: list[tuple[str, list[str]]]) -> str:
    """A table whose cells wrap instead of being cut: ``columns`` as (title, width, numeric), ``rows`` as (css class,
    cells already escaped)."""
    cols = "".join(f'<col style="width:{w}">' for _, w, _ in columns)
    head = "".join(f'<th class="{"num" if n else ""}">{t}</th>' for t, _, n in columns)
    body = "".join(f'<tr class="{cls}">' + "".join(
        f'<td class="{"num" if columns[i][2] else ""}{" said" if columns[i][0] == "Last line" else ""}">{c}</td>'
        for i, c in enumerate(cells)) + "</tr>" for cls, cells in rows)
    return f'{BOARD_CSS}<table class="class-board"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>' \
           f"<tbody>{body}</tbody></table>"


# --- the board ---------------------------------------------------------------------------------

BOARD_COLUMNS = [("Who", "13%", False), ("Model", "14%", False), ("Step", "12%", True), ("Val bits/byte", "8%", True),
                 ("Tokens/s", "8%", True), ("Left", "7%", True), ("Where", "8%", False), ("Last line", "30%", False)]


def step_cell(row: BoardRow) -> str:
    if row.imported:  # weights from elsewhere: no steps were trained here
        return "imported"
    if row.status is RunStatus.QUEUED:
        return f"queued #{row.queue_position}" if row.queue_position else "queued"
    words = "" if row.status.training else f" ({STATUS_WORDS.get(row.status, row.status)})"
    return f"{step_fraction(row.step, row.max_iters)}{words}"


def units_caption(rows: list[BoardRow]) -> str:
    """What *Val bits/byte* is, under the table; and which runs have none (recorded before runs kept the size of
    their validation text), rather than a figure in another unit beside the others."""
    unknown = sum(not r.bytes_known for r in rows)
    if not unknown:
        return BITS_PER_BYTE_SENTENCE
    runs = "1 run recorded before runs kept the size of its validation text shows" if unknown == 1 else \
        f"{unknown} runs recorded before runs kept the size of their validation text show"
    return f"{BITS_PER_BYTE_SENTENCE} {runs} no bits per byte (–)."


def board_table(rows: list[BoardRow], me: str) -> str:
    cells = []
    for r in board_order(rows):
        who = html.escape(r.handle + (" (you)" if r.owner == me else "")) + (
            " · <i>entry</i>" if r.role == "entry" else "")
        cells.append(("you" if r.owner == me else "", [
            who, html.escape(f"{r.rung} {r.size}"), step_cell(r),
            "–" if r.val_bpb is None else f"{r.val_bpb:.3f}",
            f"{r.tokens_per_sec / 1000:.1f}k" if r.status.training and r.tokens_per_sec else "–",
            format_duration(r.eta_s) if r.status.training else "–", html.escape(r.where),
            html.escape(r.last_line) or "–"]))
    return table_html(BOARD_COLUMNS, cells)


@st.cache_resource(max_entries=2, show_spinner=False)
def curves_figure(computed_at: float, _rows: list[BoardRow]):
    """The chart of the rows computed at ``computed_at``, built once for every viewer (plotly builds a figure of
    thirty curves in about 30 ms: per viewer it was the board's largest cost)."""
    curves = {f"{r.handle} · {r.label[-4:]}": r.curve for r in _rows if r.curve}
    if not curves:
        return None, 0
    fig = runs_overlay_figure(curves, title="Validation bits per byte, every run of this lesson",
                              y_title="val bits/byte")
    fig.update_layout(showlegend=len(curves) <= LEGEND_MAX)
    return fig, len(curves)


def draw_curves() -> None:
    classroom = state.classroom()
    rows = classroom.rows()
    fig, n = curves_figure(classroom.rows_computed_at, rows)
    if fig is None:
        st.caption("The validation curves appear here after each run's first evaluation.")
        return
    st.plotly_chart(fig, key="class_curves")
    if n > LEGEND_MAX:
        st.caption(f"{n} runs: hover a curve to see whose it is.")


def live_board() -> None:
    classroom = state.classroom()
    busy = any(r.status.active for r in classroom.rows())

    @st.fragment(run_every=TABLE_REFRESH_S if busy else IDLE_REFRESH_S)
    def live_table() -> None:
        rows = classroom.rows()
        if not rows:
            st.info("No run in this lesson yet: runs appear here as soon as anyone starts one.")
        else:
            training = sum(r.status.training for r in rows)
            queued = sum(r.status is RunStatus.QUEUED for r in rows)
            st.caption(f"{len(rows)} runs · {training} training · {queued} queued · since "
                       f"{time.strftime('%H:%M', time.localtime(classroom.lesson_start()))}")
            st.html(board_table(rows, identity.user()))
            st.caption(units_caption(rows))
        if any(r.status.active for r in rows) != busy:
            st.rerun()  # something started or everything ended: change the timers

    @st.fragment(run_every=CHART_REFRESH_S if busy else None)
    def live_chart() -> None:
        draw_curves()

    live_table()
    live_chart()


# --- the challenge -------------------------------------------------------------------------------

def leaderboard_columns(board: Board) -> list[tuple[str, str, bool]]:
    """The leaderboard's header, its score column in the board's unit (*Score bits/byte*; a board frozen before
    scores were in bits per byte says *Score bits/char*)."""
    return [("Rank", "8%", False), ("Who", "22%", False), ("Model", "25%", False),
            (f"Score {board.unit}", "12%", True), ("Tied with", "33%", False)]


def score_caption(board: Board) -> str:
    """What the score is, in the board's own unit, and why it differs from the lesson table's figure."""
    if board.unit != BITS_PER_BYTE:
        return (f"Score: {board.unit_words} on the challenge's held-out text: this board was frozen before scores "
                "were in bits per byte, and keeps the figures it ended with. The lesson's table below shows *Val "
                "bits/byte*, each run's own estimate while it trains.")
    return ("Score: bits per byte on the challenge's held-out text — the nats an entry pays on the scored tokens, in "
            "bits, per byte of the UTF-8 text they spell, so entries cut into different tokens compare — measured "
            "once when an entry finished the whole budget. The lesson's table below shows *Val bits/byte*, each "
            "run's own estimate from a few random batches while it trains, so the two figures differ.")


def entry_who(board: Board, entry: Entry, me: str) -> str:
    """The Who cell: the name, "(you)" on the viewer's own entries (by user key: a name never decides whose an
    entry is), and under the teacher's rule, of how many entries this is the best."""
    mine = entry.owner is not None and entry.owner == me
    several = "" if entry.entries < 2 else (f" · best of {entry.entries}" if board.entry_rule == BEST_OF_EACH
                                            else f" · one of {entry.entries} entries")
    return html_literal(entry.handle + (" (you)" if mine else "") + several)


def leaderboard_table(board: Board, me: str) -> str:
    rows = [("you" if s.entry.owner is not None and s.entry.owner == me else "", [
        s.shown_rank, entry_who(board, s.entry, me), html_literal(s.entry.detail), f"{s.entry.score:.3f}",
        html_literal(", ".join(s.tied_with)) or "–"]) for s in board.standings]
    return table_html(leaderboard_columns(board), rows)


def draw_board(board: Board, ended: bool) -> None:
    me = identity.user()
    if board.standings:
        st.html(leaderboard_table(board, me))
        st.caption(score_caption(board))
    else:
        st.caption("No entry is ranked yet: an entry is scored on the held-out text, and ranked, when it finishes "
                   "the whole budget.")
    st.caption(board.spread.sentence())
    st.caption(markdown_literal(entry_rule_sentence(board)))
    if board.waiting:
        st.caption("Not ranked: " + markdown_literal("; ".join(f"{h} — {why}" for h, _, why in board.waiting)))
    for r in board.refused:
        st.warning(f"**{markdown_literal(r.handle)}**, {markdown_literal(r.label)}: cannot enter — "
                   f"{markdown_literal(r.reason)}.")
    if ended:
        board_downloads(board, "board", "the board")


def board_downloads(board: Board, key: str, what: str) -> None:
    """The frozen board as a table (CSV) and a picture (SVG), named by when the challenge ended."""
    stamp = time.strftime("%Y%m%d-%H%M", time.localtime(board.ended_at or time.time()))
    c1, c2 = st.columns(2)
    c1.download_button(f"Download {what} (CSV)", board_csv(board), f"challenge-{stamp}.csv", "text/csv",
                       key=f"{key}_csv", width="stretch")
    c2.download_button(f"Download {what} (picture, SVG)", board_svg(board), f"challenge-{stamp}.svg",
                       "image/svg+xml", key=f"{key}_svg", width="stretch")


def previous_board() -> None:
    """The board of the challenge before this one, still downloadable: setting a new challenge never takes the
    last frozen board away from a teacher who had not saved it yet."""
    record = state.classroom().store.previous_challenge()
    if record is None or record.board is None:
        return
    board = Board.from_dict(record.board)
    ended = time.strftime("%H:%M", time.localtime(board.ended_at)) if board.ended_at else "earlier"
    with st.expander(f"Previous challenge's board (ended {ended})"):
        st.caption(markdown_literal(board.rules))
        board_downloads(board, "previous_board", "the previous board")


def challenge_section() -> None:
    classroom = state.classroom()
    record = classroom.challenge()
    st.subheader("Challenge")
    if record is None:
        st.caption("No challenge yet. The teacher sets one here: a text, a tokenizer, a held-out split and a budget "
                   "of training tokens; the board ranks everyone's entry on the same held-out text.")
        return
    rules = ChallengeRules.from_dict(record.rules)

    @st.fragment(run_every=CHART_REFRESH_S if classroom.open_challenge() else None)  # scores land as runs end
    def live_leaderboard() -> None:
        board = classroom.board()
        ended = classroom.open_challenge() is None
        if ended:
            st.markdown(f"**Ended** · {markdown_literal(rules.sentence(board.ended_at or record.ended_at))}")
        else:
            left = f" · {format_duration(rules.ends_at - time.time())} left" if rules.ends_at else ""
            st.markdown(f"**Open**{left} · {markdown_literal(rules.sentence())}")
            st.caption("Enter from **Model & training** with *Enter the challenge* on: the text, tokenizer and "
                       "split are the challenge's; the rung, sizes and the rest are yours, within the budget.")
        draw_board(board, ended)

    live_leaderboard()
    previous_board()


# --- the teacher ---------------------------------------------------------------------------------

def budget_input() -> int:
    how = st.radio("Budget as", ["training tokens", "steps × batch × block"], horizontal=True, key="budget_how")
    if how == "training tokens":
        return int(st.number_input("Training tokens", min_value=1, value=1_000_000, step=100_000, key="budget_tokens"))
    c1, c2, c3 = st.columns(3)
    steps = c1.number_input("Steps", min_value=1, value=1000, key="budget_steps")
    batch = c2.number_input("Batch", min_value=1, value=12, key="budget_batch")
    block = c3.number_input("Block", min_value=1, value=64, key="budget_block")
    return int(steps * batch * block)


def set_challenge_form() -> None:
    corpus = choices.corpus()
    previous = state.classroom().challenge()
    if previous is not None:
        st.caption("Setting a new challenge keeps this board: it stays here under *Previous challenge's board*, "
                   "with its CSV and picture to download.")
    st.markdown(f"**Set a challenge** on your current text **{markdown_literal(corpus.name)}**, tokenizer "
                f"{teachers_tokenizer()}, last {choices.val_fraction():.0%} held out (change them on the Data page). "
                "Every entry trains with exactly this tokenizer.")
    budget = budget_input()
    entry_rule = st.radio("Several entries from one student", list(ENTRY_RULES), format_func=ENTRY_RULES.get,
                          horizontal=True, key="challenge_entry_rule",
                          help="Best entry of each student: one line per student on the board, with how many "
                               "entries it is the best of. Every entry: each entry has its own line. The board "
                               "states the rule.")
    ends = st.toggle("End at a set time", key="challenge_ends")
    ends_at = None
    if ends:
        at = st.time_input("Ends at", key="challenge_end_time")
        ends_at = datetime.combine(datetime.now().date(), at).timestamp()
    st.button("Set the challenge", type="primary", key="set_challenge", on_click=act, args=(lambda: (
        state.classroom().set_challenge(identity.actor(), corpus, choices.tokenizer_kind(), choices.val_fraction(),
                                        budget, ends_at, entry_rule, choices.bpe_for(choices.tokenizer_kind())),
        "Challenge set.")[1],))


def run_controls() -> None:
    classroom = state.classroom()
    actor = identity.actor()
    active = [r for r in board_order(classroom.rows()) if r.status.active]
    if active:
        c1, c2 = st.columns([3, 1])
        chosen = c1.selectbox("Stop one run", [r.run_id for r in active], key="teacher_stop_pick",
                              format_func=lambda i: next(f"{r.handle} · {r.label} ({step_cell(r)})"
                                                         for r in active if r.run_id == i))
        c2.button("Stop it", key="teacher_stop", width="stretch",
                  on_click=act, args=(lambda: (classroom.stop_run(actor, chosen), "Stopping.")[1],))
    c1, c2 = st.columns(2)
    with c1.popover("Stop all", width="stretch"):
        st.caption("Every training run stops after its current step; checkpoints are kept.")
        st.button("Stop every run", key="stop_all", type="primary",
                  on_click=act, args=(lambda: f"Stopping {classroom.stop_all(actor)} run(s).",))
    with c2.popover("Clear the queue", width="stretch"):
        st.caption("Every waiting run leaves the queue (a waiting resume keeps its checkpoint).")
        st.button("Clear the queue", key="clear_queue", type="primary",
                  on_click=act, args=(lambda: f"Took {classroom.clear_queue(actor)} run(s) off the queue.",))


def teacher_panel() -> None:
    classroom = state.classroom()
    actor = identity.actor()
    if not actor.admin:
        return
    with st.expander("Teacher", expanded=True):
        started = datetime.fromtimestamp(classroom.lesson_start())
        with st.form("lesson_start_form", border=False):  # the time and Set go together: no Tab needed between
            c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
            c1.time_input("This lesson began at", value=started.time(), key="lesson_start")
            c2.form_submit_button("Set", key="set_lesson_start", width="stretch", on_click=act, args=(lambda: (
                classroom.set_lesson_start(actor, datetime.combine(datetime.now().date(),
                                                                   st.session_state["lesson_start"]).timestamp()),
                "The board now starts there.")[1],))
        run_controls()
        if classroom.open_challenge() is None:
            set_challenge_form()
        else:
            c1, c2 = st.columns(2)
            c1.button("Check the top three", key="check_top", width="stretch",
                      help="Re-train the top three entries with two other seeds each, at low priority (after every "
                           "student's run): the gaps between seeds are the spread within which entries tie.",
                      on_click=act, args=(lambda: f"Queued {len(classroom.check_top(actor))} check run(s).",))
            with c2.popover("End the challenge", width="stretch"):
                st.caption("The board freezes as it stands now; later scores do not change it.")
                st.button("End it now", key="end_challenge", type="primary",
                          on_click=act, args=(lambda: (classroom.end_challenge(actor), "Challenge ended.")[1],))


def my_handle() -> None:
    classroom = state.classroom()
    current = classroom.store.handles([identity.user()]).get(identity.user(), "")

    def save() -> None:
        act(lambda: (classroom.set_handle(identity.user(), st.session_state["board_handle"]), "Name saved.")[1])

    st.text_input("Your name on the board", value=current, key="board_handle", max_chars=24, on_change=save,
                  placeholder=classroom.handle_of(identity.user()),
                  help="What the class sees next to your runs (empty: an anonymous user + 6 letters).")


# --- the page ------------------------------------------------------------------------------------

st.title("Class")
my_handle()
teacher_panel()
if state.page_flags().get(ERROR_KEY):
    st.error(markdown_literal(state.page_flags()[ERROR_KEY]))
challenge_section()
experiment_section()
st.subheader("This lesson's runs")
live_board()
