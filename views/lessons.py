"""Lessons: each step of building a GPT, as something to project and play with.

One function per tab; the page itself is the few lines at the end."""


import dataclasses
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from babygpt.config import LECTURE_LADDER, MODERN_KEEPS, MODERN_SWITCHES, switch_names
from babygpt.errors import BabyGPTError
from babygpt.figures.inside_figures import formation_figure
from babygpt.figures.viz import (
    band_figure,
    embedding_scatter,
    histogram_figure,
    matrix_heatmap,
    next_token_figure,
    softmax_rows_figure,
    surprise_html,
)
from babygpt.interpret.attention import cosine_similarity_matrix, position_vectors, token_embeddings_2d
from babygpt.interpret.looking import formation_from_history, formation_sentence, onset
from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE
from babygpt.lessons.comparing import same_tokenizer
from babygpt.lessons.counterfactuals import BY_KEY, active, switches_for
from babygpt.lessons.links import LESSON_TABS
from babygpt.lessons.race import (
    BITS_PER_BYTE,
    ladder_steps,
    race_bands,
    race_results,
    race_table,
    spread_note,
    step_explanation,
    time_note,
)
from babygpt.lessons.surprise import differences, mean_loss, validation_stretch
from babygpt.lessons.tabs import char_class, first_step, model_scaling, scaling_demo, scaling_explanation
from babygpt.model.gpt import sinusoidal_encoding
from babygpt.orchestration.race import (
    MODERN_RUNGS,
    RACE_SEEDS,
    RACE_SIZES,
    RACE_STEPS,
    modern_race,
    race_entries,
    race_plans,
    race_running,
)
from babygpt.plain_text import markdown_literal
from babygpt.store.corpora import TextRef
from babygpt.store.runs import LoadedRun
from ui import choices, corpora, identity, run_cache, state, tokenizer_race_section
from ui.widgets import default_prompt, explain, run_label, run_picker

LECTURE, MODERN = "lecture", "modern"
LADDERS = {LECTURE: "the lecture's ladder (bigram → gpt)", MODERN: "modern rungs against gpt"}


@dataclass(frozen=True)
class RaceChoice:
    steps: int
    seeds: int
    layers: int
    broken: str | None  # a counterfactual switched off in every rung, or None for the real ladder
    ladder: str = LECTURE  # which rungs: the lecture's six, or chosen modern rungs against gpt
    modern: tuple[str, ...] = MODERN_RUNGS  # the modern rungs raced against gpt (with ladder == MODERN)

    @property
    def presets(self) -> tuple[str, ...]:
        return LECTURE_LADDER if self.ladder == LECTURE else modern_race(self.modern)


# each number's widget bounds and default: a saved choice outside them (an older version's) is not used
RACE_BOUNDS = {"steps": (50, 5000, RACE_STEPS), "seeds": (1, 5, len(RACE_SEEDS)), "layers": (1, 4, RACE_SIZES["n_layer"])}


def saved_race_choice() -> RaceChoice:
    """The race settings this user last chose (kept with their other choices, so a reload keeps them)."""
    saved = choices.race_choice()

    def number(name: str) -> int:
        low, high, default = RACE_BOUNDS[name]
        value = saved.get(name)
        return value if type(value) is int and low <= value <= high else default

    broken = saved.get("broken")
    modern = saved.get("modern")
    modern = tuple(p for p in MODERN_RUNGS if p in modern) if isinstance(modern, list) else MODERN_RUNGS
    return RaceChoice(number("steps"), number("seeds"), number("layers"), broken if broken in BY_KEY else None,
                      saved.get("ladder") if saved.get("ladder") in LADDERS else LECTURE, modern)


def race_words(choice: RaceChoice) -> str:
    """What Run the race trains, in words (the chosen modern rungs, or a sentence when none is chosen)."""
    if choice.ladder == LECTURE:
        return f"all {len(LECTURE_LADDER)} rungs of the lecture's ladder, each with its own learning rate,"
    if not choice.modern:
        return "nothing yet (choose at least one modern rung)"
    return (f"gpt and {', '.join(choice.modern)}, each at gpt's learning rate and judged against gpt,")


