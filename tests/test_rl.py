"""Unit tests of companion.rl: closed forms, the papers' numbers, invariances, two computations agreeing."""

import math

import numpy as np
import pytest
import torch

from companion import rl
from companion.training import History


# ---------------------------------------------------------------- advantages
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_identical_rewards_give_exactly_zero_advantage(scale):
    rewards = np.array([0.1] * 3 + [0.7] * 3 + [1 / 3] * 3)
    adv = rl.group_advantages(rewards, 3, scale, eps=0.0 if scale == "none" else 1e-4)
    if scale == "batch":  # batch std is non-zero; each group is still constant
        assert np.all(adv == 0.0)
    else:
        assert np.all(adv == 0.0)


def test_spec_advantage_values_both_std_conventions():
    r = np.array([1.0, 0.0, 0.0, 0.0])
    unbiased = rl.group_advantages(r, 4, std="unbiased", eps=0.0)
    population = rl.group_advantages(r, 4, std="population", eps=0.0)
    np.testing.assert_allclose(unbiased, [1.5, -0.5, -0.5, -0.5], rtol=1e-12)
    np.testing.assert_allclose(population, [math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3)],
                               rtol=1e-12)
    np.testing.assert_allclose(population, [1.732, -0.577, -0.577, -0.577], atol=5e-4)
    # TRL's default eps = 1e-4 moves the values only slightly
    np.testing.assert_allclose(rl.group_advantages(r, 4), unbiased, rtol=1e-3)


def test_dr_grpo_only_centres_and_torch_input_stays_torch():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 1.0])
    adv = rl.group_advantages(r, 4, "none")
    assert isinstance(adv, torch.Tensor)
    expected = (r.reshape(2, 4) - r.reshape(2, 4).mean(1, keepdim=True)).reshape(-1)
    torch.testing.assert_close(adv, expected)


def test_advantage_invariant_to_affine_reward_change():
    rng = np.random.default_rng(0)
    r = rng.normal(size=12)
    a1 = rl.group_advantages(r, 4, eps=0.0)
    a2 = rl.group_advantages(3.0 * r + 7.0, 4, eps=0.0)
    np.testing.assert_allclose(a1, a2, rtol=1e-10, atol=1e-12)


def test_group_advantages_validates():
    with pytest.raises(ValueError, match="group_size"):
        rl.group_advantages([1.0, 0.0, 1.0], 2)
    with pytest.raises(ValueError, match="scale"):
        rl.group_advantages([1.0, 0.0], 2, scale="token")
    with pytest.raises(TypeError, match="rewards"):
        rl.group_advantages("abc", 2)
    with pytest.raises(ValueError, match="rewards"):
        rl.group_advantages([1.0, np.nan], 2)


def test_zero_variance_groups_and_rlzvp():
    r = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0], dtype=float)
    assert rl.zero_variance_groups(r, 3).tolist() == [True, True, False]
    H = np.arange(18, dtype=float).reshape(9, 2) / 10
    A = rl.rlzvp_advantages(r, H, 3, alpha=0.5, success=1.0)
    np.testing.assert_allclose(A[:3], 0.5 * H[:3])                                    # all correct
    np.testing.assert_allclose(A[3:6], -0.5 * (H[3:6].max(1, keepdims=True) - H[3:6]))  # all wrong
    grpo = rl.group_advantages(r[6:], 3)
    np.testing.assert_allclose(A[6:], np.repeat(grpo[:, None], 2, axis=1))           # ordinary group
    assert np.all(A[3:6] <= 0) and np.all(A[:3] >= 0)
    # success is explicit: an all-wrong batch is all wrong (the batch maximum would call it correct)
    wrong = rl.rlzvp_advantages(np.zeros(3), H[:3], 3, alpha=0.5, success=1.0)
    assert np.all(wrong <= 0) and np.any(wrong < 0)
    with pytest.raises(TypeError):
        rl.rlzvp_advantages(r, H, 3, alpha=0.5)


# ---------------------------------------------------------------- loss
def _grad_of_loss(ratios, adv, **kw):
    old = torch.zeros(1, len(ratios), dtype=torch.float64)
    logp = torch.log(torch.tensor([ratios], dtype=torch.float64)).requires_grad_(True)
    loss, info = rl.policy_loss(logp, old, torch.tensor([adv], dtype=torch.float64), **kw)
    loss.backward()
    return logp.grad[0], info


def test_clipping_zeroes_gradient_exactly_where_it_should():
    ratios = [0.5, 0.75, 0.95, 1.05, 1.15, 1.35]  # none on a boundary of [0.8, 1.2] or [0.8, 1.28]
    g_pos, info_pos = _grad_of_loss(ratios, 1.0, epsilon=0.2, epsilon_high=0.2)
    assert (g_pos == 0).tolist() == [False, False, False, False, False, True]    # A > 0: only rho > 1.2
    g_neg, info_neg = _grad_of_loss(ratios, -1.0, epsilon=0.2, epsilon_high=0.2)
    assert (g_neg == 0).tolist() == [True, True, False, False, False, False]     # A < 0: only rho < 0.8
    assert info_pos["clip_high"] == pytest.approx(1 / 6) and info_pos["clip_low"] == 0.0
    assert info_neg["clip_low"] == pytest.approx(2 / 6) and info_neg["clip_high"] == 0.0
    # clip-higher (eps_high = 0.28) keeps the gradient of rho = 1.35? no: 1.35 > 1.28 still clipped
    g_ch, _ = _grad_of_loss([1.25, 1.35], 1.0, epsilon_high=0.28)
    assert (g_ch == 0).tolist() == [False, True]
    # where unclipped, the gradient of -rho*A w.r.t. log rho is -rho*A / (B * L)
    np.testing.assert_allclose(g_pos[:5].numpy(), -np.array(ratios[:5]) / 6)


