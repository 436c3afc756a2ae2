"""``python -m babygpt``: train, sample, eval and manage runs from a terminal.

Progress goes to stderr so stdout stays machine-readable: the last stdout line of ``train``
and ``eval`` is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence

from babygpt.config import (
    MODEL_SETTINGS,
    PRESET_TRAINING,
    PRESETS,
    SETTINGS,
    TRAIN_SETTINGS,
    ModelConfig,
    TrainConfig,
    preset_train_config,
)
from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import ValidationText
from babygpt.model.sizing import MAX_PARAMS_ENV, parameter_count
from babygpt.orchestration.plan import TrainingPlan, encode_corpus, plan_training
from babygpt.orchestration.runs import resume_run, start_run
from babygpt.pace import seconds_left, seconds_per_step, tokens_per_second
from babygpt.sae_cli import add_sae_parser, cmd_sae
from babygpt.server.settings import model_limits_from_env
from babygpt.server.users import public_handle
from babygpt.status import RunStatus
from babygpt.store import archive, huggingface
from babygpt.store.corpora import TextNotHere, TextRef, check_same_corpus, find_text
from babygpt.store.importing import import_source
from babygpt.store.runs import LoadedRun, RunStore
from babygpt.text.bpe import BYTES, DEFAULT_BPE_VOCAB, DEFAULT_SPLIT, MAX_BPE_VOCAB, SPLIT_NAMES, BPESettings, split_of
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import Corpus, Split, split_ids
from babygpt.text.datasets import default_dataset, load_corpus
from babygpt.text.tokenizers import TOKENIZERS, Tokenizer
from babygpt.tokenizer_race_cli import add_tokenizer_race_parser, cmd_race_tokenizers
from babygpt.training import devices, distributed
from babygpt.training.evaluation import estimate_loss, eval_seed
from babygpt.training.placement import place_process
from babygpt.training.sample import SamplingConfig, generate, prepare_prompt
from babygpt.training.trainer import Callbacks, EvalMetrics, StepMetrics, Trainer, TrainResult
from babygpt.units import format_duration


def _eprint(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


class ConsoleProgress(Callbacks):
    """The terminal's progress lines: speed and time left as the app shows them (``babygpt.pace``: wall-clock,
    evaluation pauses included), from the marks this process has logged."""

    def __init__(self, max_iters: int):
        self.max_iters = max_iters
        self.train: list[dict[str, float]] = []
        self.evals: list[dict[str, float]] = []

    def on_notice(self, trainer: Trainer, message: str) -> None:
        _eprint(f"note: {message}")

    def on_step(self, trainer: Trainer, m: StepMetrics) -> None:
        self.train.append({"step": m.step, "elapsed_s": m.elapsed_s})
        pace = seconds_per_step(self.train, self.evals, trainer.config.eval_interval)
        speed = tokens_per_second(pace, trainer.tokens_per_step)
        _eprint(f"step {m.step:>6}/{self.max_iters}  loss {m.loss:.4f}  lr {m.lr:.2e}  "
                f"{f'{speed:,.0f}' if speed else '–'} tok/s  "
                f"ETA {format_duration(seconds_left(pace, m.step, self.max_iters))}")

    def on_eval(self, trainer: Trainer, m: EvalMetrics) -> None:
        self.evals.append({"step": m.step, "elapsed_s": m.elapsed_s})
        _eprint(f"eval {m.step:>6}: train {m.train_loss:.4f}  val {m.val_loss:.4f}")
        if m.sample:
            _eprint("  sample: " + m.sample.replace("\n", "\n          ")[:400])

    def on_checkpoint(self, trainer: Trainer) -> None:
        _eprint(f"checkpoint at step {trainer.step}")


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (or resume one) and record it in the run store")
    p.add_argument("--data", help="dataset name (python-docs, tinyshakespeare) or a path to a UTF-8 text file")
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="char",
                   help="char: one token per character; gpt2: GPT-2's BPE; bpe: a byte-level BPE learned from --data")
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"with --tokenizer bpe: how many tokens to learn, {BYTES} (the bytes) to {MAX_BPE_VOCAB:,} "
                        f"(default {DEFAULT_BPE_VOCAB})")
    p.add_argument("--bpe-split", choices=SPLIT_NAMES, default=None,
                   help=f"with --tokenizer bpe: the pattern that cuts the text into words first, so merges never "
                        f"cross them (default {DEFAULT_SPLIT}; none: merges may cross anything)")
    p.add_argument("--preset", choices=list(PRESETS), default="gpt")
    p.add_argument("--name")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint")
    model_defaults, train_defaults = ModelConfig(), TrainConfig()
    for setting in SETTINGS:  # the one list of settings: the app's form and lesson links read it too
        default = getattr(model_defaults if setting.section == "model" else train_defaults, setting.name)
        default = "; ".join([str(default), *(f"{preset}: {recipe[setting.name]}" for preset, recipe
                                             in PRESET_TRAINING.items() if setting.name in recipe)])
        # no argparse choices: the app's offer is for a shared server; here the configs' own checks decide
        p.add_argument(f"--{setting.name.replace('_', '-')}", type=setting.kind, default=None,
                       help=f"{setting.help} (default {default})".replace("%", "%%"))
    for flag in ("tie-weights", "bias", "zero-init-residual", "qk-norm", "value-embeddings"):
        p.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="use torch.compile (falls back to eager if it fails)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="replay each training step as one CUDA graph (CUDA only; falls back to the plain step)")
    p.add_argument("--allow-large", action="store_true",
                   help=f"train a model over {MAX_PARAMS_ENV} or the memory estimate anyway (your own machine)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m babygpt", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="run store folder (default: $BABYGPT_HOME or ./runs)")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_tokenizer_race_parser(sub)
    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--run", required=True)
    s.add_argument("--prompt", default="")
    s.add_argument("--max-new-tokens", type=int, default=200)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, default=0)
    s.add_argument("--top-p", type=float, default=1.0)
    s.add_argument("--seed", type=int)
    s.add_argument("--device", default="auto")
    e = sub.add_parser("eval", help="estimate train and val loss of a run")
    e.add_argument("--run", required=True)
    e.add_argument("--eval-iters", type=int, default=None)
    e.add_argument("--data", help="the run's data, if it cannot be found from the run")
    r = sub.add_parser("runs", help="list, show, export and import runs")
    rs = r.add_subparsers(dest="runs_command", required=True)
    rs.add_parser("list")
    show = rs.add_parser("show")
    show.add_argument("run")
    exp = rs.add_parser("export", help="a run as a Baby GPT archive (.zip), or as a transformers GPT-2 folder")
    exp.add_argument("run")
    exp.add_argument("file", help="the .zip to write, or with --format hf the folder (new or empty)")
    exp.add_argument("--format", choices=("babygpt", "hf"), default="babygpt",
                     help="babygpt: a run archive any Baby GPT imports; hf: a Hugging Face transformers GPT-2 "
                          "folder (config.json, model.safetensors, tokenizer, model card)")
    imp = rs.add_parser("import", help="a Baby GPT archive, or a GPT-2-shaped transformers folder (or its .zip)")
    imp.add_argument("file")
    add_sae_parser(sub)
    return parser


def _train_overrides(args: argparse.Namespace) -> dict:
    values = {f: getattr(args, f) for f in TRAIN_SETTINGS if getattr(args, f) is not None}
    for flag in ("compile", "cuda_graphs"):
        if getattr(args, flag) is not None:
            values[flag] = getattr(args, flag)
    return values


def _install_signal_stop(trainer: Trainer) -> None:
    """Ctrl-C / SIGTERM stop after the current step and keep a checkpoint."""
    def handler(signum, frame):
        _eprint("stopping after this step (checkpoint will be kept)…")
        trainer.request_stop()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _corpus_for_resume(store: RunStore, run: str, data: str | None):
    """The run's text: --data when given, else wherever the library finds it (an upload by its sha256 included)."""
    info = store.get(run)
    if not data:
        try:
            return find_text(store, TextRef.of_run(info))
        except TextNotHere as exc:
            how = "has changed since it trained" if exc.changed else "is not on this server"
            raise BabyGPTError(f"The text run {info.label} trained on ({exc.ref.shown}) {how}; give it with "
                               "--data PATH.") from None
    corpus = load_corpus(data)
    try:
        check_same_corpus(info, corpus)
    except BabyGPTError as exc:  # the library's sentence names no flag; the command line's own hint is added here
        raise BabyGPTError(f"{exc} Give it with --data PATH.") from None
    return corpus


