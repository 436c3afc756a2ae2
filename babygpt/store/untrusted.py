"""What a file from outside may cost this server, priced before it is read, and one import at a time.

Imports run in the server's own process, the one Streamlit process every student's page shares. A separate process
per import was weighed and left: each would import torch again (seconds, and some 300 MB before it reads a byte),
and a memory rlimit sits badly with the address space torch reserves. The bound lives here instead, in two parts:

* every parse is priced before it starts (``JsonBudget``: the file's size, how many values it can hold, how deep it
  nests and its longest string, all counted on the raw text), so a 54 KB zip that unpacks to a file of a million
  empty lists is refused on its count, not after Python has built the million lists; the worst file a budget lets
  through is measured in ``tests/test_import_memory.py``;
* one import runs at a time in a store (``import_slot``, a lock on a file in ``BABYGPT_HOME``, so the server and a
  terminal on the same store share it): whatever several students do at once, imports hold one import's memory.

Numbers are held to what a file of weights' settings can mean: no NaN or Infinity, no float that overflows, no integer
of more digits than any size has. Weights are refused when any value is not finite (``check_finite``): such a model
imports, and then fails for whoever opens it.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from babygpt.errors import BabyGPTError, ImportRefused, full_disk_as_sentence
from babygpt.units import format_bytes as format_size  # the importers' sentences name sizes by it

IMPORT_LOCK = ".import.lock"
BUSY_MESSAGE = ("Another import is running on this server; try again in a moment. Imports run one at a time, so "
                "that together they cannot take the memory the class's training needs.")
MAX_INT_DIGITS = 20  # no size, id or count in these files comes near 10**20
SQLITE_INT_MAX = 2**63 - 1  # SQLite stores a whole number in 64 bits: a larger one is refused before it is written


class ImportBusy(BabyGPTError):
    """Another import holds the store's import slot."""


@dataclass(frozen=True)
class JsonBudget:
    """What one JSON file may cost to parse: its bytes, its values (every number, string, key, list and object is a
    Python object), how deep it nests and its longest string, in characters of its text."""

    max_bytes: int
    max_values: int
    max_depth: int = 16
    max_string: int = 4096


def _value_bound(text: str) -> int:
    """At least the number of values the text can parse to: an array of k values has k-1 commas, an object of k
    pairs k-1 commas and k colons (its keys are values too), and every container its opening bracket. Commas and
    colons inside strings are counted too, so the bound is never below the truth."""
    return text.count(",") + text.count(":") + text.count("[") + text.count("{") + 1


def _without_escapes(text: str) -> str:
    """The text with every escape inside a string (``\\\\`` and ``\\"`` above all) replaced by two plain characters:
    what remains pairs its quotes one after another, opening and closing."""
    return text.replace("\\\\", "__").replace('\\"', "__")


def _has_long_string(plain: str, longest: int) -> bool:
    """Whether a string runs past ``longest`` characters: strings up to it collapse to ``""``, left to right, so a
    longer one leaves its opening quote alone."""
    return '"' in re.sub(f'"[^"]{{0,{longest}}}"', '""', plain).replace('""', "")


def _nests_deeper(plain: str, depth: int) -> bool:
    """Whether the brackets outside strings nest deeper than ``depth``: each pass removes the innermost pairs, so
    ``depth`` passes empty any nesting up to it (an unbalanced text stops changing, and the parser names it)."""
    brackets = re.sub(r"[^\[\]{}]", "", re.sub(r'"[^"]*"', "", plain))
    for _ in range(depth):
        reduced = brackets.replace("[]", "").replace("{}", "")
        if reduced == brackets:
            return False
        brackets = reduced
    return "[]" in brackets or "{}" in brackets


def _refuse_constant(name: str) -> Any:
    raise ImportRefused(f"holds {name}, which is not a number a setting or an id can have")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ImportRefused(f"holds the number {text[:20]}, too large for a float")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ImportRefused(f"holds a whole number of {len(text.lstrip('-'))} digits; no size or id has more than "
                            f"{MAX_INT_DIGITS}")
    return int(text)


