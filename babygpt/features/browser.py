"""What the feature browser shows, computed once per SAE and read by the page.

For every feature: how often it fires, its strongest activations and the passages of the run's text around them
(each token with the feature's strength there), the tokens its direction promotes and suppresses at the output,
and a short label made from its top tokens. For any prompt: which features fire at which token. And an order that
puts the interesting features first (see ``interest_order``).

The direction's effect on the output is read along the *direct path*: the decoder direction d enters the residual
stream, passes the final LayerNorm and the unembedding. LayerNorm subtracts the mean and divides by the token's
spread σ before scaling by γ, so with σ held where it is, adding d changes the logits by W_U (γ ⊙ (d − mean(d))) / σ.
One positive σ scales every vocabulary entry alike, so it is left out and the ranking of promoted and suppressed
tokens is the token-independent W_U (γ ⊙ (d − mean(d))) (Neuronpedia's "logit weights" read W_U · d the same way).
The true change also moves σ, which bends it slightly towards the token's own output (the test measures a cosine
above 0.95); later blocks may change the feature's effect too: this is the part written straight to the output.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from babygpt.errors import BabyGPTError
from babygpt.features.collect import Activations, collect_activations
from babygpt.features.metrics import DENSE_FREQUENCY, EVAL_BATCH
from babygpt.features.sae import TopKSAE
from babygpt.interpret.hooked import run_with_cache
from babygpt.model.gpt import GPT, LanguageModel
from babygpt.text.tokenizers import Tokenizer

TOP_EXAMPLES = 20  # the strongest activations kept per feature
RARE_FIRINGS = 5  # a feature that fired on fewer tokens than this has too few examples to read


@dataclass
class FeatureTable:
    """Per feature (F of them), over the N browsing activations: ``frequency`` (share of tokens it fires on),
    ``max_activation``, ``fired`` (tokens it fired on), and its ``TOP_EXAMPLES`` strongest activations as
    ``top_values`` (F, n) and ``top_index`` (F, n) into the N tokens (−1 where it fired on fewer)."""

    frequency: torch.Tensor
    max_activation: torch.Tensor
    fired: torch.Tensor
    top_values: torch.Tensor
    top_index: torch.Tensor
    n_tokens: int


@torch.no_grad()
def feature_table(sae: TopKSAE, acts: torch.Tensor, n_top: int = TOP_EXAMPLES, batch: int = EVAL_BATCH) -> FeatureTable:
    """One pass over ``acts`` (N, C) keeping each feature's strongest activations, batch by batch (never N × F)."""
    F = sae.config.n_features
    n_top = max(1, min(n_top, acts.size(0)))
    top_values = torch.zeros(n_top, F)
    top_index = torch.full((n_top, F), -1, dtype=torch.long)
    fired = torch.zeros(F, dtype=torch.long)
    for i in range(0, acts.size(0), batch):
        z = sae.encode(acts[i:i + batch].float())  # (b, F)
        fired += (z > 0).sum(dim=0)
        index = torch.arange(i, i + z.size(0)).unsqueeze(1).expand_as(z)
        values = torch.cat([top_values, z])
        best = values.topk(n_top, dim=0)
        top_values = best.values
        top_index = torch.cat([top_index, index]).gather(0, best.indices)
    top_index = top_index.masked_fill(top_values <= 0, -1)
    return FeatureTable(fired.double() / acts.size(0), top_values[0].clone(), fired, top_values.T.contiguous(),
                        top_index.T.contiguous(), acts.size(0))


def interest_order(table: FeatureTable) -> list[int]:
    """Features in the order the browser lists them: first those that fire sometimes but not always, strongest
    peak first (what a person can read a meaning into); then the rare ones (fewer than ``RARE_FIRINGS``
    firings); then the dense ones (more than ``DENSE_FREQUENCY`` of tokens), then the dead."""

    def key(f: int) -> tuple[int, float]:
        fired, frequency = int(table.fired[f]), float(table.frequency[f])
        group = 3 if fired == 0 else 2 if frequency > DENSE_FREQUENCY else 1 if fired < RARE_FIRINGS else 0
        return group, -float(table.max_activation[f])

    return sorted(range(table.frequency.numel()), key=key)


@dataclass(frozen=True)
class PassageToken:
    text: str  # the token as a label (``Tokenizer.token_text``): show it as text, never markup
    strength: float  # the feature's activation at this token (0: it does not fire)


@dataclass(frozen=True)
class Passage:
    """A piece of the run's text around one of the feature's top activations; ``peak`` indexes ``tokens``."""

    tokens: list[PassageToken]
    peak: int

    @property
    def strength(self) -> float:
        return self.tokens[self.peak].strength


@torch.no_grad()
def top_passages(sae: TopKSAE, activations: Activations, table: FeatureTable, feature: int, tokenizer: Tokenizer,
                 n: int = 8, before: int = 24, after: int = 4) -> list[Passage]:
    """The feature's ``n`` strongest activations, each with ``before`` tokens of its window before it and ``after``
    after, every token carrying the feature's strength there."""
    T = activations.windows.size(1)
    out = []
    for index in table.top_index[feature, :n].tolist():
        if index < 0:
            break
        w, p = divmod(index, T)
        lo, hi = max(0, p - before), min(T, p + after + 1)
        strengths = sae.encode(activations.acts[w * T + lo:w * T + hi].float())[:, feature]
        ids = activations.windows[w, lo:hi].tolist()
        out.append(Passage([PassageToken(tokenizer.token_text(t), float(s)) for t, s in zip(ids, strengths, strict=True)],
                           p - lo))
    return out


