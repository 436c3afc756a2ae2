"""Figures of the look-inside views, as pure functions of their data (like ``viz``): the layer × head grid of a
score, how the heads formed beside the loss, the logit lens, and what each head's absence costs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from babygpt.lessons.looking import Formation, LensView, Onset
from babygpt.lessons.viz import _layout
from babygpt.text.corpus import describe_char


def display_token(token: str) -> str:
    """A token as a label: a single character by its visible name (␣, \\n), a longer token as written."""
    return describe_char(token) if len(token) == 1 else token


KIND_TITLES = {"previous": "previous token", "first": "first token (sink)", "self": "self", "induction": "induction",
               "spread": "spread of the weights"}


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


def formation_figure(formation: Formation, kind: str, val: list[tuple[int, float]], found: Onset | None,
                     title: str) -> go.Figure:
    """Every head's score of one type over the recorded steps, above the validation loss on the same steps."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    values = formation.scores[kind]
    for layer in range(values.shape[1]):
        for head in range(values.shape[2]):
            fig.add_trace(go.Scatter(x=formation.steps, y=values[:, layer, head], mode="lines+markers",
                                     name=f"layer {layer} head {head}"), row=1, col=1)
    if val:
        fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines", name="val loss",
                                 line=dict(color="black", dash="dot")), row=2, col=1)
    if found is not None:
        fig.add_vline(x=found.step, line=dict(color="#dc2626", dash="dash"))
    fig.update_yaxes(title=f"{KIND_TITLES.get(kind, kind)} score", range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(title="val loss", row=2, col=1)
    fig.update_xaxes(title="step", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18))
    return _layout(fig, title, height=520)


def lens_figure(lens: LensView, title: str) -> go.Figure:
    """Per stop and position: colour = the probability of the true next token; text = the top guess there."""
    x = [f"{i}:{display_token(t)}" for i, t in enumerate(lens.tokens)]
    y = ["embeddings"] + [f"after layer {i}" for i in range(len(lens.top) - 1)]
    text = [[display_token(tok) for tok in row] for row in lens.top]
    hover = [[f"after '{display_token(lens.tokens[t])}': top guess '{display_token(row[t])}' "
              f"({lens.top_prob[s, t]:.0%}); true next "
              + (f"'{display_token(lens.next_tokens[t])}' at {lens.true_prob[s, t]:.0%}" if lens.next_tokens[t]
                 is not None else "unknown (end of prompt)")
              + f"; the guess settles at '{y[lens.settles[t]]}'" for t in range(len(row))]
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
