"""A scaling law fitted to a class's runs: loss = a·N^(−α) + c, a power law with an offset, by least squares.

N is what the runs differ in (parameters, or training compute); c is the loss no size reaches (the text's own
entropy as these models see it, plus what the fixed budget costs); α is how fast the rest falls. The fit is
numpy only: for a fixed α the law is linear in (a, c), so α is first found on a grid with (a, c) solved exactly
(variable projection: no starting guess to get wrong), then all three are refined together by Gauss–Newton. The
uncertainty is the Jacobian's: cov = s²·(JᵀJ)⁻¹ with s² = RSS / (n − 3), the classical estimate, which
``tests/test_scaling_law.py`` holds to its stated coverage on synthetic points. A prediction carries the fit's
uncertainty and, for one run, the scatter of a single run (s) beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from babygpt.errors import BabyGPTError

MIN_POINTS = 4  # three parameters and at least one point left over to measure the scatter with
MIN_SIZES = 3  # a power law with an offset through two sizes is any curve at all
ALPHA_GRID = np.geomspace(0.01, 4.0, 400)
GAUSS_NEWTON_STEPS = 50


@dataclass(frozen=True)
class ScalingFit:
    """The law's parameters with their standard errors, and what the fit rests on. ``x0``: the geometric mean of
    the points' x, the scale the fit is computed at (so N of 10⁴ and 10⁹ are equally well conditioned)."""

    a: float
    alpha: float
    c: float
    a_err: float
    alpha_err: float
    c_err: float
    points: int
    sizes: int
    scatter: float  # s: the root mean square residual with n − 3 degrees of freedom, one run's spread about the law
    x0: float
    cov: tuple[tuple[float, ...], ...]  # the covariance of (A, α, c), with A the law's factor at x0: a = A·x0^α

    @property
    def amplitude(self) -> float:
        """A = a·x0^(−α): the law's factor where the points are, what ``cov`` is about."""
        return self.a * self.x0 ** (-self.alpha)

    def predict(self, x: float) -> float:
        return self.amplitude * (x / self.x0) ** (-self.alpha) + self.c

    def predict_err(self, x: float) -> float:
        """The standard error of the law's value at ``x`` (the fit's own uncertainty, by the delta method)."""
        u = x / self.x0
        grad = np.array([u ** -self.alpha, -self.amplitude * u ** -self.alpha * math.log(u), 1.0])
        return float(math.sqrt(max(0.0, grad @ np.array(self.cov) @ grad)))

    def run_err(self, x: float) -> float:
        """How far one run at ``x`` may land from the prediction: the fit's error and one run's scatter together."""
        return math.hypot(self.predict_err(x), self.scatter)

    def sentence(self, unit: str, what: str) -> str:
        """The law as a person reads it: "loss = 3.1·N^(−0.21 ± 0.03) + 1.42 ± 0.05 bits/byte, from 10 runs of 5
        sizes"."""
        return (f"{unit} ≈ {self.a:.3g}·{what}^(−{self.alpha:.3f} ± {self.alpha_err:.3f}) + {self.c:.3f} ± "
                f"{self.c_err:.3f}, from {self.points} runs of {self.sizes} sizes (one run scatters ±"
                f"{self.scatter:.3f} about it)")


