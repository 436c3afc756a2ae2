"""A run's record: its ``config.json`` read once into a frozen, typed document.

Every layer asks the same few questions of a run (its model, its training settings, its tokenizer, its text,
whether it is a challenge entry or a teacher's check of one, whose weights it started from, where it trained).
They are answered here, from one parse, instead of by string keys in each caller: a key renamed or added in a
later version is handled in one place, and a stored config this version cannot read is one sentence
(``RunRecordError``), not a ``KeyError`` somewhere in a view.

Configs written by earlier versions stay readable: every section but ``model``, ``train`` and ``tokenizer`` is
optional, and every field of an optional section has a default (a run recorded before runs kept their runtime
trained ``local``ly on one process).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from babygpt.config import ModelConfig, TrainConfig, tokens_per_step
from babygpt.errors import BabyGPTError
from babygpt.text.tokenizers import Tokenizer, tokenizer_from_dict

__all__ = ["ChallengeLink", "DataRecord", "LOCAL", "RunRecord", "RunRecordError", "Runtime", "StartingWeights",
           "TokenizerRecord", "parse_run_record"]

LOCAL = "local"  # where a run trains when no cluster is involved; on a Ray cluster it is "ray:<node id>"
REQUIRED = ("model", "train", "tokenizer")


class RunRecordError(BabyGPTError):
    """A run's stored configuration this version cannot read: the sentence says which part and why."""


def _section(document: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """An optional section: absent or null is None (an older run); anything but an object is damage."""
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RunRecordError(f"config.json is damaged: its {key} section is {type(value).__name__}, not an object.")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TokenizerRecord:
    """The tokenizer as stored with the run. Built only on demand: a BPE's merges are most of a config, and the
    board compares stored fingerprints without rebuilding one. ``described`` is the stored description itself
    (runs read together may share one list of merges: read it, never change it)."""

    kind: str | None
    described: Mapping[str, Any] = field(repr=False)

    def build(self) -> Tokenizer:
        return tokenizer_from_dict(self.described)  # type: ignore[arg-type]  # a stored JSON object


@dataclass(frozen=True)
class DataRecord:
    """The text a run trained on, as it recorded it. ``source`` is where it was read (a shipped dataset's name or a
    path: an upload's path is the store's file named by its sha256); ``sha256`` is what identifies it."""

    name: str | None = None
    source: str = ""
    sha256: str | None = None
    n_chars: int | None = None
    imported_from: str | None = None  # "huggingface" or "archive": weights trained elsewhere

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> DataRecord:
        if data is None:
            return cls()
        source = data.get("source")
        return cls(_text(data.get("name")), source if isinstance(source, str) else "", _text(data.get("sha256")),
                   _whole(data.get("n_chars")), _text(data.get("imported_from")))


@dataclass(frozen=True)
class ChallengeLink:
    """The class challenge a run was started for: an entry, or (``check_of``) a teacher's re-training of one."""

    id: str | None = None
    check_of: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> ChallengeLink | None:
        return None if not data else cls(_text(data.get("id")), _text(data.get("check_of")))


@dataclass(frozen=True)
class StartingWeights:
    """The run a fine-tune started from (its weights were copied when it was created)."""

    run: str
    label: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> StartingWeights | None:
        if not data:
            return None
        return cls(str(data.get("run") or ""), str(data.get("label") or data.get("run") or ""))


@dataclass(frozen=True)
class Runtime:
    """What the machine that trained the run settled on (``auto`` resolved): written when training starts."""

    device: str | None = None
    dtype: str | None = None
    pid: int | None = None
    where: str = LOCAL
    world_size: int = 1

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> Runtime | None:
        if data is None:
            return None
        world = _whole(data.get("world_size"))
        return cls(_text(data.get("device")), _text(data.get("dtype")), _whole(data.get("pid")),
                   _text(data.get("where")) or LOCAL, world if world and world > 0 else 1)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype, "pid": self.pid, "where": self.where,
                "world_size": self.world_size}


@dataclass(frozen=True)
class RunRecord:
    """A run's configuration, typed: what it trains (``model``, ``training``, ``tokenizer``, ``data``), why
    (``challenge``), from what (``starting_weights``) and where it trained (``runtime``; None before it started).
    ``document`` is the stored JSON itself, for what is written back or exported whole."""

    model: ModelConfig
    training: TrainConfig
    tokenizer: TokenizerRecord
    data: DataRecord = DataRecord()
    challenge: ChallengeLink | None = None
    starting_weights: StartingWeights | None = None
    runtime: Runtime | None = None
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_check(self) -> bool:
        """A teacher's re-training of a challenge entry with another seed (it is the teacher's, not the student's,
        and never ranked on the board itself)."""
        return self.challenge is not None and self.challenge.check_of is not None

    @property
    def where(self) -> str:
        return self.runtime.where if self.runtime else LOCAL

    @property
    def world_size(self) -> int:
        return self.runtime.world_size if self.runtime else 1

    @property
    def tokens_per_step(self) -> int:
        """Training tokens one step consumed: its batch, context and accumulation, on every process."""
        return tokens_per_step(self.model, self.training, self.world_size)

    def with_document(self, **sections: Any) -> dict[str, Any]:
        """The stored document with ``sections`` replaced (e.g. ``train=…`` after a resume raised max_iters):
        what ``RunStore.update_config`` writes back."""
        return {**self.document, **sections}


def parse_run_record(document: Any) -> RunRecord:
    """A stored config read into a ``RunRecord``; raises ``RunRecordError`` naming what is wrong. The one place a
    run's config.json is read by its keys (``TrainConfig.from_dict`` reads a run saved before a field was renamed)."""
    if not isinstance(document, Mapping) or not set(REQUIRED) <= set(document):
        raise RunRecordError("config.json is not a Baby GPT run configuration (model, train, tokenizer missing).")
    try:
        model = ModelConfig.from_dict(document["model"])
        training = TrainConfig.from_dict(document["train"])
    except TypeError as exc:
        raise RunRecordError(f"config.json is damaged: {exc}.") from exc
    except BabyGPTError as exc:
        raise RunRecordError(str(exc)) from None
    described = document["tokenizer"]
    if not isinstance(described, Mapping):
        raise RunRecordError(f"config.json is damaged: its tokenizer section is {type(described).__name__}, "
                             "not an object.")
    return RunRecord(model, training, TokenizerRecord(_text(described.get("kind")), described),
                     DataRecord.parse(_section(document, "data")), ChallengeLink.parse(_section(document, "challenge")),
                     StartingWeights.parse(_section(document, "init")), Runtime.parse(_section(document, "runtime")),
                     document)
