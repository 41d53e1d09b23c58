"""Neural scaling laws: loss surfaces, compute-optimal allocation and how to fit them.

The chapter's objects, in the order the chapter (and this module) meets them:

1. a teacher-student model with a power-law spectrum (:func:`power_law_spectrum`,
   :func:`teacher_student_risk`, :func:`teacher_student_width_gap`) in which the scaling
   exponents can be derived (Bahri et al., 2024), and :func:`power_law_fit`, the saturating
   power law ``L(x) = L_inf + (x0 / x)^alpha`` of Henighan et al. (2020) fitted by variable
   projection (also used by other chapters);
2. a small training sweep of MLPs the chapter runs itself (:func:`training_sweeps`);
3. the Chinchilla loss surface ``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al.,
   2022) with its compute-optimal allocation (:func:`chinchilla_loss`,
   :func:`compute_optimal`);
4. IsoFLOP parabolas (:func:`isoflop_grid`, :func:`fit_approach2`) and their bias
   (:func:`approach2_bias`);
5. variable projection (:func:`fit_variable_projection`, Golub and Pereyra, 1973) and
   :func:`bootstrap` confidence intervals for any fit;
6. the direct robust fit from a grid of starts (:func:`fit_approach3`, the protocol of
   Besiroglu et al., 2024) on the real Chinchilla points;
7. the prediction of a held-out budget (:func:`predict_held_out`);

then one function per figure and the explorer. Every public function declares its
arguments' constraints at its entry (``companion._validation``), so bad input fails with
an error naming the argument before any formula runs.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.linalg  # noqa: F401  (load scipy's BLAS before thread_limit limits it)
import scipy.optimize  # noqa: F401
import torch

from ._validation import Array, Interval, Labels, Options, as_array, check_params, validate_params
from .data import ChinchillaData
from .plotting import subplots
from .training import progress, thread_limit

__all__ = [
    "PowerLawFit", "power_law_fit",
    "ChinchillaParams", "HOFFMANN_2022", "BESIROGLU_2024", "BESIROGLU_2024_HUBER",
    "BESIROGLU_2024_SE",
    "chinchilla_loss", "compute_optimal", "optimal_exponents",
    "IsoflopData", "isoflop_grid",
    "ScalingFit", "fit_approach2", "fit_approach3", "fit_variable_projection",
    "approach3_start_grid", "load_approach3_grid", "approach2_bias", "METHODS", "predict_held_out",
    "BootstrapResult", "bootstrap",
    "power_law_spectrum", "teacher_student_risk", "teacher_student_sweep", "teacher_student_width_gap",
    "SweepResult", "training_sweep", "training_sweeps",
    "plot_power_law_fit", "plot_teacher_student", "plot_training_sweep", "plot_isoflop_fits",
    "plot_approach2_bias", "plot_chinchilla_fits", "plot_bootstrap", "plot_sweep_seeds",
    "plot_held_out",
    "scaling_explorer",
]


# ---------------------------------------------------------------------------------------
# Parameter constraints shared by the fits below (companion._validation)
# ---------------------------------------------------------------------------------------
class _PositiveArray(Array):
    """:class:`~companion._validation.Array` whose entries are all strictly positive."""

    def _check(self, value, name, context):
        super()._check(value, name, context)
        arr = self._numpy(value)
        if arr.size and np.min(arr) <= 0:
            raise ValueError(f"{name} must have positive entries, got minimum {np.min(arr):.4g}")


class _RealOrNaN(Interval):
    """A finite real number, or NaN (a value that is undefined by design)."""

    def __init__(self):
        super().__init__(float)

    def _check(self, value, name, context):
        if not np.isnan(float(value)):
            super()._check(value, name, context)


class _DesignGroups(Array):
    """Budget indices of a sweep's runs: ``-1`` (a plain checkpoint) or ``[0, high)``."""

    def __init__(self, high, shape):
        super().__init__(1, shape=shape, dtype="integer", low=-1)
        self.bound = high

    def _check(self, value, name, context):
        super()._check(value, name, context)
        arr, high = self._numpy(value), self.bound(context.arguments)
        if arr.size and high is not None and arr.max() >= high:
            raise ValueError(f"{name} must be below the number of budgets ({high}), got maximum {arr.max()}")
        if arr.size and high is None and arr.max() >= 0:
            raise ValueError(f"{name} must be -1 everywhere when there are no budgets")


class _Exponents(Array):
    """A search interval ``(low, high)`` with ``0 < low < high <= high`` (exponents: 50)."""

    def __init__(self, high=50.0):
        super().__init__(1, shape=(2,), high=high)

    def _check(self, value, name, context):
        super()._check(value, name, context)
        low, high = self._numpy(value).astype(float)
        if not 0 < low < high:
            raise ValueError(f"{name} must satisfy 0 < low < high, got ({low:g}, {high:g})")


#: Largest scale (N, D, C) accepted: ``6 N D`` and the squares of a least-squares fit stay finite.
_MAX_SCALE = 1e60
#: Largest loss accepted (losses are squared by the fits).
_MAX_LOSS = 1e100
_POSITIVE = Interval(float, 0, None, closed="neither")
_SCALE = [Interval(float, 0, _MAX_SCALE, closed="neither"), _PositiveArray(max_abs=_MAX_SCALE)]
_POINTS = {"N": [_PositiveArray(1, shape=("n",), max_abs=_MAX_SCALE)],
           "D": [_PositiveArray(1, shape=("n",), max_abs=_MAX_SCALE)],
           "loss": [_PositiveArray(1, shape=("n",), max_abs=_MAX_LOSS)]}
_EXPONENT_GRID = [_PositiveArray(1, min_size=1, high=50.0), None]


def _check_points(N, D, loss):
    """``(N, D, loss)`` as float arrays (already validated at the entry by ``_POINTS``)."""
    return as_array(N, "N"), as_array(D, "D"), as_array(loss, "loss")


