"""Each chapter-5 exercise: the reference solution passes its check, wrong ones fail."""

import math

import numpy as np
import pytest
import torch

from companion.exercises import registry
from companion.exercises import rl as ex


# ------------------------------------------------------------------ reference solutions
def good_group_advantages(rewards, group_size, eps=1e-4):
    r = np.asarray(rewards, dtype=float).reshape(-1, group_size)
    centred = r - r.mean(axis=1, keepdims=True)
    centred[r.max(axis=1) == r.min(axis=1)] = 0.0
    return (centred / (r.std(axis=1, ddof=1, keepdims=True) + eps)).ravel()


def good_pass_at_k(n, c, k):
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def good_entropy_change(logits, advantages, lr, update):
    z = np.asarray(logits, dtype=float)
    p = np.exp(z - z.max())
    p /= p.sum()
    A = np.asarray(advantages, dtype=float)
    A = A - p @ A
    dz = lr * (p * A if update == "vanilla" else A)
    logp = np.log(p)
    return -np.sum(p * (logp - p @ logp) * dz)


def good_clipped(logp, old_logp, adv, eps_low, eps_high):
    ratio = torch.exp(logp - old_logp)
    return -torch.min(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)


# ------------------------------------------------------------------ wrong solutions
def population_std_advantages(rewards, group_size, eps=1e-4):
    r = np.asarray(rewards, dtype=float).reshape(-1, group_size)
    return ((r - r.mean(1, keepdims=True)) / (r.std(1, keepdims=True) + eps)).ravel()


def unguarded_advantages(rewards, group_size, eps=1e-4):
    r = np.asarray(rewards, dtype=float).reshape(-1, group_size)
    return ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + eps)).ravel()


def biased_pass_at_k(n, c, k):
    return 1.0 - (1.0 - c / n) ** k


def uncentred_entropy_change(logits, advantages, lr, update):
    z = np.asarray(logits, dtype=float)
    p = np.exp(z - z.max())
    p /= p.sum()
    A = np.asarray(advantages, dtype=float)
    dz = lr * (p * A if update == "vanilla" else A)
    logp = np.log(p)
    return -np.sum(p * (logp - p @ logp) * dz)


def unclipped(logp, old_logp, adv, eps_low, eps_high):
    return -torch.exp(logp - old_logp) * adv


def detached_clipped(logp, old_logp, adv, eps_low, eps_high):
    return good_clipped(logp.detach(), old_logp, adv, eps_low, eps_high)


def stub(*args, **kwargs):
    raise NotImplementedError


def good_weights(lengths, loss_type, max_length):
    L = np.asarray(lengths, dtype=float)
    if loss_type == "grpo":
        return 1.0 / (len(L) * L)
    if loss_type == "dapo":
        return np.full(len(L), 1.0 / L.sum())
    return np.full(len(L), 1.0 / (len(L) * max_length))


def grpo_without_batch(lengths, loss_type, max_length):  # forgets the 1/B of grpo
    w = good_weights(lengths, loss_type, max_length)
    return w * len(w) if loss_type == "grpo" else w


def uses_the_package(lengths, loss_type, max_length):  # the function the exercise asks for
    from companion import rl
    L = torch.as_tensor(np.asarray(lengths))
    mask = (torch.arange(int(max_length))[None, :] < L[:, None]).double()
    return rl.aggregation_weights(mask, loss_type, max_completion_length=max_length).numpy()


def good_kl_cov(logp, advantages, mask, ratio):
    valid = mask > 0
    A = advantages[:, None].expand_as(logp)[valid]
    lp = logp.detach()[valid]
    cov = (A - A.mean()) * (lp - lp.mean())
    k = max(1, int(ratio * cov.numel()))
    picked = torch.zeros(cov.numel(), dtype=torch.bool)
    picked[torch.topk(cov, k).indices] = True
    out = torch.zeros_like(valid)
    out[valid] = picked
    return out


def kl_cov_with_padding(logp, advantages, mask, ratio):  # means over all positions, padding included
    A = advantages[:, None].expand_as(logp)
    cov = ((A - A.mean()) * (logp - logp.mean())).reshape(-1)
    k = max(1, int(ratio * int(mask.sum())))
    out = torch.zeros(cov.numel(), dtype=torch.bool)
    out[torch.topk(cov, k).indices] = True
    return out.reshape(logp.shape)


def kl_cov_ceil(logp, advantages, mask, ratio):  # rounds the count up instead of down
    out = good_kl_cov(logp, advantages, mask, ratio)
    n = int(mask.sum())
    k = max(1, math.ceil(ratio * n))
    if k == int(out.sum()):
        return out
    valid = mask > 0
    A = advantages[:, None].expand_as(logp)[valid]
    lp = logp[valid]
    cov = (A - A.mean()) * (lp - lp.mean())
    picked = torch.zeros(cov.numel(), dtype=torch.bool)
    picked[torch.topk(cov, k).indices] = True
    res = torch.zeros_like(valid)
    res[valid] = picked
    return res


def kl_cov_by_package(logp, advantages, mask, ratio):
    from companion import rl
    return rl.kl_cov_mask(rl.token_covariance(logp, advantages, mask), mask, ratio=ratio)


CASES = [
    (ex.check_group_advantages, good_group_advantages, [population_std_advantages, unguarded_advantages, stub]),
    (ex.check_pass_at_k, good_pass_at_k, [biased_pass_at_k, stub]),
    (ex.check_predicted_entropy_change, good_entropy_change, [uncentred_entropy_change, stub]),
    (ex.check_clipped_surrogate, good_clipped, [unclipped, detached_clipped, stub]),
    (ex.check_kl_cov_select, good_kl_cov, [kl_cov_with_padding, kl_cov_ceil, kl_cov_by_package, stub]),
]


@pytest.mark.parametrize("check,good,bad", CASES, ids=[c[0].__name__ for c in CASES])
def test_reference_passes_and_wrong_solutions_fail(check, good, bad, capsys):
    check(good)
    assert "[PASS]" in capsys.readouterr().out
    for wrong in bad:
        with pytest.raises(AssertionError):
            check(wrong)
        assert "[FAIL]" in capsys.readouterr().out


def test_aggregation_check(capsys):
    ex.check_aggregation(good_weights, "grpo")
    assert "[PASS]" in capsys.readouterr().out
    for fn, prediction in ((good_weights, "dapo"), (good_weights, "dr_grpo"), (grpo_without_batch, "grpo"),
                           (uses_the_package, "grpo"), (stub, "grpo")):
        with pytest.raises(AssertionError):
            ex.check_aggregation(fn, prediction)
        assert "[FAIL]" in capsys.readouterr().out


def test_exercises_are_registered_with_points():
    ids = {k: v for k, v in registry.items() if v["chapter"] == "rl"}
    assert set(ids) == {"rl-advantages", "rl-passk", "rl-entropy-change", "rl-clip", "rl-aggregation", "rl-klcov"}
    assert sum(v["points"] for v in ids.values()) == 16
    assert all(v["implements"] for v in ids.values())


def test_results_file_is_written(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv("COMPANION_RESULTS", str(path))
    ex.check_pass_at_k(good_pass_at_k)
    with pytest.raises(AssertionError):
        ex.check_pass_at_k(biased_pass_at_k)
    lines = path.read_text().strip().splitlines()
    assert len(lines) == 2 and '"passed": true' in lines[0] and '"passed": false' in lines[1]
