"""From a plan, a queued run or a checkpoint to a Trainer recording into the run store.

The CLI, the server's worker processes and Ray actors all start and resume runs through these functions, so a run
trained in the browser and one trained in a terminal are the same thing on disk. The trainer itself is assembled in
one place (``_recording_trainer``) for all three.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError, out_of_memory_message
from babygpt.lessons.counterfactuals import Finding, active, measure
from babygpt.orchestration.plan import TrainingPlan, plan_baselines, plan_validation, split_corpus
from babygpt.orchestration.recorder import RunRecorder, make_sample_fn, probe_prompt, record_runtime
from babygpt.scoring.leaderboard import held_out_ids
from babygpt.status import RunStatus
from babygpt.store.corpora import check_same_corpus, run_corpus
from babygpt.store.run_record import LOCAL
from babygpt.store.runs import LoadedRun, RunInfo, RunStore, build_config_document, parse_config_document
from babygpt.text.corpus import Corpus, Split
from babygpt.text.tokenizers import Tokenizer
from babygpt.training import distributed
from babygpt.training.placement import prepare
from babygpt.training.trainer import Callbacks, Trainer, is_out_of_memory


def _recording_trainer(store: RunStore, run_id: str, model_config: ModelConfig, train_config: TrainConfig,
                       tokenizer: Tokenizer, split: Split, callbacks: list[Callbacks] | tuple = (),
                       dist: distributed.DistInfo | None = None, model_state: dict | None = None,
                       trainer_state: dict | None = None) -> Trainer:
    """The one way a run's Trainer is built: its callbacks behind a recorder (on rank 0 only), a fixed-seed sample
    and the probe prompt at every evaluation, a challenge entry's score at its end, and the weights and state of
    a checkpoint when it resumes."""
    dist = dist or distributed.DistInfo()
    held_out = held_out_ids(split.val) if store.get(run_id).record.challenge else None
    recorder = ([RunRecorder(store, run_id, probe_prompt(tokenizer, split, model_config.block_size), held_out)]
                if dist.is_main else [])
    model, placement = prepare(model_config, train_config, model_state, dist)
    return Trainer(model, train_config, split, placement, callbacks=[*recorder, *callbacks],
                   sample_fn=make_sample_fn(tokenizer, train_config.sample_tokens), trainer_state=trainer_state)


def check_can_queue(info: RunInfo) -> None:
    """A run is queued to train again only when no worker has it; with no checkpoint it starts from step 0."""
    if info.status.active:
        raise BabyGPTError(f"Run {info.label} is already {info.status}.")


def create_run(store: RunStore, plan: TrainingPlan, name: str | None = None, owner: str | None = None,
               status: RunStatus = RunStatus.RUNNING, group_id: str | None = None,
               challenge: dict[str, Any] | None = None, priority: int = 0, only_active: bool = False) -> RunInfo:
    """Record a new run (folder, config.json, database row) from a validated plan. ``challenge``: ``{"id": …,
    "check_of": run id or None}`` for a challenge entry or a teacher's re-training of one. ``only_active``: refused
    (``OwnerBusy``) if the owner already has a single run queued or training (``RunStore.create_run``)."""
    baselines = plan_baselines(plan)
    data = {"name": plan.corpus.name, "source": plan.corpus.source, "sha256": plan.corpus.sha256,
            "n_chars": len(plan.corpus.text), "baselines": baselines.to_dict(),
            "validation": plan_validation(plan).to_dict()}
    document = build_config_document(plan.model_config, plan.train_config, plan.tokenizer, data)
    if plan.init_from:
        document["init"] = {"run": plan.init_from, "label": store.get(plan.init_from).label}
    if challenge:
        document["challenge"] = challenge
    info = store.create_run(name, document, text_name=plan.corpus.name, data_sha256=plan.corpus.sha256,
                            status=status, owner=owner, group_id=group_id,
                            challenge_id=challenge["id"] if challenge else None, priority=priority,
                            only_active=only_active)
    if plan.init_from:
        try:
            store.set_initial_weights(info.id, plan.init_from)
        except BabyGPTError:
            store.delete(info.id)
            raise
    return info


def trainer_for_run(store: RunStore, run_id: str, corpus: Corpus, callbacks: list[Callbacks] | tuple = (),
                    where: str = LOCAL) -> Trainer:
    """A Trainer for a recorded run that has not trained yet, rebuilt from its config.json alone."""
    info = store.get(run_id)
    model_config, train_config, tokenizer = parse_config_document(info.config)
    check_same_corpus(info, corpus)
    store.truncate_metrics(info.id, -1)  # a run restarted from step 0 after failing before its first checkpoint
    split = split_corpus(corpus, tokenizer, model_config, train_config)
    trainer = _recording_trainer(store, info.id, model_config, train_config, tokenizer, split, callbacks,
                                 model_state=store.initial_weights(info.id, model_config))
    record_runtime(store, info.id, trainer, where)
    return trainer


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
        model, placement = prepare(plan.model_config, plan.train_config, dist=dist)
        return Trainer(model, plan.train_config, plan.split, placement, callbacks=list(callbacks)), None
    info = create_run(store, plan, name)
    try:
        trainer = _recording_trainer(store, info.id, plan.model_config, plan.train_config, plan.tokenizer, plan.split,
                                     callbacks, dist, model_state=store.initial_weights(info.id, plan.model_config))
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
    model_config, train_config, tokenizer = parse_config_document(info.config)
    check_same_corpus(info, corpus)
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    if overrides:
        train_config = dataclasses.replace(train_config, **overrides).validate()
        if dist.is_main:
            store.update_config(info.id, info.record.with_document(train=train_config.to_dict()))
    loaded = store.load(info.id)
    state = store.load_trainer_state(info.id)
    split = split_corpus(corpus, tokenizer, model_config, train_config)
    trainer = _recording_trainer(store, info.id, model_config, train_config, tokenizer, split, callbacks, dist,
                                 model_state=loaded.model.state_dict(), trainer_state=state)
    if dist.is_main:
        store.truncate_metrics(info.id, int(state["step"]))
        store.set_status(info.id, RunStatus.RUNNING)
        record_runtime(store, info.id, trainer, where)
    return trainer, store.get(info.id)


def run_split(store: RunStore, loaded: LoadedRun) -> Split:
    """The training/validation split a recorded run trained on, rebuilt from its text and its config."""
    corpus = run_corpus(store, loaded.info)
    check_same_corpus(loaded.info, corpus)
    return split_corpus(corpus, loaded.tokenizer, loaded.model_config, loaded.train_config)


def counterfactual_findings(store: RunStore, loaded: LoadedRun, step: int,
                            val_ids: torch.Tensor | None = None) -> list[Finding]:
    """What each idea the run was trained without did to it, measured on its weights and validation text
    (``val_ids``: the run's validation ids when the caller keeps them, else rebuilt from its text)."""
    broken = active(loaded.model_config.to_dict())
    if not broken:
        return []
    val = val_ids if val_ids is not None else run_split(store, loaded).val
    return [measure(c.key, loaded.model, val, step) for c in broken]
