"""What a user types stays text: each medium's escaping, checked on the strings a hostile student would type."""

import csv
import io

import pytest

from babygpt.plain_text import csv_cell, file_name_part, html_literal, markdown_literal

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
]


@pytest.mark.parametrize("name", HOSTILE)
def test_markdown_literal_escapes_every_punctuation_mark(name):
    escaped = markdown_literal(name)
    # every punctuation mark is preceded by a backslash, so none can open a construct
    for i, ch in enumerate(escaped):
        if ch in "![]()<>:$*_`#|":
            assert escaped[i - 1] == "\\", (name, escaped)
    assert escaped.replace("\\", "") == name.replace("\\", "")


def test_markdown_literal_flattens_line_breaks():
    assert markdown_literal("a\n\n# b") == "a \\# b"


def test_html_literal_makes_no_tag():
    assert html_literal('<a href="x">y</a> & z') == "&lt;a href=&quot;x&quot;&gt;y&lt;/a&gt; &amp; z"


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
