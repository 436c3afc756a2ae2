"""A challenge's board: one measurement for everyone, ranks that only separate what seeds cannot explain, and the
board as a table (CSV) and a picture (SVG) for the teacher to keep.

**The measurement.** Every entry is scored the same way, whatever its settings: its weights, in float32 and
evaluation mode, predict each of the first ``HELD_OUT_TOKENS`` tokens of the challenge's held-out split from the
tokens before it in windows of its own context length, with every causal mask on and after a check, as it
computes, that no position's logits move when later tokens change: no model switch can make a scored position read
its answer. Training-time validation losses are estimates from a few random batches a student chooses; this number
is not. It is read in bits per byte (``babygpt.units.bits_per_byte``): the nats paid on the held-out tokens, in
bits, per UTF-8 byte of the text they spell, so entries whose tokenizers cut the text differently compare. Boards
frozen before scores were in bits per byte keep their bits per character, and say so (``Board.unit``).

**The ranks.** Two runs with the same settings and different seeds end at different losses. If the gap between
two entries is no larger than that seed-to-seed spread, nothing says one is better, so they are shown as tied: an
entry's rank is one more than the number of entries *ahead of it by more than the spread*. The spread is measured,
never assumed: the widest gap between finished runs of the whole budget with the same settings that differ only
in their seed (the teacher's re-training of the top entries, or, before any, repeats the class made).
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import io
import math
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from babygpt.errors import BabyGPTError
from babygpt.model.gpt import LanguageModel, MultiHeadAttention
from babygpt.plain_text import csv_cell, html_literal

HELD_OUT_TOKENS = 65_536  # the tokens scored (the whole held-out split when it is shorter); bounds the cost


def held_out_ids(val: torch.Tensor) -> torch.Tensor:
    """The tokens a challenge scores on: the start of its held-out split, the same for every entry."""
    return val[: HELD_OUT_TOKENS + 1]


@contextmanager
def future_hidden(model: torch.nn.Module) -> Iterator[None]:
    """Every attention layer of ``model`` with its causal mask on, whatever the run was trained with: a model
    trained without the mask, run this way, shows what it can do when the next token is not there to read."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    saved = [layer.causal for layer in layers]
    for layer in layers:
        layer.causal = True
    try:
        yield
    finally:
        for layer, causal in zip(layers, saved, strict=True):
            layer.causal = causal


CAUSAL_CUTS = 64  # the most places a window is cut when checking that no position sees a later token
NOT_CAUSAL = ("Not scored: this model's prediction of a token changes when the tokens after it change, so it can "
              "see what it is asked to predict.")


@torch.no_grad()
def sees_the_future(model: LanguageModel, window: torch.Tensor, batch: int) -> bool:
    """Whether any position's logits change when only later tokens change: a window is cut at up to
    ``CAUSAL_CUTS`` places (every place in a window of up to 65 tokens), everything from the cut on is replaced by
    other tokens, and the logits before the cut must stay as they were. This checks the model as it computes, not
    its settings, so no switch (known today or added later) can let a scored position read its answer.

    Each forward pass carries the untouched window too, so the comparison is between rows of one batch (the same
    kernels, the same rounding) and ``batch`` rows at most, as in scoring."""
    n = min(CAUSAL_CUTS, len(window) - 1)
    cuts = sorted({round(1 + i * (len(window) - 2) / max(1, n - 1)) for i in range(n)})
    vocab = model.config.vocab_size
    per_pass = max(1, batch - 1)
    for first in range(0, len(cuts), per_pass):
        chunk = cuts[first:first + per_pass]
        rows = window.repeat(len(chunk) + 1, 1)
        for row, cut in enumerate(chunk, start=1):  # another token at every place from the cut on
            rows[row, cut:] = (rows[row, cut:] + 1 + row % (vocab - 1)) % vocab
        logits = model(rows)[0].float()
        for row, cut in enumerate(chunk, start=1):
            if not torch.allclose(logits[row, :cut], logits[0, :cut], rtol=1e-4, atol=1e-4):
                return True
    return False


