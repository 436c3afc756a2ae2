"""The same model in GPT-2's layout: which Baby GPT models GPT-2's architecture computes exactly, and the mapping of
configs and weights between the two, both ways. No file and no ``transformers`` here: the store writes and reads
the folders (``babygpt.store.huggingface``), and the tests hold the mapping to ``transformers`` itself.

GPT-2 is the ``gpt`` rung: pre-norm blocks with residual connections, a causal, scaled multi-head attention with an
output projection, a 4× feed-forward network, a final norm and a read-out head. What differs is layout only:

* GPT-2's ``Conv1D`` stores a weight as (in, out), the transpose of ``nn.Linear``'s (out, in);
* GPT-2 always has biases (Baby GPT's ``bias=False`` is written as zeros) and always a position table (a sinusoidal
  encoding is written as that table);
* the queries, keys and values come out of one matmul in the same order in both: q, k, v, each head's slice
  contiguous within them, so ``c_attn`` is ``qkv`` transposed, nothing reordered.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError, ImportRefused
from babygpt.model.gpt import GPT, sinusoidal_encoding

# Baby GPT's activation -> the name GPT-2's config gives it (transformers' ACT2FN)
TO_GPT2_ACTIVATION = {"relu2": "relu2", "gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_new"}
# GPT-2's names -> Baby GPT's: gelu_new and gelu_pytorch_tanh are the same tanh approximation
FROM_GPT2_ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu",
                        "relu2": "relu2"}
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, which every norm of Baby GPT uses, and GPT-2's
PREFIX = "transformer."  # GPT2LMHeadModel's name for the body; the head is "lm_head.weight"
BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal masks older GPT-2 checkpoints stored: rebuilt, never read


def gpt2_obstacle(config: ModelConfig) -> str | None:
    """Why GPT-2's architecture cannot compute this model exactly, in one sentence; None when it can."""
    if not config.use_attention:
        return "The bigram rung is a table of next-token scores with no attention; GPT-2 is a Transformer."
    reasons = (
        (not config.use_projection, "This rung has no output projection after attention; every GPT-2 block has one."),
        (not config.use_ffn, "This rung has no feed-forward network; every GPT-2 block has one."),
        (not config.use_residual, "This rung has no residual connections; GPT-2 adds each part's output to its input."),
        (not config.use_layernorm, "This rung has no layer norm; GPT-2 always normalises."),
        (not config.causal, "This run was trained without the causal mask; GPT-2 always hides the future."),
        (config.positional == "rope", "This run's positions are rotary (RoPE); GPT-2 adds a position table."),
        (config.norm != "layernorm", f"This run normalises with {config.norm}; GPT-2's norms are LayerNorms."),
        (config.qk_norm, "This run normalises queries and keys (QK-norm); GPT-2 does not."),
        (config.value_embeddings, "This run adds value embeddings to its attention; GPT-2 has none."),
        (config.logit_softcap > 0, "This run soft-caps its logits; GPT-2 reads them out uncapped."),
        (config.positional not in ("learned", "sinusoidal"),
         "This run was trained without positions; GPT-2 always adds a position embedding."),
        (config.activation not in TO_GPT2_ACTIVATION, f"GPT-2's config has no name for {config.activation!r}."),
    )
    return next((reason for blocked, reason in reasons if blocked), None)


def check_exportable(config: ModelConfig) -> None:
    obstacle = gpt2_obstacle(config)
    if obstacle:
        raise BabyGPTError(f"This run cannot be exported as a GPT-2 model: {obstacle}")


def gpt2_config(config: ModelConfig) -> dict[str, Any]:
    """GPT-2's config.json for this model, with what only Baby GPT needs to rebuild it exactly under ``babygpt``."""
    check_exportable(config)
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": 4 * config.n_embd,
        "activation_function": TO_GPT2_ACTIVATION[config.activation], "layer_norm_epsilon": LAYER_NORM_EPS,
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
        "scale_attn_weights": config.scale_scores, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": config.tie_weights, "initializer_range": 0.02,
        "bos_token_id": None, "eos_token_id": None, "pad_token_id": None, "use_cache": True, "dtype": "float32",
        "babygpt": {"bias": config.bias, "positional": config.positional, "activation": config.activation,
                    "zero_init_residual": config.zero_init_residual, "preset": config.preset},
    }


