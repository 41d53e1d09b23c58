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


def threshold_reference(n_per_class):   # depth 2 (the notebook's solution)
    n = np.asarray(n_per_class, dtype=float)
    return n ** (2 / 3) / (2 ** (4 / 3) * n.sum())


def reduced_objective_reference(x, num_classes, n_per_class, lam_w, lam_h):
    k, n = num_classes, n_per_class
    return float(np.log1p((k - 1) * np.exp(-x)) + (k - 1) * np.sqrt(n * lam_w * lam_h) * x)


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


def threshold_depth_one(n_per_class):     # the depth-1 answer is not the depth-2 one
    n = np.asarray(n_per_class, dtype=float)
    return np.sqrt(n) / n.sum()


def threshold_spinodal(n_per_class):      # where the nonzero critical point appears, not where it wins
    n = np.asarray(n_per_class, dtype=float)
    # kappa = 3 N lam n^(-2/3) >= max_a 3 (1-a) a^(1/3) = 3 * 0.75 * 4^(-1/3)
    return 0.75 * 4 ** (-1 / 3) * n ** (2 / 3) / n.sum()


def reduced_objective_no_k_factor(x, num_classes, n_per_class, lam_w, lam_h):
    return float(np.log1p((num_classes - 1) * np.exp(-x)) + np.sqrt(n_per_class * lam_w * lam_h) * x)


def reduced_objective_plain_ce(x, num_classes, n_per_class, lam_w, lam_h):   # forgets the other classes
    return float(np.log1p(np.exp(-x)) + (num_classes - 1) * np.sqrt(n_per_class * lam_w * lam_h) * x)


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check,solution", [(ex.check_nc1, nc1_reference),
                                            (ex.check_simplex_etf, etf_reference),
                                            (ex.check_collapse_threshold, threshold_reference),
                                            (ex.check_reduced_objective, reduced_objective_reference)])
def test_reference_solutions_pass(check, solution, capsys):
    check(solution)
    assert "[PASS]" in capsys.readouterr().out


@pytest.mark.parametrize("check,wrong", [(ex.check_nc1, nc1_unweighted_global_mean),
                                         (ex.check_nc1, nc1_not_divided_by_c),
                                         (ex.check_nc1, stub),
                                         (ex.check_simplex_etf, etf_not_rescaled),
                                         (ex.check_simplex_etf, etf_no_validation),
                                         (ex.check_collapse_threshold, threshold_squared),
                                         (ex.check_collapse_threshold, threshold_depth_one),
                                         (ex.check_collapse_threshold, threshold_spinodal),
                                         (ex.check_collapse_threshold, stub),
                                         (ex.check_reduced_objective, reduced_objective_no_k_factor),
                                         (ex.check_reduced_objective, reduced_objective_plain_ce),
                                         (ex.check_reduced_objective, stub)])
def test_wrong_solutions_fail(check, wrong, capsys):
    with pytest.raises(AssertionError):
        check(wrong)
    assert "[FAIL]" in capsys.readouterr().out


def test_checks_are_registered_and_write_results(tmp_path, monkeypatch):
    assert {"nc-nc1", "nc-etf", "nc-threshold", "nc-margin"} <= set(registry)
    assert registry["nc-threshold"]["points"] == 3 and registry["nc-margin"]["points"] == 3
    # each exercise names the companion functions it asks the student to write
    assert registry["nc-nc1"]["implements"] == ("companion.neural_collapse.nc_metrics",
                                                "companion.neural_collapse.NCTracker")
    assert registry["nc-etf"]["implements"] == ("companion.neural_collapse.simplex_etf",)
    assert registry["nc-threshold"]["implements"] == ("companion.neural_collapse.minority_collapse_threshold",)
    assert "companion.neural_collapse.ufm_ce_reduced_objective" in registry["nc-margin"]["implements"]
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("COMPANION_RESULTS", str(results))
    ex.check_simplex_etf(etf_reference)
    with pytest.raises(AssertionError):
        ex.check_nc1(stub)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["exercise"], r["passed"], r["score"]) for r in rows] == [("nc-etf", True, 2), ("nc-nc1", False, 0)]


def test_reduced_objective_check_accepts_numpy_scalars(capsys):
    ex.check_reduced_objective(lambda x, k, n, lw, lh: np.float64(reduced_objective_reference(x, k, n, lw, lh)))
    assert "[PASS]" in capsys.readouterr().out


def test_chapter_exercise_metadata():
    """Each solution cell of the chapter carries its id, points and depends_on; the summary
    has a student version that does not state the depth-2 threshold."""
    import nbformat
    from pathlib import Path

    nb = nbformat.read(Path(__file__).parents[1] / "book" / "01_neural_collapse.ipynb", as_version=4)
    ids = {c.id for c in nb.cells}
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert {c.metadata["exercise"] for c in solutions} == {"nc-nc1", "nc-etf", "nc-margin", "nc-threshold"}
    for c in solutions:
        assert c.source.startswith("# @title Solution")
        assert set(c.metadata["depends_on"]) <= ids
    summary = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Summary"))
    assert "2^{4/3}" in summary.source and "2^{4/3}" not in summary.metadata["student_version"]
    assert "n_k^{2/3}" not in summary.metadata["student_version"]
