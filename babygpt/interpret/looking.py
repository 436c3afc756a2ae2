"""What the look-inside views say about a run, from its weights (``inside.trace``) and what training recorded: each
head's type, how the heads formed over training and whether an induction head appeared, the layer at which each
prediction settles, and what breaks without each part. Plain data in, plain data out: the pages draw it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from babygpt.errors import BabyGPTError
from babygpt.interpret.inside import (
    HEAD_TYPE_BY_KEY,
    KINDS,
    POSITIONAL,
    SCORED,
    TYPE_THRESHOLD,
    Ablation,
    head_ablation_losses,
    logit_lens,
    loss_of,
    means_for,
    position_scores,
    trace,
    without_attention,
    without_feed_forward,
    without_head,
    without_heads,
)
from babygpt.model.gpt import LanguageModel
from babygpt.model.sizing import forward_flops_per_token
from babygpt.text.tokenizers import Tokenizer, token_bytes, unknown_pieces

# --- how the heads formed ------------------------------------------------------------------------

@dataclass(frozen=True)
class Formation:
    """Each head's scores at every recorded evaluation: type -> (n_steps, n_layer, n_head); ``lacking`` names the
    types this run's history does not have (runs trained before induction was recorded)."""

    steps: list[int]
    scores: dict[str, np.ndarray]
    lacking: tuple[str, ...] = ()


def formation_from_history(history: list[tuple[int, dict]]) -> Formation | None:
    """From the scores training recorded at each evaluation (``RunStore.head_score_history``)."""
    rows = [(step, scores) for step, scores in history if scores]
    if not rows:
        return None
    kinds = [k for k in SCORED if all(k in s for _, s in rows)]
    return Formation([s for s, _ in rows], {k: np.array([s[k] for _, s in rows], dtype=float) for k in kinds},
                     tuple(k for k in SCORED if k not in kinds))


def formation_from_snapshots(snapshots: list[tuple[int, np.ndarray]]) -> Formation | None:
    """For runs trained before scores were recorded: the positional types computed from the probe prompt's stored
    attention (n_layer, n_head, T, T) at each evaluation; induction needs a probe those runs never saw."""
    usable = [(step, w) for step, w in snapshots if w.shape[-1] >= 3]
    if not usable:
        return None
    per_step = [[position_scores(torch.from_numpy(layer.astype(np.float32))[None]) for layer in w] for _, w in usable]
    kinds = POSITIONAL
    scores = {k: np.array([[layer[k] for layer in step] for step in per_step], dtype=float) for k in kinds}
    return Formation([s for s, _ in usable], scores, ("induction",))


@dataclass(frozen=True)
class Onset:
    """The first recorded step at which a head passed the threshold of a type, and the head."""

    step: int
    layer: int
    head: int
    score: float

    @property
    def head_name(self) -> str:
        return f"layer {self.layer} head {self.head}"


def onset(formation: Formation, kind: str = "induction", threshold: float = TYPE_THRESHOLD) -> Onset | None:
    """None also for spread: it is a shape of the weights, not a type a head passes."""
    if kind not in formation.scores or kind == "spread":
        return None
    values = formation.scores[kind]  # (n_steps, n_layer, n_head)
    for i, step in enumerate(formation.steps):
        layer, head = np.unravel_index(int(np.argmax(values[i])), values[i].shape)
        if values[i, layer, head] >= threshold:
            return Onset(step, int(layer), int(head), float(values[i, layer, head]))
    return None


def onset_label(found: Onset) -> str:
    """The words beside the chart's dashed line: which head passed, and when."""
    return f"{found.head_name} passed {TYPE_THRESHOLD} at step {found.step}"


def last_score(formation: Formation, kind: str, layer: int, head: int) -> float:
    return float(formation.scores[kind][-1, layer, head])


def strongest_at_end(formation: Formation, kind: str) -> tuple[int, int, float]:
    """The head with the highest score of ``kind`` at the last recorded evaluation: (layer, head, score)."""
    last = formation.scores[kind][-1]
    layer, head = (int(i) for i in np.unravel_index(int(np.argmax(last)), last.shape))
    return layer, head, float(last[layer, head])


