"""How big a model is, from its configuration alone, and the limits a shared server holds models to.

Every size here is arithmetic on ``ModelConfig``: a page can show the size of a 40,000 × 40,000 bigram
table, and the server can refuse it, without allocating a byte of it. The formulas follow ``GPT.__init__``
line by line and a test holds them equal to ``GPT.num_params()`` on every rung.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.units import format_bytes, format_count

MAX_PARAMS_ENV = "BABYGPT_MAX_PARAMS"
JOB_MEMORY_ENV = "BABYGPT_JOB_MEMORY_MB"
# a student reads these sentences: they name the server's limit, never the setting a teacher sets it by (the docs do)
# float32 weights + gradients + AdamW's two moments: what training keeps per parameter
TRAINING_BYTES_PER_PARAM = 16


def _layernorm(config: ModelConfig) -> int:
    """A norm's gains (and LayerNorm's biases); RMSNorm has no bias."""
    if not config.use_layernorm:
        return 0
    return config.n_embd * (2 if config.bias and config.norm == "layernorm" else 1)


def ffn_width(config: ModelConfig) -> int:
    """The feed-forward's hidden width: 4C, or for SwiGLU, whose gate adds a third matrix, 8C/3 rounded up to a
    multiple of 8 so the three matrices hold about the parameters of the two (Shazeer 2020; Llama)."""
    if config.activation != "swiglu":
        return 4 * config.n_embd
    return 8 * -(-config.n_embd // 3)  # 8·⌈C/3⌉ ≥ 8C/3


def _ffn(config: ModelConfig) -> int:
    c, h, b = config.n_embd, ffn_width(config), config.bias
    up = _linear(c, 2 * h if config.activation == "swiglu" else h, b)  # SwiGLU's gate and up in one matrix
    return up + _linear(h, c, b)


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def block_params(config: ModelConfig) -> int:
    c, b = config.n_embd, config.bias
    attention = _linear(c, 3 * c, b) + (_linear(c, c, b) if config.use_projection else 0)
    ffn = _ffn(config) if config.use_ffn else 0
    qk_norm = 2 * config.head_size if config.qk_norm else 0  # one gain per dimension of a head, for q and for k
    values = config.vocab_size * c if config.value_embeddings else 0  # the layer's own embedding of the tokens
    return attention + ffn + 2 * _layernorm(config) + qk_norm + values


def parameter_count(config: ModelConfig, exclude_positions: bool = False) -> int:
    """The number of trainable parameters ``build_model(config)`` would have."""
    v, c = config.vocab_size, config.n_embd
    if not config.use_attention:
        return v * v  # the bigram table: row i holds the logits of what follows token i
    positions = config.block_size * c if config.positional == "learned" and not exclude_positions else 0
    head = 0 if config.tie_weights else c * v
    return v * c + positions + config.n_layer * block_params(config) + _layernorm(config) + head


def size_in_words(config: ModelConfig) -> str:
    """A model's size as every page and table writes it: the bigram rung is its vocabulary × vocabulary table (it
    has no layers to count), every other rung its layers × width with its heads; then its parameters."""
    if not config.use_attention:
        shape = f"{config.vocab_size:,}×{config.vocab_size:,} table"
    else:
        shape = f"{config.n_layer}×{config.n_embd}, {config.n_head} head{'s' if config.n_head != 1 else ''}"
    return f"{shape} · {format_count(parameter_count(config))} parameters"


def forward_flops_per_token(config: ModelConfig, seq_len: int | None = None) -> float:
    """One forward pass's FLOPs per token: 2N for the weights (a multiply and an add per weight) and attention's
    4·L·C·T (the scores q·k and the weighted sum of the values over a context of T). What looking inside costs:
    every measurement and sample of the Inside page is a number of forward passes."""
    t = seq_len or config.block_size
    attention = 4 * config.n_layer * config.n_embd * t if config.use_attention else 0
    # value embeddings are read, not multiplied: a row per token and layer, like the position table
    lookups = config.n_layer * config.vocab_size * config.n_embd if config.value_embeddings else 0
    return 2 * (parameter_count(config, exclude_positions=True) - lookups) + attention


def flops_per_token(config: ModelConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token: the forward pass and a backward pass that costs two (6N + 12·L·C·T)."""
    return 3 * forward_flops_per_token(config, seq_len)


def training_memory_bytes(config: ModelConfig, batch_size: int) -> int:
    """An estimate of a training job's peak memory: weights, gradients, optimiser state, activations, logits.

    Activations follow the usual transformer estimate (per layer and token about 34·C values plus 5·heads·T
    for the attention maps), at 4 bytes; the logits, their softmax and gradient are 3·V values per token.
    It is an estimate to refuse the impossible early, not a promise.
    """
    tokens = batch_size * config.block_size  # held in memory at once: one micro-batch
    return parameter_count(config) * TRAINING_BYTES_PER_PARAM + tokens * _training_values_per_token(config) * 4


def _training_values_per_token(config: ModelConfig) -> int:
    per_layer = 34 * config.n_embd + 5 * config.n_head * config.block_size if config.use_attention else 0
    return config.n_layer * per_layer + 3 * config.vocab_size


