"""Whatever a user types is data: one place that makes a user's string safe for each medium that shows it.

A student's display name, a run's name and an uploaded file's name reach every other screen in a class (the
board, the sidebar's progress line, chart legends, the frozen board's SVG and CSV). Each medium interprets some
characters: Streamlit's Markdown turns ``![x](http://…)`` into an image every viewer's browser fetches, plotly
turns ``<a href>`` in a legend into a live link, a spreadsheet runs a cell that starts with ``=``. Each function
below neutralises exactly what its medium interprets and leaves the text as the user wrote it to the eye.
"""

from __future__ import annotations

import html
import re

# Measured in Streamlit 1.67's Markdown, in Chromium (tests/test_hostile_text_browser.py), construct by construct:
# - a backslash makes CommonMark's punctuation literal: links and images ``[``, emphasis ``*`` ``_``, code `````,
#   HTML and autolinks ``<``, strikethrough ``~``, LaTeX ``$``, tables ``|``, headings ``#``, entities ``&``. An
#   ``_`` between two letters or digits opens nothing (``n_layer``), so it is left as it is.
# - Streamlit's ``:smile:`` shortcodes, ``:material/x:`` icons and ``:red[x]`` directives are found after the
#   escapes are read: a backslash before ``:`` does not stop them, the character reference ``&#58;`` does. Only a
#   ``:`` that could open one (a letter, ``_+-/``, or digits and ``:`` after it) is written so; "at 10:30" stays.
# - GFM links bare addresses (``www.x.org``, ``http://x``, ``a@b.org``) in the text as read, escapes and references
#   decoded, so neither stops them. An invisible WORD JOINER (U+2060) inside each (after ``www``, before ``://``,
#   after ``@``) does: the text looks as typed, and is no address.
# - Lists, quotes and rules start a line: line breaks are flattened, and a leading ``-``, ``+`` or ``1.`` escaped.
_BACKSLASHED = re.compile(r"([\\`*\[\]<>~$|#&])")
_LONE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an ``_`` not between two letters or digits
_OPENING_COLON = re.compile(r":(?=[A-Za-z_+/\-]|\d+:)")
_ADDRESS = re.compile(r"(?i)(?<=www)(?=\.)|(?=://)|(?<=@)")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+])")
WORD_JOINER = "\u2060"
# Direction controls reverse or isolate the text after them until a matching close that a user's string need not
# have: an uploaded file named "x\u202etxt.exe" would turn the rest of every line it is shown in, other students'
# names included. Every medium shows them as their code point instead, visible and inert.
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")
_BIDI = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def visible_controls(text: object) -> str:
    """``text`` with each direction control written as its code point (‹U+202E›), so it cannot turn what follows."""
    return _BIDI.sub(lambda m: f"‹U+{ord(m[0]):04X}›", str(text))


def markdown_literal(text: object) -> str:
    """``text`` to put inside a Markdown string (st.markdown, st.caption, st.warning, st.info, st.error, labels,
    help, st.metric, st.toast, st.progress, st.expander): line breaks flattened to spaces, and every character that
    could open a construct neutralised (see above), so it shows as typed and can make no element, link, image,
    colour, icon or line of its own. Ordinary sentences keep their punctuation as it is ("broken.zip: n_layer='x'"),
    so a library's message reads the same in the app's element tree as in the library."""
    out = _BACKSLASHED.sub(r"\\\1", " ".join(visible_controls(text).split()))
    out = _LONE_UNDERSCORE.sub(r"\\_", out)
    out = _ADDRESS.sub(WORD_JOINER, out)
    out = _OPENING_COLON.sub("&#58;", out)
    return _LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", out)


def html_literal(text: object) -> str:
    """``text`` for HTML, SVG and plotly labels (legends, hovers, titles, annotations): ``&``, ``<``, ``>`` and
    quotes as entities. Plotly draws a subset of HTML in every label (``<img>`` is not drawn but ``<a>`` is a live
    link) and decodes ``&amp;``, ``&lt;``, ``&gt;`` and numeric entities after it has split the label into tags,
    so the escaped text shows as typed and is never a tag. ``"`` is written ``&#34;``, not ``&quot;``, which
    plotly would show as is."""
    return html.escape(visible_controls(text), quote=True).replace("&quot;", "&#34;")


# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula starts with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(text: object) -> str:
    """A cell of a CSV a teacher opens in a spreadsheet: text that starts like a formula gets a leading ``'`` so
    it stays text (OWASP: CSV injection). Numbers are written by the caller as numbers, never through here."""
    value = str(text)
    if value.startswith(_FORMULA_START) or (value and value.lstrip().startswith(_FORMULA_START)):
        return "'" + value
    return value


_FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name_part(text: object, fallback: str = "run", limit: int = 60) -> str:
    """A piece of a download's file name from a user's string: letters, digits, ``.``, ``_`` and ``-`` only (no
    path separator, no quote that could break a Content-Disposition header), never empty or a dot file."""
    part = _FILE_NAME_UNSAFE.sub("-", str(text)).strip(".-")[:limit].strip(".-")
    return part or fallback
