"""Model & training: choose a rung of the ladder and its hyperparameters, train, and watch it learn.

The page reads top to bottom at the end of this file; each section is a function above it."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from streamlit.net_util import get_internal_ip

from babygpt.config import (
    BY_NAME,
    FORM_SETTINGS,
    PRESETS,
    TrainConfig,
    app_train_config,
    form_defaults,
    form_settings,
    model_config_for_preset,
    preset_settings,
    preset_switch_sentence,
    preset_training,
    preset_training_words,
    tokens_per_step,
)
from babygpt.errors import BabyGPTError
from babygpt.figures.viz import loss_figure, lr_figure
from babygpt.lessons.baselines import bits_per_char
from babygpt.lessons.counterfactuals import BY_KEY, COUNTERFACTUALS, active, switches_for
from babygpt.lessons.links import LESSON_TABS, make_link, only_here, shareable_base
from babygpt.model.sizing import flops_per_token, parameter_count
from babygpt.orchestration.challenge import ChallengeRules, budget_caption, entry_problems, refusal
from babygpt.orchestration.plan import plan_training
from babygpt.pace import LIVE_SPEED_CAPTION, OVERALL_SPEED_CAPTION, overall_tokens_per_second
from babygpt.plain_text import markdown_literal
from babygpt.server.progress import JobSnapshot
from babygpt.server.scheduler import check_can_resume
from babygpt.server.users import can_manage
from babygpt.status import RunStatus
from babygpt.store.runs import RunInfo, run_tokens_per_step
from babygpt.text import datasets
from babygpt.training.devices import auto_dtype, available_devices
from babygpt.training.trainer import lr_at, muon_lr_at
from ui import choices, corpora, identity, run_cache, state
from ui.widgets import explain, progress_text, setting_input

ERROR_KEY = "train_error"
# How often each live part of the page redraws while a run trains, from Chromium's CPU for one open live page
# (2-core AMD EPYC; `python -m bench.classroom --phases browser`, and single parts switched off one at a time):
# an open page that redraws nothing costs 0.05 of a core; each redraw of the loss chart about 0.28 core-seconds,
# since Streamlit rebuilds a plotly chart from scratch whenever it is sent, changed or not; each update of the
# progress line about 0.05. Everything every second cost 0.39 of a core; the progress line every 2 s, the curve
# and the figures beside it every 5 s and the samples every 10 s cost 0.12-0.15.
STATUS_REFRESH_S = 2.0
CHART_REFRESH_S = 5.0
SAMPLE_REFRESH_S = 10.0
DEFAULTS = form_defaults()  # the library's; INTERACTIVE_TRAIN says why they are shorter than the CLI's


@dataclass(frozen=True)
class ChartOptions:
    log_y: bool
    smoothing: float
    x_axis: str


# --- the form ------------------------------------------------------------------------------------

def form_values() -> dict:
    """The user's hyperparameters, edited in place by the form (saved at the end of the form)."""
    hp = st.session_state.setdefault(state.HPARAMS, {})
    for name, value in DEFAULTS.items():  # what a link or an older saved state did not set
        hp.setdefault(name, value)
    return hp


def pick_preset(hp: dict) -> None:
    hp["preset"] = st.selectbox("Preset (rung of the ladder)", list(PRESETS), index=list(PRESETS).index(hp["preset"]),
                                key="hp_preset", help="Each rung adds one idea of the Transformer to the one before.")
    st.info(f"**{hp['preset']}** — {PRESETS[hp['preset']]}")


def recipe_offer(hp: dict) -> None:
    """The preset's own training recipe, offered as one button until the form holds it (after the training
    settings, so it compares what they show in this run)."""
    recipe = preset_training(hp["preset"])
    if not recipe:
        return
    words = preset_training_words(hp["preset"])
    if all(hp.get(name) == value for name, value in recipe.items()):
        st.caption(f"Training with {hp['preset']}'s recipe: {words} (measured to reach a good model soonest: "
                   "docs/modern.md).")
    else:
        st.button(f"Use {hp['preset']}'s training recipe: {words}", key="hp_recipe", on_click=use_recipe,
                  args=(hp, recipe), help="What this preset was measured to reach a good model with in the fewest "
                  "seconds, on two texts of different kinds (docs/modern.md). Every setting stays yours to change.")


