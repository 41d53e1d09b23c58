"""Checks of the graded exercises of Chapter 2 (entropy collapse).

Each check runs the student's function against the reference of :mod:`companion.entropy`
on several inputs, edge cases included::

    from companion.exercises import entropy as ex
    ex.check_attention_entropy(my_attention_entropy)
"""

from __future__ import annotations

import numpy as np

from .. import entropy as ref
from ._core import ExerciseCheck, register

__all__ = ["check_attention_entropy", "check_causal_ceiling", "check_causal_bound", "check_sigma_reparam_growth",
           "check_collapse_gap", "check_stablemax", "check_effective_rank",
           # kept for notebooks of the first release
           "check_entropy_bound"]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@register("ent-entropy", points=2, chapter="entropy", implements=("companion.entropy.attention_entropy",))
def check_attention_entropy(student_fn):
    """``student_fn(attn)`` returns the entropy of each row (last axis) of ``attn``."""
    rng = np.random.default_rng(0)
    cases = {
        "a uniform row of length 8": np.full(8, 1 / 8),
        "a batch of random softmax rows": _softmax(rng.normal(size=(5, 6))),
        "rows with exact zeros (0 log 0 = 0)": np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]),
        "a (batch, heads, T, T) attention tensor": _softmax(rng.normal(scale=3, size=(2, 3, 4, 4))),
    }
    with ExerciseCheck("ent-entropy", points=2,
                       hint="sum -p log p over the last axis; use np.where or xlogy so that 0 log 0 counts as 0") as ex:
        for name, attn in cases.items():
            got = ex.call(name, student_fn, attn.copy())
            ex.expect_close(name, got, ref.attention_entropy(attn), rtol=1e-8, atol=1e-10)


def check_entropy_bound(student_fn):
    """``student_fn(T, s)`` returns the lower bound of Zhai et al. (2023), Theorem 3.1.

    No longer one of the chapter's graded exercises (not registered: the chapter now asks
    for the causal form of the bound, :func:`check_causal_bound`); kept so that notebooks
    of the first release still run.
    """
    cases = [(2, 1.0), (8, 1.0), (8, 5.0), (16, 3.0), (64, 10.0), (10, 0.0), (1000, 0.5)]
    with ExerciseCheck("ent-bound", points=2,
                       hint="beta = exp(-s sqrt(T / (T - 1))); the second term is s sqrt(T (T - 1)) beta / (1 + (T - 1) beta)") as ex:
        for T, s in cases:
            name = f"T={T}, s={s:g}"
            got = ex.call(name, student_fn, T, s)
            ex.expect_close(name, got, ref.attention_entropy_lower_bound(T, s), rtol=1e-8, atol=1e-10)


@register("ent-stablemax", points=2, chapter="entropy", implements=("companion.entropy.stablemax",))
def check_stablemax(student_fn):
    """``student_fn(x)`` returns StableMax along the last axis (Prieto et al., 2025)."""
    rng = np.random.default_rng(1)
    cases = {
        "[0, 1, -1]": np.array([0.0, 1.0, -1.0]),
        "[2, 0, -3]": np.array([2.0, 0.0, -3.0]),
        "a batch of random logits": rng.normal(scale=4, size=(6, 5)),
        "large logits [1000, 0, -1000]": np.array([1000.0, 0.0, -1000.0]),
    }
    with ExerciseCheck("ent-stablemax", points=2,
                       hint="s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, then normalise each row") as ex:
        for name, x in cases.items():
            got = ex.call(name, student_fn, x.copy())
            ex.expect_close(name, got, ref.stablemax(x), rtol=1e-8, atol=1e-12)


@register("ent-erank", points=1, chapter="entropy", implements=("companion.entropy.effective_rank",))
def check_effective_rank(student_fn):
    """``student_fn(M)`` returns the effective rank of Roy & Vetterli (2007)."""
    rng = np.random.default_rng(2)
    cases = {
        "diag(3, 1)": np.diag([3.0, 1.0]),
        "the identity of size 6": np.eye(6),
        "a rank-one matrix": np.outer([1.0, -2.0, 3.0], [0.5, 1.0, 2.0, 4.0]),
        "a random 20 x 7 matrix": rng.normal(size=(20, 7)),
        "a rank-2 10 x 10 matrix": rng.normal(size=(10, 2)) @ rng.normal(size=(2, 10)),
    }
    with ExerciseCheck("ent-erank", points=1,
                       hint="normalise the singular values to sum 1, take exp of their entropy; zero singular values contribute 0") as ex:
        for name, m in cases.items():
            got = ex.call(name, student_fn, m.copy())
            ex.expect_close(name, got, ref.effective_rank(m), rtol=1e-6, atol=1e-8)