@dataclass(frozen=True)
class TokenEffect:
    text: str
    logit: float  # the change in this token's logit per unit of the feature (before the final norm's 1/σ)


def output_direction(model: LanguageModel, sae: TopKSAE) -> torch.Tensor:
    """(F, V): each feature's decoder direction through the final LayerNorm's γ and the unembedding (the direct
    path; see the module docstring)."""
    if not isinstance(model, GPT):
        raise TypeError("output_direction needs a model with attention")
    d = sae.W_dec.detach().float()  # (F, C)
    if isinstance(model.ln_f, torch.nn.LayerNorm):
        d = d - d.mean(dim=1, keepdim=True)  # LayerNorm removes the mean of what is added
        if model.ln_f.weight is not None:
            d = d * model.ln_f.weight.detach().float().cpu()
    return d @ model.lm_head.weight.detach().float().cpu().T


def promoted_and_suppressed(effects: torch.Tensor, feature: int, tokenizer: Tokenizer,
                            n: int = 10) -> tuple[list[TokenEffect], list[TokenEffect]]:
    """The ``n`` tokens whose logits the feature raises most, and the ``n`` it lowers most (``effects`` (F, V))."""
    row = effects[feature]
    n = min(n, row.numel())
    up, down = row.topk(n), (-row).topk(n)
    return ([TokenEffect(tokenizer.token_text(int(t)), float(v)) for v, t in zip(up.values, up.indices, strict=True)],
            [TokenEffect(tokenizer.token_text(int(t)), -float(v)) for v, t in zip(down.values, down.indices, strict=True)])


def feature_label(table: FeatureTable, activations: Activations, feature: int, tokenizer: Tokenizer,
                  n_tokens: int = 3) -> str:
    """A short name from the tokens it fires on most strongly: the most common of its top activations' tokens,
    e.g. ``'e' · 'th'``; "dead" or "(rare)" where there is little to read."""
    if int(table.fired[feature]) == 0:
        return "dead"
    ids = activations.token_ids()
    tokens = [int(ids[i]) for i in table.top_index[feature].tolist() if i >= 0]
    common = Counter(tokens).most_common(n_tokens)
    label = " · ".join(repr(tokenizer.token_text(t)) for t, _ in common)
    return f"{label} (rare)" if int(table.fired[feature]) < RARE_FIRINGS else label


@dataclass(frozen=True)
class PromptFeatures:
    """Which features fire where on a prompt: ``tokens`` its tokens as labels, ``strengths`` (T, F)."""

    tokens: list[str]
    strengths: torch.Tensor

    def at(self, position: int, n: int = 5) -> list[tuple[int, float]]:
        """The ``n`` strongest features at one token, as (feature, strength), firing ones only."""
        row = self.strengths[position]
        top = row.topk(min(n, row.numel()))
        return [(int(f), float(v)) for v, f in zip(top.values, top.indices, strict=True) if v > 0]

    def strongest(self, n: int = 10) -> list[tuple[int, float]]:
        """The features with the highest peak anywhere on the prompt, as (feature, peak strength)."""
        peak = self.strengths.max(dim=0).values
        top = peak.topk(min(n, peak.numel()))
        return [(int(f), float(v)) for v, f in zip(top.values, top.indices, strict=True) if v > 0]


@torch.no_grad()
def features_on_prompt(model: LanguageModel, sae: TopKSAE, tokenizer: Tokenizer, prompt: str) -> PromptFeatures:
    """Encode the prompt (its last ``block_size`` tokens), read the SAE's hook point, and encode every token."""
    ids = tokenizer.encode(prompt)[-model.config.block_size:]
    if not ids:
        raise BabyGPTError("Type a prompt to see which features fire on it.")
    device = next(model.parameters()).device
    name = sae.config.hook_name
    _, cache = run_with_cache(model, torch.tensor([ids], device=device), [name])
    z = sae.encode(cache[name][0].float().cpu())
    return PromptFeatures([tokenizer.token_text(t) for t in ids], z)


@dataclass
class BrowserData:
    """Everything the feature browser lists, computed once per SAE (a page caches it by the SAE's file version):
    the held-out activations it reads, the per-feature table, the order to list features in, each feature's label
    and its effect on the output (F, V)."""

    activations: Activations
    table: FeatureTable
    order: list[int]
    labels: list[str]
    effects: torch.Tensor


@torch.no_grad()
def browser_data(model: LanguageModel, sae: TopKSAE, windows: torch.Tensor, tokenizer: Tokenizer) -> BrowserData:
    """Read the SAE's hook point over ``windows`` (a stored SAE's held-out windows) and build the browser's lists."""
    activations = collect_activations(model, windows, sae.config.hook_name)
    table = feature_table(sae, activations.acts)
    labels = [feature_label(table, activations, f, tokenizer) for f in range(sae.config.n_features)]
    return BrowserData(activations, table, interest_order(table), labels, output_direction(model, sae))
