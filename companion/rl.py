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

from ._validation import (Array, Interval, Options, TokenIds, as_tensor, check_params, is_tensor,
                          validate_params)
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
# parameter constraints (checked at each function's entry, so the bodies read like the papers)
# ----------------------------------------------------------------------------------------
#: Largest log-ratio between two log-probabilities of one token: ``exp(80)`` still fits in
#: float32, and no sampled token's probability changes by a factor ``e^80`` in one update.
_MAX_LOG_RATIO = 80.0
#: Bound on coefficients, clip ranges and rewards: far beyond any meaningful value, small
#: enough that products with the loss terms cannot overflow.
_MAX_COEF = 1e6

_INT_POS = Interval(int, 1, None)
_INT_NONNEG = Interval(int, 0, None)
_REAL = Interval(float, None, None)
_NONNEG = Interval(float, 0, None)
_COEF = Interval(float, 0, _MAX_COEF)
_FRACTION = Interval(float, 0, 1)
_SEED = Interval(int, 0, None)
_REWARDS = Array(ndim=1, shape=("B",), min_size=1, max_abs=_MAX_COEF)
_LOGP = Array(ndim=2, shape=("B", "T"), min_size=1)
_MASK = [Array(ndim=2, shape=("B", "T"), low=0, max_abs=_MAX_COEF), None]  # 0/1, or non-negative weights
_ADVANTAGES = [Array(ndim=1, shape=("B",), max_abs=_MAX_COEF), Array(ndim=2, shape=("B", "T"), max_abs=_MAX_COEF)]
_LOGITS = Array(min_size=1)
_GENERATOR = [torch.Generator, None]
_LR = Interval(float, 0, 10, closed="right")
#: Entropies are in nats; ``exp(50)`` and its square stay far from overflow.
_MAX_ENTROPY = 50.0
_DEVICE = ["string", torch.device, None]


def _like_input(result: torch.Tensor, original):
    """Return numpy when the caller passed numpy/lists, a tensor when it passed a tensor."""
    return result if is_tensor(original) else result.detach().cpu().numpy()


def _as_mask(mask, like: torch.Tensor) -> torch.Tensor:
    """A validated mask (or all ones) as a tensor of ``like``'s dtype and device."""
    if mask is None:
        return torch.ones_like(like)
    return as_tensor(mask, "mask").to(dtype=like.dtype, device=like.device)


def _as_advantages(advantages, like: torch.Tensor) -> torch.Tensor:
    """Advantages of shape (B,) or (B, T) as a detached (B, 1) or (B, T) tensor of ``like``'s dtype."""
    adv = as_tensor(advantages, "advantages").detach().to(dtype=like.dtype, device=like.device)
    return adv[:, None] if adv.ndim == 1 else adv


def _check_groups(rewards, group_size: int) -> None:
    """The rewards split into whole groups of ``group_size``."""
    n = len(rewards)
    if n % group_size:
        raise ValueError(f"rewards must have a multiple of group_size={group_size} entries, got {n}")


def _check_log_ratio(high, low, high_name: str, low_name: str) -> None:
    """``high - low`` (log-probabilities of the same tokens) is at most ``_MAX_LOG_RATIO``: its exp is finite."""
    high, low = as_tensor(high, high_name).detach(), as_tensor(low, low_name).detach()
    gap = (high - low.to(high.device)).max() if high.numel() else torch.zeros(())
    if float(gap) > _MAX_LOG_RATIO:
        raise ValueError(f"{high_name} - {low_name} must be at most {_MAX_LOG_RATIO:g} (the ratio "
                         f"exp({high_name} - {low_name}) would overflow), got {float(gap):.3g}")


def _check_pair(value, name: str) -> tuple[float, float]:
    """An increasing pair of reals ``(low, high)`` (already checked to be two finite numbers)."""
    lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{name} must be increasing (low <= high), got {tuple(value)}")
    return lo, hi


# ----------------------------------------------------------------------------------------
# advantages
# ----------------------------------------------------------------------------------------
@validate_params({
    "rewards": [_REWARDS],
    "group_size": [_INT_POS],
    "scale": [Options(("group", "batch", "none"))],
    "std": [Options(("unbiased", "population"))],
    "eps": [_NONNEG],
})
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
        Rewards, grouped consecutively (finite, magnitude at most 1e6).
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

    References
    ----------
    - shao2024deepseekmath: Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models".
    - liu2025understanding: Liu et al. (2025), "Understanding R1-Zero-Like Training: A Critical Perspective".

    Examples
    --------
    >>> group_advantages([1.0, 0.0, 0.0, 0.0], 4, eps=0.0).round(3).tolist()
    [1.5, -0.5, -0.5, -0.5]
    >>> group_advantages([1.0, 0.0, 0.0, 0.0], 4, scale="none").tolist()
    [0.75, -0.25, -0.25, -0.25]
    """
    _check_groups(rewards, group_size)
    if std == "unbiased" and scale != "none" and (group_size if scale == "group" else len(rewards)) < 2:
        raise ValueError("std='unbiased' needs at least two rewards per group; use std='population'")
    r = as_tensor(rewards, "rewards")

    grouped = r.reshape(-1, group_size)                                        # (n, G)
    constant = (grouped.max(dim=1).values == grouped.min(dim=1).values)[:, None]
    centred = torch.where(constant, torch.zeros_like(grouped), grouped - grouped.mean(dim=1, keepdim=True))
    correction = 1 if std == "unbiased" else 0
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True, correction=correction) + eps)
    elif scale == "batch":
        centred = centred / (r.std(correction=correction) + eps)
    return _like_input(centred.reshape(-1), rewards)                         # (B,)


@validate_params({"rewards": [_REWARDS], "group_size": [_INT_POS]})
def zero_variance_groups(rewards, group_size: int):
    """Which groups have identical rewards (all right or all wrong): no GRPO signal.

    DAPO's dynamic sampling (Yu et al., 2025) drops these groups and samples more
    prompts; RL-ZVP (:func:`rlzvp_advantages`) gives them an entropy-shaped advantage.

    Returns a boolean array (or tensor) of shape ``(B / group_size,)``.

    References
    ----------
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".

    Examples
    --------
    >>> zero_variance_groups([1.0, 1.0, 0.0, 1.0, 0.0, 0.0], 2).tolist()
    [True, False, True]
    """
    _check_groups(rewards, group_size)
    grouped = as_tensor(rewards, "rewards").reshape(-1, group_size)            # (n, G)
    return _like_input(grouped.max(dim=1).values == grouped.min(dim=1).values, rewards)


@validate_params({
    "rewards": [_REWARDS],
    "entropy": [Array(ndim=2, shape=("B", "T"), low=0, high=_MAX_ENTROPY)],
    "group_size": [_INT_POS],
    "mask": _MASK,
    "success": [_REAL],
    "alpha": [_COEF],
})
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
        Token entropies (non-negative; detached inside).
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

    References
    ----------
    - le2025noprompt: Le et al. (2025), "No Prompt Left Behind: Exploiting Zero-Variance Prompts in LLM
      Reinforcement Learning via Entropy-Guided Advantage Shaping".
    """
    _check_groups(rewards, group_size)
    r = as_tensor(rewards, "rewards").detach()                                 # (B,)
    h = as_tensor(entropy, "entropy").detach().to(torch.float64)               # (B, T)
    m = _as_mask(mask, h)                                                      # (B, T)

    adv = torch.as_tensor(group_advantages(r, group_size, "group"), dtype=torch.float64)
    grpo = adv[:, None].expand_as(h)                                           # (B, T)
    zero = torch.as_tensor(zero_variance_groups(r, group_size)).repeat_interleave(group_size)  # (B,)
    correct = r >= success
    h_max = torch.where(m > 0, h, torch.full_like(h, -math.inf)).max(dim=1, keepdim=True).values  # (B, 1)
    h_max = torch.where(torch.isfinite(h_max), h_max, torch.zeros_like(h_max))
    zvp = torch.where(correct[:, None], alpha * h, -alpha * (h_max - h))      # (B, T)
    return _like_input(torch.where(zero[:, None], zvp, grpo) * m, rewards)


# ----------------------------------------------------------------------------------------
# per-token quantities and the loss
# ----------------------------------------------------------------------------------------
def _check_same_shape(x, y, x_name: str, y_name: str) -> None:
    if tuple(np.shape(x)) != tuple(np.shape(y)):
        raise ValueError(f"{y_name} must have {x_name}'s shape {tuple(np.shape(x))}, got {tuple(np.shape(y))}")


