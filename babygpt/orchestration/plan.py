"""A training plan: every setting checked, the text tokenised and split, before a run folder exists."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from babygpt.config import ModelConfig, TrainConfig, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import Baselines, ValidationText, compute_baselines
from babygpt.store.runs import LoadedRun
from babygpt.text.bpe import BPESettings
from babygpt.text.corpus import Corpus, Split, split_ids
from babygpt.text.tokenizers import Tokenizer, build_tokenizer, unknown_pieces
from babygpt.training import devices


@dataclass
class TrainingPlan:
    corpus: Corpus
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig
    split: Split
    baselines: Baselines | None = None  # computed when the run is created, unless plans sharing a split did
    validation: ValidationText | None = None  # the same: the validation text's tokens and bytes (bits per byte)
    init_from: str | None = None  # a run whose weights this one starts from (fine-tuning); None: fresh weights


def plan_baselines(plan: TrainingPlan) -> Baselines:
    """The levels to beat on the plan's validation split (one pass over the text; plans may share it)."""
    if plan.baselines is None:
        val_chars = len(plan.tokenizer.decode(plan.split.val.tolist()))
        plan.baselines = compute_baselines(plan.split.train, plan.split.val, plan.model_config.vocab_size, val_chars)
    return plan.baselines


def plan_validation(plan: TrainingPlan) -> ValidationText:
    """How many tokens and UTF-8 bytes the plan's validation text is, counted once (plans may share it): with the
    run, it turns every loss of the run into bits per byte."""
    if plan.validation is None:
        plan.validation = ValidationText.measure(plan.tokenizer, plan.split.val)
    return plan.validation


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer) -> torch.Tensor:
    return torch.tensor(tokenizer.encode(corpus.text), dtype=torch.long)


def split_corpus(corpus: Corpus, tokenizer: Tokenizer, model_config: ModelConfig, train_config: TrainConfig) -> Split:
    """The training and validation ids a run with these settings trains on (the same for a new and a resumed run)."""
    return split_ids(encode_corpus(corpus, tokenizer), train_config.val_fraction, model_config.block_size)


def plan_training(corpus: Corpus, tokenizer: str | Tokenizer, preset: str, train_config: TrainConfig,
                  bpe: BPESettings | None = None, **sizes: Any) -> TrainingPlan:
    """Validate everything (configs, tokenizer, text length) before a run folder exists. ``tokenizer``: a kind,
    built from the text here, or a tokenizer already built for it (the Data page's, which a race's rungs share, so a
    BPE is learned once); ``bpe``: the size and pre-split of a BPE learned here (kind "bpe" only)."""
    train_config = train_config.validate()
    probe = model_config_for_preset(preset, **sizes)  # size errors before a slow tokenisation
    device = devices.resolve_device(train_config.device)
    devices.check_dtype(device, train_config.dtype)
    if isinstance(tokenizer, str):
        tokenizer = build_tokenizer(tokenizer, corpus.text, bpe)
    model_config = dataclasses.replace(probe, vocab_size=tokenizer.vocab_size).validate()
    return TrainingPlan(corpus, tokenizer, model_config, train_config,
                        split_corpus(corpus, tokenizer, model_config, train_config))


def plan_finetune(base: LoadedRun, corpus: Corpus, train_config: TrainConfig) -> TrainingPlan:
    """Train a recorded run's model further on another text (an imported GPT-2, a classmate's run): the same model
    and tokenizer, the new text's split, a fresh optimizer. The text must be one the tokenizer can read whole."""
    train_config = train_config.validate()
    devices.check_dtype(devices.resolve_device(train_config.device), train_config.dtype)
    unknown = unknown_pieces(base.tokenizer, corpus.text)
    if unknown:
        what = "character(s)" if base.tokenizer.kind == "char" else "GPT-2 token(s)"
        raise BabyGPTError(f"{corpus.name} has {len(unknown)} {what} that run "
                           f"{base.info.label} never saw ({', '.join(repr(u) for u in unknown[:8])}"
                           f"{' …' if len(unknown) > 8 else ''}); fine-tuning keeps the model's vocabulary. Choose a "
                           "text without them, or train a new run on this one.")
    return TrainingPlan(corpus, base.tokenizer, base.model_config, train_config,
                        split_corpus(corpus, base.tokenizer, base.model_config, train_config), init_from=base.info.id)
