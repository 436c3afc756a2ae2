"""Figures as pure functions: data in, plotly Figure out. No Streamlit, so each is testable alone.

Plotly draws a subset of HTML in every label it writes (titles, legends, hovers, axis ticks, text on cells), so a
``<a href>`` in a run's name or a token would be a live link. Every string that can come from a user (a title that
names a run, a legend's run names, a token of an uploaded text or an imported tokenizer) goes through
``plain_text.html_literal`` where it enters a figure: in ``_layout`` for titles, and in each function below for
names, labels and text. Hover templates name the trace by ``%{fullData.name}`` rather than pasting the name in, so
a ``%{…}`` in a name is never read as a placeholder."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from babygpt.interpret.attention import visible_cells
from babygpt.lessons.baselines import Baselines, step_passed
from babygpt.plain_text import html_literal
from babygpt.text.corpus import describe_char, describe_token
from babygpt.text.measured import UNIFORM_LEVEL

PALETTE = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb"]
TRAIN_COLOR, VAL_COLOR, LR_COLOR = "#2563eb", "#dc2626", "#7c3aed"


def _layout(fig: go.Figure, title: str, height: int = 360, **kwargs) -> go.Figure:
    # The legend sits at the bottom of the figure, below the x-axis title, and plotly makes room for it: placed
    # at a fraction of the plot's height instead, it lands on the axis title of a short chart.
    fig.update_layout(title=html_literal(title), height=height, margin=dict(l=50, r=20, t=50, b=40), font=dict(size=14),
                      legend=dict(orientation="h", yref="container", yanchor="bottom", y=0), **kwargs)
    return fig


def ema(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing slider)."""
    if not 0 <= smoothing < 1:
        raise ValueError("smoothing must be in [0, 1)")
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = smoothing * avg + (1 - smoothing) * v
        out.append(avg / (1 - smoothing**i) if smoothing else v)
    return out


MAX_CURVE_POINTS = 2000  # per curve: what a browser redraws every second stays bounded