@validate_params({"logp": [Array(min_size=1)], "ref_logp": [Array(min_size=1)]})
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
        Log-probabilities of the sampled tokens under the policy and the reference
        (``ref_logp - logp`` at most 80, so that the ratio is finite).

    References
    ----------
    - shao2024deepseekmath: Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models".
    - deepseek2025v32: DeepSeek-AI (2025), "DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models".

    Examples
    --------
    >>> k3_kl([0.0, -1.0], [0.0, 0.0]).round(4).tolist()
    [0.0, 0.7183]
    """
    _check_same_shape(logp, ref_logp, "logp", "ref_logp")
    _check_log_ratio(ref_logp, logp, "ref_logp", "logp")
    d = as_tensor(ref_logp, "ref_logp") - as_tensor(logp, "logp")             # log(pi_ref / pi_theta)
    return _like_input(torch.exp(d) - d - 1, logp)


@validate_params({"logits": [_LOGITS]})
def token_entropy(logits):
    r"""Entropy of the softmax over the last axis, ``H = -sum_v p_v log p_v`` (differentiable).

    ``logits`` may have any leading shape (one distribution per entry of the last axis'
    complement); the result drops the last axis.
    """
    logp = F.log_softmax(as_tensor(logits, "logits"), dim=-1)
    return _like_input(-(logp.exp() * logp).sum(-1), logits)


@validate_params({
    "mask": [Array(ndim=2, low=0, max_abs=_MAX_COEF, min_size=1)],
    "loss_type": [Options(LOSS_TYPES)],
    "max_completion_length": [_INT_POS, None],
    "alpha": [_NONNEG],
    "num_items_in_batch": [Interval(float, 0, None, closed="neither"), None],
})
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

    Parameters
    ----------
    mask : array-like or tensor, shape (B, T)
        1 on completion tokens, 0 on padding (in general non-negative token weights).
    loss_type : {"grpo", "bnpo", "dr_grpo", "dapo", "cispo", "delta_l"}
    max_completion_length : int, optional
        ``M`` (default ``T``).
    alpha : float
        Delta-L's exponent.
    num_items_in_batch : float, optional
        TRL's token count for ``"dapo"`` and ``"cispo"`` (default ``sum_j L_j``).

    Returns
    -------
    torch.Tensor, shape (B,)

    References
    ----------
    - shao2024deepseekmath: Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models".
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".
    - liu2025understanding: Liu et al. (2025), "Understanding R1-Zero-Like Training: A Critical Perspective".
    - he2025deltal: He et al. (2025), "$\Delta L$ Normalization: Rethink Loss Aggregation in RLVR".

    Examples
    --------
    >>> mask = torch.tensor([[1., 1., 0., 0.], [1., 1., 1., 1.]])
    >>> aggregation_weights(mask, "grpo").tolist()
    [0.25, 0.125]
    >>> aggregation_weights(mask, "dapo").tolist()
    [0.16666666666666666, 0.16666666666666666]
    """
    m = as_tensor(mask, "mask").to(torch.float64)
    B, T = m.shape
    M = T if max_completion_length is None else max_completion_length
    lengths = m.sum(dim=1).clamp(min=1.0)                                     # (B,)
    if loss_type == "grpo":
        return 1.0 / (B * lengths)
    if loss_type in ("bnpo", "dapo", "cispo"):
        total = lengths.sum() if loss_type == "bnpo" or num_items_in_batch is None else num_items_in_batch
        return torch.ones(B, dtype=m.dtype, device=m.device) / total
    if loss_type == "dr_grpo":
        return torch.full((B,), 1.0 / (B * M), dtype=m.dtype, device=m.device)
    log_l = lengths.log()                                                     # delta_l: L^-alpha, scaled
    w = torch.exp(-alpha * (log_l - log_l.min()))                            # by L_min^alpha (no underflow)
    return w / (M * w.sum())


def _loss_inputs(logp, old_logp, advantages, mask, ref_logp, token_weights, extra_token_loss, entropy, *,
                 beta, entropy_coef):
    """:func:`policy_loss`'s arguments (already checked one by one) checked together and as tensors.

    Returns ``lp, olp, adv, m, ref, w, extra, ent``: ``adv`` (B, 1) or (B, T); ``w`` ones and
    ``extra`` zeros when not given; ``ref`` and ``ent`` None when not given.
    """
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp")
    if entropy_coef != 0 and entropy is None:
        raise ValueError("entropy_coef != 0 needs entropy")
    _check_log_ratio(logp, old_logp, "logp", "old_logp")
    if ref_logp is not None:
        _check_log_ratio(ref_logp, logp, "ref_logp", "logp")
    lp = as_tensor(logp, "logp")                                              # (B, T), differentiable

    def aux(x, name, fill):
        if x is None:
            return None if fill is None else torch.full_like(lp, fill).detach()
        return as_tensor(x, name).to(dtype=lp.dtype, device=lp.device)

    return (lp, aux(old_logp, "old_logp", None).detach(), _as_advantages(advantages, lp), _as_mask(mask, lp),
            None if ref_logp is None else aux(ref_logp, "ref_logp", None).detach(),
            aux(token_weights, "token_weights", 1.0).detach(), aux(extra_token_loss, "extra_token_loss", 0.0),
            aux(entropy, "entropy", None))


def _masked_mean(x, mask):
    """Mean of ``x`` over the valid tokens; a (B, 1) tensor is one value per sequence (as TRL logs it)."""
    if x.shape[-1] == 1 and mask.shape[-1] != 1:
        return float(x.float().mean())
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


@torch.no_grad()
def _loss_info(ratio, adv, m, kl, ent, *, loss_type, eps_low, eps_high) -> dict:
    """TRL's diagnostics of a policy loss: where the clip stops the gradient, the mean ratio, KL, entropy."""
    if loss_type == "cispo":
        low = torch.zeros_like(ratio * adv, dtype=torch.bool)
        high = (ratio > eps_high) & (adv > 0)
    else:
        low = (ratio < 1 - eps_low) & (adv < 0)
        high = (ratio > 1 + eps_high) & (adv > 0)
    info = {"clip_low": _masked_mean(low.to(ratio.dtype), m), "clip_high": _masked_mean(high.to(ratio.dtype), m),
            "ratio": _masked_mean(ratio, m)}
    info["clip_ratio"] = info["clip_low"] + info["clip_high"]
    info["kl"] = _masked_mean(kl, m) if kl is not None else 0.0
    if ent is not None:
        info["entropy"] = _masked_mean(ent, m)
    return info


