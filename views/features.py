"""Features: a sparse autoencoder trained on one layer of a finished run, its figures, a browser of its features,
steering with one, and the SAE exported in SAELens's format — every number read from the library."""

import pandas as pd
import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.features.browser import promoted_and_suppressed, top_passages
from babygpt.features.collect import check_layer
from babygpt.features.fit import DEFAULT_TOKENS
from babygpt.features.over_training import APPEARED_AT
from babygpt.features.sae import HOOKS, MAX_EXPANSION, MIN_EXPANSION, SAEConfig
from babygpt.features.steering import MAX_STRENGTH
from babygpt.plain_text import file_name_part, markdown_literal
from babygpt.store import features as stored_features
from babygpt.store.runs import LoadedRun
from babygpt.text.corpus import describe_token
from ui import choices, identity, state
from ui.features_cache import (
    browser_data,
    checkpoint_line,
    feature_choice,
    feature_history,
    figure_rows,
    history_tokens,
    job_line,
    jobs_on_run,
    kept_steps,
    last_job,
    on_prompt,
    passage_html,
    sae_jobs,
    saelens_zip,
    steered,
)
from ui.widgets import default_prompt, explain, run_picker

HOOK_TITLES = {"resid_post": "the residual stream after the block", "mlp_out": "the block's feed-forward output"}
EXPANSIONS = tuple(2**i for i in range(MAX_EXPANSION.bit_length()) if MIN_EXPANSION <= 2**i <= MAX_EXPANSION)
STOP_REFUSED = "features_stop_refused"  # a refused Stop's sentence, shown after the rerun that follows it
TOKEN_CHOICES = (50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000)
LISTED = 200  # features in the picker, interesting first
FIGURES_RECONCILED = (
    "Variance explained and loss recovered measure against different baselines, so they can differ a lot: variance "
    "explained counts every direction of the layer's spread, against always writing the layer's average "
    "activation, while loss recovered asks only how much of the model's next-token loss comes back, against "
    "zeroing the layer. A low variance explained beside a high loss recovered says the reconstruction misses much "
    "of the layer's spread yet keeps most of what the model's prediction needs compared with removing the layer. "
    "An SAE trained on few tokens has taken few steps (50,000 tokens in batches of 4,096 is 12), so "
    "its variance explained is low; train on more tokens to raise it.")


def active_without_weights() -> None:
    """The active run has no weights yet (queued, or before its first checkpoint): say so before the picker."""
    active = choices.active_run_id()
    if active and state.store().exists(active) and not state.store().has_weights(active):
        st.info(f"Your active run {markdown_literal(state.store().get(active).label)} has no saved weights yet, so "
                "there is no model to read features from; pick a run with weights, or come back after its first "
                "checkpoint.")


def sae_settings(loaded: LoadedRun) -> tuple[SAEConfig, int]:
    """The form: layer, hook, dictionary size, k and tokens read."""
    model = loaded.model_config
    hooks = [h for h in HOOKS if h != "mlp_out" or model.use_ffn]
    left, middle, right = st.columns(3)
    layer = left.selectbox("Layer", range(model.n_layer), index=model.n_layer - 1, key="features_layer",
                           help="The block whose output the SAE reads; blocks are numbered from 0.")
    hook = middle.radio("Read", hooks, format_func=HOOK_TITLES.get, key="features_hook")
    expansion = right.select_slider("Dictionary size", EXPANSIONS, 8, key="features_expansion",
                                    format_func=lambda e: f"{e}× = {e * model.n_embd:,} features",
                                    help="How many directions the SAE may learn, as a multiple of the layer's width "
                                         "(4×–32× is usual).")
    left, right = st.columns(2)
    typed = left.number_input("k (features active per token)", value=32.0, step=1.0, format="%g", key="features_k",
                              help="TopK keeps exactly the k strongest features of each token.")
    k = int(typed) if float(typed).is_integer() else typed  # a fraction is the library's to refuse, in a sentence
    tokens = right.select_slider("Activations to train on", TOKEN_CHOICES, DEFAULT_TOKENS, key="features_tokens",
                                 format_func=lambda n: f"{n:,} tokens",
                                 help="Tokens of the run's own text read at the layer (a shorter text is read "
                                      "whole).")
    return SAEConfig(d_in=model.n_embd, n_features=expansion * model.n_embd, k=k, layer=int(layer), hook=hook), tokens