def use_recipe(hp: dict, recipe: dict) -> None:
    """Put the preset's recipe in the form: in the settings and in their widgets' own state, which a browser keeps
    and sends back with every rerun (a widget whose state was only dropped shows its old value again)."""
    hp.update(recipe)
    for name, value in recipe.items():
        st.session_state[f"hp_{name}"] = BY_NAME[name].kind(value)


def hyperparameters(hp: dict, folded: bool, presenter: bool):
    """The settings expander: model and training columns, the advanced ones, and (not in presenter mode) the
    counterfactual switch. Returns the expander, which the share link joins."""
    settings = st.expander("Hyperparameters", expanded=not folded)
    model_col, train_col = settings.columns(2)
    shown = [s for s in form_settings(hp["preset"]) if not (presenter and s.level >= 1)]
    fixed = preset_settings(hp["preset"])
    with model_col:
        st.markdown("**Model**")
        for setting in (s for s in shown if s.section == "model"):
            if setting.name in fixed:  # the preset's, shown as it trains; the user's own choice is kept for later
                setting_input(setting, fixed[setting.name], fixed=True)
            else:
                hp[setting.name] = setting_input(setting, hp[setting.name])
    with train_col:
        st.markdown("**Training**")
        for setting in (s for s in shown if s.section == "train" and s.level < 2):
            hp[setting.name] = setting_input(setting, hp[setting.name])
        recipe_offer(hp)
        advanced = [s for s in shown if s.section == "train" and s.level == 2]
        if advanced:
            with st.expander("Advanced"):
                for setting in advanced:
                    offered = ("auto", *available_devices()) if setting.name == "device" else None
                    hp[setting.name] = setting_input(setting, hp[setting.name], offered)
                st.caption(f"auto precision here: {auto_dtype()}.")
    switches = preset_switch_sentence(hp["preset"], hp.get("muon_lr"))
    if switches:  # under the model's settings, written after the training column has read Muon's rate
        model_col.caption(markdown_literal(switches))
    if not presenter:
        with settings:
            broken = st.multiselect(
                "Break one idea (counterfactual)", [c.key for c in COUNTERFACTUALS], hp.get("counterfactuals", []),
                format_func=lambda k: BY_KEY[k].label, key="hp_counterfactuals",
                help="Train with one idea of the Transformer switched off, to see what it was for.")
            hp["counterfactuals"] = broken
            for key in broken:
                st.caption(f"**{BY_KEY[key].label}.** {BY_KEY[key].explanation}")
    return settings


def share_link(settings, hp: dict) -> None:
    with settings.popover("Share these settings as a link"):
        lesson = st.selectbox("Open on the Lessons tab", ["", *LESSON_TABS], key="share_lesson",
                              format_func=lambda k: LESSON_TABS.get(k, "— (this page)")) or None  # None shows a placeholder
        corpus_name = choices.corpus().source if choices.corpus().source in datasets.registry() else None
        base = shareable_base(st.context.url, st.context.headers.get("Host"), get_internal_ip())
        unused = {s.name for s in FORM_SETTINGS} - {s.name for s in form_settings(hp["preset"])}
        shared = {k: v for k, v in hp.items() if k not in unused}
        st.code(make_link(base, {**shared, "corpus": corpus_name, "tokenizer": choices.tokenizer_kind(),
                                 **choices.bpe_link_values(), "lesson": lesson}),
                language=None, wrap_lines=True)
        if only_here(base):
            st.caption("This address opens only on this computer: give students the server's network address.")
        st.caption("Whoever opens it gets these settings (and the text, if it is a bundled or downloaded one; an "
                   "upload cannot travel in a link). It never carries your user key.")


def model_settings(hp: dict) -> dict:
    """The form's sizes and any counterfactual switches, as plan_training takes them; a setting the preset fixes is
    left to the preset (the form shows the preset's value, switched off)."""
    fixed = preset_settings(hp["preset"])
    sizes = {s.name: hp[s.name] for s in FORM_SETTINGS if s.section == "model" and s.name not in fixed}
    return {**sizes, **switches_for(hp.get("counterfactuals", []))}