def _linear_pairs(config: ModelConfig) -> list[tuple[str, str, bool]]:
    """(Baby GPT name, GPT-2 name, transposed) for every weight and bias that both layouts store."""
    pairs = [("token_embedding.weight", "wte.weight", False)]
    if config.positional == "learned":
        pairs.append(("position_embedding.weight", "wpe.weight", False))
    for i in range(config.n_layer):
        b, h = f"blocks.{i}.", f"h.{i}."
        pairs += [(b + "ln1.weight", h + "ln_1.weight", False), (b + "ln2.weight", h + "ln_2.weight", False),
                  (b + "attn.qkv.weight", h + "attn.c_attn.weight", True),
                  (b + "attn.proj.weight", h + "attn.c_proj.weight", True),
                  (b + "ffn.up.weight", h + "mlp.c_fc.weight", True),
                  (b + "ffn.down.weight", h + "mlp.c_proj.weight", True)]
    pairs.append(("ln_f.weight", "ln_f.weight", False))
    return pairs


def _bias_pairs(config: ModelConfig) -> list[tuple[str, str, int]]:
    """(Baby GPT name, GPT-2 name, length) of every bias; GPT-2 has them all, Baby GPT with ``bias=True``."""
    c = config.n_embd
    pairs = []
    for i in range(config.n_layer):
        b, h = f"blocks.{i}.", f"h.{i}."
        pairs += [(b + "ln1.bias", h + "ln_1.bias", c), (b + "ln2.bias", h + "ln_2.bias", c),
                  (b + "attn.qkv.bias", h + "attn.c_attn.bias", 3 * c), (b + "attn.proj.bias", h + "attn.c_proj.bias", c),
                  (b + "ffn.up.bias", h + "mlp.c_fc.bias", 4 * c), (b + "ffn.down.bias", h + "mlp.c_proj.bias", c)]
    return [*pairs, ("ln_f.bias", "ln_f.bias", c)]


