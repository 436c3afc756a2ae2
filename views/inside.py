"""Inside: what each head of a trained run does, how the heads formed, what each layer predicts, and what breaks
without a part — every number measured on the run's own weights."""

import pandas as pd
import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.inside_figures import (
    KIND_TITLES,
    display_token,
    formation_figure,
    head_grid_figure,
    lens_figure,
)
from babygpt.figures.viz import attention_heatmap, runs_overlay_figure
from babygpt.interpret.attention import attention_for_prompt
from babygpt.interpret.inside import HEAD_TYPE_BY_KEY, HEAD_TYPES, KINDS, TYPE_THRESHOLD, TYPES, heads_of_type
from babygpt.interpret.looking import (
    SCORED,
    comparison_refusal,
    formation_from_history,
    formation_from_snapshots,
    formation_reading,
    formation_sentence,
    lens_view,
    onset,
)
from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE
from babygpt.lessons.comparing import FORCED_SENTENCE, loss_scale
from babygpt.plain_text import markdown_literal
from babygpt.store.runs import LoadedRun
from babygpt.training.sample import prepare_prompt
from ui import run_cache, state
from ui.widgets import default_prompt, explain, run_label, run_picker


def token_word(loaded: LoadedRun) -> str:
    return "character" if loaded.tokenizer.kind == "char" else "token"


def val_curve(run_id: str) -> list[tuple[int, float]]:
    return [(m.step, m.loss) for m in state.store().metrics(run_id) if m.split == "val" and m.loss is not None]


def head_types_section(loaded: LoadedRun) -> None:
    st.subheader("What each head does")
    st.caption("Each head is scored on the known head types: " + "; ".join(HEAD_TYPES.values()) + ". A head is "
               f"called by a type when its score there is at least {TYPE_THRESHOLD}.")
    scores, source = run_cache.head_types(loaded.info.id)
    kind = st.selectbox("Colour by", SCORED, format_func=KIND_TITLES.get, key="inside_kind")
    st.plotly_chart(head_grid_figure(getattr(scores, kind), f"{KIND_TITLES[kind].capitalize()} score of every head"),
                    key="inside_head_grid")
    windows, length = scores.text_shape
    st.caption(f"Measured on the run's weights now: the positional types on {windows} window"
               f"{'s' if windows != 1 else ''} of {length} {token_word(loaded)}s of {markdown_literal(source)}; induction on random "
               "tokens repeated twice (the same ones training scores at every evaluation, below).")
    with st.expander("Every head in one line", expanded=True):
        for layer in range(loaded.model_config.n_layer):
            for head in range(loaded.model_config.n_head):
                st.markdown(f"- {scores.reading(layer, head, token_word(loaded))}")


def formation_section(loaded: LoadedRun) -> None:
    st.subheader("How they formed")
    run_id = loaded.info.id
    formation = formation_from_history(state.store().head_score_history(run_id))
    if formation is None:
        snapshots = [(step, state.store().attention_at(run_id, step)[1]) for step in state.store().attention_steps(run_id)]
        formation = formation_from_snapshots(snapshots)
    val = val_curve(run_id)
    st.info(formation_sentence(formation, val, token_word(loaded)))
    if formation is None or len(formation.steps) < 2:
        return
    kinds = [k for k in SCORED if k in formation.scores]
    kind = st.selectbox("Score over training", kinds, index=kinds.index("induction") if "induction" in kinds else 0,
                        format_func=KIND_TITLES.get, key="inside_formation_kind")
    st.plotly_chart(formation_figure(formation, kind, val, onset(formation, kind),
                                     f"{KIND_TITLES[kind].capitalize()} score of every head over training"),
                    key="inside_formation")
    if kind != "induction":  # the sentence above says as much for induction
        st.caption(formation_reading(formation, kind, KIND_TITLES[kind]))
    st.caption(f"Recorded at every evaluation while it trained: the positional types on {probe_text(loaded)}, a "
               "shorter text than the list above, so a head's last point here can differ from its score there; "
               "induction on the same repeated random tokens as above. Colour: the head; dash: the layer.")


def probe_text(loaded: LoadedRun) -> str:
    """The text the history's positional types were recorded on, by the length training stored with it."""
    steps = state.store().attention_steps(loaded.info.id)
    if not steps:
        return "the probe prompt (the start of the validation text)"
    tokens, _ = state.store().attention_at(loaded.info.id, steps[-1])
    return f"the probe prompt (the first {len(tokens)} {token_word(loaded)}s of the validation text)"