def _trl_reference(per_token, mask, loss_type, M):
    """TRL's GRPOTrainer aggregation, written out independently."""
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type in ("bnpo", "dapo"):
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    return (per_token * mask).sum() / (per_token.size(0) * M)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_loss_aggregation_matches_trl_formulas(loss_type):
    g = torch.Generator().manual_seed(1)
    B, T, M = 5, 7, 9
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64)
    old = logp + 0.3 * (torch.rand(B, T, generator=g, dtype=torch.float64) - 0.5)
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    mask = (torch.arange(T)[None, :] < torch.tensor([7, 3, 5, 1, 6])[:, None]).double()
    loss, _ = rl.policy_loss(logp, old, adv, mask, loss_type=loss_type, max_completion_length=M)
    ratio = torch.exp(logp - old)
    per_token = -torch.min(ratio * adv[:, None], torch.clamp(ratio, 0.8, 1.2) * adv[:, None])
    torch.testing.assert_close(loss, _trl_reference(per_token, mask, loss_type, M))


def test_delta_l_weights_sum_to_inverse_max_length_and_alpha_zero_is_dr_grpo():
    mask = (torch.arange(10)[None, :] < torch.tensor([10, 2, 6, 4])[:, None]).double()
    for alpha in (0.0, 0.5, 1.0, 2.0):
        w = rl.aggregation_weights(mask, "delta_l", alpha=alpha, max_completion_length=12)
        assert float(w.sum()) == pytest.approx(1 / 12, rel=1e-12)
    w0 = rl.aggregation_weights(mask, "delta_l", alpha=0.0, max_completion_length=12)
    torch.testing.assert_close(w0, rl.aggregation_weights(mask, "dr_grpo", max_completion_length=12))
    w1 = rl.aggregation_weights(mask, "delta_l", alpha=1.0)
    assert torch.all(torch.diff(w1[[1, 3, 2, 0]]) < 0)  # shorter sequences weigh more per token
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 10, generator=g, dtype=torch.float64)
    adv = torch.randn(4, generator=g, dtype=torch.float64)
    l0, _ = rl.policy_loss(logp, logp, adv, mask, loss_type="delta_l", alpha=0.0)
    ld, _ = rl.policy_loss(logp, logp, adv, mask, loss_type="dr_grpo")
    torch.testing.assert_close(l0, ld)


def test_k3_expected_gradient_is_gradient_of_reverse_kl():
    torch.manual_seed(0)
    theta = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ref = torch.softmax(torch.randn(6, dtype=torch.float64), 0)
    logp = torch.log_softmax(theta, 0)
    # exact expectation over a ~ pi_theta by enumeration, sampling distribution held fixed
    expected_k3 = (logp.exp().detach() * torch.as_tensor(rl.k3_kl(logp, ref.log()))).sum()
    g_k3, = torch.autograd.grad(expected_k3, theta)
    kl_ref_theta = (ref * (ref.log() - torch.log_softmax(theta, 0))).sum()
    g_kl, = torch.autograd.grad(kl_ref_theta, theta)
    torch.testing.assert_close(g_k3, g_kl)
    # while its value is KL(pi_theta || pi_ref)
    p = torch.softmax(theta, 0).detach()
    assert float(expected_k3.detach()) == pytest.approx(float((p * (p.log() - ref.log())).sum()), rel=1e-10)


def test_policy_loss_kl_and_entropy_bonus():
    logp = torch.log(torch.tensor([[0.5, 0.25]], dtype=torch.float64))
    ref = torch.log(torch.tensor([[0.25, 0.25]], dtype=torch.float64))
    adv = torch.zeros(1, dtype=torch.float64)
    loss, info = rl.policy_loss(logp, logp, adv, beta=0.1, ref_logp=ref)
    k3 = 0.5 - math.log(0.5) - 1
    assert info["kl"] == pytest.approx(k3 / 2)
    assert float(loss) == pytest.approx(0.1 * k3 / 2)
    ent = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    loss, info = rl.policy_loss(logp, logp, adv, entropy=ent, entropy_coef=0.5)
    assert float(loss) == pytest.approx(-0.5 * 2.0) and info["entropy"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="ref_logp"):
        rl.policy_loss(logp, logp, adv, beta=0.1)
    with pytest.raises(ValueError, match="loss_type"):
        rl.policy_loss(logp, logp, adv, loss_type="ppo")
    with pytest.raises(ValueError, match="old_logp"):
        rl.policy_loss(logp, logp[:, :1], adv)


# ---------------------------------------------------------------- entropy mechanism
def test_first_order_entropy_change_is_the_gradient_of_entropy():
    torch.manual_seed(3)
    z = torch.randn(7, dtype=torch.float64, requires_grad=True)
    dz = torch.randn(7, dtype=torch.float64)
    H = torch.as_tensor(rl.softmax_entropy(z))
    grad, = torch.autograd.grad(H, z)
    assert float(rl.first_order_entropy_change(z.detach(), dz)) == pytest.approx(float(grad @ dz), rel=1e-10)


@pytest.mark.parametrize("update", ["vanilla", "natural"])
def test_covariance_prediction_error_is_order_lr(update):
    z = np.array([1.2, 0.5, 0.0, -0.3, -1.0, 0.8])
    A = np.array([1.0, 0.6, -0.2, -0.5, 0.3, -1.0])
    errors = []
    for lr in (0.1, 0.01, 0.001):
        exact = rl.entropy_change(z, A, lr, update)
        pred = rl.predicted_entropy_change(z, A, lr, update)
        assert np.sign(exact) == np.sign(pred)
        errors.append(abs(exact / pred - 1))
    assert errors[0] < 0.5
    # O(lr): each factor 10 in lr divides the relative error by about 10
    assert 7 < errors[0] / errors[1] < 13 and 7 < errors[1] / errors[2] < 13


