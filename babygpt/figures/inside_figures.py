"""Figures of the look-inside views, as pure functions of their data (like ``viz``): the layer × head grid of a
score, how the heads formed beside the loss, the logit lens, and what each head's absence costs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from babygpt.figures.viz import _layout
from babygpt.interpret.inside import HEAD_TYPE_TABLE
from babygpt.interpret.looking import Formation, LensView, Onset, onset_label
from babygpt.plain_text import html_literal
from babygpt.text.corpus import describe_token


def display_token(token: str) -> str:
    """A token as a label: a single character by its visible name (␣, \\n), a longer token as written, part of a
    character as its bytes (``describe_token``)."""
    return describe_token(token)


KIND_TITLES = {t.key: t.title for t in HEAD_TYPE_TABLE}


def _grid_labels(n_layer: int, n_head: int) -> tuple[list[str], list[str]]:
    return [f"head {h}" for h in range(n_head)], [f"layer {layer}" for layer in range(n_layer)]


def head_grid_figure(values: np.ndarray, title: str, diverging: bool = False, unit: str = "") -> go.Figure:
    """A (n_layer, n_head) grid coloured by a score (0 to 1) or by a change centred on 0 (``diverging``)."""
    x, y = _grid_labels(*values.shape)
    finite = values[np.isfinite(values)]
    reach = float(np.abs(finite).max()) if diverging and finite.size else 1.0
    fig = go.Figure(go.Heatmap(
        z=values, x=x, y=y, zmin=-reach if diverging else 0.0, zmax=reach if diverging else 1.0,
        colorscale="RdBu_r" if diverging else "Blues",
        text=[[(f"{v:+.3f}" if abs(v) < 0.1 else f"{v:+.2f}") if diverging else f"{v:.2f}" for v in row]
              for row in values],
        texttemplate="%{text}", hovertemplate="%{y}, %{x}: %{z:.3f}" + unit + "<extra></extra>",
        colorbar=dict(title=unit.strip() or "score")))
    fig.update_xaxes(title="head", type="category")
    fig.update_yaxes(title="layer", type="category", autorange="reversed")
    return _layout(fig, title, height=140 + 70 * values.shape[0])


# Every head of a formation chart gets a style of its own: colour by head, dash by layer, and a marker symbol that
# tells apart heads whose colour and dash repeat (more than 10 heads a layer, or more than 6 layers).
HEAD_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                "#17becf"]
LAYER_DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "triangle-down", "pentagon",
           "hexagon", "hourglass", "bowtie", "triangle-left", "triangle-right", "circle-open", "square-open",
           "diamond-open", "star-open", "hexagram", "asterisk", "hash", "y-up", "y-down", "line-ns"]


def head_style(layer: int, head: int, n_layer: int) -> tuple[str, str, str]:
    """(colour, dash, marker symbol) of a head: two heads never share all three, up to 24 blocks of 10 heads ×
    6 layers (a GPT-2 small's 12 × 12 uses 4)."""
    blocks_of_layers = -(-n_layer // len(LAYER_DASHES))
    block = (head // len(HEAD_COLOURS)) * blocks_of_layers + layer // len(LAYER_DASHES)
    return (HEAD_COLOURS[head % len(HEAD_COLOURS)], LAYER_DASHES[layer % len(LAYER_DASHES)],
            SYMBOLS[block % len(SYMBOLS)])


def formation_figure(formation: Formation, kind: str, val: list[tuple[int, float]], found: Onset | None,
                     title: str) -> go.Figure:
    """Every head's score of one type over the recorded steps (each head its own colour, dash and marker), above
    the validation loss on the same steps; the dashed line at ``found`` names the head that passed."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    values = formation.scores[kind]
    n_layer = values.shape[1]
    for layer in range(n_layer):
        for head in range(values.shape[2]):
            colour, dash, symbol = head_style(layer, head, n_layer)
            fig.add_trace(go.Scatter(x=formation.steps, y=values[:, layer, head], mode="lines+markers",
                                     name=f"layer {layer} head {head}", line=dict(color=colour, dash=dash),
                                     marker=dict(color=colour, symbol=symbol)), row=1, col=1)
    if val:
        fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines", name="val loss",
                                 line=dict(color="black", dash="dot")), row=2, col=1)
    if found is not None:  # its label on the side of the line with more room, so it stays inside the chart
        right_half = found.step > (formation.steps[0] + formation.steps[-1]) / 2
        fig.add_vline(x=found.step, line=dict(color="#dc2626", dash="dash"))
        fig.add_annotation(x=found.step, y=1.04, xref="x", yref="y", text=onset_label(found), showarrow=False,
                           xanchor="right" if right_half else "left", yanchor="top", xshift=-4 if right_half else 4,
                           font=dict(size=12, color="#dc2626"), bgcolor="rgba(255,255,255,0.8)")
    fig.update_yaxes(title=f"{KIND_TITLES.get(kind, kind)} score", range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(title="val loss", row=2, col=1)
    fig.update_xaxes(title="step", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18))
    return _layout(fig, title, height=520)


def lens_figure(lens: LensView, title: str) -> go.Figure:
    """Per stop and position: colour = the probability of the true next token; text = the top guess there. Tokens
    (the prompt's, the model's guesses: an imported tokenizer's can be any string) are text, never plotly's HTML."""
    x = [html_literal(f"{i}:{display_token(t)}") for i, t in enumerate(lens.tokens)]
    y = ["embeddings"] + [f"after layer {i}" for i in range(len(lens.top) - 1)]
    text = [[html_literal(display_token(tok)) for tok in row] for row in lens.top]
    hover = [[html_literal(f"after '{display_token(lens.tokens[t])}': top guess '{display_token(row[t])}' "
                           f"({lens.top_prob[s, t]:.0%}); true next "
                           + (f"'{display_token(lens.next_tokens[t])}' at {lens.true_prob[s, t]:.0%}"
                              if lens.next_tokens[t] is not None else "unknown (end of prompt)")
                           + f"; the guess settles at '{y[lens.settles[t]]}'") for t in range(len(row))]
             for s, row in enumerate(lens.top)]
    fig = go.Figure(go.Heatmap(z=np.nan_to_num(lens.true_prob, nan=0.0), x=x, y=y, zmin=0, zmax=1, text=text,
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale="Greens", colorbar=dict(title="p(true next)")))
    fig.add_trace(go.Scatter(x=x, y=[y[s] for s in lens.settles], mode="markers", name="settles here",
                             marker=dict(symbol="square-open", size=22, color="#dc2626", line=dict(width=2)),
                             hoverinfo="skip"))
    fig.update_xaxes(title="position: token", type="category", tickangle=-60)
    fig.update_yaxes(title="where the model stops", type="category", autorange="reversed")
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.35))
    return _layout(fig, title, height=160 + 46 * len(y))
