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
    for key in ("ent-entropy", "ent-bound", "ent-stablemax", "ent-erank"):
        assert registry[key]["chapter"] == "entropy"
    assert sum(registry[k]["points"] for k in registry if registry[k]["chapter"] == "entropy") == 7


@pytest.mark.parametrize("check, good, bad", [
    (ex.check_attention_entropy, good_entropy,
     lambda a: -(np.asarray(a) * np.log(np.asarray(a) + 1e-3)).sum(-1)),            # smoothed log: wrong values
    (ex.check_attention_entropy, good_entropy,
     lambda a: -np.nansum(np.asarray(a) * np.log(np.asarray(a)), axis=0)),           # wrong axis
    (ex.check_entropy_bound, good_bound,
     lambda T, s: np.log(1 + (T - 1) * np.exp(-s))),                                   # first term only, wrong beta
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
    ex.check_entropy_bound(good_bound)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert rows[0]["exercise"] == "ent-stablemax" and not rows[0]["passed"] and "not attempted" in rows[0]["message"]
    assert rows[1]["exercise"] == "ent-bound" and rows[1]["passed"] and rows[1]["score"] == 2
