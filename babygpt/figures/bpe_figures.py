"""The BPE lesson's figures and HTML: the compression curve, the merges in columns, a text cut into its tokens and the
tokenizer race's bands.

Pure functions of what ``babygpt.lessons.bpe_lesson`` computed; every token shown is the user's text, so each piece
is escaped with ``html_literal``.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from babygpt.errors import BabyGPTError
from babygpt.figures.viz import PALETTE, TOKEN_VIEW_ROWS, band_figure
from babygpt.lessons.bpe_lesson import GPT2_VOCAB, Compression, MergeRow
from babygpt.plain_text import html_literal
from babygpt.text.bpe import BYTES, utf8


def compression_figure(c: Compression) -> go.Figure:
    """Bytes per token against vocabulary size: the learned BPE's curve, with ``char`` and GPT-2 as points."""
    hover = "%{fullData.name}<br>%{x:,} tokens in the vocabulary: %{y:.2f} bytes per token<extra></extra>"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[size for _, size, _ in c.bpe], y=[c.bytes_per_token(t) for _, _, t in c.bpe],
                             mode="lines+markers", name="bpe: learned from this text", line=dict(color="#2563eb"),
                             hovertemplate=hover))
    fig.add_trace(go.Scatter(x=[c.char_vocab], y=[c.bytes_per_token(c.char_tokens)], mode="markers+text",
                             name="char", text=["char"], textposition="top center", marker=dict(size=11,
                             color="#16a34a"), hovertemplate=hover))
    fig.add_trace(go.Scatter(x=[GPT2_VOCAB], y=[c.bytes_per_token(c.gpt2_tokens)], mode="markers+text",
                             name="gpt2: learned from WebText", text=["GPT-2"], textposition="top center",
                             marker=dict(size=11, color="#dc2626"), hovertemplate=hover))
    top = max(c.bytes_per_token(t) for t in (c.gpt2_tokens, c.char_tokens, *(t for _, _, t in c.bpe)))
    low = min(c.char_vocab, BYTES)
    ticks = [4**i for i in range(1, 9) if low / 4 < 4**i]  # 4 … 65,536: one label per power of four, none repeated
    fig.update_xaxes(type="log", title="vocabulary size (tokens, logarithmic)", tickvals=ticks,
                     ticktext=[f"{t:,}" for t in ticks], range=[math.log10(low) - 0.2, math.log10(GPT2_VOCAB) + 0.2])
    fig.update_yaxes(title="bytes per token", range=[0, top * 1.2])
    fig.update_layout(title=html_literal("Compression: bytes per token as the vocabulary grows"), height=400,
                      margin=dict(l=50, r=20, t=50, b=40), font=dict(size=14),
                      legend=dict(orientation="h", yref="container", yanchor="bottom", y=0))
    return fig


# --- HTML for the page ---------------------------------------------------------------------------------------------

def merges_html(rows: list[MergeRow]) -> str:
    """The merges as a numbered list in columns, each '"t" + "h" → "th"', every token escaped (``html_literal``):
    a token is the user's text."""
    items = "".join(f'<div style="break-inside:avoid">{row.rank:,}. {html_literal(row.sentence())}</div>'
                    for row in rows)
    return (f'<div class="bpe-merges" style="font-family:monospace;font-size:15px;line-height:1.6;'
            f'column-width:16em;column-gap:2em">{items}</div>')


def token_spans(text: str, tokens: list[bytes]) -> list[tuple[str, bool]]:
    """What each token of ``text`` shows: the characters its bytes belong to, and whether it holds only part of
    them. A token that cuts a character ("道" is three bytes; GPT-2 spends two tokens on it) shows that character
    in each of its tokens, so a reader sees how many tokens a character cost instead of raw bytes."""
    if b"".join(tokens) != utf8(text):
        raise BabyGPTError("These tokens do not spell this text.")
    ends, position = [], 0  # each character's byte span
    for char in text:
        ends.append((position, position + len(utf8(char)), char))
        position = ends[-1][1]
    spans, start, first = [], 0, 0
    for token in tokens:
        stop = start + len(token)
        while ends[first][1] <= start:
            first += 1
        last = first
        while last < len(ends) and ends[last][0] < stop:
            last += 1
        chars = ends[first:last]
        spans.append(("".join(c for _, _, c in chars), chars[0][0] != start or chars[-1][1] != stop))
        start = stop
    return spans


def cut_html(text: str, tokens: list[tuple[int, bytes]], font_size: int = 15) -> str:
    """``text`` cut into its tokens, (id, bytes) in order, as coloured boxes; a token holding part of a character
    is dashed and says so on hover. Every piece of text is escaped (``html_literal``): it is the user's text."""
    spans = []
    for i, ((token_id, raw), (chars, partial)) in enumerate(zip(tokens, token_spans(text, [t for _, t in tokens]),
                                                               strict=True)):
        tip = f"id {token_id}" + (f": {len(raw)} byte(s) of {chars!r}" if partial else "")
        border = "border:1px dashed #6b7280;" if partial else ""
        shown_text = html_literal(chars).replace("\n", "↵<br>").replace(" ", "&nbsp;")
        spans.append(f'<span title="{html_literal(tip)}" style="background:{PALETTE[i % len(PALETTE)]};{border}'
                     f'border-radius:3px;padding:1px 0;margin:0 1px">{shown_text}</span>')
    row_px = round(font_size * 1.9)
    return (f'<div class="token-view" style="font-family:monospace;font-size:{font_size}px;line-height:{row_px}px;'
            f'word-break:break-all;max-height:{TOKEN_VIEW_ROWS * row_px}px;overflow-y:auto">{"".join(spans)}</div>')


def tokenizer_race_figure(bands: dict) -> go.Figure:
    """The tokenizer race's validation bands against the text each entry had seen (``bands_by_text_seen``), not
    against steps: at equal bytes a tokenizer of long tokens takes fewer steps, so steps would not line up."""
    fig = band_figure(bands, "Validation loss of each tokenizer: mean over seeds, band from lowest to highest",
                      "val loss (bits per byte)")
    fig.update_traces(hovertemplate="%{fullData.name}<br>%{x:,.0f} kB of text seen<br>mean val %{y:.3f} bits per "
                                    "byte<extra></extra>", selector=dict(mode="lines+markers"))
    fig.update_xaxes(title="training text seen (kB)")
    return fig
