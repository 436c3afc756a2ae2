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
import string

# CommonMark lets every ASCII punctuation character be backslash-escaped, and an escaped character is always a
# literal. That covers links, images, emphasis, code, HTML tags, tables, headings and lists, and Streamlit's own
# extensions: ``:red[...]`` colours, ``:material/x:`` icons and ``:smile:`` shortcodes need ``:``, LaTeX needs ``$``.
_MARKDOWN_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")
# GFM also links bare addresses (``www.x.org``, ``https://x.org``, ``a@b.org``); the escapes above break every
# one of them, since an autolink literal cannot contain a backslash.


def markdown_literal(text: object) -> str:
    """``text`` to put inside a Markdown string (st.markdown, st.caption, st.warning, st.info, st.error, labels,
    st.metric, st.toast, st.progress): every punctuation mark escaped, line breaks flattened to spaces, so it
    shows exactly as typed and can make no element, link, image, colour or line of its own."""
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def html_literal(text: object) -> str:
    """``text`` for HTML, SVG and plotly labels (legends, hovers, titles, annotations): ``&``, ``<``, ``>`` and
    quotes as entities. Plotly draws a subset of HTML in every label (``<a href>``, ``<img>`` is not drawn but
    ``<a>`` is a live link) and decodes entities, so the escaped text shows as typed and is never a tag."""
    return html.escape(str(text), quote=True)


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
