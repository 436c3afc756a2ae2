"""Text from token ids as a model writes them, one token at a time.

A byte-level token (GPT-2's, or a BPE learned from the text) may hold part of a character: 東 is three bytes, and a
model can write them as two tokens. Decoding each token alone would show the first part as U+FFFD and the rest as
another, so a streamed text would hold garbage where the finished text holds 東. ``TextStream`` decodes
incrementally instead: a token's bytes that end partway through a character are held back until the character is
whole, and only bytes that can never be a character (which a model may also write) show as U+FFFD.
"""

from __future__ import annotations

import codecs

from babygpt.text.tokenizers import CharTokenizer, Tokenizer, token_bytes


class TextStream:
    """Feed token ids in order (``push``); each returns the text they complete (possibly empty)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        if isinstance(self.tokenizer, CharTokenizer):  # every token a whole character
            return self.tokenizer.token_text(token_id)
        return self._decoder.decode(token_bytes(self.tokenizer, token_id))

    @property
    def pending(self) -> bool:
        """Whether the tokens so far end partway through a character (its bytes are held back)."""
        return bool(self._decoder.getstate()[0])


def streamed_text(tokenizer: Tokenizer, ids: list[int]) -> str:
    """The text ``ids`` write as a stream shows it: every whole character, none of a character cut short."""
    stream = TextStream(tokenizer)
    return "".join(stream.push(i) for i in ids)
