"""The scaling law's fit: known parameters recovered from synthetic points, within the uncertainty it states."""

from __future__ import annotations

import numpy as np
import pytest

from babygpt.errors import BabyGPTError
from babygpt.lessons.scaling_law import MIN_POINTS, fit_scaling_law, prediction_for

A, ALPHA, C = 40.0, 0.3, 1.5
SIZES = np.geomspace(1.2e4, 3.9e5, 5)  # five sizes spanning 32×, as the default experiment's


def law(x):
    return A * np.asarray(x) ** -ALPHA + C


def test_exact_points_give_the_law_back():
    fit = fit_scaling_law(SIZES, law(SIZES))
    assert fit.a == pytest.approx(A, rel=1e-5) and fit.alpha == pytest.approx(ALPHA, rel=1e-6)
    assert fit.c == pytest.approx(C, rel=1e-6) and fit.points == 5 and fit.sizes == 5
    assert fit.predict(3.9e6) == pytest.approx(float(law(3.9e6)), rel=1e-6)


def test_noisy_points_recover_the_law_within_the_stated_uncertainty():
    rng = np.random.default_rng(7)
    x = np.repeat(SIZES, 3)  # five sizes × three seeds
    fit = fit_scaling_law(x, law(x) + rng.normal(0, 0.01, x.size))
    assert fit.points == 15 and fit.sizes == 5
    for name, true in (("a", A), ("alpha", ALPHA), ("c", C)):
        assert abs(getattr(fit, name) - true) <= 3 * getattr(fit, name + "_err"), name
    assert 0.005 < fit.scatter < 0.02  # one run's scatter: the noise put in


def test_the_stated_uncertainty_covers_the_truth_as_often_as_it_says():
    """Over 200 experiments of ten noisy runs, ±2 standard errors hold the true α, c and the prediction for a model
    ten times larger about 95% of the time (the Jacobian's covariance is a linear approximation: at least 85%)."""
    rng = np.random.default_rng(0)
    x = np.repeat(SIZES, 2)
    truth_far = float(law(10 * SIZES[-1]))
    hits = np.zeros(3)
    for _ in range(200):
        fit = fit_scaling_law(x, law(x) + rng.normal(0, 0.01, x.size))
        far = prediction_for(fit, 10 * SIZES[-1])
        hits += [abs(fit.alpha - ALPHA) <= 2 * fit.alpha_err, abs(fit.c - C) <= 2 * fit.c_err,
                 abs(far.predicted - truth_far) <= 2 * far.predicted_err]
    assert (hits / 200 >= 0.85).all(), hits / 200
    assert (hits / 200 <= 1.0).all()


def test_a_prediction_says_how_far_the_run_landed():
    fit = fit_scaling_law(np.repeat(SIZES, 2), law(np.repeat(SIZES, 2)) + np.tile([0.01, -0.01], 5))
    check = prediction_for(fit, 10 * SIZES[-1])
    assert check.observed is None and "not trained yet" in check.sentence("bits/byte")
    near = type(check)(check.x, check.predicted, check.predicted_err, check.run_err, check.predicted + 0.5 * check.run_err)
    assert near.sigmas == pytest.approx(0.5) and "within one standard error" in near.sentence("bits/byte")
    far = type(check)(check.x, check.predicted, check.predicted_err, check.run_err, check.predicted + 5 * check.run_err)
    assert "5.0 standard errors off: the law does not hold this far out" in far.sentence("bits/byte")


@pytest.mark.parametrize("x, y", [([1e4, 2e4, 4e4], [3.0, 2.8, 2.7]), ([1e4, 1e4, 2e4, 2e4], [3.0, 3.1, 2.8, 2.9])])
def test_too_few_points_or_sizes_is_a_sentence(x, y):
    said = f"fitted from {MIN_POINTS} finished runs of 3 sizes or more; so far [0-9]+ finished runs? of [0-9]+ sizes?\\."
    with pytest.raises(BabyGPTError, match=said):
        fit_scaling_law(x, y)


def test_a_bad_point_is_a_sentence():
    with pytest.raises(BabyGPTError, match="positive number"):
        fit_scaling_law([1e4, -1, 2e4, 3e4], [3.0, 2.9, 2.8, 2.7])
