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
from babygpt.model.gpt import LanguageModel
from babygpt.text.tokenizers import Tokenizer, whole_words_prefix
from babygpt.training.sample import Candidate


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


WINDOWS_PER_BATCH = 32  # windows of block_size tokens per forward: memory stays bounded whatever the model


def _next_token_logits(model: LanguageModel, ids: list[int]) -> torch.Tensor:
    """(len(ids) - 1, V): the logits predicting token i + 1 from up to block_size tokens ending at token i.

    A causal model predicts every position of its first block in one forward (later positions cannot change
    earlier ones); past the first block each prediction needs its own window, batched a few at a time. A model
    trained without the mask (a counterfactual) sees every token of its window, so each window holds exactly
    its context and nothing else.
    """
    bs, n = model.config.block_size, len(ids)
    device = next(model.parameters()).device
    out = []
    first = min(bs, n - 1) if model.config.causal else 0
    if first:
        out.append(model(torch.tensor([ids[:first]], device=device))[0][0])
    windows = [ids[max(0, i + 1 - bs): i + 1] for i in range(first, n - 1)]
    for length in sorted({len(w) for w in windows}):  # windows shorter than a block only without the mask
        same = [w for w in windows if len(w) == length]
        for chunk in range(0, len(same), WINDOWS_PER_BATCH):
            batch = torch.tensor(same[chunk: chunk + WINDOWS_PER_BATCH], device=device)
            out.append(model(batch)[0][:, -1])
    if not model.config.causal:  # grouping by length reordered them: windows were built in position order
        order = sorted(range(len(windows)), key=lambda i: (len(windows[i]), i))
        logits = torch.cat(out)
        restored = torch.empty_like(logits)
        restored[torch.tensor(order)] = logits
        return restored.float().cpu()
    return torch.cat(out).float().cpu()


@torch.no_grad()
def surprise(model: LanguageModel, tokenizer: Tokenizer, text: str, k: int = 5, max_tokens: int = 400) -> list[TokenSurprise]:
    """Each token's loss under the model, every prediction seeing up to ``block_size`` earlier tokens.

    At most ``max_tokens`` tokens, in batches of ``WINDOWS_PER_BATCH`` windows: the cost is bounded before it
    is paid, whatever the model's size."""
    ids = tokenizer.encode(text)[:max_tokens]
    if len(ids) < 2:
        raise BabyGPTError("The text is too short: it needs at least two tokens, one to predict the other.")
    was_training = model.training
    model.eval()
    probs = F.softmax(_next_token_logits(model, ids), dim=-1)
    model.train(was_training)
    targets = torch.tensor(ids[1:])
    chosen = probs[torch.arange(len(targets)), targets]
    top = torch.topk(probs, min(k, probs.size(-1)), dim=-1)
    out = [TokenSurprise(tokenizer.token_text(ids[0]), None, None, ())]
    for i, token in enumerate(ids[1:]):
        expected = tuple(Candidate(int(t), tokenizer.token_text(int(t)), float(p))
                         for p, t in zip(top.values[i], top.indices[i], strict=True))
        out.append(TokenSurprise(tokenizer.token_text(token), -float(torch.log(chosen[i].clamp_min(1e-12))),
                                 float(chosen[i]), expected))
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
