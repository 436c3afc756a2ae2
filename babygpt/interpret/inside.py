"""Looking inside a trained model through one mechanism: an explicit pass over the run's own modules that keeps
what each layer read and wrote, and can knock a part out on the way.

``trace`` runs the same weights as ``GPT.forward`` (tests hold the logits equal) but one step at a time: the
residual stream before and after every block, each head's attention weights and output, each feed-forward's
output. What the views compute reads a ``Trace``:

* ``head_scores``: what each head does, by the known head types (previous token, first token or "sink", self,
  induction) and how spread its weights are;
* ``logit_lens``: what the model would predict if it stopped after each layer;
* ``Ablation``: a head, a layer's attention or a feed-forward replaced by zero or by its mean output, for the
  change in loss it causes.

Every number is from the model on screen; nothing here trains or builds a second model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from babygpt.errors import BabyGPTError
from babygpt.model.gpt import GPT, LanguageModel, explicit_attention


@dataclass(frozen=True)
class Ablation:
    """Parts knocked out of a pass. ``heads``: (layer, head) -> None for zero, or the head's mean output (hs,)
    to put in its place; ``attention``: layers whose whole attention update is removed (by mean: every head of
    the layer by its mean); ``feed_forward``: layer -> None to remove its update, or its mean update (C,) to put
    in its place."""

    heads: dict[tuple[int, int], torch.Tensor | None] = field(default_factory=dict)
    attention: frozenset[int] = frozenset()
    feed_forward: dict[int, torch.Tensor | None] = field(default_factory=dict)


@dataclass
class Trace:
    """What one pass computed, per layer: ``residual[l]`` is the stream entering layer l (``residual[n_layer]``
    the stream the head reads); weights (B, nh, T, T); head outputs (B, nh, T, hs) before the projection; the
    feed-forward's update (B, T, C), None for a rung without one."""

    residual: list[torch.Tensor]
    weights: list[torch.Tensor]
    head_outputs: list[torch.Tensor]
    ffn_updates: list[torch.Tensor | None]
    logits: torch.Tensor


def _require_attention(model: LanguageModel) -> GPT:
    if not model.config.use_attention:
        raise BabyGPTError("The bigram model has no layers or heads to look inside: each token is a row of a table.")
    return model


@torch.no_grad()
def trace(model: LanguageModel, ids: torch.Tensor, ablation: Ablation | None = None) -> Trace:
    """The model's forward pass, layer by layer, in evaluation mode (no dropout), with ``ablation`` applied."""
    gpt = _require_attention(model)
    ablation = ablation or Ablation()
    was_training = gpt.training
    gpt.eval()
    try:
        x = gpt.embed(ids)  # (B, T, C)
        residual, weights, outputs, ffn_updates = [x], [], [], []
        for layer, block in enumerate(gpt.blocks):
            attn = block.attn
            q, k, v = attn.qkv_heads(block.ln1(x)).unbind(0)  # each (B, nh, T, hs)
            heads, maps = explicit_attention(q, k, v, causal=attn.causal, scale_scores=attn.scale_scores)
            for (at_layer, h), replacement in ablation.heads.items():
                if at_layer == layer:
                    heads[:, h] = 0.0 if replacement is None else replacement.to(heads.dtype)
            weights.append(maps.weights)
            outputs.append(heads)
            if layer not in ablation.attention:
                x = block.add(x, attn.merge_heads(heads))
            elif not block.residual:
                x = torch.zeros_like(x)  # before residual connections the update *is* the stream
            update = None if block.ffn is None else block.ffn(block.ln2(x))  # feed_forward_step, taken apart
            ffn_updates.append(update)
            if update is not None:
                if layer in ablation.feed_forward:
                    replacement = ablation.feed_forward[layer]
                    x = x if replacement is None else block.add(x, replacement.to(x.dtype).expand_as(update))
                else:
                    x = block.add(x, update)
            residual.append(x)
        logits = gpt.lm_head(gpt.ln_f(x))
    finally:
        gpt.train(was_training)
    return Trace(residual, weights, outputs, ffn_updates, logits)


# --- what each head does -------------------------------------------------------------------------

HEAD_TYPES = {
    "previous": "previous token: mean weight on position t−1",
    "first": "first token (a \"sink\"): mean weight on position 0",
    "self": "self: mean weight on position t itself",
    "induction": "induction: on random tokens repeated twice, mean weight from each token of the second copy to "
                 "the token just after its earlier occurrence",
    "spread": "spread: entropy of the weights over the visible positions, 0 (one position) to 1 (uniform)",
}