def cmd_train(args: argparse.Namespace, store: RunStore) -> int:
    """Train or resume; under torchrun every rank trains, rank 0 alone records and prints."""
    dist = distributed.from_env()
    try:
        code = _train(args, store, dist)
    finally:
        distributed.shutdown()
    if dist.enabled:
        # gloo's helper threads can abort the interpreter's teardown ("terminate called without an
        # active exception"); the work is done and flushed, so leave without running it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _bpe_settings(args: argparse.Namespace) -> BPESettings | None:
    """--vocab-size and --bpe-split describe a BPE learned from the text: they go with --tokenizer bpe alone."""
    if args.tokenizer != "bpe":
        if args.vocab_size is not None or args.bpe_split is not None:
            raise BabyGPTError("--vocab-size and --bpe-split set up a BPE learned from your text: add --tokenizer bpe.")
        return None
    split = DEFAULT_SPLIT if args.bpe_split is None else split_of(args.bpe_split)
    return BPESettings(DEFAULT_BPE_VOCAB if args.vocab_size is None else args.vocab_size, split).validate()


def _val_bpb(val_loss: float | None, config: dict, tokenizer: Tokenizer, val_ids) -> float | None:
    """The validation loss in bits per byte of the validation text: comparable across tokenizers. By the size the run
    keeps of its validation text, counted when it was created (the pages use the same); measured here for a run
    recorded before runs kept it."""
    if val_loss is None:
        return None
    return (ValidationText.from_config(config) or ValidationText.measure(tokenizer, val_ids)).bits_per_byte(val_loss)


