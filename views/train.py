"""Model & training: choose a rung of the ladder and its hyperparameters, train, and watch it learn."""

import math

import streamlit as st

from babygpt.config import (
    DEFAULT_PRESET,
    DTYPES,
    INTERACTIVE_TRAIN,
    PRESETS,
    ModelConfig,
    TrainConfig,
    model_config_for_preset,
)
from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import bits_per_char
from babygpt.lessons.counterfactuals import BY_KEY, COUNTERFACTUALS, active, switches_for
from babygpt.lessons.links import LESSON_TABS, make_link
from babygpt.lessons.viz import loss_figure, lr_figure
from babygpt.model.sizing import flops_per_token, parameter_count
from babygpt.server.scheduler import JobSnapshot
from babygpt.store.pipeline import plan_training
from babygpt.store.runs import RunInfo
from babygpt.text import datasets
from babygpt.training.devices import auto_dtype, available_devices
from babygpt.training.trainer import lr_at
from ui import state
from ui.widgets import explain, progress_text

ERROR_KEY = "train_error"
SAMPLE_REFRESH_S = 5.0
# the settings this form shows; their defaults are the library's (INTERACTIVE_TRAIN says why they are shorter)
FORM_MODEL = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "positional")
FORM_TRAIN = ("batch_size", "max_iters", "lr", "min_lr", "warmup_iters", "eval_interval", "eval_iters",
              "weight_decay", "grad_clip", "seed", "device", "dtype")
DEFAULTS = {"preset": DEFAULT_PRESET, **{k: getattr(ModelConfig(), k) for k in FORM_MODEL},
            **{k: getattr(TrainConfig(**INTERACTIVE_TRAIN), k) for k in FORM_TRAIN}}

st.title("Model & training")
explain(
    "How training works",
    "Each **step** takes `batch_size` random windows of `block_size` tokens, asks the model to predict every next "
    "token, measures the **cross-entropy loss** and nudges all weights downhill with AdamW. Before training the "
    "model guesses uniformly, so its loss is about ln(V). Every `eval_interval` steps we estimate the loss on "
    "held-out validation text: when train loss keeps falling but validation loss rises, the model is memorising.",
    r"\mathcal{L} = -\frac{1}{N}\sum_{i} \log p_\theta(x_{i+1} \mid x_{\le i}), \qquad \mathcal{L}_0 \approx \ln V",
)

hp = st.session_state.setdefault(state.HPARAMS, {})
for name, value in DEFAULTS.items():  # what a link or an older saved state did not set
    hp.setdefault(name, value)
presenter = state.presenter()
scheduler = state.scheduler()
flags = state.page_flags()
running = scheduler.current_run_for(state.user()) is not None  # queued or training: settings fold away

preset = st.selectbox("Preset (rung of the ladder)", list(PRESETS), index=list(PRESETS).index(hp["preset"]),
                      key="hp_preset", help="Each rung adds one idea of the Transformer to the one before.")
hp["preset"] = preset
st.info(f"**{preset}** — {PRESETS[preset]}")

settings = st.expander("Hyperparameters", expanded=not running)
model_col, train_col = settings.columns(2)
with model_col:
    st.markdown("**Model**")
    hp["n_layer"] = st.slider("n_layer", 1, 8, hp["n_layer"], key="hp_n_layer",
                              help="Number of Transformer blocks stacked (residual and gpt presets). Usual: 2–6 on a CPU.")
    hp["n_head"] = st.select_slider("n_head", [1, 2, 3, 4, 6, 8], hp["n_head"], key="hp_n_head",
                                    help="Attention heads per block; each gets n_embd / n_head dimensions.")
    hp["n_embd"] = st.select_slider("n_embd", [16, 32, 48, 64, 96, 128, 192, 256, 384], hp["n_embd"], key="hp_n_embd",
                                    help="Width of every token's vector. Must be divisible by n_head. Usual: 64–384.")
    hp["block_size"] = st.select_slider("block_size (context)", [8, 16, 32, 64, 128, 256], hp["block_size"],
                                        key="hp_block_size",
                                        help="How many previous tokens the model can look at. Attention cost grows as its square.")
    if not presenter:
        hp["dropout"] = st.slider("dropout", 0.0, 0.5, hp["dropout"], 0.05, key="hp_dropout",
                                  help="Randomly zero activations while training (gpt preset) to fight overfitting. 0–0.2.")
        hp["positional"] = st.radio("Positional encoding", ["learned", "sinusoidal"],
                                    index=["learned", "sinusoidal"].index(hp["positional"]), horizontal=True,
                                    key="hp_positional", help="Learned: a trained vector per position. Sinusoidal: fixed waves.")
