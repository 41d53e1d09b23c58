"""Checks for the graded exercises of chapter 5 (entropy control in RL for language models).

::

    from companion.exercises import rl as ex
    ex.check_group_advantages(my_group_advantages)
"""

from __future__ import annotations

import numpy as np
import torch

from .. import rl
from ._core import ExerciseCheck, ExerciseFailed, register

__all__ = ["check_group_advantages", "check_pass_at_k", "check_predicted_entropy_change",
           "check_clipped_surrogate"]


@register("rl-advantages", points=2, chapter="rl")
def check_group_advantages(student_fn):
    """Check ``student_fn(rewards, group_size, eps=1e-4)``: GRPO advantages, unbiased std."""
    with ExerciseCheck("rl-advantages", points=2,
                       hint="reshape to (n_groups, group_size), centre by the group mean, divide by the "
                            "Bessel-corrected std (ddof=1) plus eps; constant groups must give exactly 0") as ex:
        r = np.array([1.0, 0.0, 0.0, 0.0])
        ex.expect_close("rewards [1, 0, 0, 0], eps=0", ex.call("spec example", student_fn, r, 4, eps=0.0),
                        [1.5, -0.5, -0.5, -0.5], rtol=1e-9)
        rng = np.random.default_rng(5)
        for G in (2, 4, 8):
            r = rng.integers(0, 2, size=4 * G).astype(float)
            r[:G] = 1.0  # one all-correct group
            got = ex.call(f"random binary rewards, G={G}", student_fn, r, G)
            ex.expect_close(f"random binary rewards, G={G}", got, rl.group_advantages(r, G), rtol=1e-7, atol=1e-9)
            ex.expect_true(f"all-correct group, G={G}", np.all(np.asarray(got)[:G] == 0.0),
                           "a group of identical rewards must get exactly zero advantage")
        r = rng.normal(size=12)
        ex.expect_close("continuous rewards, G=3", ex.call("continuous", student_fn, r, 3),
                        rl.group_advantages(r, 3), rtol=1e-7, atol=1e-9)
        r = np.full(6, 0.1)
        ex.expect_true("identical non-round rewards", np.all(np.asarray(ex.call("identical", student_fn, r, 3)) == 0.0),
                       "r - mean(r) is not exactly zero in floating point for 0.1; test the group for "
                       "constancy (max == min) instead")


@register("rl-passk", points=2, chapter="rl")
def check_pass_at_k(student_fn):
    """Check ``student_fn(n, c, k)``: the unbiased pass@k estimator for one problem."""
    with ExerciseCheck("rl-passk", points=2,
                       hint="1 - C(n-c, k)/C(n, k); when n - c < k every draw of k contains a correct "
                            "sample, so pass@k = 1") as ex:
        cases = [(10, 3, 1), (10, 3, 4), (20, 0, 5), (20, 17, 5), (32, 5, 32), (200, 13, 100), (5, 5, 1)]
        for n, c, k in cases:
            got = ex.call(f"n={n}, c={c}, k={k}", student_fn, n, c, k)
            ex.expect_close(f"n={n}, c={c}, k={k}", float(got), rl.pass_at_k(n, c, k), rtol=1e-9, atol=1e-12)


@register("rl-entropy-change", points=3, chapter="rl")
def check_predicted_entropy_change(student_fn):
    """Check ``student_fn(logits, advantages, lr, update)``: the covariance prediction."""
    with ExerciseCheck("rl-entropy-change", points=3,
                       hint="centre A under pi; the logit step is lr*pi*A_c (vanilla) or lr*A_c (natural); "
                            "Delta H = -sum_a pi_a (log pi_a - E_pi log pi) Delta z_a") as ex:
        rng = np.random.default_rng(11)
        for K in (3, 6, 10):
            z = rng.normal(size=K)
            A = rng.normal(size=K)
            for update in ("vanilla", "natural"):
                for lr in (0.1, 0.01):
                    got = ex.call(f"K={K}, {update}, lr={lr}", student_fn, z, A, lr, update)
                    ex.expect_close(f"K={K}, {update}, lr={lr}", float(got),
                                    rl.predicted_entropy_change(z, A, lr, update), rtol=1e-6, atol=1e-12)
        z, A = rng.normal(size=5), rng.normal(size=5)
        got = float(ex.call("shifted advantages", student_fn, z, A + 3.0, 0.05, "vanilla"))
        ex.expect_close("adding a constant to A must not change the prediction (centre A under pi)", got,
                        rl.predicted_entropy_change(z, A, 0.05, "vanilla"), rtol=1e-6, atol=1e-12)


@register("rl-clip", points=3, chapter="rl")
def check_clipped_surrogate(student_fn):
    """Check ``student_fn(logp, old_logp, advantages, eps_low, eps_high)``: per-token clipped loss."""
    with ExerciseCheck("rl-clip", points=3,
                       hint="rho = exp(logp - old_logp); loss = -min(rho*A, clamp(rho, 1-eps_low, 1+eps_high)*A); "
                            "use torch operations so the gradient flows through logp") as ex:
        ratios = torch.tensor([0.5, 0.75, 0.95, 1.05, 1.15, 1.25, 1.35], dtype=torch.float64)
        for adv_value in (1.0, -1.0):
            for eps_high in (0.2, 0.28):
                old = torch.zeros(7, dtype=torch.float64)
                logp = ratios.log().clone().requires_grad_(True)
                adv = torch.full((7,), adv_value, dtype=torch.float64)
                desc = f"A={adv_value:+.0f}, eps_high={eps_high}"
                got = ex.call(desc, student_fn, logp, old, adv, 0.2, eps_high)
                ref = -torch.min(ratios * adv, torch.clamp(ratios, 0.8, 1 + eps_high) * adv)
                ex.expect_close(desc + " (values)", got.detach(), ref, rtol=1e-9)
                if not got.requires_grad:
                    raise ExerciseFailed(f"{desc}: the loss does not depend on logp through autograd")
                got.sum().backward()
                expected_zero = (ratios > 1 + eps_high) if adv_value > 0 else (ratios < 0.8)
                ex.expect_true(desc + " (gradient zero exactly where clipped)",
                               torch.equal(logp.grad == 0, expected_zero),
                               f"gradient zero at {(logp.grad == 0).tolist()}, expected {expected_zero.tolist()}")
