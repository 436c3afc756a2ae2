"""From a corpus and settings to a running Trainer recorded in the run store.

The CLI and the app's background jobs both start and resume runs through these functions,
so a run trained in the browser and one trained in a terminal are the same thing on disk.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from babygpt.config import ModelConfig, TrainConfig, model_config_for_preset
from babygpt.errors import BabyGPTError, out_of_memory_message
from babygpt.lessons.baselines import Baselines, compute_baselines
from babygpt.lessons.counterfactuals import Finding, active, measure
from babygpt.model.gpt import LanguageModel
from babygpt.status import RunStatus
from babygpt.store.checkpoints import atomic_write_bytes
from babygpt.store.quota import DiskQuota
from babygpt.store.runs import (
    UPLOADS_DIR,
    LoadedRun,
    MetricRow,
    RunInfo,
    RunStore,
    build_config_document,
    parse_config_document,
)
from babygpt.text.corpus import Corpus, Split, corpus_from_path, split_ids
from babygpt.text.datasets import load_corpus, registry
from babygpt.text.tokenizers import Tokenizer, build_tokenizer
from babygpt.training import devices, distributed
from babygpt.training.sample import SamplingConfig, generate
from babygpt.training.trainer import Callbacks, EvalMetrics, StepMetrics, Trainer, TrainResult, is_out_of_memory

LOCAL = "local"  # where a run trains when no cluster is involved; on a Ray cluster it is "ray:<node id>"


@dataclass
class TrainingPlan:
    corpus: Corpus
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig
    split: Split
    baselines: Baselines | None = None  # computed when the run is created, unless plans sharing a split did


def plan_baselines(plan: TrainingPlan) -> Baselines:
    """The levels to beat on the plan's validation split (one pass over the text; plans may share it)."""
    if plan.baselines is None:
        val_chars = len(plan.tokenizer.decode(plan.split.val.tolist()))
        plan.baselines = compute_baselines(plan.split.train, plan.split.val, plan.model_config.vocab_size, val_chars)
    return plan.baselines


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer) -> torch.Tensor:
    return torch.tensor(tokenizer.encode(corpus.text), dtype=torch.long)


def plan_training(corpus: Corpus, tokenizer_kind: str, preset: str, train_config: TrainConfig,
                  **sizes: Any) -> TrainingPlan:
    """Validate everything (configs, tokenizer, text length) before a run folder exists."""
    train_config = train_config.validate()
    probe = model_config_for_preset(preset, **sizes)  # size errors before a slow tokenisation
    device = devices.resolve_device(train_config.device)
    devices.check_dtype(device, train_config.dtype)
    tokenizer = build_tokenizer(tokenizer_kind, corpus.text)
    model_config = dataclasses.replace(probe, vocab_size=tokenizer.vocab_size).validate()
    split = split_ids(encode_corpus(corpus, tokenizer), train_config.val_fraction, model_config.block_size)
    return TrainingPlan(corpus, tokenizer, model_config, train_config, split)


def make_sample_fn(tokenizer: Tokenizer, n_tokens: int):
    """A fixed-seed sample at each evaluation, so people see the same prompt learn to write (None: no samples)."""
    if not n_tokens:
        return None
    cfg = SamplingConfig(max_new_tokens=n_tokens, temperature=0.8, seed=0)

    def sample(model: LanguageModel) -> str:
        return generate(model, tokenizer, "", cfg)

    return sample


PROBE_TOKENS = 24  # the probe prompt's length: its attention at every evaluation is a few KB


def probe_prompt(tokenizer: Tokenizer, split: Split, block_size: int) -> tuple[list[int], list[str]]:
    """A fixed prompt whose attention is recorded at every evaluation: the start of the validation split."""
    ids = split.val[: min(PROBE_TOKENS, block_size)].tolist()
    return ids, [tokenizer.token_text(i) for i in ids]


