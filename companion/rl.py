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

from ._validation import (as_array, check_choice, check_fraction, check_int, check_nonnegative,
                          check_positive, is_tensor)
from .plotting import subplots
from .training import History, progress, thread_limit, train_loop

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
    "BanditTask", "ModularTask", "TemplatedTask", "bandit_entropy_trace", "TabularPolicy", "GRUPolicy", "supervised_warm_start",
    "GRPOConfig", "INTERVENTIONS", "train_grpo", "evaluate_policy",
    # measurement
    "pass_at_k", "fit_entropy_performance", "EntropyPerformanceFit",
    # figures and explorer
    "plot_training_curves", "plot_entropy_prediction", "plot_pass_at_k", "plot_interventions",
    "plot_entropy_performance", "rl_explorer",
]

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "delta_l")
INTERVENTIONS = ("none", "clip_cov", "kl_cov", "epo", "steer", "rl_zvp")


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _as_tensor(x, name: str, *, ndim=None, dtype=torch.float64) -> torch.Tensor:
    """A float tensor (kept on its device, gradient kept) or a validated numpy conversion."""
    if is_tensor(x):
        if ndim is not None:
            allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
            if x.ndim not in allowed:
                raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                                 f"got shape {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            x = x.to(dtype)
        if not torch.all(torch.isfinite(x.detach())):
            raise ValueError(f"{name} contains NaN or infinite values")
        return x
    return torch.as_tensor(as_array(x, name, ndim=ndim), dtype=dtype)


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
    r = _as_tensor(rewards, "rewards", ndim=1)
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
    r = _as_tensor(rewards, "rewards", ndim=1)
    group_size = check_int(group_size, "group_size", minimum=1)
    if r.shape[0] == 0 or r.shape[0] % group_size:
        raise ValueError(f"rewards must have a positive multiple of group_size={group_size} entries, "
                         f"got {r.shape[0]}")
    grouped = r.reshape(-1, group_size)
    return _like_input(grouped.max(dim=1).values == grouped.min(dim=1).values, rewards)