with train_col:
    st.markdown("**Training**")
    hp["max_iters"] = st.number_input("max_iters", 10, 100_000, hp["max_iters"], 100, key="hp_max_iters",
                                      help="Total optimisation steps. 1000 steps of the default model take about a minute.")
    hp["batch_size"] = st.slider("batch_size", 1, 128, hp["batch_size"], key="hp_batch_size",
                                 help="Windows per step. Larger = smoother gradients, slower steps. Usual: 8–64.")
    hp["lr"] = st.number_input("learning rate", 1e-5, 1.0, hp["lr"], format="%.0e", key="hp_lr",
                               help="Peak AdamW step size. 1e-3 suits small models; too high and the loss explodes.")
    hp["eval_interval"] = st.number_input("eval_interval", 1, 100_000, hp["eval_interval"], key="hp_eval_interval",
                                          help="Steps between validation estimates (and checkpoints).")
    if not presenter:
        hp["min_lr"] = st.number_input("min lr", 0.0, 1.0, hp["min_lr"], format="%.0e", key="hp_min_lr",
                                       help="Where the cosine decay ends; usually lr / 10.")
        hp["warmup_iters"] = st.number_input("warmup_iters", 0, 10_000, hp["warmup_iters"], key="hp_warmup",
                                             help="Steps of linear warm-up from 0 to lr, so early noisy gradients do no harm.")
        hp["eval_iters"] = st.number_input("eval_iters", 1, 500, hp["eval_iters"], key="hp_eval_iters",
                                           help="Batches averaged per loss estimate: more = less noisy, slower.")
        with st.expander("Advanced"):
            hp["weight_decay"] = st.number_input("weight_decay", 0.0, 1.0, hp["weight_decay"], key="hp_wd",
                                                 help="AdamW decay on weight matrices only. Usual: 0.1.")
            hp["grad_clip"] = st.number_input("grad_clip", 0.0, 10.0, hp["grad_clip"], key="hp_clip",
                                              help="Clip the gradient norm to this (0 = off); guards against spikes.")
            hp["seed"] = st.number_input("seed", 0, 2**31 - 1, hp["seed"], key="hp_seed",
                                         help="Same seed + same settings + same data = the same curve.")
            devices = ["auto", *available_devices()]
            hp["device"] = st.selectbox("device", devices, index=devices.index(hp["device"]) if hp["device"] in devices else 0,
                                        key="hp_device", help="auto picks CUDA, then Apple MPS, then the CPU.")
            hp["dtype"] = st.selectbox("dtype", list(DTYPES), index=list(DTYPES).index(hp["dtype"]), key="hp_dtype",
                                       help="auto: bfloat16 mixed precision where it measures faster than float32 "
                                            f"on this CPU, or on a GPU that has it (here: {auto_dtype()}). "
                                            "float16 needs a GPU.")

if not presenter:
    with settings:
        broken = st.multiselect(
            "Break one idea (counterfactual)", [c.key for c in COUNTERFACTUALS], hp.get("counterfactuals", []),
            format_func=lambda k: BY_KEY[k].label, key="hp_counterfactuals",
            help="Train with one idea of the Transformer switched off, to see what it was for.")
        hp["counterfactuals"] = broken
        for key in broken:
            st.caption(f"**{BY_KEY[key].label}.** {BY_KEY[key].explanation}")

with settings.popover("Share these settings as a link"):
    lesson = st.selectbox("Open on the Lessons tab", [None, *LESSON_TABS], key="share_lesson",
                          format_func=lambda k: "— (this page)" if k is None else LESSON_TABS[k])
    corpus_name = state.corpus().source if state.corpus().source in datasets.registry() else None
    st.code(make_link(st.context.url or "", {**hp, "corpus": corpus_name, "tokenizer": state.tokenizer_kind(),
                                               "lesson": lesson}), language=None, wrap_lines=True)
    st.caption("Whoever opens it gets these settings (and the text, if it is a bundled or downloaded one; an "
               "upload cannot travel in a link). It never carries your user key.")

state.save()  # the hyperparameters above are edited in place