def _check_size(plan: TrainingPlan, allow_large: bool) -> None:
    """Over the limits, the CLI asks for --allow-large: it is the user's own machine, unlike the app's server."""
    problems = model_limits_from_env().problems(plan.model_config, plan.train_config.batch_size)
    if problems and not allow_large:
        raise BabyGPTError(" ".join(problems) + " Pass --allow-large to train it anyway.")
    for problem in problems:
        _eprint(f"warning: {problem}")


def _train(args: argparse.Namespace, store: RunStore, dist: distributed.DistInfo) -> int:
    overrides = _train_overrides(args)
    progress = [ConsoleProgress(0)] if dist.is_main else []
    if args.resume:
        corpus = _corpus_for_resume(store, args.resume, args.data)
        trainer, info = resume_run(store, args.resume, corpus, callbacks=progress, dist=dist, **overrides)
    else:
        corpus = load_corpus(args.data or default_dataset())
        model_fields = (*MODEL_SETTINGS, "tie_weights", "bias", "zero_init_residual", "qk_norm", "value_embeddings")
        sizes = {f: getattr(args, f) for f in model_fields if getattr(args, f) is not None}
        plan = plan_training(corpus, args.tokenizer, args.preset, preset_train_config(args.preset, **overrides),
                             _bpe_settings(args), **sizes)
        _check_size(plan, args.allow_large)
        for note in plan.tokenizer.bpe.notes() if isinstance(plan.tokenizer, BPETokenizer) else ():
            _eprint(f"note: {note}")
        trainer, info = start_run(store, plan, name=args.name, callbacks=progress, dist=dist)
    for cb in progress:
        cb.max_iters = trainer.config.max_iters
    if dist.is_main:
        ranks = f", {dist.world_size} ranks (DDP)" if dist.enabled else ""
        _eprint(f"run {info.id}: {trainer.model_config.preset}, {parameter_count(trainer.model_config):,} parameters, "
                f"vocab {trainer.model_config.vocab_size}, device {devices.describe(trainer.device)}, "
                f"{trainer.dtype}{ranks}")
    _install_signal_stop(trainer)
    result = trainer.run()
    if not dist.is_main:
        return 1 if result.status is RunStatus.FAILED else 0
    summary = {"run": info.id, "run_dir": str(store.run_dir(info.id).resolve()), "status": result.status,
               "world_size": dist.world_size,
               "step": result.step, "train_loss": result.train_loss, "val_loss": result.val_loss,
               "val_bpb": _val_bpb(result.val_loss, info.config, info.record.tokenizer.build(),
                                   trainer.split.val),
               "best_val_loss": result.best_val_loss, "tokens_per_sec": round(result.tokens_per_sec, 1),
               "train_time_s": round(result.elapsed_s, 2), "params": parameter_count(trainer.model_config)}
    if trainer.config.until_val_loss:
        summary.update(_target_summary(trainer.config.until_val_loss, result))
    if result.message:
        summary["message"] = result.message
        _eprint(f"error: {result.message}")
    print(json.dumps(summary), flush=True)
    return 1 if result.status is RunStatus.FAILED else 0


