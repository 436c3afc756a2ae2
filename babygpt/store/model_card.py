"""The README.md of a Hugging Face export: what the run was trained on, its size, how well, and how to load it.
Every piece of the user's text in it (the run's name, the text's name) is escaped for Markdown."""

from __future__ import annotations

from typing import Any

from babygpt.config import ModelConfig
from babygpt.model.llama_layout import GPT2, Architecture
from babygpt.model.sizing import parameter_count
from babygpt.plain_text import markdown_literal
from babygpt.store.corpora import portable_source
from babygpt.store.runs import RunInfo
from babygpt.text.measured import ValidationText
from babygpt.units import format_count


def model_card(info: RunInfo, document: dict[str, Any], steps: int, val_loss: float | None,
               architecture: Architecture = GPT2) -> str:
    """The README.md of an export: what it was trained on, its size, how well, and how to load it."""
    model, train, data = document["model"], document["train"], document.get("data", {})
    quality = "not evaluated"
    if val_loss is not None:
        validation = ValidationText.from_config(document)
        quality = f"{val_loss:.3f} nats per token" + (f", {validation.bits_per_byte(val_loss):.3f} bits per byte"
                                                      if validation else "")
    params = parameter_count(ModelConfig.from_dict(model))
    text = markdown_literal(portable_source(data) or "an unnamed text")  # a person's names: text, never Markdown
    shape = (f"{architecture.name} (`{model['preset']}` rung): {model['n_layer']} layers, {model['n_head']} heads, n_embd "
                    f"{model['n_embd']}, context {model['block_size']} tokens, activation `{model['activation']}`, "
                    f"{'tied' if model['tie_weights'] else 'untied'} head, {model['positional']} positions")
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [{architecture.tag}, babygpt, {document['tokenizer']['kind']}-level]
---

# {markdown_literal(info.name or info.id)}

A small GPT trained from scratch with Baby GPT on **{text}** ({data.get('n_chars', '?'):,} characters), exported as
a {architecture.name} model: `transformers` computes the same logits as Baby GPT on the same token ids.

| | |
| --- | --- |
| architecture | {shape} |
| parameters | {format_count(params)} |
| tokenizer | {document['tokenizer']['kind']}, {model['vocab_size']} tokens (ids are the run's own) |
| training | {steps} steps of {train['batch_size']} × {model['block_size']} tokens, learning rate {train['lr']:g} |
| validation loss | {quality} |

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
print(tokenizer.decode(model.generate(**tokenizer("{_prompt_example(document)}", return_tensors="pt"),
                                      max_new_tokens=100)[0]))
```

{_tokenizer_note(document['tokenizer']['kind'], model['vocab_size'])} Generation cannot go past
{model['block_size']} tokens (the position table's length).
"""


def _tokenizer_note(kind: str, vocab_size: int) -> str:
    if kind == "bpe":
        return ("The tokenizer is a byte-level BPE learned from the training text: every text encodes, since every "
                "character is some bytes and each byte is a token. `vocab.json` and `merges.txt` are GPT-2's form of "
                "it; they give the same ids only where the text is cut by GPT-2's pattern (`tokenizer.json` is "
                "exact).")
    known = "characters" if kind == "char" else "GPT-2 tokens"
    return (f"The tokenizer knows only the {known} of the training text: anything else gets an id at or past the "
            f"vocabulary size ({vocab_size}), which the model refuses.")


def _prompt_example(document: dict[str, Any]) -> str:
    if document["tokenizer"]["kind"] == "char":
        chars = [c for c in document["tokenizer"]["chars"] if c.isalpha()]
        return "".join(chars[:1]) or " "
    return "The"