def _broadcast(**arrays):
    """Raise ``ValueError`` naming the arrays when they do not broadcast together."""
    try:
        np.broadcast_shapes(*(np.shape(a) for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {np.shape(a)}" for k, a in arrays.items())
        raise ValueError(f"{' and '.join(arrays)} must broadcast together, got shapes {shapes}") from None


def _check_items(values, name, kind):
    """``values`` must be a non-empty list or tuple of ``kind`` instances."""
    if not isinstance(values, (list, tuple)) or not values:
        raise TypeError(f"{name} must be a non-empty list of {kind.__name__}, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, kind):
            raise TypeError(f"{name}[{i}] must be a {kind.__name__}, got {type(v).__name__}")
    return list(values)


def _check_curves(curves, name, n):
    """``curves`` must map labels to finite 1-D arrays of length ``n``; returns them as arrays."""
    if not isinstance(curves, dict) or not curves:
        raise TypeError(f"{name} must be a non-empty dict of label -> values, got {type(curves).__name__}")
    out = {}
    for label, values in curves.items():
        arr = as_array(values, f"{name}[{label!r}]", ndim=1)
        if arr.shape != (n,):
            raise ValueError(f"{name}[{label!r}] must have {n} values (one per x), got shape {arr.shape}")
        out[label] = arr
    return out


# ---------------------------------------------------------------------------------------
# Teacher-student regression with a power-law spectrum (Bahri et al., 2024)
# ---------------------------------------------------------------------------------------
_SPECTRUM = [_PositiveArray(1, min_size=1, max_abs=1e100)]


@validate_params({"num_features": [Interval(int, 1, None)],
                  "exponent": [Interval(float, 0, 50, closed="right")]})
def power_law_spectrum(num_features: int, exponent: float) -> np.ndarray:
    """Eigenvalues ``lambda_k = k^-exponent`` for ``k = 1 .. num_features``.

    A kernel (or feature covariance) with this spectrum gives power-law learning curves
    (Bahri et al., 2024): with a teacher of unit weight per mode the test error after
    ``n`` samples is about the tail ``sum_{k > n} lambda_k ~ n^-(exponent - 1)``.
    ``0 < exponent <= 50``.

    References
    ----------
    - bahri2024explaining: Bahri et al. (2024), "Explaining Neural Scaling Laws".

    Examples
    --------
    >>> power_law_spectrum(4, 2.0).tolist()
    [1.0, 0.25, 0.1111111111111111, 0.0625]
    """
    return np.arange(1, num_features + 1, dtype=float) ** -exponent


def _teacher_student_once(seed, trial, spectrum, n_train, n_features, noise, ridge):
    P = spectrum.size
    rng = np.random.default_rng([seed, trial])  # teacher and student features: shared by every n
    w = rng.standard_normal(P)                                    # (P,) teacher
    F = None if n_features is None else rng.standard_normal((P, n_features)) / np.sqrt(n_features)  # (P, M)
    rng = np.random.default_rng([seed, trial, n_train or 0])  # the training sample
    if n_train is None:  # infinite data: the best student in the span of its features
        if F is None:
            return 0.0
        S = F.T @ (spectrum[:, None] * F)                         # (M, M) feature covariance
        v = np.linalg.lstsq(S, F.T @ (spectrum * w), rcond=None)[0]  # (M,)
        diff = w - F @ v
        return float(diff @ (spectrum * diff))
    X = rng.standard_normal((n_train, P)) * np.sqrt(spectrum)    # (n, P) inputs
    y = X @ w + noise * rng.standard_normal(n_train)             # (n,)
    Z = X if F is None else X @ F                                # (n, M) the student's features
    K = Z @ Z.T                                                  # (n, n) kernel
    scale = np.trace(K) / n_train
    coef = np.linalg.solve(K + ridge * scale * np.eye(n_train), y)
    u = Z.T @ coef  # student weights in its own features
    diff = w - (u if F is None else F @ u)
    return float(diff @ (spectrum * diff))


_TEACHER_STUDENT = {"spectrum": _SPECTRUM, "n_features": [Interval(int, 1, None), None],
                    "noise": [Interval(float, 0, 1e3)], "ridge": [Interval(float, 0, 1e6)],
                    "trials": [Interval(int, 1, None)], "seed": [Interval(int, 0, None)]}


@validate_params({"n_train": [Interval(int, 1, None), None], **_TEACHER_STUDENT})
@thread_limit()
def teacher_student_risk(n_train, spectrum, *, n_features=None, noise: float = 0.0,
                         ridge: float = 1e-8, trials: int = 4, seed: int = 0) -> float:
    """Excess test risk of ridge regression in a linear teacher-student model.

    Inputs ``x`` have independent coordinates of variances ``spectrum`` (the kernel's
    eigenvalues ``lambda_k``); the teacher is ``y = w . x + noise z`` with ``w ~ N(0, I)``.
    The student is ridge regression (ridge ``ridge`` times the mean kernel diagonal) on
    all features, or on ``n_features`` random projections ``F^T x`` (a random-feature
    model of width ``n_features``). The excess risk ``(w - w_hat)^T Lambda (w - w_hat)``
    is computed exactly, averaged over ``trials`` draws. Trial ``t`` draws the teacher and
    the student's features from the seed ``(seed, t)`` whatever ``n_train``, so curves over
    ``n`` (and the infinite-data limit) are paired. ``n_train=None`` gives the
    infinite-data limit (the best predictor with ``n_features`` features).

    This is the solvable model of Bahri et al. (2024): resolution-limited scaling
    ``~ n^-(a - 1)`` for ``lambda_k = k^-a`` while ``n`` is below the width, and
    variance-limited ``~ 1/n`` corrections once ``n`` exceeds it.

    ``spectrum`` holds positive variances of magnitude at most 1e100 (larger ones overflow
    the kernel); ``0 <= noise <= 1e3`` and ``0 <= ridge <= 1e6``.

    References
    ----------
    - bahri2024explaining: Bahri et al. (2024), "Explaining Neural Scaling Laws".

    Examples
    --------
    >>> spectrum = power_law_spectrum(200, 2.0)
    >>> risks = [teacher_student_risk(n, spectrum, trials=2) for n in (8, 32)]
    >>> print(f"{risks[0]:.3f} -> {risks[1]:.3f}")
    0.248 -> 0.062
    """
    spectrum = as_array(spectrum, "spectrum")
    return float(np.mean([_teacher_student_once(seed, t, spectrum, n_train, n_features, noise, ridge)
                          for t in range(trials)]))


@validate_params({"n_values": [Array(1, dtype="integer", min_size=1, low=1)], **_TEACHER_STUDENT})
@thread_limit()
def teacher_student_sweep(n_values, spectrum, *, n_features=None, noise: float = 0.0,
                          ridge: float = 1e-8, trials: int = 4, seed: int = 0) -> np.ndarray:
    """:func:`teacher_student_risk` for every ``n`` in ``n_values`` (same seed for each).

    ``n_values`` is a 1-D integer array of training-set sizes (each at least 1).

    References
    ----------
    - bahri2024explaining: Bahri et al. (2024), "Explaining Neural Scaling Laws".

    Examples
    --------
    >>> risks = teacher_student_sweep([8, 16, 32], power_law_spectrum(200, 2.0), trials=2)
    >>> risks.shape, bool(np.all(np.diff(risks) < 0))
    ((3,), True)
    """
    n_values = [int(n) for n in as_array(n_values, "n_values", dtype=None)]
    return np.array([teacher_student_risk(n, spectrum, n_features=n_features, noise=noise,
                                          ridge=ridge, trials=trials, seed=seed)
                     for n in progress(n_values, desc="teacher-student")])


def _width_gap_once(seed, trial, spectrum, n_train, widths, ridge):
    """Per-width ``R(M) - R(inf) - dR`` for one draw of teacher, sample and features."""
    P = spectrum.size
    w = np.random.default_rng([seed, trial]).standard_normal(P)  # (P,)
    X = np.random.default_rng([seed, trial, n_train]).standard_normal((n_train, P)) * np.sqrt(spectrum)  # (n, P)
    y = X @ w
    K0 = X @ X.T                           # (n, n) infinite-width kernel
    s0 = np.trace(K0) / n_train
    M0 = np.linalg.inv(K0 + ridge * s0 * np.eye(n_train))
    c0 = M0 @ y
    e0 = w - X.T @ c0                      # error of the infinite-width student
    r0 = float(e0 @ (spectrum * e0))
    gaps = []
    for m in widths:
        F = np.random.default_rng([seed, trial, n_train, m]).standard_normal((P, m)) / np.sqrt(m)  # (P, m)
        Z = X @ F                          # (n, m) width-m random features of the sample
        K = Z @ Z.T
        c = np.linalg.solve(K + ridge * np.trace(K) / n_train * np.eye(n_train), y)
        e = w - F @ (Z.T @ c)
        # first-order change of the risk in dS = F F^T - I (mean zero over F)
        dS_xc = F @ (Z.T @ c0) - X.T @ c0
        dK_c = X @ dS_xc
        ds = (np.trace(K) - np.trace(K0)) / n_train
        dw = dS_xc - X.T @ (M0 @ (dK_c + ridge * ds * c0))
        gaps.append(float(e @ (spectrum * e)) - r0 + 2.0 * float(e0 @ (spectrum * dw)))
    return np.array(gaps)


@validate_params({"n_train": [Interval(int, 1, None)], "spectrum": _SPECTRUM,
                  "widths": [Array(1, dtype="integer", min_size=1, low=1)],
                  "ridge": [Interval(float, 0, 1e6, closed="right")], "trials": [Interval(int, 1, None)],
                  "seed": [Interval(int, 0, None)]})
@thread_limit()
def teacher_student_width_gap(n_train, spectrum, widths, *, ridge: float = 1e-3, trials: int = 16,
                              seed: int = 0) -> np.ndarray:
    """Expected excess risk of a width-``M`` random-feature student over its infinite-width limit.

    The variance-limited regime in model size of Bahri et al. (2024): at fixed data
    (``n_train`` samples), a random-feature student ``x -> (F^T x) . u`` with ``F`` of shape
    ``(P, M)``, entries ``N(0, 1/M)``, trained by ridge regression as in
    :func:`teacher_student_risk`, approaches the kernel (infinite-width) student as ``M``
    grows, and ``E_F[R(M)] - R(inf) ~ 1/M``. Each draw of ``F`` moves the risk by
    ``O(1/sqrt(M))`` with mean zero (the first-order term in ``F F^T - I``), which would
    drown the ``1/M`` mean in any affordable number of draws; this function subtracts that
    first-order term exactly (a control variate of known mean zero), so the average of
    ``trials`` draws estimates the expected gap with ``O(1/M)`` noise.

    Parameters
    ----------
    n_train : int
        Training samples (fixed).
    spectrum : array-like, shape (P,)
        Eigenvalues of the input covariance (:func:`power_law_spectrum`), positive, at
        most 1e100.
    widths : array-like of int, shape (k,)
        Student widths ``M``.
    ridge : float
        Ridge, relative to the mean kernel diagonal, in ``(0, 1e6]``.
    trials, seed : int
        Draws of teacher, sample and features averaged; trial ``t`` uses seed ``(seed, t)``.

    Returns
    -------
    ndarray, shape (len(widths),)
        The estimated ``E[R(M)] - R(inf)`` per width.

    References
    ----------
    - bahri2024explaining: Bahri et al. (2024), "Explaining Neural Scaling Laws".

    Examples
    --------
    >>> gap = teacher_student_width_gap(8, power_law_spectrum(50, 2.0), [16, 64], trials=4)
    >>> gap.shape
    (2,)
    """
    spectrum = as_array(spectrum, "spectrum")
    widths = [int(m) for m in as_array(widths, "widths", dtype=None)]
    return np.mean([_width_gap_once(seed, t, spectrum, n_train, widths, ridge) for t in range(trials)],
                   axis=0)


# ---------------------------------------------------------------------------------------
# Saturating power law (Henighan et al., 2020)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawFit:
    """A fitted saturating power law ``L(x) = l_inf + (x0 / x)^alpha``.

    Attributes
    ----------
    l_inf : float
        The irreducible loss (the limit as ``x`` grows).
    x0 : float
        The scale at which the reducible part equals one.
    alpha : float
        The exponent.
    rms_relative_error : float or None
        Root mean square of ``(prediction - y) / y`` on the fitted points (None when the
        law was not fitted).

    References
    ----------
    - henighan2020scaling: Henighan et al. (2020), "Scaling Laws for Autoregressive Generative Modeling".

    Examples
    --------
    >>> law = PowerLawFit(l_inf=1.0, x0=2.0, alpha=0.5)
    >>> law.predict([2.0, 8.0])
    array([2. , 1.5])
    """

    l_inf: float
    x0: float
    alpha: float
    rms_relative_error: float | None = None

    def __post_init__(self):
        check_params(vars(self), {
            "l_inf": [Interval(float)],
            "x0": [_POSITIVE],
            "alpha": [Interval(float, 0, 50, closed="right")],
            "rms_relative_error": [Interval(float, 0, None), None],
        })

    @validate_params({"x": [_PositiveArray(), _POSITIVE]})
    def predict(self, x):
        """Evaluate ``l_inf + (x0 / x)^alpha`` elementwise at positive ``x`` (any shape)."""
        x = as_array(x, "x")
        return self.l_inf + (self.x0 / x) ** self.alpha


def _power_law_design(log_x, alpha):
    return np.column_stack([np.ones_like(log_x), np.exp(-alpha * log_x)])


def _power_law_inner(log_x, y, alpha, fit_l_inf):
    """Best (l_inf, c) >= 0 for fixed alpha, relative least squares; returns (coef, residuals)."""
    from scipy.optimize import nnls

    design = _power_law_design(log_x, alpha) / y[:, None]
    if not fit_l_inf:
        design = design[:, 1:]
    coef, _ = nnls(design, np.ones_like(y))
    if not fit_l_inf:
        coef = np.array([0.0, coef[0]])
    residual = _power_law_design(log_x, alpha) @ coef / y - 1.0
    return coef, residual


@validate_params({
    "x": [_PositiveArray(1, shape=("n",))],
    "y": [_PositiveArray(1, shape=("n",), max_abs=_MAX_LOSS)],
    "fit_l_inf": ["boolean"],
    "alpha_bounds": [_Exponents()],
})
@thread_limit()
def power_law_fit(x, y, *, fit_l_inf: bool = True, alpha_bounds=(1e-3, 5.0)) -> PowerLawFit:
    """Fit the saturating power law ``L(x) = L_inf + (x0 / x)^alpha`` of Henighan et al. (2020).

    For a fixed exponent the model is linear in ``L_inf`` and ``c = x0^alpha``, so the fit
    is a one-dimensional search over ``alpha`` (a grid, then bounded refinement) with a
    non-negative least-squares solve inside (variable projection, Golub and Pereyra,
    1973). Residuals are relative, ``(L(x_i) - y_i) / y_i``, so that small and large losses
    weigh alike, as a fit in log space would.

    Parameters
    ----------
    x : array-like, shape (n,)
        Positive scales (parameters, data, compute, dictionary size, ...).
    y : array-like, shape (n,)
        Positive losses.
    fit_l_inf : bool
        Fit the offset ``L_inf`` (default). With False, ``L_inf = 0`` (a pure power law).
    alpha_bounds : tuple of float
        Search interval ``(low, high)`` of the exponent, ``0 < low < high <= 50``.

    Returns
    -------
    PowerLawFit
        Fields ``l_inf``, ``x0``, ``alpha`` and a ``predict(x)`` method.

    Raises
    ------
    ValueError
        If fewer than three points (two without ``L_inf``), non-positive values, or a
        fit with no decreasing part (the best ``c`` is zero).

    References
    ----------
    - henighan2020scaling: Henighan et al. (2020), "Scaling Laws for Autoregressive Generative Modeling".
    - golub1973differentiation: Golub and Pereyra (1973), "The Differentiation of Pseudo-Inverses and
      Nonlinear Least Squares Problems Whose Variables Separate".

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    >>> fit = power_law_fit(x, 1.0 + (2.0 / x) ** 0.5)
    >>> print(f"L_inf = {fit.l_inf:.3f}, x0 = {fit.x0:.3f}, alpha = {fit.alpha:.3f}")
    L_inf = 1.000, x0 = 2.000, alpha = 0.500
    """
    from scipy.optimize import minimize_scalar

    x, y = as_array(x, "x"), as_array(y, "y")
    need = 3 if fit_l_inf else 2
    if x.size < need:
        raise ValueError(f"x must have at least {need} points, got {x.size}")
    lo, hi = (float(b) for b in alpha_bounds)
    log_x = np.log(x)

    def objective(log_alpha):
        return float(np.sum(_power_law_inner(log_x, y, np.exp(log_alpha), fit_l_inf)[1] ** 2))

    grid = np.linspace(np.log(lo), np.log(hi), 121)
    values = np.array([objective(g) for g in grid])
    i = int(np.argmin(values))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    if right > left:
        best = minimize_scalar(objective, bounds=(left, right), method="bounded",
                               options={"xatol": 1e-10})
        log_alpha = best.x if best.fun <= values[i] else grid[i]
    else:
        log_alpha = grid[i]
    alpha = float(np.exp(log_alpha))
    coef, residual = _power_law_inner(log_x, y, alpha, fit_l_inf)
    if coef[1] <= 0:
        raise ValueError("y does not decrease with x: no power law to fit")
    return PowerLawFit(l_inf=float(coef[0]), x0=float(coef[1] ** (1.0 / alpha)), alpha=alpha,
                       rms_relative_error=float(np.sqrt(np.mean(residual ** 2))))


# ---------------------------------------------------------------------------------------
# A real training sweep: MLPs of several widths, checkpoints at several data sizes
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepResult:
    """Test losses of a training sweep, one point per (width, checkpoint).

    ``N`` parameters, ``D`` training samples seen, ``loss`` test mean squared error
    (including the label-noise floor ``noise_floor``), ``width`` hidden width. ``group``
    is the index into ``budgets`` of the IsoFLOP design point a run belongs to (its
    ``6 N D`` equals that budget up to rounding ``D`` to whole batches), ``-1`` for the
    plain log-spaced checkpoints.
    """

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    width: np.ndarray
    noise_floor: float
    group: np.ndarray | None = None
    budgets: np.ndarray | None = None
    seed: int | None = None

    def __post_init__(self):
        values = {"budgets": self.budgets, **{k: getattr(self, k) for k in ("N", "D", "loss", "width", "group")},
                  "noise_floor": self.noise_floor, "seed": self.seed}
        budget_count = (lambda args: None if args["budgets"] is None else len(args["budgets"]))
        check_params(values, {
            "budgets": [_PositiveArray(1, min_size=1, max_abs=_MAX_SCALE), None], **_POINTS,
            "width": [Array(1, shape=("n",), dtype="integer", low=1)],
            "group": [_DesignGroups(budget_count, shape=("n",)), None],
            "noise_floor": [Interval(float, 0, None)],
            "seed": [Interval(int, 0, None), None],
        })

    def __len__(self) -> int:
        return len(self.loss)

    def design(self) -> IsoflopData:
        """The runs of the IsoFLOP design (several widths at each budget ``C = 6 N D``)."""
        if self.group is None or self.budgets is None or not np.any(self.group >= 0):
            raise ValueError("this sweep was trained without an IsoFLOP design (budgets=None)")
        m = self.group >= 0
        return IsoflopData(N=self.N[m], D=self.D[m], loss=self.loss[m], group=self.group[m],
                           budgets=np.asarray(self.budgets, dtype=float))

    @validate_params({"budgets": [_PositiveArray(1, min_size=1, max_abs=_MAX_SCALE)]})
    def isoflop(self, budgets) -> IsoflopData:
        """IsoFLOP slices: each width's loss interpolated (log-log) at ``D = C / (6 N)``.

        Only budgets inside a width's range of checkpoints contribute a point.
        """
        budgets = as_array(budgets, "budgets")
        rows = []
        for g, C in enumerate(budgets):
            for w in np.unique(self.width):
                mask = self.width == w
                n = self.N[mask][0]
                d = C / (6.0 * n)
                log_d, order = np.log(self.D[mask]), np.argsort(self.D[mask])
                if log_d.min() <= np.log(d) <= log_d.max():
                    loss = np.exp(np.interp(np.log(d), log_d[order], np.log(self.loss[mask][order])))
                    rows.append((n, d, loss, g))
        if not rows:
            raise ValueError("budgets must intersect the sweep's range of 6 N D")
        N, D, loss, group = (np.array(col) for col in zip(*rows))
        return IsoflopData(N=N, D=D, loss=loss, group=group.astype(int), budgets=budgets)


def _sweep_target(input_dim, num_terms, frequency, generator):
    scale = torch.arange(1, num_terms + 1, dtype=torch.float32)
    omega = torch.randn(num_terms, input_dim, generator=generator) * scale.sqrt()[:, None] * frequency
    phase = torch.rand(num_terms, generator=generator) * 2 * np.pi
    amplitude = 1.0 / scale

    def target(x):
        return (torch.cos(x @ omega.T.to(x.device) + phase.to(x.device)) * amplitude.to(x.device)).sum(-1)

    probe = torch.rand(8192, input_dim, generator=generator) * 2 - 1
    values = target(probe)
    mean, std = values.mean(), values.std()
    return lambda x: (target(x) - mean.to(x.device)) / std.to(x.device)


def _torch_device(device):
    """``device`` (None: the CPU) as a ``torch.device``; an unknown name raises ``ValueError``."""
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device must name a torch device ('cpu', 'cuda', 'cuda:0', ...), got {device!r}: "
                         f"{err}") from None


_SEED_LIST = Array(1, dtype="integer", min_size=1, low=0)
_WIDTHS = Array(1, dtype="integer", min_size=1, low=1)


@validate_params({
    "seed_list": [_SEED_LIST], "widths": [_WIDTHS],
    "steps": [Interval(int, 1, None)], "batch_size": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, 1, closed="right")], "input_dim": [Interval(int, 1, None)],
    "noise": [Interval(float, 0, 1e3)], "checkpoints": [Interval(int, 1, None)],
    "min_samples": [Interval(int, 1, None)], "frequency": [Interval(float, 0, 1e3, closed="right")],
    "test_size": [Interval(int, 1, None)],
    "budgets": [_PositiveArray(1, min_size=1, max_abs=_MAX_SCALE), None],
    "device": ["string", torch.device, None], "show_progress": ["boolean", None],
})
@thread_limit()
def training_sweeps(seed_list, widths=(4, 8, 16, 32, 64), *, steps: int = 1500, batch_size: int = 128,
                    lr: float = 1e-2, input_dim: int = 4, noise: float = 0.1,
                    checkpoints: int = 12, min_samples: int = 5_000, frequency: float = 0.7,
                    test_size: int = 4096, budgets=None, device=None,
                    show_progress=None) -> list[SweepResult]:
    """Train one-hidden-layer tanh MLPs of several widths, for several seeds, in one batch.

    The task is regression of a fixed smooth function on ``[-1, 1]^input_dim``, a sum of
    64 random cosines with amplitudes ``1/k`` and frequencies growing like ``sqrt(k)``
    (normalised to unit variance), with label noise of standard deviation ``noise``. The
    task and the test set are drawn from the first seed; every seed has its own
    initialisation and its own data stream. Every step draws a fresh batch (one pass over
    an unbounded stream, the regime of language-model pretraining), so the number of
    samples seen plays the role of tokens ``D``; ``N`` is the parameter count
    ``width (input_dim + 2) + 1``. All seeds and widths train together as one batched
    model (hidden units beyond a model's width are masked), with Adam and the learning
    rate ``lr / sqrt(1 + t / 200)``. That schedule does not depend on the run's length, so
    the checkpoint after ``t`` steps is exactly the run trained for ``t`` steps: the test
    loss (mean squared error on ``test_size`` fresh points, plus the noise floor
    ``noise^2``) is recorded at ``checkpoints`` log-spaced sample counts from
    ``min_samples`` to ``steps * batch_size`` and, when ``budgets`` is given, at the IsoFLOP
    design ``D = C / (6 N)`` (rounded to whole batches) of every width and budget ``C``
    that fits in the run.

    Parameters
    ----------
    seed_list : list of int
        One independent run of every width per seed (``companion.training.seeds(3)``).
    widths : sequence of int
        Hidden widths (each at least 1).
    steps, batch_size : int
        Adam steps, and fresh samples per step.
    lr : float
        Initial learning rate, in ``(0, 1]``.
    input_dim, noise, frequency : int, float, float
        The task: input dimension, label-noise standard deviation (at most 1e3) and the
        cosines' frequency scale (in ``(0, 1e3]``).
    checkpoints, min_samples, test_size : int
        Log-spaced checkpoints from ``min_samples`` (below ``steps * batch_size``) on, and
        the number of test points.
    budgets : array-like, optional
        Compute budgets ``C = 6 N D`` of the IsoFLOP design.
    device : torch.device or str, optional
        Where to train (default the CPU). These models are tiny: on a GPU the run is
        bound by per-step overhead, so the CPU is usually as fast.
    show_progress : bool, optional
        Progress bar over the steps.

    Returns
    -------
    list of SweepResult
        One per seed, in the order of ``seed_list``.

    References
    ----------
    - kaplan2020scaling: Kaplan et al. (2020), "Scaling Laws for Neural Language Models".
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> sweeps = training_sweeps([0, 1], (2, 4), steps=20, batch_size=8, min_samples=16,
    ...                          checkpoints=3, test_size=64, show_progress=False)
    >>> len(sweeps), sorted(set(sweeps[0].width.tolist()))
    (2, [2, 4])
    """
    seed_list = [int(sd) for sd in as_array(seed_list, "seed_list", dtype=None)]
    widths = [int(w) for w in as_array(widths, "widths", dtype=None)]
    if min_samples >= steps * batch_size:
        raise ValueError(f"min_samples must be below steps * batch_size = {steps * batch_size}")
    device = _torch_device(device)
    task_generator = torch.Generator().manual_seed(seed_list[0])
    target = _sweep_target(input_dim, 64, frequency, task_generator)
    x_test = (torch.rand(test_size, input_dim, generator=task_generator) * 2 - 1).to(device)
    y_test = target(x_test)

    S, M, W = len(seed_list), len(widths), max(widths)
    n_params = [w * (input_dim + 2) + 1 for w in widths]
    generators = [torch.Generator().manual_seed(sd) for sd in seed_list]
    mask = torch.zeros(M, W)
    for i, w in enumerate(widths):
        mask[i, :w] = 1.0
    fan = torch.tensor(widths, dtype=torch.float32).sqrt()[:, None, None]
    init = [[torch.randn(M, input_dim, W, generator=g) * mask[:, None, :],
             torch.randn(M, 1, W, generator=g) * mask[:, None, :],
             torch.randn(M, W, 1, generator=g) / fan * mask[:, :, None]] for g in generators]
    # one model per (seed, width): (S M, d, W), (S M, 1, W), (S M, W, 1)
    w1, b1, w2 = (torch.cat([per_seed[k] for per_seed in init]).to(device).requires_grad_()
                  for k in range(3))
    b2 = torch.zeros(S * M, 1, 1, device=device, requires_grad=True)
    params = [w1, b1, w2, b2]
    full_mask = mask.repeat(S, 1).to(device)
    masks = [full_mask[:, None, :], full_mask[:, None, :], full_mask[:, :, None],
             torch.ones(S * M, 1, 1, device=device)]
    optimizer = torch.optim.Adam(params, lr=lr)

    def forward(x):
        return (torch.tanh(x @ w1 + b1) @ w2 + b2).squeeze(-1)

    regular = set(np.unique(np.round(np.geomspace(min_samples / batch_size, steps, checkpoints))).astype(int))
    design = {}  # (step, width index) -> budget index
    if budgets is not None:
        budgets = as_array(budgets, "budgets")
        for g, C in enumerate(budgets):
            for i, n in enumerate(n_params):
                t = int(round(C / (6.0 * n * batch_size)))
                if min_samples <= t * batch_size and t <= steps:  # skip the first transient steps
                    design[(t, i)] = g
    record = regular | {t for t, _ in design}
    disable = None if show_progress is None else not show_progress
    rows = [[] for _ in seed_list]
    for step in progress(range(1, steps + 1), desc="training sweep", disable=disable):
        x = torch.cat([torch.rand(M, batch_size, input_dim, generator=g) * 2 - 1 for g in generators])  # (S M, B, d)
        eps = torch.cat([torch.randn(M, batch_size, generator=g) for g in generators])                 # (S M, B)
        x = x.to(device)
        y = target(x) + noise * eps.to(device)                                                         # (S M, B)
        loss = ((forward(x) - y) ** 2).mean(dim=1).sum()  # sum over models of each one's batch MSE
        optimizer.zero_grad()
        loss.backward()
        for p, m in zip(params, masks):
            p.grad.mul_(m)
        for group in optimizer.param_groups:
            group["lr"] = lr / np.sqrt(1.0 + step / 200.0)
        optimizer.step()
        if step in record:
            with torch.no_grad():
                test = (((forward(x_test.expand(S * M, -1, -1)) - y_test) ** 2).mean(dim=1)
                        + noise ** 2).cpu().numpy().reshape(S, M)  # (S, M) test loss per seed and width
            for k in range(S):
                for i, w in enumerate(widths):
                    g = design.get((step, i), -1)
                    if step in regular or g >= 0:
                        rows[k].append((w, n_params[i], step * batch_size, float(test[k, i]), g))
    results = []
    for k, sd in enumerate(seed_list):
        width, N, D, loss, group = (np.array(col, dtype=float) for col in zip(*rows[k]))
        order = np.lexsort((D, width))
        results.append(SweepResult(N=N[order], D=D[order], loss=loss[order],
                                   width=width[order].astype(int), noise_floor=noise ** 2,
                                   group=group[order].astype(int),
                                   budgets=None if budgets is None else budgets.copy(), seed=sd))
    return results


