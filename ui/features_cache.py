"""The Features page's glue: the server's SAE jobs, and what the page reads from a stored SAE (the browser's data,
steered texts, the SAELens export) computed once per SAE file and shared by every session; plus the few pieces of
HTML and text the page draws from them.

Every cache is keyed by the SAE's file time as well as its name, so an SAE trained again (the same settings, new
weights) is read again, and one that did not change is never read twice."""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.features import browser, steering
from babygpt.features.metrics import DENSE_FREQUENCY, SAEFigures
from babygpt.features.over_training import HISTORY_TOKENS, FeatureHistory, history_over_checkpoints
from babygpt.features.sae import SAEConfig, TopKSAE
from babygpt.features.saelens import export_saelens
from babygpt.orchestration.plan import encode_corpus
from babygpt.plain_text import html_literal
from babygpt.server.sae_jobs import SAEJobs, SAEJobStatus
from babygpt.store import features as stored_features
from babygpt.store.corpora import run_corpus
from babygpt.store.kept import kept_checkpoints, kept_models
from babygpt.training.sample import SamplingConfig
from ui import run_cache
from ui.state import scheduler, store

ACTIVE_STATES = ("queued", "starting", "running")  # a job that has not ended
HISTORIES_KEPT = 2  # features-over-training results kept (each is F × kept steps numbers, but costly to make)


@st.cache_resource
def sae_jobs() -> SAEJobs:
    """One SAE queue per server, beside its scheduler: every session sees the same jobs."""
    return SAEJobs(scheduler())


def jobs_on_run(run_id: str) -> list[SAEJobStatus]:
    """The run's SAE jobs that have not ended (anyone's), read from the job files beside its SAEs."""
    root = stored_features.features_dir(store(), run_id)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if not (folder / stored_features.JOB_FILE).is_file():
            continue
        try:
            status = sae_jobs().status(f"{run_id}/{folder.name}")
        except BabyGPTError:
            continue
        if status.state in ACTIVE_STATES:
            found.append(status)
    return found


def last_job(run_id: str, config: SAEConfig) -> SAEJobStatus | None:
    """The job of these settings on this run, running or ended, if there was one."""
    try:
        return sae_jobs().status(SAEJobs.key(run_id, config))
    except BabyGPTError:
        return None


def job_line(status: SAEJobStatus) -> tuple[float, str]:
    """A job's progress bar: its fraction and one line (queue position, stage, step, reconstruction error)."""
    if status.state == "queued":
        return 0.0, f"{status.name}: waiting, position {status.queue_position or '?'} in the SAE queue"
    fraction = status.step / status.steps if status.steps else 0.0
    text = f"{status.name}: {status.stage or status.state}"
    if status.steps and status.stage == "training":  # other stages say their own batch (``fit.batches``)
        text += f" · step {status.step:,}/{status.steps:,}"
    if status.nmse is not None:
        text += f" · normalized error {status.nmse:.3f}"
    if status.dead is not None:
        text += f" · {status.dead:,} dead"
    return min(1.0, fraction), text


def _file_time(kept: stored_features.StoredSAE) -> int:
    return (kept.folder / stored_features.WEIGHTS_FILE).stat().st_mtime_ns


def sae_of(run_id: str, name: str) -> tuple[stored_features.StoredSAE, TopKSAE, int]:
    """A stored SAE, its module and its file time (the key of every cache below)."""
    kept = stored_features.get(store(), run_id, name)
    sae, _ = kept.load()
    return kept, sae, _file_time(kept)


def browser_data(run_id: str, name: str) -> browser.BrowserData:
    """What the feature browser lists for one SAE, computed once per SAE file."""
    kept, _, version = sae_of(run_id, name)
    return _browser_data(run_id, name, version, store().weights_version(run_id) or 0.0)


@st.cache_resource(max_entries=4, show_spinner="Reading every feature on the held-out text…")
def _browser_data(run_id: str, name: str, version: int, weights_version: float) -> browser.BrowserData:
    kept = stored_features.get(store(), run_id, name)
    sae, windows = kept.load()
    loaded = run_cache.load_run(run_id)
    return browser.browser_data(loaded.model, sae, windows, loaded.tokenizer)


def on_prompt(run_id: str, name: str, prompt: str) -> browser.PromptFeatures:
    kept, _, version = sae_of(run_id, name)
    return _on_prompt(run_id, name, version, store().weights_version(run_id) or 0.0, prompt)


@st.cache_data(max_entries=16, show_spinner=False)
def _on_prompt(run_id: str, name: str, version: int, weights_version: float, prompt: str) -> browser.PromptFeatures:
    _, sae, _ = sae_of(run_id, name)
    loaded = run_cache.load_run(run_id)
    return browser.features_on_prompt(loaded.model, sae, loaded.tokenizer, prompt)


def steered(run_id: str, name: str, feature: int, strength: float, prompt: str, seed: int,
            new_tokens: int) -> steering.SteeredText:
    """The two texts, with and without the feature, from one seed; written once per SAE file and choice."""
    _, _, version = sae_of(run_id, name)
    return _steered(run_id, name, version, store().weights_version(run_id) or 0.0, feature, strength, prompt, seed,
                    new_tokens)


@st.cache_data(max_entries=32, show_spinner="Writing with and without the feature…")
def _steered(run_id: str, name: str, version: int, weights_version: float, feature: int, strength: float, prompt: str,
             seed: int, new_tokens: int) -> steering.SteeredText:
    _, sae, _ = sae_of(run_id, name)
    loaded = run_cache.load_run(run_id)
    return steering.steer(loaded.model, loaded.tokenizer, sae, feature, strength, prompt,
                          SamplingConfig(max_new_tokens=new_tokens, seed=seed))


