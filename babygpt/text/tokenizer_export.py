"""A run's tokenizer as Hugging Face's files: ``tokenizer.json`` (with its config and special tokens), so that
``AutoTokenizer.from_pretrained`` on an export gives the run's own ids. The reverse, reading such files, is
``babygpt.text.tokenizer_files``.
"""

from __future__ import annotations

from typing import Any

from babygpt.errors import BabyGPTError
from babygpt.text.bpe_files import bpe_tokenizer_json, hf_vocab, merges_txt
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.tokenizer_files import gpt2_files
from babygpt.text.tokenizers import CharTokenizer, GPT2Tokenizer, Tokenizer

CHAR_UNKNOWN = "<unk>"  # what a character the run never saw becomes: an id past the model's vocabulary
ENDOFTEXT = "<|endoftext|>"


def _added(token_id: int, content: str) -> dict[str, Any]:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def char_tokenizer_json(tokenizer: CharTokenizer) -> dict[str, Any]:
    """Every character its own token with the run's id; a character the run never saw becomes ``<unk>``, whose id
    (the vocabulary's size) the model refuses, as Baby GPT refuses such a prompt."""
    unknown = tokenizer.vocab_size
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [_added(unknown, CHAR_UNKNOWN)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": False},
        "post_processor": None, "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": {**{c: i for i, c in enumerate(tokenizer.chars)}, CHAR_UNKNOWN: unknown},
                  "unk_token": CHAR_UNKNOWN},
    }


def gpt2_tokenizer_json(tokenizer: GPT2Tokenizer) -> dict[str, Any]:
    """GPT-2's byte-level BPE with its ids renumbered: the tokens the run knows get the run's ids 0..V-1, every other
    GPT-2 token an id from V on, which the model refuses (the run refuses a prompt with such a token too)."""
    vocab, merges = gpt2_files()
    order = {gpt2_id: i for i, gpt2_id in enumerate(tokenizer.gpt2_ids)}
    unseen = sorted(i for i in vocab.values() if i not in order)
    order.update({gpt2_id: len(tokenizer.gpt2_ids) + k for k, gpt2_id in enumerate(unseen)})
    renumbered = {token: order[i] for token, i in vocab.items()}
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [_added(renumbered[ENDOFTEXT], ENDOFTEXT)], "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": renumbered, "merges": list(merges)},
    }


def tokenizer_files(tokenizer: Tokenizer, block_size: int) -> dict[str, Any]:
    """The tokenizer's files of an export, by name: JSON documents, and text for merges.txt. A BPE learned from the
    text goes out as GPT-2's folders have theirs too (vocab.json and merges.txt beside tokenizer.json)."""
    extra: dict[str, Any] = {}
    if isinstance(tokenizer, CharTokenizer):
        body, special = char_tokenizer_json(tokenizer), {"unk_token": CHAR_UNKNOWN}
    elif isinstance(tokenizer, GPT2Tokenizer):
        body, special = gpt2_tokenizer_json(tokenizer), {"unk_token": ENDOFTEXT, "bos_token": ENDOFTEXT,
                                                         "eos_token": ENDOFTEXT}
    elif isinstance(tokenizer, BPETokenizer):  # byte-level: every text encodes, so no unknown token is needed
        body, special = bpe_tokenizer_json(tokenizer), {}
        extra = {"vocab.json": hf_vocab(tokenizer), "merges.txt": merges_txt(tokenizer)}
    else:
        raise BabyGPTError(f"A {tokenizer.kind} tokenizer has no transformers export; export the run as a Baby GPT "
                           "archive, which keeps it whole.")
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": block_size,
                "clean_up_tokenization_spaces": False, **special}
    return {"tokenizer.json": body, "tokenizer_config.json": settings, "special_tokens_map.json": special, **extra}