def check_json_cost(raw: bytes, what: str, budget: JsonBudget) -> str:
    """The text of a JSON file whose parse fits ``budget``, or a refusal naming which bound it passes."""
    if len(raw) > budget.max_bytes:
        raise ImportRefused(f"Refused: {what} is {format_size(len(raw))}, more than such a file needs (at most "
                            f"{format_size(budget.max_bytes)}).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(f"Refused: {what} is not UTF-8 text.") from None
    # every check below is a few passes of the regular-expression engine or of str methods: linear, in C
    if _value_bound(text) > budget.max_values:
        raise ImportRefused(f"Refused: {what} holds more than {budget.max_values:,} values, more than such a file "
                            "needs.")
    plain = _without_escapes(text)
    if _has_long_string(plain, budget.max_string):
        raise ImportRefused(f"Refused: {what} holds a string longer than {budget.max_string:,} characters; such a "
                            "file's are shorter.")
    if _nests_deeper(plain, budget.max_depth):
        raise ImportRefused(f"Refused: {what} nests more than {budget.max_depth} levels deep; such a file nests a "
                            "few.")
    return text


def load_json(raw: bytes, what: str, budget: JsonBudget) -> Any:
    """Parse a JSON file from outside, its cost checked first (``check_json_cost``). Every failure is a sentence
    naming ``what`` (a file's name in its folder), never the parser's traceback."""
    text = check_json_cost(raw, what, budget)
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except ImportRefused as exc:
        raise ImportRefused(f"Refused: {what} {exc}.") from None
    except json.JSONDecodeError as exc:
        raise ImportRefused(f"Refused: {what} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                            f"{exc.colno}).") from None
    except (RecursionError, ValueError):  # the scan above makes both unreachable; a sentence all the same
        raise ImportRefused(f"Refused: {what} is not valid JSON.") from None


def local_name(name: str, fallback: str) -> str:
    """A person's file name as the name of a file on this server (their upload, kept so that sentences name it):
    its last part, no control character, at most 200 bytes of UTF-8 (file systems allow 255)."""
    last = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/").rsplit("/", 1)[-1])
    short = last.encode("utf-8")[:200].decode("utf-8", errors="ignore")
    return short if short.strip(". ") else fallback


def check_number(value: Any, what: str, low: float, high: float, whole: bool = False) -> None:
    """Refuse a number from a file that is not one (a bool, a string), not finite, not whole where it must be, or
    outside ``low`` to ``high`` (always within SQLite's 64-bit whole numbers): it would be stored and drawn, or make
    the store raise a traceback."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "a whole number" if whole else "a number"
        raise ImportRefused(f"Refused: {what} must be {kind}, not {str(value)[:20]!r}.")
    if not math.isfinite(value) or not max(low, -SQLITE_INT_MAX) <= value <= min(high, SQLITE_INT_MAX):
        raise ImportRefused(f"Refused: {what} is {str(value)[:24]}, outside what it can be ({low:g} to {high:g}).")


def plain_name(text: str, fallback: str, limit: int = 120) -> str:
    """A name from a file as a run's name: no control or format character (bidi controls that reorder what a
    classmate reads, zero-width characters that make two names look alike), spaces collapsed, at most ``limit``
    characters."""
    kept = "".join(c for c in text if not unicodedata.category(c).startswith("C") or c in " \t")
    name = " ".join(kept.split())[:limit]
    return name or fallback


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse weights holding NaN or an infinity: the model would load, and every text it wrote would fail."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ImportRefused(f"Refused: {what} holds values that are not numbers (NaN or infinity) in {name}; "
                                "a model with them cannot compute anything.")


@contextmanager
def import_slot(home: str | Path) -> Iterator[None]:
    """Hold the store's one import slot for the import in the block, or refuse at once with ``BUSY_MESSAGE``.

    A lock on a file (``flock``) rather than in memory: it holds across the server's threads and any terminal on
    the same ``BABYGPT_HOME``, and the system lets it go when its process ends, however it ends. A full disk
    inside the block is ``DiskFull``'s sentence."""
    with full_disk_as_sentence(), open(Path(home) / IMPORT_LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ImportBusy(BUSY_MESSAGE) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