def train_section(loaded: LoadedRun) -> None:
    st.subheader("Train a sparse autoencoder")
    config, tokens = sae_settings(loaded)
    run_id = loaded.info.id
    try:
        config.validate()
        _, cost = sae_jobs().check(identity.actor(), run_id, config, tokens)
    except BabyGPTError as exc:
        st.warning(f"Not started: {markdown_literal(exc)}")
        refused = True
    else:
        st.caption(f"It would read {tokens:,} tokens at `{config.hook_name}` and cost {cost.describe()} here; it "
                   "runs as a job beside the training runs, with a share of the cores.")
        refused = False
    kept = stored_features.find(state.store(), run_id, config) if not refused else None
    label = "Train again" if kept is not None else "Train the SAE"
    if st.button(label, key="features_start", type="primary", disabled=refused):
        try:
            sae_jobs().submit(identity.actor(), run_id, config, tokens)
        except BabyGPTError as exc:  # something changed since the check (another job of yours started)
            st.error(markdown_literal(exc))
    job_progress(run_id)
    ended = last_job(run_id, config)
    if ended is not None and ended.state == "failed" and ended.message:
        st.error(f"The last training of these settings failed: {markdown_literal(ended.message)}")


def job_progress(run_id: str) -> None:
    """The run's SAE jobs with their progress and Stop, refreshed while any is running."""

    @st.fragment(run_every=2.0 if jobs_on_run(run_id) else None)
    def live() -> None:
        jobs = jobs_on_run(run_id)
        refused = state.page_flags().pop(STOP_REFUSED, None)
        if refused:
            st.error(markdown_literal(refused))
        for status in jobs:
            fraction, text = job_line(status)
            left, right = st.columns([5, 1])
            left.progress(fraction, text=markdown_literal(text))
            if not sae_jobs().may_stop(identity.actor(), status.key):
                continue  # a classmate's SAE: no Stop to press
            if right.button("Stop", key=f"features_stop_{status.name}"):
                try:
                    sae_jobs().stop(identity.actor(), status.key)
                except BabyGPTError as exc:
                    state.page_flags()[STOP_REFUSED] = str(exc)
                st.rerun()
        if not jobs and st.session_state.get("features_had_jobs"):
            st.session_state["features_had_jobs"] = False
            st.rerun()  # a job just ended: draw its SAE below
        st.session_state["features_had_jobs"] = bool(jobs)

    live()


def pick_sae(run_id: str) -> stored_features.StoredSAE | None:
    kept = stored_features.list_saes(state.store(), run_id)
    training = {s.name for s in jobs_on_run(run_id)}
    if not kept:
        if training:
            st.info("The SAE is still training; its figures and features appear here when it finishes.")
        else:
            st.info("This run has no SAE yet: train one above.")
        return None
    names = [s.name for s in kept]
    by_name = {s.name: s for s in kept}
    name = st.selectbox("SAE", names, key="features_sae",
                        format_func=lambda n: f"{n} ({by_name[n].trained_tokens:,} tokens"
                                              f"{', stopped early' if by_name[n].stopped else ''})")
    chosen = by_name[name]
    if name in training:
        st.info("These settings are training again; below is the SAE kept from before until the new one is done.")
    if chosen.stale:
        st.warning("The run's weights changed after this SAE was trained (it was resumed): its features describe "
                   "the older weights. Train it again to read the current ones.")
    return chosen


def figures_section(kept: stored_features.StoredSAE) -> None:
    st.subheader("How good is it")
    rows = figure_rows(kept.figures)
    for column, row in zip(st.columns(len(rows)), rows, strict=True):
        column.metric(row.label, row.value)
        column.caption(row.explanation)
    st.caption(f"Measured on {kept.figures.tokens:,} held-out tokens of the run's text, after training on "
               f"{kept.trained_tokens:,}. {FIGURES_RECONCILED}")


def browser_section(loaded: LoadedRun, kept: stored_features.StoredSAE) -> int:
    """The feature browser; returns the chosen feature (steering uses it)."""
    st.subheader("Its features")
    data = browser_data(loaded.info.id, kept.name)
    listed = data.order[:LISTED]
    table = pd.DataFrame({
        "feature": listed,
        "label": [data.labels[f] for f in listed],
        "fires on": [float(data.table.frequency[f]) * 100 for f in listed],
        "peak": [float(data.table.max_activation[f]) for f in listed],
    })
    st.caption("Interesting first: features that fire sometimes (strongest peak first), then the rare ones, the "
               "always-on ones and the dead. A label is the commonest tokens among a feature's strongest firings.")
    st.dataframe(table, hide_index=True, key="features_table", height=240,
                 column_config={"fires on": st.column_config.NumberColumn(format="%.2f%%"),
                                "peak": st.column_config.NumberColumn(format="%.2f")})
    feature = st.selectbox("Feature", listed, key="features_feature",
                           format_func=lambda f: feature_choice(data, f))
    passages_view(loaded, kept, data, feature)
    effects_view(loaded, data, feature)
    prompt_view(loaded, kept)
    return int(feature)


