"""The same model in Llama's layout: which Baby GPT models ``transformers``' ``LlamaForCausalLM`` computes exactly, its
config.json and its weights. No file and no ``transformers`` here: the store writes the folder
(``babygpt.store.huggingface``) and a test holds the mapping to ``transformers`` itself.

Llama is a ``gpt`` rung with three of the modern switches: rotary positions, RMSNorm and a SwiGLU feed-forward,
with untied or tied embeddings, biases or none. What differs is layout only:

* Baby GPT computes q, k and v in one matmul (``qkv``, rows q then k then v); Llama has ``q_proj``, ``k_proj`` and
  ``v_proj``: the three row blocks of the same weight. Both turn the pairs (i, i + hs/2) of a head, Llama's
  ``rotate_half``, so no row is reordered;
* SwiGLU's gate and up share one matrix here (``ffn.up``, rows gate then up); Llama has ``gate_proj`` and
  ``up_proj``.

QK-norm, value embeddings and a logit soft-cap are not in Llama's architecture, so a model with any of them is
refused with the reason (``llama_obstacle``), as is every model GPT-2's layout (``gpt2_layout``) takes instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import GPT, NORM_EPS, ROPE_BASE
from babygpt.model.gpt2_layout import gpt2_config, gpt2_obstacle, to_gpt2
from babygpt.model.sizing import ffn_width

PREFIX = "model."  # LlamaForCausalLM's name for the body; the head is "lm_head.weight"


def llama_obstacle(config: ModelConfig) -> str | None:
    """Why Llama's architecture cannot compute this model exactly, in one sentence; None when it can."""
    if not config.use_attention:
        return "The bigram rung is a table of next-token scores with no attention; Llama is a Transformer."
    reasons = (
        (not (config.use_projection and config.use_ffn and config.use_residual and config.use_layernorm),
         f"The {config.preset} rung lacks part of a full block (projection, feed-forward, residuals or norms); "
         "every Llama block has them all."),
        (not config.causal, "This run was trained without the causal mask; Llama always hides the future."),
        (not config.scale_scores, "This run was trained without 1/√d scaling; Llama always scales its scores."),
        (config.positional != "rope", f"This run's positions are {config.positional}; Llama's are rotary (RoPE)."),
        (config.norm != "rmsnorm", f"This run normalises with {config.norm}; Llama's norms are RMSNorms."),
        (config.activation != "swiglu", f"This run's feed-forward uses {config.activation}; Llama's is SwiGLU."),
        (config.qk_norm, "This run normalises queries and keys (QK-norm); Llama does not."),
        (config.value_embeddings, "This run adds value embeddings to its attention; Llama has none."),
        (config.logit_softcap > 0, "This run soft-caps its logits; Llama reads them out uncapped."),
    )
    return next((reason for blocked, reason in reasons if blocked), None)


def check_llama(config: ModelConfig) -> None:
    obstacle = llama_obstacle(config)
    if obstacle:
        raise BabyGPTError(f"This run cannot be exported as a Llama model: {obstacle}")


def llama_config(config: ModelConfig) -> dict[str, Any]:
    """Llama's config.json for this model, with what only Baby GPT needs to rebuild it under ``babygpt``."""
    check_llama(config)
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": config.vocab_size, "hidden_size": config.n_embd, "intermediate_size": ffn_width(config),
        "num_hidden_layers": config.n_layer, "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_head, "head_dim": config.head_size, "hidden_act": "silu",
        "max_position_embeddings": config.block_size, "rms_norm_eps": NORM_EPS,
        "rope_theta": ROPE_BASE, "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_BASE},
        "attention_bias": config.bias, "mlp_bias": config.bias, "attention_dropout": 0.0,
        "tie_word_embeddings": config.tie_weights, "initializer_range": 0.02,
        "bos_token_id": None, "eos_token_id": None, "pad_token_id": None, "use_cache": True, "dtype": "float32",
        "babygpt": {"bias": config.bias, "positional": config.positional, "activation": config.activation,
                    "norm": config.norm, "zero_init_residual": config.zero_init_residual, "preset": config.preset},
    }


def to_llama(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under Llama's names, float32, contiguous."""
    config = model.config
    check_llama(config)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    c, h = config.n_embd, ffn_width(config)
    out = {PREFIX + "embed_tokens.weight": state["token_embedding.weight"], PREFIX + "norm.weight": state["ln_f.weight"]}
    kinds = ("weight", "bias") if config.bias else ("weight",)
    for i in range(config.n_layer):
        b, layer = f"blocks.{i}.", f"{PREFIX}layers.{i}."
        out[layer + "input_layernorm.weight"] = state[b + "ln1.weight"]
        out[layer + "post_attention_layernorm.weight"] = state[b + "ln2.weight"]
        for kind in kinds:
            qkv = state[f"{b}attn.qkv.{kind}"]  # rows: q, k, v
            for part, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[f"{layer}self_attn.{name}.{kind}"] = qkv[part * c:(part + 1) * c]
            out[f"{layer}self_attn.o_proj.{kind}"] = state[f"{b}attn.proj.{kind}"]
            up = state[f"{b}ffn.up.{kind}"]  # rows: gate, up
            out[f"{layer}mlp.gate_proj.{kind}"], out[f"{layer}mlp.up_proj.{kind}"] = up[:h], up[h:]
            out[f"{layer}mlp.down_proj.{kind}"] = state[f"{b}ffn.down.{kind}"]
    if not config.tie_weights:
        out["lm_head.weight"] = state["lm_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}


@dataclass(frozen=True)
class Architecture:
    """A ``transformers`` architecture an export can take: its name, its Hub tag, its config.json and its weights."""

    name: str
    tag: str
    config: Callable[[ModelConfig], dict[str, Any]]
    tensors: Callable[[GPT], dict[str, torch.Tensor]]


GPT2 = Architecture("GPT-2", "gpt2", gpt2_config, to_gpt2)
LLAMA = Architecture("Llama", "llama", llama_config, to_llama)


def export_architecture(config: ModelConfig) -> Architecture:
    """The architecture that computes this model exactly: GPT-2 for the GPT-2-shaped rungs, Llama for rotary
    positions with RMSNorm and SwiGLU; otherwise a refusal that says what each of them lacks."""
    gpt2_reason = gpt2_obstacle(config)
    if gpt2_reason is None:
        return GPT2
    llama_reason = llama_obstacle(config)
    if llama_reason is None:
        return LLAMA
    if not config.use_attention:
        raise BabyGPTError(f"This run cannot be exported for transformers: {gpt2_reason}")
    raise BabyGPTError("This run cannot be exported for transformers, as GPT-2 or as Llama. "
                       f"As GPT-2: {gpt2_reason} As Llama: {llama_reason}")