def downsample_indices(n: int, max_points: int = MAX_CURVE_POINTS, exact_tail: int = 200) -> list[int]:
    """Which of ``n`` points to draw: all when they fit, else evenly spaced ones plus the last ``exact_tail``
    exactly, so a long run's chart costs the same to send every second while the newest steps stay precise."""
    if n <= max_points:
        return list(range(n))
    tail = min(exact_tail, max_points // 2)
    head, budget = n - tail, max_points - tail
    spaced = sorted({round(i * (head - 1) / (budget - 1)) for i in range(budget)})
    return spaced + list(range(head, n))


def loss_figure(train: Sequence[dict], evals: Sequence[dict], log_y: bool = False, smoothing: float = 0.0,
                x_axis: str = "step", baselines: Baselines | None = None, vocab_size: int | None = None,
                max_points: int = MAX_CURVE_POINTS) -> go.Figure:
    """Training loss (per logged step) and the evaluated train/val losses, each curve at most ``max_points``,
    with dashed lines at the levels a model should beat (``baselines``; else ln V from ``vocab_size``).

    Rebuilt every second for every open live page, so it is built in one go from numpy arrays (plotly
    validates those ~4x faster than lists) with plain layout shapes (``add_hline`` is ~10x slower)."""
    x_key = "step" if x_axis == "step" else "elapsed_s"
    traces = []
    if train:
        keep = downsample_indices(len(train), max_points)
        smooth = ema([p["loss"] for p in train], smoothing)  # smoothed over every step, then thinned
        xs = np.asarray([train[i][x_key] for i in keep], dtype=float)
        if smoothing:
            traces.append(go.Scatter(x=xs, y=np.asarray([train[i]["loss"] for i in keep], dtype=float),
                                     mode="lines", name="train (raw)", line=dict(color=TRAIN_COLOR, width=1),
                                     opacity=0.25, showlegend=False))
        traces.append(go.Scatter(x=xs, y=np.asarray([smooth[i] for i in keep]), mode="lines",
                                 name="train (per step)", line=dict(color=TRAIN_COLOR, width=2)))
    if evals:
        evals = [evals[i] for i in downsample_indices(len(evals), max_points)]
        xs = np.asarray([p[x_key] for p in evals], dtype=float)
        traces.append(go.Scatter(x=xs, y=np.asarray([p["train_loss"] for p in evals], dtype=float),
                                 mode="lines+markers", name="train (eval)", line=dict(color=TRAIN_COLOR, dash="dot")))
        traces.append(go.Scatter(x=xs, y=np.asarray([p["val_loss"] for p in evals], dtype=float),
                                 mode="lines+markers", name="val (eval)", line=dict(color=VAL_COLOR, width=3)))
    levels = baselines.levels() if baselines else (
        {UNIFORM_LEVEL: math.log(vocab_size)} if vocab_size else {})
    worse = baselines.worse_than_guessing() if baselines else []
    layout: dict = dict(xaxis=dict(title="step" if x_key == "step" else "training time (s)"),
                        yaxis=dict(title="cross-entropy loss", type="log" if log_y else "linear"))
    if not train and not evals:  # before the first step: the scale the curve will come down, not −1..6
        top = max(levels.values(), default=5.0) * 1.15
        layout["yaxis"]["range"] = [math.log10(0.5), math.log10(top)] if log_y else [0, top]
        layout["xaxis"]["range"] = [0, 1]
    elif levels:  # a range of our own, so the labels in the margin can be placed beside their lines
        layout["yaxis"]["range"] = _loss_range([t.y for t in traces] + [list(levels.values())], log_y)
    fig = _layout(go.Figure(data=traces, layout=layout), "Loss")
    if levels:  # the baselines a model should beat, each with the evaluation by which validation loss passed it
        curve = [(p["step"], p["val_loss"]) for p in evals]
        labels = {name: _level_lines(name, value, curve, worse) for name, value in levels.items()}
        fig.update_layout(
            shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=v, y1=v, line=dict(color="gray", dash="dash"))
                    for v in levels.values()],
            annotations=_margin_labels(levels, labels, layout["yaxis"]["range"], log_y),
            margin=dict(r=round(LABEL_CHAR_PX * max(len(line) for lines in labels.values() for line in lines)) + 16))
    return fig


# A baseline's label sits in the right margin, beside its dashed line: no curve can run over it there. Labels close
# in value are stacked just clear of each other, by an estimate of the plot's height in pixels (the figure's 360
# less its title, axis and legend: 221 measured in Chromium) and of a line's (12 px text: 16.5 measured).
LABEL_LINE_PX, LABEL_CHAR_PX, PLOT_PX = 17, 6.8, 215


def _loss_range(series: Sequence[Sequence[float]], log_y: bool) -> list[float]:
    """The y range that holds every curve and level, padded a little; in log10 units on a log axis (plotly's)."""
    values = np.concatenate([np.asarray(s, dtype=float) for s in series])
    values = values[np.isfinite(values) & ((values > 0) if log_y else True)]
    if log_y:
        values = np.log10(values)
    low, high = float(values.min()), float(values.max())
    pad = 0.06 * (high - low) or 0.1
    return [low - pad, high + pad]


# A first evaluation this close to a level (nats) sits on its line: the label says "starts at" it rather than
# "below it from the start" (4.173 against ln 65 = 4.174), since an estimate over a few batches moves more than this.
ON_THE_LINE = 0.02


def _level_lines(name: str, value: float, curve: list[tuple[int, float]], worse: list[str]) -> list[str]:
    """A level's label, line by line. Validation loss is measured at evaluations only, so a level is passed *by*
    an evaluation's step, not at it."""
    first = f"{name} {value:.2f}"
    if name in worse:
        return [first, "no better than guessing", "on this little text"]
    if curve and abs(curve[0][1] - value) <= ON_THE_LINE:
        start = "starts at the uniform guess" if name == UNIFORM_LEVEL else "starts at it"
        passed = step_passed(curve[1:], value)
        return [first, start] + ([f"below it by step {passed}"] if passed is not None else [])
    passed = step_passed(curve, value)
    if passed is None:
        return [first]
    return [first, "below it from the start" if passed == curve[0][0] else f"passed by step {passed}"]