@validate_params({
    "logp": [_LOGP],
    "old_logp": [_LOGP],
    "advantages": _ADVANTAGES,
    "mask": _MASK,
    "loss_type": [Options(LOSS_TYPES)],
    "epsilon": [_FRACTION],
    "epsilon_high": [Interval(float, 0, 100), None],
    "importance_sampling_level": [Options(("token", "sequence"))],
    "clip": ["boolean"],
    "beta": [_COEF],
    "ref_logp": [_LOGP, None],
    "use_bias_correction_kl": ["boolean"],
    "max_completion_length": [_INT_POS, None],
    "alpha": [_NONNEG],
    "num_items_in_batch": [Interval(float, 0, None, closed="neither"), None],
    "token_weights": [Array(ndim=2, shape=("B", "T"), low=0, max_abs=_MAX_COEF), None],
    "extra_token_loss": [Array(ndim=2, shape=("B", "T"), max_abs=_MAX_COEF, tensor=True), None],
    "entropy": [Array(ndim=2, shape=("B", "T"), low=0, high=_MAX_ENTROPY), None],
    "entropy_coef": [Interval(float, -_MAX_COEF, _MAX_COEF)],
})
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
      cap of the ratio itself (TRL's convention; ScaleRL recommends 5). ``clip`` is ignored.
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
        Log-probabilities of the sampled tokens under the current and the sampling policy
        (finite; ``logp - old_logp`` at most 80, so that the ratio is finite).
    advantages : tensor, shape (B,) or (B, T)
    mask : tensor, shape (B, T), optional
        1 for completion tokens, 0 for padding.
    loss_type : {"grpo", "bnpo", "dr_grpo", "dapo", "cispo", "delta_l"}
    epsilon, epsilon_high : float
        Clip range (TRL's names), ``epsilon`` in [0, 1] and ``epsilon_high`` in [0, 100];
        ``epsilon_high=None`` means ``epsilon``.
    importance_sampling_level : {"token", "sequence"}
    clip : bool
        ``False`` drops the clip (KL-Cov's surrogate); not with ``"cispo"``.
    beta : float
        Weight of the k3 KL penalty; needs ``ref_logp``.
    ref_logp : tensor, shape (B, T), optional
        Log-probabilities under the reference policy.
    use_bias_correction_kl : bool
        Multiply the k3 term by the importance ratio (TRL's default).
    max_completion_length, alpha, num_items_in_batch
        See :func:`aggregation_weights`.
    token_weights : tensor, shape (B, T), optional
        Non-negative weights of the policy term (detached).
    extra_token_loss : tensor, shape (B, T), optional
        A differentiable per-token loss added to the policy term.
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
    - schulman2017proximal: Schulman et al. (2017), "Proximal Policy Optimization Algorithms".
    - shao2024deepseekmath: Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models".
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".
    - liu2025understanding: Liu et al. (2025), "Understanding R1-Zero-Like Training: A Critical Perspective".
    - zheng2025gspo: Zheng et al. (2025), "Group Sequence Policy Optimization".
    - minimax2025m1: MiniMax (2025), "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning
      Attention".

    Examples
    --------
    >>> logp = torch.log(torch.tensor([[1.3, 0.9]], dtype=torch.float64)).requires_grad_()
    >>> loss, info = policy_loss(logp, torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1.0]))
    >>> round(loss.item(), 4), info["clip_high"]
    (-1.05, 0.5)
    """
    lp, olp, adv, m, ref, w, extra, ent = _loss_inputs(
        logp, old_logp, advantages, mask, ref_logp, token_weights, extra_token_loss, entropy,
        beta=beta, entropy_coef=entropy_coef)
    eps_low, eps_high = epsilon, epsilon if epsilon_high is None else epsilon_high
    c = aggregation_weights(m, loss_type, max_completion_length=max_completion_length, alpha=alpha,
                            num_items_in_batch=num_items_in_batch)[:, None]   # (B, 1)

    log_ratio = lp - olp                                                     # (B, T)
    if importance_sampling_level == "sequence":                              # GSPO: one ratio per answer
        log_ratio = (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)  # (B, 1)
    ratio = torch.exp(log_ratio)                                             # (B, T) or (B, 1)

    if loss_type == "cispo":                                                 # clipped, detached ratio x log pi
        per_token = -torch.clamp(ratio, max=eps_high).detach() * adv * lp    # (B, T)
    elif clip:                                                               # PPO's clipped surrogate
        per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)
    else:                                                                    # KL-Cov's unclipped surrogate
        per_token = -ratio * adv
    per_token = per_token * w + extra                                        # interventions (STEER, Clip-Cov, ...)
    kl = None
    if ref is not None:                                                      # beta k3 (x ratio: TRL's correction)
        kl = k3_kl(lp, ref) * (ratio if use_bias_correction_kl else 1.0)
        per_token = per_token + beta * kl
    loss = (c * per_token * m).sum()                                         # sum_i c_i sum_t l_it
    if entropy_coef != 0:                                                    # token-mean entropy bonus
        loss = loss - entropy_coef * (ent * m).sum() / m.sum().clamp(min=1.0)
    return loss, _loss_info(ratio, adv, m, kl, ent, loss_type=loss_type, eps_low=eps_low, eps_high=eps_high)


# ----------------------------------------------------------------------------------------
# the entropy mechanism
# ----------------------------------------------------------------------------------------
@validate_params({"logits": [_LOGITS]})
def softmax_entropy(logits):
    r"""Entropy ``H(z) = -sum_a pi_a log pi_a`` of ``pi = softmax(z)`` (last axis).

    Accepts numpy arrays or tensors of any leading shape; returns the same kind.

    Examples
    --------
    >>> round(float(softmax_entropy(np.zeros(4))), 4)   # uniform over 4 actions: log 4
    1.3863
    """
    return token_entropy(logits)


_UPDATE = {"logits": [_LOGITS], "advantages": [Array(min_size=1, max_abs=_MAX_COEF)],
           "lr": [_LR], "update": [Options(("vanilla", "natural"))]}


@validate_params({"logits": [_LOGITS], "delta_logits": [Array(min_size=1, max_abs=_MAX_COEF)]})
def first_order_entropy_change(logits, delta_logits):
    r"""First-order change of a softmax policy's entropy under a logit update.

    For ``pi = softmax(z)`` and a small change ``Delta z`` (Cui et al., 2025),

    .. math:: \Delta H \approx -\mathrm{Cov}_{a\sim\pi}\bigl(\log\pi(a),\ \Delta z_a\bigr)
              = -\sum_a \pi_a (\log\pi_a - \overline{\log\pi})\,\Delta z_a .

    Entropy falls when the update raises the logits of actions that are already likely.
    Works on the last axis (batched states allowed).

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    _check_same_shape(logits, delta_logits, "logits", "delta_logits")
    z = as_tensor(logits, "logits").to(torch.float64)
    dz = as_tensor(delta_logits, "delta_logits").to(torch.float64)
    logp = F.log_softmax(z, dim=-1)
    p = logp.exp()
    centred = logp - (p * logp).sum(-1, keepdim=True)                         # log pi - E_pi log pi
    return _like_input(-(p * centred * dz).sum(-1), logits)


@validate_params(_UPDATE)
def logit_update(logits, advantages, lr: float, update: str = "vanilla"):
    r"""The expected policy-gradient step on the logits of a softmax policy.

    The objective is ``J = E_{a~pi}[A(a)]`` with ``A`` held fixed. Its gradient with respect
    to the logits is ``pi_a (A_a - E_pi A)``, so

    - ``update="vanilla"``: ``Delta z_a = lr * pi_a (A_a - E_pi A)``;
    - ``update="natural"`` (natural policy gradient, tabular softmax):
      ``Delta z_a = lr * (A_a - E_pi A)``.

    (Cui et al. (2025), with advantages centred under the policy so that the
    expected update is exact.)

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    _check_same_shape(logits, advantages, "logits", "advantages")
    z = as_tensor(logits, "logits").to(torch.float64)
    A = as_tensor(advantages, "advantages").to(torch.float64)
    p = torch.softmax(z, dim=-1)
    centred = A - (p * A).sum(-1, keepdim=True)                               # A - E_pi A
    step = p * centred if update == "vanilla" else centred
    return _like_input(lr * step, logits)


@validate_params(_UPDATE)
def entropy_change(logits, advantages, lr: float, update: str = "vanilla"):
    """Exact entropy change ``H(z + Delta z) - H(z)`` of one :func:`logit_update` step.

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".

    Examples
    --------
    >>> z, A = np.log([0.5, 0.3, 0.2]), np.array([1.0, 0.0, 0.0])   # reward the likeliest action
    >>> round(float(entropy_change(z, A, lr=0.1)), 5)
    -0.00634
    """
    z = as_tensor(logits, "logits").to(torch.float64)
    dz = torch.as_tensor(logit_update(logits, advantages, lr, update)).to(z)
    out = torch.as_tensor(softmax_entropy(z + dz)) - torch.as_tensor(softmax_entropy(z))
    return _like_input(out, logits)


@validate_params(_UPDATE)
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

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".

    Examples
    --------
    >>> z, A = np.log([0.5, 0.3, 0.2]), np.array([1.0, 0.0, 0.0])
    >>> round(float(predicted_entropy_change(z, A, lr=0.1)), 5)   # entropy_change gives -0.00634
    -0.00615
    """
    return first_order_entropy_change(logits, logit_update(logits, advantages, lr, update))


@validate_params({"logp": [_LOGP], "advantages": _ADVANTAGES, "mask": _MASK})
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

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    lp = as_tensor(logp, "logp").detach().to(torch.float64)                   # (B, T)
    A = _as_advantages(advantages, lp).expand_as(lp)                          # (B, T)
    m = _as_mask(mask, lp)                                                    # (B, T)
    n = m.sum().clamp(min=1.0)
    a_bar, l_bar = (A * m).sum() / n, (lp * m).sum() / n
    return _like_input((A - a_bar) * (lp - l_bar) * m, logp)


# ----------------------------------------------------------------------------------------
# interventions
# ----------------------------------------------------------------------------------------
@validate_params({
    "cov": [Array(ndim=2, shape=("B", "T"), min_size=1)],
    "mask": _MASK,
    "ratio": [_FRACTION],
    "bounds": [Array(ndim=1, shape=(2,))],
    "clipped": [Array(ndim=2, shape=("B", "T"), dtype="bool"), None],
    "generator": _GENERATOR,
})
def clip_cov_mask(cov, mask=None, *, ratio: float = 2e-4, bounds=(1.0, 5.0), clipped=None, generator=None):
    r"""Tokens whose gradient Clip-Cov stops, selected as in Cui et al.'s released code.

    Among the valid tokens that the PPO clip has *not* already clipped and whose covariance
    lies in ``bounds[0] < cov_t < bounds[1]``, pick ``max(1, int(ratio * n_valid))`` of them
    (at most all candidates) uniformly at random; the loss multiplies their clipped
    surrogate by 0 (verl's ``compute_policy_loss_clip_cov``, ``clip_cov_ratio=2e-4``,
    ``clip_cov_lb=1``, ``clip_cov_ub=5``). The reference recomputes ``cov`` from the current
    log-probabilities at every update, over the update's micro-batch, and so does
    :func:`train_grpo`, whose micro-batch is the step's whole batch (tests/test_rl.py
    compares the loss and its gradient with a transcription of the reference).

    Parameters
    ----------
    cov : tensor, shape (B, T)
        :func:`token_covariance` of the current log-probabilities.
    mask : shape (B, T), optional
    ratio : float
        Fraction of the valid tokens to detach (at least one when a candidate exists).
    bounds : (float, float)
        The covariance band of the candidates (increasing).
    clipped : bool tensor, shape (B, T), optional
        Tokens the PPO clip already clipped (excluded, as in the reference).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor of bool, shape (B, T) (True = detach).

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    lo, hi = _check_pair(bounds, "bounds")
    c = as_tensor(cov, "cov").detach()                                          # (B, T)
    m = _as_mask(mask, c) > 0
    ok = m if clipped is None else m & ~torch.as_tensor(clipped, device=c.device)
    candidates = torch.nonzero(((c > lo) & (c < hi) & ok).reshape(-1)).reshape(-1)
    k = min(max(1, int(ratio * int(m.sum()))), candidates.numel()) if ratio > 0 else 0
    out = torch.zeros(c.numel(), dtype=torch.bool)
    if k > 0:
        pick = candidates[torch.randperm(candidates.numel(), generator=generator)[:k]]
        out[pick] = True
    return out.reshape(c.shape)


@validate_params({"cov": [Array(ndim=2, shape=("B", "T"), min_size=1)], "mask": _MASK, "ratio": [_FRACTION]})
def kl_cov_mask(cov, mask=None, *, ratio: float = 2e-3):
    r"""Tokens that KL-Cov penalises: the top ``max(1, int(ratio * n_valid))`` valid tokens by ``cov_t``.

    As in Cui et al.'s released code (verl's ``compute_policy_loss_kl_cov``, where
    ``k_percent = 100 * ratio = 0.2``), the count is rounded down but is at least one, so a
    small batch still has one penalised token. KL-Cov's loss is the *unclipped* surrogate
    ``-A rho`` on every token plus ``kl_coef * |log pi_t - log pi_old,t|`` on these tokens
    (:func:`train_grpo` with ``intervention="kl_cov"``, which selects them from the current
    log-probabilities at every update, over the whole batch, where the reference uses each
    micro-batch). One difference: the reference computes the count from
    ``min(k_percent, n_valid)``, so with ``100 * ratio > n_valid`` (never at the papers'
    fractions) it selects fewer tokens than here.

    Returns
    -------
    torch.Tensor of bool, shape (B, T).

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".

    Examples
    --------
    >>> kl_cov_mask(torch.tensor([[0.5, -1.0], [2.0, 0.1]]), ratio=0.2).tolist()
    [[False, False], [True, False]]
    """
    c = as_tensor(cov, "cov").detach()                                          # (B, T)
    m = _as_mask(mask, c) > 0
    n = int(m.sum())
    k = min(max(1, int(ratio * n)), n) if ratio > 0 else 0
    out = torch.zeros(c.numel(), dtype=torch.bool)
    if k > 0:
        scores = torch.where(m, c, torch.full_like(c, -math.inf)).reshape(-1)
        out[torch.topk(scores, k).indices] = True
    return out.reshape(c.shape)


@validate_params({
    "advantages": _ADVANTAGES,
    "old_logp": [Array(ndim=2, shape=("B", "T"), min_size=1, high=0)],
    "entropy": [Array(ndim=2, shape=("B", "T"), low=0, high=_MAX_ENTROPY)],
    "mask": _MASK,
    "w_min": [Interval(float, 0, 1, closed="neither")],
})
def steer_weights(advantages, old_logp, entropy, mask=None, *, w_min: float = 0.5):
    r"""STEER's per-token loss weights (Hao et al., 2025, STEER).

    STEER estimates each token's contribution to the entropy change,

    .. math:: \Omega_t = \frac{A_t}{\pi_{\text{old},t}}\, p_t (1 - p_t)(\log p_t + H_t),

    with ``p_t = pi_old,t`` the probability of the sampled token and ``H_t`` the token
    entropy, and damps the tokens that would change the entropy most:

    .. math:: \lambda_t = \mathrm{clamp}\bigl(e^{-k|\Omega_t|},\, w_{\min},\, 1\bigr), \qquad
              k = \frac{-\ln w_{\min}}{\max(\max_t |\Omega_t|,\ 0.02)} .

    ``old_logp`` are log-probabilities (``<= 0``), ``entropy`` non-negative.
    Returns a detached tensor of shape (B, T) with values in ``[w_min, 1]``.

    References
    ----------
    - hao2025rethinking: Hao et al. (2025), "Rethinking Entropy Interventions in RLVR: An Entropy Change
      Perspective".
    """
    olp = as_tensor(old_logp, "old_logp").detach().to(torch.float64)           # (B, T)
    H = as_tensor(entropy, "entropy").detach().to(torch.float64)               # (B, T)
    A = _as_advantages(advantages, olp).expand_as(olp)                        # (B, T)
    m = _as_mask(mask, olp)
    p = olp.exp()
    omega = (A / p) * p * (1 - p) * (olp + H) * m
    k = -math.log(w_min) / max(float(omega.abs().max()), 0.02)
    return torch.clamp(torch.exp(-k * omega.abs()), w_min, 1.0)


@validate_params({"progress_fraction": [_FRACTION]})
def epo_phase_weight(progress_fraction: float) -> float:
    r"""EPO's phase weight ``beta_k`` of the entropy smoothing term (Xu et al., 2025, EPO).

    With ``p`` the progress *within the current half* of training (0 to 1),

    .. math:: \beta = 1 - 0.2\,(1 - e^{-2p}) \ \text{(first half)}, \qquad
              \beta = 0.8\, e^{-3p} \ \text{(second half)},

    a strong constraint early that is relaxed late. (We read ``p`` as the progress inside
    each half, which makes the schedule nearly continuous at the midpoint; this reading is
    ours.) ``progress_fraction`` is the progress of the whole run in ``[0, 1]``.

    References
    ----------
    - xu2025epo: Xu et al. (2025), "EPO: Entropy-regularized Policy Optimization for LLM Agents
      Reinforcement Learning".
    """
    f = float(progress_fraction)
    if f < 0.5:
        p = 2 * f
        return 1 - 0.2 * (1 - math.exp(-2 * p))
    p = 2 * (f - 0.5)
    return 0.8 * math.exp(-3 * p)


@validate_params({
    "entropy": [Array(ndim=2, shape=("B", "T"), min_size=1, low=0, high=_MAX_ENTROPY)],
    "reference": [Interval(float, 0, _MAX_COEF)],
    "mask": _MASK,
    "kappa": [Array(ndim=1, shape=(2,), low=0, max_abs=_MAX_COEF)],
})
def epo_smoothing_penalty(entropy, reference: float, mask=None, *, kappa=(0.8, 1.2)):
    r"""EPO's entropy smoothing penalty per token (Xu et al., 2025, EPO).

    Keeps each token's entropy inside ``[kappa_l, kappa_r] x H_hist`` with ``H_hist`` the
    historical mean entropy, with a differentiable hinge:

    .. math:: s_t = \mathrm{relu}(\kappa_l H_{\text{hist}} - H_t) + \mathrm{relu}(H_t - \kappa_r H_{\text{hist}}).

    ``kappa = (kappa_l, kappa_r)`` with ``0 <= kappa_l <= kappa_r``. Returns a tensor of
    ``entropy``'s shape (zero on padding), differentiable in ``entropy``.

    References
    ----------
    - xu2025epo: Xu et al. (2025), "EPO: Entropy-regularized Policy Optimization for LLM Agents
      Reinforcement Learning".
    """
    kl, kr = _check_pair(kappa, "kappa")
    H = as_tensor(entropy, "entropy")                                          # (B, T)
    m = _as_mask(mask, H)
    return (F.relu(kl * reference - H) + F.relu(H - kr * reference)) * m


@validate_params({
    "coef": [_COEF], "entropy": [_COEF], "target": [_COEF], "delta": [_COEF], "c_min": [_COEF], "c_max": [_COEF],
})
def adaptive_entropy_coef(coef: float, entropy: float, target: float, *, delta: float = 5e-3,
                          c_min: float = 0.0, c_max: float = 0.05) -> float:
    r"""One update of Skywork-OR1's adaptive entropy coefficient (He et al., 2025, Skywork-OR1).

    .. math:: c \leftarrow \mathrm{clip}\bigl(c + \delta\,\mathrm{sign}(H_{\text{target}} - H),\ c_{\min},\ c_{\max}\bigr);

    :func:`train_grpo` applies the bonus only while ``H < H_target``. Every argument is a
    non-negative number, ``c_min <= c_max``.

    References
    ----------
    - he2025skywork: He et al. (2025), "Skywork Open Reasoner 1 Technical Report".
    """
    c_min, c_max = _check_pair((c_min, c_max), "c_min, c_max")
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
        check_params({"rewards": rewards}, {"rewards": [Array(ndim=1, min_rows=2, max_abs=_MAX_COEF)]})
        r = np.asarray(as_tensor(rewards, "rewards").cpu())
        self.rewards = torch.as_tensor(r, dtype=torch.float32)
        self.vocab_size = len(r)
        self.answer_length = 1
        self.num_prompts = 1
        self.eos = None
        self.success = float(r.max())  # the reward that counts as correct

    def all_prompts(self) -> torch.Tensor:
        return torch.zeros(1, 1, dtype=torch.long)

    @validate_params({"n": [_INT_POS], "generator": _GENERATOR})
    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        return torch.zeros(n, 1, dtype=torch.long)

    _ANSWERS = {"prompts": [TokenIds(high=1, shape=("n", 1), min_size=1)],
                "answers": [TokenIds(high="self.vocab_size", shape=("n", 1))]}

    @validate_params(_ANSWERS)
    def reward(self, prompts, answers) -> torch.Tensor:
        """The reward of each answer (prompts: zeros (n, 1); answers: arms (n, 1))."""
        return self.rewards.to(answers.device)[answers[:, 0]]

    @validate_params(_ANSWERS)
    def is_correct(self, prompts, answers) -> torch.Tensor:
        """Whether each answer is a best arm."""
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

    Prompt digits must lie in ``[0, p)``, answer tokens in ``[0, vocab_size)`` and answers
    have exactly ``length`` tokens; anything else raises ``ValueError``.

    Examples
    --------
    >>> task = ModularTask(p=5, length=2, target="sum")
    >>> prompts = torch.tensor([[1, 2], [4, 4]])
    >>> task.target(prompts).tolist()
    [3, 3]
    >>> task.reward(prompts, torch.tensor([[1, 2], [0, 0]])).tolist()   # 1 + 2 = 3; 0 + 0 != 3
    [1.0, 0.0]
    """

    def __init__(self, p: int = 11, length: int = 2, target: str = "product", eos: bool = False):
        check_params({"p": p, "length": length, "target": target, "eos": eos},
                     {"p": [Interval(int, 2, 10_000)], "length": [Interval(int, 1, 64)],
                      "target": [Options(("product", "sum"))], "eos": ["boolean"]})
        self.p, self.answer_length, self.target_rule = int(p), int(length), target
        self.eos = self.p if eos else None
        self.vocab_size = self.p + 1 if eos else self.p
        self.num_prompts = self.p * self.p
        self.success = 1.0  # the reward that counts as correct

    def all_prompts(self) -> torch.Tensor:
        """Every prompt ``(a, b)``, shape (p^2, 2)."""
        a = torch.arange(self.p)
        return torch.cartesian_prod(a, a)

    @validate_params({"n": [_INT_POS], "generator": _GENERATOR})
    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        """``n`` uniformly random prompts, shape (n, 2)."""
        return torch.randint(0, self.p, (n, 2), generator=generator)

    _PROMPTS = TokenIds(high="self.p", shape=("n", 2), min_size=1)
    _ANSWERS = TokenIds(high="self.vocab_size", shape=("n", "self.answer_length"), min_size=1)

    @validate_params({"prompts": [_PROMPTS]})
    def target(self, prompts) -> torch.Tensor:
        """The target sum ``a b`` (or ``a + b``) mod ``p`` of each prompt, shape (n,)."""
        return self._target(prompts)

    @validate_params({"prompts": [_PROMPTS], "answers": [_ANSWERS]})
    def reward(self, prompts, answers) -> torch.Tensor:
        """1.0 for a correct answer, 0.0 otherwise, shape (n,)."""
        return self._is_correct(prompts, answers).float()

    @validate_params({"answers": [_ANSWERS]})
    def digits(self, answers):
        """``(digits, n_digits)``: the answer digits (zero after the end token) and their count."""
        return self._digits(answers)

    @validate_params({"prompts": [_PROMPTS], "answers": [_ANSWERS]})
    def is_correct(self, prompts, answers) -> torch.Tensor:
        """Whether each answer's digits sum to its prompt's target mod ``p`` (and it has a digit), shape (n,)."""
        return self._is_correct(prompts, answers)

    @validate_params({"prompts": [_PROMPTS], "generator": _GENERATOR})
    def sample_correct(self, prompts, generator=None) -> torch.Tensor:
        """A uniformly random correct answer for each prompt (for the supervised warm start).

        With ``eos=True`` its number of digits is uniform in ``1..length``.
        """
        n, L = prompts.shape[0], self.answer_length
        if self.eos is None:
            free = torch.randint(0, self.p, (n, L - 1), generator=generator)      # (n, L - 1)
            last = (self._target(prompts) - free.sum(dim=1)) % self.p
            return torch.cat([free, last[:, None]], dim=1)
        free = torch.randint(0, self.p, (n, L), generator=generator)              # (n, L)
        n_digits = torch.randint(1, L + 1, (n,), generator=generator)             # (n,)
        pos = torch.arange(L)[None, :]
        free = torch.where(pos < n_digits[:, None] - 1, free, torch.zeros_like(free))
        last = (self._target(prompts) - free.sum(dim=1)) % self.p
        answers = torch.where(pos == n_digits[:, None] - 1, last[:, None], free)
        return torch.where(pos >= n_digits[:, None], torch.full_like(answers, self.eos), answers)

    def _target(self, prompts):
        a, b = prompts[:, 0], prompts[:, 1]
        return (a * b) % self.p if self.target_rule == "product" else (a + b) % self.p

    def _digits(self, answers):
        if self.eos is None:
            return answers, torch.full((answers.shape[0],), answers.shape[1], device=answers.device)
        before_end = torch.cumsum(answers == self.eos, dim=1) == 0             # (n, L)
        return answers * before_end, before_end.sum(dim=1)

    def _is_correct(self, prompts, answers):
        digits, n = self._digits(answers)
        return (digits.sum(dim=1) % self.p == self._target(prompts).to(answers.device)) & (n > 0)


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
        check_params({"task": task, "num_templates": num_templates},
                     {"task": [BanditTask, ModularTask], "num_templates": [_INT_POS]})
        if num_templates > task.vocab_size:
            raise ValueError(f"num_templates must be <= the task's vocab_size {task.vocab_size} "
                             f"(template tokens reuse its alphabet), got {num_templates}")
        self.task, self.num_templates = task, int(num_templates)
        self.vocab_size = task.vocab_size
        self.answer_length = task.answer_length
        self.num_prompts = task.num_prompts
        self.eos = getattr(task, "eos", None)
        self.success = task.success

    _PROMPTS = TokenIds(high="self.vocab_size", ndim=2, shape=("n", None), min_size=1)

    @validate_params({"prompts": [_PROMPTS]})
    def problems(self, prompts) -> torch.Tensor:
        """The problems behind templated prompts (the template token removed)."""
        return prompts[:, 1:]

    @validate_params({"prompts": [_PROMPTS]})
    def templates(self, prompts) -> torch.Tensor:
        """The template index of each templated prompt."""
        return prompts[:, 0]

    @validate_params({"problems": [TokenIds(ndim=2, shape=("n", None), min_size=1)],
                      "templates": [TokenIds(high="self.num_templates", ndim=1, shape=("n",))]})
    def format(self, problems, templates) -> torch.Tensor:
        """The policy input ``(t, x)`` for problems ``x`` (n, P) and template indices ``t`` (n,)."""
        t = torch.as_tensor(templates, dtype=torch.long, device=problems.device)
        return torch.cat([t[:, None], problems], dim=1)                          # (n, 1 + P)

    def all_prompts(self) -> torch.Tensor:
        """Every problem under template 0 (the test-time format)."""
        p = self.task.all_prompts()
        return self.format(p, torch.zeros(p.shape[0], dtype=torch.long))

    @validate_params({"n": [_INT_POS], "generator": _GENERATOR})
    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        """``n`` random problems, each under a uniformly random template."""
        p = self.task.sample_prompts(n, generator)
        return self.format(p, torch.randint(0, self.num_templates, (n,), generator=generator))

    @validate_params({"prompts": [_PROMPTS]})
    def reward(self, prompts, answers) -> torch.Tensor:
        """The underlying task's reward for the problem behind each prompt."""
        return self.task.reward(prompts[:, 1:], answers)

    @validate_params({"prompts": [_PROMPTS]})
    def is_correct(self, prompts, answers) -> torch.Tensor:
        """The underlying task's verdict for the problem behind each prompt."""
        return self.task.is_correct(prompts[:, 1:], answers)

    @validate_params({"prompts": [_PROMPTS]})
    def sample_correct(self, prompts, generator=None) -> torch.Tensor:
        """A random correct answer to the problem behind each prompt."""
        return self.task.sample_correct(prompts[:, 1:], generator)


_TASKS = [BanditTask, ModularTask, TemplatedTask]


@validate_params({"task": _TASKS,
                  "answers": [TokenIds(high=lambda args: args["task"].vocab_size, ndim=2, min_size=1)]})
def answer_mask(task, answers) -> torch.Tensor:
    """1 on an answer's tokens (its digits and its end token), 0 on the padding after it, shape (n, L).

    For tasks without an end token every position counts.
    """
    answers = torch.as_tensor(answers)
    if task.eos is None:
        return torch.ones(answers.shape, dtype=torch.float32, device=answers.device)
    ended_before = (torch.cumsum(answers == task.eos, dim=1) - (answers == task.eos).long()) > 0   # (n, L)
    return (~ended_before).float()


def _policy_device(policy, device=None) -> torch.device:
    """Move ``policy`` to ``device`` (default: where its parameters already are) and return it."""
    if device is None:
        return next(policy.parameters()).device
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device ('cpu', 'cuda', 'mps', ...), got {device!r}") from err
    policy.to(device)
    return device


def _check_policy_task(policy, task) -> None:
    """The policy speaks the task's alphabet: one logit per token of the task's vocabulary."""
    if getattr(policy, "vocab_size", None) != task.vocab_size:
        raise ValueError(f"policy must have the task's vocab_size {task.vocab_size}, "
                         f"got {getattr(policy, 'vocab_size', None)}")


def _with_templates(task, num_templates: int):
    """``task`` itself for one template (the plain, unaugmented path), else a :class:`TemplatedTask`."""
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
        check_params({"num_actions": num_actions, "init_logits": init_logits},
                     {"num_actions": [Interval(int, 2, None)],
                      "init_logits": [Array(ndim=1, shape=("num_actions",), max_abs=_MAX_COEF), None]})
        init = torch.zeros(num_actions) if init_logits is None else as_tensor(init_logits, "init_logits")
        self.vocab_size = int(num_actions)
        self.logits = nn.Parameter(init.detach().to(torch.float32).clone())

    @validate_params({"prompts": [TokenIds(high="self.vocab_size", ndim=2, shape=("n", None), min_size=1)],
                      "answers": [TokenIds(high="self.vocab_size", ndim=2, shape=("n", None))],
                      "last_only": ["boolean"]})
    def answer_logits(self, prompts, answers, last_only: bool = False):
        """The same logits for every prompt and position: (n, V) with ``last_only``, else (n, L, V)."""
        n = prompts.shape[0]
        if last_only:
            return self.logits.expand(n, -1)
        return self.logits.expand(n, max(answers.shape[1], 1), -1)


class GRUPolicy(_Policy):
    """A tiny shared-parameter autoregressive policy: embedding, one GRU layer, linear head.

    It reads the prompt tokens, a separator, then the answer so far, and outputs logits over
    the ``vocab_size`` answer digits. Every prompt shares every parameter, as in a language
    model, so sharpening one prompt's answers moves all the others.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> policy = GRUPolicy(vocab_size=5, hidden=8, embed=4)
    >>> prompts, answers = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[0, 1, 2], [4, 4, 4]])
    >>> tuple(policy.answer_logits(prompts, answers).shape)            # (n, L, V)
    (2, 3, 5)
    >>> logp, entropy, _ = policy.score(prompts, answers)             # (n, L) each
    >>> tuple(logp.shape), bool((entropy <= math.log(5) + 1e-6).all())
    ((2, 3), True)
    """

    def __init__(self, vocab_size: int, hidden: int = 64, embed: int = 32):
        super().__init__()
        check_params({"vocab_size": vocab_size, "hidden": hidden, "embed": embed},
                     {"vocab_size": [Interval(int, 2, None)], "hidden": [_INT_POS], "embed": [_INT_POS]})
        self.vocab_size = int(vocab_size)
        self.sep = self.vocab_size
        self.embed = nn.Embedding(self.vocab_size + 1, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, self.vocab_size)

    @validate_params({"prompts": [TokenIds(high="self.vocab_size", ndim=2, shape=("n", None), min_size=1)],
                      "answers": [TokenIds(high="self.vocab_size", ndim=2, shape=("n", None))],
                      "last_only": ["boolean"]})
    def answer_logits(self, prompts, answers, last_only: bool = False):
        """Logits of the next answer token: (n, V) after the whole answer with ``last_only``, else
        (n, L, V) for each answer position (teacher forcing). Prompt and answer tokens are ids
        below ``vocab_size``."""
        n, P = prompts.shape
        sep = torch.full((n, 1), self.sep, dtype=torch.long, device=prompts.device)
        L = answers.shape[1]
        tokens = torch.cat([prompts, sep, answers if last_only else answers[:, :-1]], dim=1)
        hidden, _ = self.gru(self.embed(tokens))
        if last_only:
            return self.head(hidden[:, -1])
        return self.head(hidden[:, P:P + L])


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
@validate_params({"policy": [_Policy], "task": _TASKS, "steps": [_INT_NONNEG], "batch_size": [_INT_POS],
                  "lr": [_LR], "seed": [_SEED], "prompt_templates": [_INT_POS], "device": _DEVICE})
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
    _check_policy_task(policy, task)
    task = _with_templates(task, prompt_templates)
    device = _policy_device(policy, device)
    gen = torch.Generator().manual_seed(seed)
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
@validate_params({"n": [Interval(int, 1, None), Array(dtype="integer", min_size=1, low=1)],
                  "c": [Interval(int, 0, None), Array(dtype="integer", min_size=1, low=0)],
                  "k": [_INT_POS]})
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

    References
    ----------
    - chen2021evaluating: Chen et al. (2021), "Evaluating Large Language Models Trained on Code".

    Examples
    --------
    >>> round(pass_at_k(10, 3, 1), 4), round(pass_at_k(10, 3, 4), 4)
    (0.3, 0.8333)
    """
    try:
        n_arr, c_arr = np.broadcast_arrays(np.atleast_1d(np.asarray(n, dtype=np.int64)),
                                           np.atleast_1d(np.asarray(c, dtype=np.int64)))
    except ValueError:
        raise ValueError(f"c must have n's shape {np.shape(n)} (or broadcast to it), got {np.shape(c)}") from None
    if np.any(n_arr < k):
        raise ValueError(f"n must be >= k={k}, got minimum {n_arr.min()}")
    if np.any(c_arr > n_arr):
        raise ValueError("c must satisfy 0 <= c <= n")
    out = np.empty(n_arr.shape, dtype=np.float64)
    for idx, (ni, ci) in enumerate(zip(n_arr.ravel(), c_arr.ravel())):
        if ni - ci < k:
            out.flat[idx] = 1.0
        else:
            out.flat[idx] = 1.0 - np.prod(1.0 - k / np.arange(ni - ci + 1, ni + 1))
    scalar = np.ndim(n) == 0 and np.ndim(c) == 0
    return float(out.ravel()[0]) if scalar else out


_KS = Array(ndim=1, dtype="integer", min_size=1, low=1)


def _check_ks(ks, n_samples: int, name: str = "ks") -> None:
    if max(int(k) for k in ks) > n_samples:
        raise ValueError(f"{name} must be <= the number of samples per prompt ({n_samples}), got {tuple(ks)}")


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
@torch.no_grad()
@validate_params({"policy": [_Policy], "task": _TASKS, "n_samples": [_INT_POS], "ks": [_KS], "seed": [_SEED],
                  "device": _DEVICE})
def evaluate_policy(policy, task, *, n_samples: int = 32, ks=(1, 4, 32), seed: int = 1234,
                    device=None) -> dict:
    r"""pass@k, reward, token entropy, distinct correct answers and lengths on every prompt of ``task``.

    Draws ``n_samples`` answers per prompt. ``distinct_correct`` is the mean number of
    different correct answers among them (how many solutions the policy still knows);
    ``entropy`` the mean token entropy of the policy on its own answers' tokens;
    ``length``, ``length_correct`` and ``length_wrong`` the mean number of answer tokens
    (:func:`answer_mask`) of all, correct and wrong answers (NaN when there are none).
    ``ks`` are at most ``n_samples``.

    References
    ----------
    - chen2021evaluating: Chen et al. (2021), "Evaluating Large Language Models Trained on Code".
    """
    _check_ks(ks, n_samples)
    _check_policy_task(policy, task)
    gen = torch.Generator().manual_seed(seed)
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


_LAW_COEF = Interval(float, -1e100, 1e100)  # exp(H <= 50) times it stays finite


@dataclass
class EntropyPerformanceFit:
    """Result of :func:`fit_entropy_performance`: ``R = -a exp(H) + b`` (finite ``a``, ``b``; ``r2 <= 1``)."""

    a: float
    b: float
    r2: float

    def __post_init__(self):
        check_params({"a": self.a, "b": self.b, "r2": self.r2},
                     {"a": [_LAW_COEF], "b": [_LAW_COEF], "r2": [Interval(float, None, 1)]})

    @property
    def ceiling(self) -> float:
        """The predicted performance when the entropy is exhausted, ``R(H=0) = b - a``."""
        return self.b - self.a

    @validate_params({"H": [Interval(float, 0, _MAX_ENTROPY), Array(min_size=1, low=0, high=_MAX_ENTROPY)]})
    def predict(self, H):
        """The law at entropies ``H`` (nats, in [0, 50]; any shape, evaluated entrywise)."""
        return -self.a * np.exp(np.asarray(H, dtype=float)) + self.b


@validate_params({"H": [Array(ndim=1, shape=("n",), min_rows=3, low=0, high=_MAX_ENTROPY)],
                  "R": [Array(ndim=1, shape=("n",), max_abs=_MAX_COEF)]})
def fit_entropy_performance(H, R) -> EntropyPerformanceFit:
    r"""Fit the entropy-performance law of Cui et al. (2025), ``R = -a e^{H} + b``.

    Over a run, performance is traded for entropy; at ``H = 0`` the law predicts the
    ceiling ``b - a``. The model is linear in ``(a, b)`` given ``e^H``, so the least-squares
    solution is exact; ``scipy.optimize.curve_fit`` refines it (the two agree).

    Parameters
    ----------
    H, R : array-like, shape (n,)
        Entropies (nats, in [0, 50]) and performances (reward or accuracy) along a run,
        ``n >= 3``.

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".

    Examples
    --------
    >>> H = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
    >>> fit = fit_entropy_performance(H, -0.1 * np.exp(H) + 0.9)
    >>> round(fit.a, 3), round(fit.b, 3), round(fit.ceiling, 3)
    (0.1, 0.9, 0.8)
    """
    from scipy.optimize import curve_fit

    H, R = np.asarray(H, dtype=float), np.asarray(R, dtype=float)
    X = np.stack([-np.exp(H), np.ones_like(H)], axis=1)                       # (n, 2)
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

    Every option is checked when the config is made (and by :func:`dataclasses.replace`):
    ``beta`` must be 0 (training is KL-free, without a reference model), ``pass_ks`` at most
    ``eval_samples``.

    References
    ----------
    - shao2024deepseekmath: Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models".
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".

    Examples
    --------
    >>> cfg = GRPOConfig(steps=10, epsilon_high=0.28)
    >>> cfg.loss_type, cfg.epsilon, cfg.epsilon_high
    ('dapo', 0.2, 0.28)
    >>> GRPOConfig(seed="x")
    Traceback (most recent call last):
    ...
    TypeError: seed must be an int in [0, inf), got 'x'
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

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Check every option (done on construction and by :func:`dataclasses.replace`); returns self."""
        check_params(vars(self), _GRPO_CONSTRAINTS)
        if self.beta != 0:
            raise ValueError(f"beta must be 0: train_grpo trains KL-free, without a reference model "
                             f"(as DAPO and Dr. GRPO), got {self.beta}")
        _check_pair(self.clip_cov_bounds, "clip_cov_bounds")
        _check_pair(self.epo_kappa, "epo_kappa")
        _check_ks(self.pass_ks, self.eval_samples, "pass_ks")
        return self


_GRPO_CONSTRAINTS = {
    "steps": [_INT_NONNEG], "prompts_per_step": [_INT_POS], "group_size": [Interval(int, 2, None)],
    "lr": [_LR], "optimizer": [Options(("adam", "sgd"))], "num_iterations": [_INT_POS],
    "loss_type": [Options(LOSS_TYPES)], "scale_rewards": [Options(("group", "batch", "none"))],
    "epsilon": [_FRACTION], "epsilon_high": [Interval(float, 0, 100), None],
    "importance_sampling_level": [Options(("token", "sequence"))], "beta": [_NONNEG],
    "entropy_coef": [_COEF], "entropy_target": [Interval(float, 0, _MAX_ENTROPY), None],
    "entropy_coef_delta": [_COEF], "entropy_coef_max": [_COEF], "intervention": [Options(INTERVENTIONS)],
    "clip_cov_ratio": [_FRACTION], "clip_cov_bounds": [Array(ndim=1, shape=(2,))],
    "kl_cov_ratio": [_FRACTION], "kl_cov_coef": [_COEF], "epo_coef": [_COEF], "epo_smooth_coef": [_COEF],
    "epo_kappa": [Array(ndim=1, shape=(2,), low=0, max_abs=_MAX_COEF)],
    "steer_w_min": [Interval(float, 0, 1, closed="neither")], "zvp_alpha": [_COEF],
    "dynamic_sampling": ["boolean"], "max_resample": [_INT_NONNEG], "prompt_templates": [_INT_POS],
    "eval_every": [_INT_POS], "eval_samples": [_INT_POS], "pass_ks": [_KS], "eval_seed": [_SEED],
    "seed": [_SEED],
}


@dataclass
class Rollouts:
    """One step's training batch and the statistics of everything sampled for it.

    ``prompts`` (B, P), ``answers`` (B, L), ``mask`` (B, L) and ``rewards`` (B,) are what the
    step trains on. ``drawn`` counts every answer sampled in the step (dynamic sampling draws
    more); ``reward``, ``zero_var`` and ``length`` (``length_correct``, ``length_wrong``:
    of the correct and the wrong answers, NaN when none) describe the first draw of
    ``prompts_per_step`` groups, the same population for every method, and ``first`` keeps
    its prompts and answers so that its entropy can be measured too. A record: shapes and
    kinds are checked here, token ids against the task's vocabulary where they are used
    (the task's reward, the policy's logits).
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

    def __post_init__(self):
        check_params(vars(self), {
            "prompts": [TokenIds(ndim=2, shape=("B", None), min_size=1)],
            "answers": [TokenIds(ndim=2, shape=("B", "L"))],
            "mask": [Array(ndim=2, shape=("B", "L"), low=0, high=1)],
            "rewards": [Array(ndim=1, shape=("B",), max_abs=_MAX_COEF)],
            "drawn": [_INT_POS], "reward": [_REAL], "zero_var": [_FRACTION], "length": [_NONNEG],
            "first": [tuple],
        })
        for name in ("length_correct", "length_wrong"):  # NaN (no such answer) is allowed
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a real number (NaN when there is no such answer), got {value!r}")
            if math.isinf(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number or NaN, got {value}")
        if len(self.first) != 2:
            raise ValueError(f"first must be the pair (prompts, answers) of the first draw, got {len(self.first)} items")


def _draw(policy, task, cfg: GRPOConfig, gen, device):
    """``prompts_per_step`` prompts and ``group_size`` answers each: prompts, answers, rewards (float64, CPU)."""
    prompts = task.sample_prompts(cfg.prompts_per_step, gen).to(device)
    rep = prompts.repeat_interleave(cfg.group_size, dim=0)                     # (B, P)
    answers = policy.sample(rep, task.answer_length, gen, eos=task.eos)        # (B, L)
    return rep, answers, task.reward(rep, answers).double().cpu()              # (B,)


@validate_params({"policy": [_Policy], "task": _TASKS, "cfg": [GRPOConfig], "gen": [torch.Generator],
                  "device": _DEVICE})
def collect_rollouts(policy, task, cfg: GRPOConfig, gen, device=None) -> Rollouts:
    """Sample a step's batch; with ``cfg.dynamic_sampling`` replace zero-variance groups (DAPO).

    Dynamic sampling keeps the informative groups of the first draw and fills the batch from
    up to ``cfg.max_resample`` further draws (every answer drawn is counted in ``drawn``);
    groups that are still zero-variance after the last draw are dropped. ``gen`` is the CPU
    generator every draw uses.

    References
    ----------
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".
    """
    _check_policy_task(policy, task)
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


@torch.no_grad()
def _first_draw_entropy(policy, task, batch: Rollouts, old_entropy, mask) -> float:
    """Mean token entropy of the step's first draw (the batch itself unless dynamic sampling replaced groups)."""
    if batch.first[1] is not batch.answers:
        mask = answer_mask(task, batch.first[1]).double().to(mask.device)     # (B, L)
        old_entropy = policy.score(*batch.first)[1].double()                  # (B, L)
    return float((old_entropy * mask).sum() / mask.sum())


def _evaluate(policy, task, cfg: GRPOConfig) -> dict:
    """:func:`evaluate_policy` on every prompt, keys prefixed by ``eval_``."""
    res = evaluate_policy(policy, task, n_samples=cfg.eval_samples, ks=cfg.pass_ks, seed=cfg.eval_seed)
    return {f"eval_{k}": v for k, v in res.items()}


# ---- one named function per intervention (each returns what it changes in the loss) ----
def _advantages(rollouts: Rollouts, old_entropy, cfg: GRPOConfig, success: float):
    """GRPO advantages (B,), or RL-ZVP's token advantages (B, L)."""
    if cfg.intervention == "rl_zvp":
        return rlzvp_advantages(rollouts.rewards.to(old_entropy.device), old_entropy, cfg.group_size,
                                rollouts.mask.to(old_entropy.device), success=success, alpha=cfg.zvp_alpha)
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


def _steer_weights(adv, old_logp, old_entropy, mask, cfg: GRPOConfig):
    """STEER: per-token weights damping the tokens that would change the entropy most (None otherwise)."""
    return steer_weights(adv, old_logp, old_entropy, mask, w_min=cfg.steer_w_min) if cfg.intervention == "steer" \
        else None


def _clip_cov_weights(logp, old_logp, adv, mask, cfg: GRPOConfig, gen):
    """Clip-Cov: 0 on the tokens to detach, chosen from the *current* covariance, 1 elsewhere."""
    ratio = torch.exp(logp.detach() - old_logp)                                # (B, L)
    a = adv if adv.ndim == 2 else adv[:, None]                                 # (B, L) or (B, 1)
    eps_high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
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
@validate_params({"policy": [_Policy], "task": _TASKS, "config": [GRPOConfig, None], "device": _DEVICE,
                  "show_progress": ["boolean", None]})
def train_grpo(policy, task, config: GRPOConfig | None = None, *, device=None, show_progress=None,
               **overrides) -> History:
    r"""GRPO-family training with every entropy intervention of the chapter as an option.

    Each step samples ``prompts_per_step`` prompts and ``group_size`` answers each
    (:func:`collect_rollouts`), computes group advantages (:func:`group_advantages`), then
    takes ``num_iterations`` optimiser steps on :func:`policy_loss` (so the ratio leaves 1
    and clipping acts). Options (:class:`GRPOConfig`, or its fields as keyword arguments):
    the loss type, GSPO's sequence-level ratio, the clip range (clip-higher), a KL-free
    setup as in DAPO/Dr. GRPO, a fixed or adaptive entropy bonus, Clip-Cov and KL-Cov (as in
    Cui et al.'s code: the covariance is recomputed at every update; KL-Cov drops the PPO
    clip; Clip-Cov skips tokens the clip already stopped), EPO, STEER, RL-ZVP (``success`` =
    the task's top reward), dynamic sampling and prompt augmentation (``prompt_templates``,
    :class:`TemplatedTask`). The policy's ``vocab_size`` must be the task's.

    Returns a :class:`~companion.training.History` with, per step, ``reward``, ``entropy``,
    ``zero_var``, ``length``, ``length_correct`` and ``length_wrong`` of the step's first
    draw (the same population for every method, dynamic sampling included; the two lengths
    are NaN when the draw has no correct, or no wrong, answer), ``rollouts`` (answers
    sampled so far), ``batch_reward`` (of the batch trained on), ``clip_low``,
    ``clip_high``, ``cov`` (mean ``Cov(log pi, A)`` over tokens), ``entropy_coef``,
    ``loss``, and at step 0 and every ``eval_every`` steps the keys of
    :func:`evaluate_policy` prefixed by ``eval_``. ``device`` is where the policy trains
    (default: where its parameters are); sampling draws on the CPU generator, so the runs
    are the same draws on any device. The loop runs on one CPU thread (restored
    afterwards): with tensors this small, extra threads only add synchronisation.

    References
    ----------
    - shao2024deepseekmath: Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models".
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    cfg = replace(config or GRPOConfig(), **overrides)
    _check_policy_task(policy, task)
    task = _with_templates(task, cfg.prompt_templates)
    device = _policy_device(policy, device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD)(policy.parameters(), lr=cfg.lr)
    coef, entropy_hist, drawn = cfg.entropy_coef, None, 0

    history = History()
    history.log(0, _evaluate(policy, task, cfg))
    for step in progress(range(cfg.steps), desc=f"GRPO ({cfg.intervention})",
                         disable=None if show_progress is None else not show_progress):
        # ---- rollouts, advantages and the step's entropy-dependent terms
        batch = collect_rollouts(policy, task, cfg, gen, device)
        drawn += batch.drawn
        mask = batch.mask.to(device)                                           # (B, L)
        with torch.no_grad():
            old_logp, old_entropy, _ = policy.score(batch.prompts, batch.answers)     # (B, L) each
            old_logp, old_entropy = old_logp.double(), old_entropy.double()
        mean_h = _first_draw_entropy(policy, task, batch, old_entropy, mask)
        entropy_hist = mean_h if entropy_hist is None else 0.9 * entropy_hist + 0.1 * mean_h
        adv = _advantages(batch, old_entropy, cfg, task.success)               # (B,) or (B, L)
        coef, bonus = _entropy_bonus(coef, mean_h, cfg)
        weights = _steer_weights(adv, old_logp, old_entropy, mask, cfg)         # (B, L) or None

        # ---- num_iterations optimiser steps on the same batch
        for _ in range(cfg.num_iterations):
            logp, entropy, _ = policy.score(batch.prompts, batch.answers)     # (B, L) each
            logp, entropy = logp.double(), entropy.double()
            extra = None
            if cfg.intervention == "clip_cov":
                weights = _clip_cov_weights(logp, old_logp, adv, mask, cfg, gen)
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

        # ---- logging
        cov = token_covariance(old_logp, adv, mask)                            # (B, L)
        history.log(step + 1, {"reward": batch.reward, "entropy": mean_h, "zero_var": batch.zero_var,
                               "length": batch.length, "length_correct": batch.length_correct,
                               "length_wrong": batch.length_wrong, "rollouts": drawn,
                               "batch_reward": float(batch.rewards.mean()),
                               "clip_low": info["clip_low"], "clip_high": info["clip_high"],
                               "cov": float(cov.sum() / mask.sum()), "entropy_coef": bonus,
                               "loss": float(loss.detach())})
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            history.log(step + 1, _evaluate(policy, task, cfg))
    return history


@thread_limit(1)  # the tiny policies: a second thread only spins (under load, many times slower)
@validate_params({"task": [BanditTask, None], "steps": [_INT_POS], "lr": [_LR], "group_size": [Interval(int, 2, None)],
                  "seed": [_SEED]})
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

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".

    Examples
    --------
    >>> trace = bandit_entropy_trace(steps=5, seed=0)
    >>> trace["entropy"].shape, trace["measured"].shape, round(float(trace["entropy"][0]), 4)  # log 8 at the start
    ((6,), (5,), 2.0794)
    """
    task = BanditTask() if task is None else task
    gen = torch.Generator().manual_seed(seed)
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
def _as_runs(histories, name="histories", keys=()) -> list:
    """One History or a list of them (one per seed) as a non-empty list; each must have logged ``keys``."""
    runs = [histories] if isinstance(histories, History) else list(histories)
    if not runs or not all(isinstance(h, History) for h in runs):
        raise TypeError(f"{name} must be a History or a non-empty list of Histories (one per seed)")
    for key in keys:
        if not all(key in h for h in runs):
            raise ValueError(f"{name} must have logged {key!r} in every run (train_grpo's histories do), "
                             f"got keys {sorted(runs[0].keys())[:12]}")
    return runs


_RUNS = [History, list, tuple]


def _pass_keys(run) -> list:
    """The ``eval_pass@k`` keys of a history, by increasing ``k``."""
    return sorted((k for k in run.keys() if k.startswith("eval_pass@")), key=lambda k: int(k.split("@")[1]))


def _labelled_runs(histories: dict, keys=()) -> dict:
    """``{label: [History, ...]}`` from a non-empty dict of label -> one History or a list per seed."""
    if not histories:
        raise ValueError("histories must not be empty (a dict of label -> list of histories)")
    runs = {label: _as_runs(h, f"histories[{label!r}]", keys) for label, h in histories.items()}
    if not all(_pass_keys(r[0]) for r in runs.values()):
        raise ValueError("histories must come from train_grpo (no eval_pass@k logged)")
    return runs


@validate_params({"histories": _RUNS, "key": ["string"], "index": [int]})
def seed_values(histories, key: str, index: int = -1) -> np.ndarray:
    """``key``'s value at position ``index`` (default: the last logged) in each seed's history, shape (n_seeds,).

    Examples
    --------
    >>> runs = [History(), History()]
    >>> for seed, h in enumerate(runs):
    ...     h.log(0, {"reward": 0.5}); h.log(1, {"reward": 0.6 + 0.1 * seed})
    >>> seed_values(runs, "reward").tolist(), seed_values(runs, "reward", 0).tolist()
    ([0.6, 0.7], [0.5, 0.5])
    """
    runs = _as_runs(histories)
    if not all(key in h for h in runs):
        raise ValueError(f"key {key!r} is not logged in every run; logged: {sorted(runs[0].keys())}")
    n = min(len(h[key]) for h in runs)
    if not -n <= index < n:
        raise ValueError(f"index must lie in [{-n}, {n}) ({key!r} has {n} logged values), got {index}")
    return np.array([h[key][index] for h in runs], dtype=float)


@validate_params({"histories": _RUNS, "title": ["string"], "k_max": [_INT_POS, None]})
def plot_training_curves(histories, *, title: str = "", k_max: int | None = None):
    """Entropy, pass@1 and pass@k over training, mean and min-max band over the seeds' runs.

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    runs = _as_runs(histories, keys=("eval_entropy", "eval_pass@1"))
    keys = _pass_keys(runs[0])
    kmax = keys[-1] if k_max is None else f"eval_pass@{k_max}"
    if kmax not in keys:
        raise ValueError(f"k_max must be one of the logged k {[int(k.split('@')[1]) for k in keys]}, got {k_max}")
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


@validate_params({"trace": [dict]})
def plot_entropy_prediction(trace: dict):
    """Measured entropy change per step against the covariance predictions (a bandit trace).

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    for key in ("entropy", "measured", "first_order"):
        if key not in trace:
            raise ValueError(f"trace must contain {key!r} (use bandit_entropy_trace)")
    for key in ("measured", "first_order", "expected"):
        if key in trace:
            check_params({f"trace[{key!r}]": trace[key]}, {f"trace[{key!r}]": [Array(ndim=1, min_size=1)]})
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


@validate_params({"histories": [dict]})
def plot_pass_at_k(histories: dict):
    """pass@k against k before and after RL (mean and min-max over seeds): RL sharpens pass@1, narrows pass@k.

    ``histories`` maps a label to a list of :func:`train_grpo` histories (one per seed); the
    "before" curve is taken from the first label's runs.

    References
    ----------
    - chen2021evaluating: Chen et al. (2021), "Evaluating Large Language Models Trained on Code".
    """
    histories = _labelled_runs(histories)
    first = next(iter(histories.values()))
    keys = _pass_keys(first[0])
    kk = np.array([int(k.split("@")[1]) for k in keys], dtype=float)
    fig, (ax,) = subplots(1, width=5.0, height=3.6)
    plot_spread(ax, kk, [[h[k][0] for k in keys] for h in first], label="warm start (before RL)", color="k",
                ls="--", marker="o")
    for label, runs in histories.items():
        plot_spread(ax, kk, [[h[k][-1] for k in keys] for h in runs], label=label, marker="o")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples)", ylabel="pass@k", title="pass@k before and after RL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({"histories": [dict], "x": [Options(("step", "rollouts"))]})