def _grid_start(u: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(α, A, c, RSS) of the best α on ``ALPHA_GRID``, each α's (A, c) the least-squares line of y on u^(−α)."""
    powers = u[None, :] ** -ALPHA_GRID[:, None]
    centred = powers - powers.mean(axis=1, keepdims=True)
    amps = centred @ (y - y.mean()) / np.maximum((centred ** 2).sum(axis=1), 1e-300)
    offsets = y.mean() - amps * powers.mean(axis=1)
    rss = ((amps[:, None] * powers + offsets[:, None] - y[None, :]) ** 2).sum(axis=1)
    k = int(np.argmin(rss))
    return float(ALPHA_GRID[k]), float(amps[k]), float(offsets[k]), float(rss[k])


def _residuals_and_jacobian(theta: np.ndarray, u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    amp, alpha, c = theta
    power = u ** -alpha
    residuals = amp * power + c - y
    jac = np.column_stack([power, -amp * power * np.log(u), np.ones_like(u)])
    return residuals, jac


def check_points(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The points as arrays, or a sentence saying why a law cannot be fitted to them."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise BabyGPTError("Each point needs one size and one loss.")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)) and np.all(xs > 0)):
        raise BabyGPTError("Every size must be a positive number and every loss a finite one.")
    sizes = len(np.unique(xs))
    if len(xs) < MIN_POINTS or sizes < MIN_SIZES:
        raise BabyGPTError(f"A law is fitted from {MIN_POINTS} finished runs of {MIN_SIZES} sizes or more; "
                           f"so far {len(xs)} finished run{'s' * (len(xs) != 1)} of {sizes} size{'s' * (sizes != 1)}.")
    return xs, ys


def fit_scaling_law(x: Sequence[float], y: Sequence[float]) -> ScalingFit:
    """Fit loss = a·x^(−α) + c (α > 0) to the points; raises BabyGPTError with too few of them."""
    xs, ys = check_points(x, y)
    x0 = float(np.exp(np.mean(np.log(xs))))
    u = xs / x0
    alpha0, amp0, c0, rss = _grid_start(u, ys)
    theta = np.array([amp0, alpha0, c0])
    for _ in range(GAUSS_NEWTON_STEPS):
        residuals, jac = _residuals_and_jacobian(theta, u, ys)
        step, *_ = np.linalg.lstsq(jac, -residuals, rcond=None)
        trial = theta + step
        if trial[1] <= 0:
            break
        trial_rss = float(np.sum(_residuals_and_jacobian(trial, u, ys)[0] ** 2))
        if trial_rss > rss:
            break
        converged = rss - trial_rss <= 1e-14 * max(rss, 1e-300)
        theta, rss = trial, trial_rss
        if converged:
            break
    _, jac = _residuals_and_jacobian(theta, u, ys)
    dof = len(xs) - 3
    s2 = rss / dof
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    amp, alpha, c = (float(v) for v in theta)
    a = amp * x0 ** alpha
    # a = A·x0^α: its error from A's and α's by the delta method
    grad_a = np.array([x0 ** alpha, amp * x0 ** alpha * math.log(x0), 0.0])
    a_err = float(math.sqrt(max(0.0, grad_a @ cov @ grad_a)))
    errs = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return ScalingFit(a, alpha, c, a_err, float(errs[1]), float(errs[2]), len(xs), len(np.unique(xs)),
                      math.sqrt(s2), x0, tuple(tuple(float(v) for v in row) for row in cov))


@dataclass(frozen=True)
class PredictionCheck:
    """What the law predicted for a model before it trained, and what the model then reached."""

    x: float
    predicted: float
    predicted_err: float  # the law's own standard error there
    run_err: float  # with one run's scatter: how far one run may land
    observed: float | None = None

    @property
    def sigmas(self) -> float | None:
        """How far the run landed from the prediction, in units of ``run_err``."""
        if self.observed is None or self.run_err <= 0:
            return None
        return (self.observed - self.predicted) / self.run_err

    def sentence(self, unit: str) -> str:
        said = f"predicted {self.predicted:.3f} ± {self.run_err:.3f} {unit} (the law itself ±{self.predicted_err:.3f})"
        if self.observed is None:
            return said + "; not trained yet."
        off = self.observed - self.predicted
        sigmas = self.sigmas
        verdict = "" if sigmas is None else (
            " — within one standard error" if abs(sigmas) <= 1 else
            " — within two standard errors" if abs(sigmas) <= 2 else
            f" — {abs(sigmas):.1f} standard errors off: the law does not hold this far out")
        return f"{said}; it reached {self.observed:.3f}, {off:+.3f} {unit} off{verdict}."


def prediction_for(fit: ScalingFit, x: float) -> PredictionCheck:
    """The law's prediction at ``x``, frozen before the model there trains."""
    return PredictionCheck(x, fit.predict(x), fit.predict_err(x), fit.run_err(x))