def _margin_labels(levels: dict[str, float], labels: dict[str, list[str]], y_range: list[float],
                   log_y: bool) -> list[dict]:
    """Annotations in the right margin, each centred on its level where the others leave room (paper units):
    labels that would overlap are stacked, the stack centred on their levels' mean and kept inside the plot."""
    low, high = y_range
    where = {name: ((math.log10(v) if log_y and v > 0 else v) - low) / (high - low) for name, v in levels.items()}
    tall = {name: len(lines) * LABEL_LINE_PX / PLOT_PX for name, lines in labels.items()}
    stacks = [[name] for name in sorted(levels, key=where.get)]  # bottom to top

    def place(stack: list[str]) -> tuple[float, float]:  # the stack's bottom and top edges
        height = sum(tall[n] for n in stack)
        centre = min(max(sum(where[n] for n in stack) / len(stack), height / 2), 1 - height / 2)
        return centre - height / 2, centre + height / 2

    merged = True
    while merged:  # join neighbouring stacks while any two overlap
        merged = False
        for i in range(len(stacks) - 1):
            if place(stacks[i])[1] > place(stacks[i + 1])[0]:
                stacks[i:i + 2] = [stacks[i] + stacks[i + 1]]
                merged = True
                break
    centre = {}
    for stack in stacks:
        edge = place(stack)[0]
        for name in stack:
            centre[name] = edge + tall[name] / 2
            edge += tall[name]
    return [dict(xref="paper", x=1, xanchor="left", xshift=6, yref="paper", y=centre[name], yanchor="middle",
                 align="left", text="<br>".join(labels[name]), showarrow=False, font=dict(size=12, color="#4b5563"))
            for name in levels]


def lr_figure(steps: Sequence[int], lrs: Sequence[float], current_step: int | None = None,
              muon_lrs: Sequence[float] | None = None) -> go.Figure:
    """The schedule a run follows. With Muon (``muon_lrs``) two labelled lines: Muon steps the blocks' 2-D weight
    matrices at its own peak, AdamW the embeddings, head, gains and biases at ``lr``; both warm up and decay alike
    (``babygpt.training.muon``), so one line alone would hide the larger peak most of the weights follow; on a log
    axis, since the peaks differ tenfold."""
    adamw = "AdamW: embeddings, head, gains, biases" if muon_lrs is not None else "learning rate"
    fig = go.Figure(go.Scatter(x=list(steps), y=list(lrs), mode="lines", name=adamw, line=dict(color=LR_COLOR)))
    if muon_lrs is not None:
        fig.add_trace(go.Scatter(x=list(steps), y=list(muon_lrs), mode="lines", name="Muon: hidden matrices",
                                 line=dict(color=VAL_COLOR, dash="dash")))
    if current_step is not None:
        fig.add_vline(x=current_step, line=dict(color="gray", dash="dot"))
    fig.update_xaxes(title="step")
    if muon_lrs is None:
        fig.update_yaxes(title="learning rate", exponentformat="e")
    else:  # peaks ten times apart: on a linear axis AdamW's line lies flat on zero; on a log one both shapes show
        fig.update_yaxes(title="learning rate (log scale)", type="log", exponentformat="e")
    return _layout(fig, "Learning-rate schedule: warmup, then cosine decay", height=260)


def char_frequency_figure(top_chars: Sequence[tuple[str, int]]) -> go.Figure:
    labels = [html_literal(describe_char(c)) for c, _ in top_chars]
    counts = [n for _, n in top_chars]
    fig = go.Figure(go.Bar(x=labels, y=counts, marker_color=TRAIN_COLOR,
                           hovertemplate="%{x}: %{y:,} times<extra></extra>"))
    fig.update_xaxes(title="character", type="category")
    fig.update_yaxes(title="count")
    return _layout(fig, "Most frequent characters", height=300)


def _token_labels(tokens: Sequence[str]) -> list[str]:
    """Position-prefixed labels, so repeated tokens stay distinct categories on an axis (tokens as text)."""
    return [html_literal(f"{i}:{describe_token(t)}") for i, t in enumerate(tokens)]


