"""The class experiment with real workers: points planned, handed to students, queued on the server, a run killed
mid-way re-queued until it finishes, a stopped run replaced, and the law on the board with its exports."""

from __future__ import annotations

import os
import signal

import pytest

from babygpt.errors import BabyGPTError
from babygpt.figures.scaling_figures import law_svg
from babygpt.orchestration.experiment import (
    DEFAULT_SIZES,
    ExperimentSpec,
    Point,
    PointState,
    Result,
    fit_arms,
    law_notes,
    law_plot,
    parse_seeds,
    parse_sizes,
    plan_points,
    results_csv,
    sizes_text,
    ten_times_larger,
)
from babygpt.server.laboratory import SERVER, Laboratory
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor, public_handle
from babygpt.status import RunStatus
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from tests.helpers import wait_for

TEACHER = Actor("teacher-key", admin=True)
SPEC = ExperimentSpec("t", "s", "x", "char", ("gpt",), 100, 8, 32, 3e-3, 0.1)
TINY = dict(steps=20, batch_size=4, block_size=16, lr=3e-3, val_fraction=0.1, axis="parameters")


@pytest.fixture
def lab():
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    laboratory = Laboratory(scheduler)
    yield laboratory
    scheduler.stop_all(wait=20)


def test_the_default_sizes_span_about_thirty_times_and_the_tested_model_is_ten_times_the_largest():
    points = plan_points(SPEC, list(DEFAULT_SIZES), [1, 2])
    xs = sorted({SPEC.x_of(p) for p in points})
    assert len(xs) == 5 and 30 <= xs[-1] / xs[0] <= 35
    assert [p.seed for p in points[:5]] == [1] * 5, "every size once before any size's second seed"
    larger = ten_times_larger(SPEC, points)
    assert 9 <= SPEC.x_of(larger) / xs[-1] <= 11


def test_a_switch_experiment_plans_both_rungs_and_wrong_choices_are_sentences():
    both = ExperimentSpec("t", "s", "x", "char", ("gpt", "gpt+rope"), 100, 8, 32, 3e-3, 0.1)
    assert {p.preset for p in plan_points(both, [(1, 2, 32), (2, 4, 64), (3, 4, 96)], [1, 2])} == {"gpt", "gpt+rope"}
    with pytest.raises(BabyGPTError, match="Each size and each seed is listed once"):
        plan_points(SPEC, [(1, 2, 32), (1, 2, 32)], [1])
    with pytest.raises(BabyGPTError, match="n_head"):
        plan_points(SPEC, [(1, 3, 32)], [1])


def test_a_run_killed_mid_way_is_requeued_and_finishes(lab, small_text):
    record = lab.start(TEACHER, Corpus.from_text("tiny", small_text), "char", ("gpt",), [(1, 2, 16)], [1],
                       **{**TINY, "steps": 3000}, on_server=True)
    point = lab.records.points(record.id)[0]
    run_id = point.run_id
    assert run_id and lab.store.get(run_id).owner is None, "queued on the server, owned by nobody"
    # killed once it has a checkpoint and before it ends (3,000 steps; a checkpoint at every 600)
    wait_for(lambda: lab.store.has_checkpoint(run_id), 120, "a checkpoint")
    info = lab.store.get(run_id)
    assert info.status.training, "still training when killed"
    os.kill(info.pid, signal.SIGKILL)
    wait_for(lambda: lab.store.get(run_id).status is RunStatus.INTERRUPTED, 30, "the death to be recorded")
    lab.sync()
    assert lab.store.get(run_id).status.active, "queued again, from its checkpoint"
    wait_for(lambda: lab.store.get(run_id).status is RunStatus.DONE, 180, "the re-queued run to finish")
    view = lab.view(force=True)
    row = view.rows[0]
    assert row.state is PointState.DONE and row.run_id == run_id and len(row.lost) == 1
    assert "interrupted" in row.lost[0]
    assert len(view.results) == 1 and view.results[0].who == SERVER
    assert "so far 1 finished run of 1 size." in view.arms[0].why, "the fit says how many points it rests on"