def rlzvp_advantages(rewards, entropy, group_size: int, mask=None, *, alpha: float = 0.1,
                     success: float | None = None):
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
    alpha : float
        Scale of the zero-variance advantages.
    success : float, optional
        Reward value that means "correct" (default: the maximum reward seen, so an
        all-``success`` group is all correct and any other constant group all wrong).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (B, T)
    """
    r = _as_tensor(rewards, "rewards", ndim=1)
    h = _as_tensor(entropy, "entropy", ndim=2).detach().to(torch.float64)
    alpha = check_nonnegative(alpha, "alpha")
    if h.shape[0] != r.shape[0]:
        raise ValueError(f"entropy must have one row per reward ({r.shape[0]}), got {h.shape[0]}")
    m = _check_mask(mask, h.shape)
    adv = torch.as_tensor(group_advantages(r.detach(), group_size, "group"), dtype=torch.float64)
    out = adv[:, None].expand_as(h).clone()
    zero = torch.as_tensor(zero_variance_groups(r.detach(), group_size)).repeat_interleave(group_size)
    top = float(r.max()) if success is None else float(success)
    correct = r.detach() >= top
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
    r"""The k3 estimator of ``KL(pi_ref || pi_theta)`` per token (GRPO's KL penalty).

    .. math:: k_3 = \frac{\pi_{\text{ref}}}{\pi_\theta} - \log\frac{\pi_{\text{ref}}}{\pi_\theta} - 1
              \;\ge 0,

    evaluated at tokens sampled from ``pi_theta`` (Shao et al. (2024), after
    J. Schulman's note on KL approximations). Its expectation under ``pi_theta`` is
    ``KL(pi_theta || pi_ref)``, but its expected *gradient* (sampling held fixed, as in a
    loss) equals the gradient of ``KL(pi_ref || pi_theta)``.

    Parameters
    ----------
    logp, ref_logp : tensor or array-like, same shape
        Log-probabilities of the sampled tokens under the policy and the reference.
    """
    lp = _as_tensor(logp, "logp")
    rp = _as_tensor(ref_logp, "ref_logp")
    if lp.shape != rp.shape:
        raise ValueError(f"ref_logp must have logp's shape {tuple(lp.shape)}, got {tuple(rp.shape)}")
    d = rp - lp
    return _like_input(torch.exp(d) - d - 1, logp)


def token_entropy(logits):
    r"""Entropy of the softmax over the last axis, ``H = -sum_v p_v log p_v`` (differentiable)."""
    z = _as_tensor(logits, "logits")
    if z.ndim < 1:
        raise ValueError("logits must have at least one dimension")
    logp = F.log_softmax(z, dim=-1)
    return _like_input(-(logp.exp() * logp).sum(-1), logits)


def aggregation_weights(mask, loss_type: str = "grpo", *, max_completion_length: int | None = None,
                        alpha: float = 1.0, num_items_in_batch: float | None = None):
    r"""Per-sequence weights ``c_i`` of a GRPO-family loss, ``loss = sum_i c_i sum_t l_it``.

    With ``B`` sequences of lengths ``L_i`` (the row sums of ``mask``) and ``M`` the
    maximal completion length:

    - ``"grpo"``: ``c_i = 1 / (B L_i)``, the mean over sequences of per-sequence means
      (Shao et al., 2024); long answers get a smaller per-token weight.
    - ``"bnpo"`` and ``"dapo"``: ``c_i = 1 / sum_j L_j``, the token-level mean of DAPO
      (Yu et al., 2025). TRL's ``"dapo"`` divides by ``num_items_in_batch``, the token
      count of the whole global batch; with one process and no gradient accumulation that
      equals ``sum_j L_j`` (the default here).
    - ``"dr_grpo"``: ``c_i = 1 / (B M)``, a constant (Liu et al., 2025).
    - ``"delta_l"``: ``c_i = (1/M) L_i^{-alpha} / sum_j L_j^{-alpha}``, the minimum-variance
      unbiased weighting of Delta-L normalisation (He et al., 2025, Delta-L); the weights sum
      to ``1/M`` and ``alpha = 0`` recovers Dr. GRPO.

    These names and formulas follow TRL's ``GRPOConfig.loss_type``.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    m = _check_mask(mask, mask.shape if is_tensor(mask) else np.shape(mask))
    if m.ndim != 2:
        raise ValueError(f"mask must have 2 dimensions (sequences, tokens), got shape {tuple(m.shape)}")
    check_choice(loss_type, "loss_type", LOSS_TYPES)
    alpha = check_nonnegative(alpha, "alpha")
    B, T = m.shape
    M = T if max_completion_length is None else check_int(max_completion_length, "max_completion_length",
                                                          minimum=1)
    lengths = m.sum(dim=1)
    if loss_type == "grpo":
        return 1.0 / (B * lengths.clamp(min=1.0))
    if loss_type in ("bnpo", "dapo"):
        total = lengths.sum().clamp(min=1.0)
        if loss_type == "dapo" and num_items_in_batch is not None:
            total = torch.tensor(check_positive(num_items_in_batch, "num_items_in_batch"), dtype=torch.float64)
        return torch.full((B,), 1.0, dtype=torch.float64) / total
    if loss_type == "dr_grpo":
        return torch.full((B,), 1.0 / (B * M), dtype=torch.float64)
    w = lengths.clamp(min=1.0) ** (-alpha)
    return w / (M * w.sum())


def policy_loss(logp, old_logp, advantages, mask=None, *, loss_type: str = "grpo",
                eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.0, ref_logp=None,
                max_completion_length: int | None = None, alpha: float = 1.0,
                num_items_in_batch: float | None = None, token_weights=None, extra_token_loss=None,
                entropy=None, entropy_coef: float = 0.0):
    r"""The clipped GRPO-family policy loss and its diagnostics.

    Per token, with ratio ``rho = exp(logp - old_logp)`` (Schulman et al., 2017),

    .. math::
        l_{it} = -\min\bigl(\rho_{it} A_{it},\ \mathrm{clip}(\rho_{it}, 1-\epsilon_{\text{low}},
        1+\epsilon_{\text{high}}) A_{it}\bigr) + \beta\, k_3(\pi_{\text{ref}}, \pi_\theta),

    so for ``A > 0`` the gradient vanishes exactly when ``rho > 1 + eps_high`` and for
    ``A < 0`` exactly when ``rho < 1 - eps_low``. A larger ``eps_high`` is DAPO's
    clip-higher (Yu et al. (2025), ``eps_high = 0.28``). The tokens are aggregated with
    the weights of :func:`aggregation_weights` (TRL's ``loss_type``).

    Options used by the interventions of :func:`train_grpo`: ``token_weights`` (detached,
    multiplies ``l_it``: STEER, or 0 to stop a token's gradient as Clip-Cov does),
    ``extra_token_loss`` (added to ``l_it``: KL-Cov, EPO smoothing) and an entropy bonus
    ``- entropy_coef * H`` aggregated like the loss.

    Parameters
    ----------
    logp, old_logp : tensor, shape (B, T)
        Log-probabilities of the sampled tokens under the current and the sampling policy.
    advantages : tensor, shape (B,) or (B, T)
    mask : tensor, shape (B, T), optional
        1 for completion tokens, 0 for padding.
    loss_type : {"grpo", "bnpo", "dr_grpo", "dapo", "delta_l"}
    eps_low, eps_high : float
        Clip range (TRL's ``epsilon`` and ``epsilon_high``).
    beta : float
        Weight of the k3 KL penalty; needs ``ref_logp``.
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
        ``clip_low`` and ``clip_high`` (fractions of tokens where the clip stops the
        gradient, as TRL logs them), ``clip_ratio`` (their sum), ``kl`` (mean k3),
        ``entropy`` (mean token entropy, when given), ``ratio`` (mean ratio).
    """
    lp = _as_tensor(logp, "logp", ndim=2)
    olp = _as_tensor(old_logp, "old_logp", ndim=2).detach()
    if olp.shape != lp.shape:
        raise ValueError(f"old_logp must have logp's shape {tuple(lp.shape)}, got {tuple(olp.shape)}")
    adv = _as_tensor(advantages, "advantages", ndim=(1, 2)).detach()
    if adv.ndim == 1:
        if adv.shape[0] != lp.shape[0]:
            raise ValueError(f"advantages must have {lp.shape[0]} entries, got {adv.shape[0]}")
        adv = adv[:, None]
    elif adv.shape != lp.shape:
        raise ValueError(f"advantages must have shape (B,) or {tuple(lp.shape)}, got {tuple(adv.shape)}")
    m = _check_mask(mask, lp.shape).to(lp.dtype)
    eps_low = check_nonnegative(eps_low, "eps_low")
    eps_high = check_nonnegative(eps_high, "eps_high")
    beta = check_nonnegative(beta, "beta")
    entropy_coef = _check_real_coef(entropy_coef, "entropy_coef")
    weights = aggregation_weights(m, loss_type, max_completion_length=max_completion_length,
                                  alpha=alpha, num_items_in_batch=num_items_in_batch).to(lp.dtype)
    adv = adv.to(lp.dtype)

    ratio = torch.exp(lp - olp)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = None
    if ref_logp is not None:
        kl = _as_tensor(k3_kl(lp, _as_tensor(ref_logp, "ref_logp", ndim=2).detach().to(lp.dtype)), "kl")
        per_token = per_token + beta * kl
    elif beta > 0:
        raise ValueError("beta > 0 needs ref_logp")
    if token_weights is not None:
        per_token = per_token * _check_mask(token_weights, lp.shape, "token_weights").to(lp.dtype).detach()
    if extra_token_loss is not None:
        if not is_tensor(extra_token_loss) or extra_token_loss.shape != lp.shape:
            raise ValueError(f"extra_token_loss must be a tensor of shape {tuple(lp.shape)}")
        per_token = per_token + extra_token_loss
    ent = None
    if entropy is not None:
        ent = _as_tensor(entropy, "entropy", ndim=2)
        if ent.shape != lp.shape:
            raise ValueError(f"entropy must have shape {tuple(lp.shape)}, got {tuple(ent.shape)}")
        per_token = per_token - entropy_coef * ent.to(lp.dtype)
    elif entropy_coef != 0:
        raise ValueError("entropy_coef != 0 needs entropy")
    loss = (weights[:, None] * per_token * m).sum()

    n_tok = m.sum().clamp(min=1.0)
    with torch.no_grad():
        low = ((ratio < 1 - eps_low) & (adv < 0)).to(lp.dtype)
        high = ((ratio > 1 + eps_high) & (adv > 0)).to(lp.dtype)
        info = {"clip_low": float((low * m).sum() / n_tok), "clip_high": float((high * m).sum() / n_tok),
                "ratio": float((ratio * m).sum() / n_tok)}
        info["clip_ratio"] = info["clip_low"] + info["clip_high"]
        info["kl"] = float((kl * m).sum() / n_tok) if kl is not None else 0.0
        if ent is not None:
            info["entropy"] = float((ent * m).sum() / n_tok)
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
    z = _as_tensor(logits, "logits", dtype=torch.float64).to(torch.float64)
    dz = _as_tensor(delta_logits, "delta_logits", dtype=torch.float64).to(torch.float64)
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
    z = _as_tensor(logits, "logits").to(torch.float64)
    A = _as_tensor(advantages, "advantages").to(torch.float64)
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
    z = _as_tensor(logits, "logits").to(torch.float64)
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
    lp = _as_tensor(logp, "logp", ndim=2).detach().to(torch.float64)
    A = _as_tensor(advantages, "advantages", ndim=(1, 2)).detach().to(torch.float64)
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
def clip_cov_mask(cov, mask=None, *, ratio: float = 2e-4, bounds=(1.0, 5.0), generator=None):
    r"""Tokens whose gradient Clip-Cov stops (Cui et al., 2025).

    Among valid tokens with ``bounds[0] < cov_t < bounds[1]`` it picks, uniformly at
    random, ``ceil(ratio * n_tokens)`` of them (at most all candidates). The loss then
    detaches these tokens, removing the high-covariance updates that collapse entropy.

    Returns a boolean tensor of ``cov``'s shape (True = detach).
    """
    c = _as_tensor(cov, "cov", ndim=2).detach()
    m = _check_mask(mask, c.shape) > 0
    ratio = check_fraction(ratio, "ratio")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ValueError(f"bounds must be increasing, got {bounds}")
    candidates = torch.nonzero(((c > lo) & (c < hi) & m).reshape(-1)).reshape(-1)
    k = min(int(math.ceil(ratio * int(m.sum()))), candidates.numel())
    out = torch.zeros(c.numel(), dtype=torch.bool)
    if k > 0:
        pick = candidates[torch.randperm(candidates.numel(), generator=generator)[:k]]
        out[pick] = True
    return out.reshape(c.shape)


def kl_cov_mask(cov, mask=None, *, ratio: float = 2e-3):
    r"""Tokens that KL-Cov penalises: the top ``ratio`` fraction of valid tokens by ``cov_t``.

    KL-Cov (Cui et al., 2025) adds ``kl_coef * |log pi_t - log pi_old,t|`` to the
    loss of these tokens, holding the most entropy-reducing tokens close to the sampling
    policy. Returns a boolean tensor (at least one token when ``ratio > 0``).
    """
    c = _as_tensor(cov, "cov", ndim=2).detach()
    m = _check_mask(mask, c.shape) > 0
    ratio = check_fraction(ratio, "ratio")
    n = int(m.sum())
    k = min(int(math.ceil(ratio * n)), n)
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
    olp = _as_tensor(old_logp, "old_logp", ndim=2).detach().to(torch.float64)
    H = _as_tensor(entropy, "entropy", ndim=2).detach().to(torch.float64)
    A = _as_tensor(advantages, "advantages", ndim=(1, 2)).detach().to(torch.float64)
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
    H = _as_tensor(entropy, "entropy", ndim=2)
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

    def all_prompts(self) -> torch.Tensor:
        return torch.zeros(1, 1, dtype=torch.long)

    def sample_prompts(self, n: int, generator=None) -> torch.Tensor:
        return torch.zeros(n, 1, dtype=torch.long)

    def reward(self, prompts, answers) -> torch.Tensor:
        return self.rewards[answers[:, 0]]

    def is_correct(self, prompts, answers) -> torch.Tensor:
        return self.reward(prompts, answers) >= self.rewards.max()


class ModularTask:
    r"""A verifiable sequence task with several correct answers per prompt.

    The prompt is a pair ``(a, b)`` of digits mod ``p``; an answer is ``length`` digits
    ``y_1 ... y_L``, correct (reward 1) when ``y_1 + ... + y_L = target(a, b) (mod p)``,
    so every prompt has ``p^{L-1}`` correct answers out of ``p^L``. ``target="product"``
    uses ``a b mod p`` (a rule a tiny network learns only in part, so prompts differ in
    difficulty), ``target="sum"`` uses ``a + b mod p``.
    Token ``p`` is the separator the policy reads before answering (vocabulary ``p + 1``).
    """

    def __init__(self, p: int = 11, length: int = 2, target: str = "product"):
        self.p = check_int(p, "p", minimum=2)
        self.answer_length = check_int(length, "length", minimum=1)
        self.target_rule = check_choice(target, "target", ("product", "sum"))
        self.vocab_size = self.p
        self.num_prompts = self.p * self.p

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

    def is_correct(self, prompts, answers) -> torch.Tensor:
        return answers.sum(dim=1) % self.p == self.target(prompts)

    def sample_correct(self, prompts, generator=None) -> torch.Tensor:
        """A uniformly random correct answer for each prompt (for the supervised warm start)."""
        n = prompts.shape[0]
        free = torch.randint(0, self.p, (n, self.answer_length - 1), generator=generator)
        last = (self.target(prompts) - free.sum(dim=1)) % self.p
        return torch.cat([free, last[:, None]], dim=1)


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
    def sample(self, prompts, length: int, generator=None) -> torch.Tensor:
        answers = torch.zeros(prompts.shape[0], 0, dtype=torch.long)
        for _ in range(length):
            logits = self.answer_logits(prompts, answers, last_only=True)
            probs = torch.softmax(logits.float(), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
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
        sep = torch.full((n, 1), self.sep, dtype=torch.long)
        L = answers.shape[1]
        tokens = torch.cat([prompts, sep, answers if last_only else answers[:, :-1]], dim=1)
        hidden, _ = self.gru(self.embed(tokens))
        if last_only:
            return self.head(hidden[:, -1])
        return self.head(hidden[:, P:P + L])


@thread_limit()
def supervised_warm_start(policy, task, *, steps: int = 200, batch_size: int = 128, lr: float = 3e-3,
                          seed: int = 0, prompt_templates: int = 1) -> list[float]:
    r"""A short supervised phase on random correct answers (the "SFT" before RL).

    Minimises the cross-entropy ``-log pi(y|x)`` of uniformly random correct answers, so the
    policy starts RL spread over many correct answers, like a pretrained model. Returns the
    losses. With ``prompt_templates = T > 1`` each example is asked under a random template
    (:class:`TemplatedTask`), so that a policy later trained by ``train_grpo(...,
    prompt_templates=T)`` starts RL already able to read every template (as a pretrained
    model can follow every instruction format); ``T = 1`` is the plain warm start.
    """
    task = _with_templates(task, prompt_templates)
    steps = check_int(steps, "steps", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    losses = []
    for _ in progress(range(steps), desc="warm start"):
        prompts = task.sample_prompts(batch_size, gen)
        answers = task.sample_correct(prompts, gen)
        logp, _, _ = policy.score(prompts, answers)
        loss = -logp.sum(dim=1).mean()
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


@thread_limit()
@torch.no_grad()
def evaluate_policy(policy, task, *, n_samples: int = 32, ks=(1, 4, 32), seed: int = 1234) -> dict:
    r"""pass@k, reward, token entropy and distinct correct answers on every prompt of ``task``.

    Draws ``n_samples`` answers per prompt. ``distinct_correct`` is the mean number of
    different correct answers among them (how many solutions the policy still knows);
    ``entropy`` the mean token entropy of the policy on its own samples.
    """
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    prompts = task.all_prompts()
    P = prompts.shape[0]
    rep = prompts.repeat_interleave(n_samples, dim=0)
    answers = policy.sample(rep, task.answer_length, gen)
    _, entropy, _ = policy.score(rep, answers)
    correct = task.is_correct(rep, answers).reshape(P, n_samples)
    c = correct.sum(dim=1).numpy()
    out = {"reward": float(task.reward(rep, answers).mean()), "entropy": float(entropy.mean())}
    for k in ks:
        out[f"pass@{k}"] = float(np.mean(pass_at_k(np.full(P, n_samples), c, k)))
    base = task.vocab_size ** torch.arange(task.answer_length)
    codes = (answers * base).sum(dim=1).reshape(P, n_samples)
    distinct = [len(set(codes[i][correct[i]].tolist())) for i in range(P)]
    out["distinct_correct"] = float(np.mean(distinct))
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
    """Every option of :func:`train_grpo` (names follow TRL's ``GRPOConfig`` where shared).

    Interventions: ``entropy_coef`` (fixed bonus), ``entropy_target`` (adaptive coefficient
    of Skywork-OR1, starting from ``entropy_coef``), ``epsilon_high`` (clip-higher),
    ``intervention`` (``"clip_cov"``, ``"kl_cov"``, ``"epo"``, ``"steer"``, ``"rl_zvp"``),
    ``dynamic_sampling`` (DAPO), ``prompt_templates`` (prompt augmentation of Lu et al., 2026:
    with ``T > 1`` the task is wrapped in :class:`TemplatedTask`, each sampled prompt is
    asked under a uniformly random one of ``T`` templates and evaluation uses template 0;
    ``T = 1`` leaves the task and every random draw exactly as without the option).
    """

    steps: int = 100
    prompts_per_step: int = 16
    group_size: int = 8
    lr: float = 3e-3
    optimizer: str = "adam"
    ppo_epochs: int = 2
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    epsilon_high: float = 0.2
    beta: float = 0.0
    entropy_coef: float = 0.0
    entropy_target: float | None = None
    entropy_coef_delta: float = 2e-3
    entropy_coef_max: float = 0.05
    intervention: str = "none"
    clip_cov_ratio: float = 0.05
    clip_cov_bounds: tuple = (1.0, 5.0)
    kl_cov_ratio: float = 0.05
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
        check_int(self.ppo_epochs, "ppo_epochs", minimum=1)
        check_choice(self.loss_type, "loss_type", LOSS_TYPES)
        check_choice(self.scale_rewards, "scale_rewards", ("group", "batch", "none"))
        check_nonnegative(self.epsilon, "epsilon")
        check_nonnegative(self.epsilon_high, "epsilon_high")
        check_nonnegative(self.entropy_coef, "entropy_coef")
        check_choice(self.intervention, "intervention", INTERVENTIONS)
        check_int(self.eval_every, "eval_every", minimum=1)
        check_int(self.prompt_templates, "prompt_templates", minimum=1)
        return self


def _collect(policy, task, cfg: GRPOConfig, gen):
    """Sample prompts and groups; with dynamic sampling, replace zero-variance groups."""
    G = cfg.group_size
    prompts = task.sample_prompts(cfg.prompts_per_step, gen)
    rep = prompts.repeat_interleave(G, dim=0)
    answers = policy.sample(rep, task.answer_length, gen)
    rewards = task.reward(rep, answers).double()
    zero = torch.as_tensor(zero_variance_groups(rewards, G))
    zero_frac = float(zero.float().mean())
    first_reward = float(rewards.mean())  # before any filtering: an unbiased performance estimate
    if cfg.dynamic_sampling:
        for _ in range(cfg.max_resample):
            if not zero.any():
                break
            keep = ~zero.repeat_interleave(G)
            new_p = task.sample_prompts(cfg.prompts_per_step, gen).repeat_interleave(G, dim=0)
            new_a = policy.sample(new_p, task.answer_length, gen)
            new_r = task.reward(new_p, new_a).double()
            rep = torch.cat([rep[keep], new_p])[: cfg.prompts_per_step * G]
            answers = torch.cat([answers[keep], new_a])[: cfg.prompts_per_step * G]
            rewards = torch.cat([rewards[keep], new_r])[: cfg.prompts_per_step * G]
            zero = torch.as_tensor(zero_variance_groups(rewards, G))
        keep = ~zero.repeat_interleave(G)
        if keep.any():
            rep, answers, rewards = rep[keep], answers[keep], rewards[keep]
    return rep, answers, rewards, zero_frac, first_reward


@thread_limit()
def train_grpo(policy, task, config: GRPOConfig | None = None, *, show_progress=None,
               **overrides) -> History:
    r"""GRPO-family training with every entropy intervention of the chapter as an option.

    Each step samples ``prompts_per_step`` prompts and ``group_size`` answers each, computes
    group advantages (:func:`group_advantages`), then takes ``ppo_epochs`` optimiser steps on
    :func:`policy_loss` (so the ratio leaves 1 and clipping acts). Options
    (:class:`GRPOConfig`): the loss type and clip range (clip-higher), a KL-free setup as in
    DAPO/Dr. GRPO, a fixed or adaptive entropy bonus, Clip-Cov, KL-Cov, EPO, STEER, RL-ZVP,
    dynamic sampling and prompt augmentation (``prompt_templates``, :class:`TemplatedTask`).

    Returns a :class:`~companion.training.History` with, per step, ``reward``, ``entropy``
    (sampled tokens), ``zero_var`` (fraction of zero-variance groups), ``clip_low``,
    ``clip_high``, ``cov`` (mean ``Cov(log pi, A)`` over tokens), ``entropy_coef``, and
    every ``eval_every`` steps the keys of :func:`evaluate_policy` prefixed by ``eval_``.
    The loop runs on one CPU thread (restored afterwards): with tensors this small, extra
    threads only add synchronisation, which on a busy machine costs several times the work.
    """
    cfg = replace(config or GRPOConfig(), **overrides).validate()
    task = _with_templates(task, cfg.prompt_templates)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    params = list(policy.parameters())
    opt = (torch.optim.Adam(params, lr=cfg.lr) if cfg.optimizer == "adam"
           else torch.optim.SGD(params, lr=cfg.lr))
    coef = cfg.entropy_coef
    entropy_hist = None

    def evaluate(step):
        res = evaluate_policy(policy, task, n_samples=cfg.eval_samples, ks=cfg.pass_ks, seed=cfg.eval_seed)
        return {f"eval_{k}": v for k, v in res.items()}

    def grpo_step(step):
        nonlocal coef, entropy_hist
        rep, answers, rewards, zero_frac, batch_reward = _collect(policy, task, cfg, gen)
        with torch.no_grad():
            old_logp, old_entropy, _ = policy.score(rep, answers)
        if cfg.intervention == "rl_zvp":
            adv = torch.as_tensor(rlzvp_advantages(rewards, old_entropy.double(), cfg.group_size,
                                                   alpha=cfg.zvp_alpha))
        else:
            adv = torch.as_tensor(group_advantages(rewards, cfg.group_size, cfg.scale_rewards))
        mean_h = float(old_entropy.mean())
        entropy_hist = mean_h if entropy_hist is None else 0.9 * entropy_hist + 0.1 * mean_h
        if cfg.entropy_target is not None:
            coef = adaptive_entropy_coef(coef, mean_h, cfg.entropy_target, delta=cfg.entropy_coef_delta,
                                         c_max=cfg.entropy_coef_max)
        bonus = coef if (cfg.entropy_target is None or mean_h < cfg.entropy_target) else 0.0
        if cfg.intervention == "epo":
            bonus += cfg.epo_coef
        cov = torch.as_tensor(token_covariance(old_logp.double(), adv))
        weights = None
        if cfg.intervention == "clip_cov":
            weights = (~clip_cov_mask(cov, ratio=cfg.clip_cov_ratio, bounds=cfg.clip_cov_bounds,
                                      generator=gen)).double()
        elif cfg.intervention == "steer":
            weights = steer_weights(adv, old_logp.double(), old_entropy.double(), w_min=cfg.steer_w_min)
        penalised = kl_cov_mask(cov, ratio=cfg.kl_cov_ratio) if cfg.intervention == "kl_cov" else None
        info = {}
        for _ in range(cfg.ppo_epochs):
            logp, entropy, _ = policy.score(rep, answers)
            extra = None
            if penalised is not None:
                extra = cfg.kl_cov_coef * (logp - old_logp).abs() * penalised
            if cfg.intervention == "epo":
                phase = epo_phase_weight(step / max(cfg.steps - 1, 1))
                extra = cfg.epo_smooth_coef * phase * epo_smoothing_penalty(entropy, entropy_hist,
                                                                            kappa=cfg.epo_kappa)
            loss, info = policy_loss(logp.double(), old_logp.double(), adv, loss_type=cfg.loss_type,
                                     eps_low=cfg.epsilon, eps_high=cfg.epsilon_high,
                                     token_weights=weights,
                                     extra_token_loss=None if extra is None else extra.double(),
                                     entropy=entropy.double(), entropy_coef=bonus)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"reward": batch_reward, "entropy": mean_h, "zero_var": zero_frac,
                "clip_low": info["clip_low"], "clip_high": info["clip_high"],
                "cov": float(cov.sum() / cov.numel()), "entropy_coef": bonus,
                "loss": float(loss.detach())}

    return train_loop(grpo_step, cfg.steps, evaluate=evaluate, eval_every=cfg.eval_every,
                      eval_at=[cfg.steps], desc=f"GRPO ({cfg.intervention})", show_progress=show_progress)


@thread_limit()
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
def plot_training_curves(history: History, *, title: str = ""):
    """Entropy, reward and pass@k of one :func:`train_grpo` run, side by side."""
    if not isinstance(history, History):
        raise TypeError(f"history must be a History, got {type(history).__name__}")
    fig, (ax_h, ax_r, ax_p) = subplots(3, width=4.2, height=3.2)
    ax_h.plot(history.steps("entropy"), history["entropy"])
    ax_h.set(xlabel="RL step", ylabel="token entropy (nats)", title="entropy")
    ax_r.plot(history.steps("reward"), history["reward"], alpha=0.5, label="batch reward")
    if "eval_pass@1" in history:
        ax_r.plot(history.steps("eval_pass@1"), history["eval_pass@1"], "o-", label="pass@1")
    ax_r.set(xlabel="RL step", ylabel="reward / pass@1", title="performance")
    ax_r.legend(fontsize=8)
    for key in sorted((k for k in history.keys() if k.startswith("eval_pass@")),
                      key=lambda k: int(k.split("@")[1])):
        ax_p.plot(history.steps(key), history[key], "o-", label=key[5:])
    ax_p.set(xlabel="RL step", ylabel="pass@k", title="pass@k (unbiased)")
    ax_p.legend(fontsize=8)
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


def plot_pass_at_k(histories: dict, *, ks=None):
    """pass@k against k at the start and the end of runs: RL sharpens pass@1, narrows pass@k.

    ``histories`` maps a label to a :func:`train_grpo` history; the start curve is taken
    from the first history.
    """
    if not histories:
        raise ValueError("histories must not be empty")
    first = next(iter(histories.values()))
    keys = sorted((k for k in first.keys() if k.startswith("eval_pass@")), key=lambda k: int(k.split("@")[1]))
    if ks is not None:
        keys = [k for k in keys if int(k.split("@")[1]) in ks]
    kk = [int(k.split("@")[1]) for k in keys]
    fig, (ax,) = subplots(1, width=5.0, height=3.6)
    ax.plot(kk, [first[k][0] for k in keys], "k--o", label="warm start (before RL)")
    for label, h in histories.items():
        ax.plot(kk, [h[k][-1] for k in keys], "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples)", ylabel="pass@k", title="pass@k before and after RL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_interventions(histories: dict):
    """Each intervention side by side: entropy, pass@1 and the largest pass@k over training."""
    if not histories:
        raise ValueError("histories must not be empty")
    fig, (ax_h, ax_1, ax_k) = subplots(3, width=4.3, height=3.4)
    for i, (label, h) in enumerate(histories.items()):
        kmax = max((k for k in h.keys() if k.startswith("eval_pass@")), key=lambda k: int(k.split("@")[1]))
        style = dict(label=label, ls="-" if i < 10 else "--")  # the colour cycle has 10 colours
        ax_h.plot(h.steps("eval_entropy"), h["eval_entropy"], **style)
        ax_1.plot(h.steps("eval_pass@1"), h["eval_pass@1"], **style)
        ax_k.plot(h.steps(kmax), h[kmax], **style)
    ax_h.set(xlabel="RL step", ylabel="token entropy (nats)", title="entropy")
    ax_1.set(xlabel="RL step", ylabel="pass@1", title="pass@1")
    ax_k.set(xlabel="RL step", ylabel=kmax[5:], title=f"{kmax[5:]} (exploration)")
    ax_k.legend(fontsize=7, loc="best")
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
                  ppo_epochs=2, epsilon_high=eps_high, entropy_coef=entropy_coef, eval_every=steps,
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