@register("ent-ceiling", points=1, chapter="entropy", implements=("companion.entropy.causal_entropy_ceiling",))
def check_causal_ceiling(student_fn):
    """``student_fn(T)`` returns the largest mean attention entropy of a causal head over ``T`` queries."""
    with ExerciseCheck("ent-ceiling", points=1,
                       hint="query i (1-based) sees i keys; the entropy of a distribution over i outcomes is at most log i") as ex:
        for T in (1, 2, 3, 8, 16, 64, 1000):
            got = ex.call(f"T={T}", student_fn, T)
            ex.expect_close(f"T={T}", got, ref.causal_entropy_ceiling(T), rtol=1e-8, atol=1e-12)


@register("ent-causal-bound", points=2, chapter="entropy",
          implements=("companion.entropy.causal_entropy_lower_bound",
                      "companion.entropy.attention_entropy_lower_bound"))
def check_causal_bound(student_fn):
    """``student_fn(T, s)`` returns the lower bound on the mean entropy of a causal head."""
    with ExerciseCheck("ent-causal-bound", points=2,
                       hint="apply Theorem 3.1 to query i with i keys (i = 1 contributes 0), then average over the T queries") as ex:
        for T, s in [(2, 1.0), (16, 0.0), (16, 3.0), (8, 0.5), (64, 10.0), (1, 2.0)]:
            name = f"T={T}, s={s:g}"
            got = ex.call(name, student_fn, T, s)
            ex.expect_close(name, got, ref.causal_entropy_lower_bound(T, s), rtol=1e-8, atol=1e-12)


@register("ent-sigma-adam", points=3, chapter="entropy", implements=("companion.entropy.adam_spectral_growth",))
def check_sigma_reparam_growth(student_fn):
    """``student_fn(dim, lr, num_steps, sigma0)`` predicts ``(plain, sigma_reparam)`` spectral norms.

    The prediction is compared with a run of Adam (:func:`companion.entropy.adam_spectral_growth`).
    """
    cases = [(32, 1e-2, 20, 1.0), (8, 3e-2, 10, 2.0), (64, 1e-3, 15, 0.5), (1, 1e-2, 10, 1.0)]
    with ExerciseCheck("ent-sigma-adam", points=3,
                       hint="with a constant gradient Adam moves every entry by lr per step; how does the spectral "
                            "norm of the all-ones matrix grow with dim? sigmaReparam moves one scalar") as ex:
        for dim, lr, steps, sigma0 in cases:
            name = f"dim={dim}, lr={lr:g}, {steps} steps, sigma0={sigma0:g}"
            got = ex.call(name, student_fn, dim, lr, steps, sigma0)
            run = ref.adam_spectral_growth(dim, lr, steps, sigma0)
            ex.expect_close(name, got, np.array([run["plain"][-1], run["sigma_reparam"][-1]]), rtol=1e-3, atol=1e-6)


@register("ent-collapse-gap", points=2, chapter="entropy", implements=("companion.entropy.softmax_collapse_gap",))
def check_collapse_gap(student_fn):
    """``student_fn(eps)`` returns the smallest logit gap at which a two-class softmax collapses.

    ``eps`` is the machine epsilon of the working precision; the answer is compared with a
    bisection on the actual rounding in float16, float32 and float64.
    """
    import torch

    with ExerciseCheck("ent-collapse-gap", points=2,
                       hint="the sum 1 + exp(-g) rounds to exactly 1 once exp(-g) is at most half the spacing "
                            "of floating-point numbers just above 1, which is eps") as ex:
        for name, dtype, eps in [("float32", torch.float32, float(np.finfo(np.float32).eps)),
                                 ("float64", torch.float64, float(np.finfo(np.float64).eps)),
                                 ("float16", torch.float16, float(np.finfo(np.float16).eps))]:
            got = ex.call(name, student_fn, eps)
            ex.expect_close(name, got, ref.softmax_collapse_gap(dtype), rtol=0, atol=0.01)