def test_predicted_entropy_change_closed_form():
    z = np.log(np.array([0.5, 0.3, 0.2]))
    A = np.array([1.0, -1.0, 0.5])
    p = np.exp(z)
    Ac = A - p @ A
    cov = lambda x, y: p @ ((x - p @ x) * (y - p @ y))
    assert rl.predicted_entropy_change(z, A, 0.01, "natural") == pytest.approx(-0.01 * cov(np.log(p), Ac))
    assert rl.predicted_entropy_change(z, A, 0.01, "vanilla") == pytest.approx(-0.01 * cov(np.log(p), p * Ac))
    # a confident policy rewarded on its favourite action loses entropy
    assert rl.predicted_entropy_change(z, np.array([1.0, 0.0, 0.0]), 0.1) < 0


def test_token_covariance_is_population_covariance():
    rng = np.random.default_rng(0)
    logp = -rng.random((4, 3))
    A = rng.normal(size=4)
    cov = rl.token_covariance(logp, A)
    Afull = np.repeat(A[:, None], 3, axis=1)
    assert cov.mean() == pytest.approx(np.cov(logp.ravel(), Afull.ravel(), bias=True)[0, 1])
    mask = np.ones((4, 3))
    mask[0, 2] = 0
    assert rl.token_covariance(logp, A, mask)[0, 2] == 0


# ---------------------------------------------------------------- interventions
def test_clip_cov_and_kl_cov_masks():
    cov = torch.tensor([[0.5, 1.5, 2.0, 6.0], [4.9, 0.0, -3.0, 1.1]], dtype=torch.float64)
    m = rl.clip_cov_mask(cov, ratio=1.0, generator=torch.Generator().manual_seed(0))
    assert m.tolist() == [[False, True, True, False], [True, False, False, True]]
    m2 = rl.clip_cov_mask(cov, ratio=0.25, generator=torch.Generator().manual_seed(0))
    assert int(m2.sum()) == 2 and bool(torch.all(m[m2]))
    top = rl.kl_cov_mask(cov, ratio=0.25)
    assert top.tolist() == [[False, False, False, True], [True, False, False, False]]
    # as in the reference code: max(1, int(ratio * n)), so the papers' tiny fractions still pick one token
    assert int(rl.kl_cov_mask(cov, ratio=2e-3).sum()) == 1
    assert int(rl.clip_cov_mask(cov, ratio=2e-4, generator=torch.Generator().manual_seed(0)).sum()) == 1
    assert int(rl.kl_cov_mask(cov, ratio=0.3).sum()) == 2          # int(2.4) = 2, rounded down
    assert int(rl.kl_cov_mask(cov, ratio=0.0).sum()) == 0
    # Clip-Cov leaves out tokens the PPO clip already stopped
    clipped = torch.zeros_like(cov, dtype=torch.bool)
    clipped[0, 1] = clipped[0, 2] = clipped[1, 0] = True
    only = rl.clip_cov_mask(cov, ratio=1.0, clipped=clipped, generator=torch.Generator().manual_seed(0))
    assert only.tolist() == [[False, False, False, False], [False, False, False, True]]
    # padding is never selected
    mask = torch.ones_like(cov)
    mask[0, 3] = 0
    assert not rl.kl_cov_mask(cov, mask, ratio=0.25)[0, 3]


# Cui et al.'s released code, transcribed line by line (PRIME-RL/Entropy-Mechanism-of-RL,
# verl/trainer/ppo/core_algos.py at 88505792, compute_policy_loss_kl_cov and
# compute_policy_loss_clip_cov with agg_loss "token-mean"; verl's current copies are the same math).
def _reference_masked_mean(x, mask):
    return (x * mask).sum() / mask.sum()


def _reference_kl_cov(old_log_prob, log_prob, advantages, response_mask, k_percent, ppo_kl_coef):
    ratio = torch.exp(log_prob - old_log_prob)
    pg_losses1 = -advantages * ratio
    pg_losses_kl = -advantages * ratio + ppo_kl_coef * (log_prob - old_log_prob).abs()
    pg_losses = pg_losses1
    all_valid = response_mask > 0
    all_valid_idx = torch.nonzero(all_valid.reshape(-1), as_tuple=True)[0]
    all_valid_adv = advantages[all_valid].detach().reshape(-1)
    all_valid_logp = log_prob[all_valid].detach().reshape(-1)
    k = min(k_percent, len(all_valid_adv))
    if k != 0:
        cov = (all_valid_adv - all_valid_adv.mean()) * (all_valid_logp - all_valid_logp.mean())
        idx = all_valid_idx[torch.topk(cov, max(1, int(len(cov) * k / 100)), largest=True).indices]
        T = advantages.shape[1]
        pg_losses[idx // T, idx % T] = pg_losses_kl[idx // T, idx % T]
    return _reference_masked_mean(pg_losses, response_mask)


def _reference_clip_cov(old_log_prob, log_prob, advantages, response_mask, cliprange_low, cliprange_high,
                        clip_ratio, clip_cov_lb, clip_cov_ub):
    ratio = torch.exp(log_prob - old_log_prob)
    pg_losses1 = -advantages * ratio
    corr = torch.ones_like(advantages)
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - cliprange_low, 1 + cliprange_high)
    clip_by_origin = (pg_losses2 > pg_losses1) & (response_mask > 0)
    cov_all = (advantages - _reference_masked_mean(advantages, response_mask)) * (
        log_prob - _reference_masked_mean(log_prob.detach(), response_mask))
    cov_all[response_mask == 0] = -torch.inf
    cov_all[clip_by_origin] = -torch.inf
    clip_num = max(int(clip_ratio * response_mask.sum().item()), 1)
    top_k_idx = torch.nonzero((cov_all < clip_cov_ub) & (cov_all > clip_cov_lb) & (response_mask > 0))
    if len(top_k_idx) > 0:
        top_k_idx = top_k_idx[torch.randperm(len(top_k_idx))[: min(clip_num, len(top_k_idx))]]
    corr[top_k_idx[:, 0], top_k_idx[:, 1]] = 0
    return _reference_masked_mean(torch.maximum(pg_losses1, pg_losses2) * corr, response_mask)