@torch.no_grad()
def held_out_loss(model: LanguageModel, ids: torch.Tensor, block_size: int, batch: int) -> tuple[float, int]:
    """Mean cross-entropy (nats) over ``ids[1:]``, each token predicted once from up to ``block_size`` tokens
    before it (non-overlapping windows), in float32; returns it with the number of tokens predicted.

    The score cannot be gamed by a model switch: the model is scored with its causal mask on whatever it trained
    with (a run trained without the mask scores what it predicts, not what it read), and before scoring it is
    checked, as it computes, that no position sees a later token; a model that does raises ``NOT_CAUSAL``.

    ``batch`` windows go through each forward pass: the run's own batch size, so scoring never holds more
    activations than a training step did. Its cost is a forward pass over at most ``HELD_OUT_TOKENS`` tokens, about
    a third of what training on as many tokens costs, and the check's passes over at most ``CAUSAL_CUTS`` windows."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = ids.to(device)
    n_targets = len(ids) - 1
    full = n_targets // block_size
    total = torch.zeros((), dtype=torch.float64, device=device)
    try:
        with torch.autocast(device.type, enabled=False), future_hidden(model):
            if sees_the_future(model, ids[: min(block_size, n_targets)], batch):
                raise BabyGPTError(NOT_CAUSAL)
            for first in range(0, full, batch):
                starts = torch.arange(first, min(full, first + batch), device=device) * block_size
                offsets = starts[:, None] + torch.arange(block_size + 1, device=device)
                windows = ids[offsets]
                total += _loss_sum(model, windows[:, :-1], windows[:, 1:])
            rest = n_targets - full * block_size
            if rest:
                tail = ids[full * block_size:]
                total += _loss_sum(model, tail[None, :-1], tail[None, 1:])
    finally:
        model.train(was_training)
    return float(total / n_targets), n_targets


def _loss_sum(model: LanguageModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)[0].float()
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").double()


# The unit a board's scores are in: bits per byte since challenges count the held-out text's bytes; bits per
# character on boards (and challenges) from before, which keep their figures and say their unit.
BITS_PER_BYTE, BITS_PER_CHAR = "bits/byte", "bits/char"
UNIT_WORDS = {BITS_PER_BYTE: "bits per byte", BITS_PER_CHAR: "bits per character"}
CSV_SCORE_COLUMN = {BITS_PER_BYTE: "bits_per_byte", BITS_PER_CHAR: "bits_per_char"}


def bits_per_char_of(nats_per_token: float, tokens: int, chars: int) -> float:
    """Nats per token to bits per character of the same text: the score of a challenge set before challenges
    counted bytes (its rules know only the characters), so its open board keeps one unit to the end."""
    return nats_per_token * tokens / chars / math.log(2)


# --- the spread and the ranks ------------------------------------------------------------------

@dataclass(frozen=True)
class Spread:
    """How far runs of the same settings end apart when only the seed changes, and what it was measured on."""

    bits: float | None  # the median of the settings' seed ranges, in ``unit`` (``median_range``); None: not yet
    groups: int = 0  # settings trained with two seeds or more
    runs: int = 0  # runs in those groups
    source: str = ""  # "the teacher's checks" or "repeats by the class"
    unit: str = BITS_PER_BYTE  # the board's unit (bits/char on boards frozen before bits per byte)

    def sentence(self) -> str:
        if self.bits is None:
            return ("Seed-to-seed spread not measured yet (no two finished runs of the same settings with different "
                    "seeds): no ties are claimed, and ranks separate any difference, however small. The teacher's "
                    "Check the top three measures it, and so does a repeat of an entry with another seed.")
        source = f" ({self.source})" if self.source else ""
        settings = f"{self.groups} setting{'s' if self.groups != 1 else ''}"
        return (f"Seed-to-seed spread {self.bits:.3f} {self.unit} from {self.runs} runs of {settings}{source}: "
                f"the median of {settings}' seed ranges (each the gap between finished runs of the whole budget "
                "that differ only in their seed). Entries closer than that are tied.")


def seed_spread(by_settings: dict[str, list[float]], checked: set[str] | frozenset[str] = frozenset(),
                unit: str = BITS_PER_BYTE) -> Spread:
    """The spread from final scores grouped by settings (everything but the seed); groups of one say nothing.

    Once the teacher has checked entries (re-trained them with other seeds), only the checked settings count: the
    spread that matters is that of the entries compared at the top, and a setting chosen to be unstable (a
    learning rate at the edge of diverging, repeated with seeds until two end far apart) cannot then tie
    everyone. Before any check, every repeat the class made counts.

    The spread is the median of the settings' seed ranges (with an even number, the lower of the middle two: with
    two settings the smaller, with one that one), not the widest: a student whose unstable setting is among those
    checked cannot make the margin its range, because one setting never moves a median past the others'."""
    repeated = {key: scores for key, scores in by_settings.items() if len(scores) >= 2}
    if not repeated:
        return Spread(None, unit=unit)
    source = "repeats by the class"
    if any(key in checked for key in repeated):
        repeated = {key: scores for key, scores in repeated.items() if key in checked}
        source = "the teacher's checks"
    groups = list(repeated.values())
    return Spread(median_range(groups), len(groups), sum(len(s) for s in groups), source, unit)


