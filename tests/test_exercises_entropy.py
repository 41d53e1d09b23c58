"""Each Chapter 2 exercise: the reference solution passes its check, wrong ones fail."""

import json

import numpy as np
import pytest

from companion.exercises import entropy as ex
from companion.exercises import registry


# reference solutions, written independently of companion.entropy (as in the notebook)
def good_entropy(attn):
    attn = np.asarray(attn, dtype=float)
    logs = np.log(np.where(attn > 0, attn, 1.0))
    return -(attn * logs).sum(axis=-1)


def good_bound(T, s):
    beta = np.exp(-s * np.sqrt(T / (T - 1)))
    return np.log(1 + (T - 1) * beta) + s * np.sqrt(T * (T - 1)) * beta / (1 + (T - 1) * beta)


def good_ceiling(T):
    return float(np.mean(np.log(np.arange(1, T + 1))))


def good_causal_bound(T, s):
    return sum(good_bound(i, s) for i in range(2, T + 1)) / T


def good_prediction(dim, lr, num_steps, sigma0):
    return sigma0 + num_steps * lr * dim, sigma0 + num_steps * lr


def good_gap(eps):
    return float(np.log(2 / eps))


def good_stablemax(x):
    x = np.asarray(x, dtype=float)
    s = np.where(x >= 0, x + 1, 1 / (1 - np.minimum(x, 0)))
    return s / s.sum(axis=-1, keepdims=True)


def good_erank(m):
    sv = np.linalg.svd(np.asarray(m, dtype=float), compute_uv=False)
    p = sv / sv.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_registered():
    keys = ("ent-entropy", "ent-ceiling", "ent-causal-bound", "ent-sigma-adam", "ent-collapse-gap",
            "ent-stablemax", "ent-erank")
    for key in keys:
        assert registry[key]["chapter"] == "entropy"
        assert all(name.startswith("companion.entropy.") for name in registry[key]["implements"])
    assert {k for k in registry if registry[k]["chapter"] == "entropy"} == set(keys)
    assert sum(registry[k]["points"] for k in keys) == 13
    assert "ent-bound" not in registry


@pytest.mark.parametrize("check, good, bad", [
    (ex.check_attention_entropy, good_entropy,
     lambda a: -(np.asarray(a) * np.log(np.asarray(a) + 1e-3)).sum(-1)),            # smoothed log: wrong values
    (ex.check_attention_entropy, good_entropy,
     lambda a: -np.nansum(np.asarray(a) * np.log(np.asarray(a)), axis=0)),           # wrong axis
    (ex.check_entropy_bound, good_bound,
     lambda T, s: np.log(1 + (T - 1) * np.exp(-s))),                                   # first term only, wrong beta
    (ex.check_entropy_bound, good_bound,
     lambda T, s: good_bound(T, s) * 1.01),                                            # off by 1%
    (ex.check_causal_ceiling, good_ceiling, lambda T: float(np.log(T))),                 # log T, the full-attention maximum
    (ex.check_causal_ceiling, good_ceiling, lambda T: float(np.mean(np.log(np.arange(2, T + 2))))),  # off by one key
    (ex.check_causal_bound, good_causal_bound, lambda T, s: good_bound(T, s) if T > 1 else 0.0),     # ignores the mask
    (ex.check_causal_bound, good_causal_bound,
     lambda T, s: sum(good_bound(i, s) for i in range(2, T + 1)) / max(T - 1, 1)),     # averages over T - 1 queries
    (ex.check_sigma_reparam_growth, good_prediction,
     lambda d, lr, n, s0: (s0 + n * lr, s0 + n * lr)),                                 # plain weight as slow as gamma
    (ex.check_sigma_reparam_growth, good_prediction,
     lambda d, lr, n, s0: (s0 + n * lr * d * d, s0 + n * lr)),                         # Frobenius-style d^2 growth
    (ex.check_collapse_gap, good_gap, lambda eps: float(np.log(1 / eps))),             # misses the half ulp
    (ex.check_collapse_gap, good_gap, lambda eps: 20.0),                               # the example's gap
    (ex.check_stablemax, good_stablemax,
     lambda x: np.exp(x - np.max(x, -1, keepdims=True)) / np.exp(x - np.max(x, -1, keepdims=True)).sum(-1, keepdims=True)),
    (ex.check_stablemax, good_stablemax,
     lambda x: (np.abs(x) + 1) / (np.abs(x) + 1).sum(-1, keepdims=True)),             # wrong negative branch
    (ex.check_effective_rank, good_erank,
     lambda m: float(np.linalg.matrix_rank(m))),                                        # the ordinary rank
    (ex.check_effective_rank, good_erank,
     lambda m: float(np.exp(-sum(p * np.log(p) for p in np.linalg.svd(m, compute_uv=False) ** 2
                                  / (np.linalg.svd(m, compute_uv=False) ** 2).sum() if p > 0)))),  # squared sv
])
def test_good_passes_bad_fails(check, good, bad, capsys):
    check(good)
    assert "[PASS]" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        check(bad)
    assert "[FAIL]" in capsys.readouterr().out


def test_stub_fails_and_results_file(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("COMPANION_RESULTS", str(results))

    def stub(*args):
        raise NotImplementedError

    with pytest.raises(AssertionError):
        ex.check_stablemax(stub)
    ex.check_causal_bound(good_causal_bound)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert rows[0]["exercise"] == "ent-stablemax" and not rows[0]["passed"] and "not attempted" in rows[0]["message"]
    assert rows[1]["exercise"] == "ent-causal-bound" and rows[1]["passed"] and rows[1]["score"] == 2


def test_edge_cases_of_the_new_checks(capsys):
    # T = 1: a single query has entropy 0, for the ceiling and the bound
    ex.check_causal_ceiling(lambda T: 0.0 if T == 1 else good_ceiling(T))
    with pytest.raises(AssertionError):
        ex.check_causal_ceiling(lambda T: float("nan") if T == 1 else good_ceiling(T))
    # a prediction returned as a numpy array passes too; a scalar does not
    ex.check_sigma_reparam_growth(lambda *a: np.array(good_prediction(*a)))
    with pytest.raises(AssertionError):
        ex.check_sigma_reparam_growth(lambda d, lr, n, s0: s0 + n * lr * d)
    # the answer must hold in every precision, not only float32
    with pytest.raises(AssertionError):
        ex.check_collapse_gap(lambda eps: 16.64)