def _cov_batch(seed, B=8, T=6):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 4
    old = logp + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)   # ratios beyond the clip range
    adv = 2 * torch.randn(B, generator=g, dtype=torch.float64)
    return logp, old, adv, mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio", [2e-3, 0.05, 0.12])
def test_kl_cov_loss_equals_the_released_code(seed, ratio):
    """train_grpo's KL-Cov loss (unclipped surrogate + |log ratio| on the top-cov tokens) = the reference.

    The reference's ``k = min(k_percent, n_valid)`` caps the *percentage* by the token count, a
    quirk that only acts when ``100 * ratio > n_valid`` (never at the papers' 0.2 %); the
    ratios here stay below it (``n_valid >= 13``).
    """
    logp, old, adv, mask = _cov_batch(seed)
    assert 100 * ratio <= mask.sum()
    cfg = rl.GRPOConfig(intervention="kl_cov", kl_cov_ratio=ratio, kl_cov_coef=0.7)
    leaf = logp.clone().requires_grad_(True)
    extra = rl._kl_cov_penalty(leaf, old, adv, mask, cfg)
    ours, _ = rl.policy_loss(leaf, old, adv, mask, loss_type="dapo", clip=False, extra_token_loss=extra)
    ref_leaf = logp.clone().requires_grad_(True)
    theirs = _reference_kl_cov(old, ref_leaf, adv[:, None].expand_as(logp), mask, 100 * ratio, 0.7)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    g_ours, = torch.autograd.grad(ours, leaf)
    g_theirs, = torch.autograd.grad(theirs, ref_leaf)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio,bounds", [(2e-4, (1.0, 5.0)), (0.1, (0.05, 3.0)), (1.0, (0.05, 3.0))])
def test_clip_cov_loss_equals_the_released_code(seed, ratio, bounds):
    """train_grpo's Clip-Cov loss (same random draw of the candidates) = the reference, loss and gradient."""
    logp, old, adv, mask = _cov_batch(seed)
    cfg = rl.GRPOConfig(intervention="clip_cov", clip_cov_ratio=ratio, clip_cov_bounds=bounds,
                        epsilon=0.2, epsilon_high=0.28)
    leaf = logp.clone().requires_grad_(True)
    weights = rl._clip_cov_weights(leaf, old, adv, mask, cfg, torch.Generator().manual_seed(seed))
    ours, _ = rl.policy_loss(leaf, old, adv, mask, loss_type="dapo", epsilon=0.2, epsilon_high=0.28,
                             token_weights=weights)
    ref_leaf = logp.clone().requires_grad_(True)
    torch.manual_seed(seed)                                   # the reference draws from the global generator
    theirs = _reference_clip_cov(old, ref_leaf, adv[:, None].expand_as(logp), mask, 0.2, 0.28, ratio, *bounds)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    g_ours, = torch.autograd.grad(ours, leaf)
    g_theirs, = torch.autograd.grad(theirs, ref_leaf)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-12)
    if ratio < 1.0:
        assert 0 < int((weights == 0).sum()) < int(mask.sum())   # a real selection, not all or nothing


def test_steer_weights():
    old = torch.log(torch.tensor([[0.9, 0.5, 0.1]], dtype=torch.float64))
    H = torch.tensor([[0.4, 0.7, 1.5]], dtype=torch.float64)
    adv = torch.tensor([[1.0, 0.0, -2.0]], dtype=torch.float64)
    w = rl.steer_weights(adv, old, H, w_min=0.5)
    assert float(w[0, 1]) == 1.0                            # no advantage, no entropy change
    assert float(w.min()) == pytest.approx(0.5)             # the largest |Omega| is damped to w_min
    assert torch.all((w >= 0.5) & (w <= 1.0))


def test_epo_phase_and_smoothing():
    assert rl.epo_phase_weight(0.0) == pytest.approx(1.0)
    assert rl.epo_phase_weight(0.4999) == pytest.approx(1 - 0.2 * (1 - math.exp(-2)), rel=1e-3)
    assert rl.epo_phase_weight(0.5) == pytest.approx(0.8)
    assert rl.epo_phase_weight(1.0) == pytest.approx(0.8 * math.exp(-3))
    H = torch.tensor([[0.5, 1.0, 1.5]], dtype=torch.float64, requires_grad=True)
    pen = rl.epo_smoothing_penalty(H, 1.0, kappa=(0.8, 1.2))
    torch.testing.assert_close(pen.detach(), torch.tensor([[0.3, 0.0, 0.3]], dtype=torch.float64))
    pen.sum().backward()
    assert H.grad.tolist() == [[-1.0, 0.0, 1.0]]


def test_adaptive_entropy_coefficient():
    assert rl.adaptive_entropy_coef(0.01, 0.2, 0.5, delta=0.005) == pytest.approx(0.015)
    assert rl.adaptive_entropy_coef(0.01, 0.8, 0.5, delta=0.005) == pytest.approx(0.005)
    assert rl.adaptive_entropy_coef(0.05, 0.1, 0.5, delta=0.01, c_max=0.05) == 0.05
    assert rl.adaptive_entropy_coef(0.0, 0.9, 0.5) == 0.0