def attention_color_range(matrices: np.ndarray, kind: str, causal: bool = True, fit: bool = False) -> tuple[float, float]:
    """One colour range for a layer's heads, so a head has the same colours alone and in the grid.

    Weights are probabilities: 0 to 1, or with ``fit`` 0 to the largest weight shown (a long prompt spreads its
    weights thin, and on a fixed 0–1 scale they all look white). Scores are signed: the range is symmetric about
    0, so white is 0, blue negative and red positive in every view. Only the cells the model could attend to count.
    """
    m = np.asarray(matrices, dtype=float)
    visible = m[..., visible_cells(m.shape[-1], causal)]
    finite = visible[np.isfinite(visible)]
    if kind == "weights":
        top = float(finite.max()) if fit and finite.size else 1.0
        return 0.0, top or 1.0
    top = float(np.abs(finite).max()) if finite.size else 1.0
    return -(top or 1.0), (top or 1.0)


def _drawn(matrix: np.ndarray, causal: bool) -> np.ndarray:
    """The matrix as the model computed it; under a causal mask the future (keys after the query) is NaN, drawn
    empty. A model trained without the mask attends to the future, and that is drawn too."""
    m = np.asarray(matrix, dtype=float).copy()
    m[..., ~visible_cells(m.shape[-1], causal)] = np.nan
    return m


def attention_heatmap(matrix: np.ndarray, tokens: Sequence[str], title: str, kind: str = "weights",
                      color_range: tuple[float, float] | None = None, *, causal: bool) -> go.Figure:
    """One head's T×T matrix, rows = query (the position predicting), columns = key (looked at).

    With the causal mask the future is shown empty, so the triangle is visible; without it (a counterfactual run)
    every cell is drawn. Pass the layer's ``attention_color_range`` to draw it in the same colours as the grid.
    """
    matrix = _drawn(matrix, causal)
    T = matrix.shape[0]
    labels = _token_labels(tokens)
    zmin, zmax = color_range or attention_color_range(matrix[None], kind, causal)
    fig = go.Figure(go.Heatmap(
        z=matrix, x=labels, y=labels, colorscale="Blues" if kind == "weights" else "RdBu_r", zmin=zmin, zmax=zmax,
        hovertemplate="query %{y}<br>key %{x}<br>" + kind + " %{z:.4f}<extra></extra>",
        hoverongaps=False,
    ))
    fig.update_xaxes(title="key (attended to)", type="category", tickangle=-60)
    fig.update_yaxes(title="query (attending)", type="category", autorange="reversed")
    side = max(360, min(760, 22 * T + 160))
    return _layout(fig, title, height=side, plot_bgcolor="#f3f4f6")


