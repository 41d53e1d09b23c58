"""Checks of the graded exercises of Chapter 4 (neural scaling laws).

::

    from companion.exercises import scaling as ex
    ex.check_compute_optimal(my_compute_optimal)
    ex.check_parabola_vertex(my_parabola_vertex)
    ex.check_linear_coefficients(my_linear_coefficients)
    ex.check_vertex_offset(my_vertex_offset)
    ex.check_predict_budget(my_predict_budget)
"""

from __future__ import annotations

import numpy as np

from .. import scaling
from .._validation import Array, Interval, as_array, check_params
from ._core import ExerciseCheck, register

__all__ = ["check_compute_optimal", "check_parabola_vertex", "check_linear_coefficients",
           "check_vertex_offset", "check_predict_budget",
           "reference_parabola_vertex", "reference_linear_coefficients", "reference_vertex_offset",
           "reference_predict_budget"]

_PARAM_CASES = [
    ("Hoffmann et al. fit", scaling.HOFFMANN_2022),
    ("Besiroglu et al. refit", scaling.BESIROGLU_2024),
    ("alpha = beta", scaling.ChinchillaParams(E=1.5, A=300.0, B=300.0, alpha=0.3, beta=0.3)),
    ("data-hungry surface", scaling.ChinchillaParams(E=2.0, A=100.0, B=5000.0, alpha=0.465, beta=0.155)),
]


@register("sc-optimal", points=2, chapter="scaling",
          implements=("companion.scaling.compute_optimal", "companion.scaling.optimal_exponents"))
def check_compute_optimal(student_fn):
    """``student_fn(C, E, A, B, alpha, beta)`` must return ``(N_opt, D_opt)`` at ``C = 6 N D``."""
    with ExerciseCheck("sc-optimal", points=2,
                       hint="minimise E + A N^-alpha + B (C/6N)^-beta over N; N* = G (C/6)^a") as ex:
        for label, p in _PARAM_CASES:
            for C in (1e18, 5.76e23, np.array([1e20, 1e22, 1e24])):
                got = ex.call(label, student_fn, C, p.E, p.A, p.B, p.alpha, p.beta)
                ex.expect_true(f"{label}: return a pair (N_opt, D_opt)",
                               isinstance(got, (tuple, list)) and len(got) == 2)
                n_ref, d_ref, _ = scaling.compute_optimal(C, p)
                ex.expect_close(f"{label}, C={C}: N_opt", got[0], n_ref, rtol=1e-6)
                ex.expect_close(f"{label}, C={C}: D_opt", got[1], d_ref, rtol=1e-6)
    return True


# Bounds that keep the least-squares solves finite (LAPACK can spin on values whose squares
# overflow): log10 D is a logarithm, losses are O(1). The reference solutions check them with
# check_params in their first line, not @validate_params: a check recognises its own
# reference handed in (as the unit tests do) by the function's __code__, which for a
# validate_params wrapper is the wrapper's, shared by every decorated function.
_LOG10_D = Array(1, shape=("n",), min_size=3, max_abs=1e3)
_LOSS = Array(1, shape=("n",), max_abs=1e100)
_POINTS = {"N": [scaling._PositiveArray(1, shape=("n",), min_size=3, max_abs=scaling._MAX_SCALE)],
           "D": [scaling._PositiveArray(1, shape=("n",), max_abs=scaling._MAX_SCALE)],
           "loss": [scaling._PositiveArray(1, shape=("n",), max_abs=scaling._MAX_LOSS)]}
_EXPONENT = Interval(float, 0, 10, closed="right")