# ---------------------------------------------------------------- environments and measurement
def test_pass_at_k_matches_binomial_formula():
    for n, c, k in [(10, 3, 1), (10, 3, 4), (20, 0, 5), (20, 17, 5), (32, 5, 32), (50, 7, 10)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert rl.pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert rl.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    np.testing.assert_allclose(rl.pass_at_k([10, 10], [0, 10], 3), [0.0, 1.0])
    with pytest.raises(ValueError, match="n must be >= k"):
        rl.pass_at_k(3, 1, 4)


def test_modular_task_counts_correct_answers():
    task = rl.ModularTask(5, 2, "product")
    prompts = task.all_prompts()
    assert prompts.shape == (25, 2)
    answers = torch.cartesian_prod(torch.arange(5), torch.arange(5))
    for prompt in prompts[[0, 7, 24]]:
        ok = task.is_correct(prompt.expand(25, 2), answers)
        assert int(ok.sum()) == 5  # p^(L-1) correct answers per prompt
    g = torch.Generator().manual_seed(0)
    sampled = task.sample_correct(prompts, g)
    assert bool(task.is_correct(prompts, sampled).all())


def test_gru_policy_score_agrees_with_step_by_step_sampling_probabilities():
    torch.manual_seed(0)
    task = rl.ModularTask(7, 3)
    pol = rl.GRUPolicy(7, hidden=16, embed=8)
    prompts = task.sample_prompts(5, torch.Generator().manual_seed(1))
    answers = pol.sample(prompts, 3, torch.Generator().manual_seed(2))
    logp, ent, _ = pol.score(prompts, answers)
    for t in range(3):
        step_logits = pol.answer_logits(prompts, answers[:, :t], last_only=True)
        torch.testing.assert_close(logp[:, t], torch.log_softmax(step_logits, -1).gather(1, answers[:, t:t + 1])[:, 0])
    assert torch.all(ent > 0) and torch.all(ent <= math.log(7) + 1e-6)


def test_fit_entropy_performance_recovers_law():
    H = np.linspace(0.1, 2.0, 15)
    R = -0.05 * np.exp(H) + 0.9
    fit = rl.fit_entropy_performance(H, R)
    assert fit.a == pytest.approx(0.05, rel=1e-6) and fit.b == pytest.approx(0.9, rel=1e-6)
    assert fit.ceiling == pytest.approx(0.85, rel=1e-6) and fit.r2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="R"):
        rl.fit_entropy_performance(H, R[:-1])


# ---------------------------------------------------------------- training
def _bandit(**kw):
    task = rl.BanditTask()
    pol = rl.TabularPolicy(task.vocab_size)
    cfg = dict(steps=60, prompts_per_step=1, group_size=8, lr=0.3, optimizer="sgd", eval_every=60,
               eval_samples=8, pass_ks=(1,))
    cfg.update(kw)
    return rl.train_grpo(pol, task, show_progress=False, **cfg)


def test_grpo_collapses_bandit_entropy_and_bonus_slows_it():
    h = _bandit()
    assert isinstance(h, History)
    assert h["entropy"][0] == pytest.approx(math.log(8), rel=1e-5)
    assert h["entropy"][-1] < 0.5 * math.log(8)
    assert h["reward"][-10:].mean() > h["reward"][:5].mean()
    h_bonus = _bandit(entropy_coef=0.5)
    assert h_bonus["entropy"][-1] > h["entropy"][-1]


@pytest.mark.parametrize("intervention", ["clip_cov", "kl_cov", "epo", "steer", "rl_zvp"])
def test_each_intervention_runs_and_logs(intervention):
    h = _bandit(steps=15, intervention=intervention, clip_cov_bounds=(0.01, 5.0))
    assert len(h["entropy"]) == 15 and np.all(np.isfinite(h["loss"]))


def test_dynamic_sampling_and_sequence_task():
    torch.manual_seed(0)
    task = rl.ModularTask(5, 2)
    pol = rl.GRUPolicy(5, hidden=16, embed=8)
    rl.supervised_warm_start(pol, task, steps=20, batch_size=32)
    h = rl.train_grpo(pol, task, show_progress=False, steps=4, prompts_per_step=4, group_size=4,
                      dynamic_sampling=True, eval_every=2, eval_samples=8, pass_ks=(1, 8), loss_type="dapo")
    assert set(["eval_pass@1", "eval_pass@8", "eval_distinct_correct", "zero_var"]) <= set(h.keys())
    assert np.all(h["eval_pass@8"] >= h["eval_pass@1"])


def test_train_grpo_validates_options():
    with pytest.raises(ValueError, match="intervention"):
        _bandit(intervention="magic")
    with pytest.raises(ValueError, match="group_size"):
        _bandit(group_size=1)


def test_bandit_trace_first_order_prediction_tracks_measured():
    tr = rl.bandit_entropy_trace(steps=100, lr=0.1)
    assert tr["entropy"][-1] < tr["entropy"][0]
    assert np.corrcoef(tr["measured"], tr["first_order"])[0, 1] > 0.99


def test_figures_and_explorer():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = _bandit(steps=10, eval_every=5)
    hs = [h, _bandit(steps=10, eval_every=5, seed=1)]
    for fig in (rl.plot_training_curves(hs), rl.plot_interventions({"a": hs}), rl.plot_pass_at_k({"a": hs}),
                rl.plot_interventions({"a": hs}, x="rollouts"),
                rl.plot_entropy_prediction(rl.bandit_entropy_trace(steps=20)),
                rl.plot_entropy_performance(np.linspace(0, 1, 5), 1 - np.exp(np.linspace(0, 1, 5)) / 10)):
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
        plt.close(fig)
    ex = rl.rl_explorer()
    n_frames = np.prod([len(ex.controls[n].values) for n in ex.precompute])
    assert n_frames <= 12
    fig, text = ex.render(eta=0.05)
    assert "final entropy" in text
    plt.close(fig)


def test_explorer_smoothing_has_no_edge_drop():
    # a constant reward stays constant to the end (mode="same" zero padding bent the ends down)
    steps, means = rl._moving_average(np.full(120, 0.9), 5)
    np.testing.assert_allclose(means, 0.9)
    assert steps[0] == 3 and steps[-1] == 118 and len(steps) == 116  # window centres, steps from 1
    # a linear trend is reproduced exactly at the window centres
    r = np.arange(1, 21, dtype=float)
    steps, means = rl._moving_average(r, 5)
    np.testing.assert_allclose(means, steps)
    steps, means = rl._moving_average([1.0, 2.0], 5)  # fewer values than the window
    np.testing.assert_allclose(steps, [1.5])
    np.testing.assert_allclose(means, [1.5])


