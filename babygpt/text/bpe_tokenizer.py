"""The ``bpe`` tokenizer: a byte-level BPE learned from the run's own text, stored with the run.

Byte-level means no text is ever refused: every character is some bytes, and every byte is a token. The merges
are stored in the run's config.json (``to_dict``), so a checkpoint decodes on its own, without the training text.
"""

from __future__ import annotations

from typing import Any

from babygpt.errors import BabyGPTError
from babygpt.text.bpe import BPE, BPESettings, pre_split, train_bpe, utf8
from babygpt.text.bpe_fast import FastEncoder


def text_of(raw: bytes) -> str:
    """Bytes back to text: exactly the text encoded (lone surrogates included), and where the bytes cut a character
    (a model may end on half of one) U+FFFD for the broken part, as every byte-level tokenizer shows it."""
    try:
        return raw.decode("utf-8", errors="surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


def label_of(raw: bytes) -> str:
    """One token's bytes as a label (an axis, a candidate, a tooltip): its text, and where the token holds only part
    of a character (a byte-level token may), those bytes as Python writes them (``\\xe6``), never a U+FFFD that
    would make three different tokens look alike."""
    return raw.decode("utf-8", errors="backslashreplace")


class BPETokenizer:
    """A byte-level BPE learned from the training text (``babygpt.text.bpe``)."""

    kind = "bpe"

    def __init__(self, bpe: BPE):
        self.bpe = bpe
        self._encoder: FastEncoder | None = None  # built on first use: a decoding-only load never pays for it

    @classmethod
    def from_text(cls, text: str, settings: BPESettings | None = None) -> BPETokenizer:
        settings = (settings or BPESettings()).validate()
        return cls(train_bpe(text, settings.vocab_size, settings.split))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        return cls(BPE.from_dict(data))

    @property
    def vocab_size(self) -> int:
        return self.bpe.vocab_size

    def encode(self, text: str) -> list[int]:
        if self._encoder is None:
            self._encoder = FastEncoder(self.bpe.vocab, self.bpe.merges)
        return self._encoder.encode([utf8(chunk) for chunk in pre_split(text, self.bpe.split)])

    def decode_bytes(self, ids: list[int]) -> bytes:
        vocab = self.bpe.vocab
        try:
            return b"".join(vocab[i] for i in ids)
        except IndexError:
            raise BabyGPTError(f"A token id is outside this BPE's {len(vocab):,} tokens.") from None

    def decode(self, ids: list[int]) -> str:
        return text_of(self.decode_bytes(ids))

    def token_bytes(self, token_id: int) -> bytes:
        return self.bpe.vocab[token_id]

    def token_text(self, token_id: int) -> str:
        return label_of(self.bpe.vocab[token_id])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.bpe.to_dict()}