def attention_grid(head_matrices: np.ndarray, tokens: Sequence[str], title: str, kind: str = "weights",
                   color_range: tuple[float, float] | None = None, *, causal: bool) -> go.Figure:
    """All heads of one layer side by side, in one colour range (``attention_color_range``), to compare at a glance."""
    n_head, T, _ = head_matrices.shape
    cols = min(4, n_head)
    rows = math.ceil(n_head / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h}" for h in range(n_head)],
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    labels = _token_labels(tokens)
    for h in range(n_head):
        fig.add_trace(go.Heatmap(z=_drawn(head_matrices[h], causal), x=labels, y=labels, coloraxis="coloraxis",
                                 hoverongaps=False,
                                 hovertemplate=f"head {h}<br>query %{{y}}<br>key %{{x}}<br>%{{z:.4f}}<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    fig.update_xaxes(showticklabels=False, type="category")
    fig.update_yaxes(showticklabels=False, type="category", autorange="reversed")
    cmin, cmax = color_range or attention_color_range(head_matrices, kind, causal)
    fig.update_layout(coloraxis=dict(colorscale="Blues" if kind == "weights" else "RdBu_r", cmin=cmin, cmax=cmax))
    return _layout(fig, title, height=260 * rows + 60, plot_bgcolor="#f3f4f6")


def next_token_figure(candidates: Sequence[tuple[str, float]], chosen: str | None = None,
                      title: str = "Most likely next tokens") -> go.Figure:
    labels = [html_literal(describe_token(t)) for t, _ in candidates]
    probs = [p for _, p in candidates]
    colors = [VAL_COLOR if chosen is not None and t == chosen else TRAIN_COLOR for t, _ in candidates]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colors,
                           text=[f"{p:.1%}" for p in probs], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title="token")
    top = max(probs + [0.001]) * 1.1
    fig.update_xaxes(title="probability", range=[0, top], tickformat=percent_tickformat(top))
    return _layout(fig, title, height=max(260, 26 * len(candidates) + 90))


def percent_tickformat(top: float) -> str:
    """Enough decimals that no two ticks of an axis from 0 to ``top`` read the same.

    Plotly puts 4-8 ticks on an axis; below 5% they are 0.5 or 1 percentage point apart, and ".0%" would print
    "0% 1% 1% 2%" (an untrained model gives every token about 1/V).
    """
    if top < 0.005:
        return ".2%"
    return ".1%" if top < 0.05 else ".0%"


def runs_overlay_figure(curves: dict[str, Sequence[tuple[int, float]]], log_y: bool = False,
                        title: str = "Validation loss by run", y_title: str = "val loss") -> go.Figure:
    fig = go.Figure()
    for name, points in curves.items():
        fig.add_scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers",
                        name=html_literal(name))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear")
    return _layout(fig, title, height=400)


def band_figure(bands: dict, title: str = "Validation loss of each rung: mean over seeds, band from lowest to highest",
                y_title: str = "val loss") -> go.Figure:
    """One line per rung (the mean over its seeds) inside a shaded band (min to max): where bands overlap, the
    rungs are not told apart by this race."""
    fig = go.Figure()
    colors = ["#6b7280", "#2563eb", "#0891b2", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#db2777"]
    for i, (label, band) in enumerate(bands.items()):
        color, name = colors[i % len(colors)], html_literal(label)
        fig.add_scatter(x=band.steps + band.steps[::-1], y=band.high + band.low[::-1], fill="toself",
                        fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip", showlegend=False,
                        legendgroup=name)
        fig.add_scatter(x=band.steps, y=band.mean, mode="lines+markers", name=name, line=dict(color=color, width=2),
                        legendgroup=name, hovertemplate="%{fullData.name}<br>step %{x}<br>mean val %{y:.3f}"
                                                        "<extra></extra>")
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, height=420)


TOKEN_VIEW_ROWS = 12  # a long run of tokens scrolls inside its box instead of growing the page


def tokens_html(pieces: Sequence[tuple[str, int]], font_size: int = 15) -> str:
    """The text cut into coloured tokens; hovering shows each token's id. The box is a whole number of rows high
    (a line height in whole pixels, the box that many times it), so a row is never cut by its bottom edge."""
    spans = []
    for i, (text, token_id) in enumerate(pieces):
        shown = _shown(text)
        spans.append(f'<span title="id {token_id}" style="background:{PALETTE[i % len(PALETTE)]};'
                     f'border-radius:3px;padding:1px 0;margin:0 1px">{shown}</span>')
    row_px = round(font_size * 1.9)
    return (f'<div class="token-view" style="font-family:monospace;font-size:{font_size}px;line-height:{row_px}px;'
            f'word-break:break-all;max-height:{TOKEN_VIEW_ROWS * row_px}px;overflow-y:auto">{"".join(spans)}</div>')


def _shown(text: str) -> str:
    return html_literal(text).replace("\n", "↵<br>").replace(" ", "&nbsp;") or "∅"


