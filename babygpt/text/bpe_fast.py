"""The fast path of the byte-level BPE: Hugging Face ``tokenizers`` learns the merges and encodes, in Rust.

Speed only: ``babygpt.text.bpe`` holds the contract and the lesson's readable trainer and encoder, and tests hold
this path equal to them (tests/test_bpe.py). Measured in bench/bpe_train.py: 1 MB of Tiny Shakespeare to 4,096
tokens in about 1.5 s on two cores, where the readable loop needs minutes.

Two choices make Hugging Face's trainer learn exactly the readable trainer's merges:

- Bytes go in as the characters U+0100..U+01FF, one per byte value, in byte order. Its trainer numbers the alphabet
  in character order and breaks a tie between equally frequent pairs by the smaller ids, so with these characters
  its ids are the byte values and its tie rule is the readable one's. (GPT-2's printable byte alphabet, which its
  own ``ByteLevel`` uses, is not in byte order, and would break ties differently.)
- The text arrives already pre-split by ``babygpt.text.bpe`` (one Python ``regex`` for both paths), one chunk per
  sequence, with no pre-tokenizer of its own: a merge never crosses a chunk.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator

BYTE_CHARS = tuple(chr(0x100 + b) for b in range(256))  # byte b as one character, in byte order
_TO_CHARS = dict(enumerate(BYTE_CHARS))  # a str.translate table from latin-1 characters (= bytes) to BYTE_CHARS

Merge = tuple[tuple[int, int], int]  # (left id, right id) -> the new token's id


def as_chars(raw: bytes) -> str:
    """Bytes as BYTE_CHARS, the alphabet Hugging Face's models see."""
    return raw.decode("latin-1").translate(_TO_CHARS)


def _repeated(words: dict[bytes, int]) -> Iterator[str]:
    for word, count in words.items():
        chars = as_chars(word)
        for _ in range(count):
            yield chars


def learn_merges(words: dict[bytes, int], vocab_size: int) -> list[Merge]:
    """The merges Hugging Face's ``BpeTrainer`` learns from ``words`` (each pre-split chunk's bytes and how often it
    occurs), stopping at ``vocab_size`` tokens or when no pair occurs twice, in the order it learned them."""
    from tokenizers import Tokenizer, models, trainers

    tokenizer = Tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=list(BYTE_CHARS), special_tokens=[])
    tokenizer.train_from_iterator(_repeated(words), trainer, length=sum(words.values()))
    model = json.loads(tokenizer.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = []
    for merge in model["merges"]:  # ["a", "b"] pairs (older versions: "a b" strings; BYTE_CHARS hold no space)
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merges.append(((vocab[left], vocab[right]), vocab[left + right]))
    return merges


class FastEncoder:
    """Encodes pre-split chunks with Hugging Face's BPE model built from the learned merges: each chunk's bytes are
    merged lowest rank first, which is applying the merges in the order they were learned."""

    def __init__(self, vocab: Iterable[bytes], merges: Iterable[Merge]):
        from tokenizers import Tokenizer, models

        tokens = [as_chars(token) for token in vocab]
        pairs = [(tokens[left], tokens[right]) for (left, right), _ in merges]
        self.tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=pairs))

    def encode(self, chunks: list[bytes]) -> list[int]:
        """Each distinct chunk is encoded once, all in one call (a text repeats its words: Tiny Shakespeare's 263,000
        chunks are 15,000 distinct ones, and this is three times faster than encoding every chunk)."""
        distinct = list(dict.fromkeys(chunks))
        if not distinct:
            return []
        encoding = self.tokenizer.encode([as_chars(c) for c in distinct], is_pretokenized=True, add_special_tokens=False)
        ids_of: dict[bytes, list[int]] = {}
        for word, tokens in itertools.groupby(zip(encoding.word_ids, encoding.ids, strict=True), key=lambda pair: pair[0]):
            ids_of[distinct[word]] = [token for _, token in tokens]
        return [token for chunk in chunks for token in ids_of[chunk]]

    def count(self, words: dict[bytes, int]) -> int:
        """How many tokens a text makes, from its chunks' counts (``bpe.word_counts``): each distinct chunk is
        encoded once and counted as often as it occurs, so measuring a whole text costs its distinct words."""
        distinct = list(words)
        if not distinct:
            return 0
        encoding = self.tokenizer.encode([as_chars(c) for c in distinct], is_pretokenized=True, add_special_tokens=False)
        return sum(words[distinct[word]] for word in encoding.word_ids)
