"""A lesson in a link: the settings that define an experiment, read from and written to a URL's query.

A teacher hands out one link; it opens with the text, tokenizer (a BPE's size and pre-split too), rung, sizes and
lesson tab set. Every value is checked here: a bad one is named, with the default used instead, and never stops
the page. The user's own key (``user``) is never part of a lesson link: it is who you are, not what you study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from babygpt.config import FORM_SETTINGS, PRESETS
from babygpt.errors import BabyGPTError
from babygpt.text.bpe import BYTES, MAX_BPE_VOCAB, SPLIT_NAMES, check_vocab_size
from babygpt.text.datasets import registry
from babygpt.text.tokenizers import TOKENIZERS

LESSON_TABS = {"race": "The ladder race", "tokenizers": "Which tokenizer?", "scale": "Why scale q·k",
               "positions": "Positional encodings", "embeddings": "Embeddings", "first-step": "The first step",
               "surprise": "Where it is surprised", "induction": "Induction heads"}
# what a link may set besides the form's settings (``babygpt.config.SETTINGS``, which say what each accepts); the
# device is left out: it names this server's hardware, not the lesson
CHOICES: dict[str, tuple] = {
    "corpus": (),  # filled from the dataset registry when parsing
    "tokenizer": TOKENIZERS,
    "bpe_split": SPLIT_NAMES,  # the pre-split of a BPE learned from the text
    "preset": tuple(PRESETS),
    "lesson": tuple(LESSON_TABS),
}
LINKED_SETTINGS = {s.name: s for s in FORM_SETTINGS if s.name != "device"}
BPE_VOCAB = "bpe_vocab"  # the size of a BPE learned from the text (the server's own bound is applied on arrival)
LINK_KEYS = ("corpus", "tokenizer", BPE_VOCAB, "bpe_split", "preset", *LINKED_SETTINGS, "lesson")


@dataclass
class LessonLink:
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class TooLarge(ValueError):
    """A number written out in full that no setting can hold (a 5,000-digit ``max_iters``): too large, not 'not a
    number'."""


def _number(raw: str, kind: type) -> int | float:
    value = float(raw)
    if math.isinf(value) and not raw.lstrip("+-").lower().startswith("inf"):
        raise TooLarge
    if not math.isfinite(value):
        raise ValueError
    if kind is int:
        if value != int(value):
            raise ValueError
        return int(value)
    return value


def _shown(raw: str, limit: int = 40) -> str:
    """A link's value as a problem quotes it: cut to ``limit`` characters, so a value of ten thousand is named,
    not echoed."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")


def parse_link(params: Mapping[str, str]) -> LessonLink:
    """The lesson settings a URL's query carries; each bad value is a problem in words, and is left out."""
    link = LessonLink()
    corpora = tuple(registry())
    for key in LINK_KEYS:
        raw = params.get(key)
        if raw is None:
            continue
        raw = str(raw).strip()
        if key in LINKED_SETTINGS:
            setting = LINKED_SETTINGS[key]
            value: Any = raw
            if setting.kind in (int, float):
                try:
                    value = _number(raw, setting.kind)
                except TooLarge:
                    link.problems.append(f"{key}={_shown(raw)} in the link is too large a number for {key}; "
                                         "the default is used.")
                    continue
                except ValueError:
                    link.problems.append(f"{key}={_shown(raw)} in the link is not a "
                                         f"{'whole ' if setting.kind is int else ''}number; the default is used.")
                    continue
            problem = setting.problem(value)
            if problem:
                link.problems.append(f"In the link: {problem} The default is used.")
                continue
            link.values[key] = value
            continue
        if key == BPE_VOCAB:
            try:
                link.values[key] = check_vocab_size(_number(raw, int))
            except (ValueError, BabyGPTError):
                link.problems.append(f"{key}={_shown(raw)} in the link is not a BPE vocabulary size (a whole number from "
                                     f"{BYTES} to {MAX_BPE_VOCAB:,}); the default is used.")
            continue
        choices = corpora if key == "corpus" else CHOICES[key]
        if raw not in choices:
            link.problems.append(f"{key}={_shown(raw)} in the link is not one of {', '.join(map(str, choices))}; "
                                 "the default is used.")
            continue
        link.values[key] = raw
    return link


def make_link(base_url: str, values: Mapping[str, Any]) -> str:
    """``base_url`` with the lesson settings as its query (never the user's key)."""
    query = urlencode({k: values[k] for k in LINK_KEYS if values.get(k) is not None})
    return f"{base_url.split('?')[0]}?{query}" if query else base_url.split("?")[0]


LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # names of this computer that no other computer can open


def shareable_base(browser_url: str | None, host: str | None = None, lan_address: str | None = None) -> str:
    """The address a shared link starts with: the one the browser used (its URL, else the Host header it sent),
    with this computer's own name (localhost) replaced by its address on the network (``lan_address``), so a
    teacher who opened the app on the server itself hands out a link students' machines can open."""
    parts = urlsplit(browser_url or (f"http://{host}/" if host else ""))
    if parts.hostname in LOOPBACK and lan_address:
        netloc = f"[{lan_address}]" if ":" in lan_address else lan_address
        parts = parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc)
    return urlunsplit(parts._replace(query="", fragment=""))


def only_here(url: str) -> bool:
    """Whether a link names this computer only (no network address was found to put instead)."""
    return urlsplit(url).hostname in LOOPBACK