def race_settings() -> RaceChoice:
    saved = saved_race_choice()
    ladder = st.radio("Rungs", list(LADDERS), list(LADDERS).index(saved.ladder), format_func=LADDERS.get,
                      horizontal=True, key="race_ladder",
                      help="The lecture's ladder adds one idea per rung. The modern rungs are each gpt with one idea "
                           "from after GPT-2 (modern: all of them together); each is judged against gpt.")
    modern = saved.modern
    if ladder == MODERN:
        picked = st.multiselect("Modern rungs to race against gpt", list(MODERN_RUNGS), list(saved.modern),
                                key="race_modern", help="gpt trains too, with the same seeds: every chosen rung is "
                                "judged against it. Each trains at gpt's learning rate.")
        modern = tuple(p for p in MODERN_RUNGS if p in picked)  # the ladder's order, as the race table reads them
    c1, c2, c3 = st.columns(3)
    steps = c1.number_input("Steps per rung", *RACE_BOUNDS["steps"][:2], saved.steps, 50, key="race_steps",
                            help="The same token budget for every rung and seed.")
    seeds = c2.select_slider("Seeds per rung", [1, 2, 3, 4, 5], saved.seeds, key="race_seeds",
                             help="Each rung trains once per seed; a step up the ladder counts as a gain only when "
                                  "it is larger than the spread between seeds. One seed cannot tell gain from noise.")
    layers = c3.slider("n_layer (residual, gpt)", *RACE_BOUNDS["layers"][:2], saved.layers, key="race_layers",
                       help="The learning rates were tuned at 2 layers, n_embd 64.")
    options = [None, *BY_KEY]
    broken = st.selectbox("Break one idea in every rung", options, options.index(saved.broken),
                          key="race_counterfactual",
                          format_func=lambda k: "— (the real ladder)" if k is None else BY_KEY[k].label,
                          help="Race the ladder with one idea switched off, to see what it was for.")
    choice = RaceChoice(int(steps), int(seeds), int(layers), broken, ladder, modern)
    choices.set_race_choice({**dataclasses.asdict(choice), "modern": list(modern)})  # saved when it changed
    return choice


def start_race(choice: RaceChoice) -> None:
    flags = state.page_flags()
    try:
        sizes = {**RACE_SIZES, "n_layer": choice.layers, **switches_for([choice.broken] if choice.broken else [])}
        plans = race_plans(choices.corpus(), choices.current_tokenizer(), choice.steps, sizes,
                           seeds=tuple(range(1, choice.seeds + 1)), presets=choice.presets,
                           val_fraction=choices.val_fraction())
        st.session_state[state.RACE] = state.scheduler().submit_group(identity.user(), plans)
        choices.save()
        flags["race_error"] = None
    except BabyGPTError as exc:
        flags["race_error"] = str(exc)


def draw_race(group: str) -> None:
    """The race so far: a row per rung (mean and spread over its seeds, the verdict against the rung below, its
    time per step and a modern rung's gain at gpt's training time), why a step shows no gain once every seed is
    done, and every rung's validation band."""
    entries = race_entries(state.store(), group)
    results = race_results(entries)
    if not results:
        st.caption("This race's runs were deleted.")
        return
    members = state.store().list_runs(group)
    for c in active(members[-1].record.model.to_dict()) if members else []:
        st.warning(f"**Every rung trained with: {c.label.lower()}.** {c.explanation}")
    st.dataframe(pd.DataFrame(race_table(results)), hide_index=True, key="race_table")  # words, never None
    for step in ladder_steps(results):
        if step_explanation(step) and all(r.finished == r.seeds for r in results):
            st.info(step_explanation(step))
    st.caption(spread_note(results))
    st.caption(time_note(results))
    bands = race_bands(entries)
    if bands:
        unit = results[0].unit
        st.plotly_chart(band_figure(bands, y_title=f"val loss ({unit})"), key="race_chart")
        if unit == BITS_PER_BYTE:
            st.caption(BITS_PER_BYTE_SENTENCE)