def position_scores(weights: torch.Tensor) -> dict[str, np.ndarray]:
    """Previous, first, self and spread for each head, averaged over the batch and the positions where they mean
    something (t ≥ 1 for previous, t ≥ 2 for first and spread: at t = 0 and 1 every head must look there).
    ``weights``: (B, nh, T, T) -> each (nh,)."""
    w = weights.float()
    t = w.size(-1)
    if t < 3:
        raise BabyGPTError("Head types need a probe of at least 3 tokens.")
    rows = torch.arange(t)
    previous = w[..., rows[1:], rows[:-1]].mean(dim=(0, 2))
    first = w[..., 2:, 0].mean(dim=(0, 2))
    self_weight = w[..., rows, rows][..., 2:].mean(dim=(0, 2))
    visible = (rows + 1).float()  # a causal row t sees t + 1 positions
    entropy = -(w.clamp_min(1e-12).log() * w).sum(-1)  # (B, nh, T)
    spread = (entropy[..., 2:] / visible[2:].log()).mean(dim=(0, 2))
    return {k: v.numpy() for k, v in {"previous": previous, "first": first, "self": self_weight,
                                      "spread": spread}.items()}


def induction_probe(vocab_size: int, block_size: int, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Random tokens repeated twice, as long as the context allows: (batch, 2 × period) ids and the period. The
    tokens of one copy are distinct where the vocabulary allows, so "the token after its earlier occurrence" is
    one position, not several."""
    period = block_size // 2
    if period < 2:
        raise BabyGPTError("The induction test needs a context of at least 4 tokens.")
    generator = torch.Generator().manual_seed(seed)
    if vocab_size >= period:
        half = torch.stack([torch.randperm(vocab_size, generator=generator)[:period] for _ in range(batch)])
    else:
        half = torch.randint(vocab_size, (batch, period), generator=generator)
    return torch.cat([half, half], dim=1), period


def induction_scores(weights: torch.Tensor, period: int) -> np.ndarray:
    """Mean weight from each query t of the second copy to key t − period + 1 (the token after the earlier
    occurrence of the current one). ``weights``: (B, nh, T, T) on an ``induction_probe`` -> (nh,)."""
    queries = torch.arange(period, 2 * period - 1)
    return weights.float()[..., queries, queries - period + 1].mean(dim=(0, 2)).numpy()


@dataclass(frozen=True)
class HeadScores:
    """Every head's score on every type: each (n_layer, n_head)."""

    previous: np.ndarray
    first: np.ndarray
    self: np.ndarray
    spread: np.ndarray
    induction: np.ndarray
    text_shape: tuple[int, int] = (0, 0)  # (windows, tokens each) of text the positional types were measured on

    def strongest(self, layer: int, head: int) -> tuple[str, float]:
        """The type this head scores highest on, and that score (spread is a shape, not a type)."""
        scores = {"previous": self.previous[layer, head], "first": self.first[layer, head],
                  "self": self.self[layer, head], "induction": self.induction[layer, head]}
        kind, value = max(scores.items(), key=lambda item: item[1])
        return kind, float(value)

    def kind(self, layer: int, head: int) -> str:
        """The head's type in a few words, or "" when it fits none."""
        kind, value = self.strongest(layer, head)
        return {"previous": "previous token", "first": "first token", "self": "self",
                "induction": "induction"}[kind] if value >= TYPE_THRESHOLD else ""

    def reading(self, layer: int, head: int, token_word: str = "token") -> str:
        """One line that states only what the scores show."""
        kind, value = self.strongest(layer, head)
        where = f"layer {layer} head {head}"
        if value < TYPE_THRESHOLD:
            return (f"{where} fits no known type (its strongest score, {kind}, is {value:.2f}); its weights are "
                    f"{'spread out' if self.spread[layer, head] > 0.5 else 'concentrated'} "
                    f"(spread {self.spread[layer, head]:.2f}).")
        what = {"previous": f"mostly looks at the previous {token_word}",
                "first": f"mostly looks at the first {token_word} (a sink)",
                "self": f"mostly looks at its own {token_word}",
                "induction": f"is an induction head: it looks at the {token_word} after an earlier occurrence of "
                             f"the current one"}[kind]
        return f"{where} {what}: {value:.2f}"


TYPE_THRESHOLD = 0.4  # a head is called by its type when its mean weight there is at least this


def head_scores(model: LanguageModel, text_ids: torch.Tensor, seed: int = 0) -> HeadScores:
    """Scores of every head: the positional types on ``text_ids`` (B, T: windows of the run's validation text),
    induction on random tokens repeated twice."""
    gpt = _require_attention(model)
    on_text = [position_scores(w) for w in trace(gpt, text_ids).weights]
    probe, period = induction_probe(gpt.config.vocab_size, gpt.config.block_size, seed=seed)
    induction = [induction_scores(w, period) for w in trace(gpt, probe.to(text_ids.device)).weights]
    stack = {k: np.stack([s[k] for s in on_text]) for k in ("previous", "first", "self", "spread")}
    return HeadScores(induction=np.stack(induction), text_shape=(int(text_ids.size(0)), int(text_ids.size(1))),
                      **stack)


def scores_during_training(model: LanguageModel, probe_ids: list[int], seed: int = 0) -> dict[str, list]:
    """What training records at every evaluation to show how the heads formed: the positional types on the fixed
    probe prompt (the start of the validation text) and induction on the repeated random tokens, each
    (n_layer, n_head) as nested lists. Two short passes: 1 × probe and 4 × block_size tokens."""
    gpt = _require_attention(model)
    device = next(gpt.parameters()).device
    if len(probe_ids) < 3:
        return {}
    on_probe = [position_scores(w.cpu()) for w in trace(gpt, torch.tensor([probe_ids], device=device)).weights]
    probe, period = induction_probe(gpt.config.vocab_size, gpt.config.block_size, seed=seed)
    induction = [induction_scores(w.cpu(), period) for w in trace(gpt, probe.to(device)).weights]
    out = {k: [s[k].tolist() for s in on_probe] for k in ("previous", "first", "self", "spread")}
    out["induction"] = [row.tolist() for row in induction]
    return out


# --- what each layer predicts ------------------------------------------------------------------

@torch.no_grad()
def logit_lens(model: LanguageModel, ids: torch.Tensor) -> torch.Tensor:
    """Next-token probabilities if the model stopped after each layer: the stream at that point through the final
    norm (where the model has one) and the head. (n_layer + 1, T, V) for one sequence; row 0 is the embeddings
    alone, the last row the model's own prediction."""
    gpt = _require_attention(model)
    was_training = gpt.training
    gpt.eval()
    try:
        streams = trace(gpt, ids[:1]).residual
        return torch.stack([F.softmax(gpt.lm_head(gpt.ln_f(s))[0].float(), dim=-1) for s in streams])
    finally:
        gpt.train(was_training)


# --- what breaks without a part ----------------------------------------------------------------

def loss_of(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1)).item()


