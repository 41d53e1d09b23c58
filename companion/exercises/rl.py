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
           "check_clipped_surrogate", "check_aggregation", "check_kl_cov_select"]


@register("rl-advantages", points=2, chapter="rl", implements=("companion.rl.group_advantages",))
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


@register("rl-passk", points=2, chapter="rl", implements=("companion.rl.pass_at_k",))
def check_pass_at_k(student_fn):
    """Check ``student_fn(n, c, k)``: the unbiased pass@k estimator for one problem."""
    with ExerciseCheck("rl-passk", points=2,
                       hint="1 - C(n-c, k)/C(n, k); when n - c < k every draw of k contains a correct "
                            "sample, so pass@k = 1") as ex:
        cases = [(10, 3, 1), (10, 3, 4), (20, 0, 5), (20, 17, 5), (32, 5, 32), (200, 13, 100), (5, 5, 1)]
        for n, c, k in cases:
            got = ex.call(f"n={n}, c={c}, k={k}", student_fn, n, c, k)
            ex.expect_close(f"n={n}, c={c}, k={k}", float(got), rl.pass_at_k(n, c, k), rtol=1e-9, atol=1e-12)


@register("rl-entropy-change", points=3, chapter="rl",
          implements=("companion.rl.predicted_entropy_change", "companion.rl.first_order_entropy_change",
                      "companion.rl.logit_update"))
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


@register("rl-clip", points=3, chapter="rl", implements=("companion.rl.policy_loss",))
def check_clipped_surrogate(student_fn):
    """Check ``student_fn(logp, old_logp, advantages, epsilon, epsilon_high)``: per-token clipped loss."""
    with ExerciseCheck("rl-clip", points=3,
                       hint="rho = exp(logp - old_logp); loss = -min(rho*A, clamp(rho, 1-epsilon, 1+epsilon_high)*A); "
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


def _reference_per_token_weights(lengths, loss_type, max_length):
    """c_i from the definitions (the check's own reference, independent of the package)."""
    L = np.asarray(lengths, dtype=float)
    if loss_type == "grpo":
        return 1.0 / (len(L) * L)
    if loss_type == "dapo":
        return np.full(len(L), 1.0 / L.sum())
    return np.full(len(L), 1.0 / (len(L) * max_length))


@register("rl-aggregation", points=3, chapter="rl", implements=("companion.rl.aggregation_weights",))
def check_aggregation(student_fn, long_wrong_favoured):
    """Check ``student_fn(lengths, loss_type, max_length)`` (c_i per answer) and the prediction."""
    with ExerciseCheck("rl-aggregation", points=3,
                       hint="grpo: 1/(B L_i); dapo: 1/sum_j L_j; dr_grpo: 1/(B M). A wrong answer's tokens are "
                            "pushed down in proportion to c_i: which c_i shrinks as L_i grows?") as ex:
        rng = np.random.default_rng(3)
        cases = [np.array([2, 4, 8]), np.array([1, 1, 1, 1]), rng.integers(1, 17, size=9)]
        for lengths in cases:
            M = int(lengths.max()) + 3
            for loss_type in ("grpo", "dapo", "dr_grpo"):
                desc = f"lengths {lengths.tolist()}, {loss_type}, M={M}"
                got = ex.call(desc, student_fn, lengths, loss_type, M)
                ex.expect_close(desc, got, _reference_per_token_weights(lengths, loss_type, M), rtol=1e-9, atol=0)
        mask = (np.arange(16)[None, :] < cases[2][:, None]).astype(float)
        for loss_type in ("grpo", "dapo", "dr_grpo"):  # the package's weights agree with the definitions
            ex.expect_close(f"{loss_type} agrees with companion.rl.aggregation_weights",
                            ex.call("agreement", student_fn, cases[2], loss_type, 16),
                            rl.aggregation_weights(torch.as_tensor(mask), loss_type, max_completion_length=16).numpy(),
                            rtol=1e-9, atol=0)
        ex.expect_true("the prediction", isinstance(long_wrong_favoured, str) and
                       long_wrong_favoured.strip().lower() == "grpo",
                       f"got {long_wrong_favoured!r}: compare c_i of a 1-token and an 8-token answer under each "
                       "loss type; where is the ratio not 1?")


def _reference_kl_cov_select(logp, advantages, mask, ratio):
    valid = mask > 0
    A = advantages[:, None].expand_as(logp)[valid].double()
    lp = logp.detach()[valid].double()
    cov = (A - A.mean()) * (lp - lp.mean())
    k = max(1, int(ratio * cov.numel()))
    picked = torch.zeros(cov.numel(), dtype=torch.bool)
    picked[torch.topk(cov, k).indices] = True
    out = torch.zeros_like(valid)
    out[valid] = picked
    return out


@register("rl-klcov", points=3, chapter="rl",
          implements=("companion.rl.kl_cov_mask", "companion.rl.token_covariance"))
def check_kl_cov_select(student_fn):
    """Check ``student_fn(logp, advantages, mask, ratio)``: KL-Cov's tokens as in the reference code."""
    with ExerciseCheck("rl-klcov", points=3,
                       hint="means over the valid tokens only; cov_t = (A_t - mean A)(log pi_t - mean log pi); "
                            "k = max(1, int(ratio * N)) with N the number of valid tokens; torch.topk") as ex:
        gen = torch.Generator().manual_seed(0)
        for B, T, ratio in ((6, 5, 0.2), (8, 7, 0.05), (3, 4, 0.001), (5, 6, 1.0)):
            lengths = torch.randint(1, T + 1, (B,), generator=gen)
            mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
            logp = -3 * torch.rand(B, T, generator=gen)
            logp = torch.where(mask > 0, logp, torch.full_like(logp, 5.0))  # padding: large garbage values
            adv = torch.randn(B, generator=gen)
            desc = f"B={B}, T={T}, ratio={ratio}"
            got = ex.call(desc, student_fn, logp, adv, mask, ratio)
            expected = _reference_kl_cov_select(logp, adv, mask, ratio)
            got_t = torch.as_tensor(got)
            ex.expect_true(desc + " (shape)", tuple(got_t.shape) == (B, T), f"expected shape {(B, T)}, got {tuple(got_t.shape)}")
            got_t = got_t.bool()
            ex.expect_true(desc + " (padding never selected)", not bool((got_t & (mask == 0)).any()),
                           "a padded token was selected: compute the covariance over valid tokens only")
            ex.expect_true(desc + " (count)", int(got_t.sum()) == int(expected.sum()),
                           f"selected {int(got_t.sum())} tokens, expected max(1, int(ratio * N)) = {int(expected.sum())}")
            ex.expect_true(desc + " (which tokens)", torch.equal(got_t, expected),
                           "the right number of tokens, but not the ones with the largest covariance")
            ex.expect_true(desc + " (the package agrees)", torch.equal(
                expected, rl.kl_cov_mask(rl.token_covariance(logp, adv, mask), mask, ratio=ratio)))
