"""Chapter 1's exercises: each reference solution passes its check, typical mistakes fail."""

import json

import numpy as np
import pytest

from companion.exercises import neural_collapse as ex
from companion.exercises import registry


# --- reference solutions (the notebook's solution cells) ---------------------------------
def nc1_reference(features, labels):
    h = np.asarray(features, dtype=float)
    y = np.asarray(labels)
    classes = np.unique(y)
    c = classes.size
    means = np.stack([h[y == k].mean(axis=0) for k in classes])
    global_mean = h.mean(axis=0)
    within = h - means[np.searchsorted(classes, y)]
    sigma_w = within.T @ within / len(y)
    centred = means - global_mean
    sigma_b = centred.T @ centred / c
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / c)


def etf_reference(num_classes):
    if num_classes < 2:
        raise ValueError("num_classes must be at least 2")
    c = num_classes
    return np.sqrt(c / (c - 1)) * (np.eye(c) - np.ones((c, c)) / c)


def threshold_reference(n_per_class):
    n = np.asarray(n_per_class, dtype=float)
    return np.sqrt(n) / n.sum()


# --- typical mistakes -------------------------------------------------------------------
def nc1_unweighted_global_mean(features, labels):
    h, y = np.asarray(features, float), np.asarray(labels)
    c = y.max() + 1
    means = np.stack([h[y == k].mean(axis=0) for k in range(c)])
    within = h - means[y]
    centred = means - means.mean(axis=0)
    return float(np.trace(within.T @ within / len(y) @ np.linalg.pinv(centred.T @ centred / c)) / c)


def nc1_not_divided_by_c(features, labels):
    return nc1_reference(features, labels) * (np.asarray(labels).max() + 1)


def etf_not_rescaled(num_classes):
    if num_classes < 2:
        raise ValueError
    return np.eye(num_classes) - 1.0 / num_classes


def etf_no_validation(num_classes):
    return etf_reference(max(num_classes, 2))


def threshold_squared(n_per_class):
    n = np.asarray(n_per_class, dtype=float)
    return n / n.sum() ** 2


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check,solution", [(ex.check_nc1, nc1_reference),
                                            (ex.check_simplex_etf, etf_reference),
                                            (ex.check_collapse_threshold, threshold_reference)])
def test_reference_solutions_pass(check, solution, capsys):
    check(solution)
    assert "[PASS]" in capsys.readouterr().out


@pytest.mark.parametrize("check,wrong", [(ex.check_nc1, nc1_unweighted_global_mean),
                                         (ex.check_nc1, nc1_not_divided_by_c),
                                         (ex.check_nc1, stub),
                                         (ex.check_simplex_etf, etf_not_rescaled),
                                         (ex.check_simplex_etf, etf_no_validation),
                                         (ex.check_collapse_threshold, threshold_squared),
                                         (ex.check_collapse_threshold, stub)])
def test_wrong_solutions_fail(check, wrong, capsys):
    with pytest.raises(AssertionError):
        check(wrong)
    assert "[FAIL]" in capsys.readouterr().out


def test_checks_are_registered_and_write_results(tmp_path, monkeypatch):
    assert {"nc-nc1", "nc-etf", "nc-threshold"} <= set(registry)
    assert registry["nc-threshold"]["points"] == 3
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("COMPANION_RESULTS", str(results))
    ex.check_simplex_etf(etf_reference)
    with pytest.raises(AssertionError):
        ex.check_nc1(stub)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["exercise"], r["passed"], r["score"]) for r in rows] == [("nc-etf", True, 2), ("nc-nc1", False, 0)]