def formation_reading(formation: Formation, kind: str, type_name: str) -> str:
    """What the chart of ``kind`` shows, in one sentence that names the head its dashed line marks and says where
    that head stands at the last evaluation (a head can pass the threshold and fall back)."""
    end = formation.steps[-1]
    if kind == "spread":
        return "Spread is a shape of the weights, not a type: no threshold is marked."
    found = onset(formation, kind)
    if found is None:
        layer, head, value = strongest_at_end(formation, kind)
        return (f"No head reached {TYPE_THRESHOLD} on {type_name} at any recorded evaluation; at the last one "
                f"(step {end}) the highest is layer {layer} head {head} with {value:.2f}.")
    now = last_score(formation, kind, found.layer, found.head)
    held = "still passes" if now >= TYPE_THRESHOLD else f"is below {TYPE_THRESHOLD} again"
    return (f"The dashed line: {found.head_name} first reached {TYPE_THRESHOLD} on {type_name} at step "
            f"{found.step} ({found.score:.2f}); at the last evaluation (step {end}) it scores {now:.2f} and {held}.")


def loss_slopes(val: list[tuple[int, float]], at_step: int) -> tuple[float, float] | None:
    """The validation loss's change per 100 steps over the evaluations before ``at_step`` and after it (None
    when either side has fewer than two): whether the curve bends where a head formed, as numbers."""
    before = [(s, v) for s, v in val if s <= at_step]
    after = [(s, v) for s, v in val if s >= at_step]
    if len(before) < 2 or len(after) < 2:
        return None

    def per_100(points: list[tuple[int, float]]) -> float:
        steps, losses = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
        return float(np.polyfit(steps, losses, 1)[0] * 100)

    return per_100(before[-3:]), per_100(after[:3])


def formation_sentence(formation: Formation | None, val: list[tuple[int, float]], token_word: str) -> str:
    """What the history shows about induction heads: only what was measured (the scores, the steps, the loss's
    slopes), never a guess at why none formed; a one-layer model is named as such because the circuit needs a
    head in an earlier layer, a fact of its shape."""
    if formation is None or len(formation.steps) < 2:
        return ("This run has too few recorded evaluations to show heads forming; train longer, or with a smaller "
                "eval_interval.")
    if "induction" in formation.lacking:
        return ("This run was trained before induction scores were recorded: its history shows the positional "
                "types only (from the probe prompt's attention). Runs trained now record induction too.")
    end = formation.steps[-1]
    found = onset(formation)
    if found is None:
        layer, head, best = strongest_at_end(formation, "induction")
        text = (f"No induction head formed: no head reached {TYPE_THRESHOLD} on repeated random tokens at any of "
                f"the {len(formation.steps)} recorded evaluations; at the last one (step {end}) the highest is "
                f"layer {layer} head {head} with {best:.2f}.")
        if formation.scores["induction"].shape[1] < 2:
            text += (" This model has one layer, and the circuit needs two: a head in an earlier layer notes the "
                     "previous token, a later one searches for it.")
        return text
    text = (f"An induction head formed by step {found.step}: layer {found.layer} head {found.head} reached "
            f"{found.score:.2f}, looking at the {token_word} after an earlier occurrence of the current one")
    now = last_score(formation, "induction", found.layer, found.head)
    text += f"; at the last evaluation (step {end}) it scores {now:.2f}." if end != found.step else "."
    slopes = loss_slopes(val, found.step)
    if slopes is not None:
        text += (f" The validation loss changed by {slopes[0]:+.3f} per 100 steps over the evaluations before it and "
                 f"{slopes[1]:+.3f} after it.")
    return text


# --- the logit lens --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LensView:
    """Per stop (embeddings, then after each layer) and position: the top token, its probability, and the
    probability of the true next token; ``settles``: per position, the first stop from which the top token is
    the model's final one (None where the last position has no next token)."""

    tokens: list[str]
    next_tokens: list[str | None]
    top: list[list[str]]
    top_prob: np.ndarray
    true_prob: np.ndarray
    settles: list[int]
    applies: str