def median_range(groups: list[list[float]]) -> float:
    """The median of the groups' ranges (max - min), the lower middle one when there is an even number: robust
    to one group's range however wide, and never wider than half the groups' ranges."""
    ranges = sorted(max(s) - min(s) for s in groups)
    return ranges[(len(ranges) - 1) // 2]


@dataclass(frozen=True)
class Entry:
    run_id: str
    handle: str
    label: str
    score: float  # in the board's unit: bits per byte (bits per character on boards frozen before)
    detail: str = ""  # rung and size, for the board
    owner: str | None = None  # the student's user key (None: the command line): "(you)" and the entry rule use it
    entries: int = 1  # how many ranked entries its student made (``counted_entries``)


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
    ordered = sorted(entries, key=lambda e: (e.score, e.handle))
    scores = [e.score for e in ordered]
    out = []
    for i, entry in enumerate(ordered):
        ahead = bisect.bisect_left(scores, entry.score - margin)
        near = range(bisect.bisect_left(scores, entry.score - margin),
                     bisect.bisect_right(scores, entry.score + margin))
        out.append(Standing(entry, 1 + ahead, tuple(ordered[j].handle for j in near if j != i)))
    return out


# --- the board as the teacher keeps it -------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    handle: str
    label: str
    reason: str


@dataclass(frozen=True)
class Unranked:
    """An entry without a rank (queued, training, stopped before the end of the budget, failed, finished after the
    end), with why in words. It unpacks as ``(handle, label, why)``, the columns the CSV writes."""

    handle: str
    label: str
    why: str
    run_id: str = ""  # so a final board can say what the run did after the end ("" on boards frozen before)

    def __iter__(self) -> Iterator[str]:
        return iter((self.handle, self.label, self.why))


# How several entries from one student count, set by the teacher with the challenge (``counted_entries``).
BEST_OF_EACH, EVERY_ENTRY = "best", "every"
ENTRY_RULES = {BEST_OF_EACH: "best entry of each student", EVERY_ENTRY: "every entry"}


@dataclass
class Board:
    """A challenge's board at one moment, plain data, so the frozen board is stored and exported as is."""

    title: str
    rules: str  # the rules in one line
    spread: Spread
    standings: list[Standing]
    waiting: list[Unranked] = field(default_factory=list)  # entries without a rank yet, and why
    refused: list[Refusal] = field(default_factory=list)
    ended_at: float | None = None
    entry_rule: str = EVERY_ENTRY  # the teacher's rule for several entries from one student (older boards: every)
    unit: str = BITS_PER_BYTE  # what the scores and the spread are in (boards frozen before bits per byte: bits/char)
    about: dict[str, str] = field(default_factory=dict)  # which challenge: text, tokenizer, budget… (CSV's head)

    def __post_init__(self) -> None:
        self.waiting = [w if isinstance(w, Unranked) else Unranked(*w) for w in self.waiting]
        if self.unit not in UNIT_WORDS:
            raise BabyGPTError(f"A board's scores are in {' or '.join(UNIT_WORDS)}, not {self.unit!r}.")

    @property
    def unit_words(self) -> str:
        """The unit as a sentence says it: "bits per byte" (or "bits per character" on an older board)."""
        return UNIT_WORDS[self.unit]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "rules": self.rules, "spread": asdict(self.spread), "ended_at": self.ended_at,
                "standings": [{**asdict(s.entry), "rank": s.rank, "tied_with": list(s.tied_with)}
                              for s in self.standings],
                "waiting": [asdict(w) for w in self.waiting], "refused": [asdict(r) for r in self.refused],
                "entry_rule": self.entry_rule, "unit": self.unit, "about": dict(self.about)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Board:
        """A stored board as it was frozen. One stored before scores were in bits per byte has no ``unit`` and its
        entries' scores under ``bits_per_char``: it is read back in bits per character, and says so."""
        unit = data.get("unit", BITS_PER_CHAR)
        standings = [Standing(Entry(s["run_id"], s["handle"], s["label"], s["score"] if "score" in s else
                                    s["bits_per_char"], s.get("detail", ""), s.get("owner"), s.get("entries", 1)),
                              s["rank"], tuple(s["tied_with"])) for s in data["standings"]]
        waiting = [Unranked(**w) if isinstance(w, dict) else Unranked(*w) for w in data.get("waiting", [])]
        return cls(data["title"], data["rules"], Spread(**{**data["spread"], "unit": unit}), standings, waiting,
                   [Refusal(**r) for r in data.get("refused", [])], data.get("ended_at"),
                   data.get("entry_rule", EVERY_ENTRY), unit, dict(data.get("about", {})))


# --- several entries from one student: the teacher's rule -----------------------------------------

def counted_entries(entries: list[Entry], rule: str) -> list[Entry]:
    """The entries the board ranks under the teacher's rule, each with how many scored entries its student made.
    ``BEST_OF_EACH``: one line per student, its best score, and the board says of how many (a student who re-enters
    until a lucky seed comes up shows as "best of 9"). ``EVERY_ENTRY``: every scored entry has its line. Students
    are told apart by user key, never by name."""
    by_student: dict[str | None, list[Entry]] = {}
    for entry in entries:
        by_student.setdefault(entry.owner, []).append(entry)
    students = [[dataclasses.replace(e, entries=len(own)) for e in own] for own in by_student.values()]
    if rule == EVERY_ENTRY:
        return [e for own in students for e in own]
    return [min(own, key=lambda e: (e.score, e.run_id)) for own in students]


def entry_rule_sentence(board: Board) -> str:
    """The teacher's rule for several entries, as the board states it, with what it did on this board."""
    if board.entry_rule == EVERY_ENTRY:
        owners = [s.entry.owner for s in board.standings]
        several = len({o for o in owners if owners.count(o) > 1})
        return (f"The teacher's rule: every entry is ranked, several from one student too ({several} "
                f"student{'s' if several != 1 else ''} entered more than once).")
    left_out = sum(s.entry.entries - 1 for s in board.standings)
    others = f" ({left_out} other entr{'ies' if left_out != 1 else 'y'} not ranked)" if left_out else ""
    return (f"The teacher's rule: only each student's best entry is ranked, marked with how many entries it is the "
            f"best of{others}.")


def csv_columns(board: Board) -> tuple[str, ...]:
    """The CSV's header: the score column names the board's unit (``bits_per_byte``; ``bits_per_char`` on a board
    frozen before), so a spreadsheet never holds a number without its unit. ``model`` is always a model; why an
    entry has no rank is in ``status``."""
    return "rank", "handle", "run", "model", CSV_SCORE_COLUMN[board.unit], "tied_with", "spread_bits", "status"


CSV_COMMENT = "#"  # the first cell of the rows that say which challenge the file is, before the header


def csv_about(board: Board) -> list[tuple[str, str]]:
    """Which challenge the file is, as (key, value) rows: its title, text, tokenizer, budget and the rest, and when
    it ended. A board frozen before kept only its rules sentence, which is written instead."""
    ended = "" if board.ended_at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(board.ended_at))
    facts = list(board.about.items()) or [("rules", board.rules)]
    return [("challenge", board.title), *facts, ("ended", ended or "not ended"), ("score unit", board.unit_words),
            ("entries counted", ENTRY_RULES.get(board.entry_rule, board.entry_rule))]