def challenge_entry() -> ChallengeRules | None:
    """The open challenge's rules when the user enters it (a toggle shown only while one is open), else None."""
    record = state.classroom().open_challenge()
    if record is None:
        return None
    rules = ChallengeRules.from_dict(record.rules)
    if not st.toggle("Enter the challenge", key=state.CHALLENGE_ENTRY,
                     help="Train a run for the class challenge (see the Class page)."):
        return None
    st.info(f"**Challenge:** {markdown_literal(rules.sentence())}. Your run trains on the challenge's text, "
            "tokenizer and held-out split whatever the Data page says, for the whole budget; the rung, its sizes and "
            "the training settings are yours, with no idea broken.")
    return rules


def training_text(rules: ChallengeRules | None) -> tuple:
    """(corpus, tokenizer kind, validation fraction) a run started here trains with: the challenge's when entering."""
    if rules is None:
        return choices.corpus(), choices.tokenizer_kind(), choices.val_fraction()
    return corpora.challenge_corpus(rules), rules.tokenizer, rules.val_fraction


def training_tokenizer(rules: ChallengeRules | None):
    """The tokenizer a run started here trains with: the Data page's, or when entering, the challenge's own (a BPE
    of the teacher's size and pre-split, whatever this user's Data page says), built once for every session."""
    corpus, kind, _ = training_text(rules)
    bpe = choices.bpe_for(kind) if rules is None else rules.bpe_settings()
    return corpora.tokenizer_for(corpus.sha256, kind, corpus.text, bpe)


def configs(hp: dict, rules: ChallengeRules | None = None) -> tuple:
    _, _, val_fraction = training_text(rules)
    tokenizer = training_tokenizer(rules)
    model_cfg = model_config_for_preset(hp["preset"], vocab_size=tokenizer.vocab_size, **model_settings(hp))
    train_cfg = app_train_config(**{s.name: hp[s.name] for s in form_settings(hp["preset"]) if s.section == "train"},
                                 val_fraction=val_fraction)
    return model_cfg, train_cfg


def sizes_and_limits(hp: dict, rules: ChallengeRules | None) -> tuple[TrainConfig | None, str | None]:
    """The model's size by arithmetic on its config (nothing is allocated on a rerun), checked against this
    server's limits; returns the training config, or the reason nothing can start."""
    refused = [problem for s in form_settings(hp["preset"]) if (problem := s.problem(hp[s.name]))]
    try:
        if refused:  # a value typed out of range: name it, and train nothing until it is fixed
            raise BabyGPTError("Not started until these are fixed: " + " ".join(refused))
        model_cfg, train_cfg = configs(hp, rules)
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Parameters", f"{parameter_count(model_cfg):,}")
        c2.metric("FLOPs per token (train)", f"{flops_per_token(model_cfg) / 1e6:.2f} M")
        c3.metric("Expected initial loss ln(V)", f"{math.log(model_cfg.vocab_size):.3f}")
        c4.metric("Tokens per step", f"{tokens_per_step(model_cfg, train_cfg):,}")
        state.scheduler().limits.check(model_cfg, train_cfg.batch_size)  # too big for this server: say so now
        if rules is not None:
            st.caption(budget_caption(rules, model_cfg, train_cfg))
        not_entered = refusal(entry_problems(rules, model_cfg, train_cfg, model_cfg.vocab_size)) if rules else None
        if not_entered:  # the library's own sentence, before anything trains: Start stays off
            raise BabyGPTError(not_entered)
        return train_cfg, None
    except BabyGPTError as exc:
        st.error(markdown_literal(exc))
        return None, str(exc)


# --- the buttons ---------------------------------------------------------------------------------

def act(action: Callable[[], None]) -> None:
    """A button's action; what it refuses is shown under the buttons until the next action."""
    flags = state.page_flags()
    flags[ERROR_KEY] = None
    try:
        action()
    except BabyGPTError as exc:
        flags[ERROR_KEY] = str(exc)


def start_training(hp: dict, rules: ChallengeRules | None) -> None:
    current = state.scheduler().current_run_for(identity.user())
    if current is not None:
        # Start is off while a run of yours is queued or training, so this press is a second one (a double click,
        # or a tab not yet redrawn): this tab now follows the run the first press started, also once it stops,
        # and a refusal left under the buttons would stay there after that run began
        choices.set_active_run(current)
        return
    _, train_cfg = configs(hp, rules)
    corpus, _, _ = training_text(rules)
    # the tokenizer the page showed, built once per text for every session (a BPE the Data page learned is not
    # learned again); when entering, the challenge's own, which the classroom checks by its fingerprint
    plan = plan_training(corpus, training_tokenizer(rules), hp["preset"], train_cfg, **model_settings(hp))
    if rules is None:
        info = state.scheduler().submit(identity.user(), plan, name=f"{hp['preset']} on {corpus.name}")
    else:
        info = state.classroom().enter(identity.user(), plan, name=f"{hp['preset']} for the challenge")
    choices.set_active_run(info.id)