# ---------------------------------------------------------------- prompt augmentation
def _small_modular_run(**kw):
    task = rl.ModularTask(p=5, length=2)
    torch.manual_seed(0)
    pol = rl.GRUPolicy(task.vocab_size, hidden=16, embed=8)
    rl.supervised_warm_start(pol, task, steps=5, batch_size=32, seed=0,
                             prompt_templates=kw.get("prompt_templates", 1))
    return pol, rl.train_grpo(pol, task, show_progress=False, steps=3, prompts_per_step=4, group_size=4,
                              eval_every=3, eval_samples=8, pass_ks=(1, 8), seed=0, **kw)


def test_one_prompt_template_is_the_plain_run_bit_for_bit():
    _, plain = _small_modular_run()
    _, one = _small_modular_run(prompt_templates=1)
    assert set(plain.keys()) == set(one.keys())
    for key in plain.keys():
        assert np.array_equal(plain[key], one[key]), key
    # the numbers of the code before the option existed (same seed): the plain path draws the same randoms
    assert plain["reward"].tolist() == [0.3125, 0.125, 0.1875]
    np.testing.assert_allclose(plain["entropy"], [1.5998255014419556, 1.599456548690796, 1.6034436225891113],
                               rtol=1e-5)
    np.testing.assert_allclose(plain["eval_pass@1"], [0.17, 0.175], rtol=1e-6)


def test_templates_change_the_policy_input_but_not_the_verifier():
    task = rl.ModularTask(p=5, length=2)
    aug = rl.TemplatedTask(task, 3)
    gen = torch.Generator().manual_seed(0)
    x = aug.sample_prompts(200, gen)
    assert x.shape == (200, 3)
    assert set(aug.templates(x).tolist()) == {0, 1, 2}  # every template is used
    answers = aug.sample_correct(x, gen)
    assert aug.is_correct(x, answers).all()  # a correct answer stays correct under every template
    for t in range(3):
        xt = aug.format(aug.problems(x), torch.full((200,), t))
        torch.testing.assert_close(aug.reward(xt, answers), task.reward(aug.problems(x), answers))
    assert torch.equal(aug.templates(aug.all_prompts()), torch.zeros(25, dtype=torch.long))  # eval: template 0
    # the policy really reads a different input: its answer distribution depends on the template
    torch.manual_seed(0)
    pol = rl.GRUPolicy(5, hidden=16, embed=8)
    probs = [torch.softmax(pol.answer_logits(aug.format(task.all_prompts(), torch.full((25,), t)),
                                             torch.zeros(25, 0, dtype=torch.long), last_only=True), -1)
             for t in range(3)]
    assert not torch.allclose(probs[0], probs[1]) and not torch.allclose(probs[1], probs[2])


def test_grpo_with_templates_feeds_templated_prompts_to_the_policy():
    seen = []
    original = rl.GRUPolicy.answer_logits

    def spy(self, prompts, answers, last_only=False):
        seen.append(prompts.clone())
        return original(self, prompts, answers, last_only=last_only)

    rl.GRUPolicy.answer_logits = spy
    try:
        _, h = _small_modular_run(prompt_templates=4)
    finally:
        rl.GRUPolicy.answer_logits = original
    assert all(p.shape[1] == 3 for p in seen)
    assert set(torch.cat([p[:, 0] for p in seen]).tolist()) == {0, 1, 2, 3}
    _, plain = _small_modular_run()
    assert not np.array_equal(h["entropy"], plain["entropy"])


def test_prompt_templates_are_validated():
    with pytest.raises(ValueError, match="prompt_templates"):
        rl.GRPOConfig(prompt_templates=0).validate()
    with pytest.raises(ValueError, match="num_templates"):
        _bandit(steps=2, prompt_templates=9)  # more templates than the 8-token alphabet
    with pytest.raises(ValueError, match="templates"):
        rl.TemplatedTask(rl.ModularTask(5), 2).format(torch.zeros(2, 2, dtype=torch.long), [0, 2])
    with pytest.raises(TypeError, match="TemplatedTask"):
        rl.TemplatedTask(rl.TemplatedTask(rl.ModularTask(5), 2), 2)


# ---------------------------------------------------------------- GSPO, CISPO, KL correction (TRL's conventions)
def _rand_batch(seed=0, B=4, T=5):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 2, 4, 1])[:B]
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2
    old = logp + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    return logp, old, adv, mask


def test_gspo_uses_one_ratio_per_answer():
    logp, old, adv, mask = _rand_batch()
    leaf = logp.clone().requires_grad_(True)
    loss, info = rl.policy_loss(leaf, old, adv, mask, loss_type="grpo", importance_sampling_level="sequence")
    s = torch.exp(((logp - old) * mask).sum(1) / mask.sum(1))             # the sequence ratios
    expected = -torch.min(s * adv, torch.clamp(s, 0.8, 1.2) * adv).mean()  # every token has the answer's loss
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # within an answer every valid token gets the same gradient; a clipped answer gets none at all
    for i in range(4):
        g = leaf.grad[i][mask[i] > 0]
        assert torch.allclose(g, g[0].expand_as(g))
    clipped = ((s > 1.2) & (adv > 0)) | ((s < 0.8) & (adv < 0))
    assert info["clip_ratio"] == pytest.approx(float(clipped.double().mean()))


def test_cispo_clips_and_detaches_the_ratio():
    logp, old, adv, mask = _rand_batch(1)
    leaf = logp.clone().requires_grad_(True)
    loss, info = rl.policy_loss(leaf, old, adv, mask, loss_type="cispo", epsilon_high=1.1)
    w = torch.clamp(torch.exp(logp - old), max=1.1)
    torch.testing.assert_close(loss, -(w * adv[:, None] * logp * mask).sum() / mask.sum())
    loss.backward()
    # no token loses its gradient: d loss / d logp_it = -w_it A_i / N, never zero
    torch.testing.assert_close(leaf.grad, -(w * adv[:, None] * mask) / mask.sum())
    assert bool(torch.all(leaf.grad[mask > 0] != 0))
    assert info["clip_high"] == pytest.approx(float((((torch.exp(logp - old) > 1.1) & (adv[:, None] > 0)).double()
                                                      * mask).sum() / mask.sum()))