def board_csv(board: Board) -> str:
    """First which challenge it is, as ``# key,value`` rows (a spreadsheet reads them as two text cells; a
    program skips rows whose first cell starts with ``#``), then the header, the ranked entries one row each, the
    unranked ones with why in ``status`` (rank column: ``not ranked``), the refused ones with their reason (rank
    column: ``refused``).

    Every text cell goes through ``csv_cell``: a name such as ``=HYPERLINK(…)`` is what a student types and the
    teacher opens in a spreadsheet, which would run it. Scores are written as plain numbers."""
    out = io.StringIO()
    writer = csv.writer(out)
    for key, value in csv_about(board):
        writer.writerow([csv_cell(f"{CSV_COMMENT} {key}"), csv_cell(value)])
    writer.writerow(csv_columns(board))
    spread = "" if board.spread.bits is None else f"{board.spread.bits:.4f}"
    for s in board.standings:
        writer.writerow([csv_cell(s.shown_rank), csv_cell(s.entry.handle), csv_cell(s.entry.label),
                         csv_cell(s.entry.detail), f"{s.entry.score:.4f}",
                         csv_cell("; ".join(s.tied_with)), spread, "ranked"])
    for handle, label, why in board.waiting:
        writer.writerow(["not ranked", csv_cell(handle), csv_cell(label), "", "", "", spread, csv_cell(why)])
    for r in board.refused:
        writer.writerow(["refused", csv_cell(r.handle), csv_cell(r.label), "", "", "", spread, csv_cell(r.reason)])
    return out.getvalue()


