"""The GRPO-family policy loss: ``companion.rl.policy_loss`` vs a per-sequence Python loop.

The baseline is the loss written directly from the definitions, one sequence at a time:
for sequence ``i`` with ``L_i`` completion tokens (right padding), the ratio
``rho_it = exp(logp_it - old_logp_it)`` and the clipped surrogate
``l_it = -min(rho_it A_i, clip(rho_it, 1 - epsilon, 1 + epsilon_high) A_i)`` (Schulman et
al., 2017) on its first ``L_i`` tokens, then

- ``grpo``: the mean over the sequence's tokens, then the mean over sequences (Shao et
  al., 2024);
- ``dapo``: the sum over all tokens of the batch divided by their number (Yu et al.,
  2025; clip-higher ``epsilon_high = 0.28``);
- ``dr_grpo``: the sum over all tokens divided by ``B * M`` with ``M`` the padded length
  (Liu et al., 2025).

Both sides get the same random padded batch (float32 log-probabilities with finite
garbage in the padding, lengths uniform in ``1..T``, sequence-level advantages) and are
timed forward + backward (best of several runs, the two sides alternating). Accuracy: the largest absolute difference
of the loss and of the gradient with respect to ``logp``.
"""

from __future__ import annotations

import torch

from _measure import best_time, on_one_torch_thread
from companion.rl import policy_loss

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
EPS = {"grpo": (0.2, 0.2), "dapo": (0.2, 0.28), "dr_grpo": (0.2, 0.2)}


def make_batch(B: int, T: int, seed: int = 0, dtype=torch.float32):
    """``logp``, ``old_logp`` (B, T), advantages (B,), mask (B, T) and lengths (B,)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(dtype)
    logp = -torch.rand(B, T, generator=gen, dtype=torch.float64).mul(3).to(dtype)
    old_logp = (logp.double() + 0.2 * torch.randn(B, T, generator=gen, dtype=torch.float64)).to(dtype)
    advantages = torch.randn(B, generator=gen, dtype=torch.float64).to(dtype)
    return logp, old_logp, advantages, mask, lengths


def reference_policy_loss(logp, old_logp, advantages, lengths, loss_type: str = "grpo",
                          epsilon: float = 0.2, epsilon_high: float = 0.2) -> torch.Tensor:
    """The clipped surrogate, aggregated sequence by sequence in a Python loop."""
    B, M = logp.shape
    seq_means, seq_sums, n_tokens = [], [], 0
    for i in range(B):
        L = int(lengths[i])
        ratio = torch.exp(logp[i, :L] - old_logp[i, :L])
        a = advantages[i]
        per_token = -torch.min(ratio * a, torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high) * a)
        seq_means.append(per_token.mean())
        seq_sums.append(per_token.sum())
        n_tokens += L
    if loss_type == "grpo":
        return torch.stack(seq_means).sum() / B
    if loss_type == "dapo":
        return torch.stack(seq_sums).sum() / n_tokens
    if loss_type == "dr_grpo":
        return torch.stack(seq_sums).sum() / (B * M)
    raise ValueError(f"unknown loss_type {loss_type!r}")


def loss_and_grad(fn, logp):
    """Forward + backward of ``fn(leaf)``: the loss and the gradient with respect to ``logp``."""
    leaf = logp.detach().clone().requires_grad_()
    loss = fn(leaf)
    loss.backward()
    return loss.detach(), leaf.grad


def compare(B: int, T: int, loss_type: str, seed: int = 0, repeat: int = 3):
    """Times and differences of the two sides on one batch."""
    logp, old_logp, adv, mask, lengths = make_batch(B, T, seed)
    epsilon, epsilon_high = EPS[loss_type]
    base = lambda: loss_and_grad(  # noqa: E731
        lambda lp: reference_policy_loss(lp, old_logp, adv, lengths, loss_type, epsilon, epsilon_high), logp)
    comp = lambda: loss_and_grad(  # noqa: E731
        lambda lp: policy_loss(lp, old_logp, adv, mask, loss_type=loss_type, epsilon=epsilon,
                               epsilon_high=epsilon_high)[0], logp)
    # alternate the two sides, so that a burst of load from other processes hits both
    base_s = comp_s = float("inf")
    for _ in range(repeat):
        seconds, (base_loss, base_grad) = best_time(base, repeat=1)
        base_s = min(base_s, seconds)
        seconds, (comp_loss, comp_grad) = best_time(comp, repeat=1)
        comp_s = min(comp_s, seconds)
    return {"baseline_s": base_s, "companion_s": comp_s,
            "loss_diff": float((base_loss.double() - comp_loss.double()).abs()),
            "grad_diff": float((base_grad.double() - comp_grad.double()).abs().max()),
            "grad_scale": float(base_grad.abs().max()), "loss": float(base_loss)}


def _run(quick: bool) -> list[dict]:
    sizes = [(16, 64)] if quick else [(64, 512), (256, 512)]
    rows = []
    for B, T in sizes:
        for loss_type in LOSS_TYPES:
            r = compare(B, T, loss_type, repeat=3 if quick else 15)
            rows.append({
                "name": f"policy_loss {loss_type} B={B} T<={T} float32 fwd+bwd",
                "baseline_s": r["baseline_s"],
                "companion_s": r["companion_s"],
                "accuracy": f"loss {r['loss_diff']:.1e}, grad {r['grad_diff']:.1e}",
                "max_abs_grad": f"{r['grad_scale']:.1e}",
            })
    return rows


def run(quick: bool = False) -> list[dict]:
    """The rows, measured on one torch thread (see ``_measure.on_one_torch_thread``)."""
    return on_one_torch_thread(_run, quick)