def kept_steps(run_id: str) -> list[int]:
    """The steps at which the run kept a copy of its weights (its ``keep_checkpoints`` setting)."""
    return [k.step for k in kept_checkpoints(store(), run_id)]


def history_tokens(kept: stored_features.StoredSAE) -> int:
    """What each earlier SAE trains on: the final SAE's own count, bounded for a shared server."""
    return min(kept.trained_tokens or HISTORY_TOKENS, HISTORY_TOKENS)


def feature_history(run_id: str, name: str,
                    on_checkpoint: Callable[[int, int, int], None] | None = None) -> FeatureHistory:
    """The final SAE's live features matched against an SAE trained on each kept checkpoint, computed once per SAE
    file and set of kept steps and shared by every session; ``on_checkpoint(step, i, n)`` hears each checkpoint
    before its SAE trains (only when it is computed). Kept in a plain dict rather than ``st.cache_resource`` on
    the function, because Streamlit would record the page's progress calls inside it and replay them later."""
    kept, _, version = sae_of(run_id, name)
    key = (run_id, name, version, tuple(kept_steps(run_id)), history_tokens(kept))
    cache, lock = _history_cache()
    with lock:  # one computation per key, even when two students press Match at once
        if key not in cache:
            cache[key] = _compute_history(run_id, name, history_tokens(kept), on_checkpoint)
            while len(cache) > HISTORIES_KEPT:
                cache.pop(next(iter(cache)))
        return cache[key]


def checkpoint_line(step: int, i: int, n: int) -> str:
    """What the page says while the SAE of one kept checkpoint trains."""
    return f"Training the SAE on step {step:,} ({i} of {n})…"


@st.cache_resource
def _history_cache() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def _compute_history(run_id: str, name: str, tokens: int,
                     on_checkpoint: Callable[[int, int, int], None] | None) -> FeatureHistory:
    kept = stored_features.get(store(), run_id, name)
    sae, _ = kept.load()
    loaded = run_cache.load_run(run_id)
    ids = encode_corpus(run_corpus(store(), loaded.info), loaded.tokenizer)
    live = browser_data(run_id, name).table.frequency > 0  # dead features learned nothing: left out
    return history_over_checkpoints(sae, kept_models(store(), run_id), ids, tokens=tokens, live=live,
                                    on_checkpoint=on_checkpoint)


def saelens_zip(run_id: str, name: str) -> bytes:
    """The SAE as SAELens's folder (``cfg.json``, ``sae_weights.safetensors``) in a zip, made once per SAE file."""
    _, _, version = sae_of(run_id, name)
    return _saelens_zip(run_id, name, version)


@st.cache_data(max_entries=4, show_spinner="Writing the SAELens folder…")
def _saelens_zip(run_id: str, name: str, version: int) -> bytes:
    _, sae, _ = sae_of(run_id, name)
    info = store().get(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_saelens(sae, Path(tmp) / name, f"babygpt/{info.label}", info.record.model.block_size)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, f"{name}/{path.name}")
    return buffer.getvalue()


# --- what the page draws ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FigureRow:
    label: str
    value: str
    explanation: str


def figure_rows(figures: SAEFigures) -> list[FigureRow]:
    """The SAE's figures as the page shows them, each with one sentence that says what it means."""
    rows = [
        FigureRow("Variance explained", f"{figures.variance_explained:.3f}",
                  "The share of the layer's spread the reconstruction keeps: 1 is a perfect copy, 0 no better than "
                  "always writing the average activation."),
        FigureRow("L0 (features per token)", f"{figures.l0:.1f}",
                  "How many features fire on a token, on average: a sparse reading has few (TopK allows at most k)."),
        FigureRow("Dead features", f"{figures.dead:,} of {figures.n_features:,}",
                  "Features that fired on none of the held-out tokens: dictionary entries that learned nothing."),
        FigureRow("Dense features", f"{figures.dense:,} of {figures.n_features:,}",
                  f"Features firing on more than {DENSE_FREQUENCY:.0%} of tokens: too common to mean one thing."),
    ]
    if figures.loss_recovered is not None:
        rows.append(FigureRow(
            "Loss recovered", f"{figures.loss_recovered:.3f}",
            f"With the reconstruction in place of the layer the model's loss is {figures.loss_with_sae:.3f} nats, "
            f"between {figures.loss_zero_ablated:.3f} with the layer zeroed and {figures.loss_intact:.3f} intact: "
            "1 means the SAE loses nothing the model uses, 0 it is as bad as removing the layer."))
    return rows


def feature_choice(data: browser.BrowserData, feature: int) -> str:
    """A feature in a picker: its number, label and how often it fires."""
    return (f"#{feature} · {data.labels[feature]} · fires on {float(data.table.frequency[feature]):.2%} of tokens")


def passage_html(passage: browser.Passage, peak: float) -> str:
    """One top passage, each token shaded by the feature's strength there (darkest at the feature's peak ``peak``),
    the peak token underlined; the text is the user's, escaped, and hovering a token shows its strength."""
    spans = []
    for i, token in enumerate(passage.tokens):
        alpha = min(1.0, token.strength / peak) if peak > 0 and token.strength > 0 else 0.0
        shown = html_literal(token.text).replace("\n", "↵").replace(" ", "&nbsp;") or "∅"
        underline = "text-decoration:underline 2px;" if i == passage.peak else ""
        spans.append(f'<span title="strength {token.strength:.2f}" style="background:rgba(234,88,12,{alpha:.2f});'
                     f'{underline}border-radius:2px">{shown}</span>')
    return ('<div style="font-family:monospace;font-size:15px;line-height:1.8;word-break:break-all;'
            f'margin-bottom:6px">{"".join(spans)}</div>')