@validate_params({"widths": [_WIDTHS], "seed": [Interval(int, 0, None)]})
def training_sweep(widths=(4, 8, 16, 32, 64), *, seed: int = 0, **kwargs) -> SweepResult:
    """One seed of :func:`training_sweeps` (same arguments; ``seed`` draws task and run).

    References
    ----------
    - kaplan2020scaling: Kaplan et al. (2020), "Scaling Laws for Neural Language Models".
    """
    return training_sweeps([seed], widths, **kwargs)[0]


# ---------------------------------------------------------------------------------------
# The Chinchilla loss surface (Hoffmann et al., 2022)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChinchillaParams:
    """Parameters of ``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al., 2022).

    ``N`` is the number of parameters, ``D`` the number of training tokens, ``E`` the
    irreducible loss. ``E, A, B >= 0`` and ``0 < alpha, beta <= 50``.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> p = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    >>> print(p)
    E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28
    >>> p.as_array().tolist()
    [1.69, 406.4, 410.7, 0.34, 0.28]
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __post_init__(self):
        coefficient, exponent = Interval(float, 0, None), Interval(float, 0, 50, closed="right")
        check_params(vars(self), {"E": [coefficient], "A": [coefficient], "B": [coefficient],
                                  "alpha": [exponent], "beta": [exponent]})

    def as_array(self) -> np.ndarray:
        """``[E, A, B, alpha, beta]`` as a float array."""
        return np.array([self.E, self.A, self.B, self.alpha, self.beta], dtype=float)

    @classmethod
    @validate_params({"values": [Array(1, shape=(5,))]})
    def from_array(cls, values) -> "ChinchillaParams":
        """Inverse of :meth:`as_array`: ``values`` is ``[E, A, B, alpha, beta]``."""
        return cls(*(float(v) for v in as_array(values, "values")))

    def __str__(self) -> str:
        return (f"E={self.E:.4g}, A={self.A:.4g}, B={self.B:.4g}, "
                f"alpha={self.alpha:.4g}, beta={self.beta:.4g}")


#: Approach 3 fit published by Hoffmann et al. (2022), eq. (10), as rounded in the paper's body.
HOFFMANN_2022 = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
#: The estimate of Besiroglu et al. (2024), Table 1 ("our estimate", 240 extracted points):
#: E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658, presented as their
#: refit of Hoffmann et al.'s Huber-loss protocol. In their repository
#: (epoch-research/analyzing-chinchilla, data_analysis.ipynb, "Our estimates") A, B, alpha and
#: beta are the maximum of a likelihood whose log-density is minus the Huber loss (delta 1e-3)
#: of the log-loss residuals divided by a fitted scale, found by BFGS from Hoffmann et al.'s
#: unrounded values: a Huber *likelihood* fit, not the minimum of the plain Huber loss. That
#: maximum has E = 1.81686; the paper's 1.8172 is the E of the plain Huber fit below (a 0.02 %
#: difference, kept here as the paper prints it).
BESIROGLU_2024 = ChinchillaParams(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
#: The minimum of the plain Huber loss (delta 1e-3) of the log-loss residuals over the same
#: 240 points, from L-BFGS over Epoch's 4500-start grid, as their repository notebook prints it
#: ("Replicate exactly", final version: A = 477.84, B = 2143.86, E = 1.8172, alpha = 0.34731,
#: beta = 0.36718; its first committed version printed A = 477.92, B = 2143.07); the protocol of
#: :func:`fit_approach3`. The paper's Table 1 reports BESIROGLU_2024, not this set.
BESIROGLU_2024_HUBER = ChinchillaParams(E=1.8172, A=477.84, B=2143.86, alpha=0.34731, beta=0.36718)
#: Bootstrap standard errors of the repository notebook's final run (4000 resamples, each
#: refitted by BFGS on the plain Huber loss from Hoffmann et al.'s values): A 124.52,
#: B 1293.28, E 0.02566, alpha 0.01540, beta 0.02060. Table 1 of the paper prints those of an
#: earlier run, rounded: A 124.58, B 1293.23, E 0.03, alpha 0.02, beta 0.02.
BESIROGLU_2024_SE = ChinchillaParams(E=0.02566, A=124.52, B=1293.28, alpha=0.0154, beta=0.0206)


@validate_params({"N": [Interval(float, 0, None, closed="neither"), _PositiveArray()],
                  "D": [Interval(float, 0, None, closed="neither"), _PositiveArray()],
                  "params": [ChinchillaParams]})
def chinchilla_loss(N, D, params: ChinchillaParams = HOFFMANN_2022):
    """The Chinchilla loss surface ``L(N, D) = E + A / N^alpha + B / D^beta``.

    Hoffmann et al. (2022), eq. (2). ``N`` (parameters) and ``D`` (tokens) are positive
    scalars or arrays of any shape that broadcast together.

    Returns
    -------
    float or ndarray

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> round(chinchilla_loss(70e9, 1.4e12, HOFFMANN_2022), 4)
    1.9366
    """
    _broadcast(N=N, D=D)
    N, D = as_array(N, "N"), as_array(D, "D")
    loss = params.E + params.A * N ** -params.alpha + params.B * D ** -params.beta
    return float(loss) if loss.ndim == 0 else loss


@validate_params({"params": [ChinchillaParams]})
def optimal_exponents(params: ChinchillaParams):
    """``(G, a, b)`` of the compute-optimal allocation (Hoffmann et al., 2022, eq. 4).

    ``a = beta / (alpha + beta)``, ``b = alpha / (alpha + beta)`` and
    ``G = (alpha A / (beta B))^(1 / (alpha + beta))``.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> G, a, b = optimal_exponents(HOFFMANN_2022)
    >>> print(f"G = {G:.4f}, a = {a:.4f}, b = {b:.4f}")
    G = 1.3447, a = 0.4516, b = 0.5484
    """
    if params.B == 0 or params.A == 0:
        raise ValueError("params.A and params.B must be > 0 for a compute-optimal allocation")
    s = params.alpha + params.beta
    G = (params.alpha * params.A / (params.beta * params.B)) ** (1.0 / s)
    return float(G), params.beta / s, params.alpha / s


@validate_params({"C": _SCALE, "params": [ChinchillaParams]})
def compute_optimal(C, params: ChinchillaParams = HOFFMANN_2022):
    """Compute-optimal model size, data size and loss at budget ``C = 6 N D``.

    Minimising ``E + A / N^alpha + B / D^beta`` subject to ``6 N D = C`` gives
    (Hoffmann et al., 2022, eq. 4)

    ``N* = G (C / 6)^a``, ``D* = (C / 6)^b / G``,
    ``a = beta / (alpha + beta)``, ``b = alpha / (alpha + beta)``,
    ``G = (alpha A / (beta B))^(1 / (alpha + beta))``.

    Parameters
    ----------
    C : float or array-like
        Training compute in FLOP (positive, at most 1e60).
    params : ChinchillaParams

    Returns
    -------
    N_opt, D_opt, loss : float or ndarray

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> n, d, loss = compute_optimal(5.76e23, HOFFMANN_2022)
    >>> print(f"N* = {n:.3g}, D* = {d:.3g}, L* = {loss:.4f}")
    N* = 3.22e+10, D* = 2.98e+12, L* = 1.9307
    """
    C = as_array(C, "C")
    G, a, b = optimal_exponents(params)
    n_opt = G * (C / 6.0) ** a
    d_opt = (C / 6.0) ** b / G
    loss = params.E + params.A * n_opt ** -params.alpha + params.B * d_opt ** -params.beta
    if C.ndim == 0:
        return float(n_opt), float(d_opt), float(loss)
    return n_opt, d_opt, loss


# ---------------------------------------------------------------------------------------
# Simulated IsoFLOP experiments
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IsoflopData:
    """Points ``(N, D, loss)`` of IsoFLOP experiments; ``group`` indexes the budget ``C``.

    ``budgets[group[i]] == 6 N[i] D[i]``.
    """

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    group: np.ndarray
    budgets: np.ndarray

    def __post_init__(self):
        values = {"budgets": self.budgets, "N": self.N, "D": self.D, "loss": self.loss, "group": self.group}
        check_params(values, {"budgets": [_PositiveArray(1, min_size=1, max_abs=_MAX_SCALE)], **_POINTS,
                              "group": [Labels(high=lambda args: len(args["budgets"]), shape=("n",))]})

    def __len__(self) -> int:
        return len(self.loss)


_GRID_WIDTH = Interval(float, 1, 1e4, closed="neither")


@validate_params({
    "params": [ChinchillaParams],
    "budgets": [_PositiveArray(1, min_size=1, max_abs=_MAX_SCALE)],
    "points_per_curve": [Interval(int, 3, None)],
    "width": [_GRID_WIDTH],
    "centre": [Interval(float, 1e-6, 1e6)],
    "noise": [Interval(float, 0, 1, closed="left")],
    "seed": [Interval(int, 0, None)],
})
def isoflop_grid(params: ChinchillaParams = HOFFMANN_2022, budgets=(1e17, 1e18, 1e19, 1e20, 1e21),
                 points_per_curve: int = 15, width: float = 4.0, centre: float = 1.0,
                 noise: float = 0.0, seed: int = 0) -> IsoflopData:
    """Simulate IsoFLOP experiments on the Chinchilla surface (Hoffmann et al., 2022, §3.2).

    For each budget ``C``, ``points_per_curve`` model sizes log-spaced over
    ``[centre N*/width, centre N* width]`` around the true optimum ``N*(C)``, with
    ``D = C / (6 N)``, and losses ``L(N, D) (1 + noise z)`` with ``z ~ N(0, 1)``
    (multiplicative noise of relative size ``noise``).

    Parameters
    ----------
    params : ChinchillaParams
        The true surface.
    budgets : array-like, shape (k,)
        Compute budgets in FLOP.
    points_per_curve : int
        Model sizes per budget (at least 3).
    width : float
        Half-width factor ``1 < w <= 1e4`` of the grid in N (a grid over ``[N*/w, w N*]``).
    centre : float
        Factor by which the grid's centre misses the optimum (1 = centred), in ``[1e-6, 1e6]``.
    noise : float
        Relative noise on the losses, in ``[0, 1)``.
    seed : int
        Seed of the noise.

    Returns
    -------
    IsoflopData

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> data = isoflop_grid(HOFFMANN_2022, budgets=[1e18, 1e19], points_per_curve=5)
    >>> len(data), data.budgets.tolist()
    (10, [1e+18, 1e+19])
    >>> bool(np.allclose(6 * data.N * data.D, data.budgets[data.group]))
    True
    """
    budgets = as_array(budgets, "budgets")
    rng = np.random.default_rng(seed)
    n_opt, _, _ = compute_optimal(budgets, params)
    n_opt = np.atleast_1d(n_opt) * centre
    N = np.concatenate([np.logspace(np.log10(n / width), np.log10(n * width), points_per_curve)
                        for n in n_opt])
    group = np.repeat(np.arange(budgets.size), points_per_curve)
    D = budgets[group] / (6.0 * N)
    loss = np.asarray(chinchilla_loss(N, D, params))
    if noise > 0:
        loss = loss * (1.0 + noise * rng.standard_normal(loss.shape))
    return IsoflopData(N=N, D=D, loss=loss, group=group, budgets=budgets)


# ---------------------------------------------------------------------------------------
# Fits: the result type and Approach 2 (IsoFLOP parabolas, Hoffmann et al., 2022)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScalingFit:
    """The result of a scaling-law fit.

    Every fit implies a compute-optimal frontier ``N*(C) = 10^k_N C^a`` and
    ``D*(C) = 10^k_D C^b``; direct fits also give the surface's ``params``.

    Attributes
    ----------
    method : str
        ``"approach2"``, ``"approach3"`` or ``"variable_projection"``.
    a, b : float
        Exponents of ``N*`` and ``D*`` in ``C``.
    log10_n_intercept, log10_d_intercept : float
        ``k_N`` and ``k_D`` above.
    params : ChinchillaParams or None
        The fitted surface (None for Approach 2).
    objective : float or None
        The minimised objective (None for Approach 2, which minimises one per parabola).
    seconds : float or None
        Wall-clock time of the fit.
    info : dict
        Method-specific details (vertices of the parabolas, number of starts, ...).

    A direct fit in which one term vanished (``A = 0`` or ``B = 0``) has no interior
    optimum: its ``a``, ``b`` and intercepts are NaN by design.
    """

    method: str
    a: float
    b: float
    log10_n_intercept: float
    log10_d_intercept: float
    params: ChinchillaParams | None = None
    objective: float | None = None
    seconds: float | None = None
    info: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        frontier = [_RealOrNaN()]  # NaN: a degenerate direct fit (see above)
        check_params(vars(self), {
            "method": [Options(("approach2", "approach3", "variable_projection"))],
            "a": frontier, "b": frontier, "log10_n_intercept": frontier, "log10_d_intercept": frontier,
            "params": [ChinchillaParams, None],
            "objective": [Interval(float, 0, None), None],
            "seconds": [Interval(float, 0, None), None],
            "info": [dict],
        })

    @validate_params({"C": _SCALE})
    def optimal_loss(self, C):
        """The predicted loss of the compute-optimal run at budget(s) ``C``.

        Direct fits evaluate their surface at ``(N*, D*)``; Approach 2 extrapolates the
        saturating power law :func:`power_law_fit` through its parabolas' vertex losses
        ``info["L_opt"]`` against the budgets (a pure power law with two budgets, a
        straight line in log-log when the vertex losses do not fall with ``C``).

        References
        ----------
        - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
        - henighan2020scaling: Henighan et al. (2020), "Scaling Laws for Autoregressive Generative Modeling".
        """
        C = as_array(C, "C")
        if self.params is not None:
            loss = compute_optimal(C, self.params)[2]
        else:
            budgets, l_opt = self.info.get("budgets"), self.info.get("L_opt")
            if budgets is None or l_opt is None:
                raise ValueError("this fit has neither a surface nor vertex losses to extrapolate")
            # Henighan et al. (2020): L*(C) = L_inf + (C0 / C)^gamma through the vertex losses;
            # when the vertex losses do not fall with C, a straight line in log-log instead
            try:
                loss = power_law_fit(budgets, l_opt, fit_l_inf=len(budgets) >= 3).predict(C)
            except ValueError:
                slope, intercept = np.polyfit(np.log(budgets), np.log(l_opt), 1)
                loss = np.exp(intercept + slope * np.log(C))
        return float(loss) if np.ndim(loss) == 0 else np.asarray(loss)

    @validate_params({"C": _SCALE})
    def optimal(self, C):
        """The implied compute-optimal ``(N*, D*)`` at budget(s) ``C``."""
        C = as_array(C, "C")
        log_c = np.log10(C)
        n = 10.0 ** (self.log10_n_intercept + self.a * log_c)
        d = 10.0 ** (self.log10_d_intercept + self.b * log_c)
        if C.ndim == 0:
            return float(n), float(d)
        return n, d


def _fit_from_params(method, params, objective, seconds, info=None) -> ScalingFit:
    if params.A > 0 and params.B > 0:
        G, a, b = optimal_exponents(params)
        k_n = np.log10(G) - a * np.log10(6.0)
        k_d = -np.log10(G) - b * np.log10(6.0)
    else:  # a degenerate fit (one term vanished) implies no interior optimum
        a = b = k_n = k_d = float("nan")
    return ScalingFit(method=method, a=a, b=b, log10_n_intercept=float(k_n),
                      log10_d_intercept=float(k_d), params=params, objective=float(objective),
                      seconds=float(seconds), info=info or {})


def _budget_groups(N, D, decimals=3):
    log_c = np.round(np.log10(6.0 * N * D), decimals)
    _, group = np.unique(log_c, return_inverse=True)
    return group


@validate_params({**_POINTS, "groups": [Array(1, shape=("n",), dtype=None), None]})
@thread_limit()
def fit_approach2(N, D, loss, groups=None) -> ScalingFit:
    """Chinchilla Approach 2: IsoFLOP parabolas (Hoffmann et al., 2022, §3.2).

    For each budget ``C`` (points sharing ``C = 6 N D``, or the given ``groups``) fit a
    parabola of the loss against ``log10 D``, take its vertex as ``D*(C)`` and
    ``N*(C) = C / (6 D*)``, then fit the lines ``log10 D* = k_D + b log10 C`` and
    ``log10 N* = k_N + a log10 C`` by least squares.

    The parabola is only a second-order model of the true curve; its vertex is biased
    when ``alpha != beta`` and the grid is wide or off-centre (the subject of the
    chapter's Approach 2 section).

    Parameters
    ----------
    N, D, loss : array-like, shape (n,)
        Points of the IsoFLOP experiments.
    groups : array-like of int, optional
        Budget label of each point. Default: points whose ``log10(6 N D)`` agree to three
        decimals share a budget.

    Returns
    -------
    ScalingFit
        ``info`` holds the budgets, the vertices ``N_opt``, ``D_opt``, the vertex losses
        ``L_opt``, which :meth:`ScalingFit.optimal_loss` extrapolates with a saturating
        power law in ``C`` (Approach 2 itself gives no loss surface).

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> data = isoflop_grid(HOFFMANN_2022, width=2.0)
    >>> fit = fit_approach2(data.N, data.D, data.loss, data.group)
    >>> print(f"a = {fit.a:.3f} (true {optimal_exponents(HOFFMANN_2022)[1]:.3f})")
    a = 0.452 (true 0.452)
    """
    start = time.perf_counter()
    N, D, loss = _check_points(N, D, loss)
    groups = _budget_groups(N, D) if groups is None else as_array(groups, "groups", dtype=None)
    labels = np.unique(groups)
    if labels.size < 2:
        raise ValueError("groups must hold at least two compute budgets for Approach 2, "
                         f"got {labels.size}")
    budgets, d_opt, l_opt = [], [], []
    for label in labels:
        mask = groups == label
        log_d = np.log10(D[mask])
        if np.unique(log_d).size < 3:
            raise ValueError(f"budget group {label} has fewer than 3 distinct model sizes")
        c2, c1, c0 = np.polyfit(log_d, loss[mask], 2)
        if c2 <= 0:
            raise ValueError(f"the parabola of budget group {label} opens downwards: no minimum")
        budgets.append(np.exp(np.mean(np.log(6.0 * N[mask] * D[mask]))))
        d_opt.append(10.0 ** (-c1 / (2.0 * c2)))
        l_opt.append(c0 - c1 ** 2 / (4.0 * c2))
    budgets, d_opt, l_opt = np.array(budgets), np.array(d_opt), np.array(l_opt)
    n_opt = budgets / (6.0 * d_opt)
    b, k_d = np.polyfit(np.log10(budgets), np.log10(d_opt), 1)
    a, k_n = np.polyfit(np.log10(budgets), np.log10(n_opt), 1)
    return ScalingFit(method="approach2", a=float(a), b=float(b), log10_n_intercept=float(k_n),
                      log10_d_intercept=float(k_d), seconds=time.perf_counter() - start,
                      info={"budgets": budgets, "N_opt": n_opt, "D_opt": d_opt, "L_opt": l_opt})


@validate_params({
    "params": [ChinchillaParams],
    "width": [_GRID_WIDTH],
    "target_compute": [Interval(float, 0, _MAX_SCALE, closed="neither")],
    "budgets": [_PositiveArray(1, min_size=2, max_abs=_MAX_SCALE)],
    "points_per_curve": [Interval(int, 3, None)],
    "centre": [Interval(float, 1e-6, 1e6)],
    "noise": [Interval(float, 0, 1, closed="left")],
    "seed": [Interval(int, 0, None)],
})
def approach2_bias(params: ChinchillaParams, width: float, *, target_compute: float = 1e24,
                   budgets=(1e17, 1e18, 1e19, 1e20, 1e21), points_per_curve: int = 15,
                   centre: float = 1.0, noise: float = 0.0, seed: int = 0):
    """Relative error of Approach 2's extrapolated ``N*`` and ``D*`` (noise-free by default).

    Simulates :func:`isoflop_grid`, fits :func:`fit_approach2` and compares its frontier at
    ``target_compute`` with :func:`compute_optimal`: returns
    ``(N*_fit / N*_true - 1, D*_fit / D*_true - 1)``. The arguments are those of
    :func:`isoflop_grid` (at least two budgets).

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".

    Examples
    --------
    >>> p = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.465, beta=0.155)
    >>> n_err, d_err = approach2_bias(p, width=8.0)
    >>> print(f"D* off by {100 * d_err:+.1f}% at 1e24 FLOP")
    D* off by -13.9% at 1e24 FLOP
    """
    data = isoflop_grid(params, budgets, points_per_curve, width, centre, noise, seed)
    fit = fit_approach2(data.N, data.D, data.loss, data.group)
    n_fit, d_fit = fit.optimal(target_compute)
    n_true, d_true, _ = compute_optimal(target_compute, params)
    return n_fit / n_true - 1.0, d_fit / d_true - 1.0


# ---------------------------------------------------------------------------------------
# Variable projection (Golub and Pereyra, 1973)
# ---------------------------------------------------------------------------------------
def _huber(r, delta):
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
    grad = np.where(small, r, delta * np.sign(r))
    return value, grad


def _vp_design(alpha, beta, log_n, log_d):
    return np.column_stack([np.ones_like(log_n), np.exp(-alpha * log_n), np.exp(-beta * log_d)])


def _huber_newton(X, target, delta, coef, iterations=50):
    """Minimise sum Huber_delta(X c - target) by Newton steps with backtracking.

    The objective is convex and piecewise quadratic; with the partition of residuals into
    small (quadratic) and large (linear) fixed, the Newton step is exact, so the
    iteration ends once the partition stops changing. Returns (coef, value), or None when
    the quadratic part is singular or ``iterations`` steps did not settle the partition
    (the caller then falls back to iteratively reweighted NNLS).
    """
    residual = X @ coef - target
    value = float(np.sum(_huber(residual, delta)[0]))
    for _ in range(iterations):
        _, psi = _huber(residual, delta)
        grad = X.T @ psi
        small = np.abs(residual) <= delta
        hess = X[small].T @ X[small]
        try:
            step = -np.linalg.solve(hess + 1e-14 * np.trace(hess) * np.eye(3), grad)
        except np.linalg.LinAlgError:
            return None
        t = 1.0
        while t > 1e-8:
            new_coef = coef + t * step
            new_residual = X @ new_coef - target
            new_value = float(np.sum(_huber(new_residual, delta)[0]))
            if new_value <= value:
                break
            t *= 0.5
        else:
            break
        done = np.array_equal(np.abs(new_residual) <= delta, small) or value - new_value <= 1e-16 * value
        coef, residual, value = new_coef, new_residual, new_value
        if done and t == 1.0:
            break
    else:  # the iteration cap: no settled partition
        return None
    return coef, value


#: Iteration caps of the iteratively reweighted NNLS of the robust inner solve: inside the
#: search over exponents (the value reached is an upper bound of the projected objective,
#: each step lowers it), and for the final coefficients (not converged: RuntimeError).
_IRLS_SEARCH_ITER, _IRLS_FINAL_ITER = 30, 2000


def _vp_inner(exponents, log_n, log_d, loss, delta=None, max_iter=_IRLS_SEARCH_ITER, strict=False):
    """Best (E, A, B) >= 0 for fixed (alpha, beta) on relative residuals.

    Squared loss when ``delta`` is None (one NNLS solve); Huber loss otherwise, by Newton
    steps from the least-squares solution (:func:`_huber_newton`), falling back to
    iteratively reweighted NNLS (at most ``max_iter`` steps) when a coefficient would turn
    negative. Returns (coef, residuals, objective). With ``strict``, a reweighting that
    has not converged within ``max_iter`` steps raises ``RuntimeError``.
    """
    from scipy.optimize import nnls

    X = _vp_design(exponents[0], exponents[1], log_n, log_d) / loss[:, None]
    target = np.ones_like(loss)
    coef, _ = nnls(X, target, maxiter=50)
    residual = X @ coef - 1.0
    if delta is None:
        return coef, residual, float(np.sum(residual ** 2))
    newton = _huber_newton(X, target, delta, coef) if np.all(coef > 0) else None
    if newton is not None and np.all(newton[0] >= 0):
        coef = newton[0]
        residual = X @ coef - 1.0
        return coef, residual, newton[1]
    value = float(np.sum(_huber(residual, delta)[0]))
    for _ in range(max_iter):  # IRLS: each step decreases the Huber objective
        weights = np.sqrt(np.minimum(1.0, delta / np.maximum(np.abs(residual), 1e-300)))
        new_coef, _ = nnls(X * weights[:, None], target * weights, maxiter=50)
        new_residual = X @ new_coef - 1.0
        new_value = float(np.sum(_huber(new_residual, delta)[0]))
        if new_value > value * (1 - 1e-13):
            if new_value <= value:
                coef, residual, value = new_coef, new_residual, new_value
            break
        coef, residual, value = new_coef, new_residual, new_value
    else:
        if strict:
            raise RuntimeError(f"the robust solve for (E, A, B) did not converge in {max_iter} "
                               f"reweighting steps at alpha={exponents[0]:.4g}, beta={exponents[1]:.4g}")
    return coef, residual, value


@validate_params({**_POINTS, "robust": ["boolean"], "delta": [Interval(float, 0, None, closed="neither")],
                  "alpha_grid": _EXPONENT_GRID, "beta_grid": _EXPONENT_GRID})
@thread_limit()
def fit_variable_projection(N, D, loss, *, robust: bool = True, delta: float = 1e-3,
                            alpha_grid=None, beta_grid=None) -> ScalingFit:
    """Fit the Chinchilla surface by variable projection (Golub and Pereyra, 1973).

    For fixed exponents ``(alpha, beta)`` the model ``E + A N^-alpha + B D^-beta`` is
    linear in ``(E, A, B)``, so their best non-negative values solve a 3-column
    (non-negative) least-squares problem. The fit therefore searches only the 2-D space
    of exponents,

    ``min over (alpha, beta) of min over E, A, B >= 0 of sum_i rho(r_i)``,
    ``r_i = (E + A N_i^-alpha + B D_i^-beta) / L_i - 1``,

    first on a grid, then by local refinement of the best grid point (Nelder-Mead on the
    projected objective, polished by a Gauss-Newton step when ``rho`` is squared). The
    relative residual ``r_i`` equals ``log`` of the ratio to first order, the scale of
    Approach 3. ``rho`` is Huber's loss with threshold ``delta`` (Huber, 1964), solved for
    ``(E, A, B)`` by iteratively reweighted NNLS, or the square when ``robust=False``.
    On noise-free data the five parameters are recovered to solver precision; the cost
    is a few thousand 3-column solves instead of thousands of 5-D quasi-Newton runs.

    Parameters
    ----------
    N, D, loss : array-like, shape (n,)
    robust : bool
        Huber loss on the relative residuals (default) or squared loss.
    delta : float
        Huber threshold (1e-3, as in Approach 3).
    alpha_grid, beta_grid : array-like, shape (k,) and (m,), optional
        Grids of the exponents (independent, of any lengths), in ``(0, 50]`` (default 30
        values each over ``[0.05, 1.5]``).

    Returns
    -------
    ScalingFit

    Notes
    -----
    Every iteration is capped: Nelder-Mead at 1000 iterations (the best of the refined
    point and the grid point is kept); the robust inner solve at 50 Newton steps, then 30
    reweighting steps during the search (each step lowers the objective, so a capped value
    is an upper bound of the projected objective) and 2000 for the final ``(E, A, B)``,
    which raise ``RuntimeError`` when they do not converge.

    References
    ----------
    - golub1973differentiation: Golub and Pereyra (1973), "The Differentiation of Pseudo-Inverses and
      Nonlinear Least Squares Problems Whose Variables Separate".
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - huber1964robust: Huber (1964), "Robust Estimation of a Location Parameter".

    Examples
    --------
    >>> data = isoflop_grid(HOFFMANN_2022, width=4.0)
    >>> grid = np.linspace(0.1, 0.6, 6)
    >>> fit = fit_variable_projection(data.N, data.D, data.loss, robust=False,
    ...                               alpha_grid=grid, beta_grid=grid)
    >>> print(fit.params)
    E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28
    """
    from scipy.optimize import least_squares, minimize

    begin = time.perf_counter()
    N, D, loss = _check_points(N, D, loss)
    if N.size < 5:
        raise ValueError(f"N must have at least 5 points to fit five parameters, got {N.size}")
    delta = delta if robust else None
    default = np.linspace(0.05, 1.5, 30)
    alpha_grid = default if alpha_grid is None else as_array(alpha_grid, "alpha_grid")
    beta_grid = default if beta_grid is None else as_array(beta_grid, "beta_grid")
    log_n, log_d = np.log(N), np.log(D)

    def projected(x):
        if np.any(np.asarray(x) <= 0):
            return np.inf
        return _vp_inner(x, log_n, log_d, loss, delta)[2]

    values = np.array([[projected((a, b)) for b in beta_grid] for a in alpha_grid])
    i, j = np.unravel_index(np.argmin(values), values.shape)
    start = np.array([alpha_grid[i], beta_grid[j]])
    simplex = start + np.array([[0.0, 0.0], [0.02, 0.0], [0.0, 0.02]])
    res = minimize(projected, start, method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-14 * values[i, j], "maxiter": 1000,
                            "initial_simplex": simplex})
    exponents = res.x if res.fun <= values[i, j] else start
    if not robust:
        polish = least_squares(lambda x: _vp_inner(x, log_n, log_d, loss)[1], exponents,
                               bounds=([1e-4, 1e-4], [10.0, 10.0]), xtol=1e-15, ftol=1e-15,
                               gtol=1e-15, method="trf")
        if 2 * polish.cost <= projected(exponents):
            exponents = polish.x
    coef, _, value = _vp_inner(exponents, log_n, log_d, loss, delta, max_iter=_IRLS_FINAL_ITER, strict=True)
    params = ChinchillaParams(E=float(coef[0]), A=float(coef[1]), B=float(coef[2]),
                              alpha=float(exponents[0]), beta=float(exponents[1]))
    return _fit_from_params("variable_projection", params, value, time.perf_counter() - begin,
                            {"grid_points": values.size, "grid_best": tuple(start),
                             "robust": robust})


# ---------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap replicates of a fit's quantities.

    ``samples[name]`` holds one value per resample for ``a``, ``b``, ``N_opt`` and
    ``D_opt`` (at ``budget``) and, for direct fits, ``E``, ``A``, ``B``, ``alpha``, ``beta``.
    Resamples whose fit failed are dropped (``failures`` counts them).
    """

    samples: dict
    budget: float
    level: float
    failures: int = 0

    def __post_init__(self):
        check_params(vars(self), {"samples": [dict], "budget": [_POSITIVE],
                                  "level": [Interval(float, 0, 1, closed="neither")],
                                  "failures": [Interval(int, 0, None)]})

    def interval(self, name: str):
        """Percentile interval ``(low, high)`` of ``name`` at the result's ``level``."""
        values = self._values(name)
        tail = 50.0 * (1.0 - self.level)
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return float(low), float(high)

    def std(self, name: str) -> float:
        """Bootstrap standard error of ``name``."""
        return float(np.std(self._values(name), ddof=1))

    def _values(self, name):
        if name not in self.samples:
            raise ValueError(f"name must be one of {sorted(self.samples)}, got {name!r}")
        values = np.asarray(self.samples[name])
        values = values[np.isfinite(values)]
        if values.size < 2:
            raise ValueError(f"fewer than two finite bootstrap values of {name}")
        return values