def stop_training(run_id: str) -> None:
    state.scheduler().stop(identity.actor(), run_id)


def resume_training(run_id: str, max_iters: int, until_val_loss: float) -> None:
    text = state.classroom().resume_corpus(state.store().get(run_id), choices.corpus())
    state.scheduler().resume(identity.actor(), run_id, text, max_iters=max_iters, until_val_loss=until_val_loss)
    choices.set_active_run(run_id)


def resume_blocker(info: RunInfo | None, max_iters: int) -> str | None:
    """Why Resume is off for the active run, in words (None: it can resume)."""
    if info is None:
        return "No run to resume: start one first."
    try:
        check_can_resume(identity.actor(), info, max_iters)
    except BabyGPTError as exc:
        return str(exc)
    return None


def followed_run_id() -> str | None:
    """The run this page follows: the user's training or queued run, else the active run. The live parts ask
    again at every tick, since a run can be started from another tab."""
    return state.scheduler().current_run_for(identity.user()) or choices.active_run_id()


def followed_run() -> RunInfo | None:
    try:
        return state.store().get(followed_run_id() or "-")
    except BabyGPTError:
        return None


def buttons(hp: dict, followed: RunInfo | None, running: bool, config_error: str | None,
            rules: ChallengeRules | None) -> None:
    busy = followed is not None and followed.status.active
    is_mine = followed is not None and can_manage(identity.actor(), followed)  # its owner's, or the teacher's
    broken_now = hp.get("counterfactuals", [])
    if broken_now and not running:  # shown in presenter mode too, where the switch itself is folded away
        st.warning("**Start trains without " + " and without ".join(BY_KEY[k].idea for k in broken_now) + "** "
                   "(a counterfactual, chosen under Hyperparameters). Its name will say so everywhere it is shown.")
    run_id = followed.id if followed else ""
    queued = followed is not None and followed.status is RunStatus.QUEUED
    b1, b2, b3 = st.columns(3)
    b1.button("Start training", type="primary", on_click=act, args=(lambda: start_training(hp, rules),),
              disabled=running or bool(config_error), key="start", width="stretch",
              help="Train a new run with these settings (it waits in the queue when the server is full).")
    b2.button("Cancel" if queued else "Stop", on_click=act, args=(lambda: stop_training(run_id),),
              disabled=not (busy and is_mine), key="stop", width="stretch",
              help="Take it off the queue." if queued else
              "Stop after the current step; the checkpoint is kept and the run can be resumed.")
    max_iters = int(hp["max_iters"])
    blocker = resume_blocker(None if busy else followed, max_iters)
    b3.button("Resume", disabled=blocker is not None, key="resume", width="stretch",
              on_click=act, args=(lambda: resume_training(run_id, max_iters, hp["until_val_loss"]),),
              help=markdown_literal(blocker) if blocker else
              "Continue the active run from its last checkpoint up to max_iters (and the stop-at loss above).")
    if state.page_flags().get(ERROR_KEY):
        st.error(markdown_literal(state.page_flags()[ERROR_KEY]))


# --- the live view -------------------------------------------------------------------------------

def chart_options() -> ChartOptions:
    o1, o2, o3 = st.columns(3)
    log_y = o1.toggle("Log-scale loss", key="opt_log_y")
    smoothing = o2.slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key="opt_smoothing",
                          help="Exponential moving average of the per-step training loss.")
    x_axis = o3.radio("x axis", ["step", "time"], horizontal=True, key="opt_x_axis")
    return ChartOptions(log_y, smoothing, x_axis)


