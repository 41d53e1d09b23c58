"""Each Chapter 4 exercise: the reference solution passes its check, wrong ones fail."""

import numpy as np
import pytest

from companion import scaling as sc
from companion.exercises import registry
from companion.exercises import scaling as ex


def good_compute_optimal(C, E, A, B, alpha, beta):
    C = np.asarray(C, dtype=float)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return G * (C / 6) ** (beta / (alpha + beta)), (C / 6) ** (alpha / (alpha + beta)) / G


def calls_the_companion(C, E, A, B, alpha, beta):
    n, d, _ = sc.compute_optimal(C, sc.ChinchillaParams(E, A, B, alpha, beta))
    return n, d


def swapped_exponents(C, E, A, B, alpha, beta):
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    a, b = alpha / (alpha + beta), beta / (alpha + beta)  # wrong: a and b swapped
    return G * (C / 6) ** a, (C / 6) ** b / G


def forgets_six(C, E, A, B, alpha, beta):
    n, d, _ = sc.compute_optimal(6 * np.asarray(C, dtype=float), sc.ChinchillaParams(E, A, B, alpha, beta))
    return n, d


def test_compute_optimal_check():
    assert ex.check_compute_optimal(good_compute_optimal)
    for wrong in (swapped_exponents, forgets_six, calls_the_companion):
        with pytest.raises(AssertionError):
            ex.check_compute_optimal(wrong)


def test_parabola_vertex_check():
    assert ex.check_parabola_vertex(ex.reference_parabola_vertex)

    def argmin_of_points(x, y):
        return 10 ** x[np.argmin(y)]

    def returns_log(x, y):
        c2, c1, _ = np.polyfit(x, y, 2)
        return -c1 / (2 * c2)

    for wrong in (argmin_of_points, returns_log):
        with pytest.raises(AssertionError):
            ex.check_parabola_vertex(wrong)


def test_linear_coefficients_check():
    assert ex.check_linear_coefficients(ex.reference_linear_coefficients)

    def absolute_residuals(N, D, loss, alpha, beta):
        X = np.column_stack([np.ones_like(N), N ** -alpha, D ** -beta])
        return np.linalg.lstsq(X, loss, rcond=None)[0]

    def not_implemented(N, D, loss, alpha, beta):
        raise NotImplementedError

    with pytest.raises(AssertionError):
        ex.check_linear_coefficients(absolute_residuals)
    with pytest.raises(AssertionError, match="not attempted"):
        ex.check_linear_coefficients(not_implemented)


def test_registry_entries():
    for key, points in (("sc-optimal", 2), ("sc-vertex", 2), ("sc-linear", 3)):
        assert registry[key]["points"] == points
        assert registry[key]["chapter"] == "scaling"


def test_results_file(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv("COMPANION_RESULTS", str(path))
    ex.check_compute_optimal(good_compute_optimal)
    with pytest.raises(AssertionError):
        ex.check_compute_optimal(swapped_exponents)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and '"passed": true' in lines[0] and '"passed": false' in lines[1]


def test_vertex_offset_check():
    assert ex.check_vertex_offset(ex.reference_vertex_offset)

    def wrong_sign(alpha, beta, width, points=15):
        return 1.0 / ex.reference_vertex_offset(alpha, beta, width, points)

    def forgets_the_weights(alpha, beta, width, points=15):
        x = np.linspace(-np.log(width), np.log(width), points)
        c2, c1, _ = np.polyfit(x, np.exp(-alpha * x) + np.exp(beta * x), 2)
        return np.exp(c1 / (2 * c2))

    for wrong in (wrong_sign, forgets_the_weights):
        with pytest.raises(AssertionError):
            ex.check_vertex_offset(wrong)


def test_predict_budget_check():
    assert ex.check_predict_budget(ex.reference_predict_budget)

    def with_approach2(N, D, loss, C):
        fit = sc.fit_approach2(N, D, loss)
        return fit.optimal(C)[0], fit.optimal_loss(C)

    with pytest.raises(AssertionError):
        ex.check_predict_budget(with_approach2)


def test_new_registry_entries_name_what_the_student_writes():
    assert registry["sc-offset"]["points"] == 3
    assert "companion.scaling.approach2_bias" in registry["sc-offset"]["implements"]
    assert registry["sc-predict"]["points"] == 3
    assert registry["sc-optimal"]["implements"] == ("companion.scaling.compute_optimal",
                                                    "companion.scaling.optimal_exponents")


def test_references_reject_bad_input_without_hanging():
    """reference_parabola_vertex hung (LAPACK) on 1e308; now a clear error."""
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([3.0, 2.5, 2.4, 2.6])
    for bad in (1e308, np.inf, np.nan):
        with pytest.raises(ValueError, match="log10_d"):
            ex.reference_parabola_vertex(np.where(x == 3.0, bad, x), y)
        with pytest.raises(ValueError, match="loss"):
            ex.reference_parabola_vertex(x, np.where(x == 3.0, bad, y))
    with pytest.raises(ValueError, match="loss"):
        ex.reference_parabola_vertex(x, -y)  # opens downwards: no vertex to return
    with pytest.raises(TypeError, match="loss"):
        ex.reference_parabola_vertex(x, y + 1j)
    data = sc.isoflop_grid(points_per_curve=5)
    with pytest.raises(ValueError, match="alpha"):
        ex.reference_linear_coefficients(data.N, data.D, data.loss, np.inf, 0.28)
    with pytest.raises(ValueError, match="width"):
        ex.reference_vertex_offset(0.34, 0.28, 1.0)