def race_lesson() -> None:
    """Every rung on the same text and budget, several seeds each: a gain counts only beyond the seeds' spread."""
    explain("One idea at a time",
            "Train every rung of the ladder on your text with the same budget and compare their validation loss. "
            "Each rung adds one idea: attention lets tokens look back, several heads look for several things, the "
            "feed-forward network computes on what was gathered, residual connections let deep stacks train, and "
            "layer norm makes the full GPT (dropout, its other part, is off in the race). Each rung trains at the "
            "learning rate that suits it (small shallow networks want a higher one) and with several seeds: a "
            "difference between two rungs counts only when it is larger than the spread between seeds, because a "
            "single run can be lucky.\n\n"
            "**Modern rungs against gpt** races the ideas from after GPT-2 instead: each chosen rung is gpt with one "
            f"switch ({switch_names(MODERN_SWITCHES)}), or `modern` with the ones it keeps "
            f"({switch_names(MODERN_KEEPS)}), trained beside gpt on the same text, budget, seeds and learning rate "
            "(`modern` too, not with its own training recipe, so that only the switches differ); the column *against "
            "gpt* says "
            "whether a switch earns its place by beating gpt by more than the seeds' spread. A faster loss per "
            "step can still be slower per second: the "
            "table gives each rung's time per training step (a modern rung's also as a multiple of gpt's) and "
            "its gain *at gpt's training time*, the loss it had reached when it had trained as long as gpt did.")
    choice = race_settings()
    group = st.session_state.get(state.RACE)
    racing = race_running(state.store(), group)
    b1, b2, _ = st.columns([1, 1, 4])
    nothing_chosen = choice.ladder != LECTURE and not choice.modern  # the caption below says what to choose
    b1.button("Run the race", type="primary", key="race_start", on_click=start_race, args=(choice,),
              disabled=racing or nothing_chosen)
    b2.button("Stop", key="race_stop", disabled=not racing,
              on_click=lambda: state.scheduler().stop_group(identity.actor(), group))
    if state.page_flags().get("race_error"):
        st.error(markdown_literal(state.page_flags()["race_error"]))

    @st.fragment(run_every=1.0 if racing else None)
    def race_view() -> None:
        if not group:
            st.caption(f"Press **Run the race** to train {race_words(choice)} on "
                       f"**{markdown_literal(choices.corpus().name)}**, {choice.seeds} seed(s) each. Each run is one "
                       "job in the server's queue, trained in its own process.")
            return
        draw_race(group)
        if racing and not race_running(state.store(), group):
            st.rerun()

    race_view()


def scaling_lesson(loaded: LoadedRun | None) -> None:
    """Why q·k is divided by √d: random vectors first, then the same read off the run's own heads."""
    explain("Why divide by √d",
            "If q and k have d components of variance 1, their dot product is a sum of d products of variance 1, "
            "so its variance is d. Large scores make the softmax pick one key almost exclusively (one-hot), and "
            "its gradients vanish. Dividing by √d brings the variance back to 1 whatever the head size.",
            r"\operatorname{Var}(q\cdot k)=\sum_{i=1}^{d}\operatorname{Var}(q_i k_i)=d,\qquad "
            r"\operatorname{Var}\!\left(\tfrac{q\cdot k}{\sqrt d}\right)=1")
    head_size = st.select_slider("Head size d", [1, 2, 4, 8, 16, 32, 64, 128, 256], 64, key="scale_head_size")
    demo = scaling_demo(int(head_size))
    m1, m2, m3 = st.columns(3)
    m1.metric("Variance of q·k", f"{demo.raw_variance:.2f}", help="≈ d")
    m2.metric("Variance of q·k/√d", f"{demo.scaled_variance:.3f}", help="≈ 1")
    m3.metric("Mean top softmax weight of 8 keys (unscaled vs scaled)",
              f"{demo.raw_mean_max_weight:.2f} vs {demo.scaled_mean_max_weight:.2f}",
              help="1.0 would be one-hot; 1/8 = 0.125 would be uniform.")
    left, right = st.columns(2)
    left.plotly_chart(histogram_figure({"q·k": demo.raw, "q·k/√d": demo.scaled},
                                       f"Scores of random q, k with d = {head_size}", "score"), key="scale_hist")
    right.plotly_chart(softmax_rows_figure({"softmax(q·k)": demo.raw_row_softmax,
                                            "softmax(q·k/√d)": demo.scaled_row_softmax},
                                           "Softmax of one row of 8 scores"), key="scale_softmax")
    st.markdown("**The same, read off a trained model**")
    if loaded is not None and loaded.model_config.use_attention:
        prompt = default_prompt(loaded, 48)
        real = model_scaling(loaded.model, loaded.tokenizer, prompt)
        r1, r2, r3 = st.columns(3)
        r1.metric("Head size", real.head_size)
        r2.metric("Variance of real q·k → scaled", f"{real.raw_variance:.2f} → {real.scaled_variance:.2f}")
        r3.metric("Mean top weight: unscaled vs scaled", f"{real.raw_max_weight:.2f} vs {real.scaled_max_weight:.2f}")
        st.caption(scaling_explanation(real))