def draw_status(snap: JobSnapshot) -> None:
    """What changes between steps: the progress line (step, speed, time left) and what the run has to say."""
    st.progress(snap.progress, text=f"{markdown_literal(snap.label)}: {progress_text(snap)}")
    broken_ideas = active(state.store().get(snap.run_id).record.model.to_dict())
    findings = {f.key: f.sentence for f in run_cache.counterfactual_findings(snap.run_id)} if broken_ideas else {}
    for broken in broken_ideas:
        measured = findings.get(broken.key, "Measured on this run at its first checkpoint.")
        st.warning(f"**Trained without {broken.idea}.** {broken.explanation}\n\n**What this run shows:** {measured}")
    if snap.status in (RunStatus.FAILED, RunStatus.INTERRUPTED) and snap.message:
        st.error(markdown_literal(snap.message))
    elif snap.message:
        st.info(markdown_literal(snap.message))
    if snap.status is RunStatus.QUEUED:
        st.info("The server is training as many jobs as it has cores for; yours starts by itself when a slot "
                "frees. You can leave this page or reload it.")


def measured_line(snap: JobSnapshot) -> str:
    """When the val loss was measured, the latest training loss when it is newer, and the precision."""
    last_eval = snap.evals[-1] if snap.evals else None
    facts = []
    if last_eval:
        facts.append(f"val loss measured at step {last_eval['step']}"
                     + (f" ({bits_per_char(last_eval['val_loss'], snap.baselines.chars_per_token):.2f} bits/char)"
                        if snap.baselines else ""))
    if snap.train and (not last_eval or snap.train[-1]["step"] > last_eval["step"]):
        facts.append(f"training loss {snap.train[-1]['loss']:.3f} at step {snap.train[-1]['step']}")
    threads = (f" on {snap.threads} CPU thread{'s' if snap.threads != 1 else ''}"
               if snap.threads and snap.device.startswith("cpu") else "")
    # a queued run has no device or precision yet: a bare "auto" read as a stray word under "Device auto"
    facts.append("device and precision chosen when it starts" if snap.dtype == "auto" else f"{snap.dtype}{threads}")
    line = " · ".join(facts)
    return line[:1].upper() + line[1:]


def draw_curves(snap: JobSnapshot, options: ChartOptions) -> None:
    """What moves with the curve: the figures beside it and the loss chart itself."""
    last_eval = snap.evals[-1] if snap.evals else None
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Step", f"{snap.step}/{snap.max_iters}")
    if snap.training or snap.status is RunStatus.QUEUED:
        m2.metric("Tokens/s", f"{snap.tokens_per_sec:,.0f}" if snap.training and snap.tokens_per_sec else "–",
                  help=LIVE_SPEED_CAPTION)
    else:  # stopped training: its whole run's figure, the one the Runs table shows
        overall = overall_tokens_per_second(snap.train, snap.evals, run_tokens_per_step(state.store().get(snap.run_id)))
        m2.metric("Overall tokens/s", f"{overall:,.0f}" if overall else "–", help=OVERALL_SPEED_CAPTION)
    m3.metric("Last val loss", f"{last_eval['val_loss']:.3f}" if last_eval else "–",
              help="Cross-entropy in nats per token on the held-out text at the latest evaluation (the run pickers "
                   "and the Runs table show each run's best).")
    m4.metric("Device", snap.device.split(" (")[0], help="Where the job trains; its precision is below.")
    st.caption(measured_line(snap))
    if snap.training:
        st.caption(LIVE_SPEED_CAPTION)
    st.plotly_chart(loss_figure(snap.train, snap.evals, log_y=options.log_y, smoothing=options.smoothing,
                                x_axis=options.x_axis, baselines=snap.baselines, vocab_size=snap.vocab_size),
                    key="loss_chart")
    if snap.baselines:
        st.caption("Dashed lines: what simple predictors score on the same validation text — guessing uniformly, "
                   "token frequencies (unigram) and how often each token followed the previous one (bigram "
                   "counts). A model that does not go below the bigram line has not learned to use context.")


def draw_samples(samples: list[tuple[int, str]], presenter: bool) -> None:
    if samples:
        step, text = samples[-1]
        st.markdown(f"**What it writes at step {step}:**")
        st.code(text, language=None, wrap_lines=True)
        if len(samples) > 1 and not presenter:
            with st.expander("Earlier samples"):
                for s, t in reversed(samples[:-1]):
                    st.markdown(f"*step {s}*")
                    st.code(t, language=None, wrap_lines=True)


def followed_snapshot() -> JobSnapshot | None:
    run_id = followed_run_id()
    if run_id is None:
        return None
    try:
        return state.scheduler().snapshot(run_id)
    except BabyGPTError:
        return None


