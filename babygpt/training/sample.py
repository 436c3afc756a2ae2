"""Generation: temperature, top-k and top-p sampling, streamed token by token, with a KV cache.

Positions are absolute, so when the text outgrows the context the window jumps forward by
half a block instead of sliding one token at a time: every cached key stays valid for half a
block of new tokens, and the uncached path follows the same rule so both give identical text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from babygpt.errors import BabyGPTError
from babygpt.model.decode import Decoder, forward_cached, new_caches
from babygpt.model.gpt import LanguageModel
from babygpt.text.text_stream import TextStream
from babygpt.text.tokenizers import Tokenizer


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    seed: int | None = None
    use_cache: bool = True
    candidates: int = 0  # >0: report the top candidates at each step

    def validate(self) -> SamplingConfig:
        if self.max_new_tokens < 0:
            raise BabyGPTError(f"max_new_tokens must be zero or more, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise BabyGPTError(f"temperature must be zero (greedy) or more, got {self.temperature}.")
        if self.top_k < 0:
            raise BabyGPTError(f"top_k must be zero (off) or more, got {self.top_k}.")
        if not 0 < self.top_p <= 1:
            raise BabyGPTError(f"top_p must be in (0, 1], got {self.top_p}.")
        return self


@dataclass(frozen=True)
class Candidate:
    token_id: int
    text: str
    prob: float


@dataclass(frozen=True)
class GeneratedToken:
    token_id: int
    text: str  # the token as a label (part of a character shows as its bytes: ``Tokenizer.token_text``)
    prob: float  # probability of the chosen token after temperature / top-k / top-p
    candidates: list[Candidate] = field(default_factory=list)
    piece: str = ""  # the text this token completes, to append to what is written so far (``TextStream``)


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    notices: list[str]


def prepare_prompt(tokenizer: Tokenizer, text: str, block_size: int) -> Prompt:
    """Encode a prompt whole: an empty one starts from a newline (or token 0). One longer than the context keeps
    every token (the text a reader sees continues all of it) with a notice that the model reads only its last
    ``block_size``: whoever feeds the model crops its window (``generate``, ``next_token_distribution``)."""
    notices = []
    if not text:
        try:
            ids = tokenizer.encode("\n")
        except BabyGPTError:
            ids = []
        ids = ids[-1:] or [0]
        notices.append(f"Empty prompt: starting from {tokenizer.token_text(ids[0])!r}.")
    else:
        ids = tokenizer.encode(text)
    if len(ids) > block_size:
        notices.append(
            f"The prompt is {len(ids)} tokens, longer than the model's context of {block_size}: "
            f"only its last {block_size} tokens are used."
        )
    return Prompt(ids, notices)


def filter_probs(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Turn last-position logits into the distribution we actually sample from."""
    logits = logits.float()
    if cfg.temperature == 0:
        probs = torch.zeros_like(logits)
        probs[..., logits.argmax(-1)] = 1.0
        return probs
    if cfg.temperature != 1.0:
        logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.size(-1):
        kth = torch.topk(logits, cfg.top_k).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least the most likely token)
        drop = sorted_probs.cumsum(-1) - sorted_probs >= cfg.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


class _Context:
    """The tokens the model sees, under the jump-by-half-a-block rule shared by both paths."""

    def __init__(self, model: LanguageModel, ids: list[int], use_cache: bool):
        # A model trained without the causal mask has every position depend on the ones after it, so keys and
        # values cached for earlier positions go stale: it recomputes its window for every token.
        use_cache = use_cache and model.config.causal
        self.model, self.use_cache = model, use_cache
        self.block = model.config.block_size
        self.keep = max(1, self.block // 2)
        self.device = next(model.parameters()).device
        self.tokens = list(ids)
        self.start = max(0, len(ids) - self.block)
        self.caches = None
        self.decoder = Decoder(model) if use_cache else None

    def _tensor(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def _refill(self) -> torch.Tensor:
        window = self.tokens[self.start:]
        if self.use_cache:
            self.caches = new_caches(self.model, 1)
            return forward_cached(self.model, self._tensor(window), self.caches)[0]
        return self.model(self._tensor(window))[0][0, -1]

    def first_logits(self) -> torch.Tensor:
        return self._refill()

    def push(self, token: int) -> torch.Tensor:
        self.tokens.append(token)
        if len(self.tokens) - self.start > self.block:
            self.start = len(self.tokens) - self.keep
            return self._refill()
        if self.decoder is not None:
            return self.decoder.step(token, self.caches)[0]
        return self._refill()


@torch.inference_mode()
def stream(model: LanguageModel, tokenizer: Tokenizer, prompt: str | list[int], cfg: SamplingConfig) -> Iterator[GeneratedToken]:
    """Yield generated tokens one at a time (prompt not included)."""
    cfg = cfg.validate()
    ids = prompt if isinstance(prompt, list) else prepare_prompt(tokenizer, prompt, model.config.block_size).ids
    was_training = model.training
    model.eval()
    generator = torch.Generator(device="cpu")
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    written = TextStream(tokenizer)  # a token ending partway through a character shows once the character is whole
    try:
        context = _Context(model, ids, cfg.use_cache)
        logits = context.first_logits() if cfg.max_new_tokens else None
        for i in range(cfg.max_new_tokens):
            probs = filter_probs(logits, cfg).cpu()
            token = int(torch.multinomial(probs, 1, generator=generator))
            candidates = []
            if cfg.candidates:
                top = torch.topk(probs, min(cfg.candidates, probs.numel()))
                candidates = [Candidate(int(t), tokenizer.token_text(int(t)), float(p))
                              for p, t in zip(top.values, top.indices, strict=True) if p > 0]
            yield GeneratedToken(token, tokenizer.token_text(token), float(probs[token]), candidates,
                                 written.push(token))
            if i + 1 < cfg.max_new_tokens:
                logits = context.push(token)
    finally:
        model.train(was_training)


def paced(items: Iterable, per_second: float | None,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Iterator:
    """Hand on items no faster than ``per_second`` (None: as fast as they come).

    Sampling a baby model writes hundreds of tokens a second; in a demo, text typed out at reading pace shows
    that it is written one token at a time. The schedule is kept from the start, so a slow token is not
    followed by a pause.
    """
    if not per_second:
        yield from items
        return
    start = clock()
    for i, item in enumerate(items):
        wait = start + i / per_second - clock()
        if wait > 0:
            sleep(wait)
        yield item


def generate(model: LanguageModel, tokenizer: Tokenizer, prompt: str, cfg: SamplingConfig) -> str:
    """The prompt followed by the generated text."""
    encoded = prepare_prompt(tokenizer, prompt, model.config.block_size)
    new = [t.token_id for t in stream(model, tokenizer, encoded.ids, cfg)]
    return tokenizer.decode(encoded.ids + new)


@torch.inference_mode()
def next_token_distribution(model: LanguageModel, tokenizer: Tokenizer, prompt: str, k: int = 10) -> list[Candidate]:
    """The model's k most likely next tokens after ``prompt``, with their probabilities."""
    ids = prepare_prompt(tokenizer, prompt, model.config.block_size).ids[-model.config.block_size:]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = model(torch.tensor([ids], device=device))[0][0, -1]
    model.train(was_training)
    probs = F.softmax(logits.float(), dim=-1).cpu()
    top = torch.topk(probs, min(k, probs.numel()))
    return [Candidate(int(t), tokenizer.token_text(int(t)), float(p)) for p, t in zip(top.values, top.indices, strict=True)]