def eval_batches_per_forward(config: ModelConfig, eval_iters: int) -> int:
    """How many evaluation batches one forward pass can take without more memory than a training step needs.

    A training step keeps every layer's activations for the backward pass; a forward without gradients holds
    about one layer's at a time (some 10·C values a token) and the logits (2·V), so several batches fit in the
    memory training already uses: 16 at nanoGPT's CPU size, 31 at the lecture's, 1 with GPT-2's vocabulary.
    On a GPU, where a small model's forward pass waits on kernel launches, fewer and larger passes cost far less;
    on a CPU the work is the same either way (200 batches of the app's model: 5.4–6.5 s batched or not).
    """
    eval_values = (10 * config.n_embd if config.use_attention else 0) + 2 * config.vocab_size
    return max(1, min(eval_iters, _training_values_per_token(config) // eval_values))


# an import holds the file's tensors, their float32 copy in Baby GPT's layout and the model built from them
IMPORT_BYTES_PER_PARAM = 12


def inference_memory_bytes(config: ModelConfig) -> int:
    """What importing a model and then looking inside it and generating takes at its peak: the import's copies of
    the weights, and one forward pass over the full context at batch 1 that keeps every attention map (the
    Attention and Inside pages), with about 10·C values a token in flight and the logits with their softmax."""
    t = config.block_size
    maps = config.n_layer * config.n_head * t * t if config.use_attention else 0
    per_token = (10 * config.n_embd if config.use_attention else 0) + 2 * config.vocab_size
    return parameter_count(config) * IMPORT_BYTES_PER_PARAM + (maps + t * per_token) * 4


def largest_batch(config: ModelConfig, memory: int) -> int:
    """The largest batch whose training fits ``memory`` (0: not even one sequence)."""
    fixed = training_memory_bytes(config, 0)
    per_sequence = training_memory_bytes(config, 1) - fixed
    return max(0, (memory - fixed) // per_sequence)


def total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


@dataclass(frozen=True)
class ModelLimits:
    """What one training job may use on a shared server (the server reads it from its settings:
    ``babygpt.server.settings.model_limits_from_env``)."""

    max_params: int
    job_memory_bytes: int

    def problems(self, config: ModelConfig, batch_size: int) -> list[str]:
        """Why this model cannot train here, in words that say what to change (empty: it can)."""
        found = self._size_problems(config)
        memory = training_memory_bytes(config, batch_size)
        if memory > self.job_memory_bytes:
            found.append(f"Training it would need about {format_bytes(memory)}, over {self._job_limit}. "
                         f"Lower batch_size or block_size, or: {_what_to_change(config)}")
        return found

    def _size_problems(self, config: ModelConfig) -> list[str]:
        params = parameter_count(config)
        if params <= self.max_params:
            return []
        return [f"This model has {format_count(params)} parameters, over this server's limit of "
                f"{format_count(self.max_params)}. {_what_to_change(config)}"]

    @property
    def _job_limit(self) -> str:
        return f"this server's limit of {format_bytes(self.job_memory_bytes)} for one job"

    def check(self, config: ModelConfig, batch_size: int) -> None:
        found = self.problems(config, batch_size)
        if found:
            raise BabyGPTError(" ".join(found))

    def check_import(self, config: ModelConfig) -> None:
        """An imported model is looked inside and generates text: its size, and the memory of that
        (``inference_memory_bytes``), not of training it, which ``check_fine_tune`` asks when a fine-tune starts."""
        found = self._size_problems(config)
        memory = inference_memory_bytes(config)
        if memory > self.job_memory_bytes:
            found.append(f"Looking inside it and generating would need about {format_bytes(memory)}, over "
                         f"{self._job_limit}.")
        if found:
            raise BabyGPTError(" ".join(found))

    def check_fine_tune(self, config: ModelConfig, batch_size: int) -> None:
        """Fine-tuning trains at the model's own context (its position table fixes it): the batch is what can
        change, so a refusal names the largest batch that fits."""
        found = self._size_problems(config)
        memory, t = training_memory_bytes(config, batch_size), config.block_size
        if memory > self.job_memory_bytes:
            fits = largest_batch(config, self.job_memory_bytes)
            limit = f"over {self._job_limit}"
            if fits:
                found.append(f"Fine-tuning at batch {batch_size} × {t:,} tokens would need about "
                             f"{format_bytes(memory)}, {limit}. Batch {fits} × {t:,} fits (about "
                             f"{format_bytes(training_memory_bytes(config, fits))}); the context is the model's own.")
            else:
                found.append(f"Fine-tuning it would need about {format_bytes(training_memory_bytes(config, 1))} even "
                             f"at batch 1 × {t:,} tokens, {limit}. It can be looked inside and generate here; "
                             "fine-tuning it needs a server with more memory.")
        if found:
            raise BabyGPTError(" ".join(found))


def _what_to_change(config: ModelConfig) -> str:
    if not config.use_attention:
        return (f"The bigram table is vocabulary × vocabulary ({config.vocab_size:,} × {config.vocab_size:,}): "
                "pick an attention rung (its size grows with n_embd, not with the vocabulary squared), a text "
                "with fewer distinct characters, or the gpt2 tokenizer.")
    return ("Choose a smaller n_embd or n_layer, or a text with fewer distinct tokens (char tokenizer on a text "
            "with fewer distinct characters).")