def surprise_html(tokens: Sequence, differences: Sequence[float | None] | None = None, full_at: float = 5.0) -> str:
    """The text with each token shaded by the model's loss there (white: expected, red: surprised), or, given
    ``differences``, by how much a second model's loss differs (blue: it was less surprised, red: more). Hovering
    a token shows its loss, its probability and what the model expected instead."""
    spans = []
    for i, t in enumerate(tokens):
        if t.loss is None:
            color, tip = "transparent", "the first token: nothing before it to predict it from"
        else:
            expected = ", ".join(f"{describe_char(c.text) if len(c.text) == 1 else c.text!r} {c.prob:.0%}"
                                 for c in t.expected)
            tip = f"loss {t.loss:.2f} (p = {t.prob:.1%}) · expected: {expected}"
            if differences is None:
                color = f"rgba(220,38,38,{min(1.0, t.loss / full_at):.2f})"
            else:
                d = differences[i]
                tip += f" · the second run: {d:+.2f}"
                rgb = "37,99,235" if d < 0 else "220,38,38"
                color = f"rgba({rgb},{min(1.0, abs(d) / (full_at / 2)):.2f})"
        spans.append(f'<span title="{html_literal(tip)}" style="background:{color};border-radius:2px">'
                     f"{_shown(t.text)}</span>")
    return (surprise_legend(differences is not None, full_at)
            + '<div style="font-family:monospace;font-size:15px;line-height:1.9;word-break:break-all">'
            f'{"".join(spans)}</div>')


def surprise_legend(differences: bool, full_at: float = 5.0) -> str:
    """What the shades mean, drawn with the same colours as the text below it."""
    def swatch(rgb: str, alpha: float, words: str) -> str:
        return (f'<span style="background:rgba({rgb},{alpha});border-radius:2px;padding:0 6px;margin-right:4px">'
                f"&nbsp;</span>{words}")

    if differences:
        items = [swatch("37,99,235", 1.0, f"second run less surprised by {full_at / 2:g}+ nats"),
                 swatch("37,99,235", 0.3, "a little less"), swatch("220,38,38", 0.3, "a little more"),
                 swatch("220,38,38", 1.0, f"more surprised by {full_at / 2:g}+ nats")]
    else:
        items = [swatch("220,38,38", 0.0, "expected (loss 0)"), swatch("220,38,38", 0.5, f"loss {full_at / 2:g}"),
                 swatch("220,38,38", 1.0, f"surprised (loss {full_at:g}+ nats)")]
    return ('<div style="font-size:13px;margin-bottom:6px">' + " &nbsp; ".join(items)
            + " &nbsp; · hover a token for its numbers</div>")


def histogram_figure(series: dict[str, np.ndarray], title: str, x_title: str) -> go.Figure:
    fig = go.Figure()
    for name, values in series.items():
        fig.add_histogram(x=np.asarray(values), name=html_literal(name), opacity=0.6, nbinsx=80)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title="count")
    return _layout(fig, title, height=320)


def softmax_rows_figure(rows: dict[str, np.ndarray], title: str) -> go.Figure:
    fig = go.Figure()
    for name, probs in rows.items():
        fig.add_bar(x=[f"k{i}" for i in range(len(probs))], y=list(probs), name=html_literal(name))
    fig.update_yaxes(title="softmax weight", range=[0, 1])
    fig.update_xaxes(title="key position")
    return _layout(fig, title, height=300, barmode="group")


def matrix_heatmap(matrix: np.ndarray, title: str, x_title: str, y_title: str, colorscale: str = "RdBu_r",
                   zmid: float | None = 0.0) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=np.asarray(matrix), colorscale=colorscale, zmid=zmid,
                               hovertemplate=f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>%{{z:.3f}}<extra></extra>"))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title, autorange="reversed")
    return _layout(fig, title, height=380)


def embedding_scatter(points: np.ndarray, labels: Sequence[str], classes: Sequence[str],
                      title: str = "Token embeddings (PCA)") -> go.Figure:
    fig = go.Figure()
    for cls in sorted(set(classes)):
        idx = [i for i, c in enumerate(classes) if c == cls]
        fig.add_scatter(x=points[idx, 0], y=points[idx, 1], mode="markers+text", name=html_literal(cls),
                        text=[html_literal(describe_char(labels[i]) if len(labels[i]) == 1 else labels[i]) for i in idx],
                        textposition="top center", marker=dict(size=8))
    fig.update_xaxes(title="principal component 1")
    fig.update_yaxes(title="principal component 2")
    return _layout(fig, title, height=520)