def live_view(followed: RunInfo | None, options: ChartOptions, presenter: bool) -> None:
    """Three parts on timers of their own (see the refresh intervals above), ticking only while a run is busy."""
    busy = followed is not None and followed.status.active
    queued = followed is not None and followed.status is RunStatus.QUEUED

    @st.fragment(run_every=STATUS_REFRESH_S if busy else None)
    def live_status() -> None:
        snap = followed_snapshot()
        if snap is None:
            notice = state.scheduler().notice_for(identity.user())
            if notice:  # the teacher cleared the queue: what happened, in a sentence
                st.info(markdown_literal(notice))
            st.caption("Press **Start training** to train the model above on the current corpus.")
            if busy and followed_run() is None:
                st.rerun()  # the run it followed is gone: the buttons lose their Cancel
            return
        draw_status(snap)
        if busy and (not snap.active or (snap.status is RunStatus.QUEUED) != queued):
            st.rerun()  # it left the queue or ended: relabel the buttons, stop the timers when it ended

    @st.fragment(run_every=CHART_REFRESH_S if busy and not queued else None)  # a queued run's curve does not move
    def live_chart() -> None:
        snap = followed_snapshot()
        if snap is not None:
            draw_curves(snap, options)

    @st.fragment(run_every=SAMPLE_REFRESH_S if busy else None)  # samples come once per evaluation
    def samples_view() -> None:
        run_id = followed_run_id()
        if run_id is not None:
            draw_samples(state.store().samples(run_id), presenter)

    live_status()
    live_chart()
    samples_view()


def schedule_chart(followed: RunInfo | None, form_config: TrainConfig | None, hp: dict) -> None:
    """The learning-rate schedule of the followed run, else of the settings above; drawn once per page run,
    outside the live fragments: it does not change while training. With Muon, both of its peaks, labelled."""
    if followed is not None:
        schedule, muon = followed.record.training, followed.record.training.optimizer_for(followed.record.model) == "muon"
    elif form_config is not None:
        muon = form_config.optimizer_for(model_config_for_preset(hp["preset"], **model_settings(hp))) == "muon"
        schedule = form_config
    else:
        return
    steps = list(range(0, schedule.max_iters + 1, max(1, schedule.max_iters // 200)))
    muon_lrs = [muon_lr_at(s, schedule) for s in steps] if muon else None
    st.plotly_chart(lr_figure(steps, [lr_at(s, schedule) for s in steps], muon_lrs=muon_lrs), key="lr_chart")
    whose = (f"The schedule of the run shown above, {markdown_literal(followed.label)}."
             if followed is not None else "The schedule the settings above give.")
    st.caption(whose)
    if muon:
        st.caption(f"Muon trains the blocks' 2-D weight matrices at a peak of {schedule.muon_lr:g} (muon_lr: "
                   f"Muon's learning rate above, `--muon-lr` on the command line); AdamW trains the embeddings, the head, the norms' gains "
                   f"and the biases at a peak of {schedule.lr:g} (the learning rate). Both warm up and decay alike.")


# --- the page ------------------------------------------------------------------------------------

st.title("Model & training")
explain(
    "How training works",
    "Each **step** takes `batch_size` random windows of `block_size` tokens, asks the model to predict every next "
    "token, measures the **cross-entropy loss** and nudges all weights downhill with AdamW. Before training the "
    "model guesses uniformly, so its loss is about ln(V). Every `eval_interval` steps we estimate the loss on "
    "held-out validation text: when train loss keeps falling but validation loss rises, the model is memorising.",
    r"\mathcal{L} = -\frac{1}{N}\sum_{i} \log p_\theta(x_{i+1} \mid x_{\le i}), \qquad \mathcal{L}_0 \approx \ln V",
)
hp = form_values()
presenter = choices.presenter()
running = state.scheduler().current_run_for(identity.user()) is not None  # queued or training: settings fold away
pick_preset(hp)
share_link(hyperparameters(hp, folded=running, presenter=presenter), hp)
choices.save()  # the hyperparameters above are edited in place
rules = challenge_entry()
form_config, config_error = sizes_and_limits(hp, rules)
followed = followed_run()
buttons(hp, followed, running, config_error, rules)
st.divider()
live_view(followed, chart_options(), presenter)
schedule_chart(followed, form_config, hp)
