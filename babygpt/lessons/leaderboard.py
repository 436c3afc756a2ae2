"""A challenge's board: one measurement for everyone, ranks that only separate what seeds cannot explain, and the
board as a table (CSV) and a picture (SVG) for the teacher to keep.

**The measurement.** Every entry is scored the same way, whatever its settings: its weights, in float32 and
evaluation mode, predict each of the first ``HELD_OUT_TOKENS`` tokens of the challenge's held-out split from the
tokens before it in windows of its own context length. Training-time validation losses are estimates from a few
random batches a student chooses; this number is not.

**The ranks.** Two runs with the same settings and different seeds end at different losses. If the gap between
two entries is no larger than that seed-to-seed spread, nothing says one is better, so they are shown as tied: an
entry's rank is one more than the number of entries *ahead of it by more than the spread*. The spread is measured,
never assumed: the widest gap between runs of the same settings that differ only in their seed (the teacher's
re-training of the top entries, or repeats the class made).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import torch
import torch.nn.functional as F

from babygpt.model.gpt import LanguageModel
from babygpt.plain_text import csv_cell

HELD_OUT_TOKENS = 65_536  # the tokens scored (the whole held-out split when it is shorter); bounds the cost


def held_out_ids(val: torch.Tensor) -> torch.Tensor:
    """The tokens a challenge scores on: the start of its held-out split, the same for every entry."""
    return val[: HELD_OUT_TOKENS + 1]


@torch.no_grad()
def held_out_loss(model: LanguageModel, ids: torch.Tensor, block_size: int, batch: int) -> tuple[float, int]:
    """Mean cross-entropy (nats) over ``ids[1:]``, each token predicted once from up to ``block_size`` tokens
    before it (non-overlapping windows), in float32; returns it with the number of tokens predicted.

    ``batch`` windows go through each forward pass: the run's own batch size, so scoring never holds more
    activations than a training step did. Its cost is a forward pass over at most ``HELD_OUT_TOKENS`` tokens, about
    a third of what training on as many tokens costs."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = ids.to(device)
    n_targets = len(ids) - 1
    full = n_targets // block_size
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.autocast(device.type, enabled=False):
        for first in range(0, full, batch):
            starts = torch.arange(first, min(full, first + batch), device=device) * block_size
            offsets = starts[:, None] + torch.arange(block_size + 1, device=device)
            windows = ids[offsets]
            total += _loss_sum(model, windows[:, :-1], windows[:, 1:])
        rest = n_targets - full * block_size
        if rest:
            tail = ids[full * block_size:]
            total += _loss_sum(model, tail[None, :-1], tail[None, 1:])
    model.train(was_training)
    return float(total / n_targets), n_targets


def _loss_sum(model: LanguageModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)[0].float()
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").double()


def bits_per_char_of(nats_per_token: float, tokens: int, chars: int) -> float:
    """Nats per token to bits per character of the same text, so char and BPE models compare."""
    return nats_per_token * tokens / chars / math.log(2)


# --- the spread and the ranks ------------------------------------------------------------------

@dataclass(frozen=True)
class Spread:
    """How far runs of the same settings end apart when only the seed changes."""

    bits: float | None  # the widest gap measured (bits per character); None: nothing measured yet
    groups: int = 0  # settings trained with two seeds or more
    runs: int = 0  # runs in those groups

    def sentence(self) -> str:
        if self.bits is None:
            return ("Seed-to-seed spread not measured yet: ranks separate any difference, however small. "
                    "Check the top three (teacher) or repeat a run with another seed to measure it.")
        return (f"Seed-to-seed spread {self.bits:.3f} bits/char: the widest gap between runs that differ only in "
                f"their seed ({self.runs} runs of {self.groups} setting{'s' if self.groups != 1 else ''}). "
                "Entries closer than that are tied.")


def seed_spread(by_settings: dict[str, list[float]]) -> Spread:
    """The spread from scores grouped by settings (everything but the seed); groups of one say nothing."""
    repeated = [scores for scores in by_settings.values() if len(scores) >= 2]
    if not repeated:
        return Spread(None)
    return Spread(max(max(s) - min(s) for s in repeated), len(repeated), sum(len(s) for s in repeated))


@dataclass(frozen=True)
class Entry:
    run_id: str
    handle: str
    label: str
    bits_per_char: float
    detail: str = ""  # rung and size, for the board


@dataclass(frozen=True)
class Standing:
    entry: Entry
    rank: int
    tied_with: tuple[str, ...] = ()  # handles of entries within the spread of this one

    @property
    def shown_rank(self) -> str:
        return f"{self.rank}=" if self.tied_with else str(self.rank)


def rank_entries(entries: list[Entry], spread_bits: float | None) -> list[Standing]:
    """Best first; an entry's rank is 1 + the entries ahead of it by more than the spread, and it is tied with
    every entry within the spread of it (without a measured spread, only equal scores tie). Sorted once and
    searched, so a lesson's hundreds of entries cost little."""
    margin = spread_bits or 0.0
    ordered = sorted(entries, key=lambda e: (e.bits_per_char, e.handle))
    scores = [e.bits_per_char for e in ordered]
    out = []
    for i, entry in enumerate(ordered):
        ahead = bisect.bisect_left(scores, entry.bits_per_char - margin)
        near = range(bisect.bisect_left(scores, entry.bits_per_char - margin),
                     bisect.bisect_right(scores, entry.bits_per_char + margin))
        out.append(Standing(entry, 1 + ahead, tuple(ordered[j].handle for j in near if j != i)))
    return out


