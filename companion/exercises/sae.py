"""Checks of the graded exercises of Chapter 3 (sparse-autoencoder error).

Each check runs the student's function against the reference in :mod:`companion.sae` on
several inputs, edge cases included::

    from companion.exercises import sae as ex
    ex.check_fvu(my_fvu)
"""

from __future__ import annotations

import numpy as np
import torch

from .. import sae as ref
from ._core import ExerciseCheck, ExerciseFailed, register

__all__ = ["check_fvu", "check_topk", "check_effective_features", "check_linear_error_r2",
           "reference_topk", "reference_linear_error_r2"]


def reference_topk(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row of ``pre``, apply ReLU, zero the rest."""
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))


def reference_linear_error_r2(x_train, e_train, x_test, e_test) -> float:
    """Pooled held-out R^2 of a least-squares map (with intercept) from ``x`` to ``e``."""
    a = np.hstack([x_train, np.ones((x_train.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(a, e_train, rcond=None)
    pred = np.hstack([x_test, np.ones((x_test.shape[0], 1))]) @ coef
    return float(1 - ((e_test - pred) ** 2).sum() / ((e_test - e_test.mean(0)) ** 2).sum())


@register("sae-fvu", points=1, chapter="sae")
def check_fvu(student_fvu):
    """Check ``fvu(x, x_hat)`` against :func:`companion.sae.fvu`."""
    with ExerciseCheck("sae-fvu", points=1,
                       hint="divide the summed squared error by the summed squared deviation "
                            "of x from its mean (over tokens), not from zero") as ex:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(50, 6)) + 3.0  # a large mean: FVU and normalised MSE differ
        cases = {"perfect reconstruction": x.copy(), "predicting the mean": np.tile(x.mean(0), (50, 1)),
                 "noisy reconstruction": x + 0.3 * rng.normal(size=x.shape), "zeros": np.zeros_like(x)}
        for name, x_hat in cases.items():
            ex.expect_close(name, ex.call(name, student_fvu, x, x_hat), ref.fvu(x, x_hat), rtol=1e-6)
        xt = torch.tensor(x, dtype=torch.float64)
        got = ex.call("torch tensors", student_fvu, xt, xt * 0.9)
        ex.expect_close("torch tensors", float(got), ref.fvu(x, x * 0.9), rtol=1e-6)


@register("sae-topk", points=2, chapter="sae")
def check_topk(student_topk):
    """Check ``topk_activation(pre, k)`` against the TopK activation of Gao et al. (2024)."""
    with ExerciseCheck("sae-topk", points=2,
                       hint="torch.topk gives values and indices; scatter the ReLU of the values "
                            "into a tensor of zeros") as ex:
        gen = torch.Generator().manual_seed(0)
        for n, m, k in [(5, 12, 3), (8, 32, 1), (4, 10, 10)]:
            pre = torch.randn(n, m, generator=gen)
            got = ex.call(f"shape ({n}, {m}), k={k}", student_topk, pre.clone(), k)
            if not isinstance(got, torch.Tensor):
                raise ExerciseFailed(f"k={k}: expected a torch.Tensor, got {type(got).__name__}")
            ex.expect_close(f"shape ({n}, {m}), k={k}", got, reference_topk(pre, k))
        pre = torch.tensor([[-1.0, -2.0, 0.5, -0.1]])
        ex.expect_close("negative entries among the top k become 0",
                        ex.call("negative", student_topk, pre.clone(), 3), reference_topk(pre, 3))
        pre = torch.randn(64, 40, generator=gen) + 3.0
        got = ex.call("row counts", student_topk, pre.clone(), 5)
        ex.expect_true("exactly k active latents per token when pre-activations are positive",
                       bool(((got != 0).sum(1) == 5).all()))


@register("sae-effective", points=1, chapter="sae")
def check_effective_features(student_effective_features):
    """Check ``effective_features(latents)`` (Bereska et al., 2025)."""
    with ExerciseCheck("sae-effective", points=1,
                       hint="shares p_i = mean |z_i| / sum_j mean |z_j|; skip p_i = 0 in the "
                            "entropy (0 log 0 = 0); return exp(entropy)") as ex:
        rng = np.random.default_rng(1)
        uniform = np.ones((10, 7))
        ex.expect_close("uniform shares over 7 latents", ex.call("uniform", student_effective_features, uniform), 7.0)
        one_hot = np.zeros((10, 5))
        one_hot[:, 2] = 3.0
        ex.expect_close("a single active latent", ex.call("one-hot", student_effective_features, one_hot), 1.0)
        for i in range(3):
            z = np.maximum(rng.normal(size=(30, 12)), 0) * rng.exponential(size=12)
            z[:, i] = 0.0  # a dead latent
            ex.expect_close(f"random latents {i}", ex.call("random", student_effective_features, z),
                            ref.effective_features(z), rtol=1e-6)
        z = rng.normal(size=(20, 6))
        ex.expect_close("latents of both signs count by absolute value",
                        ex.call("negative", student_effective_features, z), ref.effective_features(z), rtol=1e-6)


@register("sae-linear-error", points=2, chapter="sae")
def check_linear_error_r2(student_linear_error_r2):
    """Check ``linear_error_r2(x_train, e_train, x_test, e_test)`` (Engels et al., 2025)."""
    with ExerciseCheck("sae-linear-error", points=2,
                       hint="append a column of ones to x for the intercept, solve with "
                            "np.linalg.lstsq on the train split, and pool the R^2 over all "
                            "dimensions of the test split") as ex:
        rng = np.random.default_rng(2)
        for trial, (n, d, noise) in enumerate([(200, 5, 0.5), (300, 8, 2.0), (150, 3, 0.0)]):
            x = rng.normal(size=(n, d))
            e = x @ rng.normal(size=(d, d)) + 1.5 + noise * rng.normal(size=(n, d))
            args = (x[: n // 2], e[: n // 2], x[n // 2:], e[n // 2:])
            got = ex.call(f"case {trial}", student_linear_error_r2, *args)
            ex.expect_close(f"case {trial} (noise {noise})", float(got), reference_linear_error_r2(*args),
                            rtol=1e-6, atol=1e-9)
