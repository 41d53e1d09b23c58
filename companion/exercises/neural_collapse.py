"""Checks of Chapter 1's graded exercises (neural collapse).

::

    from companion.exercises import neural_collapse as ex
    ex.check_nc1(my_nc1)
    ex.check_simplex_etf(my_simplex_etf)
    ex.check_collapse_threshold(my_collapse_threshold)

Each check compares the student's function with the reference in
:mod:`companion.neural_collapse` on several inputs, edge cases included.
"""

from __future__ import annotations

import numpy as np

from .. import neural_collapse as nc
from ._core import ExerciseCheck, register

__all__ = ["check_nc1", "check_simplex_etf", "check_collapse_threshold"]


def _nc1_cases():
    rng = np.random.default_rng(2024)
    cases = []
    y = np.repeat(np.arange(4), 25)
    cases.append(("balanced, 4 classes in 6 dimensions", 2.0 * rng.standard_normal((4, 6))[y]
                  + rng.standard_normal((100, 6)), y))
    y = np.repeat(np.arange(3), [40, 12, 5])
    cases.append(("imbalanced classes (the global mean is sample-weighted)",
                  3.0 * rng.standard_normal((3, 5))[y] + rng.standard_normal((57, 5)) + 4.0, y))
    y = np.repeat(np.arange(6), 10)
    cases.append(("6 classes in 3 dimensions (Sigma_B is singular: use its pseudo-inverse)",
                  2.0 * rng.standard_normal((6, 3))[y] + rng.standard_normal((60, 3)), y))
    etf = nc.simplex_etf(5, 7, seed=3).T
    y = np.repeat(np.arange(5), 8)
    cases.append(("collapsed features on a simplex ETF (NC1 = 0)", etf[y], y))
    return cases


@register("nc-nc1", points=2, chapter="neural_collapse")
def check_nc1(student_nc1):
    """Check ``student_nc1(features, labels) -> float`` against :func:`companion.neural_collapse.nc_metrics`."""
    hint = ("use the sample-weighted global mean, Sigma_W and Sigma_B as defined above, "
            "np.linalg.pinv for Sigma_B^+, and divide the trace by C")
    with ExerciseCheck("nc-nc1", points=2, hint=hint) as ex:
        for name, h, y in _nc1_cases():
            got = ex.call(name, student_nc1, h.copy(), y.copy())
            ex.expect_close(name, got, nc.nc_metrics(h, y).nc1, rtol=1e-6, atol=1e-9)


@register("nc-etf", points=2, chapter="neural_collapse")
def check_simplex_etf(student_etf):
    """Check ``student_etf(num_classes) -> (C, C) array`` whose columns form a simplex ETF."""
    hint = "centre the identity (I - 11^T/C) and rescale by sqrt(C/(C-1)) so that columns have unit norm"
    with ExerciseCheck("nc-etf", points=2, hint=hint) as ex:
        for c in (2, 3, 5, 10):
            name = f"num_classes={c}"
            m = np.asarray(ex.call(name, student_etf, c), dtype=float)
            ex.expect_true(name, m.shape == (c, c), f"expected shape {(c, c)}, got {m.shape}")
            ex.expect_close(f"{name}: column norms", np.linalg.norm(m, axis=0), np.ones(c))
            expected_gram = (c / (c - 1)) * (np.eye(c) - np.ones((c, c)) / c)
            ex.expect_close(f"{name}: Gram matrix (cosines -1/(C-1))", m.T @ m, expected_gram, atol=1e-8)
            ex.expect_close(f"{name}: columns sum to zero", m.sum(axis=1), np.zeros(c), atol=1e-8)
        ex.expect_raises("num_classes=1 must raise ValueError", student_etf, 1)


@register("nc-threshold", points=3, chapter="neural_collapse")
def check_collapse_threshold(student_threshold):
    """Check ``student_threshold(n_per_class) -> array`` of the per-class collapse thresholds."""
    hint = ("class k collapses when its p_k = 1 - N sqrt(lam_W lam_H / n_k) reaches 0; "
            "set lam_W = lam_H = lam and solve for lam")
    cases = [[20, 10, 5, 2], [5, 5, 5], [100, 1], [7, 30, 3, 12, 50]]
    with ExerciseCheck("nc-threshold", points=3, hint=hint) as ex:
        for n in cases:
            name = f"n_per_class={n}"
            got = ex.call(name, student_threshold, list(n))
            ex.expect_close(name, np.asarray(got, dtype=float), nc.minority_collapse_threshold(n), rtol=1e-8)
        n = [20, 10, 5, 2]
        lam = np.asarray(student_threshold(n), dtype=float)[-1]
        below = nc.imbalanced_mse_solution(n, 0.99 * lam, 0.99 * lam)
        above = nc.imbalanced_mse_solution(n, 1.01 * lam, 1.01 * lam)
        ex.expect_true("just below your threshold the smallest class must survive", not below.collapsed[-1])
        ex.expect_true("just above your threshold the smallest class must collapse", above.collapsed[-1])
