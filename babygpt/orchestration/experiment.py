"""A class experiment: the teacher's grid of runs (rungs × sizes × seeds), each handed to a student who joins or
queued on the server, re-queued when it dies, and read back as the points a scaling law is fitted to.

The teacher fixes the text, the tokenizer, the steps, batch, block and learning rate; the points differ only in
the model's size (and, for a switch on and off, in the rung: ``gpt`` against ``gpt+rope``, say), so what their
losses show is what size (or the switch) buys at this budget. A point's run is one run like any other (the
scheduler trains it wherever runs train: a worker here or a Ray cluster); this module plans it and decides what
happens to a point from its run's status (``point_state``); ``babygpt.server.laboratory`` does it.

**What N is.** The law's x is the parameters of the blocks, without the token and position embeddings or the
output head (Kaplan et al. 2020): at these sizes the embeddings of a large vocabulary would be most of a small
model's count and hide the trend. Training compute is 6·N·D, D the tokens trained (steps × batch × block).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from babygpt.config import MODERN_BY_PRESET, PRESETS, ModelConfig, TrainConfig, app_train_config, model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.figures.scaling_figures import LawPlot, LawSeries
from babygpt.lessons.scaling_law import MIN_POINTS, MIN_SIZES, PredictionCheck, ScalingFit, fit_scaling_law
from babygpt.model.sizing import block_params, size_in_words
from babygpt.orchestration.challenge import tokenizer_phrase
from babygpt.orchestration.plan import TrainingPlan, plan_training
from babygpt.plain_text import csv_cell
from babygpt.status import RunStatus
from babygpt.store.experiments import CLAIMING, PointRecord
from babygpt.store.records import MetricRow
from babygpt.store.runs import RunInfo
from babygpt.text.bpe import BPESettings, split_of
from babygpt.text.corpus import Corpus
from babygpt.text.measured import ValidationText
from babygpt.text.tokenizers import Tokenizer

PARAMETERS, COMPUTE = "parameters", "compute"
AXES = {PARAMETERS: "parameters N (blocks, without embeddings)", COMPUTE: "training compute C = 6·N·D (FLOPs)"}
MAX_ATTEMPTS = 3  # runs a point may take before it is given up: a run that fails three times will fail again
MAX_POINTS = 200
TEN_TIMES = 10.0
# Five sizes spanning 32× in N (12,352 to 390,000 block parameters of gpt; ``tests/test_experiment.py`` holds it)
DEFAULT_SIZES = ((1, 2, 32), (1, 4, 48), (2, 4, 64), (2, 4, 96), (3, 4, 104))
DEFAULT_SEEDS = (1, 2)
UNIT = "bits/byte"


@dataclass(frozen=True)
class Point:
    """One run of the experiment: its rung, sizes and seed."""

    preset: str
    n_layer: int
    n_head: int
    n_embd: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    @property
    def shape(self) -> str:
        return f"{self.n_layer}×{self.n_embd}, {self.n_head} head{'s' * (self.n_head != 1)}"

    def name(self) -> str:
        """The run's name on every page: "experiment: gpt 2×64, 4 heads · seed 1"."""
        return f"experiment: {self.preset} {self.shape} · seed {self.seed}"