class RunRecorder(Callbacks):
    """Writes a trainer's metrics, checkpoints and final status into the run store (rank 0 only gets one),
    and the probe prompt's attention at every evaluation, so the Attention page can show the heads forming."""

    def __init__(self, store: RunStore, run_id: str, probe: tuple[list[int], list[str]] | None = None):
        self.store, self.run_id = store, run_id
        self.probe = probe

    def on_step(self, trainer: Trainer, m: StepMetrics) -> None:
        self.store.log_metrics(self.run_id, [MetricRow(m.step, "train", m.loss, m.lr, m.tokens_per_sec, m.elapsed_s)])

    def on_eval(self, trainer: Trainer, m: EvalMetrics) -> None:
        self.store.log_metrics(self.run_id, [
            MetricRow(m.step, "train_eval", m.train_loss, None, None, m.elapsed_s),
            MetricRow(m.step, "val", m.val_loss, None, None, m.elapsed_s),
        ])
        if m.sample is not None:
            self.store.log_sample(self.run_id, m.step, m.sample)
        if self.probe and trainer.model_config.use_attention:
            self.store.log_attention(self.run_id, m.step, self.probe[1], probe_attention(trainer.model, self.probe[0]))

    def on_checkpoint(self, trainer: Trainer) -> None:
        try:
            self.store.save_checkpoint(self.run_id, trainer.model, trainer.state_dict())
        except OSError as exc:
            raise BabyGPTError(
                f"Could not write the checkpoint of run {self.run_id} ({exc.strerror or exc}); the previous "
                "checkpoint is intact. Free disk space or set BABYGPT_HOME to a writable folder, then resume."
            ) from exc

    def on_done(self, trainer: Trainer, result: TrainResult) -> None:
        self.store.set_status(self.run_id, result.status)

    def on_failed(self, trainer: Trainer, message: str) -> None:
        self.store.set_status(self.run_id, RunStatus.FAILED, message)

    def on_notice(self, trainer: Trainer, message: str) -> None:
        self.store.set_message(self.run_id, message)