def passages_view(loaded: LoadedRun, kept: stored_features.StoredSAE, data, feature: int) -> None:
    sae, _ = kept.load()
    passages = top_passages(sae, data.activations, data.table, feature, loaded.tokenizer)
    st.markdown(f"**Where feature {feature} fires most** (darker: stronger; underlined: the strongest token)")
    if not passages:
        st.caption("It fires on none of the held-out text: a dead feature has no passages.")
        return
    peak = float(data.table.max_activation[feature])
    st.html("".join(passage_html(p, peak) for p in passages))


def effects_view(loaded: LoadedRun, data, feature: int) -> None:
    up, down = promoted_and_suppressed(data.effects, feature, loaded.tokenizer)
    st.markdown(f"**What feature {feature} writes to the next token** (its direction through the final norm and "
                "the read-out)")
    left, right = st.columns(2)
    left.dataframe(pd.DataFrame({"promotes": [describe_token(e.text) for e in up], "logit per unit": [e.logit for e in up]}),
                   hide_index=True, key="features_promotes",
                   column_config={"logit per unit": st.column_config.NumberColumn(format="%+.3f")})
    right.dataframe(pd.DataFrame({"suppresses": [describe_token(e.text) for e in down], "logit per unit": [e.logit for e in down]}),
                    hide_index=True, key="features_suppresses",
                    column_config={"logit per unit": st.column_config.NumberColumn(format="%+.3f")})


def prompt_view(loaded: LoadedRun, kept: stored_features.StoredSAE) -> None:
    st.markdown("**Which features fire where** on a prompt of your own")
    prompt = st.text_area("Prompt", default_prompt(loaded, 40), key="features_prompt", height=70)
    try:
        found = on_prompt(loaded.info.id, kept.name, prompt)
    except BabyGPTError as exc:
        st.error(markdown_literal(exc))
        return
    data = browser_data(loaded.info.id, kept.name)
    rows = [(token, ", ".join(f"#{f} {data.labels[f]} ({s:.2f})" for f, s in found.at(i, 3)) or "—")
            for i, token in enumerate(found.tokens)]
    st.dataframe(pd.DataFrame(rows, columns=["token", "strongest features here (strength)"]), hide_index=True,
                 key="features_on_prompt", height=240)
    strongest = ", ".join(f"#{f} {data.labels[f]} ({s:.2f})" for f, s in found.strongest(5))
    st.caption(f"Strongest anywhere on the prompt: {markdown_literal(strongest or 'none fires')}.")


def steering_section(loaded: LoadedRun, kept: stored_features.StoredSAE, feature: int) -> None:
    st.subheader("Steering")
    st.caption("The feature's direction added at its layer, at every position, while the model writes; beside it "
               "the text written without it from the same seed. A strength around the feature's peak is a natural "
               "start; large ones push the model off its text.")
    data = browser_data(loaded.info.id, kept.name)
    peak = float(data.table.max_activation[feature])
    left, middle, right = st.columns(3)
    strength = left.number_input(f"Strength of feature #{feature}", -MAX_STRENGTH, MAX_STRENGTH,
                                 value=round(max(peak, 1.0) * 2, 1), step=1.0, key=f"features_strength_{feature}")
    seed = int(middle.number_input("Seed", 0, 2**31 - 1, 0, key="features_seed"))
    new_tokens = int(right.number_input("Tokens to write", 1, 500, 120, key="features_new_tokens"))
    prompt = st.text_area("Start from", default_prompt(loaded, 24), key="features_steer_prompt", height=70)
    if not st.toggle("Write with and without the feature", key="features_steer"):
        return
    try:
        texts = steered(loaded.info.id, kept.name, feature, float(strength), prompt, seed, new_tokens)
    except BabyGPTError as exc:
        st.error(markdown_literal(exc))
        return
    for notice in texts.notices:
        st.caption(markdown_literal(notice))
    left, right = st.columns(2)
    left.markdown(f"**With feature #{feature}** at {strength:+g}")
    left.code(prompt + texts.with_feature, language=None, wrap_lines=True)
    right.markdown("**Without it** (same seed)")
    right.code(prompt + texts.without_feature, language=None, wrap_lines=True)


