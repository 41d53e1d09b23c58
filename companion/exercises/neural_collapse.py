"""Checks of Chapter 1's graded exercises (neural collapse).

::

    from companion.exercises import neural_collapse as ex
    ex.check_nc1(my_nc1)
    ex.check_simplex_etf(my_simplex_etf)
    ex.check_reduced_objective(my_reduced_objective)
    ex.check_collapse_threshold(my_depth2_threshold)

Each check compares the student's function with the reference in
:mod:`companion.neural_collapse` on several inputs, edge cases included, and where it can
with a second, independent computation (the full UFM objective at the collapsed
configuration; the closed form of Dang et al. on either side of a threshold).
"""

from __future__ import annotations

import numpy as np

from .. import neural_collapse as nc
from ._core import ExerciseCheck, register

__all__ = ["check_nc1", "check_simplex_etf", "check_reduced_objective", "check_collapse_threshold"]


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


@register("nc-nc1", points=2, chapter="neural_collapse",
          implements=("companion.neural_collapse.nc_metrics", "companion.neural_collapse.NCTracker"))
def check_nc1(student_nc1):
    """Check ``student_nc1(features, labels) -> float`` against :func:`companion.neural_collapse.nc_metrics`."""
    hint = ("use the sample-weighted global mean, Sigma_W and Sigma_B as defined above, "
            "np.linalg.pinv for Sigma_B^+, and divide the trace by C")
    with ExerciseCheck("nc-nc1", points=2, hint=hint) as ex:
        for name, h, y in _nc1_cases():
            got = ex.call(name, student_nc1, h.copy(), y.copy())
            ex.expect_close(name, got, nc.nc_metrics(h, y).nc1, rtol=1e-6, atol=1e-9)


@register("nc-etf", points=2, chapter="neural_collapse",
          implements=("companion.neural_collapse.simplex_etf",))
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


def _full_ce_objective_at_margin(x, k, n, lam_w, lam_h):
    """The balanced CE UFM objective, evaluated directly at the collapsed configuration
    with margin ``x``: features on a simplex ETF, ``w_k = rho h_k``, zero bias."""
    rho = np.sqrt(n * lam_h / lam_w)
    h_norm_sq = x * (k - 1) / (k * rho)
    means = np.sqrt(h_norm_sq) * nc.simplex_etf(k).T          # (K, K), rows h_k
    weights = rho * means
    labels = np.repeat(np.arange(k), n)
    logits = means[labels] @ weights.T
    logits -= logits.max(axis=1, keepdims=True)
    ce = -np.mean(logits[np.arange(labels.size), labels] - np.log(np.exp(logits).sum(axis=1)))
    return ce + lam_w / 2 * np.sum(weights**2) + lam_h / 2 * n * np.sum(means**2)


@register("nc-margin", points=3, chapter="neural_collapse",
          implements=("companion.neural_collapse.ufm_ce_reduced_objective",
                      "companion.neural_collapse.ufm_ce_solution"))
def check_reduced_objective(student_objective):
    """Check ``student_objective(x, num_classes, n_per_class, lam_w, lam_h) -> float``, the
    balanced CE UFM objective on collapsed configurations as a function of the margin ``x``."""
    hint = ("with w_k = rho h_k, rho = sqrt(n lam_H / lam_W), and the h_k on a simplex ETF, write the "
            "margin x through ||h||^2, then each sample's cross-entropy and the two penalties in terms of x")
    cases = [(4, 5, 5e-3, 5e-3), (3, 10, 1e-3, 2e-3), (10, 2, 1e-2, 5e-4), (2, 7, 3e-3, 3e-3)]
    with ExerciseCheck("nc-margin", points=3, hint=hint) as ex:
        for k, n, lw, lh in cases:
            for x in (0.0, 0.5, 2.0, 4.459482, 9.0):
                name = f"x={x:g}, K={k}, n={n}, lam_W={lw:g}, lam_H={lh:g}"
                got = ex.call(name, student_objective, x, k, n, lw, lh)
                ex.expect_close(f"{name} (the full UFM objective at the collapsed configuration)",
                                np.asarray(got, dtype=float), _full_ce_objective_at_margin(x, k, n, lw, lh),
                                rtol=1e-7, atol=1e-10)
        # its minimiser is the margin of Zhu et al.'s closed form
        grid = np.linspace(0.0, 12.0, 2401)
        values = np.array([float(student_objective(x, 4, 5, 5e-3, 5e-3)) for x in grid])
        best = grid[np.argmin(values)]
        ex.expect_close("the minimiser of your f over x (K=4, n=5, lam=5e-3)", best,
                        nc.ufm_ce_solution(4, 5, 5e-3, 5e-3).margin, atol=0.01)


@register("nc-threshold", points=3, chapter="neural_collapse",
          implements=("companion.neural_collapse.minority_collapse_threshold",))
def check_collapse_threshold(student_threshold):
    """Check ``student_threshold(n_per_class) -> array``: the depth-2 minority-collapse thresholds.

    For the bias-free MSE UFM with two weight matrices and ``lam_W = lam_H = lam``, the
    value of ``lam`` beyond which each class's features and classifier are zero.
    """
    hint = ("reduce class k to its output a = s^2 t, balance the three factors to get "
            "f(a) = (1-a)^2 + kappa a^(2/3), find the kappa at which a = 0 becomes the best choice, "
            "then solve kappa(lam) = that value for lam")
    cases = [[20, 10, 5, 2], [5, 5, 5], [100, 1], [7, 30, 3, 12, 50]]
    with ExerciseCheck("nc-threshold", points=3, hint=hint) as ex:
        for n in cases:
            name = f"n_per_class={n}"
            got = ex.call(name, student_threshold, list(n))
            ex.expect_close(name, np.asarray(got, dtype=float), nc.minority_collapse_threshold(n, depth=2),
                            rtol=1e-6)
        for n in ([20, 10, 5, 2], [7, 30, 3, 12, 50]):   # the closed form of Dang et al. on either side
            lams = np.asarray(student_threshold(list(n)), dtype=float)
            for k, lam in enumerate(lams):
                below = nc.imbalanced_mse_solution(n, 0.99 * lam, 0.99 * lam, depth=2)
                above = nc.imbalanced_mse_solution(n, 1.01 * lam, 1.01 * lam, depth=2)
                ex.expect_true(f"n_per_class={n}: just below your threshold class {k} must survive "
                               "(closed form of Dang et al., depth 2)", not below.collapsed[k])
                ex.expect_true(f"n_per_class={n}: just above your threshold class {k} must collapse",
                               above.collapsed[k])
