"""Named hook points: the places in one pass where a reader may look at, or replace, what flows on.

The names are TransformerLens's, so a reading here can be checked against a TransformerLens reading of the same
weights by name. Per block ``l`` (prefix ``blocks.{l}.``), with B batch, T tokens, C width, nh heads, hs head size:

==========================  ===============  ============================================================
point                        shape            what flows there
==========================  ===============  ============================================================
``hook_resid_pre``           (B, T, C)        the residual stream entering the block
``attn.hook_q/k/v``          (B, T, nh, hs)   each head's queries, keys, values
``attn.hook_rot_q/k``        (B, T, nh, hs)   queries and keys turned by their positions (RoPE models only)
``attn.hook_attn_scores``    (B, nh, T, T)    q·kᵀ, scaled where the model scales, future masked to -inf
``attn.hook_pattern``        (B, nh, T, T)    the softmax weights
``attn.hook_z``              (B, T, nh, hs)   each head's weighted sum of values, before the projection
``hook_attn_out``            (B, T, C)        attention's update to the stream
``hook_resid_mid``           (B, T, C)        the stream after attention, before the feed-forward
``mlp.hook_post``            (B, T, 4C)       the feed-forward's hidden activations, after the non-linearity (SwiGLU: 8⌈C/3⌉)
``hook_mlp_out``             (B, T, C)        the feed-forward's update to the stream
``hook_resid_post``          (B, T, C)        the stream leaving the block
==========================  ===============  ============================================================

and, before the blocks, ``hook_embed`` and ``hook_pos_embed`` (B, T, C). A rung without a feed-forward has no
``mlp`` points. ``Hooks`` is handed to ``GPT.forward``; a pass without it runs the fused kernels and touches no
hook, so hooks can never outlive the pass they were given to (``babygpt.interpret.hooked`` builds caching,
knocking parts out and patching on this).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from babygpt.errors import BabyGPTError

HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]  # (what flows, its name) -> a replacement or None

BLOCK_POINTS = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
                "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "mlp.hook_post",
                "hook_mlp_out", "hook_resid_post")
MODEL_POINTS = ("hook_embed", "hook_pos_embed")


def hook_name(layer: int, point: str) -> str:
    """``blocks.{layer}.{point}``, the full name of a block's hook point."""
    return f"blocks.{layer}.{point}"


ROTARY_POINTS = ("attn.hook_rot_q", "attn.hook_rot_k")  # after attn.hook_v, on models with rotary positions


def hook_names(n_layer: int, has_ffn: bool = True, rotary: bool = False) -> list[str]:
    """Every hook point of a model with ``n_layer`` blocks, in the order a pass reaches them."""
    points = [p for p in BLOCK_POINTS if has_ffn or not p.startswith(("mlp.", "hook_mlp"))]
    if rotary:
        at = points.index("attn.hook_v") + 1
        points[at:at] = ROTARY_POINTS
    return [*MODEL_POINTS, *(hook_name(layer, p) for layer in range(n_layer) for p in points)]


class Hooks:
    """The functions to run at named points of one pass, in the order given; a function returning a tensor
    replaces what flows on, one returning None only looks."""

    def __init__(self, fns: Mapping[str, Sequence[HookFn]], prefix: str = ""):
        self.fns, self.prefix = fns, prefix

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, HookFn]], known: Iterable[str]) -> Hooks:
        """Hooks from (name, function) pairs, refusing a name the model does not have (a typo would otherwise
        silently hook nothing)."""
        known = set(known)
        fns: dict[str, list[HookFn]] = {}
        for name, fn in pairs:
            if name not in known:
                raise BabyGPTError(f"This model has no hook point {name!r}.")
            fns.setdefault(name, []).append(fn)
        return cls(fns)

    def at(self, layer: int) -> Hooks:
        """The hooks of block ``layer``, called there by their short names (``hook_resid_pre``…)."""
        return Hooks(self.fns, f"{self.prefix}blocks.{layer}.")

    def __call__(self, point: str, x: torch.Tensor) -> torch.Tensor:
        name = self.prefix + point
        for fn in self.fns.get(name, ()):
            out = fn(x, name)
            x = x if out is None else out
        return x
