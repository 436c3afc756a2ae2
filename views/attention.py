"""Attention: what each head of a trained model looks at, for a prompt you type."""

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.viz import attention_color_range, attention_grid, attention_heatmap
from babygpt.interpret.attention import KINDS, attention_for_prompt, visible_cells
from babygpt.plain_text import markdown_literal
from ui import run_cache, state
from ui.widgets import default_prompt, explain, run_picker


def head_kinds(run_id: str, layer: int, n_head: int) -> list[str]:
    """Each head's type in a word or two, from the run's head scores (empty where it fits no type, or where the
    run's text is not here to measure on)."""
    try:
        scores, _ = run_cache.head_types(run_id)
    except BabyGPTError:
        return [""] * n_head
    return [scores.kind(layer, h) for h in range(n_head)]


st.title("Attention")
explain(
    "Queries, keys and the causal mask",
    "Every token emits a **query** (what am I looking for?) and a **key** (what do I contain?). The dot product "
    "q·k says how well they match. It is divided by √d (the head size) to keep its variance near 1, the future "
    "is masked out (a token may only look back), and a softmax turns each row into weights that sum to 1. "
    "Each row below is one position deciding how much to take from each earlier position.",
    r"\mathrm{Attention}(Q,K,V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right)V",
)

loaded = run_picker("attention_run")
if loaded is not None:
    # controls on the left, the map beside them: on a projector the first screen shows the picture, not a form
    controls, picture = st.columns([1, 2], gap="medium")
    flags = state.page_flags()  # the prompt outlives a page switch (Streamlit forgets a widget not drawn)
    initial = flags.get("attention_prompt") or default_prompt(loaded)
    prompt = controls.text_area("Prompt", initial, key="attention_prompt", height=80,
                                help=f"Up to {loaded.model_config.block_size} tokens (the model's context).")
    flags["attention_prompt"] = prompt
    try:
        view = attention_for_prompt(loaded.model, loaded.tokenizer, prompt)
    except BabyGPTError as exc:
        st.error(markdown_literal(exc))
        st.stop()
    for notice in view.notices:  # they quote the prompt
        controls.warning(markdown_literal(notice))
    causal = loaded.model_config.causal  # a run trained without the mask is drawn as it attended
    if not causal:
        controls.warning("**Trained without the causal mask**: every position also sees the tokens after it, and "
                         "the maps show that attention to the future (the upper triangle).")
    kind = controls.radio("Show", list(KINDS), format_func=KINDS.get, index=2, key="attention_kind",
                          help="Raw and scaled scores are before the softmax; weights are what the head actually uses.")
    c2, c3 = controls.columns(2)
    layer = c2.selectbox("Layer", range(view.n_layer), key="attention_layer")
    kinds = head_kinds(loaded.info.id, layer, view.n_head)
    head = c3.selectbox("Head", range(view.n_head), key="attention_head",
                        format_func=lambda h: f"{h} · {kinds[h]}" if kinds[h] else str(h),
                        help="Beside each head, the type its scores show (the Inside page has the numbers).")
    fit = controls.toggle("Fit the colours", key="attention_fit", disabled=kind != "weights",
                          help="Weights run from 0 to 1; over a long prompt they spread thin and look white. This "
                               "scales the colours from 0 to the largest weight shown.")
    fit = fit and kind == "weights"
    matrix = view.layers[layer][kind][head]
    layer_range = attention_color_range(view.layers[layer][kind], kind, causal, fit)  # the grid uses the same
    scale_words = (f"Colours: 0 (white) to {layer_range[1]:.2f}, the largest weight in this layer." if fit else
                   "Colours: 0 (white) to 1." if kind == "weights" else
                   f"Colours: ±{layer_range[1]:.2f}, centred on 0 (white).")
    picture.plotly_chart(attention_heatmap(matrix, view.tokens, f"Layer {layer}, head {head}: {KINDS[kind]}", kind,
                                           layer_range, causal=causal), key="attention_heatmap")
    caption = scale_words
    if kind != "weights":
        shown = matrix[visible_cells(matrix.shape[-1], causal)]
        caption += f" Score range in this head: {shown.min():.2f} … {shown.max():.2f}."
        if causal:
            caption += " Empty cells are the masked future (−∞ before the softmax)."
    picture.caption(caption)
    if view.n_head > 1:
        st.plotly_chart(attention_grid(view.layers[layer][kind], view.tokens,
                                       f"All {view.n_head} heads of layer {layer}: {KINDS[kind]}", kind, layer_range,
                                       causal=causal), key="attention_grid")

    # --- how the heads formed: the probe prompt's attention at every evaluation ---------------------------
    run_id = loaded.info.id

    @st.fragment(run_every=2.0 if state.store().get(run_id).status.training else None)
    def heads_forming() -> None:
        steps = state.store().attention_steps(run_id)
        if not steps:
            return
        st.subheader("How the heads formed")
        st.caption("At every evaluation, training records the attention weights of one fixed prompt (the start of "
                   "the validation text). Slide through the steps to watch the heads go from a blur to their jobs.")
        live = state.store().get(run_id).status.training
        follow = live and st.toggle("Follow training", value=True, key="attention_follow",
                                    help="Show the newest evaluation as it arrives.")
        if len(steps) > 1 and not follow:  # keyed per run: another run's step never carries over
            step = st.select_slider("Training step", steps, steps[-1], key=f"attention_step_{run_id}")
        else:
            step = steps[-1]
        tokens, weights = state.store().attention_at(run_id, step)
        layer_index = min(st.session_state.get("attention_layer", 0) or 0, weights.shape[0] - 1)
        st.plotly_chart(attention_grid(weights[layer_index].astype("float32"), tokens,
                                       f"Layer {layer_index}, every head, at step {step}", "weights", causal=causal),
                        key="attention_forming")

    heads_forming()