@dataclass(frozen=True)
class ExperimentSpec:
    """What every point shares: the text (found again by ``store.corpora.find_text``), the tokenizer's kind, the
    training budget and the law's axis."""

    corpus_name: str
    corpus_source: str
    corpus_sha256: str
    tokenizer: str
    presets: tuple[str, ...]
    steps: int
    batch_size: int
    block_size: int
    lr: float
    val_fraction: float
    axis: str = PARAMETERS
    bpe_vocab: int = 0  # a BPE's size as the teacher chose it (0: not a BPE)
    bpe_split: str = ""  # its pre-split as a person names it ("gpt2", "gpt4", "none"; "": not a BPE)

    def bpe_settings(self) -> BPESettings | None:
        """The teacher's BPE, rebuilt from the text for every point (None: not a BPE)."""
        return BPESettings(self.bpe_vocab, split_of(self.bpe_split)) if self.tokenizer == "bpe" else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentSpec:
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["presets"] = tuple(values["presets"])
        return cls(**values)

    def train_config(self, seed: int) -> TrainConfig:
        """Every point's training: the budget, evaluated five times, more batches at each evaluation than the
        app's default so the final loss a point adds to the fit is steady."""
        return app_train_config(max_iters=self.steps, batch_size=self.batch_size, lr=self.lr, min_lr=self.lr / 10,
                                warmup_iters=max(0, self.steps // 20), eval_interval=max(1, self.steps // 5),
                                eval_iters=40, seed=seed, val_fraction=self.val_fraction)

    def model_config(self, point: Point, vocab_size: int = 256) -> ModelConfig:
        return model_config_for_preset(point.preset, n_layer=point.n_layer, n_head=point.n_head,
                                       n_embd=point.n_embd, block_size=self.block_size, vocab_size=vocab_size)

    def tokens(self) -> int:
        return self.steps * self.batch_size * self.block_size

    def x_of(self, point: Point) -> float:
        """The point's place on the law's axis: its block parameters, or 6·N·D."""
        n = float(block_parameters(self.model_config(point)))
        return n if self.axis == PARAMETERS else 6.0 * n * self.tokens()

    def sentence(self) -> str:
        rungs = " against ".join(self.presets)
        tokenizer = tokenizer_phrase(self.tokenizer, self.bpe_vocab, self.bpe_split or None)
        return (f"Text {self.corpus_name} · tokenizer {tokenizer} · {rungs} · {self.steps:,} steps × batch "
                f"{self.batch_size} × block {self.block_size} ({self.tokens():,} tokens) · lr {self.lr:g} · loss "
                f"against {AXES[self.axis]}")


def block_parameters(config: ModelConfig) -> int:
    """N: the parameters of the blocks alone (see the module's docstring)."""
    return config.n_layer * block_params(config)


def plan_points(spec: ExperimentSpec, sizes: list[tuple[int, int, int]], seeds: list[int]) -> list[Point]:
    """Every rung × size × seed, seed by seed: the first students who join cover every size once before any size
    gets a second seed, so a law can be fitted early. Each point's model is checked here, before anything runs."""
    if not sizes or not seeds:
        raise BabyGPTError("An experiment needs at least one size and one seed.")
    if len(set(sizes)) != len(sizes) or len(set(seeds)) != len(seeds):
        raise BabyGPTError("Each size and each seed is listed once.")
    points = [Point(preset, layers, heads, width, seed)
              for seed in seeds for layers, heads, width in sizes for preset in spec.presets]
    if len(points) > MAX_POINTS:
        raise BabyGPTError(f"{len(points)} runs is more than an experiment holds ({MAX_POINTS}).")
    for point in points:
        spec.model_config(point)  # its sizes fit the rung: a sentence if not
    return points


def sizes_text(sizes: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...]) -> str:
    """Sizes as the teacher types them: "1×2×32, 1×4×48" (layers × heads × width)."""
    return ", ".join(f"{layers}×{heads}×{width}" for layers, heads, width in sizes)


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """The teacher's sizes, "1×2×32, 2×4×64" (layers × heads × width; x or * for ×), or a sentence naming the
    first one that is not three whole numbers."""
    sizes = []
    for part in [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]:
        numbers = part.replace("x", "×").replace("X", "×").replace("*", "×").split("×")
        if len(numbers) != 3 or not all(n.strip().isdigit() and int(n) > 0 for n in numbers):
            raise BabyGPTError(f"Each size is layers × heads × width, three whole numbers such as 2×4×64; "
                               f"{part!r} is not.")
        sizes.append(tuple(int(n) for n in numbers))
    if not sizes:
        raise BabyGPTError("List at least one size, such as 1×2×32, 2×4×64.")
    return sizes  # type: ignore[return-value]


def parse_seeds(text: str) -> list[int]:
    """The teacher's seeds, "1, 2, 3", or a sentence."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise BabyGPTError(f"Seeds are whole numbers separated by commas, such as 1, 2, 3; not {text.strip()!r}.")
    return [int(p) for p in parts]


def check_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """The teacher's choices, each with a sentence when wrong."""
    if not 1 <= len(spec.presets) <= 2 or len(set(spec.presets)) != len(spec.presets):
        raise BabyGPTError("An experiment trains one rung at several sizes, or two (a switch off and on).")
    for preset in spec.presets:
        if preset not in PRESETS or preset in ("bigram",):
            raise BabyGPTError(f"{preset!r} is not a rung an experiment can size; choose one of "
                               f"{', '.join(p for p in PRESETS if p != 'bigram')}.")
    if spec.axis not in AXES:
        raise BabyGPTError(f"The law's axis is {' or '.join(AXES)}, not {spec.axis!r}.")
    spec.train_config(1)  # the steps, batch, learning rate and split: TrainConfig's own sentences
    return spec


def switch_sentence(spec: ExperimentSpec) -> str:
    """What the second rung switches on, from its lesson (empty: one rung, or not a modern switch)."""
    if len(spec.presets) < 2 or spec.presets[1] not in MODERN_BY_PRESET:
        return ""
    return MODERN_BY_PRESET[spec.presets[1]].lesson