def gpt2_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a GPT-2 folder of this model stores (without the ``transformer.`` prefix), by arithmetic."""
    v, c, t = config.vocab_size, config.n_embd, config.block_size
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (v, c), "wpe.weight": (t, c), "ln_f.weight": (c,)}
    for i in range(config.n_layer):
        h = f"h.{i}."
        shapes.update({h + "ln_1.weight": (c,), h + "ln_2.weight": (c,), h + "attn.c_attn.weight": (c, 3 * c),
                       h + "attn.c_proj.weight": (c, c), h + "mlp.c_fc.weight": (c, 4 * c),
                       h + "mlp.c_proj.weight": (4 * c, c)})
    shapes.update({name: (length,) for _, name, length in _bias_pairs(config)})
    if not config.tie_weights:
        shapes["lm_head.weight"] = (v, c)
    return shapes


def to_gpt2(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under GPT-2's names (with the ``transformer.`` prefix), float32, contiguous."""
    config = model.config
    check_exportable(config)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out = {}
    for ours, theirs, transposed in _linear_pairs(config):
        out[PREFIX + theirs] = state[ours].t() if transposed else state[ours]
    if config.positional == "sinusoidal":
        out[PREFIX + "wpe.weight"] = sinusoidal_encoding(config.block_size, config.n_embd)
    for ours, theirs, length in _bias_pairs(config):
        out[PREFIX + theirs] = state[ours] if config.bias else torch.zeros(length)
    if not config.tie_weights:
        out["lm_head.weight"] = state["lm_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}


KIND_WORDS = {(int,): "a whole number", (int, float): "a number", (bool,): "true or false", (str,): "text",
              (dict,): "an object"}


def _setting(cfg: dict[str, Any], key: str, kinds: tuple[type, ...], default: Any) -> Any:
    """A config.json value of the type GPT-2's config gives it (``default`` when absent), or a sentence saying so."""
    value = cfg.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        raise ImportRefused(f"Refused: config.json's {key} must be {KIND_WORDS[kinds]}, got {json_text(value)}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ImportRefused(f"Refused: config.json's {key} must be a finite number, got {value}.")
    return value


def json_text(value: Any) -> str:
    """A value from a file, shown short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def model_config_from_gpt2(cfg: Any) -> ModelConfig:
    """Baby GPT's config for a GPT-2 config.json, or an ImportRefused naming what Baby GPT cannot compute. Every
    value is checked for its type first: the file may come from anyone."""
    if not isinstance(cfg, dict):
        raise ImportRefused("Refused: config.json does not hold a model's settings (a JSON object).")
    model_type = cfg.get("model_type")
    if model_type != "gpt2":
        raise ImportRefused(f"Refused: config.json describes a {json_text(model_type)} model; only GPT-2-shaped "
                           "models (model_type gpt2: GPT-2, distilgpt2, Baby GPT exports) open here.")
    sizes = {}
    for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ImportRefused(f"Refused: config.json's {key} must be a positive integer, got {json_text(value)}.")
        sizes[key] = value
    inner = _setting(cfg, "n_inner", (int,), None)
    if inner not in (None, 4 * sizes["n_embd"]):
        raise ImportRefused(f"Refused: its feed-forward is {inner} wide; Baby GPT's is 4 × n_embd = {4 * sizes['n_embd']}.")
    activation_name = _setting(cfg, "activation_function", (str,), "gelu_new")
    activation = FROM_GPT2_ACTIVATION.get(activation_name)
    if activation is None:
        raise ImportRefused(f"Refused: Baby GPT has no {json_text(activation_name)} activation "
                           f"(it has {', '.join(FROM_GPT2_ACTIVATION)}).")
    eps = _setting(cfg, "layer_norm_epsilon", (int, float), LAYER_NORM_EPS)
    if abs(eps - LAYER_NORM_EPS) > 1e-12:
        raise ImportRefused(f"Refused: its layer norms use epsilon {eps!r}; Baby GPT's use {LAYER_NORM_EPS}.")
    if _setting(cfg, "scale_attn_by_inverse_layer_idx", (bool,), False):
        raise ImportRefused("Refused: it scales attention by the inverse of the layer index, which Baby GPT does not.")
    if _setting(cfg, "add_cross_attention", (bool,), False):
        raise ImportRefused("Refused: it has cross-attention (an encoder-decoder model); Baby GPT is decoder-only.")
    ours = _setting(cfg, "babygpt", (dict,), {})
    dropout = _setting(cfg, "resid_pdrop", (int, float), 0.0)
    try:
        return ModelConfig(
            vocab_size=sizes["vocab_size"], block_size=sizes["n_positions"], n_layer=sizes["n_layer"],
            n_head=sizes["n_head"], n_embd=sizes["n_embd"], dropout=float(dropout) if 0 <= dropout < 1 else 0.0,
            bias=ours.get("bias", True) is not False,
            positional="sinusoidal" if ours.get("positional") == "sinusoidal" else "learned",
            tie_weights=_setting(cfg, "tie_word_embeddings", (bool,), True), activation=activation,
            zero_init_residual=ours.get("zero_init_residual", True) is not False,
            scale_scores=_setting(cfg, "scale_attn_weights", (bool,), True), preset="gpt",
        ).validate()
    except (TypeError, ValueError) as exc:
        raise ImportRefused(f"Refused: config.json does not describe a model Baby GPT can build ({exc}).") from exc


def from_gpt2(tensors: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """A Baby GPT state dict from GPT-2's tensors (names without the prefix, shapes already checked)."""
    state = {}
    for ours, theirs, transposed in _linear_pairs(config):
        state[ours] = tensors[theirs].t() if transposed else tensors[theirs]
    if config.bias:
        state.update({ours: tensors[theirs] for ours, theirs, _ in _bias_pairs(config)})
    state["lm_head.weight"] = tensors["wte.weight"] if config.tie_weights else tensors["lm_head.weight"]
    return {k: v.float().contiguous() for k, v in state.items()}


def settle_imported(config: ModelConfig, tensors: dict[str, torch.Tensor]) -> ModelConfig:
    """What the tensors say beyond config.json: a run exported without biases (all written as zeros) comes back
    without them, and a sinusoidal table comes back as the fixed encoding only when it is exactly that table."""
    if config.bias is False and any(tensors[name].any() for _, name, _ in _bias_pairs(config)):
        config = dataclasses.replace(config, bias=True)
    if config.positional == "sinusoidal" and not torch.equal(
            tensors["wpe.weight"].float(), sinusoidal_encoding(config.block_size, config.n_embd)):
        config = dataclasses.replace(config, positional="learned")
    return config