def model_settings() -> dict:
    """The form's sizes and any counterfactual switches, as plan_training takes them."""
    return {**{k: hp[k] for k in FORM_MODEL}, **switches_for(hp.get("counterfactuals", []))}


def configs() -> tuple:
    tokenizer = state.current_tokenizer()
    model_cfg = model_config_for_preset(hp["preset"], vocab_size=tokenizer.vocab_size, **model_settings())
    train_cfg = TrainConfig(**{k: hp[k] for k in FORM_TRAIN}, val_fraction=state.val_fraction(),
                            log_interval=5, sample_tokens=120).validate()
    return model_cfg, train_cfg


try:
    model_cfg, train_cfg = configs()
    c1, c2, c3, c4 = st.columns(4)  # sizes by arithmetic on the config: nothing is allocated on a rerun
    c1.metric("Parameters", f"{parameter_count(model_cfg):,}")
    c2.metric("FLOPs per token (train)", f"{flops_per_token(model_cfg) / 1e6:.2f} M")
    c3.metric("Expected initial loss ln(V)", f"{math.log(model_cfg.vocab_size):.3f}")
    c4.metric("Tokens per step", f"{train_cfg.batch_size * model_cfg.block_size:,}")
    state.scheduler().limits.check(model_cfg, train_cfg.batch_size)  # too big for this server: say so now
    config_error = None
except BabyGPTError as exc:
    config_error = str(exc)
    st.error(config_error)


def start_training() -> None:
    flags[ERROR_KEY] = None
    try:
        model_cfg, train_cfg = configs()
        plan = plan_training(state.corpus(), state.tokenizer_kind(), hp["preset"], train_cfg, **model_settings())
        info = scheduler.submit(state.user(), plan, name=f"{hp['preset']} on {state.corpus().name}")
        state.set_active_run(info.id)
    except BabyGPTError as exc:
        flags[ERROR_KEY] = str(exc)


def stop_training(run_id: str) -> None:
    flags[ERROR_KEY] = None
    try:
        scheduler.stop(state.actor(), run_id)
    except BabyGPTError as exc:
        flags[ERROR_KEY] = str(exc)


def resume_training(run_id: str) -> None:
    flags[ERROR_KEY] = None
    try:
        scheduler.resume(state.actor(), run_id, state.corpus(), max_iters=int(hp["max_iters"]))
        state.set_active_run(run_id)
    except BabyGPTError as exc:
        flags[ERROR_KEY] = str(exc)


def resume_blocker(info: RunInfo | None) -> str | None:
    """Why Resume is off for the active run, in words (None: it can resume)."""
    if info is None:
        return "No run to resume: start one first."
    if not state.actor().admin and info.owner != state.user():
        return "This run is not yours: only its owner (or the teacher) can resume it."
    if info.status not in ("stopped", "interrupted", "done", "failed"):
        return f"The run is {info.status}."
    if info.status == "done" and int(hp["max_iters"]) <= TrainConfig.from_dict(info.config["train"]).max_iters:
        return (f"The run finished its {info.config['train']['max_iters']} steps: raise max_iters above that "
                "to train it longer.")
    return None


followed = None  # the run this page shows: the user's training or queued run, else the active run
try:
    followed = state.store().get(scheduler.current_run_for(state.user()) or state.active_run_id() or "-")
except BabyGPTError:
    pass
busy = followed is not None and followed.status in ("queued", "starting", "running")
is_mine = followed is not None and (followed.owner == state.user() or state.actor().admin)
b1, b2, b3 = st.columns(3)
b1.button("Start training", type="primary", on_click=start_training, disabled=running or bool(config_error),
          key="start", help="Train a new run with these settings (it waits in the queue when the server is full).",
          width="stretch")
queued = followed is not None and followed.status == "queued"
b2.button("Cancel" if queued else "Stop", on_click=stop_training, args=(followed.id if followed else "",),
          disabled=not (busy and is_mine), key="stop", width="stretch",
          help="Take it off the queue." if queued else
          "Stop after the current step; the checkpoint is kept and the run can be resumed.")
blocker = resume_blocker(None if busy else followed)
b3.button("Resume", disabled=blocker is not None, key="resume", width="stretch",
          on_click=resume_training, args=(followed.id if followed else "",),
          help=blocker or "Continue the active run from its last checkpoint up to max_iters.")
if flags.get(ERROR_KEY):
    st.error(flags[ERROR_KEY])