# --- the board as the teacher keeps it -------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    handle: str
    label: str
    reason: str


@dataclass
class Board:
    """A challenge's board at one moment, plain data, so the frozen board is stored and exported as is."""

    title: str
    rules: str  # the rules in one line
    spread: Spread
    standings: list[Standing]
    waiting: list[tuple[str, str, str]] = field(default_factory=list)  # (handle, label, why not ranked yet)
    refused: list[Refusal] = field(default_factory=list)
    ended_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "rules": self.rules, "spread": asdict(self.spread), "ended_at": self.ended_at,
                "standings": [{**asdict(s.entry), "rank": s.rank, "tied_with": list(s.tied_with)}
                              for s in self.standings],
                "waiting": [list(w) for w in self.waiting], "refused": [asdict(r) for r in self.refused]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Board:
        standings = [Standing(Entry(s["run_id"], s["handle"], s["label"], s["bits_per_char"], s.get("detail", "")),
                              s["rank"], tuple(s["tied_with"])) for s in data["standings"]]
        return cls(data["title"], data["rules"], Spread(**data["spread"]), standings,
                   [tuple(w) for w in data.get("waiting", [])], [Refusal(**r) for r in data.get("refused", [])],
                   data.get("ended_at"))


CSV_COLUMNS = ("rank", "handle", "run", "model", "bits_per_char", "tied_with", "spread_bits")


def board_csv(board: Board) -> str:
    """The ranked entries, one row each, then the refused ones with their reason (rank column: ``refused``).

    Every text cell goes through ``csv_cell``: a name such as ``=HYPERLINK(…)`` is what a student types and the
    teacher opens in a spreadsheet, which would run it. Scores are written as plain numbers."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    spread = "" if board.spread.bits is None else f"{board.spread.bits:.4f}"
    for s in board.standings:
        writer.writerow([csv_cell(s.shown_rank), csv_cell(s.entry.handle), csv_cell(s.entry.label),
                         csv_cell(s.entry.detail), f"{s.entry.bits_per_char:.4f}",
                         csv_cell("; ".join(s.tied_with)), spread])
    for handle, label, why in board.waiting:
        writer.writerow(["not ranked", csv_cell(handle), csv_cell(label), csv_cell(why), "", "", spread])
    for r in board.refused:
        writer.writerow(["refused", csv_cell(r.handle), csv_cell(r.label), csv_cell(r.reason), "", "", spread])
    return out.getvalue()


def board_svg(board: Board, width: int = 960) -> str:
    """The board as a picture: rank, name, run and score, a bar per entry whose length is its lead over the last
    entry, and the spread drawn as a band from the leader's score, so a tie is visible as well as written."""
    row_h, top, left_w, right_w = 30, 110, 420, 90
    rows = board.standings
    height = top + row_h * max(1, len(rows)) + 40
    bar_w = width - left_w - right_w - 20
    scores = [s.entry.bits_per_char for s in rows]
    worst = max(scores) if scores else 1.0
    best = min(scores) if scores else 0.0
    span = max(worst - best, board.spread.bits or 0.0, 1e-6) * 1.1

    def x_of(bpc: float) -> float:  # the lower (better) the score, the longer the bar
        return left_w + bar_w * (worst - bpc + span * 0.05) / (span * 1.05)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="16" y="32" font-size="22" font-weight="bold">{escape(board.title)}</text>',
             f'<text x="16" y="58" font-size="13">{escape(board.rules)}</text>',
             f'<text x="16" y="80" font-size="13">{escape(board.spread.sentence())}</text>']
    if board.spread.bits and rows:
        band = x_of(best) - x_of(best + board.spread.bits)
        parts.append(f'<rect x="{x_of(best) - band:.1f}" y="{top - 8}" width="{band:.1f}" '
                     f'height="{row_h * len(rows) + 4}" fill="#f5c542" opacity="0.25"/>')
    for i, s in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="16" y="{y + 14}" font-size="15" font-weight="bold">{escape(s.shown_rank)}</text>')
        parts.append(f'<text x="60" y="{y + 14}" font-size="14">{escape(_clip(s.entry.handle, 22))}</text>')
        parts.append(f'<text x="230" y="{y + 14}" font-size="12" fill="#555">{escape(_clip(s.entry.detail, 30))}</text>')
        parts.append(f'<rect x="{left_w}" y="{y}" width="{max(1.0, x_of(s.entry.bits_per_char) - left_w):.1f}" '
                     f'height="{row_h - 10}" fill="{"#e08a00" if s.tied_with else "#1f77b4"}"/>')
        parts.append(f'<text x="{width - right_w}" y="{y + 14}" font-size="14">{s.entry.bits_per_char:.3f}</text>')
    if not rows:
        parts.append(f'<text x="16" y="{top + 14}" font-size="14">No entry has been scored yet.</text>')
    parts.append(f'<text x="{width - right_w}" y="{top - 14}" font-size="12" fill="#555">bits/char</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