def lens_section(loaded: LoadedRun) -> None:
    st.subheader("What each layer predicts (logit lens)")
    st.caption("If the model stopped after a layer, what would it predict? The stream at that point goes through "
               "the model's own read-out. Green shows how much probability the true next token gets; the text is "
               "the top guess. A prediction *settles* at the first layer from which the top guess stays the final one.")
    prompt = st.text_area("Prompt", default_prompt(loaded, 24), key="inside_lens_prompt", height=70)
    try:
        ids = prepare_prompt(loaded.tokenizer, prompt, loaded.model_config.block_size).ids
        ids = ids[-min(len(ids), 40, loaded.model_config.block_size):]
        lens = lens_view(loaded.model, loaded.tokenizer, ids)
    except BabyGPTError as exc:
        st.error(markdown_literal(exc))
        return
    st.plotly_chart(lens_figure(lens, "Logit lens: the top guess after each layer"), key="inside_lens")
    stops = ["the embeddings"] + [f"layer {i}" for i in range(len(lens.top) - 1)]
    counts = ", ".join(f"{sum(s == i for s in lens.settles)} after {stop}" for i, stop in enumerate(stops))
    st.caption(f"{lens.applies} Framed in red: where each guess settles. On this prompt: {counts}.")


def ablation_section(loaded: LoadedRun) -> None:
    st.subheader("What breaks without a part (ablation)")
    st.caption("Knock one part out and measure the validation loss again. *Zero*: the part's output is replaced by "
               "nothing. *Mean*: by its average output on this text, which keeps what it always adds and removes only "
               "what it says about this context; the difference between the two is the part's constant part.")
    if not st.toggle("Measure (each head, layer and feed-forward knocked out in turn)", key="inside_ablate"):
        return
    view, tokens, source = run_cache.ablations(loaded.info.id)
    mode = st.radio("Knock out by", list(KINDS), horizontal=True, key="inside_ablation_mode")
    knocked = view.by(mode)  # everything below, grid, sentence and tables, is by this kind
    st.plotly_chart(head_grid_figure(knocked.heads, f"Change in validation loss without each head ({mode})",
                                     diverging=True, unit=" nats"), key="inside_ablation_grid")
    layer, head = knocked.worst
    st.caption(f"Measured on {tokens} tokens of {markdown_literal(source)}; intact loss {view.intact:.3f} nats per token. Knocked out "
               f"by {mode}, the model needs layer {layer} head {head} most: {knocked.heads[layer, head]:+.3f} nats "
               "without it.")
    parts = {"layer": range(len(knocked.attention)), f"without its attention ({mode})": knocked.attention}
    if loaded.model_config.use_ffn:
        parts[f"without its feed-forward ({mode})"] = knocked.feed_forward
    table = pd.DataFrame(parts)
    st.dataframe(table, hide_index=True, key="inside_parts",
                 column_config={c: st.column_config.NumberColumn(format="%+.3f") for c in table.columns[1:]})
    heads_together_section(loaded, mode)
    st.markdown(f"**Where layer {layer} head {head} mattered most** (knocked out by {mode})")
    hurt = [(display_token(before), display_token(after), change) for before, after, change in knocked.hurt]
    st.dataframe(pd.DataFrame(hurt, columns=["after", "the next token", "loss change"]), hide_index=True,
                 key="inside_hurt", column_config={"loss change": st.column_config.NumberColumn(format="%+.3f")})
    heads = [(i, h) for i in range(loaded.model_config.n_layer) for h in range(loaded.model_config.n_head)]
    layer, head = st.selectbox("Write without", heads, index=heads.index(knocked.worst), key=f"inside_without_{mode}",
                               format_func=lambda lh: f"layer {lh[0]} head {lh[1]}",
                               help="Text from the same seed, with and without this head.")
    samples = run_cache.ablated_samples(loaded.info.id, layer, head, mode, default_prompt(loaded, 16))
    left, right = st.columns(2)
    left.markdown("**Intact**")
    left.code(samples.intact, language=None, wrap_lines=True)
    right.markdown(f"**Without layer {layer} head {head}** (same seed, by {mode})")
    right.code(samples.ablated, language=None, wrap_lines=True)