st.divider()
o1, o2, o3 = st.columns(3)
log_y = o1.toggle("Log-scale loss", key="opt_log_y")
smoothing = o2.slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key="opt_smoothing",
                      help="Exponential moving average of the per-step training loss.")
x_axis = o3.radio("x axis", ["step", "time"], horizontal=True, key="opt_x_axis")


def draw(snap: JobSnapshot) -> None:
    st.progress(snap.progress, text=f"{snap.label}: {progress_text(snap)}")
    for broken in active(state.store().get(snap.run_id).config["model"]):
        st.warning(f"**Trained with: {broken.label.lower()}.** {broken.explanation}")
    if snap.status in ("failed", "interrupted") and snap.message:
        st.error(snap.message)
    elif snap.message:
        st.info(snap.message)
    if snap.status == "queued":
        st.info("The server is training as many jobs as it has cores for; yours starts by itself when a slot "
                "frees. You can leave this page or reload it.")
    evals = snap.evals
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Step", f"{snap.step}/{snap.max_iters}")
    m2.metric("Tokens/s", f"{snap.tokens_per_sec:,.0f}" if snap.training else "–")
    val = evals[-1]["val_loss"] if evals else None
    bpc = f" · {bits_per_char(val, snap.baselines.chars_per_token):.2f} bits/char" if val and snap.baselines else ""
    m3.metric("Val loss", f"{val:.4f}{bpc}" if val else "–",
              help="Cross-entropy in nats per token; bits per character compare runs with different tokenizers.")
    m4.metric("Device", snap.device.replace(" (", " · ").rstrip(")") + f" · {snap.dtype}",
              help="Where the job trains; on the CPU, the threads the scheduler gives it.")
    levels = snap.baselines.levels() if snap.baselines else {"uniform guess (ln V)": math.log(snap.vocab_size)}
    st.plotly_chart(loss_figure(snap.train, evals, log_y=log_y, smoothing=smoothing, x_axis=x_axis, levels=levels),
                    key="loss_chart", config={"displayModeBar": False})
    if snap.baselines:
        st.caption("Dashed lines: what simple predictors score on the same validation text — guessing uniformly, "
                   "token frequencies (unigram) and how often each token followed the previous one (bigram "
                   "counts). A model that does not go below the bigram line has not learned to use context.")


def draw_samples(samples: list[tuple[int, str]]) -> None:
    if samples:
        step, text = samples[-1]
        st.markdown(f"**What it writes at step {step}:**")
        st.code(text, language=None, wrap_lines=True)
        if len(samples) > 1 and not presenter:
            with st.expander("Earlier samples"):
                for s, t in reversed(samples[:-1]):
                    st.markdown(f"*step {s}*")
                    st.code(t, language=None, wrap_lines=True)


def followed_run_id() -> str | None:
    return scheduler.current_run_for(state.user()) or state.active_run_id()


@st.fragment(run_every=1.0 if busy else None)
def live_view() -> None:
    run_id = followed_run_id()
    if run_id is None:
        st.caption("Press **Start training** to train the model above on the current corpus.")
        return
    try:
        snap = scheduler.snapshot(run_id)
    except BabyGPTError:
        st.caption("Press **Start training** to train the model above on the current corpus.")
        return
    draw(snap)
    if busy and (not snap.active or (snap.status == "queued") != queued):
        st.rerun()  # it left the queue or ended: relabel the buttons, stop the timer when it ended


# Samples come once per evaluation: a slower timer of their own keeps the per-second view small (every element
# redrawn each second costs the server and, more, each student's browser).
@st.fragment(run_every=SAMPLE_REFRESH_S if busy else None)
def samples_view() -> None:
    run_id = followed_run_id()
    if run_id is not None:
        draw_samples(state.store().samples(run_id))


live_view()
samples_view()


def schedule_config() -> TrainConfig | None:
    """The schedule to show: the followed run's, else the settings above."""
    if followed is not None:
        return TrainConfig.from_dict(followed.config["train"])
    return None if config_error else train_cfg


# Drawn once per page run, outside the live fragment: the schedule does not change while training.
schedule = schedule_config()
if schedule is not None:
    steps = list(range(0, schedule.max_iters + 1, max(1, schedule.max_iters // 200)))
    st.plotly_chart(lr_figure(steps, [lr_at(s, schedule) for s in steps]), key="lr_chart")
