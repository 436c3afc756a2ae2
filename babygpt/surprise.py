"""Where a model is surprised: its loss at every token of a stretch of text, and what it expected instead.

Every token after the first is predicted from up to ``block_size`` tokens before it, as in training, so the
mean of these losses is the model's validation loss on this stretch. Two runs with the same tokenizer can be
compared token by token: where the bigger model is less surprised is what it learned that the smaller did not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from babygpt.errors import BabyGPTError
from babygpt.model import GPT
from babygpt.sample import Candidate
from babygpt.tokenizers import Tokenizer, whole_words_prefix


@dataclass(frozen=True)
class TokenSurprise:
    text: str
    loss: float | None  # -ln p(token | what came before); None for the first token (nothing to predict it from)
    prob: float | None
    expected: tuple[Candidate, ...]  # the model's top predictions for this position


def validation_stretch(text: str, val_fraction: float, n_chars: int = 600) -> str:
    """The start of the validation split (the text's last ``val_fraction``), ending at a whole word."""
    start = int(len(text) * (1 - val_fraction))
    return whole_words_prefix(text[start:], n_chars)


@torch.no_grad()
def surprise(model: GPT, tokenizer: Tokenizer, text: str, k: int = 5, max_tokens: int = 400) -> list[TokenSurprise]:
    """Each token's loss under the model, every prediction seeing up to ``block_size`` earlier tokens."""
    ids = tokenizer.encode(text)[:max_tokens]
    if len(ids) < 2:
        raise BabyGPTError("The text is too short: it needs at least two tokens, one to predict the other.")
    bs = model.config.block_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # one window per predicted token, all in one batch: window i ends at token i and predicts token i + 1
    windows = torch.zeros(len(ids) - 1, bs, dtype=torch.long)
    lengths = []
    for i in range(len(ids) - 1):
        context = ids[max(0, i + 1 - bs): i + 1]
        windows[i, : len(context)] = torch.tensor(context)
        lengths.append(len(context))
    logits, _ = model(windows.to(device))
    model.train(was_training)
    last = logits[torch.arange(len(lengths)), torch.tensor(lengths) - 1].float().cpu()
    probs = F.softmax(last, dim=-1)
    targets = torch.tensor(ids[1:])
    chosen = probs[torch.arange(len(targets)), targets]
    top = torch.topk(probs, min(k, probs.size(-1)), dim=-1)
    out = [TokenSurprise(tokenizer.token_text(ids[0]), None, None, ())]
    for i, token in enumerate(ids[1:]):
        expected = tuple(Candidate(int(t), tokenizer.token_text(int(t)), float(p))
                         for p, t in zip(top.values[i], top.indices[i], strict=True))
        p = float(chosen[i])
        out.append(TokenSurprise(tokenizer.token_text(token), -float(torch.log(chosen[i].clamp_min(1e-12))), p,
                                 expected))
    return out


def mean_loss(tokens: list[TokenSurprise]) -> float:
    losses = [t.loss for t in tokens if t.loss is not None]
    return sum(losses) / len(losses)


def differences(a: list[TokenSurprise], b: list[TokenSurprise]) -> list[float | None]:
    """b's loss minus a's at each token (negative: b was less surprised); the two must cut the text alike."""
    if [t.text for t in a] != [t.text for t in b]:
        raise BabyGPTError("The two runs cut this text into different tokens (another tokenizer or vocabulary), "
                           "so their losses cannot be compared token by token; compare bits per character on Runs.")
    return [None if x.loss is None else y.loss - x.loss for x, y in zip(a, b, strict=True)]