def point_plan(spec: ExperimentSpec, point: Point, corpus: Corpus, tokenizer: Tokenizer) -> TrainingPlan:
    """The point's run, planned on the experiment's text with its tokenizer (built once for every point)."""
    if corpus.sha256 != spec.corpus_sha256:
        raise BabyGPTError(f"The experiment's text ({spec.corpus_name}) changed since the experiment was set.")
    return plan_training(corpus, tokenizer, point.preset, spec.train_config(point.seed), n_layer=point.n_layer,
                         n_head=point.n_head, n_embd=point.n_embd, block_size=spec.block_size)


def ten_times_larger(spec: ExperimentSpec, points: list[Point], factor: float = TEN_TIMES) -> Point:
    """The model the law is tested on: about ``factor`` × the largest point's N, near its proportions (width over
    depth, a weak preference), 4 heads, the width a multiple of 8, of the first rung and the first seed. Its own N, not the
    target, is where the law is asked."""
    largest = max(points, key=spec.x_of)
    target = factor * block_parameters(spec.model_config(largest))
    ratio = largest.n_embd / largest.n_layer
    per_layer = block_params(spec.model_config(largest)) / largest.n_embd ** 2  # about 12 for gpt: N ≈ 12·L·C²
    best: tuple[float, Point] | None = None
    for layers in range(1, 25):
        guess = 8 * round(math.sqrt(target / (per_layer * layers)) / 8)
        for width in range(max(8, guess - 32), guess + 33, 8):
            candidate = Point(spec.presets[0], layers, 4, width, points[0].seed)
            n = block_parameters(spec.model_config(candidate))
            # closest in N (on a log scale), then closest in proportions
            score = abs(math.log(n / target)) + 0.01 * abs(math.log((width / layers) / ratio))
            if best is None or score < best[0]:
                best = (score, candidate)
    assert best is not None
    return best[1]


# --- a point's run, and what happens to it ---------------------------------------------------------

class PointState(str, Enum):
    OPEN = "open"  # no run: handed to the next student who joins, or queued on the server
    CLAIMING = "claiming"  # its run is being planned and queued
    QUEUED = "queued"
    TRAINING = "training"
    DONE = "done"
    RESUME = "resume"  # its worker died mid-way: queue the run again, from its last checkpoint
    REOPEN = "reopen"  # its run failed, was stopped or deleted: the point takes a fresh run
    GIVEN_UP = "given up"

    def __str__(self) -> str:
        return self.value


def point_state(point: PointRecord, info: RunInfo | None) -> PointState:
    """What a point's run says happens next. A run whose worker died (interrupted: killed, a lost machine, a
    server restart) resumes from its checkpoint; one that failed or was stopped before the end, or was deleted,
    is replaced by a fresh run, at most ``MAX_ATTEMPTS`` runs in all."""
    if point.given_up:
        return PointState.GIVEN_UP
    if point.run_id is None:
        return PointState.OPEN
    if point.run_id == CLAIMING:
        return PointState.CLAIMING
    if info is None:
        return PointState.REOPEN
    status = info.status
    if status is RunStatus.QUEUED:
        return PointState.QUEUED
    if status.training:
        return PointState.TRAINING
    if status is RunStatus.DONE:
        return PointState.DONE
    if status is RunStatus.INTERRUPTED:
        return PointState.RESUME
    return PointState.REOPEN


def final_loss(info: RunInfo, metrics: list[MetricRow]) -> float | None:
    """A finished run's last validation loss, in bits per byte of its validation text (None: never evaluated at
    its last step, or its text's size unknown)."""
    last = info.record.training.max_iters
    vals = [m for m in metrics if m.split == "val" and m.loss is not None and m.step == last]
    validation = ValidationText.from_config(info.config)
    if not vals or validation is None:
        return None
    return validation.bits_per_byte(vals[-1].loss)


# --- the results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """One finished point as the board draws it."""

    point: Point
    x: float
    loss: float
    run_id: str
    who: str  # the student's name on the board, or the server: plain text
    is_prediction: bool = False


@dataclass(frozen=True)
class ArmFit:
    """One rung's law (``fit`` None: too few points yet, ``why`` says so)."""

    preset: str
    fit: ScalingFit | None
    why: str = ""