def _target_summary(target: float, result: TrainResult) -> dict:
    """With --until-val-loss: whether the run reached it, at which step, and the wall-clock seconds it took with
    every evaluation's time excluded (``target_wall_s``) and reported beside it (``target_eval_s``)."""
    reached = result.target
    if reached is not None:
        _eprint(f"note: {reached.sentence()}")
    return {"target_val_loss": target, "target_reached": reached is not None,
            "target_step": reached.step if reached else None,
            "target_wall_s": round(reached.wall_s, 3) if reached else None,
            "target_eval_s": round(reached.eval_s, 3) if reached else None}


def cmd_sample(args: argparse.Namespace, store: RunStore) -> int:
    loaded = store.load(args.run, devices.resolve_device(args.device))
    for notice in prepare_prompt(loaded.tokenizer, args.prompt, loaded.model_config.block_size).notices:
        _eprint(notice)
    cfg = SamplingConfig(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    print(generate(loaded.model, loaded.tokenizer, args.prompt, cfg))
    return 0


def cmd_eval(args: argparse.Namespace, store: RunStore) -> int:
    """The saved run's losses on its own split, as its evaluations measured them at step 0's batches, on the device
    and in the precision its training config settles to here; no trainer, no optimizer."""
    loaded = store.load(args.run)
    corpus = _corpus_for_resume(store, args.run, args.data)
    split = eval_split(loaded, corpus)
    cfg = loaded.train_config
    placement = place_process(cfg)
    losses = estimate_loss(loaded.model.to(placement.device), split, cfg.batch_size, args.eval_iters or cfg.eval_iters,
                           placement.dtype, eval_seed(cfg.seed, 0))
    print(json.dumps({"run": loaded.info.id, "train_loss": losses["train"], "val_loss": losses["val"],
                      "val_bpb": _val_bpb(losses["val"], loaded.info.config, loaded.tokenizer, split.val)}))
    return 0


def eval_split(loaded: LoadedRun, corpus: Corpus) -> Split:
    """The saved run's own training/validation split of ``corpus``."""
    check_same_corpus(loaded.info, corpus)
    return split_ids(encode_corpus(corpus, loaded.tokenizer), loaded.train_config.val_fraction,
                     loaded.model_config.block_size)


def cmd_runs(args: argparse.Namespace, store: RunStore) -> int:
    if args.runs_command == "list":
        rows = store.summaries()
        if not rows:
            print(f"no runs in {store.home}")
        for r in rows:
            best = f"{r.best_val_loss:.4f}" if r.best_val_loss is not None else "-"
            print(f"{r.id:<36} {r.name[:40]:<40} {r.preset:<15} {r.status:<12} steps {r.steps:>6}  "
                  f"best val {best}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(r.created_at))}  "
                  f"{public_handle(r.owner)}")
    elif args.runs_command == "show":
        info = store.get(args.run)
        print(json.dumps({"id": info.id, "name": info.name, "owner": public_handle(info.owner),
                          "status": info.status, "message": info.message,
                          "created_at": info.created_at, "data": info.text_name, "config": info.config}, indent=2))
    elif args.runs_command == "export":
        if args.format == "hf":
            path = huggingface.export_hf(store, args.run, args.file)
        else:
            path = archive.export_run(store, args.run, args.file)
        print(f"exported {args.run} to {path}")
    elif args.runs_command == "import":
        info = import_source(store, args.file, model_limits_from_env())  # a folder, or a zip of either kind
        print(f"imported as {info.id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = RunStore(args.home)
        if args.command == "race-tokenizers":
            return cmd_race_tokenizers(args, store)
        if args.command == "sae":
            return cmd_sae(args, store)
        handler = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "runs": cmd_runs}[args.command]
        return handler(args, store)
    except BabyGPTError as exc:
        _eprint(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
