"""Entropy control in reinforcement learning for language models (chapter 5).

Everything chapter 5 computes, in one place:

- **GRPO-family losses.** Group-relative advantages (GRPO, Shao et al. (2024);
  Dr. GRPO, Liu et al. (2025)), the clipped surrogate of PPO
  (Schulman et al., 2017) with DAPO's decoupled clip range
  (Yu et al., 2025), the k3 KL estimator, and the sequence/token aggregations of
  TRL's ``GRPOConfig.loss_type`` (``"grpo"``, ``"bnpo"``, ``"dr_grpo"``, ``"dapo"``) plus
  Delta-L normalisation.
- **The entropy mechanism** of Cui et al. (2025): to first order a softmax policy's
  entropy changes by minus the covariance between the log-probabilities and the logit
  update, ``Delta H = -Cov_{a~pi}(log pi(a), Delta z_a)``.
- **Interventions**, all options of :func:`train_grpo`: entropy bonus (fixed, or the
  adaptive coefficient of Skywork-OR1), clip-higher, Clip-Cov and KL-Cov, EPO's entropy
  smoothing, STEER's token reweighting, RL-ZVP's advantages for zero-variance prompts,
  DAPO's dynamic sampling, and prompt augmentation (Lu et al., 2026: each problem asked
  under one of several templates, :class:`TemplatedTask`).
- **Toy environments**: a softmax bandit (:class:`BanditTask` with a
  :class:`TabularPolicy`) and a small verifiable sequence task with several correct
  answers per prompt (:class:`ModularTask`) solved by a tiny GRU (:class:`GRUPolicy`),
  warm-started by supervised learning.
- **Measurement**: the unbiased ``pass@k`` estimator of Chen et al. (2021),
  distinct correct answers, and the entropy-performance law ``R = -a exp(H) + b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._validation import (as_array, as_tensor, check_choice, check_fraction, check_int, check_nonnegative,
                          check_positive, is_tensor)
from .plotting import plot_spread, subplots
from .training import History, progress, thread_limit

__all__ = [
    # advantages and losses
    "group_advantages", "zero_variance_groups", "rlzvp_advantages", "k3_kl", "token_entropy",
    "aggregation_weights", "policy_loss",
    # entropy mechanism
    "softmax_entropy", "first_order_entropy_change", "logit_update", "entropy_change",
    "predicted_entropy_change", "token_covariance",
    # interventions
    "clip_cov_mask", "kl_cov_mask", "steer_weights", "epo_phase_weight", "epo_smoothing_penalty",
    "adaptive_entropy_coef",
    # environments, policies, training
    "BanditTask", "ModularTask", "TemplatedTask", "answer_mask", "bandit_entropy_trace", "TabularPolicy",
    "GRUPolicy", "supervised_warm_start",
    "GRPOConfig", "INTERVENTIONS", "Rollouts", "collect_rollouts", "train_grpo", "evaluate_policy",
    # measurement
    "pass_at_k", "fit_entropy_performance", "EntropyPerformanceFit",
    # figures and explorer
    "seed_values", "plot_training_curves", "plot_entropy_prediction", "plot_pass_at_k", "plot_interventions",
    "plot_entropy_performance", "rl_explorer",
]

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "delta_l")
INTERVENTIONS = ("none", "clip_cov", "kl_cov", "epo", "steer", "rl_zvp")


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _like_input(result: torch.Tensor, original):
    """Return numpy when the caller passed numpy/lists, a tensor when it passed a tensor."""
    return result if is_tensor(original) else result.detach().cpu().numpy()


def _check_mask(mask, shape, name="mask") -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.float64)
    mask_t = mask if is_tensor(mask) else torch.as_tensor(as_array(mask, name, dtype=np.float64))
    if tuple(mask_t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask_t.shape)}")
    return mask_t.to(torch.float64)


# ----------------------------------------------------------------------------------------
# advantages
# ----------------------------------------------------------------------------------------
def group_advantages(rewards, group_size: int, scale: str = "group", *, std: str = "unbiased",
                     eps: float = 1e-4):
    r"""Group-relative advantages of GRPO and Dr. GRPO.

    The rewards of ``B = n * G`` answers (``G = group_size`` consecutive answers per prompt)
    are centred by their group mean and, for GRPO, divided by a standard deviation:

    .. math:: A_i = \frac{r_i - \bar r_{\text{group}}}{\sigma + \varepsilon}.

    ``scale="group"`` (GRPO, Shao et al. (2024); TRL's default) uses the
    group's standard deviation, ``scale="batch"`` the whole batch's, and ``scale="none"``
    only centres (Dr. GRPO, Liu et al. (2025), which removes the division
    because it up-weights prompts that are almost always right or wrong).

    The standard deviation convention matters for small groups: ``std="unbiased"``
    (Bessel's ``1/(G-1)``, ``torch.std``'s default and TRL's) turns rewards ``[1, 0, 0, 0]``
    into ``[1.5, -0.5, -0.5, -0.5]``; ``std="population"`` (``1/G``) gives
    ``[1.732, -0.577, -0.577, -0.577]``. A group whose rewards are all equal gets exactly
    zero advantage (it carries no learning signal).

    Parameters
    ----------
    rewards : array-like or torch.Tensor, shape (B,)
        Rewards, grouped consecutively.
    group_size : int
        ``G``; must divide ``B``.
    scale : {"group", "batch", "none"}
        Which standard deviation divides the centred rewards.
    std : {"unbiased", "population"}
        Bessel-corrected or population standard deviation.
    eps : float
        Added to the standard deviation (TRL uses ``1e-4``).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (B,)
        Same kind as ``rewards``.
    """
    r = as_tensor(rewards, "rewards", ndim=1)
    group_size = check_int(group_size, "group_size", minimum=1)
    check_choice(scale, "scale", ("group", "batch", "none"))
    check_choice(std, "std", ("unbiased", "population"))
    eps = check_nonnegative(eps, "eps")
    if r.shape[0] == 0 or r.shape[0] % group_size:
        raise ValueError(f"rewards must have a positive multiple of group_size={group_size} entries, "
                         f"got {r.shape[0]}")
    if std == "unbiased" and scale != "none" and (group_size if scale == "group" else r.shape[0]) < 2:
        raise ValueError("std='unbiased' needs at least two rewards per group; use std='population'")
    grouped = r.reshape(-1, group_size)
    constant = (grouped.max(dim=1).values == grouped.min(dim=1).values)[:, None]
    centred = torch.where(constant, torch.zeros_like(grouped), grouped - grouped.mean(dim=1, keepdim=True))
    correction = 1 if std == "unbiased" else 0
    if scale == "group":
        sigma = grouped.std(dim=1, keepdim=True, correction=correction)
        centred = centred / (sigma + eps)
    elif scale == "batch":
        centred = centred / (r.std(correction=correction) + eps)
    return _like_input(centred.reshape(-1), rewards)


def zero_variance_groups(rewards, group_size: int):
    """Which groups have identical rewards (all right or all wrong): no GRPO signal.

    DAPO's dynamic sampling (Yu et al., 2025) drops these groups and samples more
    prompts; RL-ZVP (:func:`rlzvp_advantages`) gives them an entropy-shaped advantage.

    Returns a boolean array (or tensor) of shape ``(B / group_size,)``.
    """
    r = as_tensor(rewards, "rewards", ndim=1)
    group_size = check_int(group_size, "group_size", minimum=1)
    if r.shape[0] == 0 or r.shape[0] % group_size:
        raise ValueError(f"rewards must have a positive multiple of group_size={group_size} entries, "
                         f"got {r.shape[0]}")
    grouped = r.reshape(-1, group_size)
    return _like_input(grouped.max(dim=1).values == grouped.min(dim=1).values, rewards)


def rlzvp_advantages(rewards, entropy, group_size: int, mask=None, *, success: float, alpha: float = 0.1):
    r"""Token advantages that let zero-variance prompts teach (RL-ZVP).

    GRPO gives a group whose answers are all right (or all wrong) zero advantage. RL-ZVP
    (Le et al., 2025, RL-ZVP) keeps their sign and shapes the magnitude with the
    (detached) token entropy ``H_it``:

    .. math::
        A_{it} = \alpha H_{it} \ \text{(all correct)}, \qquad
        A_{it} = -\alpha\,(\max_k H_{ik} - H_{it}) \ \text{(all wrong)},

    so confident tokens of a correct answer are reinforced less than uncertain ones, and in
    a wrong answer the confident tokens are penalised most. Groups with reward variance get
    the usual GRPO advantage (group std, unbiased), broadcast over their tokens.

    Parameters
    ----------
    rewards : array-like or tensor, shape (B,)
    entropy : array-like or tensor, shape (B, T)
        Token entropies (detached inside).
    group_size : int
    mask : array-like or tensor, shape (B, T), optional
    success : float
        The reward that means "correct" (1 for a 0/1 verifier): a constant group with
        rewards ``>= success`` is all correct, any other constant group all wrong. It must be
        given: taking the batch's maximum reward instead would call an all-wrong batch
        "all correct".
    alpha : float
        Scale of the zero-variance advantages.

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (B, T)
    """
    r = as_tensor(rewards, "rewards", ndim=1)
    h = as_tensor(entropy, "entropy", ndim=2).detach().to(torch.float64)
    alpha = check_nonnegative(alpha, "alpha")
    if h.shape[0] != r.shape[0]:
        raise ValueError(f"entropy must have one row per reward ({r.shape[0]}), got {h.shape[0]}")
    m = _check_mask(mask, h.shape)
    adv = torch.as_tensor(group_advantages(r.detach(), group_size, "group"), dtype=torch.float64)
    out = adv[:, None].expand_as(h).clone()
    zero = torch.as_tensor(zero_variance_groups(r.detach(), group_size)).repeat_interleave(group_size)
    correct = r.detach() >= _check_real_coef(success, "success")
    h_max = torch.where(m > 0, h, torch.full_like(h, -math.inf)).max(dim=1, keepdim=True).values
    h_max = torch.where(torch.isfinite(h_max), h_max, torch.zeros_like(h_max))
    pos = alpha * h
    neg = -alpha * (h_max - h)
    zvp = torch.where(correct[:, None], pos, neg)
    out = torch.where(zero[:, None], zvp, out) * m
    return _like_input(out, rewards)


# ----------------------------------------------------------------------------------------
# per-token quantities and the loss
# ----------------------------------------------------------------------------------------
def k3_kl(logp, ref_logp):
    r"""The k3 estimator of the KL divergence per token (GRPO's KL penalty).

    .. math:: k_3 = \frac{\pi_{\text{ref}}}{\pi_\theta} - \log\frac{\pi_{\text{ref}}}{\pi_\theta} - 1
              \;\ge 0,

    evaluated at tokens sampled from the policy (Shao et al. (2024), after J. Schulman's
    note on KL approximations). Its expected *value* under ``pi_theta`` is
    ``KL(pi_theta || pi_ref)``, the divergence RLHF calls the reverse KL. Its expected
    *gradient* with the sampling held fixed, as in a loss, is the gradient of the other
    direction, ``KL(pi_ref || pi_theta)`` (the forward KL). Multiplying it by the
    importance ratio (TRL's ``use_bias_correction_kl=True``, DeepSeek-V3.2) makes the
    expected gradient that of the reverse KL ``KL(pi_theta || pi_ref)``; see
    :func:`policy_loss`.

    Parameters
    ----------
    logp, ref_logp : tensor or array-like, same shape
        Log-probabilities of the sampled tokens under the policy and the reference.

    References
    ----------
    shao2024deepseekmath
    """
    lp = as_tensor(logp, "logp")
    rp = as_tensor(ref_logp, "ref_logp")
    if lp.shape != rp.shape:
        raise ValueError(f"ref_logp must have logp's shape {tuple(lp.shape)}, got {tuple(rp.shape)}")
    d = rp - lp
    return _like_input(torch.exp(d) - d - 1, logp)


def token_entropy(logits):
    r"""Entropy of the softmax over the last axis, ``H = -sum_v p_v log p_v`` (differentiable)."""
    z = as_tensor(logits, "logits")
    if z.ndim < 1:
        raise ValueError("logits must have at least one dimension")
    logp = F.log_softmax(z, dim=-1)
    return _like_input(-(logp.exp() * logp).sum(-1), logits)


def aggregation_weights(mask, loss_type: str = "dapo", *, max_completion_length: int | None = None,
                        alpha: float = 1.0, num_items_in_batch: float | None = None):
    r"""Per-sequence weights ``c_i`` of a GRPO-family loss, ``loss = sum_i c_i sum_t l_it``.

    With ``B`` sequences of lengths ``L_i`` (the row sums of ``mask``) and ``M`` the
    maximal completion length:

    - ``"grpo"``: ``c_i = 1 / (B L_i)``, a per-sequence mean, then the mean over sequences
      (Shao et al., 2024); a token of a long answer weighs less than one of a short answer.
    - ``"bnpo"``, ``"dapo"`` and ``"cispo"``: ``c_i = 1 / sum_j L_j``, the token-level mean
      of DAPO (Yu et al., 2025). TRL's ``"dapo"`` (its default loss type) and ``"cispo"``
      divide by ``num_items_in_batch``, the token count of the whole generation batch;
      with one process and no gradient accumulation that is ``sum_j L_j`` (the default here).
    - ``"dr_grpo"``: ``c_i = 1 / (B M)``, a constant (Liu et al., 2025).
    - ``"delta_l"`` (not a TRL loss type; this package only):
      ``c_i = (1/M) L_i^{-alpha} / sum_j L_j^{-alpha}``, the minimum-variance unbiased
      weighting of Delta-L normalisation (He et al., 2025, Delta-L); the weights sum to
      ``1/M`` and ``alpha = 0`` recovers Dr. GRPO.

    The first four names and formulas are those of TRL's ``GRPOConfig.loss_type``.

    Returns
    -------
    torch.Tensor, shape (B,)

    Examples
    --------
    >>> mask = torch.tensor([[1., 1., 0., 0.], [1., 1., 1., 1.]])
    >>> aggregation_weights(mask, "grpo").tolist()
    [0.25, 0.125]
    >>> aggregation_weights(mask, "dapo").tolist()
    [0.16666666666666666, 0.16666666666666666]
    """
    m = _check_mask(mask, mask.shape if is_tensor(mask) else np.shape(mask))
    if m.ndim != 2:
        raise ValueError(f"mask must have 2 dimensions (sequences, tokens), got shape {tuple(m.shape)}")
    check_choice(loss_type, "loss_type", LOSS_TYPES)
    alpha = check_nonnegative(alpha, "alpha")
    B, T = m.shape
    M = T if max_completion_length is None else check_int(max_completion_length, "max_completion_length",
                                                          minimum=1)
    lengths = m.sum(dim=1)                                                   # (B,)
    if loss_type == "grpo":
        return 1.0 / (B * lengths.clamp(min=1.0))
    if loss_type in ("bnpo", "dapo", "cispo"):
        total = lengths.sum().clamp(min=1.0)
        if loss_type != "bnpo" and num_items_in_batch is not None:
            total = torch.tensor(check_positive(num_items_in_batch, "num_items_in_batch"), dtype=m.dtype)
        return torch.ones(B, dtype=m.dtype, device=m.device) / total
    if loss_type == "dr_grpo":
        return torch.full((B,), 1.0 / (B * M), dtype=m.dtype, device=m.device)
    w = lengths.clamp(min=1.0) ** (-alpha)
    return w / (M * w.sum())


def _check_loss_inputs(logp, old_logp, advantages, mask, ref_logp, token_weights, extra_token_loss,
                       entropy, *, loss_type, epsilon, epsilon_high, importance_sampling_level, beta,
                       entropy_coef):
    """Validate :func:`policy_loss`'s arguments; return them as tensors of one dtype."""
    lp = as_tensor(logp, "logp", ndim=2)
    olp = as_tensor(old_logp, "old_logp", ndim=2).detach()
    if olp.shape != lp.shape:
        raise ValueError(f"old_logp must have logp's shape {tuple(lp.shape)}, got {tuple(olp.shape)}")
    adv = as_tensor(advantages, "advantages", ndim=(1, 2)).detach()
    if adv.ndim == 1:
        if adv.shape[0] != lp.shape[0]:
            raise ValueError(f"advantages must have {lp.shape[0]} entries, got {adv.shape[0]}")
        adv = adv[:, None]
    elif adv.shape != lp.shape:
        raise ValueError(f"advantages must have shape (B,) or {tuple(lp.shape)}, got {tuple(adv.shape)}")
    check_choice(loss_type, "loss_type", LOSS_TYPES)
    check_choice(importance_sampling_level, "importance_sampling_level", ("token", "sequence"))
    check_nonnegative(epsilon, "epsilon")
    if epsilon_high is not None:
        check_nonnegative(epsilon_high, "epsilon_high")
    check_nonnegative(beta, "beta")
    _check_real_coef(entropy_coef, "entropy_coef")
    dtype, dev = lp.dtype, lp.device
    m = _check_mask(mask, lp.shape).to(dtype=dtype, device=dev)
    ref = None
    if ref_logp is not None:
        ref = as_tensor(ref_logp, "ref_logp", ndim=2).detach().to(dtype)
        if ref.shape != lp.shape:
            raise ValueError(f"ref_logp must have logp's shape {tuple(lp.shape)}, got {tuple(ref.shape)}")
    elif beta > 0:
        raise ValueError("beta > 0 needs ref_logp")
    w = None if token_weights is None else \
        _check_mask(token_weights, lp.shape, "token_weights").to(dtype=dtype, device=dev).detach()
    if extra_token_loss is not None and (not is_tensor(extra_token_loss) or extra_token_loss.shape != lp.shape):
        raise ValueError(f"extra_token_loss must be a tensor of shape {tuple(lp.shape)}")
    ent = None
    if entropy is not None:
        ent = as_tensor(entropy, "entropy", ndim=2).to(dtype)
        if ent.shape != lp.shape:
            raise ValueError(f"entropy must have shape {tuple(lp.shape)}, got {tuple(ent.shape)}")
    elif entropy_coef != 0:
        raise ValueError("entropy_coef != 0 needs entropy")
    return lp, olp, adv.to(dtype), m, ref, w, ent


def _masked_mean(x, mask):
    """Mean of ``x`` over the valid tokens; a (B, 1) tensor is one value per sequence (as TRL logs it)."""
    if x.shape[-1] == 1 and mask.shape[-1] != 1:
        return float(x.float().mean())
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def policy_loss(logp, old_logp, advantages, mask=None, *, loss_type: str = "dapo",
                epsilon: float = 0.2, epsilon_high: float | None = None,
                importance_sampling_level: str = "token", clip: bool = True,
                beta: float = 0.0, ref_logp=None, use_bias_correction_kl: bool = True,
                max_completion_length: int | None = None, alpha: float = 1.0,
                num_items_in_batch: float | None = None, token_weights=None, extra_token_loss=None,
                entropy=None, entropy_coef: float = 0.0):
    r"""The clipped GRPO-family policy loss and its diagnostics (TRL's ``GRPOTrainer._compute_loss``).

    Per token, with the importance ratio ``rho = exp(logp - old_logp)`` (Schulman et al., 2017),

    .. math::
        l_{it} = -\min\bigl(\rho_{it} A_{it},\ \mathrm{clip}(\rho_{it}, 1-\epsilon,
        1+\epsilon_{\text{high}}) A_{it}\bigr) + \beta\, k_3(\pi_{\text{ref}}, \pi_\theta),

    so for ``A > 0`` the gradient vanishes exactly when ``rho > 1 + epsilon_high`` and for
    ``A < 0`` exactly when ``rho < 1 - epsilon``. ``epsilon_high > epsilon`` is DAPO's
    clip-higher (Yu et al. (2025), ``0.28``). The tokens are aggregated with the weights of
    :func:`aggregation_weights`: ``loss = sum_i c_i sum_t l_it``.

    Variants, with TRL's names:

    - ``importance_sampling_level="sequence"`` (GSPO, Zheng et al., 2025): one ratio per
      answer, ``rho_i = exp(mean_t (logp_it - old_logp_it))``, clipped as above.
    - ``loss_type="cispo"`` (MiniMax-M1, 2025): the ratio is clipped and *detached* and
      multiplies the log-probability, ``l_it = -sg(min(rho_it, epsilon_high)) A_it log pi_it``,
      so no token loses its gradient; aggregated as ``"dapo"``. ``epsilon_high`` is here the
      cap of the ratio itself (TRL's convention; ScaleRL recommends 5).
    - ``clip=False``: the unclipped surrogate ``-rho A`` (KL-Cov's, as in Cui et al.'s code).

    Conventions, where they could differ from TRL's: ``use_bias_correction_kl=True`` (TRL's
    default) multiplies the k3 term by the (differentiable) ratio, which makes its expected
    gradient that of ``KL(pi_theta || pi_ref)``; ``False`` keeps plain k3, whose expected
    gradient is that of ``KL(pi_ref || pi_theta)`` (:func:`k3_kl`). The entropy bonus is, as
    in TRL, ``- entropy_coef`` times the *token mean* of the entropy, whatever the loss type.
    Options of this package only: ``token_weights`` (detached, multiplies the policy term
    ``l_it`` before the KL is added: STEER, or 0 to stop a token's gradient as Clip-Cov
    does), ``extra_token_loss`` (added to ``l_it``: KL-Cov, EPO smoothing), ``delta_l``.

    Parameters
    ----------
    logp, old_logp : tensor, shape (B, T)
        Log-probabilities of the sampled tokens under the current and the sampling policy.
    advantages : tensor, shape (B,) or (B, T)
    mask : tensor, shape (B, T), optional
        1 for completion tokens, 0 for padding.
    loss_type : {"grpo", "bnpo", "dr_grpo", "dapo", "cispo", "delta_l"}
    epsilon, epsilon_high : float
        Clip range (TRL's names); ``epsilon_high=None`` means ``epsilon``.
    importance_sampling_level : {"token", "sequence"}
    clip : bool
        ``False`` drops the clip (KL-Cov's surrogate); not with ``"cispo"``.
    beta : float
        Weight of the k3 KL penalty; needs ``ref_logp``.
    use_bias_correction_kl : bool
        Multiply the k3 term by the importance ratio (TRL's default).
    max_completion_length, alpha, num_items_in_batch
        See :func:`aggregation_weights`.
    entropy : tensor, shape (B, T), optional
        Token entropies (differentiable) for the bonus and the diagnostics.
    entropy_coef : float
        Entropy bonus coefficient.

    Returns
    -------
    loss : torch.Tensor (scalar)
    info : dict
        ``clip_low``, ``clip_high`` (fractions of tokens, or of sequences at sequence level,
        where the clip stops the gradient: TRL's ``clip_ratio/low_mean`` and
        ``clip_ratio/high_mean``), ``clip_ratio`` (their sum; for ``"cispo"`` TRL's
        ``cispo_clip_ratio``), ``kl`` (mean of the KL term), ``entropy`` (mean token
        entropy, when given), ``ratio`` (mean ratio).

    References
    ----------
    schulman2017proximal, shao2024deepseekmath, yu2025dapo, liu2025understanding,
    zheng2025gspo, minimax2025m1

    Examples
    --------
    >>> logp = torch.log(torch.tensor([[1.3, 0.9]], dtype=torch.float64)).requires_grad_()
    >>> loss, info = policy_loss(logp, torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1.0]))
    >>> round(float(loss), 4), info["clip_high"]
    (-1.05, 0.5)
    """
    lp, olp, adv, m, ref, w, ent = _check_loss_inputs(
        logp, old_logp, advantages, mask, ref_logp, token_weights, extra_token_loss, entropy,
        loss_type=loss_type, epsilon=epsilon, epsilon_high=epsilon_high,
        importance_sampling_level=importance_sampling_level, beta=beta, entropy_coef=entropy_coef)
    eps_low = float(epsilon)
    eps_high = eps_low if epsilon_high is None else float(epsilon_high)
    c = aggregation_weights(m, loss_type, max_completion_length=max_completion_length, alpha=alpha,
                            num_items_in_batch=num_items_in_batch)[:, None]   # (B, 1)

    log_ratio = lp - olp                                                     # (B, T)
    if importance_sampling_level == "sequence":                              # GSPO: one ratio per answer
        log_ratio = (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)  # (B, 1)
    ratio = torch.exp(log_ratio)                                             # (B, T) or (B, 1)

    if loss_type == "cispo":
        per_token = -torch.clamp(ratio, max=eps_high).detach() * adv * lp    # (B, T)
    elif clip:
        clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
        per_token = -torch.min(ratio * adv, clipped * adv)
    else:
        per_token = -ratio * adv
    if w is not None:
        per_token = per_token * w
    if extra_token_loss is not None:
        per_token = per_token + extra_token_loss
    kl = None
    if ref is not None:
        kl = k3_kl(lp, ref)
        if use_bias_correction_kl:
            kl = kl * ratio
        per_token = per_token + beta * kl
    loss = (c * per_token * m).sum()
    if ent is not None and entropy_coef != 0:
        loss = loss - float(entropy_coef) * (ent * m).sum() / m.sum().clamp(min=1.0)

    with torch.no_grad():
        if loss_type == "cispo":
            low = torch.zeros_like(ratio * adv, dtype=torch.bool)
            high = (ratio > eps_high) & (adv > 0)
        else:
            low = (ratio < 1 - eps_low) & (adv < 0)
            high = (ratio > 1 + eps_high) & (adv > 0)
        info = {"clip_low": _masked_mean(low.to(lp.dtype), m), "clip_high": _masked_mean(high.to(lp.dtype), m),
                "ratio": _masked_mean(ratio, m)}
        info["clip_ratio"] = info["clip_low"] + info["clip_high"]
        info["kl"] = _masked_mean(kl, m) if kl is not None else 0.0
        if ent is not None:
            info["entropy"] = _masked_mean(ent, m)
    return loss, info


def _check_real_coef(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)

# ----------------------------------------------------------------------------------------
# the entropy mechanism
# ----------------------------------------------------------------------------------------
def softmax_entropy(logits):
    r"""Entropy ``H(z) = -sum_a pi_a log pi_a`` of ``pi = softmax(z)`` (last axis).

    Accepts numpy arrays or tensors; returns the same kind.
    """
    return token_entropy(logits)


def first_order_entropy_change(logits, delta_logits):
    r"""First-order change of a softmax policy's entropy under a logit update.

    For ``pi = softmax(z)`` and a small change ``Delta z`` (Cui et al., 2025),

    .. math:: \Delta H \approx -\mathrm{Cov}_{a\sim\pi}\bigl(\log\pi(a),\ \Delta z_a\bigr)
              = -\sum_a \pi_a (\log\pi_a - \overline{\log\pi})\,\Delta z_a .

    Entropy falls when the update raises the logits of actions that are already likely.
    Works on the last axis (batched states allowed).
    """
    z = as_tensor(logits, "logits", dtype=torch.float64).to(torch.float64)
    dz = as_tensor(delta_logits, "delta_logits", dtype=torch.float64).to(torch.float64)
    if z.shape != dz.shape:
        raise ValueError(f"delta_logits must have logits' shape {tuple(z.shape)}, got {tuple(dz.shape)}")
    logp = F.log_softmax(z, dim=-1)
    p = logp.exp()
    centred = logp - (p * logp).sum(-1, keepdim=True)
    return _like_input(-(p * centred * dz).sum(-1), logits)


def logit_update(logits, advantages, lr: float, update: str = "vanilla"):
    r"""The expected policy-gradient step on the logits of a softmax policy.

    The objective is ``J = E_{a~pi}[A(a)]`` with ``A`` held fixed. Its gradient with respect
    to the logits is ``pi_a (A_a - E_pi A)``, so

    - ``update="vanilla"``: ``Delta z_a = lr * pi_a (A_a - E_pi A)``;
    - ``update="natural"`` (natural policy gradient, tabular softmax):
      ``Delta z_a = lr * (A_a - E_pi A)``.

    (Cui et al. (2025), with advantages centred under the policy so that the
    expected update is exact.)
    """
    z = as_tensor(logits, "logits").to(torch.float64)
    A = as_tensor(advantages, "advantages").to(torch.float64)
    if z.shape != A.shape:
        raise ValueError(f"advantages must have logits' shape {tuple(z.shape)}, got {tuple(A.shape)}")
    lr = check_positive(lr, "lr")
    check_choice(update, "update", ("vanilla", "natural"))
    p = torch.softmax(z, dim=-1)
    centred = A - (p * A).sum(-1, keepdim=True)
    step = p * centred if update == "vanilla" else centred
    return _like_input(lr * step, logits)


def entropy_change(logits, advantages, lr: float, update: str = "vanilla"):
    """Exact entropy change ``H(z + Delta z) - H(z)`` of one :func:`logit_update` step."""
    z = as_tensor(logits, "logits").to(torch.float64)
    dz = torch.as_tensor(logit_update(z, advantages if is_tensor(advantages) else
                                      torch.as_tensor(as_array(advantages, "advantages")), lr, update))
    out = torch.as_tensor(softmax_entropy(z + dz)) - torch.as_tensor(softmax_entropy(z))
    return _like_input(out, logits)


def predicted_entropy_change(logits, advantages, lr: float, update: str = "vanilla"):
    r"""The covariance prediction of the entropy change of one policy-gradient step.

    Cui et al.'s entropy mechanism (Cui et al., 2025): for a softmax policy

    .. math::
        \Delta H \approx -\eta\,\mathrm{Cov}_{a\sim\pi}\bigl(\log\pi(a),\ \pi(a) A(a)\bigr)
        \ \text{(vanilla)}, \qquad
        \Delta H \approx -\eta\,\mathrm{Cov}_{a\sim\pi}\bigl(\log\pi(a),\ A(a)\bigr)
        \ \text{(natural)},

    with ``A`` centred under ``pi``. An action that is both likely and advantageous lowers
    the entropy: exploitation of a confident policy is what collapses it. The error of the
    prediction relative to :func:`entropy_change` is ``O(lr)``.

    Parameters
    ----------
    logits : array-like or tensor, shape (..., K)
    advantages : same shape as ``logits``
        ``A(a)`` for every action.
    lr : float
        Step size ``eta``.
    update : {"vanilla", "natural"}
    """
    dz = logit_update(logits, advantages, lr, update)
    return first_order_entropy_change(logits, dz)


def token_covariance(logp, advantages, mask=None):
    r"""Token-level covariance terms of Clip-Cov and KL-Cov (Cui et al., 2025).

    .. math:: \mathrm{cov}_t = (A_t - \bar A)(\log\pi_t - \overline{\log\pi}),

    means over the valid tokens of the batch. Tokens with a large positive ``cov_t`` (likely
    and rewarded, or unlikely and punished) are those that drive the entropy down.

    Parameters
    ----------
    logp : tensor or array-like, shape (B, T)
    advantages : shape (B,) or (B, T)
    mask : shape (B, T), optional

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (B, T) (zero on padding).
    """
    lp = as_tensor(logp, "logp", ndim=2).detach().to(torch.float64)
    A = as_tensor(advantages, "advantages", ndim=(1, 2)).detach().to(torch.float64)
    if A.ndim == 1:
        if A.shape[0] != lp.shape[0]:
            raise ValueError(f"advantages must have {lp.shape[0]} entries, got {A.shape[0]}")
        A = A[:, None].expand_as(lp)
    elif A.shape != lp.shape:
        raise ValueError(f"advantages must have shape (B,) or {tuple(lp.shape)}, got {tuple(A.shape)}")
    m = _check_mask(mask, lp.shape)
    n = m.sum().clamp(min=1.0)
    a_bar = (A * m).sum() / n
    l_bar = (lp * m).sum() / n
    return _like_input((A - a_bar) * (lp - l_bar) * m, logp)


# ----------------------------------------------------------------------------------------
# interventions
# ----------------------------------------------------------------------------------------
def clip_cov_mask(cov, mask=None, *, ratio: float = 2e-4, bounds=(1.0, 5.0), clipped=None, generator=None):
    r"""Tokens whose gradient Clip-Cov stops, selected as in Cui et al.'s released code.

    Among the valid tokens that the PPO clip has *not* already clipped and whose covariance
    lies in ``bounds[0] < cov_t < bounds[1]``, pick ``max(1, int(ratio * n_valid))`` of them
    (at most all candidates) uniformly at random; the loss multiplies their clipped
    surrogate by 0 (verl's ``compute_policy_loss_clip_cov``, ``clip_cov_ratio=2e-4``,
    ``clip_cov_lb=1``, ``clip_cov_ub=5``). The reference recomputes ``cov`` from the current
    log-probabilities at every update, and so does :func:`train_grpo`.

    Parameters
    ----------
    cov : tensor, shape (B, T)
        :func:`token_covariance` of the current log-probabilities.
    mask : shape (B, T), optional
    ratio : float
        Fraction of the valid tokens to detach (at least one when a candidate exists).
    bounds : (float, float)
        The covariance band of the candidates.
    clipped : bool tensor, shape (B, T), optional
        Tokens the PPO clip already clipped (excluded, as in the reference).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor of bool, shape (B, T) (True = detach).

    References
    ----------
    cui2025entropy
    """
    c = as_tensor(cov, "cov", ndim=2).detach()
    m = _check_mask(mask, c.shape) > 0
    ratio = check_fraction(ratio, "ratio")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ValueError(f"bounds must be increasing, got {bounds}")
    ok = m if clipped is None else m & ~_check_mask(clipped, c.shape, "clipped").bool()
    candidates = torch.nonzero(((c > lo) & (c < hi) & ok).reshape(-1)).reshape(-1)
    k = min(max(1, int(ratio * int(m.sum()))), candidates.numel()) if ratio > 0 else 0
    out = torch.zeros(c.numel(), dtype=torch.bool)
    if k > 0:
        pick = candidates[torch.randperm(candidates.numel(), generator=generator)[:k]]
        out[pick] = True
    return out.reshape(c.shape)


def kl_cov_mask(cov, mask=None, *, ratio: float = 2e-3):
    r"""Tokens that KL-Cov penalises: the top ``max(1, int(ratio * n_valid))`` valid tokens by ``cov_t``.

    As in Cui et al.'s released code (verl's ``compute_policy_loss_kl_cov``, where
    ``k_percent = 100 * ratio = 0.2``), the count is rounded down but is at least one, so a
    small batch still has one penalised token. KL-Cov's loss is the *unclipped* surrogate
    ``-A rho`` on every token plus ``kl_coef * |log pi_t - log pi_old,t|`` on these tokens
    (:func:`train_grpo` with ``intervention="kl_cov"``).

    Returns
    -------
    torch.Tensor of bool, shape (B, T).

    References
    ----------
    cui2025entropy

    Examples
    --------
    >>> kl_cov_mask(torch.tensor([[0.5, -1.0], [2.0, 0.1]]), ratio=0.2).tolist()
    [[False, False], [True, False]]
    """
    c = as_tensor(cov, "cov", ndim=2).detach()
    m = _check_mask(mask, c.shape) > 0
    ratio = check_fraction(ratio, "ratio")
    n = int(m.sum())
    k = min(max(1, int(ratio * n)), n) if ratio > 0 else 0
    out = torch.zeros(c.numel(), dtype=torch.bool)
    if k > 0:
        scores = torch.where(m, c, torch.full_like(c, -math.inf)).reshape(-1)
        out[torch.topk(scores, k).indices] = True
    return out.reshape(c.shape)


def steer_weights(advantages, old_logp, entropy, mask=None, *, w_min: float = 0.5):
    r"""STEER's per-token loss weights (Hao et al., 2025, STEER).

    STEER estimates each token's contribution to the entropy change,

    .. math:: \Omega_t = \frac{A_t}{\pi_{\text{old},t}}\, p_t (1 - p_t)(\log p_t + H_t),

    with ``p_t = pi_old,t`` the probability of the sampled token and ``H_t`` the token
    entropy, and damps the tokens that would change the entropy most:

    .. math:: \lambda_t = \mathrm{clamp}\bigl(e^{-k|\Omega_t|},\, w_{\min},\, 1\bigr), \qquad
              k = \frac{-\ln w_{\min}}{\max(\max_t |\Omega_t|,\ 0.02)} .

    Returns a detached tensor of shape (B, T) with values in ``[w_min, 1]``.
    """
    olp = as_tensor(old_logp, "old_logp", ndim=2).detach().to(torch.float64)
    H = as_tensor(entropy, "entropy", ndim=2).detach().to(torch.float64)
    A = as_tensor(advantages, "advantages", ndim=(1, 2)).detach().to(torch.float64)
    A = A[:, None].expand_as(olp) if A.ndim == 1 else A
    if A.shape != olp.shape or H.shape != olp.shape:
        raise ValueError(f"advantages, old_logp and entropy must share shape {tuple(olp.shape)}")
    w_min = check_fraction(w_min, "w_min", inclusive=False)
    m = _check_mask(mask, olp.shape)
    p = olp.exp()
    omega = (A / p) * p * (1 - p) * (olp + H) * m
    k = -math.log(w_min) / max(float(omega.abs().max()), 0.02)
    return torch.clamp(torch.exp(-k * omega.abs()), w_min, 1.0)


def epo_phase_weight(progress_fraction: float) -> float:
    r"""EPO's phase weight ``beta_k`` of the entropy smoothing term (Xu et al., 2025, EPO).

    With ``p`` the progress *within the current half* of training (0 to 1),

    .. math:: \beta = 1 - 0.2\,(1 - e^{-2p}) \ \text{(first half)}, \qquad
              \beta = 0.8\, e^{-3p} \ \text{(second half)},

    a strong constraint early that is relaxed late. (We read ``p`` as the progress inside
    each half, which makes the schedule nearly continuous at the midpoint; this reading is
    ours.) ``progress_fraction`` is the progress of the whole run in ``[0, 1]``.
    """
    f = check_fraction(progress_fraction, "progress_fraction")
    if f < 0.5:
        p = 2 * f
        return 1 - 0.2 * (1 - math.exp(-2 * p))
    p = 2 * (f - 0.5)
    return 0.8 * math.exp(-3 * p)


def epo_smoothing_penalty(entropy, reference: float, mask=None, *, kappa=(0.8, 1.2)):
    r"""EPO's entropy smoothing penalty per token (Xu et al., 2025, EPO).

    Keeps each token's entropy inside ``[kappa_l, kappa_r] x H_hist`` with ``H_hist`` the
    historical mean entropy, with a differentiable hinge:

    .. math:: s_t = \mathrm{relu}(\kappa_l H_{\text{hist}} - H_t) + \mathrm{relu}(H_t - \kappa_r H_{\text{hist}}).

    Returns a tensor of ``entropy``'s shape (zero on padding), differentiable in ``entropy``.
    """
    H = as_tensor(entropy, "entropy", ndim=2)
    ref = check_nonnegative(reference, "reference")
    kl, kr = float(kappa[0]), float(kappa[1])
    if not 0 <= kl <= kr:
        raise ValueError(f"kappa must satisfy 0 <= kappa_l <= kappa_r, got {kappa}")
    m = _check_mask(mask, H.shape).to(H.dtype)
    return (F.relu(kl * ref - H) + F.relu(H - kr * ref)) * m


def adaptive_entropy_coef(coef: float, entropy: float, target: float, *, delta: float = 5e-3,
                          c_min: float = 0.0, c_max: float = 0.05) -> float:
    r"""One update of Skywork-OR1's adaptive entropy coefficient (He et al., 2025, Skywork-OR1).

    .. math:: c \leftarrow \mathrm{clip}\bigl(c + \delta\,\mathrm{sign}(H_{\text{target}} - H),\ c_{\min},\ c_{\max}\bigr);

    :func:`train_grpo` applies the bonus only while ``H < H_target``.
    """
    coef = check_nonnegative(coef, "coef")
    entropy = check_nonnegative(entropy, "entropy")
    target = check_nonnegative(target, "target")
    delta = check_nonnegative(delta, "delta")
    c_min, c_max = check_nonnegative(c_min, "c_min"), check_nonnegative(c_max, "c_max")
    if c_min > c_max:
        raise ValueError(f"c_min must be <= c_max, got {c_min} > {c_max}")
    return float(np.clip(coef + delta * np.sign(target - entropy), c_min, c_max))


# ----------------------------------------------------------------------------------------
# environments and policies
# ----------------------------------------------------------------------------------------
class BanditTask:
    r"""A ``K``-armed bandit seen as a one-prompt, one-token verifiable task.

    The answer is one token ``a in {0, ..., K-1}``, its reward ``rewards[a]``. With several
    arms of equal top reward it has "several correct answers", like a reasoning prompt.
    """

    def __init__(self, rewards=(1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)):
        r = as_array(rewards, "rewards", ndim=1, min_rows=2)
        self.rewards = torch.as_tensor(r, dtype=torch.float32)
        self.vocab_size = len(r)
        self.answer_length = 1
        self.num_prompts = 1
        self.eos = None
        self.success = float(r.max())  # the reward that counts as correct

    def all_prompts(self) -> torch.Tensor:
        return torch.zeros(1, 1, dtype=torch.long)

    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        return torch.zeros(n, 1, dtype=torch.long)

    def reward(self, prompts, answers) -> torch.Tensor:
        return self.rewards.to(answers.device)[answers[:, 0]]

    def is_correct(self, prompts, answers) -> torch.Tensor:
        return self.reward(prompts, answers) >= self.rewards.max()


class ModularTask:
    r"""A verifiable sequence task with several correct answers per prompt.

    The prompt is a pair ``(a, b)`` of digits mod ``p``; an answer is ``length`` digits
    ``y_1 ... y_L``, correct (reward 1) when ``y_1 + ... + y_L = target(a, b) (mod p)``,
    so every prompt has ``p^{L-1}`` correct answers out of ``p^L``. ``target="product"``
    uses ``a b mod p`` (a rule a tiny network learns only in part, so prompts differ in
    difficulty), ``target="sum"`` uses ``a + b mod p``.

    With ``eos=True`` answers have variable length: token ``p`` ends the answer (vocabulary
    ``p + 1``), an answer is the 1 to ``length`` digits before its first end token, correct
    when their sum is the target (an empty answer is wrong), and its tokens are the digits
    plus the end token when there is one (:func:`answer_mask`; tokens after it are padding).
    Correct answers then exist at every length, so how a loss weighs long against short
    answers (:func:`aggregation_weights`) changes what the policy learns.
    """

    def __init__(self, p: int = 11, length: int = 2, target: str = "product", eos: bool = False):
        self.p = check_int(p, "p", minimum=2)
        self.answer_length = check_int(length, "length", minimum=1)
        self.target_rule = check_choice(target, "target", ("product", "sum"))
        if not isinstance(eos, bool):
            raise TypeError(f"eos must be a bool, got {type(eos).__name__}")
        self.eos = self.p if eos else None
        self.vocab_size = self.p + 1 if eos else self.p
        self.num_prompts = self.p * self.p
        self.success = 1.0  # the reward that counts as correct

    def all_prompts(self) -> torch.Tensor:
        a = torch.arange(self.p)
        return torch.cartesian_prod(a, a)

    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        return torch.randint(0, self.p, (n, 2), generator=generator)

    def target(self, prompts) -> torch.Tensor:
        a, b = prompts[:, 0], prompts[:, 1]
        return (a * b) % self.p if self.target_rule == "product" else (a + b) % self.p

    def reward(self, prompts, answers) -> torch.Tensor:
        return self.is_correct(prompts, answers).float()

    def digits(self, answers):
        """``(digits, n_digits)``: the answer digits (zero after the end token) and their count."""
        if self.eos is None:
            return answers, torch.full((answers.shape[0],), answers.shape[1], device=answers.device)
        before_end = torch.cumsum(answers == self.eos, dim=1) == 0             # (n, L)
        return answers * before_end, before_end.sum(dim=1)

    def is_correct(self, prompts, answers) -> torch.Tensor:
        digits, n = self.digits(answers)
        return (digits.sum(dim=1) % self.p == self.target(prompts).to(answers.device)) & (n > 0)

    def sample_correct(self, prompts, generator=None) -> torch.Tensor:
        """A uniformly random correct answer for each prompt (for the supervised warm start).

        With ``eos=True`` its number of digits is uniform in ``1..length``.
        """
        n, L = prompts.shape[0], self.answer_length
        if self.eos is None:
            free = torch.randint(0, self.p, (n, L - 1), generator=generator)      # (n, L - 1)
            last = (self.target(prompts) - free.sum(dim=1)) % self.p
            return torch.cat([free, last[:, None]], dim=1)
        free = torch.randint(0, self.p, (n, L), generator=generator)              # (n, L)
        n_digits = torch.randint(1, L + 1, (n,), generator=generator)             # (n,)
        pos = torch.arange(L)[None, :]
        free = torch.where(pos < n_digits[:, None] - 1, free, torch.zeros_like(free))
        last = (self.target(prompts) - free.sum(dim=1)) % self.p
        answers = torch.where(pos == n_digits[:, None] - 1, last[:, None], free)
        return torch.where(pos >= n_digits[:, None], torch.full_like(answers, self.eos), answers)


def answer_mask(task, answers) -> torch.Tensor:
    """1 on an answer's tokens (its digits and its end token), 0 on the padding after it, shape (n, L).

    For tasks without an end token every position counts.
    """
    eos = getattr(task, "eos", None)
    if eos is None:
        return torch.ones(answers.shape, dtype=torch.float32, device=answers.device)
    ended_before = (torch.cumsum(answers == eos, dim=1) - (answers == eos).long()) > 0   # (n, L)
    return (~ended_before).float()


class TemplatedTask:
    r"""Prompt augmentation (Lu et al., 2026): the same problems, each asked under one of several templates.

    Lu et al. ("Prompt augmentation scales up GRPO", 2026) train with several reasoning
    templates mixed in one run: each training question is formatted with a template drawn
    at random, so the rollouts of the same problem are generated from different contexts
    and stay more diverse. The verifier checks the answer to the *problem*, whatever the
    template. In the toy, a template is one token ``t in {0, ..., T-1}`` prepended to the
    problem's prompt, so the policy reads ``(t, x_1, ..., x_P, sep, y_1, ...)``:

    .. math:: \text{input}(x, t) = (t, x), \qquad t \sim \mathcal U\{0, \dots, T-1\},
              \qquad r(\text{input}(x, t), y) = r(x, y).

    The template token is written with the task's digit alphabet (so ``T <= vocab_size``
    and the policy needs no new embedding); being always in first position, the policy can
    tell it from the problem's digits. A template is drawn per prompt, so a GRPO group
    (``group_size`` answers to one prompt) shares its template and its advantages compare
    answers to the same input, as when the data loader formats each question.
    :meth:`all_prompts` (used for evaluation) asks every problem under template 0, the one
    "test-time" format. ``TemplatedTask(task, 1)`` still prepends the token 0; ``train_grpo``
    with ``prompt_templates=1`` does not wrap the task at all.

    Parameters
    ----------
    task : BanditTask or ModularTask
        The underlying verifiable task.
    num_templates : int
        ``T >= 1``, at most ``task.vocab_size``.
    """

    def __init__(self, task, num_templates: int):
        if isinstance(task, TemplatedTask):
            raise TypeError("task is already a TemplatedTask")
        self.task = task
        self.num_templates = check_int(num_templates, "num_templates", minimum=1)
        if self.num_templates > task.vocab_size:
            raise ValueError(f"num_templates must be <= the task's vocab_size {task.vocab_size} "
                             f"(template tokens reuse its alphabet), got {self.num_templates}")
        self.vocab_size = task.vocab_size
        self.answer_length = task.answer_length
        self.num_prompts = task.num_prompts
        self.eos = getattr(task, "eos", None)
        self.success = task.success

    @staticmethod
    def problems(prompts) -> torch.Tensor:
        """The problems behind templated prompts (the template token removed)."""
        return prompts[:, 1:]

    @staticmethod
    def templates(prompts) -> torch.Tensor:
        """The template index of each templated prompt."""
        return prompts[:, 0]

    def format(self, problems, templates) -> torch.Tensor:
        """The policy input ``(t, x)`` for problems ``x`` (n, P) and template indices ``t`` (n,)."""
        t = torch.as_tensor(templates, dtype=torch.long).reshape(-1, 1)
        if t.shape[0] != problems.shape[0]:
            raise ValueError(f"templates must have {problems.shape[0]} entries, got {t.shape[0]}")
        if t.numel() and (t.min() < 0 or t.max() >= self.num_templates):
            raise ValueError(f"templates must lie in [0, {self.num_templates})")
        return torch.cat([t, problems], dim=1)

    def all_prompts(self) -> torch.Tensor:
        p = self.task.all_prompts()
        return self.format(p, torch.zeros(p.shape[0], dtype=torch.long))

    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        p = self.task.sample_prompts(n, generator)
        return self.format(p, torch.randint(0, self.num_templates, (n,), generator=generator))

    def reward(self, prompts, answers) -> torch.Tensor:
        return self.task.reward(self.problems(prompts), answers)

    def is_correct(self, prompts, answers) -> torch.Tensor:
        return self.task.is_correct(self.problems(prompts), answers)

    def sample_correct(self, prompts, generator=None) -> torch.Tensor:
        return self.task.sample_correct(self.problems(prompts), generator)


def _policy_device(policy, device=None) -> torch.device:
    """Move ``policy`` to ``device`` (default: where its parameters already are) and return it."""
    if device is None:
        return next(policy.parameters()).device
    device = torch.device(device)
    policy.to(device)
    return device


def _with_templates(task, num_templates: int):
    """``task`` itself for one template (the plain, unaugmented path), else a :class:`TemplatedTask`."""
    num_templates = check_int(num_templates, "prompt_templates", minimum=1)
    if isinstance(task, TemplatedTask):  # already augmented: keep it, unless the counts disagree
        if num_templates not in (1, task.num_templates):
            raise ValueError(f"prompt_templates={num_templates} but task has {task.num_templates} templates")
        return task
    return task if num_templates == 1 else TemplatedTask(task, num_templates)


class _Policy(nn.Module):
    """Shared sampling and scoring of the autoregressive policies."""

    def answer_logits(self, prompts, answers):  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, prompts, length: int, generator=None, eos: int | None = None) -> torch.Tensor:
        """Sample ``length`` answer tokens per prompt; after an ``eos`` token only ``eos`` follows.

        Sampling draws on the CPU ``generator`` (the same draws on every device).
        """
        n = prompts.shape[0]
        answers = torch.zeros(n, 0, dtype=torch.long, device=prompts.device)
        ended = torch.zeros(n, dtype=torch.bool, device=prompts.device)
        for _ in range(length):
            logits = self.answer_logits(prompts, answers, last_only=True)       # (n, V)
            probs = torch.softmax(logits.float(), dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=generator).to(prompts.device)  # (n, 1)
            if eos is not None:
                nxt = torch.where(ended[:, None], torch.full_like(nxt, eos), nxt)
                ended = ended | (nxt[:, 0] == eos)
            answers = torch.cat([answers, nxt], dim=1)
        return answers

    def score(self, prompts, answers):
        """Log-probabilities of ``answers``' tokens, their entropies and the logits (B, L, V)."""
        logits = self.answer_logits(prompts, answers)
        logp_all = F.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, answers[..., None]).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logp, entropy, logits


class TabularPolicy(_Policy):
    """A softmax policy with one free logit per action (the bandit's policy), ``pi = softmax(z)``."""

    def __init__(self, num_actions: int, init_logits=None):
        super().__init__()
        num_actions = check_int(num_actions, "num_actions", minimum=2)
        init = torch.zeros(num_actions) if init_logits is None else \
            torch.as_tensor(as_array(init_logits, "init_logits", ndim=1), dtype=torch.float32)
        if init.shape[0] != num_actions:
            raise ValueError(f"init_logits must have {num_actions} entries, got {init.shape[0]}")
        self.logits = nn.Parameter(init.clone())

    def answer_logits(self, prompts, answers, last_only: bool = False):
        n = prompts.shape[0]
        if last_only:
            return self.logits.expand(n, -1)
        return self.logits.expand(n, max(answers.shape[1], 1), -1)


class GRUPolicy(_Policy):
    """A tiny shared-parameter autoregressive policy: embedding, one GRU layer, linear head.

    It reads the prompt tokens, a separator, then the answer so far, and outputs logits over
    the ``vocab_size`` answer digits. Every prompt shares every parameter, as in a language
    model, so sharpening one prompt's answers moves all the others.
    """

    def __init__(self, vocab_size: int, hidden: int = 64, embed: int = 32):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
        hidden = check_int(hidden, "hidden", minimum=1)
        embed = check_int(embed, "embed", minimum=1)
        self.sep = self.vocab_size
        self.embed = nn.Embedding(self.vocab_size + 1, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, self.vocab_size)

    def answer_logits(self, prompts, answers, last_only: bool = False):
        n, P = prompts.shape
        sep = torch.full((n, 1), self.sep, dtype=torch.long, device=prompts.device)
        L = answers.shape[1]
        tokens = torch.cat([prompts, sep, answers if last_only else answers[:, :-1]], dim=1)
        hidden, _ = self.gru(self.embed(tokens))
        if last_only:
            return self.head(hidden[:, -1])
        return self.head(hidden[:, P:P + L])


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
def supervised_warm_start(policy, task, *, steps: int = 200, batch_size: int = 128, lr: float = 3e-3,
                          seed: int = 0, prompt_templates: int = 1, device=None) -> list[float]:
    r"""A short supervised phase on random correct answers (the "SFT" before RL).

    Minimises the cross-entropy ``-log pi(y|x)`` of uniformly random correct answers, so the
    policy starts RL spread over many correct answers, like a pretrained model. Returns the
    losses. With ``prompt_templates = T > 1`` each example is asked under a random template
    (:class:`TemplatedTask`), so that a policy later trained by ``train_grpo(...,
    prompt_templates=T)`` starts RL already able to read every template (as a pretrained
    model can follow every instruction format); ``T = 1`` is the plain warm start.
    ``device``: where the policy trains (default: where its parameters are); the examples
    are drawn on the CPU, so every device sees the same data.
    """
    task = _with_templates(task, prompt_templates)
    device = _policy_device(policy, device)
    steps = check_int(steps, "steps", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    losses = []
    for _ in progress(range(steps), desc="warm start"):
        prompts = task.sample_prompts(batch_size, gen)
        answers = task.sample_correct(prompts, gen)
        prompts, answers = prompts.to(device), answers.to(device)
        logp, _, _ = policy.score(prompts, answers)                          # (n, L)
        loss = -(logp * answer_mask(task, answers)).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ----------------------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------------------
def pass_at_k(n, c, k: int):
    r"""Unbiased ``pass@k`` estimator of Chen et al. (2021).

    From ``n`` samples of which ``c`` are correct,

    .. math:: \text{pass@}k = 1 - \binom{n-c}{k} \Big/ \binom{n}{k},

    the probability that ``k`` samples drawn without replacement contain a correct one;
    computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` for numerical stability.

    Parameters
    ----------
    n : int or array of int
        Samples per problem (``n >= k``).
    c : int or array of int
        Correct samples per problem.
    k : int

    Returns
    -------
    float or numpy.ndarray
    """
    k = check_int(k, "k", minimum=1)
    n_arr = np.atleast_1d(as_array(n, "n", dtype=np.int64))
    c_arr = np.atleast_1d(as_array(c, "c", dtype=np.int64))
    n_arr, c_arr = np.broadcast_arrays(n_arr, c_arr)
    if np.any(n_arr < k):
        raise ValueError(f"n must be >= k={k}, got minimum {n_arr.min()}")
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("c must satisfy 0 <= c <= n")
    out = np.empty(n_arr.shape, dtype=np.float64)
    for idx, (ni, ci) in enumerate(zip(n_arr.ravel(), c_arr.ravel())):
        if ni - ci < k:
            out.flat[idx] = 1.0
        else:
            out.flat[idx] = 1.0 - np.prod(1.0 - k / np.arange(ni - ci + 1, ni + 1))
    scalar = np.ndim(n) == 0 and np.ndim(c) == 0
    return float(out.ravel()[0]) if scalar else out


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
@torch.no_grad()
def evaluate_policy(policy, task, *, n_samples: int = 32, ks=(1, 4, 32), seed: int = 1234,
                    device=None) -> dict:
    r"""pass@k, reward, token entropy, distinct correct answers and lengths on every prompt of ``task``.

    Draws ``n_samples`` answers per prompt. ``distinct_correct`` is the mean number of
    different correct answers among them (how many solutions the policy still knows);
    ``entropy`` the mean token entropy of the policy on its own answers' tokens;
    ``length``, ``length_correct`` and ``length_wrong`` the mean number of answer tokens
    (:func:`answer_mask`) of all, correct and wrong answers (NaN when there are none).
    """
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    device = _policy_device(policy, device)
    prompts = task.all_prompts().to(device)
    P = prompts.shape[0]
    rep = prompts.repeat_interleave(n_samples, dim=0)                        # (P n, prompt)
    answers = policy.sample(rep, task.answer_length, gen, eos=task.eos)      # (P n, L)
    mask = answer_mask(task, answers)
    _, entropy, _ = policy.score(rep, answers)
    correct_flat = task.is_correct(rep, answers)
    correct = correct_flat.reshape(P, n_samples).cpu()
    c = correct.sum(dim=1).numpy()
    lengths = mask.sum(dim=1)
    out = {"reward": float(task.reward(rep, answers).mean()),
           "entropy": float((entropy * mask).sum() / mask.sum())}
    for k in ks:
        out[f"pass@{k}"] = float(np.mean(pass_at_k(np.full(P, n_samples), c, k)))
    base = task.vocab_size ** torch.arange(task.answer_length, device=device)
    codes = (answers * base).sum(dim=1).reshape(P, n_samples).cpu()
    distinct = [len(set(codes[i][correct[i]].tolist())) for i in range(P)]
    out["distinct_correct"] = float(np.mean(distinct))
    out["length"] = float(lengths.mean())
    out["length_correct"] = float(lengths[correct_flat].mean()) if correct_flat.any() else math.nan
    out["length_wrong"] = float(lengths[~correct_flat].mean()) if (~correct_flat).any() else math.nan
    return out


@dataclass
class EntropyPerformanceFit:
    """Result of :func:`fit_entropy_performance`: ``R = -a exp(H) + b``."""

    a: float
    b: float
    r2: float

    @property
    def ceiling(self) -> float:
        """The predicted performance when the entropy is exhausted, ``R(H=0) = b - a``."""
        return self.b - self.a

    def predict(self, H):
        return -self.a * np.exp(np.asarray(H, dtype=float)) + self.b


def fit_entropy_performance(H, R) -> EntropyPerformanceFit:
    r"""Fit the entropy-performance law of Cui et al. (2025), ``R = -a e^{H} + b``.

    Over a run, performance is traded for entropy; at ``H = 0`` the law predicts the
    ceiling ``b - a``. The model is linear in ``(a, b)`` given ``e^H``, so the least-squares
    solution is exact; ``scipy.optimize.curve_fit`` refines it (the two agree).

    Parameters
    ----------
    H, R : array-like, shape (n,)
        Entropies and performances (reward or accuracy) along a run, ``n >= 3``.
    """
    from scipy.optimize import curve_fit

    H = as_array(H, "H", ndim=1, min_rows=3)
    R = as_array(R, "R", ndim=1)
    if R.shape != H.shape:
        raise ValueError(f"R must have H's shape {H.shape}, got {R.shape}")
    X = np.stack([-np.exp(H), np.ones_like(H)], axis=1)
    (a0, b0), *_ = np.linalg.lstsq(X, R, rcond=None)
    (a, b), _ = curve_fit(lambda h, a, b: -a * np.exp(h) + b, H, R, p0=(a0, b0))
    resid = R - (-a * np.exp(H) + b)
    ss = np.sum((R - R.mean()) ** 2)
    r2 = 1.0 - np.sum(resid ** 2) / ss if ss > 0 else 1.0
    return EntropyPerformanceFit(float(a), float(b), float(r2))


# ----------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------
@dataclass
class GRPOConfig:
    """Every option of :func:`train_grpo`; names and defaults follow TRL's ``GRPOConfig`` where shared.

    Shared with TRL: ``loss_type`` (default ``"dapo"``, TRL's default), ``scale_rewards``,
    ``epsilon``, ``epsilon_high`` (``None`` = ``epsilon``), ``importance_sampling_level``,
    ``beta``, ``num_iterations`` (optimiser steps per batch, PPO's epochs), ``entropy_coef``,
    ``entropy_target``, ``entropy_coef_delta``, ``entropy_coef_max``.

    Interventions: ``entropy_coef`` (fixed bonus), ``entropy_target`` (adaptive coefficient
    of Skywork-OR1, starting from ``entropy_coef``), ``epsilon_high`` (clip-higher),
    ``intervention`` (``"clip_cov"``, ``"kl_cov"``, ``"epo"``, ``"steer"``, ``"rl_zvp"``),
    ``dynamic_sampling`` (DAPO; at most ``max_resample`` extra draws per step),
    ``prompt_templates`` (prompt augmentation of Lu et al., 2026: with ``T > 1`` the task is
    wrapped in :class:`TemplatedTask`, each sampled prompt is asked under a uniformly random
    one of ``T`` templates and evaluation uses template 0; ``T = 1`` leaves the task and
    every random draw exactly as without the option).
    """

    steps: int = 100
    prompts_per_step: int = 16
    group_size: int = 8
    lr: float = 3e-3
    optimizer: str = "adam"
    num_iterations: int = 2
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    importance_sampling_level: str = "token"
    beta: float = 0.0
    entropy_coef: float = 0.0
    entropy_target: float | None = None
    entropy_coef_delta: float = 2e-3
    entropy_coef_max: float = 0.05
    intervention: str = "none"
    clip_cov_ratio: float = 2e-4
    clip_cov_bounds: tuple = (1.0, 5.0)
    kl_cov_ratio: float = 2e-3
    kl_cov_coef: float = 1.0
    epo_coef: float = 0.01
    epo_smooth_coef: float = 1.0
    epo_kappa: tuple = (0.8, 1.2)
    steer_w_min: float = 0.5
    zvp_alpha: float = 0.1
    dynamic_sampling: bool = False
    max_resample: int = 3
    prompt_templates: int = 1
    eval_every: int = 10
    eval_samples: int = 32
    pass_ks: tuple = (1, 4, 32)
    eval_seed: int = 1234
    seed: int = 0

    def validate(self):
        check_int(self.steps, "steps", minimum=0)
        check_int(self.prompts_per_step, "prompts_per_step", minimum=1)
        check_int(self.group_size, "group_size", minimum=2)
        check_positive(self.lr, "lr")
        check_choice(self.optimizer, "optimizer", ("adam", "sgd"))
        check_int(self.num_iterations, "num_iterations", minimum=1)
        check_choice(self.loss_type, "loss_type", LOSS_TYPES)
        check_choice(self.scale_rewards, "scale_rewards", ("group", "batch", "none"))
        check_choice(self.importance_sampling_level, "importance_sampling_level", ("token", "sequence"))
        check_nonnegative(self.epsilon, "epsilon")
        if self.epsilon_high is not None:
            check_nonnegative(self.epsilon_high, "epsilon_high")
        check_nonnegative(self.entropy_coef, "entropy_coef")
        check_choice(self.intervention, "intervention", INTERVENTIONS)
        check_int(self.max_resample, "max_resample", minimum=0)
        check_int(self.eval_every, "eval_every", minimum=1)
        check_int(self.prompt_templates, "prompt_templates", minimum=1)
        return self


@dataclass
class Rollouts:
    """One step's training batch and the statistics of everything sampled for it.

    ``prompts`` (B, P), ``answers`` (B, L), ``mask`` (B, L) and ``rewards`` (B,) are what the
    step trains on. ``drawn`` counts every answer sampled in the step (dynamic sampling draws
    more); ``reward``, ``zero_var`` and ``length`` (``length_correct``, ``length_wrong``:
    of the correct and the wrong answers, NaN when none) describe the first draw of
    ``prompts_per_step`` groups, the same population for every method, and ``first`` keeps
    its prompts and answers so that its entropy can be measured too.
    """

    prompts: torch.Tensor
    answers: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    drawn: int
    reward: float
    zero_var: float
    length: float
    length_correct: float
    length_wrong: float
    first: tuple


def _draw(policy, task, cfg: GRPOConfig, gen, device):
    """``prompts_per_step`` prompts and ``group_size`` answers each: prompts, answers, rewards (float64, CPU)."""
    prompts = task.sample_prompts(cfg.prompts_per_step, gen).to(device)
    rep = prompts.repeat_interleave(cfg.group_size, dim=0)                     # (B, P)
    answers = policy.sample(rep, task.answer_length, gen, eos=task.eos)        # (B, L)
    return rep, answers, task.reward(rep, answers).double().cpu()


def collect_rollouts(policy, task, cfg: GRPOConfig, gen, device=None) -> Rollouts:
    """Sample a step's batch; with ``cfg.dynamic_sampling`` replace zero-variance groups (DAPO).

    Dynamic sampling keeps the informative groups of the first draw and fills the batch from
    up to ``cfg.max_resample`` further draws (every answer drawn is counted in ``drawn``);
    groups that are still zero-variance after the last draw are dropped.
    """
    G, B = cfg.group_size, cfg.prompts_per_step * cfg.group_size
    rep, answers, rewards = _draw(policy, task, cfg, gen, device)
    zero = torch.as_tensor(zero_variance_groups(rewards, G))                   # (B / G,)
    lengths = answer_mask(task, answers).sum(dim=1).cpu()                      # (B,)
    right = rewards >= task.success
    stats = dict(drawn=B, reward=float(rewards.mean()), zero_var=float(zero.double().mean()),
                 length=float(lengths.mean()),
                 length_correct=float(lengths[right].mean()) if right.any() else math.nan,
                 length_wrong=float(lengths[~right].mean()) if (~right).any() else math.nan,
                 first=(rep, answers))
    if cfg.dynamic_sampling:
        for _ in range(cfg.max_resample):
            if not zero.any():
                break
            keep = ~zero.repeat_interleave(G)                                  # (B,)
            new_rep, new_answers, new_rewards = _draw(policy, task, cfg, gen, device)
            stats["drawn"] += B
            rep = torch.cat([rep[keep.to(rep.device)], new_rep])[:B]
            answers = torch.cat([answers[keep.to(answers.device)], new_answers])[:B]
            rewards = torch.cat([rewards[keep], new_rewards])[:B]
            zero = torch.as_tensor(zero_variance_groups(rewards, G))
        keep = ~zero.repeat_interleave(G)
        if keep.any():
            rep, answers, rewards = rep[keep.to(rep.device)], answers[keep.to(answers.device)], rewards[keep]
    return Rollouts(rep, answers, answer_mask(task, answers).double(), rewards, **stats)


# ---- one named function per intervention (each returns what it changes in the loss) ----
def _advantages(rollouts: Rollouts, old_entropy, cfg: GRPOConfig, success: float):
    """GRPO advantages (B,), or RL-ZVP's token advantages (B, L)."""
    if cfg.intervention == "rl_zvp":
        return rlzvp_advantages(rollouts.rewards.to(old_entropy.device), old_entropy, cfg.group_size,
                                rollouts.mask, success=success, alpha=cfg.zvp_alpha)
    adv = group_advantages(rollouts.rewards, cfg.group_size, cfg.scale_rewards)
    return adv.to(old_entropy.device)


def _entropy_bonus(coef: float, mean_entropy: float, cfg: GRPOConfig) -> tuple[float, float]:
    """``(coefficient for the next step, bonus applied now)``: fixed, or Skywork-OR1's adaptive one."""
    if cfg.entropy_target is not None:
        coef = adaptive_entropy_coef(coef, mean_entropy, cfg.entropy_target, delta=cfg.entropy_coef_delta,
                                     c_max=cfg.entropy_coef_max)
        bonus = coef if mean_entropy < cfg.entropy_target else 0.0
    else:
        bonus = coef
    return coef, bonus + (cfg.epo_coef if cfg.intervention == "epo" else 0.0)


def _clip_cov_weights(logp, adv, mask, cfg: GRPOConfig, eps_high: float, ratio, gen):
    """Clip-Cov: 0 on the tokens to detach, chosen from the *current* covariance, 1 elsewhere."""
    a = adv if adv.ndim == 2 else adv[:, None]
    clipped = ((ratio > 1 + eps_high) & (a > 0)) | ((ratio < 1 - cfg.epsilon) & (a < 0))   # (B, L)
    cov = token_covariance(logp.detach(), adv, mask)                           # (B, L)
    detach = clip_cov_mask(cov, mask, ratio=cfg.clip_cov_ratio, bounds=cfg.clip_cov_bounds,
                           clipped=clipped, generator=gen)
    return (~detach).double()


def _kl_cov_penalty(logp, old_logp, adv, mask, cfg: GRPOConfig):
    """KL-Cov: ``kl_coef |log pi - log pi_old|`` on the top tokens by the *current* covariance."""
    cov = token_covariance(logp.detach(), adv, mask)                           # (B, L)
    top = kl_cov_mask(cov, mask, ratio=cfg.kl_cov_ratio).double()
    return cfg.kl_cov_coef * (logp - old_logp).abs() * top


def _epo_penalty(entropy, entropy_hist: float, mask, step: int, cfg: GRPOConfig):
    """EPO: the phase-weighted smoothing penalty keeping token entropy near its running mean."""
    phase = epo_phase_weight(step / max(cfg.steps - 1, 1))
    return cfg.epo_smooth_coef * phase * epo_smoothing_penalty(entropy, entropy_hist, mask, kappa=cfg.epo_kappa)


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
def train_grpo(policy, task, config: GRPOConfig | None = None, *, device=None, show_progress=None,
               **overrides) -> History:
    r"""GRPO-family training with every entropy intervention of the chapter as an option.

    Each step samples ``prompts_per_step`` prompts and ``group_size`` answers each
    (:func:`collect_rollouts`), computes group advantages (:func:`group_advantages`), then
    takes ``num_iterations`` optimiser steps on :func:`policy_loss` (so the ratio leaves 1
    and clipping acts). Options (:class:`GRPOConfig`): the loss type, GSPO's sequence-level
    ratio, the clip range (clip-higher), a KL-free setup as in DAPO/Dr. GRPO, a fixed or
    adaptive entropy bonus, Clip-Cov and KL-Cov (as in Cui et al.'s code: the covariance is
    recomputed at every update; KL-Cov drops the PPO clip; Clip-Cov skips tokens the clip
    already stopped), EPO, STEER, RL-ZVP (``success`` = the task's top reward), dynamic
    sampling and prompt augmentation (``prompt_templates``, :class:`TemplatedTask`).

    Returns a :class:`~companion.training.History` with, per step, ``reward``, ``entropy``,
    ``zero_var``, ``length``, ``length_correct`` and ``length_wrong`` of the step's first draw (the same population for every
    method, dynamic sampling included), ``rollouts`` (answers sampled so far),
    ``batch_reward`` (of the batch trained on), ``clip_low``, ``clip_high``, ``cov`` (mean
    ``Cov(log pi, A)`` over tokens), ``entropy_coef``, ``loss``, and at step 0 and every
    ``eval_every`` steps the keys of :func:`evaluate_policy` prefixed by ``eval_``.
    ``device`` is where the policy trains (default: where its parameters are); sampling
    draws on the CPU generator, so the runs are the same draws on any device. The loop runs
    on one CPU thread (restored afterwards): with tensors this small, extra threads only add
    synchronisation.
    """
    cfg = replace(config or GRPOConfig(), **overrides).validate()
    task = _with_templates(task, cfg.prompt_templates)
    device = _policy_device(policy, device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD)(policy.parameters(), lr=cfg.lr)
    eps_high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
    coef, entropy_hist, drawn = cfg.entropy_coef, None, 0

    def evaluate():
        res = evaluate_policy(policy, task, n_samples=cfg.eval_samples, ks=cfg.pass_ks, seed=cfg.eval_seed)
        return {f"eval_{k}": v for k, v in res.items()}

    history = History()
    history.log(0, evaluate())
    for step in progress(range(cfg.steps), desc=f"GRPO ({cfg.intervention})",
                         disable=None if show_progress is None else not show_progress):
        # ---- rollouts and advantages
        batch = collect_rollouts(policy, task, cfg, gen, device)
        drawn += batch.drawn
        mask = batch.mask.to(device)                                           # (B, L)
        with torch.no_grad():
            old_logp, old_entropy, _ = policy.score(batch.prompts, batch.answers)     # (B, L) each
            old_logp, old_entropy = old_logp.double(), old_entropy.double()
            if batch.first[1] is batch.answers:
                mean_h = float((old_entropy * mask).sum() / mask.sum())
            else:                                                              # dynamic sampling: the first draw's entropy
                first_mask = answer_mask(task, batch.first[1]).double()
                first_h = policy.score(*batch.first)[1].double()
                mean_h = float((first_h * first_mask).sum() / first_mask.sum())
        adv = _advantages(batch, old_entropy, cfg, task.success)                    # (B,) or (B, L)
        entropy_hist = mean_h if entropy_hist is None else 0.9 * entropy_hist + 0.1 * mean_h
        coef, bonus = _entropy_bonus(coef, mean_h, cfg)
        weights = (steer_weights(adv, old_logp, old_entropy, mask, w_min=cfg.steer_w_min)
                   if cfg.intervention == "steer" else None)

        # ---- num_iterations optimiser steps on the same batch
        for _ in range(cfg.num_iterations):
            logp, entropy, _ = policy.score(batch.prompts, batch.answers)     # (B, L) each
            logp, entropy = logp.double(), entropy.double()
            extra = None
            if cfg.intervention == "clip_cov":
                weights = _clip_cov_weights(logp, adv, mask, cfg, eps_high, torch.exp(logp - old_logp), gen)
            elif cfg.intervention == "kl_cov":
                extra = _kl_cov_penalty(logp, old_logp, adv, mask, cfg)
            elif cfg.intervention == "epo":
                extra = _epo_penalty(entropy, entropy_hist, mask, step, cfg)
            loss, info = policy_loss(logp, old_logp, adv, mask, loss_type=cfg.loss_type,
                                     epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high,
                                     importance_sampling_level=cfg.importance_sampling_level,
                                     clip=cfg.intervention != "kl_cov", token_weights=weights,
                                     extra_token_loss=extra, entropy=entropy, entropy_coef=bonus,
                                     max_completion_length=task.answer_length)
            opt.zero_grad()
            loss.backward()
            opt.step()

        cov = token_covariance(old_logp, adv, mask)
        history.log(step + 1, {"reward": batch.reward, "entropy": mean_h, "zero_var": batch.zero_var,
                               "length": batch.length, "length_correct": batch.length_correct,
                               "length_wrong": batch.length_wrong, "rollouts": drawn,
                               "batch_reward": float(batch.rewards.mean()),
                               "clip_low": info["clip_low"], "clip_high": info["clip_high"],
                               "cov": float(cov.sum() / mask.sum()), "entropy_coef": bonus,
                               "loss": float(loss.detach())})
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            history.log(step + 1, evaluate())
    return history


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
def bandit_entropy_trace(task: BanditTask | None = None, *, steps: int = 200, lr: float = 0.1,
                         group_size: int = 8, seed: int = 0) -> dict:
    r"""Sampled GRPO on a bandit with plain SGD, recording each step's entropy change.

    One step: sample ``group_size`` arms, compute GRPO advantages, take one SGD step on the
    logits. Records the measured ``Delta H = H(z_{k+1}) - H(z_k)``, the first-order
    prediction ``-Cov_pi(log pi, Delta z)`` of the same step
    (:func:`first_order_entropy_change`), and Cui et al.'s expected-update prediction
    ``-eta Cov_pi(log pi, pi A)`` with ``A`` the arms' centred true rewards
    (:func:`predicted_entropy_change`; it describes the average step, not the sampled one).

    Returns a dict of numpy arrays ``entropy`` (steps + 1), ``measured``, ``first_order``,
    ``expected`` (steps each) and ``reward`` (mean sampled reward per step).
    """
    task = BanditTask() if task is None else task
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    group_size = check_int(group_size, "group_size", minimum=2)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    z = torch.zeros(task.vocab_size, dtype=torch.float64)
    r = task.rewards.double()
    H = [float(softmax_entropy(z))]
    measured, first, expected, reward = [], [], [], []
    for _ in range(steps):
        p = torch.softmax(z, 0)
        arms = torch.multinomial(p, group_size, replacement=True, generator=gen)
        adv = torch.as_tensor(group_advantages(r[arms], group_size))
        # gradient of (1/G) sum_i A_i log pi(a_i) w.r.t. z
        grad = (adv[:, None] * (F.one_hot(arms, task.vocab_size).double() - p)).mean(0)
        dz = lr * grad
        expected.append(float(predicted_entropy_change(z, r, lr * _adv_scale(r, p))))
        first.append(float(first_order_entropy_change(z, dz)))
        z = z + dz
        H.append(float(softmax_entropy(z)))
        measured.append(H[-1] - H[-2])
        reward.append(float(r[arms].mean()))
    return {"entropy": np.array(H), "measured": np.array(measured), "first_order": np.array(first),
            "expected": np.array(expected), "reward": np.array(reward)}


def _adv_scale(r, p):
    """1/std of the reward under pi: GRPO's normalisation of the expected update."""
    mean = float((p * r).sum())
    sd = math.sqrt(max(float((p * (r - mean) ** 2).sum()), 0.0))
    return 1.0 / (sd + 1e-4)


# ----------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------
def _as_runs(histories, name="histories") -> list:
    """One History or a list of them (one per seed) as a non-empty list."""
    runs = [histories] if isinstance(histories, History) else list(histories)
    if not runs or not all(isinstance(h, History) for h in runs):
        raise TypeError(f"{name} must be a History or a non-empty list of Histories (one per seed)")
    return runs


def seed_values(histories, key: str, index: int = -1) -> np.ndarray:
    """``key``'s value at position ``index`` (default: the last logged) in each seed's history, shape (n_seeds,)."""
    return np.array([h[key][index] for h in _as_runs(histories)], dtype=float)


def plot_training_curves(histories, *, title: str = "", k_max: int | None = None):
    """Entropy, pass@1 and pass@k over training, mean and min-max band over the seeds' runs."""
    runs = _as_runs(histories)
    keys = sorted((k for k in runs[0].keys() if k.startswith("eval_pass@")), key=lambda k: int(k.split("@")[1]))
    kmax = keys[-1] if k_max is None else f"eval_pass@{k_max}"
    fig, (ax_h, ax_r, ax_p) = subplots(3, width=4.2, height=3.2)
    plot_spread(ax_h, runs[0].steps("eval_entropy"), [h["eval_entropy"] for h in runs], label="token entropy")
    ax_h.set(xlabel="RL step", ylabel="token entropy (nats)", title="entropy")
    plot_spread(ax_r, runs[0].steps("eval_pass@1"), [h["eval_pass@1"] for h in runs], label="pass@1")
    ax_r.set(xlabel="RL step", ylabel="pass@1", title="performance")
    plot_spread(ax_p, runs[0].steps(kmax), [h[kmax] for h in runs], label=kmax[5:])
    ax_p.set(xlabel="RL step", ylabel=kmax[5:], title=f"{kmax[5:]} (unbiased)")
    for ax in (ax_h, ax_r, ax_p):
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_entropy_prediction(trace: dict):
    """Measured entropy change per step against the covariance predictions (a bandit trace)."""
    for key in ("entropy", "measured", "first_order"):
        if key not in trace:
            raise ValueError(f"trace must contain {key!r} (use bandit_entropy_trace)")
    fig, (ax_h, ax_s) = subplots(2, width=4.6, height=3.2)
    ax_h.plot(trace["entropy"])
    ax_h.set(xlabel="step", ylabel="entropy H (nats)", title="GRPO on a softmax bandit")
    ax_s.scatter(trace["first_order"], trace["measured"], s=8, label="-Cov(log pi, dz) of the step")
    if "expected" in trace:
        ax_s.scatter(trace["expected"], trace["measured"], s=8, alpha=0.5, label="-eta Cov(log pi, pi A) (expected step)")
    lo = min(trace["measured"].min(), trace["first_order"].min())
    hi = max(trace["measured"].max(), trace["first_order"].max())
    ax_s.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax_s.set(xlabel="predicted entropy change", ylabel="measured entropy change", title="covariance prediction")
    ax_s.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_pass_at_k(histories: dict):
    """pass@k against k before and after RL (mean and min-max over seeds): RL sharpens pass@1, narrows pass@k.

    ``histories`` maps a label to a list of :func:`train_grpo` histories (one per seed); the
    "before" curve is taken from the first label's runs.
    """
    if not histories:
        raise ValueError("histories must not be empty")
    first = _as_runs(next(iter(histories.values())))
    keys = sorted((k for k in first[0].keys() if k.startswith("eval_pass@")), key=lambda k: int(k.split("@")[1]))
    kk = np.array([int(k.split("@")[1]) for k in keys], dtype=float)
    fig, (ax,) = subplots(1, width=5.0, height=3.6)
    plot_spread(ax, kk, [[h[k][0] for k in keys] for h in first], label="warm start (before RL)", color="k",
                ls="--", marker="o")
    for label, runs in histories.items():
        plot_spread(ax, kk, [[h[k][-1] for k in keys] for h in _as_runs(runs)], label=label, marker="o")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples)", ylabel="pass@k", title="pass@k before and after RL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_interventions(histories: dict, *, x: str = "step"):
    """Each intervention side by side: entropy, pass@1 and the largest pass@k, mean and min-max over seeds.

    ``histories`` maps a label to a list of histories (one per seed). ``x="step"`` plots
    against RL steps, ``x="rollouts"`` against the answers sampled so far (compute-matched:
    dynamic sampling draws more answers per step).
    """
    if not histories:
        raise ValueError("histories must not be empty")
    check_choice(x, "x", ("step", "rollouts"))
    fig, (ax_h, ax_1, ax_k) = subplots(3, width=4.3, height=3.4)
    for i, (label, runs) in enumerate(histories.items()):
        runs = _as_runs(runs)
        kmax = max((k for k in runs[0].keys() if k.startswith("eval_pass@")), key=lambda k: int(k.split("@")[1]))
        steps = runs[0].steps("eval_entropy")
        if x == "rollouts":  # rollouts drawn by each evaluation step, averaged over the seeds
            per_seed = [np.concatenate([[0.0], h["rollouts"]])[steps.astype(int)] for h in runs]
            xs = np.mean(per_seed, axis=0)
        else:
            xs = steps
        style = dict(ls="-" if i < 10 else "--")  # the colour cycle has 10 colours
        plot_spread(ax_h, xs, [h["eval_entropy"] for h in runs], label=label, **style)
        plot_spread(ax_1, xs, [h["eval_pass@1"] for h in runs], label=label, **style)
        plot_spread(ax_k, xs, [h[kmax] for h in runs], label=label, **style)
    xlabel = "RL step" if x == "step" else "answers sampled (rollouts)"
    ax_h.set(xlabel=xlabel, ylabel="token entropy (nats)", title="entropy")
    ax_1.set(xlabel=xlabel, ylabel="pass@1", title="pass@1")
    ax_k.set(xlabel=xlabel, ylabel=kmax[5:], title=f"{kmax[5:]} (exploration)")
    ax_k.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def plot_entropy_performance(H, R, fit: EntropyPerformanceFit | None = None, *, labels=None,
                             ylabel: str = "performance"):
    """Performance against entropy with the fitted law ``R = -a exp(H) + b``."""
    H = as_array(H, "H", ndim=1)
    R = as_array(R, "R", ndim=1)
    fit = fit_entropy_performance(H, R) if fit is None else fit
    fig, (ax,) = subplots(1, width=5.0, height=3.6)
    if labels is None:
        ax.scatter(H, R, s=14, label="runs")
    else:
        labels = np.asarray(labels)
        for lab in dict.fromkeys(labels.tolist()):
            sel = labels == lab
            ax.scatter(H[sel], R[sel], s=14, label=str(lab))
    grid = np.linspace(0, H.max() * 1.05, 100)
    ax.plot(grid, fit.predict(grid), "k-", label=f"-{fit.a:.3g} exp(H) + {fit.b:.3g}")
    ax.axhline(fit.ceiling, color="gray", ls=":", label=f"ceiling b - a = {fit.ceiling:.3g}")
    ax.set(xlabel="token entropy H (nats)", ylabel=ylabel, title="entropy-performance trade-off")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------
# explorer
# ----------------------------------------------------------------------------------------
_EXPLORER_INTERVENTIONS = ("none", "entropy bonus", "clip-higher", "clip_cov", "kl_cov", "steer")


@lru_cache(maxsize=64)
def _bandit_run(lr, group_size, eps_high, entropy_coef, intervention, steps=120, seed=0):
    task = BanditTask()
    policy = TabularPolicy(task.vocab_size)
    kwargs = dict(steps=steps, prompts_per_step=1, group_size=group_size, lr=lr, optimizer="sgd",
                  num_iterations=2, epsilon_high=eps_high, entropy_coef=entropy_coef, eval_every=steps,
                  eval_samples=8, pass_ks=(1,), seed=seed, clip_cov_ratio=0.2, clip_cov_bounds=(0.05, 5.0),
                  kl_cov_ratio=0.2)
    if intervention == "entropy bonus":
        kwargs["entropy_coef"] = max(entropy_coef, 0.05)
    elif intervention == "clip-higher":
        kwargs["epsilon_high"] = max(eps_high, 0.28)
    elif intervention != "none":
        kwargs["intervention"] = intervention
    h = train_grpo(policy, task, show_progress=False, **kwargs)
    return h["entropy"], h["reward"]


def _moving_average(values, window: int):
    """Centred moving average over ``window`` steps, only where the window is full.

    Returns ``(steps, means)``: the mean of steps ``k - (window - 1) / 2`` to
    ``k + (window - 1) / 2`` (steps numbered from 1) at the window's centre ``k``, so the
    curve stops ``(window - 1) / 2`` steps before either end instead of averaging in zeros
    there (``np.convolve(..., mode="same")`` pads with zeros, which bends both ends down).
    The window shrinks to the length of ``values`` when they are fewer.
    """
    values = np.asarray(values, dtype=float)
    window = max(1, min(int(window), len(values)))
    means = np.convolve(values, np.ones(window) / window, mode="valid")
    steps = np.arange(len(means)) + 1 + (window - 1) / 2
    return steps, means


def rl_explorer():
    """Explorer: GRPO on the 8-armed bandit, entropy and reward curves under each setting.

    Controls: step size ``eta`` (SGD on the logits), group size, ``eps_high``, entropy
    coefficient and the intervention. The static book precomputes intervention x eta.
    """
    from .widgets import Choice, Explorer

    def draw(eta, group_size, eps_high, entropy_coef, intervention):
        H, R = _bandit_run(eta, group_size, eps_high, entropy_coef, intervention)
        fig, (ax_h, ax_r) = subplots(2, width=4.2, height=3.0)
        ax_h.plot(np.arange(1, len(H) + 1), H)
        ax_h.axhline(math.log(8), color="gray", ls=":", lw=1)
        ax_h.set(xlabel="step", ylabel="entropy (nats)", ylim=(0, 2.2), title="policy entropy")
        ax_r.plot(*_moving_average(R, 5))
        ax_r.set(xlabel="step", ylabel="mean reward (smoothed)", ylim=(0.3, 1.02), title="reward")
        fig.tight_layout()
        return fig, f"final entropy {H[-1]:.3f} nats, final reward {R[-10:].mean():.3f}"

    controls = {
        "eta": Choice([0.05, 0.1, 0.3], default=0.1, label="step size eta"),
        "group_size": Choice([4, 8, 16], default=8, label="group size G"),
        "eps_high": Choice([0.2, 0.28, 0.4], default=0.2, label="eps_high"),
        "entropy_coef": Choice([0.0, 0.02, 0.05], default=0.0, label="entropy coefficient"),
        "intervention": Choice(list(_EXPLORER_INTERVENTIONS[:4]), default="none", label="intervention"),
    }
    return Explorer(draw, controls, title="Entropy collapse on a softmax bandit",
                    precompute=["intervention", "eta"])