def positions_lesson(loaded: LoadedRun | None) -> None:
    """Sinusoidal encodings at the run's sizes (else the form's), and the run's own position vectors."""
    explain("Where is each token?",
            "Attention by itself treats its inputs as a set: shuffle the tokens and each gets the same result. "
            "Adding a position vector to every token embedding tells the model where it is. Learned encodings "
            "are trained like any weight; sinusoidal ones are fixed waves of geometric wavelengths, so nearby "
            "positions look alike.",
            r"PE_{(p,2i)}=\sin\!\left(p/10000^{2i/d}\right),\quad PE_{(p,2i+1)}=\cos\!\left(p/10000^{2i/d}\right)")
    # the sizes of the run looked at, else of the model the training page is set to build
    sizes = loaded.model_config if loaded is not None else None
    positions = sizes.block_size if sizes else choices.hparam("block_size")
    width = sizes.n_embd if sizes else choices.hparam("n_embd")
    table = sinusoidal_encoding(positions, width).numpy()
    left, right = st.columns(2)
    left.plotly_chart(matrix_heatmap(table, f"Sinusoidal encodings ({positions} positions × {width} dims)",
                                     "dimension", "position"), key="pos_sin")
    right.plotly_chart(matrix_heatmap(cosine_similarity_matrix(table), "Their position-by-position similarity",
                                      "position", "position"), key="pos_sin_sim")
    if loaded is not None:
        try:
            vectors = position_vectors(loaded.model)
            left, right = st.columns(2)
            left.plotly_chart(matrix_heatmap(vectors, f"This run's {loaded.model_config.positional} encodings",
                                             "dimension", "position"), key="pos_learned")
            right.plotly_chart(matrix_heatmap(cosine_similarity_matrix(vectors), "Their similarity", "position",
                                              "position"), key="pos_learned_sim")
        except BabyGPTError as exc:
            st.info(markdown_literal(exc))
    st.caption("What a model without positions cannot do: compare `bigram` (no positions, no context) with "
               "`single-head` (positions + one head) in the ladder race — the drop in validation loss is what "
               "looking back at earlier, located tokens buys.")


def embeddings_lesson(loaded: LoadedRun | None) -> None:
    """The run's token vectors on their two main directions: tokens that behave alike land together."""
    explain("Tokens as points",
            "Every token is a learned vector. Projected onto its two main directions (PCA), tokens that behave "
            "alike land near each other: vowels with vowels, digits with digits, upper case apart from lower case.")
    if loaded is not None:
        points = token_embeddings_2d(loaded.model)
        labels = [loaded.tokenizer.token_text(i) for i in range(loaded.model_config.vocab_size)]
        shown = min(len(labels), 400)
        st.plotly_chart(embedding_scatter(points[:shown], labels[:shown], [char_class(t) for t in labels[:shown]]),
                        key="emb_scatter")


def first_step_lesson(loaded: LoadedRun | None) -> None:
    """The next-token distribution before and after training, with ln(V) against the measured step-0 loss."""
    explain("What learning changed",
            "Before training every weight is small and random, so the model spreads its bets almost evenly over "
            "the V tokens and its loss is about ln(V). After training the same prompt gets a sharp, sensible "
            "distribution.", r"\mathcal{L}_0 \approx -\ln\frac{1}{V} = \ln V")
    if loaded is not None:
        prompt = st.text_area("Prompt", default_prompt(loaded, 12), key="first_prompt", height=80,
                              help="Line breaks are part of the prompt: the model reads them as tokens too.")
        vals = [m for m in state.store().metrics(loaded.info.id) if m.split == "val"]
        try:
            result = first_step(loaded.model, loaded.tokenizer, prompt, vals[0].loss if vals else None,
                                vals[-1].loss if vals else None)
            c1, c2, c3 = st.columns(3)
            c1.metric("Expected initial loss ln(V)", f"{result.expected_initial_loss:.3f}")
            c2.metric("Measured at step 0", f"{result.measured_initial_loss:.3f}" if vals else "–")
            c3.metric("After training", f"{result.final_loss:.3f}" if vals else "–")
            left, right = st.columns(2)
            left.plotly_chart(next_token_figure([(c.text, c.prob) for c in result.untrained], None,
                                                f"Untrained: uniform-ish (1/V = {1 / loaded.model_config.vocab_size:.1%})"),
                              key="first_untrained")
            right.plotly_chart(next_token_figure([(c.text, c.prob) for c in result.trained], None, "Trained"),
                               key="first_trained")
        except BabyGPTError as exc:
            st.error(markdown_literal(exc))


