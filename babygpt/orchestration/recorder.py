"""What a trainer writes into the run store as it trains: metrics, samples, the probe prompt's attention,
checkpoints, a challenge entry's held-out score, its end, and where it trained."""

from __future__ import annotations

import os

import torch

from babygpt.errors import BabyGPTError
from babygpt.interpret.inside import probe_reading
from babygpt.model.gpt import LanguageModel
from babygpt.scoring.leaderboard import held_out_loss
from babygpt.status import RunStatus
from babygpt.store.kept import keep_weights
from babygpt.store.run_record import LOCAL, Runtime
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.corpus import Split
from babygpt.text.tokenizers import Tokenizer
from babygpt.training import devices
from babygpt.training.sample import SamplingConfig, generate
from babygpt.training.trainer import Callbacks, EvalMetrics, StepMetrics, Trainer, TrainResult

PROBE_TOKENS = 24  # the probe prompt's length: its attention at every evaluation is a few KB


def make_sample_fn(tokenizer: Tokenizer, n_tokens: int):
    """A fixed-seed sample at each evaluation, so people see the same prompt learn to write (None: no samples)."""
    if not n_tokens:
        return None
    cfg = SamplingConfig(max_new_tokens=n_tokens, temperature=0.8, seed=0)

    def sample(model: LanguageModel) -> str:
        return generate(model, tokenizer, "", cfg)

    return sample


def probe_prompt(tokenizer: Tokenizer, split: Split, block_size: int) -> tuple[list[int], list[str]]:
    """A fixed prompt whose attention is recorded at every evaluation: the start of the validation split."""
    ids = split.val[: min(PROBE_TOKENS, block_size)].tolist()
    return ids, [tokenizer.token_text(i) for i in ids]


class RunRecorder(Callbacks):
    """Writes a trainer's metrics, checkpoints and final status into the run store (rank 0 only gets one),
    and at every evaluation the probe prompt's attention and every head's scores by type, so the pages can show
    the heads forming."""

    def __init__(self, store: RunStore, run_id: str, probe: tuple[list[int], list[str]] | None = None,
                 held_out: torch.Tensor | None = None):
        self.store, self.run_id = store, run_id
        self.probe = probe
        self.held_out = held_out  # a challenge entry's scored tokens: measured once, when it stops training

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
            reading = probe_reading(trainer.model, self.probe[0])  # one pass gives the attention and the types
            self.store.log_attention(self.run_id, m.step, self.probe[1], reading.weights)
            if reading.scores:
                self.store.log_head_scores(self.run_id, m.step, reading.scores)

    def on_checkpoint(self, trainer: Trainer) -> None:
        try:
            self.store.save_checkpoint(self.run_id, trainer.model, trainer.state_dict())
            if trainer.step in trainer.config.kept_steps():  # a copy of these weights stays when later ones land
                keep_weights(self.store.run_dir(self.run_id), trainer.step, trainer.model)
        except OSError as exc:
            raise BabyGPTError(
                f"Could not write the checkpoint of run {self.run_id} ({exc.strerror or exc}); the previous "
                "checkpoint is intact. Free disk space or set BABYGPT_HOME to a writable folder, then resume."
            ) from exc

    def on_done(self, trainer: Trainer, result: TrainResult) -> None:
        if self.held_out is not None:  # before the status, so a finished entry is never seen without its score
            nats, tokens = held_out_loss(trainer.model, self.held_out, trainer.model_config.block_size,
                                         trainer.config.batch_size)
            self.store.log_score(self.run_id, result.step, nats, tokens)
        self.store.set_status(self.run_id, result.status, result.target.sentence() if result.target else None)

    def on_failed(self, trainer: Trainer, message: str) -> None:
        self.store.set_status(self.run_id, RunStatus.FAILED, message)

    def on_notice(self, trainer: Trainer, message: str) -> None:
        self.store.set_message(self.run_id, message)


def record_runtime(store: RunStore, run_id: str, trainer: Trainer, where: str = LOCAL) -> None:
    """Where and how the run trains, settled on the machine that trains it (``auto`` resolved), in its config for
    every view: ``where`` is ``local`` or ``ray:<node id>``."""
    runtime = Runtime(devices.describe(trainer.device), trainer.dtype, os.getpid(), where, trainer.dist.world_size)
    store.update_config(run_id, store.get(run_id).record.with_document(runtime=runtime.to_dict()))