def heads_together_section(loaded: LoadedRun, mode: str) -> None:
    """Every head of a type knocked out at once: heads that back each other up cost little one at a time."""
    scores, _ = run_cache.head_types(loaded.info.id)
    typed = {kind: heads_of_type(scores, kind) for kind in TYPES}
    kinds = [kind for kind, heads in typed.items() if heads]
    if not kinds:
        st.caption(f"No head reaches {TYPE_THRESHOLD} on any type, so there is no set of heads of one type to knock "
                   "out together.")
        return
    kind = st.selectbox("Knock out together every head of type", kinds, key="inside_together_kind",
                        format_func=lambda k: f"{HEAD_TYPE_BY_KEY[k].name} ({len(typed[k])} head(s))",
                        help="Heads that back each other up cost little one at a time and much together.")
    st.markdown(markdown_literal(run_cache.heads_together(loaded.info.id, kind, mode).sentence()))


def compare_section(loaded: LoadedRun) -> None:
    st.subheader("Two runs side by side")
    others = [r for r in run_cache.runs_with_weights() if r["id"] != loaded.info.id]
    if not others:
        st.caption("Train or import a second run (yours or a classmate's) to compare it with this one.")
        return
    labels = {r["id"]: run_label(r) for r in others}
    other_id = st.selectbox("Compare with", [None, *labels], format_func=lambda i: "—" if i is None else labels[i],
                            key="inside_compare")
    if other_id is None:
        return
    other = run_cache.load_run(other_id)
    kind = st.session_state.get("inside_kind", "previous")
    runs = ((loaded, "this run"), (other, "the other run"))
    columns = st.columns(2)
    for column, (run, name) in zip(columns, runs, strict=True):
        with column:
            try:
                scores, _ = run_cache.head_types(run.info.id)
                st.plotly_chart(head_grid_figure(getattr(scores, kind), f"{KIND_TITLES[kind].capitalize()}: {name}"),
                                key=f"inside_compare_grid_{name}")
            except BabyGPTError as exc:
                st.info(f"{name.capitalize()}: {markdown_literal(exc)}")
    scale = loss_scale([run.info.config for run, _ in runs])  # bits per byte where the two cut text differently
    curves = {run.info.label: curve for run, _ in runs
              if (curve := scale.curve(run.info.config, val_curve(run.info.id))) is not None}
    if curves:
        st.plotly_chart(runs_overlay_figure(curves, title="Validation loss of the two runs", y_title=scale.axis),
                        key="inside_compare_curves")
        if scale.forced:
            st.caption(f"{FORCED_SENTENCE} {BITS_PER_BYTE_SENTENCE}")
    prompt = st.session_state.get("inside_lens_prompt") or default_prompt(loaded, 24)
    refusal = comparison_refusal(loaded.model, other.model, loaded.tokenizer, other.tokenizer, prompt)
    if refusal:
        st.info(f"The prompt's views are not compared: {markdown_literal(refusal)}")
        return
    layer = st.number_input("Layer", 0, min(loaded.model_config.n_layer, other.model_config.n_layer) - 1, 0,
                            key="inside_compare_layer")
    head = st.number_input("Head", 0, min(loaded.model_config.n_head, other.model_config.n_head) - 1, 0,
                           key="inside_compare_head")
    columns = st.columns(2)
    for column, (run, name) in zip(columns, runs, strict=True):
        ids = prepare_prompt(run.tokenizer, prompt, run.model_config.block_size).ids[-40:]
        view = attention_for_prompt(run.model, run.tokenizer, run.tokenizer.decode(ids))
        with column:
            st.plotly_chart(attention_heatmap(view.layers[int(layer)]["weights"][int(head)], view.tokens,
                                              f"Layer {int(layer)}, head {int(head)}: {name}", "weights",
                                              causal=run.model_config.causal), key=f"inside_compare_map_{name}")
            st.plotly_chart(lens_figure(lens_view(run.model, run.tokenizer, ids), f"Logit lens: {name}"),
                            key=f"inside_compare_lens_{name}")


st.title("Inside the model")
explain("Reading a trained model",
        "Attention maps show where a head looks for one prompt. The views below say what each head does in general "
        "(by the known head types), when it learned it, what the model would predict half-way through, and which "
        "parts it cannot do without. Every number comes from the run's own weights.")
loaded = run_picker("inside_run")
if loaded is not None:
    if not loaded.model_config.use_attention:
        st.info("The bigram model has no layers or heads to look inside: each token is a row of a table. Pick a "
                "run of another rung.")
    else:
        for section in (head_types_section, formation_section, lens_section, ablation_section, compare_section):
            try:  # a section that cannot measure says why; the others still draw
                section(loaded)
            except BabyGPTError as exc:
                st.error(markdown_literal(exc))