@validate_params({"fit": ["callable"], **_POINTS, "n_resamples": [Interval(int, 2, None)],
                  "budget": [Interval(float, 0, _MAX_SCALE, closed="neither")],
                  "level": [Interval(float, 0, 1, closed="neither")],
                  "strata": [Array(1, shape=("n",), dtype=None), None], "seed": [Interval(int, 0, None)],
                  "show_progress": ["boolean", None]})
@thread_limit()
def bootstrap(fit: Callable, N, D, loss, *, n_resamples: int = 100, budget: float = 1e24,
              level: float = 0.95, strata=None, seed: int = 0, show_progress=None,
              **fit_kwargs) -> BootstrapResult:
    """Bootstrap confidence intervals for any scaling-law fit (Efron's percentile method).

    Resample the points with replacement (within each stratum when ``strata`` is given,
    e.g. the budget groups of IsoFLOP data for :func:`fit_approach2`), refit with
    ``fit(N, D, loss, **fit_kwargs)`` and collect the exponents, the compute-optimal
    ``N*`` and ``D*`` at ``budget`` and, for direct fits, the five parameters. Besiroglu et
    al. (2024) report such bootstrap standard errors for the Chinchilla fit.

    Parameters
    ----------
    fit : callable
        One of :func:`fit_approach2`, :func:`fit_approach3`, :func:`fit_variable_projection`
        (or any function returning a :class:`ScalingFit`).
    N, D, loss : array-like, shape (n,)
    n_resamples : int
        Number of bootstrap resamples.
    budget : float
        Compute at which ``N_opt`` and ``D_opt`` are evaluated.
    level : float
        Coverage of :meth:`BootstrapResult.interval`, in (0, 1).
    strata : array-like of int, optional
        Resample within these groups (and pass them to ``fit`` as ``groups`` when ``fit``
        is :func:`fit_approach2`).
    seed : int
    show_progress : bool, optional

    Returns
    -------
    BootstrapResult
        Resamples whose fit raised ``ValueError`` or ``RuntimeError`` (a degenerate
        resample, an inner solve that did not converge) are counted in ``failures``.

    References
    ----------
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".

    Examples
    --------
    >>> data = isoflop_grid(HOFFMANN_2022, width=4.0, noise=0.003, seed=1)
    >>> result = bootstrap(fit_approach2, data.N, data.D, data.loss, n_resamples=20,
    ...                    strata=data.group, show_progress=False)
    >>> low, high = result.interval("a")
    >>> bool(low < optimal_exponents(HOFFMANN_2022)[1] < high), result.failures
    (True, 0)
    """
    N, D, loss = _check_points(N, D, loss)
    rng = np.random.default_rng(seed)
    if strata is None:
        blocks = [np.arange(N.size)]
    else:
        strata = as_array(strata, "strata", dtype=None)
        blocks = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    names = ("a", "b", "N_opt", "D_opt", "E", "A", "B", "alpha", "beta")
    samples = {name: [] for name in names}
    failures = 0
    disable = None if show_progress is None else not show_progress
    for _ in progress(range(n_resamples), desc="bootstrap", disable=disable):
        idx = np.concatenate([rng.choice(block, size=block.size, replace=True) for block in blocks])
        kwargs = dict(fit_kwargs)
        if strata is not None and fit is fit_approach2:
            kwargs["groups"] = strata[idx]
        try:
            result = fit(N[idx], D[idx], loss[idx], **kwargs)
        except (ValueError, RuntimeError):
            failures += 1
            continue
        n_opt, d_opt = result.optimal(budget)
        values = {"a": result.a, "b": result.b, "N_opt": n_opt, "D_opt": d_opt}
        if result.params is not None:
            values.update(zip(("E", "A", "B", "alpha", "beta"), result.params.as_array()))
        for name in names:
            samples[name].append(values.get(name, np.nan))
    samples = {k: np.asarray(v, dtype=float) for k, v in samples.items()
               if np.any(np.isfinite(np.asarray(v, dtype=float)))}
    return BootstrapResult(samples=samples, budget=budget, level=level, failures=failures)