KINDS = ("zero", "mean")  # how a part is knocked out: its output replaced by nothing, or by its mean output


@dataclass(frozen=True)
class MeanOutputs:
    """What each part adds on average over a text: what knocking it out by mean puts in its place, so that only
    what it says about this context is removed. ``heads``: (n_head, hs) per layer; ``feed_forward``: (C,) per
    layer, None for a rung without one."""

    heads: list[torch.Tensor]
    feed_forward: list[torch.Tensor | None]


def mean_outputs(model: LanguageModel, ids: torch.Tensor) -> MeanOutputs:
    traced = trace(model, ids)
    return MeanOutputs([out.mean(dim=(0, 2)) for out in traced.head_outputs],
                       [None if u is None else u.mean(dim=(0, 1)) for u in traced.ffn_updates])


def means_for(model: LanguageModel, ids: torch.Tensor, kind: str) -> MeanOutputs | None:
    """The mean outputs a knock-out of ``kind`` needs (None for zero), after checking the kind."""
    if kind not in KINDS:
        raise BabyGPTError(f"Ablation is by zero or by mean, not {kind!r}.")
    return mean_outputs(model, ids) if kind == "mean" else None


def without_head(layer: int, head: int, means: MeanOutputs | None) -> Ablation:
    """One head knocked out: by zero (``means`` None) or by its mean output."""
    return Ablation(heads={(layer, head): None if means is None else means.heads[layer][head]})


def without_attention(layer: int, means: MeanOutputs | None) -> Ablation:
    """A layer's whole attention knocked out: its update removed, or every head replaced by its mean output
    (the projection is linear, so that is the update's mean)."""
    if means is None:
        return Ablation(attention=frozenset({layer}))
    return Ablation(heads={(layer, h): mean for h, mean in enumerate(means.heads[layer])})


def without_feed_forward(layer: int, means: MeanOutputs | None) -> Ablation:
    return Ablation(feed_forward={layer: None if means is None else means.feed_forward[layer]})


def head_ablation_losses(model: LanguageModel, ids: torch.Tensor, targets: torch.Tensor,
                         mode: str = "zero", intact: float | None = None,
                         means: MeanOutputs | None = None) -> np.ndarray:
    """The loss with each head knocked out, minus the intact loss: (n_layer, n_head), in nats per token.
    ``mode`` zero: the head's output is 0; mean: its mean output on this text (keeps what it always adds);
    ``means``: those outputs when the caller has them already."""
    gpt = _require_attention(model)
    means = means if mode == "mean" and means is not None else means_for(gpt, ids, mode)
    intact = loss_of(trace(gpt, ids).logits, targets) if intact is None else intact
    deltas = np.zeros((gpt.config.n_layer, gpt.config.n_head))
    for layer in range(gpt.config.n_layer):
        for head in range(gpt.config.n_head):
            ablated = trace(gpt, ids, without_head(layer, head, means)).logits
            deltas[layer, head] = loss_of(ablated, targets) - intact
    return deltas