def lens_view(model: LanguageModel, tokenizer: Tokenizer, ids: list[int]) -> LensView:
    probs = logit_lens(model, torch.tensor([ids], device=next(model.parameters()).device)).cpu()  # (L+1, T, V)
    top_prob, top_ids = probs.max(-1)
    final = top_ids[-1]
    settles = []
    for t in range(len(ids)):
        agree = (top_ids[:, t] == final[t]).tolist()
        first = len(agree) - 1
        while first > 0 and agree[first - 1]:
            first -= 1
        settles.append(first)
    true = np.full(probs.shape[:2], np.nan)
    for t in range(len(ids) - 1):
        true[:, t] = probs[:, t, ids[t + 1]].numpy()
    config = model.config
    applies = ("Each row is the stream after that layer, read out through the final layer norm and the output head, "
               "exactly as the model reads its last layer.")
    if not config.use_layernorm:
        applies = ("This rung has no final layer norm: each row is the stream read out by the output head directly, "
                   "as the model reads its last layer.")
    if not config.use_residual:
        applies += (" Without residual connections each layer replaces the stream instead of adding to it, so a row "
                    "shows that layer's output alone, not an accumulating sum.")
    return LensView([tokenizer.token_text(i) for i in ids],
                    [tokenizer.token_text(i) for i in ids[1:]] + [None],
                    [[tokenizer.token_text(int(i)) for i in row] for row in top_ids], top_prob.numpy(), true,
                    settles, applies)


# --- what breaks without a part --------------------------------------------------------------------

@dataclass(frozen=True)
class KnockOuts:
    """What knocking out each part by one kind (zero or mean) costs, in nats per token (positive: worse): each
    head, each layer's attention, each feed-forward (NaN for a rung without one); the head the model needs most
    by this kind, and the tokens that head's absence hurt most (the context's last token, the next token, the
    change)."""

    kind: str
    heads: np.ndarray
    attention: np.ndarray
    feed_forward: np.ndarray
    worst: tuple[int, int]
    hurt: list[tuple[str, str, float]]


@dataclass(frozen=True)
class AblationView:
    """Knock-outs by zero and by mean on one text, beside its intact loss: the page shows the kind chosen, and
    every figure it shows (grid, sentence, tables) comes from that kind."""

    intact: float
    zero: KnockOuts
    mean: KnockOuts

    def by(self, kind: str) -> KnockOuts:
        if kind not in KINDS:
            raise BabyGPTError(f"Ablation is by zero or by mean, not {kind!r}.")
        return self.zero if kind == "zero" else self.mean


def ablation_view(model: LanguageModel, tokenizer: Tokenizer, ids: torch.Tensor, n_hurt: int = 8) -> AblationView:
    """``ids``: (B, T + 1) windows of validation text; predictions of positions 0..T-1 are scored."""
    inputs, targets = ids[:, :-1], ids[:, 1:]
    intact_per_token = _per_token_loss(model, inputs, targets, None)
    intact = float(intact_per_token.mean())
    zero, mean = (_knock_outs(model, tokenizer, inputs, targets, kind, intact_per_token, n_hurt) for kind in KINDS)
    return AblationView(intact, zero, mean)


def _knock_outs(model: LanguageModel, tokenizer: Tokenizer, inputs: torch.Tensor, targets: torch.Tensor, kind: str,
                intact_per_token: torch.Tensor, n_hurt: int) -> KnockOuts:
    intact = float(intact_per_token.mean())
    means = means_for(model, inputs, kind)
    heads = head_ablation_losses(model, inputs, targets, kind, intact, means)
    n_layer = model.config.n_layer

    def cost(ablation: Ablation) -> float:
        return loss_of(trace(model, inputs, ablation).logits, targets) - intact

    attention = np.array([cost(without_attention(i, means)) for i in range(n_layer)])
    ffn = np.array([cost(without_feed_forward(i, means)) for i in range(n_layer)] if model.config.use_ffn
                   else [np.nan] * n_layer)
    layer, head = (int(i) for i in np.unravel_index(int(np.argmax(heads)), heads.shape))
    per_token = _per_token_loss(model, inputs, targets, without_head(layer, head, means)) - intact_per_token
    hurt, seen = [], set()
    for flat in torch.argsort(per_token.reshape(-1), descending=True).tolist():
        b, t = divmod(flat, inputs.size(1))
        pair = (tokenizer.token_text(int(inputs[b, t])), tokenizer.token_text(int(targets[b, t])))
        if pair not in seen:  # each pair once: a text that repeats a line would fill the list with it
            seen.add(pair)
            hurt.append((*pair, float(per_token[b, t])))
        if len(hurt) == n_hurt:
            break
    return KnockOuts(kind, heads, attention, ffn, (layer, head), hurt)