def test_a_student_gets_the_next_point_and_a_stopped_run_is_handed_out_again(lab, small_text):
    lab.store.set_handle("ana-key", "Ana")
    record = lab.start(TEACHER, Corpus.from_text("tiny", small_text), "char", ("gpt",), [(1, 2, 16), (1, 2, 24)],
                       [1], **TINY)
    first = lab.join("ana-key")
    assert first.owner == "ana-key" and first.name == "experiment: gpt 1×16, 2 heads · seed 1"
    with pytest.raises(BabyGPTError, match="You already have a run queued or training"):
        lab.join("ana-key")
    second = lab.join("ben-key")
    assert second.name == "experiment: gpt 1×24, 2 heads · seed 1"
    with pytest.raises(BabyGPTError, match="Every run of this experiment is taken"):
        lab.join("cleo-key")
    lab.scheduler.stop(Actor("ben-key"), second.id)  # queued behind Ana's: taken off, or stopped mid-way
    wait_for(lambda: not lab.store.exists(second.id) or lab.store.get(second.id).status.ended, 60, "the stop")
    lab.sync()
    again = lab.join("cleo-key")
    assert again.name == second.name and again.id != second.id
    points = lab.records.points(record.id)
    assert points[1].run_id == again.id and points[1].owner == "cleo-key" and len(points[1].lost) == 1
    wait_for(lambda: all(lab.store.get(i).status is RunStatus.DONE for i in (first.id, again.id)), 120,
             "both runs")
    view = lab.view(force=True)
    assert [r.who for r in view.results] == ["Ana", public_handle("cleo-key")]


def test_the_board_exports_the_law_as_csv_and_a_picture_with_names_as_text():
    points = plan_points(SPEC, list(DEFAULT_SIZES), [1, 2])
    hostile = '=HYPERLINK("http://x")<script>'
    results = [Result(p, SPEC.x_of(p), 40 * SPEC.x_of(p) ** -0.3 + 1.5 + (0.01 if p.seed == 1 else -0.01),
                      f"run{k}", hostile if k == 0 else "Ana") for k, p in enumerate(points)]
    arms = fit_arms(SPEC, results)
    assert arms[0].fit is not None and arms[0].fit.points == 10 and arms[0].fit.sizes == 5
    text = results_csv(SPEC, results, arms, [])
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    assert "from 10 runs of 5 sizes" in text
    svg = law_svg(law_plot(SPEC, results, arms, []), law_notes(SPEC, arms, []))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="run"') == 10 and 'class="law"' in svg


def test_the_model_ten_times_larger_is_queued_with_its_prediction_and_checked_against_it(lab, small_text):
    record = lab.start(TEACHER, Corpus.from_text("tiny", small_text), "char", ("gpt",),
                       [(1, 2, 16), (1, 2, 24), (1, 2, 32)], [1, 2], **TINY, on_server=True)
    with pytest.raises(BabyGPTError, match="No law to test yet: A law is fitted from 4 finished runs"):
        lab.test_larger(TEACHER)
    wait_for(lambda: all(p.run_id and lab.store.get(p.run_id).status is RunStatus.DONE
                         for p in lab.records.points(record.id)), 240, "the six runs")
    view = lab.view(force=True)
    fit = view.arms[0].fit
    assert fit is not None and fit.points == 6 and fit.sizes == 3
    larger = lab.test_larger(TEACHER)
    assert 9 <= view.spec.x_of(larger) / view.spec.x_of(Point("gpt", 1, 2, 32, 1)) <= 11
    with pytest.raises(BabyGPTError, match="already queued or trained"):
        lab.test_larger(TEACHER)
    tested = lab.records.points(record.id)[-1]
    assert tested.is_prediction and tested.prediction["predicted"] == pytest.approx(fit.predict(view.spec.x_of(larger)))
    wait_for(lambda: lab.store.get(tested.run_id).status is RunStatus.DONE, 120, "the larger model")
    view = lab.view(force=True)
    (point, check), = view.checks
    assert point == larger and check.observed == pytest.approx(view.results[-1].loss)
    assert view.arms[0].fit.points == 6, "the tested model tests the law; it is not one of its points"
    assert "; it reached " in check.sentence("bits/byte")
    text = results_csv(view.spec, view.results, view.arms, view.checks)
    assert "# tested gpt" in text and text.strip().endswith(",tested")


def test_what_the_teacher_types_is_read_or_refused_in_a_sentence():
    assert parse_sizes("1×2×32, 2x4x64; 3*4*96") == [(1, 2, 32), (2, 4, 64), (3, 4, 96)]
    assert parse_sizes(sizes_text(DEFAULT_SIZES)) == list(DEFAULT_SIZES)
    assert parse_seeds("1, 2,3") == [1, 2, 3]
    with pytest.raises(BabyGPTError, match="three whole numbers such as 2×4×64; '2×64' is not"):
        parse_sizes("1×2×32, 2×64")
    with pytest.raises(BabyGPTError, match="List at least one size"):
        parse_sizes(" , ")
    with pytest.raises(BabyGPTError, match="Seeds are whole numbers separated by commas"):
        parse_seeds("1, two")