def test_kl_bias_correction_gives_the_reverse_kl_gradient():
    """Exact expectations over a 6-way categorical: every outcome is one token weighted by 6 * p_old.

    With ``dr_grpo`` (B = 1, M = 6) the loss is (1/6) sum_t m_t l_t, so the mask 6 p_old turns
    it into the expectation over the sampling policy of the per-token loss (here only the KL).
    """
    g = torch.Generator().manual_seed(4)
    theta = torch.randn(6, dtype=torch.float64, generator=g).requires_grad_(True)
    ref = torch.log_softmax(torch.randn(6, dtype=torch.float64, generator=g), 0)
    logp = torch.log_softmax(theta, 0)[None, :]                                 # (1, 6)
    weights = 6 * logp.exp().detach()
    p = torch.softmax(theta, 0)
    reverse, = torch.autograd.grad((p * (p.log() - ref)).sum(), theta)          # grad KL(pi_theta || pi_ref)
    forward, = torch.autograd.grad((ref.exp() * (ref - torch.log_softmax(theta, 0))).sum(), theta)
    for corrected, expected in ((True, reverse), (False, forward)):
        loss, _ = rl.policy_loss(logp, logp.detach(), torch.zeros(1, dtype=torch.float64), weights,
                                 loss_type="dr_grpo", beta=1.0, ref_logp=ref[None, :],
                                 use_bias_correction_kl=corrected)
        grad, = torch.autograd.grad(loss, theta, retain_graph=True)
        torch.testing.assert_close(grad, expected)


def test_entropy_bonus_is_a_token_mean_for_every_loss_type():
    logp, old, adv, mask = _rand_batch(2)
    ent = torch.rand(4, 5, dtype=torch.float64)
    for lt in ("grpo", "dapo", "dr_grpo", "delta_l"):
        base, _ = rl.policy_loss(logp, old, adv, mask, loss_type=lt)
        with_bonus, _ = rl.policy_loss(logp, old, adv, mask, loss_type=lt, entropy=ent, entropy_coef=0.3)
        assert float(base - with_bonus) == pytest.approx(0.3 * float((ent * mask).sum() / mask.sum()))


def test_policy_loss_names_and_defaults_follow_trl():
    assert rl.GRPOConfig().loss_type == "dapo"
    logp, old, adv, mask = _rand_batch(3)
    default, _ = rl.policy_loss(logp, old, adv, mask)
    dapo, _ = rl.policy_loss(logp, old, adv, mask, loss_type="dapo", epsilon=0.2, epsilon_high=0.2)
    torch.testing.assert_close(default, dapo)
    with pytest.raises(ValueError, match="importance_sampling_level"):
        rl.policy_loss(logp, old, adv, mask, importance_sampling_level="answer")
    with pytest.raises(TypeError):
        rl.policy_loss(logp, old, adv, mask, eps_low=0.2)


# ---------------------------------------------------------------- variable-length answers
def test_variable_length_task_and_mask():
    task = rl.ModularTask(p=5, length=4, eos=True)
    assert task.vocab_size == 6 and task.eos == 5
    answers = torch.tensor([[1, 5, 5, 5], [2, 3, 5, 5], [1, 1, 1, 1], [5, 5, 5, 5], [4, 2, 5, 3]])
    prompts = torch.tensor([[1, 1], [1, 0], [2, 2], [0, 0], [2, 3]])            # targets 1, 0, 4, 0, 1
    np.testing.assert_array_equal(rl.answer_mask(task, answers).numpy(),
                                  [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]])
    # 1 = 1; 2 + 3 = 0 (mod 5); 1+1+1+1 = 4; the empty answer is wrong; digits after the end token don't count
    assert task.is_correct(prompts, answers).tolist() == [True, True, True, False, True]
    gen = torch.Generator().manual_seed(0)
    p = task.sample_prompts(500, gen)
    a = task.sample_correct(p, gen)
    assert task.is_correct(p, a).all()
    lengths = rl.answer_mask(task, a).sum(1)
    assert set(lengths.tolist()) == {2.0, 3.0, 4.0}  # 1-3 digits + end token, or 4 digits without one
    fixed = rl.ModularTask(p=5, length=2)
    assert fixed.eos is None and bool(torch.all(rl.answer_mask(fixed, torch.zeros(3, 2, dtype=torch.long)) == 1))


def test_sampling_stops_after_the_end_token():
    task = rl.ModularTask(p=5, length=4, eos=True)
    torch.manual_seed(0)
    pol = rl.GRUPolicy(task.vocab_size, hidden=8, embed=4)
    a = pol.sample(task.sample_prompts(200), 4, torch.Generator().manual_seed(1), eos=task.eos)
    ended = torch.cumsum(a == task.eos, 1) > 0
    assert bool(torch.all(a[ended] == task.eos))                 # only end tokens after the first one


def test_aggregation_changes_the_update_when_lengths_differ():
    task = rl.ModularTask(p=5, length=4, eos=True)
    torch.manual_seed(0)
    states = {}
    for lt in ("grpo", "dapo", "dr_grpo"):
        torch.manual_seed(0)
        pol = rl.GRUPolicy(task.vocab_size, hidden=8, embed=4)
        rl.train_grpo(pol, task, show_progress=False, steps=2, prompts_per_step=4, group_size=4, loss_type=lt,
                      eval_every=2, eval_samples=4, pass_ks=(1,), seed=0, optimizer="sgd", lr=0.5)
        states[lt] = torch.cat([p.detach().ravel() for p in pol.parameters()])
    assert not torch.allclose(states["grpo"], states["dapo"])
    assert not torch.allclose(states["grpo"], states["dr_grpo"])