def plot_interventions(histories: dict, *, x: str = "step"):
    """Each intervention side by side: entropy, pass@1 and the largest pass@k, mean and min-max over seeds.

    ``histories`` maps a label to a list of histories (one per seed). ``x="step"`` plots
    against RL steps, ``x="rollouts"`` against the answers sampled so far (compute-matched:
    dynamic sampling draws more answers per step).

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    histories = _labelled_runs(histories, keys=("eval_entropy", "eval_pass@1")
                               + (("rollouts",) if x == "rollouts" else ()))
    fig, (ax_h, ax_1, ax_k) = subplots(3, width=4.3, height=3.4)
    for i, (label, runs) in enumerate(histories.items()):
        kmax = _pass_keys(runs[0])[-1]
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


@validate_params({"H": [Array(ndim=1, shape=("n",), min_size=1, low=0, high=_MAX_ENTROPY)],
                  "R": [Array(ndim=1, shape=("n",), max_abs=_MAX_COEF)], "fit": [EntropyPerformanceFit, None],
                  "labels": [list, tuple, np.ndarray, None], "ylabel": ["string"]})
def plot_entropy_performance(H, R, fit: EntropyPerformanceFit | None = None, *, labels=None,
                             ylabel: str = "performance"):
    """Performance against entropy with the fitted law ``R = -a exp(H) + b`` (fitted here when ``fit`` is None).

    ``labels`` (one per point) colour the points by group.

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    """
    if labels is not None and len(labels) != len(H):
        raise ValueError(f"labels must have one entry per point ({len(H)}), got {len(labels)}")
    H, R = np.asarray(H, dtype=float), np.asarray(R, dtype=float)
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

    References
    ----------
    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
      Language Models".
    - yu2025dapo: Yu et al. (2025), "DAPO: An Open-Source LLM Reinforcement Learning System at Scale".
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
