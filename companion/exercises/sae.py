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
from .._validation import Array, Interval, as_array, as_tensor, check_params
from ._core import ExerciseCheck, ExerciseFailed, register

__all__ = ["check_fvu", "check_topk", "check_effective_features", "check_linear_error_r2",
           "check_l1_code", "check_auxk_loss", "check_top_tokens",
           "reference_topk", "reference_linear_error_r2", "reference_l1_code", "reference_auxk_loss"]


_MAX_ABS = 1e12  # entries are squared and summed: larger ones overflow (and 1e308 gives NaN)


def _real_rows(rows, cols, min_rows=1):
    """An ``(rows, cols)`` array of finite reals of magnitude at most ``1e12``."""
    return Array(ndim=2, shape=(rows, cols), min_rows=min_rows, max_abs=_MAX_ABS)


def reference_topk(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row of ``pre``, apply ReLU, zero the rest
    (Gao et al., 2024). ``pre`` has shape ``(n, m)``, ``1 <= k <= m``.

    Examples
    --------
    >>> reference_topk(torch.tensor([[3.0, -1.0, 2.0, 0.5]]), 2)
    tensor([[3., 0., 2., 0.]])
    """
    check_params({"pre": pre, "k": k}, {"pre": [_real_rows(None, "m")], "k": [Interval(int, 1, None)]})
    pre = as_tensor(pre, "pre")
    if k > pre.shape[-1]:
        raise ValueError(f"k must be <= the row length of pre ({pre.shape[-1]}), got {k}")
    values, indices = pre.topk(k, dim=-1)  # (n, k)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))  # (n, m)


_LINEAR_ERROR_PARAMS = {
    "x_train": [_real_rows("n_train", "d")],
    "e_train": [_real_rows("n_train", "k")],
    "x_test": [_real_rows("n_test", "d", min_rows=2)],
    "e_test": [_real_rows("n_test", "k", min_rows=2)],
}


def reference_linear_error_r2(x_train, e_train, x_test, e_test) -> float:
    """Pooled held-out R^2 of a least-squares map (with intercept) from ``x`` to ``e``
    (Engels et al., 2025): ``1 - sum ||e - e_pred||^2 / sum ||e - mean e||^2`` on the test
    rows. The arrays are finite (the least-squares solver could spin on inf) and ``e_test``
    must vary.

    Examples
    --------
    >>> x = np.arange(8.0).reshape(4, 2)
    >>> reference_linear_error_r2(x, 2 * x + 1, x, 2 * x + 1)
    1.0
    """
    check_params({"x_train": x_train, "e_train": e_train, "x_test": x_test, "e_test": e_test},
                 _LINEAR_ERROR_PARAMS)
    x_train, e_train = as_array(x_train, "x_train"), as_array(e_train, "e_train")
    x_test, e_test = as_array(x_test, "x_test"), as_array(e_test, "e_test")
    total = ((e_test - e_test.mean(0)) ** 2).sum()
    if total <= 0:
        raise ValueError("e_test must vary over the test rows (its R^2 is undefined otherwise)")
    a = np.hstack([x_train, np.ones((x_train.shape[0], 1))])  # (n_train, d + 1)
    coef, *_ = np.linalg.lstsq(a, e_train, rcond=None)  # (d + 1, k)
    pred = np.hstack([x_test, np.ones((x_test.shape[0], 1))]) @ coef  # (n_test, k)
    return float(1 - ((e_test - pred) ** 2).sum() / total)


@register("sae-fvu", points=1, chapter="sae", implements=("companion.sae.fvu", "companion.sae.explained_variance"))
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


@register("sae-topk", points=2, chapter="sae", implements=("companion.sae.TopKSAE.activation",
                                                                          "companion.sae.TopKSAE._activation"))
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


@register("sae-effective", points=1, chapter="sae", implements=("companion.sae.effective_features", "companion.sae.superposition_ratio"))
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


@register("sae-linear-error", points=2, chapter="sae", implements=("companion.sae.dark_matter",))
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


def reference_l1_code(a, lam):
    """The code ``z >= 0`` minimising ``(a - z)^2 + lam z`` (one latent, unit decoder column):
    the soft threshold ``max(a - lam / 2, 0)`` (the L1 shrinkage of Bricken et al., 2023).
    Elementwise: ``a`` may have any shape (an empty ``a`` gives an empty code).

    Examples
    --------
    >>> reference_l1_code(np.array([-1.0, 0.5, 2.0]), 1.0)
    array([0. , 0. , 1.5])
    """
    check_params({"a": a, "lam": lam}, {"a": [Array(max_abs=_MAX_ABS)], "lam": [Interval(float, 0, _MAX_ABS)]})
    return np.maximum(as_array(a, "a") - lam / 2.0, 0.0)


@register("sae-l1-code", points=2, chapter="sae")
def check_l1_code(student_l1_code):
    """Check ``l1_code(a, lam)``: the L1-optimal code of one latent (a soft threshold)."""
    with ExerciseCheck("sae-l1-code", points=2,
                       hint="minimise (a - z)^2 + lam * z over z >= 0: set the derivative "
                            "-2 (a - z) + lam to zero, then clip at 0") as ex:
        a = np.linspace(-1.0, 3.0, 41)
        for lam in (0.0, 0.5, 2.0):
            got = ex.call(f"lam={lam}", student_l1_code, a.copy(), lam)
            ex.expect_close(f"codes for lam={lam}", np.asarray(got, dtype=float), reference_l1_code(a, lam),
                            atol=1e-9)
        # brute force on a grid: the answer really minimises the objective
        rng = np.random.default_rng(3)
        grid = np.linspace(0, 5, 50001)
        for a0, lam in zip(rng.uniform(0, 3, 4), rng.uniform(0.1, 2, 4)):
            best = grid[np.argmin((a0 - grid) ** 2 + lam * grid)]
            got = float(np.asarray(ex.call("brute force", student_l1_code, np.array([a0]), lam)).ravel()[0])
            ex.expect_close(f"a={a0:.2f}, lam={lam:.2f} against a brute-force minimum", got, best, atol=2e-4)


_AUXK_PARAMS = {
    "pre": [Array(shape=("n", "m"), min_rows=1, max_abs=_MAX_ABS, tensor=True)],
    "error": [Array(shape=("n", "d"), max_abs=_MAX_ABS, tensor=True)],
    "dead": [Array(shape=("m",), dtype="bool", tensor=True)],
    "W_dec": [Array(shape=("d", "m"), max_abs=_MAX_ABS, tensor=True)],
    "k_aux": [Interval(int, 1, None)],
    "aux_coef": [Interval(float, 0, _MAX_ABS)],
}


def reference_auxk_loss(pre, error, dead, W_dec, k_aux, aux_coef=1 / 32):
    """AuxK (Gao et al., 2024; openai/sparse_autoencoder): the ``k_aux`` largest dead
    pre-activations (ReLU) reconstruct ``error``; squared error over the batch variance of
    ``error`` (at least ``1e-12``, as in :meth:`companion.sae.TopKSAE.aux_loss`), times
    ``aux_coef``. Shapes: ``pre (n, m)``, ``error (n, d)``, ``dead (m,)`` (bool),
    ``W_dec (d, m)``; all tensors.

    Examples
    --------
    >>> pre, error = torch.ones(4, 3), torch.ones(4, 2)
    >>> reference_auxk_loss(pre, error, torch.zeros(3, dtype=torch.bool), torch.ones(2, 3), 2)
    tensor(0.)
    """
    check_params({"pre": pre, "error": error, "dead": dead, "W_dec": W_dec, "k_aux": k_aux, "aux_coef": aux_coef},
                 _AUXK_PARAMS)
    if not bool(dead.any()):
        return pre.new_zeros(())
    masked = pre.masked_fill(~dead, float("-inf"))
    values, indices = masked.topk(min(k_aux, pre.shape[-1]), dim=-1)  # (n, k_aux)
    z = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))  # (n, m)
    err_hat = z @ W_dec.T  # (n, d)
    variance = ((error - error.mean(0)) ** 2).sum().clamp_min(1e-12)
    return aux_coef * ((error - err_hat) ** 2).sum() / variance


@register("sae-auxk", points=3, chapter="sae", implements=("companion.sae.TopKSAE.aux_loss",
                                                                          "companion.sae.TopKSAE._aux_loss"))
def check_auxk_loss(student_auxk_loss):
    """Check ``auxk_loss(pre, error, dead, W_dec, k_aux, aux_coef)`` (value and gradients)."""
    with ExerciseCheck("sae-auxk", points=3,
                       hint="mask the live latents with -inf, take the k_aux largest, ReLU them, "
                            "decode with W_dec and divide the summed squared error by the summed "
                            "squared deviation of the error from its batch mean") as ex:
        gen = torch.Generator().manual_seed(4)
        for n, d, m, k_aux, n_dead in [(32, 8, 20, 4, 6), (16, 6, 12, 3, 2), (24, 4, 10, 2, 10)]:
            pre = torch.randn(n, m, generator=gen)
            error = torch.randn(n, d, generator=gen) + 0.5
            dead = torch.zeros(m, dtype=torch.bool)
            dead[torch.randperm(m, generator=gen)[:n_dead]] = True
            w = torch.randn(d, m, generator=gen)
            w = w / w.norm(dim=0, keepdim=True)
            name = f"n={n}, m={m}, {n_dead} dead, k_aux={k_aux}"
            p1, w1 = pre.clone().requires_grad_(), w.clone().requires_grad_()
            got = ex.call(name, student_auxk_loss, p1, error.clone(), dead.clone(), w1, k_aux, 1 / 32)
            if not isinstance(got, torch.Tensor) or got.numel() != 1:
                raise ExerciseFailed(f"{name}: expected a scalar torch.Tensor")
            p2, w2 = pre.clone().requires_grad_(), w.clone().requires_grad_()
            want = reference_auxk_loss(p2, error, dead, w2, k_aux, 1 / 32)
            ex.expect_close(f"{name}: the loss", got.detach(), want.detach(), rtol=1e-5)
            got.backward()
            want.backward()
            ex.expect_true(f"{name}: gradients reach the pre-activations and the decoder",
                           p1.grad is not None and w1.grad is not None)
            ex.expect_close(f"{name}: gradient w.r.t. pre", p1.grad, p2.grad, rtol=1e-4, atol=1e-7)
            ex.expect_close(f"{name}: gradient w.r.t. W_dec", w1.grad, w2.grad, rtol=1e-4, atol=1e-7)
        pre = torch.randn(8, 5, generator=gen)
        none_dead = ex.call("no dead latent", student_auxk_loss, pre, torch.randn(8, 3, generator=gen),
                            torch.zeros(5, dtype=torch.bool), torch.randn(3, 5, generator=gen), 2, 1 / 32)
        ex.expect_close("no dead latent: the loss is 0", float(none_dead), 0.0, atol=1e-12)


@register("sae-top-tokens", points=2, chapter="sae", implements=("companion.sae.top_token_indices",))
def check_top_tokens(student_top_tokens):
    """Check ``top_tokens(values, k)``: the indices of the k largest positive activations."""
    with ExerciseCheck("sae-top-tokens", points=2,
                       hint="sort by value, largest first (np.argsort of -values with a stable "
                            "kind keeps the earlier token first on ties), keep only values > 0, "
                            "return at most k indices") as ex:
        rng = np.random.default_rng(5)
        for n, k in [(50, 5), (200, 10), (30, 30)]:
            v = np.maximum(rng.normal(size=n), 0)
            got = np.asarray(ex.call(f"n={n}, k={k}", student_top_tokens, v.copy(), k))
            ex.expect_close(f"n={n}, k={k}", got, ref.top_token_indices(v, k))
        v = np.array([0.0, 2.0, 0.0, 2.0, 1.0])
        ex.expect_close("ties: the earlier token first", np.asarray(ex.call("ties", student_top_tokens, v, 2)),
                        np.array([1, 3]))
        v = np.array([0.0, 0.5, 0.0])
        ex.expect_close("a latent that fires once: one token, not k", np.asarray(
            ex.call("sparse", student_top_tokens, v, 3)), np.array([1]))