def reference_parabola_vertex(log10_d, loss):
    """``10^v`` with ``v`` the vertex of the least-squares parabola of ``loss`` in ``log10_d``.

    ``log10_d`` (at least three distinct values, magnitudes at most 1e3) and ``loss`` are
    1-D arrays of equal length; the parabola must open upwards.

    References
    ----------
    - hoffmann2022training: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models".

    Examples
    --------
    >>> x = np.linspace(8.0, 10.0, 5)
    >>> print(f"{np.log10(reference_parabola_vertex(x, 3.0 + (x - 9.2) ** 2)):.3f}")
    9.200
    """
    check_params(locals(), {"log10_d": [_LOG10_D], "loss": [_LOSS]})
    log10_d, loss = as_array(log10_d, "log10_d"), as_array(loss, "loss")
    if np.unique(log10_d).size < 3:
        raise ValueError("log10_d must hold at least three distinct values to fit a parabola")
    c2, c1, _ = np.polyfit(log10_d, loss, 2)
    if not c2 > 0:
        raise ValueError("loss must curve upwards in log10_d (the fitted parabola has no minimum)")
    vertex = -c1 / (2.0 * c2)
    if abs(vertex) > 300:
        raise ValueError(f"loss puts the parabola's vertex at log10 D = {vertex:.3g}, beyond the float range")
    return 10.0 ** vertex


@register("sc-vertex", points=2, chapter="scaling",
          implements=("companion.scaling.fit_approach2",))
def check_parabola_vertex(student_fn):
    """``student_fn(log10_d, loss)`` must return the D at the vertex of the fitted parabola."""
    with ExerciseCheck("sc-vertex", points=2,
                       hint="np.polyfit(x, y, 2) gives c2, c1, c0; the vertex is at -c1 / (2 c2)") as ex:
        x = np.linspace(8.0, 10.0, 7)
        got = ex.call("exact parabola", student_fn, x, 3.0 + 0.5 * (x - 9.2) ** 2)
        ex.expect_close("exact parabola with vertex at log10 D = 9.2", got, 10 ** 9.2, rtol=1e-8)
        for width in (2.0, 8.0):
            data = scaling.isoflop_grid(scaling.HOFFMANN_2022, budgets=[1e19], width=width)
            log_d = np.log10(data.D)
            got = ex.call(f"width {width}", student_fn, log_d, data.loss)
            ex.expect_close(f"Chinchilla IsoFLOP curve, width x{width}", got,
                            reference_parabola_vertex(log_d, data.loss), rtol=1e-8)
        rng = np.random.default_rng(0)
        y = 2.0 + 0.3 * (x - 8.7) ** 2 + 0.01 * rng.standard_normal(x.size)
        got = ex.call("noisy points", student_fn, x, y)
        ex.expect_close("noisy points (least-squares parabola, not an interpolation)", got,
                        reference_parabola_vertex(x, y), rtol=1e-8)
    return True


def reference_linear_coefficients(N, D, loss, alpha, beta):
    """Least-squares ``(E, A, B)`` of relative residuals ``(E + A N^-alpha + B D^-beta) / L - 1``.

    ``N``, ``D`` and ``loss`` are positive 1-D arrays of equal length (at least 3);
    ``0 < alpha, beta <= 10``.

    References
    ----------
    - golub1973differentiation: Golub and Pereyra (1973), "The Differentiation of Pseudo-Inverses and
      Nonlinear Least Squares Problems Whose Variables Separate".

    Examples
    --------
    >>> data = scaling.isoflop_grid(scaling.HOFFMANN_2022, width=4.0)
    >>> coef = reference_linear_coefficients(data.N, data.D, data.loss, 0.34, 0.28)
    >>> coef.round(2).tolist()
    [1.69, 406.4, 410.7]
    """
    check_params(locals(), {**_POINTS, "alpha": [_EXPONENT], "beta": [_EXPONENT]})
    N, D, loss = as_array(N, "N"), as_array(D, "D"), as_array(loss, "loss")
    X = np.column_stack([np.ones_like(N), N ** -alpha, D ** -beta]) / loss[:, None]
    return np.linalg.lstsq(X, np.ones_like(loss), rcond=None)[0]


@register("sc-linear", points=3, chapter="scaling",
          implements=("companion.scaling.fit_variable_projection",))
