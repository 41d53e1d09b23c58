"""Checks of the graded exercises of Chapter 4 (neural scaling laws).

::

    from companion.exercises import scaling as ex
    ex.check_compute_optimal(my_compute_optimal)
    ex.check_parabola_vertex(my_parabola_vertex)
    ex.check_linear_coefficients(my_linear_coefficients)
"""

from __future__ import annotations

import numpy as np

from .. import scaling
from ._core import ExerciseCheck, register

__all__ = ["check_compute_optimal", "check_parabola_vertex", "check_linear_coefficients",
           "reference_parabola_vertex", "reference_linear_coefficients"]

_PARAM_CASES = [
    ("Hoffmann et al. fit", scaling.HOFFMANN_2022),
    ("Besiroglu et al. refit", scaling.BESIROGLU_2024),
    ("alpha = beta", scaling.ChinchillaParams(E=1.5, A=300.0, B=300.0, alpha=0.3, beta=0.3)),
    ("data-hungry surface", scaling.ChinchillaParams(E=2.0, A=100.0, B=5000.0, alpha=0.465, beta=0.155)),
]


@register("sc-optimal", points=2, chapter="scaling")
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


def reference_parabola_vertex(log10_d, loss):
    """``10^v`` with ``v`` the vertex of the least-squares parabola of ``loss`` in ``log10_d``."""
    c2, c1, _ = np.polyfit(log10_d, loss, 2)
    return 10.0 ** (-c1 / (2.0 * c2))


@register("sc-vertex", points=2, chapter="scaling")
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
    """Least-squares ``(E, A, B)`` of relative residuals ``(E + A N^-alpha + B D^-beta) / L - 1``."""
    X = np.column_stack([np.ones_like(N), N ** -alpha, D ** -beta]) / loss[:, None]
    return np.linalg.lstsq(X, np.ones_like(loss), rcond=None)[0]


@register("sc-linear", points=3, chapter="scaling")
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