# ---------------------------------------------------------------- dynamic sampling on the same population
def test_dynamic_sampling_counts_rollouts_and_logs_the_first_draw():
    task = rl.ModularTask(p=5, length=2)
    torch.manual_seed(0)
    pol = rl.GRUPolicy(task.vocab_size, hidden=16, embed=8)
    rl.supervised_warm_start(pol, task, steps=10, batch_size=32)
    cfg = rl.GRPOConfig(prompts_per_step=4, group_size=4, dynamic_sampling=True, max_resample=3)
    gen = torch.Generator().manual_seed(0)
    batch = rl.collect_rollouts(pol, task, cfg, gen)
    assert batch.drawn in (16, 32, 48, 64) and batch.rewards.shape[0] <= 16
    # the logged reward is the first draw's (what a run without filtering would log), not the filtered batch's
    first = task.reward(*batch.first).double().mean()
    assert batch.reward == pytest.approx(float(first))
    plain = rl.collect_rollouts(pol, task, rl.GRPOConfig(prompts_per_step=4, group_size=4),
                                torch.Generator().manual_seed(0))
    assert plain.drawn == 16 and plain.reward == pytest.approx(batch.reward)   # same first draw
    h = rl.train_grpo(pol, task, cfg, steps=3, eval_every=3, eval_samples=4, pass_ks=(1,), show_progress=False)
    assert np.all(np.diff(np.concatenate([[0], h["rollouts"]])) >= 16)


def test_train_grpo_accepts_a_device():
    h = _bandit(steps=3, device="cpu")
    assert len(h["reward"]) == 3
    h2 = _bandit(steps=3, device=torch.device("cpu"))
    np.testing.assert_array_equal(h["reward"], h2["reward"])


# ---------------------------------------------------------------------------------------
# bad inputs: every one ends in a ValueError/TypeError naming the argument
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mask", "token_weights", "extra_token_loss"])
def test_policy_loss_rejects_nan_in_token_arrays(name):
    logp, old, adv, mask = _rand_batch(0)
    bad = torch.ones_like(logp) if name != "extra_token_loss" else torch.zeros_like(logp)
    bad[1, 2] = float("nan")
    kwargs = {"mask": mask, name: bad}
    with pytest.raises(ValueError, match=name):
        rl.policy_loss(logp, old, adv, **kwargs)


def test_policy_loss_rejects_overflowing_ratios_and_bad_options():
    logp, old, adv, mask = _rand_batch(0)
    huge = logp.clone()
    huge[0, 0] = 1e300
    with pytest.raises(ValueError, match="logp"):
        rl.policy_loss(huge, old, adv, mask)
    with pytest.raises(ValueError, match="epsilon"):
        rl.policy_loss(logp, old, adv, mask, epsilon=1e308)
    with pytest.raises(TypeError, match="clip"):
        rl.policy_loss(logp, old, adv, mask, clip="yes")
    with pytest.raises(ValueError, match="advantages"):
        rl.policy_loss(logp, old, adv[:-1], mask)


@pytest.mark.parametrize("field, value, error", [
    ("seed", "x", TypeError), ("eval_samples", "3", TypeError), ("kl_cov_ratio", 1.5, ValueError),
    ("beta", "x", TypeError), ("beta", 0.1, ValueError), ("lr", float("nan"), ValueError),
    ("pass_ks", (1, 64), ValueError), ("clip_cov_bounds", (5.0, 1.0), ValueError),
    ("dynamic_sampling", "yes", TypeError), ("group_size", 2.5, TypeError),
])
def test_grpo_config_validates_every_hyperparameter(field, value, error):
    with pytest.raises(error, match=field):
        rl.GRPOConfig(**{field: value})
    with pytest.raises(error, match=field):  # overrides of train_grpo go through the same checks
        rl.train_grpo(rl.TabularPolicy(8), rl.BanditTask(), **{field: value})


def test_gru_policy_rejects_out_of_range_token_ids():
    policy = rl.GRUPolicy(5, hidden=8, embed=4)
    prompts, answers = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[0, 1], [2, 3]])
    assert policy.answer_logits(prompts, answers).shape == (2, 2, 5)
    with pytest.raises(ValueError, match="answers"):
        policy.answer_logits(prompts, torch.tensor([[0, 5], [2, 3]]))
    with pytest.raises(ValueError, match="answers"):
        policy.answer_logits(prompts, torch.tensor([[0, -1], [2, 3]]))
    with pytest.raises(ValueError, match="prompts"):
        policy.answer_logits(torch.tensor([[1, 2], [3, 5]]), answers)  # 5 is the separator, not a prompt token
    with pytest.raises(ValueError, match="answers"):
        policy.answer_logits(prompts, answers[:1])


def test_modular_task_reward_rejects_impossible_answers():
    task = rl.ModularTask(p=5, length=2)
    prompts = torch.tensor([[1, 2], [3, 4]])
    assert task.reward(prompts, torch.tensor([[1, 1], [0, 2]])).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="answers"):        # digit out of range
        task.reward(prompts, torch.tensor([[1, 7], [0, 2]]))
    with pytest.raises(ValueError, match="answers"):        # wrong answer length
        task.reward(prompts, torch.tensor([[1, 1, 0], [0, 2, 0]]))
    with pytest.raises(TypeError, match="answers"):         # NaN (a float answer)
        task.reward(prompts, torch.tensor([[1.0, float("nan")], [0.0, 2.0]]))
    with pytest.raises(ValueError, match="prompts"):
        task.reward(torch.tensor([[1, 5], [3, 4]]), torch.tensor([[1, 1], [0, 2]]))
    with pytest.raises(ValueError, match="answers"):        # one answer per prompt
        task.reward(prompts, torch.tensor([[1, 1]]))
    with pytest.raises(TypeError, match="eos"):
        rl.ModularTask(p=5, eos="yes")


def test_policy_must_speak_the_task_vocabulary():
    with pytest.raises(ValueError, match="policy"):
        rl.train_grpo(rl.GRUPolicy(7, hidden=8, embed=4), rl.ModularTask(p=5), steps=1)
    with pytest.raises(ValueError, match="device"):
        rl.evaluate_policy(rl.TabularPolicy(8), rl.BanditTask(), device="nonsense")