def check_linear_coefficients(student_fn):
    """``student_fn(N, D, loss, alpha, beta)`` must return the least-squares ``(E, A, B)``."""
    with ExerciseCheck("sc-linear", points=3,
                       hint="build the 3-column design [1, N^-alpha, D^-beta], divide each row by "
                            "its loss, solve with np.linalg.lstsq against a vector of ones") as ex:
        for label, p in _PARAM_CASES[:2]:
            data = scaling.isoflop_grid(p, width=4.0)
            got = ex.call(label, student_fn, data.N, data.D, data.loss, p.alpha, p.beta)
            ex.expect_close(f"{label}, noise-free, true exponents: (E, A, B)", got,
                            np.array([p.E, p.A, p.B]), rtol=1e-6)
        data = scaling.isoflop_grid(scaling.HOFFMANN_2022, width=4.0, noise=0.01, seed=3)
        for alpha, beta in ((0.34, 0.28), (0.5, 0.2)):
            got = ex.call("noisy", student_fn, data.N, data.D, data.loss, alpha, beta)
            ex.expect_close(f"noisy data at alpha={alpha}, beta={beta} (relative residuals)", got,
                            reference_linear_coefficients(data.N, data.D, data.loss, alpha, beta),
                            rtol=1e-6)
    return True


def reference_vertex_offset(alpha, beta, width, points=15):
    """``D*_parabola / D*_true`` of one IsoFLOP curve, from its shape alone.

    With ``x = ln(N / N*)`` along the line ``6 N D = C``, the first-order condition
    ``alpha A N*^-alpha = beta B D*^-beta = K`` gives
    ``L - E = K (exp(-alpha x) / alpha + exp(beta x) / beta)``: the curve is the same
    shape at every budget, scaled by ``K`` and shifted by ``E``. Neither moves a
    least-squares parabola's vertex, and the fit is invariant to the affine change of
    abscissa to ``log10 D = const - x / ln 10``, so the vertex sits at the same ``x_v`` on
    every budget and ``D*_parabola / D*_true = exp(-x_v)``. ``0 < alpha, beta <= 10``,
    ``1 < width <= 1e4``, ``points >= 3``.

    References
    ----------
    - besiroglu2024chinchilla: Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt".

    Examples
    --------
    >>> print(f"{reference_vertex_offset(0.465, 0.155, 8.0):.4f}")
    0.8609
    """
    check_params(locals(), {"alpha": [_EXPONENT], "beta": [_EXPONENT],
                            "width": [Interval(float, 1, 1e4, closed="neither")],
                            "points": [Interval(int, 3, None)]})
    x = np.linspace(-np.log(width), np.log(width), points)
    shape = np.exp(-alpha * x) / alpha + np.exp(beta * x) / beta
    c2, c1, _ = np.polyfit(x, shape, 2)
    return float(np.exp(c1 / (2.0 * c2)))


@register("sc-offset", points=3, chapter="scaling",
          implements=("companion.scaling.approach2_bias", "companion.scaling.fit_approach2",
                      "companion.scaling.isoflop_grid"))
def check_vertex_offset(student_fn):
    """``student_fn(alpha, beta, width, points)`` must return ``D*_parabola / D*_true``.

    Compared with the Approach 2 simulation (:func:`companion.scaling.approach2_bias`),
    whose extrapolated ``D*`` inherits the same constant ratio.
    """
    with ExerciseCheck("sc-offset", points=3,
                       hint="write L - E along the IsoFLOP line in x = ln(N/N*), use the optimality "
                            "condition to factor out one constant, fit a parabola to the shape on "
                            "the grid of x, and mind the sign: D = C / (6N) moves opposite to N") as ex:
        cases = [(0.34, 0.28, 2.0, 15), (0.34, 0.28, 16.0, 15), (0.465, 0.155, 8.0, 15),
                 (0.465, 0.155, 16.0, 7), (0.2, 0.5, 8.0, 11), (0.3, 0.3, 16.0, 15)]
        for alpha, beta, width, points in cases:
            label = f"alpha={alpha}, beta={beta}, width x{width:g}, {points} points"
            got = ex.call(label, student_fn, alpha, beta, width, points)
            p = scaling.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=alpha, beta=beta)
            simulated = 1.0 + scaling.approach2_bias(p, width, points_per_curve=points)[1]
            ex.expect_close(f"{label}: D*_parabola / D*_true against the simulated Approach 2", got,
                            simulated, rtol=1e-6)
        other = scaling.ChinchillaParams(E=0.5, A=50.0, B=9000.0, alpha=0.465, beta=0.155)
        got = ex.call("another E, A, B", student_fn, 0.465, 0.155, 8.0, 15)
        ex.expect_close("the same ratio for another E, A, B (it depends on the shape only)", got,
                        1.0 + scaling.approach2_bias(other, 8.0)[1], rtol=1e-6)
    return True


