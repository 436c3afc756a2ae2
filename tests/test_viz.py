"""Figures are pure functions: check the numbers they draw, on inputs small enough to work out by hand."""

import math

import numpy as np
import pytest

from babygpt.figures.viz import (
    attention_color_range,
    attention_grid,
    attention_heatmap,
    downsample_indices,
    ema,
    loss_figure,
    next_token_figure,
    percent_tickformat,
    tokens_html,
)
from babygpt.lessons.baselines import Baselines


def test_ema_with_bias_correction():
    assert ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    # avg1 = 0.5*1 = 0.5 → /(1-0.5) = 1; avg2 = 0.5*0.5 + 0.5*3 = 1.75 → /(1-0.25) = 2.333…
    assert ema([1.0, 3.0], 0.5) == pytest.approx([1.0, 1.75 / 0.75])
    with pytest.raises(ValueError):
        ema([1.0], 1.0)


def test_downsample_keeps_the_ends_and_an_exact_tail():
    assert downsample_indices(5, max_points=10) == [0, 1, 2, 3, 4]
    kept = downsample_indices(10_000, max_points=100, exact_tail=20)
    assert len(kept) == 100 and kept[0] == 0 and kept[-20:] == list(range(9_980, 10_000))
    assert kept == sorted(set(kept))


def test_loss_figure_draws_the_evaluations_and_the_levels_to_beat():
    evals = [{"step": 0, "elapsed_s": 0.0, "train_loss": 4.0, "val_loss": 4.1},
             {"step": 10, "elapsed_s": 1.0, "train_loss": 3.0, "val_loss": 3.2}]
    baselines = Baselines(uniform=math.log(65), unigram=4.05, bigram=3.5, chars_per_token=1.0)
    fig = loss_figure([], evals, baselines=baselines)
    val = next(t for t in fig.data if t.name == "val (eval)")
    assert list(val.y) == [4.1, 3.2] and list(val.x) == [0, 10]
    assert fig.layout.shapes[0].y0 == pytest.approx(math.log(65))
    notes = [a.text for a in fig.layout.annotations]
    # evaluations come every 10 steps: a level is passed *by* the evaluation that first shows it
    assert notes == ["uniform guess (ln V) 4.17<br>below it from the start", "unigram counts 4.05<br>passed by step 10",
                     "bigram counts 3.50<br>passed by step 10"]


def test_an_empty_loss_chart_shows_the_scale_the_curve_will_come_down():
    fig = loss_figure([], [], vocab_size=65)
    assert list(fig.layout.yaxis.range) == [0, pytest.approx(math.log(65) * 1.15)]
    assert [a.text for a in fig.layout.annotations] == ["uniform guess (ln V) 4.17"]


def test_causal_mask_is_drawn_empty_and_only_for_a_model_that_had_one():
    m = np.arange(9, dtype=float).reshape(3, 3)
    z = np.array(attention_heatmap(m, ["a", "b", "c"], "t", kind="raw", causal=True).data[0].z, dtype=float)
    assert np.isnan(z[0, 1]) and np.isnan(z[0, 2]) and np.isnan(z[1, 2])
    assert z[2, 0] == 6.0 and z[1, 1] == 4.0
    unmasked = np.array(attention_heatmap(m, ["a", "b", "c"], "t", kind="raw", causal=False).data[0].z, dtype=float)
    assert np.array_equal(unmasked, m), "a run trained without the mask is drawn as it attended: the future too"
    grid = attention_grid(np.stack([m, m]), ["a", "b", "c"], "t", kind="raw", causal=False)
    assert all(np.array_equal(np.array(trace.z, dtype=float), m) for trace in grid.data)


def test_weights_can_be_drawn_on_a_scale_that_fits_them():
    thin = np.full((1, 4, 4), 0.25)  # a long prompt spreads its weights: white on a 0–1 scale
    assert attention_color_range(thin, "weights") == (0.0, 1.0)
    assert attention_color_range(thin, "weights", fit=True) == (0.0, 0.25)


def test_score_colours_are_centred_on_zero_and_shared_by_map_and_grid():
    heads = np.array([[[1.0, 99.0], [-3.0, 2.0]],  # 99 is in the masked future: it must not set the range
                      [[0.5, 0.0], [4.0, -1.0]]])
    assert attention_color_range(heads, "raw") == (-4.0, 4.0)
    assert attention_color_range(heads, "raw", causal=False) == (-99.0, 99.0)  # no mask: the future counts too
    assert attention_color_range(heads, "weights") == (0.0, 1.0)
    grid = attention_grid(heads, ["a", "b"], "t", kind="raw", causal=True)
    single = attention_heatmap(heads[0], ["a", "b"], "t", kind="raw", color_range=attention_color_range(heads, "raw"),
                               causal=True)
    assert (grid.layout.coloraxis.cmin, grid.layout.coloraxis.cmax) == (-4.0, 4.0)
    assert (single.data[0].zmin, single.data[0].zmax) == (-4.0, 4.0)
    alone = attention_heatmap(heads[0], ["a", "b"], "t", kind="scaled", causal=True)
    assert (alone.data[0].zmin, alone.data[0].zmax) == (-3.0, 3.0)  # on its own, still symmetric about 0


@pytest.mark.parametrize("top, fmt", [(0.003, ".2%"), (0.012, ".1%"), (0.049, ".1%"), (0.3, ".0%"), (1.1, ".0%")])
def test_percent_ticks_have_enough_decimals(top, fmt):
    assert percent_tickformat(top) == fmt


def test_next_token_figure_axis_reads_small_probabilities():
    fig = next_token_figure([("a", 0.012), ("b", 0.011)], chosen="a")
    assert fig.layout.xaxis.tickformat == ".1%"
    assert list(fig.data[0].marker.color) == ["#dc2626", "#2563eb"]  # the chosen token stands out


def test_tokens_html_escapes_and_shows_newlines():
    html = tokens_html([("<b>", 1), ("\n", 2), (" ", 3)])
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert "↵<br>" in html and 'title="id 3"' in html


def test_the_surprise_view_says_what_its_colours_mean():
    from babygpt.figures.viz import surprise_legend

    assert "surprised (loss 5+ nats)" in surprise_legend(False) and "expected (loss 0)" in surprise_legend(False)
    both = surprise_legend(True)
    assert "second run less surprised by 2.5+ nats" in both and "more surprised by 2.5+ nats" in both