def _per_token_loss(model, inputs, targets, ablation) -> torch.Tensor:
    logits = trace(model, inputs, ablation).logits.float()
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")


@torch.no_grad()
def sample_with(model: LanguageModel, tokenizer: Tokenizer, prompt_ids: list[int], n_tokens: int, seed: int,
                ablation: Ablation | None = None, temperature: float = 0.8) -> str:
    """Text generated through the explicit pass, with ``ablation`` applied: the same seed with and without a part
    gives two texts that differ only by what the part did."""
    generator = torch.Generator().manual_seed(seed)
    ids = list(prompt_ids)
    device = next(model.parameters()).device
    block = model.config.block_size
    for _ in range(n_tokens):
        logits = trace(model, torch.tensor([ids[-block:]], device=device), ablation).logits[0, -1].float().cpu()
        probs = torch.softmax(logits / temperature, -1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return tokenizer.decode(ids)


def head_ablation_for(model: LanguageModel, layer: int, head: int, mode: str, ids: torch.Tensor) -> Ablation:
    """The ablation of one head by ``mode`` (zero, or its mean output on ``ids``)."""
    return without_head(layer, head, means_for(model, ids, mode))




# --- what a measurement costs, bounded before it is paid ------------------------------------------

MEASURE_FLOPS = 2e11  # a few seconds of a 2-core CPU: what one look-inside measurement may cost
MAX_WINDOWS = 8


def ablation_passes(config) -> int:
    """Forward passes of ``ablation_view``: for each kind (zero, mean) each head, each layer's attention and
    feed-forward, and the worst head's per-token pass; the intact pass and the mean outputs once."""
    return 2 * (config.n_layer * config.n_head + 2 * config.n_layer + 1) + 2


def measurement_windows(val_ids: torch.Tensor, config, passes: int, seed: int = 0) -> torch.Tensor:
    """Windows of ``block_size + 1`` validation tokens (inputs and their next tokens), as many as ``passes``
    forward passes can afford within ``MEASURE_FLOPS`` (at least one, at most ``MAX_WINDOWS``), shortened for a
    model too large for one full window: the cost is known before anything runs."""
    forward_per_token = forward_flops_per_token(config)
    affordable = int(MEASURE_FLOPS / (passes * forward_per_token))
    length = max(8, min(config.block_size, affordable))
    count = max(1, min(MAX_WINDOWS, affordable // length))
    if len(val_ids) <= length + 1:
        raise BabyGPTError(f"The text is too short to measure on: {len(val_ids)} tokens, a window needs {length + 2}.")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(val_ids) - length - 1, (count,), generator=generator)
    return torch.stack([val_ids[s:s + length + 1] for s in starts.tolist()])




# --- two runs side by side -----------------------------------------------------------------------

def comparison_refusal(a: LanguageModel, b: LanguageModel, tokenizer_a: Tokenizer, tokenizer_b: Tokenizer,
                       prompt: str) -> str | None:
    """Why two runs' views on one prompt cannot be set side by side (None: they can). Head grids and curves always
    compare; a prompt's attention and lens need the same tokens in both: each tokenizer reading it whole, and both
    cutting it into the same pieces. The cut is what is compared, not the tokenizers' kind: two BPEs with other
    merges cut most prompts differently, and two character vocabularies of other texts cut a prompt alike."""
    if not (a.config.use_attention and b.config.use_attention):
        return "One of the runs is the bigram model, which has no heads or layers to compare."
    if tokenizer_a.kind != tokenizer_b.kind:
        return (f"The runs cut text differently ({tokenizer_a.kind} and {tokenizer_b.kind}), so one prompt is not the "
                "same tokens in both: compare their head types and curves instead.")
    for tokenizer, which in ((tokenizer_a, "first"), (tokenizer_b, "second")):
        missing = unknown_pieces(tokenizer, prompt)
        if missing:
            return f"The {which} run never saw {', '.join(repr(m) for m in missing[:5])} in this prompt."
    cuts = [[token_bytes(t, i) for i in t.encode(prompt)] for t in (tokenizer_a, tokenizer_b)]
    if cuts[0] != cuts[1]:
        at = next((k for k, (x, y) in enumerate(zip(*cuts, strict=False)) if x != y), min(map(len, cuts)))
        return (f"The runs' tokenizers cut this prompt into different tokens ({len(cuts[0])} and {len(cuts[1])} tokens, "
                f"first apart at token {at + 1}: their {tokenizer_a.kind} vocabularies differ), so one prompt is not "
                "the same tokens in both: compare their head types and curves instead.")
    return None


def affordable_sample_tokens(config, prompt_tokens: int, wanted: int = 60) -> int:
    """How many tokens ``sample_with`` may write twice (with and without a part) within ``MEASURE_FLOPS``: each new
    token is one explicit pass over the context so far (at least 8, at most ``wanted``)."""
    context = min(config.block_size, prompt_tokens + wanted)
    per_token = 2 * forward_flops_per_token(config, context) * context  # two texts, a pass over the context each
    return max(8, min(wanted, int(MEASURE_FLOPS // per_token)))


# --- heads knocked out together ------------------------------------------------------------------

@dataclass(frozen=True)
class HeadSetKnockOut:
    """Every head of one type knocked out at once, beside each knocked out alone, on the same windows and by the
    same kind: heads that back each other up cost little one at a time and much together, so one-at-a-time
    ablation alone can make a student conclude the wrong thing."""

    type_key: str
    mode: str
    heads: tuple[tuple[int, int], ...]
    together: float  # nats per token, against the intact loss
    alone: tuple[float, ...]

    def sentence(self) -> str:
        """What was measured, in one paragraph: the joint cost, each head's own, and how they compare."""
        name = HEAD_TYPE_BY_KEY[self.type_key].name
        listed = ", ".join(f"layer {layer} head {head}" for layer, head in self.heads)
        alone = ", ".join(f"{delta:+.3f}" for delta in self.alone)
        total = sum(self.alone)
        text = (f"Knocked out together (by {self.mode}), the {len(self.heads)} {name} head(s) ({listed}) change the "
                f"loss by {self.together:+.3f} nats per token; one at a time by {alone}")
        if len(self.heads) == 1:
            return text + "."
        text += f" (sum {total:+.3f}). "
        if self.together > total + max(0.02, 0.25 * abs(total)):
            return text + ("Together they cost more than their parts add up to: each covers for the others, so "
                           "knocking one out at a time understates what they do.")
        if self.together < total - max(0.02, 0.25 * abs(total)):
            return text + "Together they cost less than their parts add up to: what they do overlaps."
        return text + "Together they cost about what their parts add up to."


def head_set_knock_out(model: LanguageModel, ids: torch.Tensor, heads: list[tuple[int, int]], type_key: str,
                       mode: str, alone: np.ndarray, intact: float) -> HeadSetKnockOut:
    """``heads`` knocked out together on ``ids`` ((B, T + 1) windows, as ``ablation_view``) by ``mode``; ``alone``
    is the (n_layer, n_head) grid of single knock-outs measured on the same windows, ``intact`` their loss."""
    if not heads:
        raise BabyGPTError(f"No head of this model is a {HEAD_TYPE_BY_KEY[type_key].name} head.")
    inputs, targets = ids[:, :-1], ids[:, 1:]
    ablation = without_heads(heads, means_for(model, inputs, mode))
    together = loss_of(trace(model, inputs, ablation).logits, targets) - intact
    return HeadSetKnockOut(type_key, mode, tuple(heads), together, tuple(float(alone[lh]) for lh in heads))