def reference_predict_budget(N, D, loss, C):
    """Predict ``(N*, L*)`` at budget ``C`` from a direct (variable-projection) fit.

    ``N``, ``D`` and ``loss`` as for :func:`companion.scaling.fit_variable_projection`
    (at least 5 points); ``C`` a positive budget in FLOP.

    References
    ----------
    - golub1973differentiation: Golub and Pereyra (1973), "The Differentiation of Pseudo-Inverses and
      Nonlinear Least Squares Problems Whose Variables Separate".

    Examples
    --------
    >>> data = scaling.isoflop_grid(scaling.HOFFMANN_2022, budgets=[1e17, 1e18, 1e19], points_per_curve=5)
    >>> n_opt, l_opt = reference_predict_budget(data.N, data.D, data.loss, 1e21)
    >>> print(f"{n_opt / scaling.compute_optimal(1e21)[0]:.3f}")
    1.000
    """
    check_params(locals(), {**_POINTS, "C": [Interval(float, 0, 1e60, closed="neither")]})
    fit = scaling.fit_variable_projection(N, D, loss, robust=False,
                                          alpha_grid=np.linspace(0.1, 1.0, 10),
                                          beta_grid=np.linspace(0.1, 1.0, 10))
    n_opt, _, l_opt = scaling.compute_optimal(C, fit.params)
    return n_opt, l_opt


@register("sc-predict", points=3, chapter="scaling", implements=("companion.scaling.predict_held_out",))
def check_predict_budget(student_fn):
    """``student_fn(N, D, loss, C)`` must predict ``(N*, L*)`` at a budget beyond the data.

    IsoFLOP data from budgets 1e17 to 1e20 (0.1% noise) on a near-symmetric and a strongly
    asymmetric surface; the prediction at 1e22 must be within 3% in ``N*`` and 0.1% in
    ``L*`` of the truth.
    """
    with ExerciseCheck("sc-predict", points=3,
                       hint="a method biased on asymmetric surfaces (IsoFLOP parabolas) misses N* by "
                            "more than the tolerance; fit the whole surface instead") as ex:
        surfaces = [("Chinchilla's published surface, grid x4", scaling.HOFFMANN_2022, 4.0),
                    ("asymmetric surface, grid x8",
                     scaling.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.465, beta=0.155), 8.0)]
        for label, p, width in surfaces:
            data = scaling.isoflop_grid(p, budgets=[1e17, 1e18, 1e19, 1e20], width=width,
                                        noise=0.001, seed=3)
            got = ex.call(label, student_fn, data.N, data.D, data.loss, 1e22)
            ex.expect_true(f"{label}: return a pair (N_opt, L_opt)",
                           isinstance(got, (tuple, list)) and len(got) == 2)
            n_true, _, l_true = scaling.compute_optimal(1e22, p)
            ex.expect_close(f"{label}: N* at 1e22 FLOP (3% tolerance)", got[0], n_true, rtol=0.03)
            ex.expect_close(f"{label}: L* at 1e22 FLOP (0.1% tolerance)", got[1], l_true, rtol=1e-3)
    return True