def surprise_lesson(loaded: LoadedRun | None) -> None:
    """The validation loss taken apart token by token, and against a second run on the same text."""
    explain("The loss, token by token",
            "The validation loss is an average over tokens. Taken apart, it shows where the model already knows "
            "what comes next (white) and where it is surprised (red): usually the first letters of a word, a "
            "name, a number. Hover a token to see its loss, the probability the model gave it and what it expected "
            "instead. Pick a second run trained with the same tokenizer to see, in blue, where it was less "
            "surprised: what the bigger (or longer-trained) model learned that the other did not.",
            r"\ell_i = -\ln p_\theta(x_i \mid x_{<i}), \qquad \mathcal{L} = \frac{1}{N}\sum_i \ell_i")
    if loaded is not None:
        try:
            try:  # found by its content, wherever it is kept (babygpt.store.corpora.find_text)
                corpus = corpora.run_text(loaded.info, at_hand=choices.corpus())
            except BabyGPTError:
                raise BabyGPTError(f"The text this run was trained on ({TextRef.of_run(loaded.info).shown}) is not "
                                   "available here; choose it on the Data page to see where the model is "
                                   "surprised.") from None
            text = validation_stretch(corpus.text, loaded.train_config.val_fraction)
            tokens = run_cache.surprise_for(loaded.info.id, text)
            others = [r for r in run_cache.runs_with_weights()  # the same tokenizer itself, not only its kind
                      if r["id"] != loaded.info.id and r["tokenizer"] == loaded.tokenizer.kind
                      and r["text_sha256"] == loaded.info.text_sha256  # the same text by content, not name
                      and same_tokenizer([state.store().get(r["id"]).config, loaded.info.config])]
            labels = {r["id"]: run_label(r) for r in others}
            second = st.selectbox("Compare with", [None, *labels], format_func=lambda i: "—" if i is None else labels[i],
                                  key="surprise_second",
                                  help="Another run on the same text with the same tokenizer.")
            c1, c2 = st.columns(2)
            c1.metric(f"Mean loss on this stretch ({len(tokens) - 1} predictions)", f"{mean_loss(tokens):.3f}")
            if second is None:
                st.markdown(surprise_html(tokens), unsafe_allow_html=True)
            else:
                other = run_cache.surprise_for(second, text)
                c2.metric("The second run's mean loss", f"{mean_loss(other):.3f}",
                          delta=f"{mean_loss(other) - mean_loss(tokens):+.3f}", delta_color="inverse")
                change = differences(tokens, other)
                left, right = st.columns(2)
                left.markdown(surprise_html(tokens), unsafe_allow_html=True)
                right.markdown(surprise_html(other), unsafe_allow_html=True)
                st.markdown("**Where they differ**")
                st.markdown(surprise_html(tokens, change), unsafe_allow_html=True)
                st.caption("Side by side: each run's own surprise. Below: blue where the second run was less "
                           "surprised by a token, red where more.")
        except BabyGPTError as exc:  # it can name the run's text, which a user named
            st.info(markdown_literal(exc))


def induction_lesson(loaded: LoadedRun | None) -> None:
    """Whether this run grew an induction head, when, and what the loss did then: one picture to project."""
    explain("Copying what came before",
            "An induction head finds an earlier occurrence of the current token and predicts the token that followed "
            "it: after \"Mr D\" ... \"Mr\" it predicts \"D\". It needs two heads working together (one that "
            "notes the previous token, one that searches for it), so two layers at least. It is tested on random "
            "tokens repeated twice, where only copying helps: the head's weight on the token after the earlier "
            "occurrence is its induction score (Olsson et al., 2022). In large models these heads appear suddenly, "
            "and the loss bends where they do.")
    if loaded is None:
        return
    if not loaded.model_config.use_attention:
        st.info("The bigram model has no heads.")
        return
    history = state.store().head_score_history(loaded.info.id)
    formation = formation_from_history(history)
    val = [(m.step, m.loss) for m in state.store().metrics(loaded.info.id) if m.split == "val" and m.loss is not None]
    word = "character" if loaded.tokenizer.kind == "char" else "token"
    st.info(formation_sentence(formation, val, word))
    if formation is not None and "induction" in formation.scores and len(formation.steps) > 1:
        st.plotly_chart(formation_figure(formation, "induction", val, onset(formation),
                                         "Induction score of every head over training"), key="induction_formation")


# --- the page ------------------------------------------------------------------------------------

st.title("Lessons")
st.caption("Each tab shows one step of the build. The Data, Model & training, Attention and Generate pages cover "
           "tokenization, the training loop, attention maps and sampling; these views fill in the rest.")

st.caption("The tabs after the two races look inside one trained run:")
loaded = run_picker("lessons_run")

tabs = st.tabs(
    list(LESSON_TABS.values()), default=st.session_state.get(state.LESSON_TAB))  # a link may name the tab
lessons = (race_lesson, tokenizer_race_section.lesson, lambda: scaling_lesson(loaded),
           lambda: positions_lesson(loaded), lambda: embeddings_lesson(loaded), lambda: first_step_lesson(loaded),
           lambda: surprise_lesson(loaded), lambda: induction_lesson(loaded))
for tab, lesson in zip(tabs, lessons, strict=True):
    with tab:
        lesson()