@torch.no_grad()
def probe_attention(model: LanguageModel, ids: list[int]) -> np.ndarray:
    """(n_layer, n_head, T, T) softmax weights of the probe prompt, in evaluation mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    _, maps = model.forward_with_attention(torch.tensor([ids], device=device))
    model.train(was_training)
    return np.stack([m.weights[0].float().cpu().numpy() for m in maps])


def check_same_corpus(info: RunInfo, corpus: Corpus) -> None:
    """A run trains, resumes and evaluates only on the text it was created for (compared by sha256)."""
    if info.data_sha256 and corpus.sha256 != info.data_sha256:
        raise BabyGPTError(
            f"The text given differs from the one run {info.label} was trained on ({info.data_name}); "
            "choose that text again (Data page, or --data) to continue it."
        )


def check_can_queue(info: RunInfo) -> None:
    """A run is queued to train again only when no worker has it; with no checkpoint it starts from step 0."""
    if info.status.active:
        raise BabyGPTError(f"Run {info.label} is already {info.status}.")


def create_run(store: RunStore, plan: TrainingPlan, name: str | None = None, owner: str | None = None,
               status: RunStatus = RunStatus.RUNNING, group_id: str | None = None) -> RunInfo:
    """Record a new run (folder, config.json, database row) from a validated plan."""
    baselines = plan_baselines(plan)
    data = {"name": plan.corpus.name, "source": plan.corpus.source, "sha256": plan.corpus.sha256,
            "n_chars": len(plan.corpus.text), "baselines": baselines.to_dict()}
    document = build_config_document(plan.model_config, plan.train_config, plan.tokenizer, data)
    return store.create_run(name, document, data_name=plan.corpus.source, data_sha256=plan.corpus.sha256,
                            status=status, owner=owner, group_id=group_id)


def persist_corpus(store: RunStore, corpus: Corpus, owner: str | None = None,
                   quota: DiskQuota | None = None) -> Corpus:
    """Give an uploaded text a file in the store (named by its sha256) so a worker process, a resume or the
    CLI can read it again; named datasets and files on disk are used where they are. An app user's upload
    counts towards their disk quota."""
    if corpus.source in registry() or Path(corpus.source).is_file():
        return corpus
    n_bytes = len(corpus.text.encode("utf-8"))
    if owner is not None:
        store.release_uploads(owner, keep=corpus.sha256)
        if not store.has_upload(owner, corpus.sha256):
            if quota is not None:
                quota.check(store, owner, n_bytes, f"Keeping {corpus.name}")
            store.record_upload(owner, corpus.sha256, n_bytes)
    folder = store.home / UPLOADS_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{corpus.sha256}.txt"
    if not path.is_file():
        atomic_write_bytes(path, corpus.text.encode("utf-8"))
    return Corpus(corpus.name, corpus.text, corpus.sha256, str(path.resolve()))


def trainer_for_run(store: RunStore, run_id: str, corpus: Corpus, callbacks: list[Callbacks] | tuple = (),
                    where: str = LOCAL) -> Trainer:
    """A Trainer for a recorded run that has not trained yet, rebuilt from its config.json alone."""
    info = store.get(run_id)
    model_config, train_config, tokenizer = parse_config_document(info.config)
    check_same_corpus(info, corpus)
    store.truncate_metrics(info.id, -1)  # a run restarted from step 0 after failing before its first checkpoint
    split = split_ids(encode_corpus(corpus, tokenizer), train_config.val_fraction, model_config.block_size)
    sample_fn = make_sample_fn(tokenizer, train_config.sample_tokens)
    recorder = RunRecorder(store, info.id, probe_prompt(tokenizer, split, model_config.block_size))
    trainer = Trainer(model_config, train_config, split, callbacks=[recorder, *callbacks], sample_fn=sample_fn)
    record_runtime(store, info.id, trainer, where)
    return trainer


def record_runtime(store: RunStore, run_id: str, trainer: Trainer, where: str = LOCAL) -> None:
    """Where and how the run trains, settled on the machine that trains it (``auto`` resolved), in its config for
    every view: ``where`` is ``local`` or ``ray:<node id>``."""
    document = dict(store.get(run_id).config)
    document["runtime"] = {"device": devices.describe(trainer.device), "dtype": trainer.dtype, "pid": os.getpid(),
                           "where": where}
    store.update_config(run_id, document)


def trainer_for_job(store: RunStore, run_id: str, corpus: Corpus, callbacks: list[Callbacks] | tuple = (),
                    where: str = LOCAL) -> Trainer:
    """What a job does when it picks up a run: continue from its checkpoint when it has one, else start at step 0.
    The same for a local worker process and a Ray actor, so a run trains the same wherever it lands."""
    if store.has_checkpoint(run_id):
        trainer, _ = resume_run(store, run_id, corpus, callbacks=callbacks, where=where)
    else:
        trainer = trainer_for_run(store, run_id, corpus, callbacks=callbacks, where=where)
        store.set_status(run_id, RunStatus.RUNNING)
    return trainer


def setup_failure_message(exc: BaseException) -> str | None:
    """The message a job records when building its trainer failed in a way the user can act on (a named error,
    no memory for the model); None for anything else, which is a bug and is raised."""
    if isinstance(exc, BabyGPTError):
        return str(exc)
    if is_out_of_memory(exc):
        return out_of_memory_message("while building the model")
    return None


def start_run(store: RunStore, plan: TrainingPlan, name: str | None = None,
              callbacks: list[Callbacks] | tuple = (),
              dist: distributed.DistInfo | None = None) -> tuple[Trainer, RunInfo | None]:
    """Create the run (on rank 0 only) and a Trainer recording into it; other ranks get no run."""
    dist = dist or distributed.DistInfo()
    if not dist.is_main:
        return Trainer(plan.model_config, plan.train_config, plan.split, callbacks=list(callbacks), dist=dist), None
    sample_fn = make_sample_fn(plan.tokenizer, plan.train_config.sample_tokens)
    info = create_run(store, plan, name)
    try:
        recorder = RunRecorder(store, info.id, probe_prompt(plan.tokenizer, plan.split, plan.model_config.block_size))
        trainer = Trainer(plan.model_config, plan.train_config, plan.split,
                          callbacks=[recorder, *callbacks], sample_fn=sample_fn, dist=dist)
    except BabyGPTError as exc:
        store.set_status(info.id, RunStatus.FAILED, str(exc))
        raise
    record_runtime(store, info.id, trainer)
    return trainer, store.get(info.id)


def resume_run(store: RunStore, run_id: str, corpus: Corpus, callbacks: list[Callbacks] | tuple = (),
               dist: distributed.DistInfo | None = None, where: str = LOCAL,
               **train_overrides: Any) -> tuple[Trainer, RunInfo]:
    """Continue a run from its last checkpoint on the same data; ``max_iters`` may be raised.
    Every rank reads the checkpoint; only rank 0 writes to the store."""
    dist = dist or distributed.DistInfo()
    info = store.get(run_id)
    if info.status is RunStatus.RUNNING and not store.has_checkpoint(info.id):
        raise BabyGPTError(f"Run {info.id} has no checkpoint to resume from yet.")
    document = dict(info.config)
    model_config, train_config, tokenizer = parse_config_document(document)
    check_same_corpus(info, corpus)
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    if overrides:
        train_config = dataclasses.replace(train_config, **overrides).validate()
        document["train"] = train_config.to_dict()
        if dist.is_main:
            store.update_config(info.id, document)
    loaded = store.load(info.id)
    state = store.load_trainer_state(info.id)
    split = split_ids(encode_corpus(corpus, tokenizer), train_config.val_fraction, model_config.block_size)
    sample_fn = make_sample_fn(tokenizer, train_config.sample_tokens)
    probe = probe_prompt(tokenizer, split, model_config.block_size)
    recorder = [RunRecorder(store, info.id, probe)] if dist.is_main else []
    trainer = Trainer(model_config, train_config, split, callbacks=[*recorder, *callbacks], sample_fn=sample_fn,
                      model_state=loaded.model.state_dict(), trainer_state=state, dist=dist)
    if dist.is_main:
        store.truncate_metrics(info.id, int(state["step"]))
        store.set_status(info.id, RunStatus.RUNNING)
        record_runtime(store, info.id, trainer, where)
    return trainer, store.get(info.id)


def run_corpus(store: RunStore, info: RunInfo) -> Corpus:
    """The text a recorded run trained on, found on this server: a shipped dataset by name, a file on disk (runs
    from the command line), or an uploaded text kept in the store under its sha256 (an imported run finds its
    text there once someone on this server has uploaded the same text)."""
    data = info.config.get("data", {})
    source, sha256 = str(data.get("source", "")), data.get("sha256") or info.data_sha256
    if source in registry() or (source and Path(source).is_file()):
        return load_corpus(source)
    kept = store.home / UPLOADS_DIR / f"{sha256}.txt"
    if sha256 and kept.is_file():
        corpus = corpus_from_path(kept)
        return Corpus(data.get("name") or corpus.name, corpus.text, corpus.sha256, str(kept))
    raise BabyGPTError(f"The text run {info.label} trained on ({data.get('name') or source}) is not on this server; "
                       "upload it on the Data page (the same file), then resume.")


def portable_source(data: dict[str, Any]) -> str:
    """Where a run's text came from, as an export may carry it: a shipped dataset's name, else the text's own
    name, never a path of the server that trained it."""
    source = str(data.get("source", ""))
    return source if source in registry() else str(data.get("name") or Path(source).name)


def run_split(store: RunStore, loaded: LoadedRun) -> Split:
    """The training/validation split a recorded run trained on, rebuilt from its text and its config."""
    corpus = run_corpus(store, loaded.info)
    check_same_corpus(loaded.info, corpus)
    return split_ids(encode_corpus(corpus, loaded.tokenizer), loaded.train_config.val_fraction,
                     loaded.model_config.block_size)


def counterfactual_findings(store: RunStore, loaded: LoadedRun, step: int,
                            val_ids: torch.Tensor | None = None) -> list[Finding]:
    """What each idea the run was trained without did to it, measured on its weights and validation text
    (``val_ids``: the run's validation ids when the caller keeps them, else rebuilt from its text)."""
    broken = active(loaded.model_config.to_dict())
    if not broken:
        return []
    val = val_ids if val_ids is not None else run_split(store, loaded).val
    return [measure(c.key, loaded.model, val, step) for c in broken]