# ---------------------------------------------------------------------------------------
# Approach 3: a robust direct fit from a grid of starts (Besiroglu et al., 2024)
# ---------------------------------------------------------------------------------------
def _approach3_objective(theta, log_n, log_d, log_loss, delta):
    """Sum of Huber(log L - LSE(a - alpha log N, b - beta log D, e)) and its gradient."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])  # (3, n)
    top = terms.max(axis=0)                                                          # (n,)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    pred = top + np.log(total)
    weights /= total
    value, dres = _huber(log_loss - pred, delta)
    dpred = -dres  # d objective / d pred
    grad = np.array([
        np.sum(dpred * weights[0]),
        np.sum(dpred * weights[1]),
        np.sum(dpred * weights[2]),
        np.sum(dpred * weights[0] * -log_n),
        np.sum(dpred * weights[1] * -log_d),
    ])
    return float(value.sum()), grad


@validate_params({"kind": [Options(("full", "small"))]})
def approach3_start_grid(kind: str = "full") -> np.ndarray:
    """Starting points ``(a, b, e, alpha, beta)`` of the Approach 3 grid (Besiroglu et al., 2024).

    ``"full"``: ``a, b`` in ``0, 5, ..., 25``, ``e`` in ``-1, -0.5, ..., 1``, ``alpha, beta`` in
    ``0, 0.5, ..., 2`` (4500 starts), the grid of Epoch's replication. ``"small"``: ``a, b`` in
    ``0, 5, 10``, ``e`` in ``-1, 0, 1``, ``alpha, beta`` in ``0, 0.5, 1`` (243 starts).

    References
    ----------
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".

    Examples
    --------
    >>> approach3_start_grid("full").shape, approach3_start_grid("small").shape
    ((4500, 5), (243, 5))
    """
    if kind == "full":
        ab, e, ex = np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5), np.arange(0, 2.5, 0.5)
    else:
        ab, e, ex = np.array([0.0, 5.0, 10.0]), np.array([-1.0, 0.0, 1.0]), np.array([0.0, 0.5, 1.0])
    return np.array(list(itertools.product(ab, ab, e, ex, ex)), dtype=float)


def load_approach3_grid() -> dict:
    """Where each start of Epoch's full Approach 3 grid ends on the 240 Chinchilla points.

    Read from ``companion/resources/chinchilla_approach3_grid.csv``, made once by
    ``tools/chinchilla_approach3_grid.py`` (:func:`fit_approach3` from every start of
    ``approach3_start_grid("full")``, Besiroglu et al., 2024). Returns arrays ``start``
    (index into the grid), ``objective`` (the Huber objective reached), ``E``, ``alpha``,
    ``beta`` (where the start ended) and the header line ``made_by``. A start whose run
    failed has objective ``inf`` and NaN parameters (as the script wrote them).

    References
    ----------
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".

    Examples
    --------
    >>> grid = load_approach3_grid()
    >>> grid["start"].size
    4500
    """
    from importlib import resources

    text = resources.files("companion.resources").joinpath("chinchilla_approach3_grid.csv").read_text()
    lines = text.splitlines()
    table = np.genfromtxt(lines[1:], delimiter=",", names=True)
    out = {name: np.asarray(table[name], dtype=float) for name in table.dtype.names}
    out["start"] = out["start"].astype(int)
    out["made_by"] = lines[0].lstrip("# ")
    return out


def _params_to_theta(params: ChinchillaParams) -> np.ndarray:
    tiny = 1e-12  # a vanished term (e.g. E = 0 from a non-negative fit) starts at a tiny value
    return np.array([np.log(max(params.A, tiny)), np.log(max(params.B, tiny)), np.log(max(params.E, tiny)),
                     params.alpha, params.beta])


def _theta_to_params(theta) -> ChinchillaParams:
    a, b, e, alpha, beta = theta
    return ChinchillaParams(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)),
                            alpha=float(alpha), beta=float(beta))


_STARTS = Array(2, shape=(None, 5), min_size=1, max_abs=100.0)


@validate_params({**_POINTS,
                  "starts": [_STARTS, Array(1, shape=(5,), max_abs=100.0), ChinchillaParams,
                             Options(("full", "small")), None],
                  "delta": [Interval(float, 0, None, closed="neither")],
                  "show_progress": ["boolean", None]})
@thread_limit()
def fit_approach3(N, D, loss, starts=None, *, delta: float = 1e-3, show_progress=None) -> ScalingFit:
    """Chinchilla Approach 3: a robust direct fit of the loss surface from a grid of starts.

    Following Hoffmann et al. (2022, §3.3) and the replication of Besiroglu et al. (2024),
    minimise over ``theta = (a, b, e, alpha, beta)``

    ``sum_i Huber_delta( log L_i - LSE(a - alpha log N_i, b - beta log D_i, e) )``

    (``LSE`` is log-sum-exp, so ``exp(LSE) = e^e + e^a / N^alpha + e^b / D^beta``, and
    ``E, A, B = exp(e), exp(a), exp(b)``) with L-BFGS (``scipy.optimize.minimize``, an exact
    gradient) from every start, and keep the best. Huber's loss (Huber, 1964) is quadratic
    for residuals below ``delta`` and linear above, so outliers pull less.

    Parameters
    ----------
    N, D, loss : array-like, shape (n,)
    starts : array-like, shape (k, 5) or (5,), ChinchillaParams, or str, optional
        Starting values of ``theta`` (entries of magnitude at most 100); ``"full"`` or
        ``"small"`` for :func:`approach3_start_grid`; a ``ChinchillaParams`` for a single
        start (e.g. a variable-projection solution). Default ``"full"`` (4500 starts: minutes).
    delta : float
        Huber threshold on log-loss residuals (1e-3 as in both papers).
    show_progress : bool, optional
        Progress bar over the starts.

    Returns
    -------
    ScalingFit
        ``info["starts"]`` is the number of starts, ``info["theta"]`` the best ``theta`` and
        ``info["start_objectives"]`` the objective reached from each start and
        ``info["start_thetas"]`` the ``theta`` each start ended at (NaN where it failed).
        L-BFGS stops after 2000 iterations; a start that has not converged by then keeps
        where it is (its objective is compared with the others as it stands).

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".
    - huber1964robust: Huber (1964), "Robust Estimation of a Location Parameter".

    Examples
    --------
    >>> data = isoflop_grid(HOFFMANN_2022, width=4.0)
    >>> fit = fit_approach3(data.N, data.D, data.loss, starts=HOFFMANN_2022, show_progress=False)
    >>> print(fit.params)
    E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28
    """
    from scipy.optimize import minimize

    begin = time.perf_counter()
    N, D, loss = _check_points(N, D, loss)
    if starts is None or isinstance(starts, str):
        starts = approach3_start_grid(starts or "full")
    elif isinstance(starts, ChinchillaParams):
        starts = _params_to_theta(starts)[None, :]
    else:
        starts = np.atleast_2d(as_array(starts, "starts"))
    args = (np.log(N), np.log(D), np.log(loss), delta)
    best = None
    values = np.full(len(starts), np.inf)
    thetas = np.full(starts.shape, np.nan)
    disable = None if show_progress is None else not show_progress
    for i, theta0 in enumerate(progress(starts, desc="Approach 3 starts", disable=disable)):
        res = minimize(_approach3_objective, theta0, args=args, jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
        if np.all(np.isfinite(res.x)) and np.isfinite(res.fun):
            values[i] = res.fun
            thetas[i] = res.x
            if best is None or res.fun < best.fun:
                best = res
    if best is None:
        raise ValueError("no start of Approach 3 converged to a finite objective")
    params = _theta_to_params(best.x)
    return _fit_from_params("approach3", params, best.fun, time.perf_counter() - begin,
                            {"starts": len(starts), "theta": best.x, "start_objectives": values,
                             "start_thetas": thetas})


# ---------------------------------------------------------------------------------------
# Prediction of a held-out budget: the test of a scaling law
# ---------------------------------------------------------------------------------------
METHODS = ("Approach 2", "Approach 3", "variable projection")


def _check_extra(extra):
    """``extra = (N, D, loss)`` of further runs, validated like the points of a fit."""
    if len(extra) != 3:
        raise ValueError(f"extra must be a tuple (N, D, loss), got {len(extra)} entries")
    try:
        check_params(dict(zip(("N", "D", "loss"), extra)), _POINTS)
    except (TypeError, ValueError) as err:
        raise type(err)(f"extra: {err}") from None
    return _check_points(*extra)


@validate_params({"iso": [IsoflopData], "held_out": [Interval(float, 0, _MAX_SCALE, closed="neither")],
                  "extra": [tuple, list, None], "approach3_starts": [_STARTS, None],
                  "vp_kwargs": [dict, None]})
def predict_held_out(iso: IsoflopData, held_out, *, extra=None, approach3_starts=None,
                     vp_kwargs=None) -> dict:
    """Fit on the smaller budgets, predict the compute-optimal run at a held-out budget.

    The test of a scaling law is a prediction it was not fitted to (Hoffmann et al., 2022,
    chose Chinchilla's size this way). From IsoFLOP data ``iso`` every budget below
    ``held_out`` is used for fitting:

    - Approach 2 (:func:`fit_approach2`) on the IsoFLOP curves of those budgets;
    - variable projection (:func:`fit_variable_projection`, keyword arguments
      ``vp_kwargs``) and Approach 3 (:func:`fit_approach3` from ``approach3_starts``, plus
      one start at the variable-projection solution) on the same points together with
      ``extra = (N, D, loss)`` runs (e.g. a sweep's checkpoints) whose ``6 N D`` does not
      exceed the largest fitted budget by more than 5%.

    Each method then predicts the compute-optimal ``N*`` and loss ``L*`` at ``held_out``
    (:meth:`ScalingFit.optimal`, :meth:`ScalingFit.optimal_loss`). Every method sees the
    same runs up to the fitted budgets (the matched cost).

    Returns
    -------
    dict
        ``{method: {"N_opt": float, "L_opt": float, "fit": ScalingFit, "failure": str}}`` for
        the methods in :data:`METHODS`; when Approach 2 cannot be fitted (a parabola opens
        downwards) its predictions are NaN by design, ``fit`` is None and ``failure`` says why.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".

    Examples
    --------
    >>> iso = isoflop_grid(HOFFMANN_2022, budgets=[1e17, 1e18, 1e19, 1e20], points_per_curve=7)
    >>> grid = np.linspace(0.1, 0.6, 6)
    >>> pred = predict_held_out(iso, 1e20, vp_kwargs=dict(robust=False, alpha_grid=grid, beta_grid=grid))
    >>> n_true = compute_optimal(1e20, HOFFMANN_2022)[0]
    >>> print(f"{pred['variable projection']['N_opt'] / n_true:.4f}")
    1.0000
    """
    budgets = np.asarray(iso.budgets, dtype=float)
    fit_groups = np.flatnonzero(budgets < held_out * (1 - 1e-9))
    if fit_groups.size < 2:
        raise ValueError(f"held_out must exceed at least two budgets of iso, got {held_out:g}")
    m = np.isin(iso.group, fit_groups)
    N, D, L = iso.N[m], iso.D[m], iso.loss[m]
    try:
        fit2, failure = fit_approach2(N, D, L, iso.group[m]), None
    except ValueError as err:  # e.g. a noisy IsoFLOP curve whose parabola opens downwards
        fit2, failure = None, str(err)
    if extra is not None:
        eN, eD, eL = _check_extra(extra)
        keep = 6.0 * eN * eD <= budgets[fit_groups].max() * 1.05
        N, D, L = np.concatenate([N, eN[keep]]), np.concatenate([D, eD[keep]]), np.concatenate([L, eL[keep]])
    vp = fit_variable_projection(N, D, L, **(vp_kwargs or {}))
    starts = _params_to_theta(vp.params)[None, :]
    if approach3_starts is not None:
        starts = np.vstack([as_array(approach3_starts, "approach3_starts", ndim=2), starts])
    fit3 = fit_approach3(N, D, L, starts=starts)
    out = {}
    for name, fit in zip(METHODS, (fit2, fit3, vp)):
        if fit is None:
            out[name] = {"N_opt": float("nan"), "L_opt": float("nan"), "fit": None, "failure": failure}
        else:
            out[name] = {"N_opt": float(fit.optimal(held_out)[0]),
                         "L_opt": float(fit.optimal_loss(held_out)), "fit": fit, "failure": None}
    return out


# ---------------------------------------------------------------------------------------
# Figures (one function per figure, each returns the Figure)
# ---------------------------------------------------------------------------------------
_XY = {"x": [_PositiveArray(1, shape=("n",), min_size=1)], "y": [_PositiveArray(1, shape=("n",))]}


@validate_params({**_XY, "fit": [PowerLawFit], "xlabel": ["string"], "ylabel": ["string"]})
def plot_power_law_fit(x, y, fit: PowerLawFit, *, xlabel: str = "scale x", ylabel: str = "loss"):
    """Data and a fitted :class:`PowerLawFit` on log-log axes, with ``L_inf`` dashed.

    References
    ----------
    - henighan2020scaling: Henighan et al. (2020), "Scaling Laws for Autoregressive Generative Modeling".
    """
    x, y = as_array(x, "x"), as_array(y, "y")
    fig, (ax,) = subplots(width=5.0, height=3.8)
    grid = np.geomspace(x.min(), x.max(), 200)
    ax.loglog(x, y, "o", label="data")
    ax.loglog(grid, fit.predict(grid), "-",
              label=f"fit: {fit.l_inf:.3g} + ({fit.x0:.3g}/x)^{fit.alpha:.3g}")
    if fit.l_inf > 0:
        ax.axhline(fit.l_inf, ls="--", color="gray", label="L_inf")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


@validate_params({"n_values": [_PositiveArray(1, min_size=1)], "curves": [dict],
                  "reference_slope": [Interval(float, -50, 50), None], "xlabel": ["string"],
                  "ylabel": ["string"]})
def plot_teacher_student(n_values, curves: dict, *, reference_slope=None, xlabel="training samples n",
                         ylabel="excess test risk"):
    """Learning curves of the teacher-student model on log-log axes.

    ``curves`` maps a label to risks (one per ``n``); ``reference_slope`` draws a dotted
    power law ``n^slope`` through the first curve's first point.

    References
    ----------
    - bahri2024explaining: Bahri et al. (2024), "Explaining Neural Scaling Laws".
    """
    n_values = as_array(n_values, "n_values")
    curves = _check_curves(curves, "curves", n_values.size)
    fig, (ax,) = subplots(width=5.0, height=3.8)
    for label, risks in curves.items():
        ax.loglog(n_values, risks, "o-", label=label)
    if reference_slope is not None:
        first = next(iter(curves.values()))
        ax.loglog(n_values, first[0] * (n_values / n_values[0]) ** reference_slope, ":", color="k",
                  label=f"slope {reference_slope:.2g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({"sweep": [SweepResult], "fit": [ScalingFit],
                  "budgets": [_PositiveArray(1, min_size=1, max_abs=_MAX_SCALE), None]})
def plot_training_sweep(sweep: SweepResult, fit: ScalingFit, budgets=None):
    """Left: test loss vs samples seen per width, with the fitted surface. Right: IsoFLOP
    slices of the sweep (loss vs N at fixed ``C = 6 N D``) with the fit's optimum.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    """
    import matplotlib.pyplot as plt

    if fit.params is None:
        raise ValueError("fit must be a direct fit (with params)")
    fig, (ax, bx) = subplots(2, width=5.0, height=3.8)
    colors = plt.cm.viridis(np.linspace(0, 0.9, np.unique(sweep.width).size))
    for color, w in zip(colors, np.unique(sweep.width)):
        m = sweep.width == w
        ax.loglog(sweep.D[m], sweep.loss[m], "o", color=color, ms=4, label=f"width {w}")
        grid = np.geomspace(sweep.D[m].min(), sweep.D[m].max(), 50)
        ax.loglog(grid, chinchilla_loss(sweep.N[m][0], grid, fit.params), "-", color=color)
    ax.axhline(sweep.noise_floor, ls="--", color="gray", label="noise floor")
    ax.set_xlabel("training samples seen D")
    ax.set_ylabel("test loss (MSE)")
    ax.legend(fontsize=7)
    if budgets is None:
        c_all = 6 * sweep.N * sweep.D
        budgets = np.geomspace(np.percentile(c_all, 20), np.percentile(c_all, 80), 4)
    iso = sweep.isoflop(budgets)
    colors = plt.cm.plasma(np.linspace(0, 0.8, len(iso.budgets)))
    n_grid = np.geomspace(sweep.N.min(), sweep.N.max(), 100)
    for g, (C, color) in enumerate(zip(iso.budgets, colors)):
        m = iso.group == g
        bx.semilogx(iso.N[m], iso.loss[m], "o", color=color, ms=4)
        bx.semilogx(n_grid, chinchilla_loss(n_grid, C / (6 * n_grid), fit.params), "-", color=color,
                    label=f"C = {C:.1e}")
        n_opt, _, l_opt = compute_optimal(C, fit.params)
        bx.plot([n_opt], [l_opt], "*", color=color, ms=12, mec="k")
    from matplotlib.ticker import NullFormatter

    bx.xaxis.set_minor_formatter(NullFormatter())
    bx.set_xlabel("parameters N")
    bx.set_ylabel("test loss at fixed compute")
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


@validate_params({"sweeps": [list, tuple], "fits": [list, tuple]})
def plot_sweep_seeds(sweeps, fits):
    """Left: test loss against samples seen per width, mean and min-max band over seeds
    (regular checkpoints). Right: each seed's fitted compute-optimal ``N*(C)``.

    ``sweeps`` (one :class:`SweepResult` per seed, same widths and checkpoints) and
    ``fits`` (one :class:`ScalingFit` each) are lists of equal length.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    """
    import matplotlib.pyplot as plt

    from .plotting import plot_spread

    sweeps, fits = _check_items(sweeps, "sweeps", SweepResult), _check_items(fits, "fits", ScalingFit)
    if len(fits) != len(sweeps):
        raise ValueError(f"fits must have one fit per sweep ({len(sweeps)}), got {len(fits)}")

    fig, (ax, bx) = subplots(2, width=5.0, height=3.8)
    first = sweeps[0]
    regular = first.group < 0 if first.group is not None else np.ones(len(first), bool)
    widths = np.unique(first.width)
    colors = plt.cm.viridis(np.linspace(0, 0.9, widths.size))
    for color, w in zip(colors, widths):
        curves, x = [], None
        for s in sweeps:
            m = (s.width == w) & ((s.group < 0) if s.group is not None else True)
            x, order = s.D[m], np.argsort(s.D[m])
            curves.append(s.loss[m][order])
            x = x[order]
        plot_spread(ax, x, np.array(curves), label=f"width {w}", color=color)
    ax.axhline(first.noise_floor, ls="--", color="gray", label="noise floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training samples seen D")
    ax.set_ylabel("test loss (MSE)")
    ax.legend(fontsize=6, ncol=2)
    c_all = 6 * first.N * first.D
    grid = np.geomspace(c_all.min(), c_all.max(), 50)
    for s, fit in zip(sweeps, fits):
        bx.loglog(grid, fit.optimal(grid)[0], label=f"seed {s.seed}")
    bx.axhspan(first.N.min(), first.N.max(), color="0.92", label="trained sizes")
    bx.set_xlabel("compute C = 6ND")
    bx.set_ylabel("fitted compute-optimal N*")
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


@validate_params({"designs": [list, tuple], "predictions": [list, tuple],
                  "held_out": [Interval(float, 0, _MAX_SCALE, closed="neither")], "labels": [list, tuple, None]})
def plot_held_out(designs, predictions, held_out, labels=None):
    """The held-out IsoFLOP curve of each seed (markers) with the direct fits' predicted
    curves ``L(N, C / 6N)`` and every method's predicted optimum (one panel per seed,
    titled by ``labels``).

    ``designs`` are :class:`IsoflopData` (e.g. :meth:`SweepResult.design`), ``predictions``
    the matching results of :func:`predict_held_out` at ``held_out``, ``labels`` one title
    each (default "run k").

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".
    """
    designs = _check_items(designs, "designs", IsoflopData)
    predictions = _check_items(predictions, "predictions", dict)
    if len(predictions) != len(designs):
        raise ValueError(f"predictions must have one entry per design ({len(designs)}), got {len(predictions)}")
    for k, pred in enumerate(predictions):
        if set(pred) != set(METHODS):
            raise ValueError(f"predictions[{k}] must be a result of predict_held_out (keys {list(METHODS)})")
    if labels is not None and len(labels) != len(designs):
        raise ValueError(f"labels must have one label per design ({len(designs)}), got {len(labels)}")
    fig, axes = subplots(len(designs), width=3.6, height=3.4)
    labels = [f"run {k + 1}" for k in range(len(designs))] if labels is None else [str(v) for v in labels]
    styles = {"Approach 2": ("v", "C1"), "Approach 3": ("s", "C2"), "variable projection": ("*", "C3")}
    for ax, iso, pred, label in zip(axes, designs, predictions, labels):
        g = int(np.argmin(np.abs(np.log(np.asarray(iso.budgets) / held_out))))
        m = iso.group == g
        ax.semilogx(iso.N[m], iso.loss[m], "o", color="k", ms=4, label="held-out runs")
        n_grid = np.geomspace(iso.N[m].min() / 1.5, iso.N[m].max() * 1.5, 100)
        for name in ("Approach 3", "variable projection"):
            p = pred[name]["fit"].params
            ax.semilogx(n_grid, chinchilla_loss(n_grid, held_out / (6 * n_grid), p), "-",
                        color=styles[name][1], lw=1)
        for name, (marker, color) in styles.items():
            if not np.isfinite(pred[name]["N_opt"]):
                continue
            ax.plot([pred[name]["N_opt"]], [pred[name]["L_opt"]], marker, color=color, ms=9, mec="k",
                    label=f"{name} prediction")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("parameters N")
        ax.set_title(f"{label}: held-out C = {held_out:.2g}", fontsize=9)
    axes[0].set_ylabel("test loss")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


@validate_params({"data": [IsoflopData], "fit": [ScalingFit], "params": [ChinchillaParams, None]})
def plot_isoflop_fits(data: IsoflopData, fit: ScalingFit, params: ChinchillaParams | None = None):
    """IsoFLOP curves with their parabolas (in log D) and vertices; true optima as stars.

    The parabolas are refitted per budget from ``data`` (as :func:`fit_approach2` does);
    ``fit`` is the Approach 2 fit they belong to (not drawn).

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    """
    import matplotlib.pyplot as plt

    fig, (ax,) = subplots(width=6, height=3.8)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(data.budgets)))
    for g, (C, color) in enumerate(zip(data.budgets, colors)):
        m = data.group == g
        log_d = np.log10(data.D[m])
        coef = np.polyfit(log_d, data.loss[m], 2)
        grid = np.linspace(log_d.min(), log_d.max(), 100)
        ax.plot(data.N[m], data.loss[m], "o", color=color, ms=4, label=f"C = {C:.0e}")
        ax.plot(C / (6 * 10 ** grid), np.polyval(coef, grid), "-", color=color, lw=1)
        vertex = -coef[1] / (2 * coef[0])
        ax.plot([C / (6 * 10 ** vertex)], [np.polyval(coef, vertex)], "v", color=color, mec="k")
        if params is not None:
            n_opt, _, l_opt = compute_optimal(C, params)
            ax.plot([n_opt], [l_opt], "*", color="k", ms=9)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss")
    ax.set_title("IsoFLOP parabolas (triangles: vertices, stars: true optima)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@validate_params({"widths": [_PositiveArray(1, min_size=1)], "errors": [dict]})
def plot_approach2_bias(widths, errors: dict):
    """Approach 2's relative error in extrapolated ``D*`` (percent) against the grid's
    half-width factor, one line per label in ``errors`` (one value per width).

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".
    """
    widths = as_array(widths, "widths")
    errors = _check_curves(errors, "errors", widths.size)
    fig, (ax,) = subplots(width=5.0, height=3.8)
    for label, values in errors.items():
        ax.semilogx(widths, 100 * values, "o-", label=label)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("grid half-width factor w (grid over [N*/w, w N*])")
    ax.set_ylabel("error of D* at C = 1e24 (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({"data": [ChinchillaData], "fits": [dict], "compute": [_Exponents(high=_MAX_SCALE)]})
def plot_chinchilla_fits(data, fits: dict, compute=(1e18, 1e26)):
    """Left: the Chinchilla points (loss vs N, colour = compute). Right: the compute-optimal
    ``N*(C)`` implied by each fit in ``fits`` (label -> ScalingFit or ChinchillaParams)
    over ``compute = (low, high)`` FLOP.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".
    """
    if not fits or not all(isinstance(f, (ScalingFit, ChinchillaParams)) for f in fits.values()):
        raise TypeError("fits must be a non-empty dict of label -> ScalingFit or ChinchillaParams")
    fig, (ax, bx) = subplots(2, width=5.0, height=3.8)
    sc = ax.scatter(data.N, data.loss, c=np.log10(data.C), s=8, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="log10 C (FLOP)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss")
    grid = np.geomspace(compute[0], compute[1], 100)
    for (label, fit), style in zip(fits.items(), itertools.cycle(["-", "--", ":", "-."])):
        if isinstance(fit, ChinchillaParams):
            n_opt = compute_optimal(grid, fit)[0]
        else:
            n_opt = fit.optimal(grid)[0]
        bx.loglog(grid, n_opt, style, label=label, lw=2)
    bx.set_xlabel("compute C (FLOP)")
    bx.set_ylabel("compute-optimal N*")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({"results": [dict], "name": ["string"], "truth": [Interval(float), None]})
def plot_bootstrap(results: dict, name: str = "N_opt", truth=None):
    """Histograms of bootstrap replicates of ``name`` (one per label in ``results``,
    each a :class:`BootstrapResult`), with the true value as a vertical line.

    References
    ----------
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".
    """
    if not results or not all(isinstance(r, BootstrapResult) for r in results.values()):
        raise TypeError("results must be a non-empty dict of label -> BootstrapResult")
    fig, (ax,) = subplots(width=5.0, height=3.8)
    for label, result in results.items():
        values = result._values(name)
        ax.hist(values, bins=25, alpha=0.6, label=label)
    if truth is not None:
        ax.axvline(truth, color="k", ls="--", label="truth")
    ax.set_xlabel(f"bootstrap replicates of {name}")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# Explorer
# ---------------------------------------------------------------------------------------
def _draw_scaling_explorer(alpha, beta, width, noise):
    params = ChinchillaParams(E=HOFFMANN_2022.E, A=HOFFMANN_2022.A, B=HOFFMANN_2022.B,
                              alpha=alpha, beta=beta)
    data = isoflop_grid(params, width=width, noise=noise, points_per_curve=15, seed=0)
    fit2 = fit_approach2(data.N, data.D, data.loss, data.group)
    fitvp = fit_variable_projection(data.N, data.D, data.loss, robust=False,
                                    alpha_grid=np.linspace(0.1, 0.8, 15),
                                    beta_grid=np.linspace(0.1, 0.8, 15))
    grid = np.geomspace(1e17, 1e25, 60)
    truth = compute_optimal(grid, params)[0]
    fig, (ax,) = subplots(width=6, height=3.8)
    ax.semilogx(grid, 100 * (fit2.optimal(grid)[0] / truth - 1), label="Approach 2 (parabolas)")
    ax.semilogx(grid, 100 * (fitvp.optimal(grid)[0] / truth - 1), label="variable projection")
    ax.axvspan(1e17, 1e21, color="0.9", label="fitted budgets")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("compute C (FLOP)")
    ax.set_ylabel("error of estimated N*(C) (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    e2 = 100 * (fit2.optimal(1e24)[0] / compute_optimal(1e24, params)[0] - 1)
    evp = 100 * (fitvp.optimal(1e24)[0] / compute_optimal(1e24, params)[0] - 1)
    text = (f"alpha={alpha}, beta={beta}, width x{width}, noise {noise}: error of N* at 1e24 FLOP: "
            f"Approach 2 {e2:+.2f}%, variable projection {evp:+.2f}%")
    return fig, text


def scaling_explorer():
    """Explorer: Approach 2 vs variable projection estimates of ``N*(C)`` and their error.

    Controls: the true exponents ``alpha`` and ``beta`` (with Chinchilla's ``E, A, B``), the
    IsoFLOP grid's half-width factor and the relative noise on the losses. The static
    book precomputes grid width x noise (12 frames).

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".
    - golub1973differentiation: Golub and Pereyra (1973), "The Differentiation of Pseudo-Inverses and
      Nonlinear Least Squares Problems Whose Variables Separate".
    """
    from .widgets import Choice, Explorer

    controls = {
        "alpha": Choice([0.2, 0.28, 0.34, 0.465], default=0.34, label="alpha (params)"),
        "beta": Choice([0.155, 0.28, 0.34, 0.4], default=0.28, label="beta (data)"),
        "width": Choice([2, 4, 8, 16], default=8, label="grid half-width factor"),
        "noise": Choice([0.0, 0.002, 0.005], default=0.0, label="relative noise"),
    }
    return Explorer(_draw_scaling_explorer, controls, title="Approach 2 vs variable projection",
                    precompute=["width", "noise"])
