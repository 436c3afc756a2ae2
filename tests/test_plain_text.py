"""What a user types stays text: each medium's escaping, checked on the strings a hostile student would type."""

import csv
import html
import io
import re

import pytest

from babygpt.plain_text import WORD_JOINER, csv_cell, file_name_part, html_literal, markdown_literal

HOSTILE = [
    "![x](http://198.51.100.7/p.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    ":red[teacher]",
    "$\\frac{1}{0}$",
    "**bold** _it_ `code`",
    "www.example.org",
    "https://example.org/x",
    "# heading",
    "| a | b |",
    ":smile: :material/star: :+1: a@b.org ~~gone~~ &lt;b&gt;",
]


def as_read(escaped: str) -> str:
    """What Markdown reads from ``markdown_literal``'s text: escapes and references decoded, joiners invisible."""
    return re.sub(r"\\(.)|&#(\d+);", lambda m: m[1] or chr(int(m[2])), escaped).replace(WORD_JOINER, "")


@pytest.mark.parametrize("name", HOSTILE)
def test_markdown_literal_reads_back_as_typed_and_opens_nothing(name):
    escaped = markdown_literal(name)
    assert as_read(escaped) == name
    marks = escaped.replace("&#58;", ":")  # the one reference it writes, for a ':' that could open a directive
    for i, ch in enumerate(marks):  # what opens a link, an image, emphasis, code, HTML, LaTeX or a table
        if ch in "[]<>*`$|#~&":
            assert marks[i - 1] == "\\", (name, escaped)
    assert not re.search(r":[A-Za-z]", escaped), "a colour, icon or shortcode needs a bare ':' before a letter"
    assert not re.search(r"(?i)www\.|://|@\w", escaped), "a bare address is linked even when escaped"


def test_markdown_literal_leaves_ordinary_sentences_alone():
    sentence = "broken.zip is not a readable zip file: n_layer='oops' at 10:30 (127.0.0.1:1), 3 + 4 - 2 = 5!"
    assert markdown_literal(sentence) == sentence


def test_markdown_literal_flattens_line_breaks_and_escapes_what_starts_a_line():
    assert markdown_literal("a\n\n# b") == "a \\# b"
    assert markdown_literal("- item") == "\\- item" and markdown_literal("1. one") == "1\\. one"
    assert markdown_literal("_x_ snake_case_") == "\\_x\\_ snake_case\\_"


def test_html_literal_makes_no_tag():
    assert html_literal('<a href="x">y</a> & z') == "&lt;a href=&#34;x&#34;&gt;y&lt;/a&gt; &amp; z"
    assert html.unescape(html_literal("<img src='x'> \"&amp;\"")) == "<img src='x'> \"&amp;\""


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "  =HYPERLINK(\"x\")"])
def test_csv_cell_neutralises_formulas(cell):
    written = io.StringIO()
    csv.writer(written).writerow([csv_cell(cell)])
    value = next(csv.reader(io.StringIO(written.getvalue())))[0]
    assert value.startswith("'") and value[1:] == cell


def test_csv_cell_keeps_ordinary_names():
    assert csv_cell("Ada Lovelace") == "Ada Lovelace"


def test_file_name_part_has_no_separator_or_quote():
    assert file_name_part('../../etc/"x"; y') == "etc-x-y"
    assert file_name_part("...") == "run"


def test_a_direction_control_is_shown_as_its_code_point_in_every_medium():
    """An uploaded file named "x\u202etxt.exe" would reverse the rest of every line it is shown in (a classmate's
    owner tag after it included): every medium writes it as its code point, visible and inert."""
    from babygpt.plain_text import BIDI_CONTROLS, html_literal, markdown_literal, visible_controls

    name = "notes\u202etxt.exe.txt · owner"
    for shown in (markdown_literal(name), html_literal(name), visible_controls(name)):
        assert not any(c in BIDI_CONTROLS for c in shown), shown
        assert "‹U+202E›txt.exe.txt" in shown
    assert visible_controls("\u2066a\u2069\u200f") == "‹U+2066›a‹U+2069›‹U+200F›"
    assert visible_controls("plain, at 10:30") == "plain, at 10:30"


def test_the_run_picker_shows_a_direction_control_in_a_runs_name_as_its_code_point():
    from ui.widgets import run_label

    row = {"owner": "someone-else", "label": "modern on x\u202etxt.exe.txt", "preset": "modern", "steps": 0,
           "best_val_loss": None}
    label = run_label(row, name=lambda owner, check: "user cee52a")
    assert "\u202e" not in label and "‹U+202E›txt.exe.txt" in label and label.endswith("user cee52a")