def fit_arms(spec: ExperimentSpec, results: list[Result], planned: list[Point] | None = None) -> list[ArmFit]:
    """A law for each rung, from its finished planned points (the tested model is left out: it tests the law).
    ``planned``: every point of the plan, so a plan too small for any law says so now, not after every run."""
    arms = []
    for preset in spec.presets:
        mine = [r for r in results if r.point.preset == preset and not r.is_prediction]
        try:
            arms.append(ArmFit(preset, fit_scaling_law([r.x for r in mine], [r.loss for r in mine])))
        except BabyGPTError as exc:
            arms.append(ArmFit(preset, None, str(exc) + plan_too_small([p for p in planned or () if p.preset == preset])))
    return arms


def plan_too_small(points: list[Point]) -> str:
    """" This experiment plans only …": what a teacher must hear when no run of the plan can ever make a law
    (empty when the plan can; ``points``: one rung's planned points)."""
    sizes = len({p.shape for p in points})
    if not points or (len(points) >= MIN_POINTS and sizes >= MIN_SIZES):
        return ""
    return (f" This experiment plans only {len(points)} run{'s' * (len(points) != 1)} of {sizes} "
            f"size{'s' * (sizes != 1)}, so no law can be fitted to it: start one with more sizes or seeds.")


def prediction_check(prediction: dict[str, Any], observed: float | None) -> PredictionCheck:
    return PredictionCheck(prediction["x"], prediction["predicted"], prediction["predicted_err"],
                           prediction["run_err"], observed)


CSV_COLUMNS = ("rung", "n_layer", "n_head", "n_embd", "seed", "block_parameters", "training_flops", "x",
               "val_bits_per_byte", "who", "run", "role")


def results_csv(spec: ExperimentSpec, results: list[Result], arms: list[ArmFit],
                checks: list[tuple[Point, PredictionCheck]]) -> str:
    """The experiment as a table: first what it is and each rung's law as ``# key,value`` rows, then one row per
    finished run. Every text cell through ``csv_cell`` (a student's name is what they typed)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell("# experiment"), csv_cell(spec.sentence())])
    for arm in arms:
        law = arm.fit.sentence(UNIT, "N" if spec.axis == PARAMETERS else "C") if arm.fit else arm.why
        writer.writerow([csv_cell(f"# law {arm.preset}"), csv_cell(law)])
        if arm.fit:
            for name in ("a", "alpha", "c"):
                writer.writerow([csv_cell(f"# {arm.preset} {name}"),
                                 f"{getattr(arm.fit, name):.6g} ± {getattr(arm.fit, name + '_err'):.3g}"])
    for point, check in checks:
        writer.writerow([csv_cell(f"# tested {point.preset} {point.shape}"), csv_cell(check.sentence(UNIT))])
    writer.writerow(CSV_COLUMNS)
    for r in results:
        config = spec.model_config(r.point)
        n = block_parameters(config)
        writer.writerow([csv_cell(r.point.preset), r.point.n_layer, r.point.n_head, r.point.n_embd, r.point.seed, n,
                         f"{6.0 * n * spec.tokens():.6g}", f"{r.x:.6g}", f"{r.loss:.4f}", csv_cell(r.who),
                         csv_cell(r.run_id), "tested" if r.is_prediction else "point"])
    return out.getvalue()


def describe_point(spec: ExperimentSpec, point: Point) -> str:
    return f"{point.preset} {size_in_words(spec.model_config(point))} · seed {point.seed}"


def law_plot(spec: ExperimentSpec, results: list[Result], arms: list[ArmFit],
             checks: list[tuple[Point, PredictionCheck]]) -> LawPlot:
    """The board's picture: each rung's finished runs and law, the tested model on the first rung's."""
    series = []
    for k, arm in enumerate(arms):
        mine = [r for r in results if r.point.preset == arm.preset and not r.is_prediction]
        series.append(LawSeries(arm.preset, [r.x for r in mine], [r.loss for r in mine],
                                [f"{r.who} · {r.point.shape} · seed {r.point.seed}" for r in mine], arm.fit,
                                [c for p, c in checks if p.preset == arm.preset] if k == 0 else []))
    return LawPlot("Validation loss against " + ("parameters" if spec.axis == PARAMETERS else "training compute"),
                   AXES[spec.axis], f"validation {UNIT} after {spec.steps:,} steps", series)


def law_notes(spec: ExperimentSpec, arms: list[ArmFit], checks: list[tuple[Point, PredictionCheck]]) -> list[str]:
    """The laws and the test in sentences: under the picture, on the page and in the CSV alike."""
    what = "N" if spec.axis == PARAMETERS else "C"
    notes = [f"{arm.preset}: " + (arm.fit.sentence(UNIT, what) if arm.fit else arm.why) for arm in arms]
    for point, check in checks:
        notes.append(f"The model about ten times larger ({point.preset} {point.shape}, {what} = {check.x:.3g}): "
                     + check.sentence(UNIT))
    return notes
