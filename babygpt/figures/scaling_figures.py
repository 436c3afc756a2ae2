"""The scaling law as a picture: every finished run a dot, each rung's fitted law a line with its uncertainty as a
band, extended to the model about ten times larger, whose prediction is an error bar and whose run, once trained,
a star. The same picture two ways: plotly for the page, SVG for the download (every user's string through
``html_literal``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from babygpt.lessons.scaling_law import PredictionCheck, ScalingFit
from babygpt.plain_text import html_literal

COLORS = ("#1f77b4", "#d62728")
CURVE_SAMPLES = 60


@dataclass(frozen=True)
class LawSeries:
    """One rung's runs and law. ``labels``: each dot's hover text (whose run it is: plain text)."""

    name: str
    xs: list[float]
    ys: list[float]
    labels: list[str]
    fit: ScalingFit | None = None
    checks: list[PredictionCheck] = field(default_factory=list)


@dataclass(frozen=True)
class LawPlot:
    title: str
    x_title: str
    y_title: str
    series: list[LawSeries]


def _x_range(plot: LawPlot) -> tuple[float, float] | None:
    xs = [x for s in plot.series for x in [*s.xs, *(c.x for c in s.checks)]]
    return (min(xs) / 1.3, max(xs) * 1.3) if xs else None


def _curve(fit: ScalingFit, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = np.geomspace(lo, hi, CURVE_SAMPLES)
    ys = np.array([fit.predict(x) for x in xs])
    errs = np.array([fit.predict_err(x) for x in xs])
    return xs, ys, errs


def law_figure(plot: LawPlot) -> go.Figure:
    fig = go.Figure()
    span = _x_range(plot)
    for k, s in enumerate(plot.series):
        color = COLORS[k % len(COLORS)]
        name = html_literal(s.name)
        if s.fit is not None and span:
            xs, ys, errs = _curve(s.fit, *span)
            fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([ys + errs, (ys - errs)[::-1]]),
                                     fill="toself", fillcolor=color, opacity=0.15, line=dict(width=0),
                                     hoverinfo="skip", showlegend=False))
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color),
                                     name=f"{name}: law (±1 s.e.)"))
        fig.add_trace(go.Scatter(x=s.xs, y=s.ys, mode="markers", marker=dict(color=color, size=9),
                                 name=f"{name}: runs", text=[html_literal(t) for t in s.labels],
                                 hovertemplate="%{text}<br>x %{x:.3g}<br>loss %{y:.3f}<extra></extra>"))
        for c in s.checks:
            fig.add_trace(go.Scatter(x=[c.x], y=[c.predicted], mode="markers", name=f"{name}: predicted",
                                     marker=dict(color=color, symbol="diamond-open", size=12),
                                     error_y=dict(type="data", array=[c.run_err], visible=True)))
            if c.observed is not None:
                fig.add_trace(go.Scatter(x=[c.x], y=[c.observed], mode="markers", name=f"{name}: reached",
                                         marker=dict(color=color, symbol="star", size=14)))
    fig.update_layout(title=html_literal(plot.title), height=420, margin=dict(l=60, r=20, t=50, b=50),
                      xaxis=dict(type="log", title=html_literal(plot.x_title)),
                      yaxis=dict(title=html_literal(plot.y_title)))
    return fig


def law_svg(plot: LawPlot, notes: list[str], width: int = 960, height: int = 560) -> str:
    """The picture to download: the same dots, laws, bands and tested model on a log x axis, with ``notes`` (the
    laws and the prediction in words) under it."""
    left, right, top, bottom = 80, 30, 50, 90 + 18 * len(notes)
    inner_w, inner_h = width - left - right, height - top - bottom
    span = _x_range(plot) or (1.0, 10.0)
    ys_all = [y for s in plot.series for y in s.ys]
    curves = {}
    for s in plot.series:
        if s.fit is not None:
            curves[s.name] = _curve(s.fit, *span)
            ys_all += [*(curves[s.name][1] + curves[s.name][2]), *(curves[s.name][1] - curves[s.name][2])]
        for c in s.checks:
            ys_all += [c.predicted + c.run_err, c.predicted - c.run_err] + ([c.observed] if c.observed else [])
    lo_y, hi_y = (min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0)
    pad = (hi_y - lo_y) * 0.08 or 0.1
    lo_y, hi_y = lo_y - pad, hi_y + pad

    def px(x: float) -> float:
        return left + inner_w * (math.log(x) - math.log(span[0])) / (math.log(span[1]) - math.log(span[0]))

    def py(y: float) -> float:
        return top + inner_h * (hi_y - y) / (hi_y - lo_y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="16" y="28" font-size="18" font-weight="bold">{html_literal(plot.title)}</text>',
             f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>']
    for e in range(math.floor(math.log10(span[0])), math.ceil(math.log10(span[1])) + 1):
        if span[0] <= 10 ** e <= span[1]:
            x = px(10 ** e)
            parts.append(f'<line x1="{x:.1f}" y1="{top + inner_h}" x2="{x:.1f}" y2="{top + inner_h + 5}" '
                         'stroke="#555"/>')
            parts.append(f'<text class="tick" x="{x:.1f}" y="{top + inner_h + 18}" font-size="11" '
                         f'text-anchor="middle" fill="#555">1e{e}</text>')
    for k in range(6):
        y_val = lo_y + (hi_y - lo_y) * k / 5
        parts.append(f'<text x="{left - 6}" y="{py(y_val) + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#555">{y_val:.3f}</text>')
    parts.append(f'<text x="{left + inner_w / 2}" y="{top + inner_h + 38}" font-size="12" text-anchor="middle">'
                 f'{html_literal(plot.x_title)} (log scale)</text>')
    parts.append(f'<text x="16" y="{top - 8}" font-size="12">{html_literal(plot.y_title)}</text>')
    for k, s in enumerate(plot.series):
        color = COLORS[k % len(COLORS)]
        if s.name in curves:
            xs, ys, errs = curves[s.name]
            band = [f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys + errs, strict=True)] + \
                   [f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs[::-1], (ys - errs)[::-1], strict=True)]
            parts.append(f'<polygon class="band" points="{" ".join(band)}" fill="{color}" opacity="0.15"/>')
            line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
            parts.append(f'<polyline class="law" points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y, label in zip(s.xs, s.ys, s.labels, strict=True):
            parts.append(f'<circle class="run" cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="{color}">'
                         f'<title>{html_literal(label)}: {y:.3f}</title></circle>')
        for c in s.checks:
            x = px(c.x)
            parts.append(f'<line class="predicted" x1="{x:.1f}" y1="{py(c.predicted + c.run_err):.1f}" x2="{x:.1f}" '
                         f'y2="{py(c.predicted - c.run_err):.1f}" stroke="{color}" stroke-width="2"/>')
            parts.append(f'<rect x="{x - 5:.1f}" y="{py(c.predicted) - 5:.1f}" width="10" height="10" fill="white" '
                         f'stroke="{color}" stroke-width="2"/>')
            if c.observed is not None:
                parts.append(f'<circle class="reached" cx="{x:.1f}" cy="{py(c.observed):.1f}" r="7" fill="none" '
                             f'stroke="black" stroke-width="2"/>')
        parts.append(f'<text x="{left + 10}" y="{top + 18 + 16 * k}" font-size="12" fill="{color}">'
                     f'{html_literal(s.name)}</text>')
    y = top + inner_h + 60
    for note in notes:
        parts.append(f'<text x="16" y="{y}" font-size="12">{html_literal(note)}</text>')
        y += 18
    parts.append("</svg>")
    return "\n".join(parts)