def test_a_switch_on_and_off_gets_a_law_each():
    both = ExperimentSpec("t", "s", "x", "char", ("gpt", "gpt+rope"), 100, 8, 32, 3e-3, 0.1)
    points = plan_points(both, list(DEFAULT_SIZES), [1])
    results = [Result(p, both.x_of(p), (30 if p.preset == "gpt" else 20) * both.x_of(p) ** -0.3 + 1.5, f"r{k}", "Ana")
               for k, p in enumerate(points)]
    gpt, rope = fit_arms(both, results)
    assert (gpt.preset, rope.preset) == ("gpt", "gpt+rope")
    assert gpt.fit.a == pytest.approx(30, rel=1e-3) and rope.fit.a == pytest.approx(20, rel=1e-3)
    plot = law_plot(both, results, [gpt, rope], [])
    assert [len(s.xs) for s in plot.series] == [5, 5]


def test_a_bpe_experiment_trains_every_point_with_the_teachers_bpe(lab, small_text):
    from babygpt.text.bpe import BPESettings

    record = lab.start(TEACHER, Corpus.from_text("tiny", small_text), "bpe", ("gpt",), [(1, 2, 16)], [1], **TINY,
                       bpe=BPESettings(300, "gpt4"))
    spec = ExperimentSpec.from_dict(record.spec)
    assert "tokenizer bpe, 300 tokens, GPT-4 split" in spec.sentence()
    again = Laboratory(lab.scheduler)  # another server process: the BPE rebuilt from the text and the spec
    corpus, tokenizer = again._text(record)
    assert tokenizer.kind == "bpe" and tokenizer.bpe.split == "gpt4"
    assert tokenizer.bpe.merges == lab._text(record)[1].bpe.merges


@pytest.mark.parametrize("status, state", [
    (RunStatus.QUEUED, PointState.QUEUED), (RunStatus.RUNNING, PointState.TRAINING), (RunStatus.DONE, PointState.DONE),
    (RunStatus.INTERRUPTED, PointState.RESUME), (RunStatus.FAILED, PointState.REOPEN),
    (RunStatus.STOPPED, PointState.REOPEN)])
def test_what_a_points_run_says_happens_next(status, state):
    from types import SimpleNamespace

    from babygpt.orchestration.experiment import point_state
    from babygpt.store.experiments import PointRecord

    point = PointRecord("e", 0, {}, "run-1", "ana", 1, None, None, [])
    assert point_state(point, SimpleNamespace(status=status)) is state
    assert point_state(point, None) is PointState.REOPEN, "its run was deleted"


def test_a_point_whose_runs_keep_dying_is_given_up_with_the_reason(lab, small_text):
    record = lab.start(TEACHER, Corpus.from_text("tiny", small_text), "char", ("gpt",), [(1, 2, 16)], [1], **TINY)
    for attempt in range(3):
        assert lab.records.claim(record.id, "ana-key") is not None
        lab.records.set_run(record.id, 0, f"gone-{attempt}")  # a run deleted under the experiment
        lab.sync()
    point = lab.records.points(record.id)[0]
    assert point.run_id is None and len(point.lost) == 3 and point.attempts == 3
    assert point.given_up == "its runs died 3 times; the last one deleted"
    assert lab.records.claim(record.id, "ben-key") is None, "a given-up point is handed to nobody"
    assert lab.view(force=True).rows[0].state is PointState.GIVEN_UP


def test_a_plan_too_small_for_any_law_says_so_before_a_run_finishes():
    two_sizes = plan_points(SPEC, [(1, 1, 16), (1, 2, 32)], [1])
    [arm] = fit_arms(SPEC, [], two_sizes)
    assert arm.fit is None and arm.why == (
        "A law is fitted from 4 finished runs of 3 sizes or more; so far 0 finished runs of 0 sizes. This experiment "
        "plans only 2 runs of 2 sizes, so no law can be fitted to it: start one with more sizes or seeds.")
    [enough] = fit_arms(SPEC, [], plan_points(SPEC, list(DEFAULT_SIZES), [1]))
    assert "plans only" not in enough.why
    assert two_sizes[0].shape == "1×16, 1 head" and two_sizes[1].shape == "1×32, 2 heads"