def csv_table(text: str) -> list[list[str]]:
    """A board's CSV read back as its header and rows, without the ``# key,value`` rows before them."""
    return [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith(CSV_COMMENT)]


def _tick_step(top: float, most: int = 6) -> float:
    """A round step (1, 2, 2.5 or 5 × a power of ten) that divides 0..``top`` into at most ``most`` intervals."""
    raw = max(top, 1e-9) / most
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def board_svg(board: Board, width: int = 960) -> str:
    """The board as a picture: rank, name, model and score, and a bar per entry as long as its score on one scale
    that starts at 0 in the board's unit (bits/byte, written over the scores and under the bars), so two scores
    0.02 apart are two bars of nearly one length, as they are nearly one score. The spread is a band from the
    leader's score: a bar that ends inside it is tied with the leader. Every user's string is text
    (``html_literal``)."""
    row_h, left_w, right_w, chars = 30, 420, 90, 125
    rows = board.standings
    scores = [s.entry.score for s in rows]
    spread = board.spread.bits or 0.0
    step = _tick_step(max([*scores, min(scores, default=0.0) + spread, 1e-6]))
    scale_max = step * math.ceil(max([*scores, min(scores, default=0.0) + spread, step]) / step)
    bar_w = width - left_w - right_w - 20

    def x_of(score: float) -> float:
        return left_w + bar_w * score / scale_max

    header = [(board.title, 22, "bold")] + [(line, 13, "normal") for text in (board.rules, board.spread.sentence())
                                            for line in textwrap.wrap(text, chars)]
    parts, y = [], 10
    for text, size, weight in header:
        y += size + 10
        parts.append(f'<text x="16" y="{y}" font-size="{size}" font-weight="{weight}">{html_literal(text)}</text>')
    top = y + 40
    height = top + row_h * max(1, len(rows)) + 60
    parts.insert(0, f'<rect width="{width}" height="{height}" fill="white"/>')
    parts.insert(0, f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                    f'viewBox="0 0 {width} {height}" font-family="sans-serif">')
    parts.append(f'<text x="{width - right_w}" y="{top - 14}" font-size="12" fill="#555">{board.unit}</text>')
    if spread and rows:
        parts.append(f'<rect class="spread" x="{x_of(scores[0]):.1f}" y="{top - 8}" '
                     f'width="{x_of(scores[0] + spread) - x_of(scores[0]):.1f}" height="{row_h * len(rows) + 4}" '
                     f'fill="#f5c542" opacity="0.35"/>')
    for i, s in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="16" y="{y + 14}" font-size="15" font-weight="bold">{html_literal(s.shown_rank)}</text>')
        parts.append(f'<text x="60" y="{y + 14}" font-size="14">{html_literal(_clip(s.entry.handle, 22))}</text>')
        parts.append(f'<text x="230" y="{y + 14}" font-size="12" fill="#555">'
                     f'{html_literal(_clip(s.entry.detail, 30))}</text>')
        parts.append(f'<rect class="bar" x="{left_w}" y="{y}" width="{x_of(s.entry.score) - left_w:.1f}" '
                     f'height="{row_h - 10}" fill="{"#e08a00" if s.tied_with else "#1f77b4"}">'
                     f'<title>{html_literal(s.entry.handle)}: {s.entry.score:.3f} {board.unit}</title></rect>')
        parts.append(f'<text x="{width - right_w}" y="{y + 14}" font-size="14">{s.entry.score:.3f}</text>')
    if not rows:
        parts.append(f'<text x="16" y="{top + 14}" font-size="14">No entry has been scored yet.</text>')
    axis_y = top + row_h * max(1, len(rows))
    parts.append(f'<line x1="{left_w}" y1="{axis_y}" x2="{x_of(scale_max):.1f}" y2="{axis_y}" stroke="#555"/>')
    for k in range(round(scale_max / step) + 1):
        x = x_of(k * step)
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" stroke="#555"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{axis_y + 18}" font-size="11" text-anchor="middle" '
                     f'fill="#555">{k * step:g}</text>')
    parts.append(f'<text x="16" y="{axis_y + 40}" font-size="12" fill="#555">Bars start at 0 {board.unit} and '
                 "are as long as the score (lower is better). Shaded: the spread from the leader; a bar ending in it "
                 "ties.</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