def over_training_section(loaded: LoadedRun, kept: stored_features.StoredSAE, feature: int) -> None:
    st.subheader("Features over training")
    steps = kept_steps(loaded.info.id)
    if not steps:
        st.caption("Whether a feature found at the end existed earlier needs the run's earlier weights, and this run "
                   "kept only its latest checkpoint. Train a run with **kept checkpoints** (the training page's "
                   "advanced settings, or `--keep-checkpoints` on the command line) to see when its features appeared.")
        return
    st.caption(f"This run kept its weights at steps {', '.join(f'{s:,}' for s in steps)}. Matching trains an SAE of "
               f"these settings on each ({history_tokens(kept):,} activations apiece) and finds, for every final "
               "feature, the closest direction among each one's features (cosine).")
    asked = (loaded.info.id, kept.name)  # once matched, the table stays while the student picks other features
    if st.button(f"Match the features across {len(steps)} kept checkpoints", key="over_training"):
        st.session_state["over_training_for"] = asked
    if st.session_state.get("over_training_for") != asked:
        return
    progress = st.empty()

    def heard(step: int, i: int, n: int) -> None:
        progress.progress((i - 1) / n, text=checkpoint_line(step, i, n))

    history = feature_history(loaded.info.id, kept.name, heard)
    progress.empty()
    if not history.live[feature]:
        st.markdown(f"**Feature #{feature}** is dead (it fires on none of the held-out text): it learned nothing, "
                    "so it is left out of the matching.")
    else:
        appeared = history.appeared[feature]
        st.markdown(f"**Feature #{feature}** " + (f"appeared by step {appeared:,}" if appeared is not None else
                    "matches nothing closely enough at any kept step to count as present"))
    st.dataframe([{"step": s, "best cosine": round(c, 3), "matching feature": m} for s, c, m in history.of(feature)],
                 hide_index=True)
    st.caption(f"{history.n_appeared:,} of the {history.n_live:,} live features match a direction with cosine ≥ "
               f"{history.threshold:.2f} at the last kept step (dead features left out). Chance level: against a "
               f"freshly initialised SAE of the same shape, which learned nothing, the best match averages "
               f"{history.chance.mean:.2f} and 99% of features stay under {history.chance.top:.2f}; a feature "
               "counts as present only above the threshold, halfway from there to 1 (at least "
               f"{APPEARED_AT}). Each kept step's SAE starts from a seed of its own, so a match is learned, not a "
               "shared start.")


def export_section(loaded: LoadedRun, kept: stored_features.StoredSAE) -> None:
    st.subheader("Take it anywhere")
    st.caption("SAELens's folder format: `cfg.json` and `sae_weights.safetensors`, which SAELens reads with "
               "`SAE.load_from_disk(folder)` (docs/features.md lists every field).")
    st.download_button("Download for SAELens (.zip)", saelens_zip(loaded.info.id, kept.name),
                       file_name=f"{file_name_part(loaded.info.label)}-{kept.name}-saelens.zip",
                       mime="application/zip", key="features_export")


st.title("Features")
explain("What a sparse autoencoder finds",
        "A layer's activation mixes many things at once. A sparse autoencoder (SAE) rewrites it as a sum of a few "
        "directions out of a larger dictionary; each direction, a *feature*, tends to fire on one recognisable "
        "thing (a letter after a space, the inside of a word, a line break). Train one on a layer of your run, see "
        "how well it reconstructs the layer, browse what each feature fires on and writes, and add one to the "
        "model while it writes.",
        r"z = \mathrm{TopK}_k\big(\mathrm{ReLU}((x - b_{dec}) W_{enc} + b_{enc})\big), \quad \hat x = z W_{dec} + b_{dec}")
active_without_weights()
loaded = run_picker("features_run")
if loaded is not None:
    try:
        check_layer(loaded.model, 0, "resid_post")  # the bigram has no layers: one sentence, nothing else
    except BabyGPTError as exc:
        st.info(markdown_literal(exc))
        loaded = None
if loaded is not None:
    train_section(loaded)
    kept = pick_sae(loaded.info.id)
    if kept is not None:
        try:
            figures_section(kept)
            feature = browser_section(loaded, kept)
            steering_section(loaded, kept, feature)
            over_training_section(loaded, kept, feature)
            export_section(loaded, kept)
        except BabyGPTError as exc:  # a damaged SAE file: one sentence
            st.error(markdown_literal(exc))
