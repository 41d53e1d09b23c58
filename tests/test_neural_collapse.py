"""Unit tests of companion.neural_collapse: closed forms, the papers' numbers, invariances,
and agreement between independent computations."""

import itertools
import math

import numpy as np
import pytest
import torch

from companion import neural_collapse as nc
from companion.data import gaussian_mixture
from companion.training import History


# --------------------------------------------------------------------------------------
# helpers: a naive, loop-based implementation of the definitions (independent of the module)
# --------------------------------------------------------------------------------------
def naive_metrics(h, y, w=None, b=None):
    h = np.asarray(h, float)
    classes = range(int(y.max()) + 1)
    c = len(classes)
    n = len(y)
    mu = np.array([h[y == k].mean(axis=0) for k in classes])
    mu_g = h.mean(axis=0)
    sw = sum(np.outer(h[i] - mu[y[i]], h[i] - mu[y[i]]) for i in range(n)) / n
    sb = sum(np.outer(mu[k] - mu_g, mu[k] - mu_g) for k in classes) / c
    out = {"nc1": np.trace(sw @ np.linalg.pinv(sb)) / c, "nc1_trace_ratio": np.trace(sw) / np.trace(sb)}
    var = [np.mean([np.sum((x - mu[k]) ** 2) for x in h[y == k]]) for k in classes]
    out["cdnv"] = np.mean([(var[a] + var[b_]) / (2 * np.sum((mu[a] - mu[b_]) ** 2))
                           for a, b_ in itertools.combinations(classes, 2)])
    norms = [np.linalg.norm(mu[k] - mu_g) for k in classes]
    out["equinorm_means"] = np.std(norms) / np.mean(norms)
    cos = [np.dot(mu[a] - mu_g, mu[b_] - mu_g) / (norms[a] * norms[b_])
           for a in classes for b_ in classes if a != b_]
    out["equiangularity"] = np.std(cos)
    out["max_angle"] = np.mean([abs(x + 1 / (c - 1)) for x in cos])
    if w is not None:
        wn = np.linalg.norm(w, axis=1)
        out["equinorm_weights"] = np.std(wn) / np.mean(wn)
        m = (mu - mu_g).T
        out["self_duality"] = np.linalg.norm(w.T / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2
        b = np.zeros(c) if b is None else b
        pred = [np.argmax(w @ x + b) for x in h]
        ncc = [np.argmin([np.linalg.norm(x - mu[k]) for k in classes]) for x in h]
        out["ncc_mismatch"] = np.mean(np.array(pred) != np.array(ncc))
    return out


def random_problem(seed=0, n=(30, 20, 12, 7), d=6, spread=1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(n)), n)
    means = 2.0 * rng.standard_normal((len(n), d))
    h = means[y] + spread * rng.standard_normal((y.size, d)) + 3.0
    w = rng.standard_normal((len(n), d))
    b = rng.standard_normal(len(n))
    return h, y, w, b


# --------------------------------------------------------------------------------------
# simplex ETF
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("c,d,seed", [(2, None, None), (4, None, None), (5, 4, None), (5, 4, 3),
                                      (10, 10, 1), (4, 12, None), (4, 12, 7)])
def test_simplex_etf_properties(c, d, seed):
    m = nc.simplex_etf(c, d, seed)
    assert m.shape == (d or c, c)
    gram = m.T @ m
    np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-12)
    off = gram[~np.eye(c, dtype=bool)]
    np.testing.assert_allclose(off, -1.0 / (c - 1), atol=1e-12)
    np.testing.assert_allclose(m.sum(axis=1), 0.0, atol=1e-12)
    assert np.linalg.matrix_rank(m) == c - 1


def test_simplex_etf_canonical_matches_formula_and_seed_rotates():
    c = 5
    expected = math.sqrt(c / (c - 1)) * (np.eye(c) - np.ones((c, c)) / c)
    np.testing.assert_allclose(nc.simplex_etf(c), expected, atol=1e-12)
    a, b = nc.simplex_etf(c, 7, seed=1), nc.simplex_etf(c, 7, seed=2)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(a, nc.simplex_etf(c, 7, seed=1))
    # any two ETFs differ by an orthogonal map: same Gram matrix
    np.testing.assert_allclose(a.T @ a, b.T @ b, atol=1e-12)


@pytest.mark.parametrize("args,exc", [((1,), ValueError), ((4, 2), ValueError), ((2.5,), TypeError),
                                      ((4, None, -1), ValueError)])
def test_simplex_etf_rejects_bad_input(args, exc):
    with pytest.raises(exc):
        nc.simplex_etf(*args)


# --------------------------------------------------------------------------------------
# nc_metrics
# --------------------------------------------------------------------------------------
def test_nc_metrics_matches_naive_definitions():
    h, y, w, b = random_problem()
    got = nc.nc_metrics(h, y, w, b).as_dict()
    expected = naive_metrics(h, y, w, b)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_nc_metrics_without_classifier_leaves_weight_fields_none():
    h, y, _, _ = random_problem(1)
    m = nc.nc_metrics(h, y)
    assert m.equinorm_weights is None and m.self_duality is None and m.ncc_mismatch is None
    assert m.nc1 > 0 and m.cdnv > 0


def test_nc_metrics_accepts_torch_tensors():
    h, y, w, b = random_problem(2)
    a = nc.nc_metrics(h, y, w, b)
    t = nc.nc_metrics(torch.tensor(h, dtype=torch.float64), torch.tensor(y), torch.tensor(w),
                      torch.tensor(b))
    assert a == t
    f32 = nc.nc_metrics(torch.tensor(h, dtype=torch.float32, requires_grad=True), torch.tensor(y))
    assert f32.nc1 == pytest.approx(a.nc1, rel=1e-5)


def test_collapsed_etf_features_give_zero_metrics():
    c, d = 5, 8
    m = nc.simplex_etf(c, d, seed=0)                       # (d, C)
    y = np.repeat(np.arange(c), [10, 10, 10, 10, 10])
    h = 3.0 * m.T[y] + 1.5                                 # collapsed onto a shifted ETF
    m_ = nc.nc_metrics(h, y, weights=2.0 * m.T)            # classifier = scaled means (self-dual)
    for key in ("nc1", "nc1_trace_ratio", "cdnv", "equinorm_means", "equinorm_weights",
                "equiangularity", "max_angle", "self_duality", "ncc_mismatch"):
        assert abs(getattr(m_, key)) < 1e-12, key


def test_invariances_of_nc1():
    h, y, w, _ = random_problem(3)
    base = nc.nc_metrics(h, y)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((h.shape[1], h.shape[1])))
    moved = nc.nc_metrics(5.0 * h @ q + 7.0, y)            # rotation, scale and shift
    for key in ("nc1", "nc1_trace_ratio", "cdnv", "equinorm_means", "equiangularity", "max_angle"):
        assert getattr(moved, key) == pytest.approx(getattr(base, key), rel=1e-9), key
    perm = rng.permutation(len(y))
    assert nc.nc_metrics(h[perm], y[perm]).nc1 == pytest.approx(base.nc1, rel=1e-12)
    # NC1 is invariant under any invertible linear map when d = C - 1 ... and shrinks with noise
    noisier = nc.nc_metrics(h + 3.0 * rng.standard_normal(h.shape), y)
    assert noisier.nc1 > base.nc1


def test_global_mean_is_sample_weighted():
    # two classes, imbalanced: means at 0 and 1, global mean 0.9, not 0.5
    h = np.array([[0.0], [1.0], [1.0], [1.0], [1.0], [1.0], [1.0], [1.0], [1.0], [1.0]])
    h = np.hstack([h, np.zeros_like(h)]) + np.array([[0.0, 0.0]] + [[0.0, 0.0]] * 9)
    y = np.array([0] + [1] * 9)
    m = nc.nc_metrics(h, y)
    # centred norms 0.9 and 0.1: std/mean = 0.4/0.5
    assert m.equinorm_means == pytest.approx(0.8)


@pytest.mark.parametrize("case", ["one_class", "empty_class", "shape", "nan", "label_range", "label_neg",
                                  "weights_shape", "bias_shape", "float_labels", "same_means"])
def test_nc_metrics_rejects_bad_input(case):
    h, y, w, b = random_problem(4)
    kwargs = {}
    if case == "one_class":
        y = np.zeros_like(y)
    elif case == "empty_class":
        y = np.where(y == 1, 0, y)
    elif case == "shape":
        y = y[:-1]
    elif case == "nan":
        h = h.copy()
        h[0, 0] = np.nan
    elif case == "label_range":
        kwargs = {"weights": w}
        y = y.copy()
        y[0] = 4
    elif case == "label_neg":
        y = y.copy()
        y[0] = -1
    elif case == "weights_shape":
        kwargs = {"weights": w[:, :-1]}
    elif case == "bias_shape":
        kwargs = {"weights": w, "bias": b[:-1]}
    elif case == "float_labels":
        y = y + 0.5
    elif case == "same_means":
        h = np.ones_like(h)
    with pytest.raises(TypeError if case == "float_labels" else ValueError) as err:
        nc.nc_metrics(h, y, **kwargs)
    word = {"one_class": "num_classes", "empty_class": "no samples", "shape": "labels", "nan": "NaN",
            "label_range": "labels", "label_neg": "labels", "weights_shape": "weights",
            "bias_shape": "bias", "float_labels": "labels", "same_means": "coincide"}[case]
    assert word in str(err.value)


# --------------------------------------------------------------------------------------
# NCTracker
# --------------------------------------------------------------------------------------
def _feed(tracker, h, y, batch, to_torch=False, w=None, b=None):
    for start in range(0, len(y), batch):
        hb, yb = h[start:start + batch], y[start:start + batch]
        if to_torch:
            hb, yb = torch.tensor(hb), torch.tensor(yb)
        tracker.update(hb, yb)
    if w is not None:
        for start in range(0, len(y), batch):
            hb = h[start:start + batch]
            tracker.update_ncc(hb, logits=hb @ w.T + b)


@pytest.mark.parametrize("batch,to_torch", [(7, False), (64, True), (1000, False)])
def test_tracker_matches_nc_metrics(batch, to_torch):
    h, y, w, b = random_problem(5, n=(80, 50, 33, 20, 9), d=12)
    h = h + 100.0  # a large offset: the shifted accumulation must not lose digits
    perm = np.random.default_rng(0).permutation(len(y))
    h, y = h[perm], y[perm]
    tracker = nc.NCTracker(5, 12)
    _feed(tracker, h, y, batch, to_torch, w, b)
    got = tracker.compute(w, b).as_dict()
    expected = nc.nc_metrics(h, y, w, b).as_dict()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), key
    assert tracker.num_samples == len(y)


def test_tracker_ncc_pass_with_weights_and_without_second_pass():
    h, y, w, b = random_problem(6)
    t1 = nc.NCTracker(4, h.shape[1]).update(h, y)
    assert t1.compute(w, b).ncc_mismatch is None
    t1.update_ncc(h, weights=w, bias=b)
    assert t1.compute(w, b).ncc_mismatch == pytest.approx(nc.nc_metrics(h, y, w, b).ncc_mismatch)
    t2 = nc.NCTracker(4, h.shape[1]).update(h, y).update_ncc(h[:10], weights=w, bias=b)
    with pytest.raises(ValueError, match="NC4 pass"):
        t2.compute(w, b)


def test_tracker_memory_does_not_grow():
    tracker = nc.NCTracker(3, 4)
    rng = np.random.default_rng(0)
    for _ in range(50):
        tracker.update(rng.standard_normal((100, 4)), rng.integers(0, 3, 100))
    sizes = [t.numel() for t in (tracker._counts, tracker._sums, tracker._sq_norms, tracker._second)]
    assert sum(sizes) == 3 + 3 * 4 + 3 + 4 * 4
    assert tracker.num_samples == 5000


@pytest.mark.parametrize("case", ["dim", "labels_range", "nan", "missing_class", "n_mismatch"])
def test_tracker_rejects_bad_input(case):
    tracker = nc.NCTracker(3, 4)
    h, y = np.ones((5, 4)), np.array([0, 1, 2, 0, 1])
    with pytest.raises(ValueError):
        if case == "dim":
            tracker.update(np.ones((5, 3)), y)
        elif case == "labels_range":
            tracker.update(h, np.array([0, 1, 3, 0, 1]))
        elif case == "nan":
            tracker.update(np.full((5, 4), np.nan), y)
        elif case == "missing_class":
            tracker.update(np.random.default_rng(0).standard_normal((5, 4)), np.array([0, 1, 1, 0, 1]))
            tracker.compute()
        elif case == "n_mismatch":
            tracker.update(h, y[:-1])


# --------------------------------------------------------------------------------------
# closed forms: the papers' numbers
# --------------------------------------------------------------------------------------
def test_ufm_ce_solution_spec_numbers():
    s = nc.ufm_ce_solution(4, 5, 5e-3, 5e-3)
    assert s.weight_norm_sq == pytest.approx(7.478779, abs=5e-7)
    assert s.feature_norm_sq == pytest.approx(1.495756, abs=5e-7)
    assert s.margin == pytest.approx(4.459482, abs=5e-7)
    assert not s.collapsed
    # w_k = sqrt(n lam_H / lam_W) h_k
    assert s.weight_norm_sq / s.feature_norm_sq == pytest.approx(5 * 5e-3 / 5e-3)


def test_ufm_ce_solution_collapses_beyond_threshold():
    # s = sqrt(n lam_W lam_H) >= 1/K gives the zero minimiser
    k, n = 4, 5
    lam = 1 / (k * math.sqrt(n))
    assert nc.ufm_ce_solution(k, n, lam * 1.01, lam).collapsed
    assert not nc.ufm_ce_solution(k, n, lam * 0.99, lam).collapsed


def test_ufm_mse_solution_formula():
    s = nc.ufm_mse_solution(4, 5, 5e-3, 5e-3)
    p = 1 - 4 * math.sqrt(5 * 5e-3 * 5e-3)
    assert s.margin == pytest.approx(p)
    assert s.weight_norm_sq * s.feature_norm_sq == pytest.approx(p**2)  # ||w|| ||h|| = p
    assert nc.ufm_mse_solution(4, 5, 0.2, 0.2).collapsed


def test_imbalanced_solution_spec_numbers():
    s = nc.imbalanced_mse_solution([20, 10, 5, 2], 1.5e-2, 1.5e-2)
    np.testing.assert_allclose(s.p, [0.875898, 0.824494, 0.751796, 0.607556], atol=5e-7)
    assert not s.collapsed.any()
    s = nc.imbalanced_mse_solution([20, 10, 5, 2], 0.045, 0.045)
    assert s.collapsed.tolist() == [False, False, False, True]
    assert s.feature_norm_sq[-1] == 0.0 and s.p[-1] == 0.0


def test_imbalanced_reduces_to_balanced():
    a = nc.imbalanced_mse_solution([5] * 4, 5e-3, 2e-3)
    b = nc.ufm_mse_solution(4, 5, 5e-3, 2e-3)
    np.testing.assert_allclose(a.p, b.margin)
    np.testing.assert_allclose(a.feature_norm_sq, b.feature_norm_sq)
    np.testing.assert_allclose(a.weight_norm_sq, b.weight_norm_sq)
    assert a.objective == pytest.approx(b.objective)


def test_minority_collapse_threshold_is_where_p_vanishes():
    n = [20, 10, 5, 2]
    thresholds = nc.minority_collapse_threshold(n)
    np.testing.assert_allclose(thresholds, np.sqrt(n) / 37)
    for k, t in enumerate(thresholds):
        assert not nc.imbalanced_mse_solution(n, t * 0.99, t * 0.99).collapsed[k]
        assert nc.imbalanced_mse_solution(n, t * 1.01, t * 1.01).collapsed[k]


def test_deep_solution_root_satisfies_its_equation():
    n, lam, depth = np.array([20, 10, 5, 2]), 5e-3, 3
    s = nc.imbalanced_mse_solution(n, lam, lam, depth=depth)
    total = n.sum()
    b = depth * total * (total * lam**depth * lam) ** (1 / depth)
    x = (s.singular_values ** (2 * depth) / (total * lam)) ** (1 / depth)
    np.testing.assert_allclose(b / n, depth * x ** (depth - 1) / (x**depth + 1) ** 2, rtol=1e-8)


@pytest.mark.parametrize("fn,args", [(nc.ufm_ce_solution, (1, 5, 1e-3, 1e-3)),
                                     (nc.ufm_mse_solution, (4, 0, 1e-3, 1e-3)),
                                     (nc.ufm_ce_solution, (4, 5, -1e-3, 1e-3)),
                                     (nc.imbalanced_mse_solution, ([5], 1e-3, 1e-3)),
                                     (nc.imbalanced_mse_solution, ([5, 0], 1e-3, 1e-3)),
                                     (nc.imbalanced_mse_solution, ([5, 2], 1e-3, 1e-3, 0)),
                                     (nc.minority_collapse_threshold, ([3.5, 2],))])
def test_closed_forms_reject_bad_input(fn, args):
    with pytest.raises(ValueError):
        fn(*args)


# --------------------------------------------------------------------------------------
# closed forms vs optimisation of the UFM
# --------------------------------------------------------------------------------------
def test_train_ufm_ce_reaches_closed_form():
    s = nc.ufm_ce_solution(4, 5, 5e-3, 5e-3)
    r = nc.train_ufm([5] * 4, 5e-3, 5e-3, loss="ce", dim=6)
    assert r.objective == pytest.approx(s.objective, rel=1e-6)
    np.testing.assert_allclose(np.sum(r.weights**2, axis=1), s.weight_norm_sq, rtol=1e-4)
    np.testing.assert_allclose(r.class_feature_norms_sq(), s.feature_norm_sq, rtol=1e-4)
    logits = r.features @ r.weights.T + r.bias
    true = logits[np.arange(len(r.labels)), r.labels]
    gaps = true[:, None] - logits
    gaps = gaps[np.arange(4)[None, :] != r.labels[:, None]]
    np.testing.assert_allclose(gaps, s.margin, rtol=1e-4)
    m = r.metrics()
    assert m.nc1 < 1e-8 and m.max_angle < 1e-5 and m.self_duality < 1e-8


def test_train_ufm_mse_balanced_reaches_closed_form():
    s = nc.ufm_mse_solution(4, 5, 5e-3, 5e-3)
    r = nc.train_ufm([5] * 4, 5e-3, 5e-3, loss="mse")
    assert r.objective == pytest.approx(s.objective, rel=1e-6)
    np.testing.assert_allclose(r.class_feature_norms_sq(), s.feature_norm_sq, rtol=1e-4)
    means = np.stack([r.features[r.labels == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(r.weights @ means.T, s.margin * np.eye(4), atol=1e-4)  # W M = p I


@pytest.mark.parametrize("lam", [1.5e-2, 0.045])
def test_train_ufm_imbalanced_reaches_closed_form(lam):
    n = [20, 10, 5, 2]
    s = nc.imbalanced_mse_solution(n, lam, lam)
    r = nc.train_ufm(n, lam, lam, loss="mse")
    assert r.objective == pytest.approx(s.objective, rel=1e-6)
    np.testing.assert_allclose(r.class_feature_norms_sq(), s.feature_norm_sq, rtol=1e-3, atol=1e-8)
    np.testing.assert_allclose(np.sum(r.weights**2, axis=1), s.weight_norm_sq, rtol=1e-3, atol=1e-8)


def test_train_ufm_depth_two_reaches_closed_form():
    n = [20, 10, 5, 2]
    s = nc.imbalanced_mse_solution(n, 5e-3, 5e-3, depth=2)
    r = nc.train_ufm(n, 5e-3, 5e-3, loss="mse", depth=2, steps=500)
    assert r.objective == pytest.approx(s.objective, rel=1e-5)
    np.testing.assert_allclose(r.class_feature_norms_sq(), s.feature_norm_sq, rtol=1e-3)


def test_train_ufm_depth_three_reaches_closed_form_from_a_large_start():
    # for depth >= 3 zero is a local minimum of each class's term (a product of three small
    # factors), so a start near zero can leave the smallest class there; a larger start does not
    n = [20, 10, 5, 2]
    s = nc.imbalanced_mse_solution(n, 5e-3, 5e-3, depth=3)
    r = nc.train_ufm(n, 5e-3, 5e-3, loss="mse", depth=3, steps=1000, init_scale=1.5)
    assert r.objective == pytest.approx(s.objective, rel=1e-6)
    np.testing.assert_allclose(r.class_feature_norms_sq(), s.feature_norm_sq, rtol=1e-3)


def test_train_ufm_rejects_bad_input():
    with pytest.raises(ValueError):
        nc.train_ufm([5, 5], 1e-3, 1e-3, loss="hinge")
    with pytest.raises(ValueError):
        nc.train_ufm([5, 5, 5], 1e-3, 1e-3, loss="mse", dim=2)  # MSE needs d >= K
    with pytest.raises(ValueError):
        nc.train_ufm([5, 5], 0.0, 1e-3)


# --------------------------------------------------------------------------------------
# perturbation model
# --------------------------------------------------------------------------------------
def test_perturbed_ufm_is_stationary_and_contracts_within_class_variability():
    h0, y = gaussian_mixture(num_classes=3, n_per_class=40, dim=8, separation=3.0, noise=2.0, seed=1)
    h0 = h0.astype(float)
    base = nc.nc_metrics(h0, y).nc1
    nc1 = []
    for beta in (10.0, 1.0, 0.1, 0.01):
        r = nc.perturbed_ufm(h0, y, lam_w=0.1, beta=beta, iterations=300)
        # stationarity in H for the returned W (closed-form block minimum)
        target = np.eye(3)[y].T
        best_h = np.linalg.solve(r.weights.T @ r.weights + beta * np.eye(8),
                                 r.weights.T @ target + beta * h0.T).T
        np.testing.assert_allclose(r.features, best_h, atol=1e-8)
        nc1.append(nc.nc_metrics(r.features, y).nc1)
    assert all(v < base for v in nc1)  # the contraction beta (W^T W + beta I)^-1 (a theorem)
    # weaker pull, more collapse (observed in this setting, the chapter's claim)
    assert all(a > b for a, b in zip(nc1, nc1[1:]))


def test_perturbed_ufm_objective_decreases_with_iterations():
    h0, y = gaussian_mixture(num_classes=3, n_per_class=20, dim=5, seed=2)
    a = nc.perturbed_ufm(h0, y, 1e-2, 0.5, iterations=1).objective
    b = nc.perturbed_ufm(h0, y, 1e-2, 0.5, iterations=50).objective
    assert b <= a


# --------------------------------------------------------------------------------------
# MLP experiment
# --------------------------------------------------------------------------------------
def test_train_mlp_nc_reduces_nc1_on_a_gaussian_mixture():
    torch.set_num_threads(1)
    x, y = gaussian_mixture(num_classes=3, n_per_class=40, dim=10, separation=3.0, noise=1.0, seed=0)
    model, hist = nc.train_mlp_nc(x, y, loss="mse", epochs=150, width=32, feature_dim=16, lr=0.05,
                                  eval_points=6)
    assert isinstance(hist, History)
    assert hist.steps("nc1")[0] == 0 and hist.steps("nc1")[-1] == 150
    assert hist["nc1"][-1] < hist["nc1"][0] / 3
    assert hist["train_error"][-1] == 0.0
    # the logged metrics are those of nc_metrics on the final model
    with torch.no_grad():
        h = model.features(torch.tensor(x))
    m = nc.nc_metrics(h, y, model.classifier.weight, model.classifier.bias)
    assert m.nc1 == pytest.approx(hist.last("nc1"), rel=1e-9)


def test_mlp_classifier_shapes():
    model = nc.MLPClassifier(5, 3, width=8, feature_dim=4, hidden_layers=1)
    x = torch.zeros(2, 5)
    assert model.features(x).shape == (2, 4) and model(x).shape == (2, 3)


def test_layer_outputs_end_with_the_features():
    model = nc.MLPClassifier(5, 3, width=8, feature_dim=4, hidden_layers=2)
    x = torch.randn(6, 5)
    outs = model.layer_outputs(x)
    assert [o.shape[1] for o in outs] == [5, 8, 8, 4]
    assert torch.equal(outs[0], x) and torch.allclose(outs[-1], model.features(x))


def test_stacked_training_equals_independent_runs():
    """Two independent computations: the batched trainer and one train_mlp_nc per setting."""
    torch.set_num_threads(1)
    x, y = gaussian_mixture(num_classes=3, n_per_class=20, dim=6, seed=1)
    settings = [("mse", 5e-3, 0), ("ce", 0.0, 1), ("mse", 2e-2, 1)]
    kw = dict(epochs=40, width=16, feature_dim=8, lr=0.05, eval_points=5)
    stacked, hists = nc.train_mlp_nc_seeds(x, y, [s for _, _, s in settings], loss=[l for l, _, _ in settings],
                                           weight_decay=[wd for _, wd, _ in settings], **kw)
    assert stacked.num_models == 3 and len(hists) == 3
    for k, (loss, wd, seed) in enumerate(settings):
        single, hist = nc.train_mlp_nc(x, y, loss=loss, weight_decay=wd, seed=seed, **kw)
        np.testing.assert_allclose(hists[k]["nc1"], hist["nc1"], rtol=1e-4)
        np.testing.assert_allclose(hists[k]["eval_loss"], hist["eval_loss"], rtol=1e-4)
        np.testing.assert_array_equal(hists[k].steps("nc1"), hist.steps("nc1"))
        net = stacked.unstack(k)
        xt = torch.as_tensor(x)
        with torch.no_grad():
            assert torch.allclose(net(xt), single(xt), atol=1e-4)
            assert torch.allclose(net(xt), stacked(xt)[k], atol=1e-6)


def test_stacked_training_logs_held_out_metrics_and_gradients():
    torch.set_num_threads(1)
    x, y = gaussian_mixture(num_classes=3, n_per_class=30, dim=6, seed=2)
    _, hists = nc.train_mlp_nc_seeds(x[::2], y[::2], [0], loss="ce", epochs=30, width=16, feature_dim=8,
                                     eval_points=4, test=(x[1::2], y[1::2]))
    h = hists[0]
    for key in ("test_nc1", "test_error", "test_cdnv", "loss_grad", "feature_norm", "train_error"):
        assert key in h
    # at initialisation the CE gradient of a near-uniform softmax is about sqrt((1-1/K)^2 + (K-1)/K^2)
    assert h["loss_grad"][0] == pytest.approx(math.sqrt((2 / 3) ** 2 + 2 / 9), rel=0.1)


@pytest.mark.parametrize("kwargs,exc", [(dict(seeds=[]), ValueError), (dict(loss=["mse"]), ValueError),
                                        (dict(loss="hinge"), ValueError), (dict(weight_decay=-1.0), ValueError),
                                        (dict(weight_decay=[1e-3]), ValueError), (dict(epochs=0), ValueError),
                                        (dict(test=(np.zeros((3, 2)), [0, 1, 2])), ValueError)])
def test_train_mlp_nc_seeds_rejects_bad_input(kwargs, exc):
    x, y = gaussian_mixture(num_classes=3, n_per_class=5, dim=4, seed=0)
    args = dict(seeds=[0, 1], epochs=2, width=4, feature_dim=3)
    args.update(kwargs)
    with pytest.raises(exc):
        nc.train_mlp_nc_seeds(x, y, **args)


def test_stacked_mlp_rejects_mixed_architectures():
    with pytest.raises(ValueError):
        nc.StackedMLP([nc.MLPClassifier(3, 2, width=4), nc.MLPClassifier(3, 2, width=5)])
    with pytest.raises(TypeError):
        nc.StackedMLP([])


def test_stratified_split_keeps_class_shares():
    from companion.data import stratified_split

    y = np.repeat(np.arange(3), [40, 20, 8])
    train, test = stratified_split(y, 0.25, seed=3)
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == y.size
    np.testing.assert_array_equal(np.bincount(y[test]), [10, 5, 2])
    again = stratified_split(y, 0.25, seed=3)
    np.testing.assert_array_equal(again[1], test)
    with pytest.raises(ValueError):
        stratified_split([0, 0, 1], 0.5)
    with pytest.raises(ValueError):
        stratified_split(y, 1.0)
    with pytest.raises(ValueError, match="labels"):  # no labels at all
        stratified_split([], 0.25)


# --------------------------------------------------------------------------------------
# one-dimensional reductions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_threshold_of_the_reduction_is_where_dang_solution_collapses(depth):
    """The 1-D reduction's threshold agrees with the root formula of Dang et al. (independent)."""
    n = [20, 10, 5, 2]
    for k, lam in enumerate(nc.minority_collapse_threshold(n, depth=depth)):
        below = nc.imbalanced_mse_solution(n, 0.999 * lam, 0.999 * lam, depth=depth)
        above = nc.imbalanced_mse_solution(n, 1.001 * lam, 1.001 * lam, depth=depth)
        assert not below.collapsed[k] and above.collapsed[k]
        if depth >= 2:  # a first-order jump: p just below the threshold is a* = 2(1-q)/(2-q)
            q = 2 / (depth + 1)
            assert below.p[k] == pytest.approx(2 * (1 - q) / (2 - q), abs=2e-2)


def test_threshold_closed_forms_at_depth_one_and_two():
    n = np.array([20, 10, 5, 2])
    np.testing.assert_allclose(nc.minority_collapse_threshold(n), np.sqrt(n) / n.sum())
    np.testing.assert_allclose(nc.minority_collapse_threshold(n, depth=2), n ** (2 / 3) / (2 ** (4 / 3) * n.sum()))
    with pytest.raises(ValueError):
        nc.minority_collapse_threshold(n, depth=0)


def _full_ce_objective(x, k, n, lam_w, lam_h):
    rho = math.sqrt(n * lam_h / lam_w)
    means = math.sqrt(x * (k - 1) / (k * rho)) * nc.simplex_etf(k, seed=4).T
    labels = np.repeat(np.arange(k), n)
    logits = torch.as_tensor(means[labels] @ (rho * means).T)
    ce = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels)).item()
    return ce + lam_w / 2 * np.sum((rho * means) ** 2) + lam_h / 2 * n * np.sum(means**2)


@pytest.mark.parametrize("k,n,lam_w,lam_h", [(4, 5, 5e-3, 5e-3), (3, 10, 1e-3, 4e-3), (10, 2, 2e-2, 1e-3)])
def test_ufm_ce_reduced_objective_is_the_objective_at_the_collapsed_configuration(k, n, lam_w, lam_h):
    xs = np.array([0.0, 0.3, 1.7, 5.0])
    np.testing.assert_allclose(nc.ufm_ce_reduced_objective(xs, k, n, lam_w, lam_h),
                               [_full_ce_objective(x, k, n, lam_w, lam_h) for x in xs], rtol=1e-10)
    sol = nc.ufm_ce_solution(k, n, lam_w, lam_h)
    grid = np.linspace(0, 15, 30001)
    values = nc.ufm_ce_reduced_objective(grid, k, n, lam_w, lam_h)
    assert grid[np.argmin(values)] == pytest.approx(sol.margin, abs=1e-3)
    assert values.min() == pytest.approx(sol.objective, rel=1e-7)


def test_ufm_ce_reduced_objective_rejects_negative_margins():
    with pytest.raises(ValueError):
        nc.ufm_ce_reduced_objective(-1.0, 4, 5, 1e-3, 1e-3)
    assert isinstance(nc.ufm_ce_reduced_objective(1.0, 4, 5, 1e-3, 1e-3), float)


def test_mean_pairwise_cosine():
    assert nc.mean_pairwise_cosine(nc.simplex_etf(6).T) == pytest.approx(-0.2)
    assert nc.mean_pairwise_cosine(np.eye(3)) == pytest.approx(0.0)
    assert nc.mean_pairwise_cosine([[1.0, 0.0], [2.0, 0.0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        nc.mean_pairwise_cosine([[1.0, 0.0], [0.0, 0.0]])


def test_ce_ufm_minority_rows_turn_toward_each_other():
    """Fang et al.'s minority collapse in the penalised CE UFM: cosine rises with imbalance."""
    cos = [nc.mean_pairwise_cosine(nc.train_ufm([50] * 3 + [50 // r] * 3, 5e-3, 5e-3, loss="ce", dim=6,
                                                seed=0).weights[3:]) for r in (1, 10, 50)]
    assert cos[0] == pytest.approx(-0.2, abs=1e-3)
    assert cos[0] < cos[1] < cos[2] and cos[2] > 0


# --------------------------------------------------------------------------------------
# figures and explorer
# --------------------------------------------------------------------------------------
def test_figures_have_labelled_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = History()
    for i, v in enumerate([1.0, 0.5, 0.1]):
        hist.log(i, {k: v for k in ("nc1", "equinorm_means", "max_angle", "self_duality",
                                    "ncc_mismatch", "train_error")})
    figs = [nc.plot_etf(), nc.plot_nc_history({"run": hist}), nc.plot_nc_history({"seeds": [hist, hist]}),
            nc.plot_weight_decay_sweep([1e-3, 1e-2], {"nc1": [0.1, 0.01], "self_duality": [0.3, 0.1]}),
            nc.plot_weight_decay_sweep([0.0, 1e-2], {"nc1": [[0.1, 0.01], [0.2, 0.02]]}),
            nc.plot_layer_collapse(["a", "b"], {"training": [[1.0, 0.1], [0.9, 0.2]]}),
            nc.plot_ce_minority_collapse([1, 10], [[-0.2, 0.1], [-0.2, 0.2]], [[1.0, 0.5], [1.0, 0.4]]),
            nc.plot_ufm_check([("a", 1.0, 1.0), ("b", 2.0, 2.1)]),
            nc.plot_minority_collapse([0.01, 0.05], np.ones((2, 4)), [20, 10, 5, 2]),
            nc.plot_perturbation([0.1, 1.0], [0.2, 0.5], 1.0)]
    h, y, w, _ = random_problem(7)
    figs.append(nc.plot_geometry(h, y, w))
    figs.append(nc.plot_geometry(h, y, w, dims=3))
    for fig in figs:
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel()]
        assert axes, "every figure has labelled axes"
        assert all(ax.get_ylabel() for ax in axes)
        plt.close(fig)


def test_explorer_has_the_spec_controls_and_renders():
    from companion.widgets import Explorer

    e = nc.nc_explorer()
    assert isinstance(e, Explorer)
    assert set(e.controls) == {"num_classes", "imbalance", "weight_decay", "loss"}
    frames = np.prod([len(e.controls[n].values) for n in e.precompute])
    assert frames <= 12
    assert set(e.precompute) == {"weight_decay", "loss"}   # the static book shows both losses
    _, text = e.render(imbalance=10.0, weight_decay=0.05, loss="ce")
    assert "cosine between the classifier rows of the two smallest classes" in text
    for wd in (0.01, 0.05):
        fig, text = e.render(imbalance=10.0, weight_decay=wd, loss="mse")
        # four classes, ratio 10: sizes 20 * 10^(-k/3) rounded = [20, 9, 4, 2]
        expected = int(nc.imbalanced_mse_solution([20, 9, 4, 2], wd, wd).collapsed.sum())
        assert f"collapsed classes: {expected}" in text
    assert expected == 1
    import matplotlib.pyplot as plt
    plt.close(fig)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_and_tracker_on_cuda():
    h, y, w, b = random_problem(8)
    expected = nc.nc_metrics(h, y, w, b)
    ht, yt = torch.tensor(h, device="cuda"), torch.tensor(y, device="cuda")
    assert nc.nc_metrics(ht, yt, torch.tensor(w, device="cuda"), torch.tensor(b, device="cuda")) == expected
    tracker = nc.NCTracker(4, h.shape[1])
    for hb, yb in zip(ht.split(16), yt.split(16)):
        tracker.update(hb, yb)
    for hb in ht.split(16):
        tracker.update_ncc(hb, weights=w, bias=b)
    got = tracker.compute(w, b).as_dict()
    for key, value in expected.as_dict().items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_nc1_is_translation_invariant_far_from_the_origin(offset):
    # NC1 depends on the features only through differences from class and global means, so
    # shifting every feature by a constant must not change it; far from the origin the
    # centring leaves rounding noise in Sigma_B, which must not be inverted.
    h, y, _, _ = random_problem(5, n=(80, 50, 33, 20, 9), d=12)
    shifted = nc.nc_metrics(h + offset, y)
    plain = nc.nc_metrics(h, y)
    assert shifted.nc1 == pytest.approx(plain.nc1, rel=1e-4)
    assert shifted.cdnv == pytest.approx(plain.cdnv, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stacked_training_on_cuda_matches_the_cpu():
    x, y = gaussian_mixture(num_classes=3, n_per_class=20, dim=6, seed=1)
    kw = dict(epochs=20, width=16, feature_dim=8, lr=0.05, eval_points=3, test=(x[:9], y[:9]))
    _, cpu = nc.train_mlp_nc_seeds(x, y, [0, 1], loss=["mse", "ce"], **kw)
    model, gpu = nc.train_mlp_nc_seeds(x, y, [0, 1], loss=["mse", "ce"], device="cuda", **kw)
    assert model.weights[0].device.type == "cuda" and model.unstack(1).classifier.weight.is_cuda
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a["nc1"], b["nc1"], rtol=1e-3)
        np.testing.assert_allclose(a["test_nc1"], b["test_nc1"], rtol=1e-3)


# --------------------------------------------------------------------------------------
# Bad input: clear errors naming the argument, no NaN, no hang
# --------------------------------------------------------------------------------------
def _huge_inside(a):
    a = np.array(a, dtype=np.float64)
    a.flat[a.size // 2] = 1e308
    return a


@pytest.mark.parametrize("argname", ["features", "weights", "bias"])
def test_nc_metrics_rejects_1e308_inside_arrays(argname):
    h, y, w, b = random_problem(3)
    args = {"features": h, "labels": y, "weights": w, "bias": b}
    args[argname] = _huge_inside(args[argname])
    with pytest.raises(ValueError, match=argname):
        nc.nc_metrics(**args)
    tracker = nc.NCTracker(3, h.shape[1])
    with pytest.raises(ValueError, match="features"):
        tracker.update(_huge_inside(h), y)


def test_nc_metrics_names_the_argument_of_mismatched_or_empty_arrays():
    h, y, w, _ = random_problem(3)
    with pytest.raises(ValueError, match="features"):
        nc.nc_metrics(h[:-1], y)
    with pytest.raises(ValueError, match="weights"):
        nc.nc_metrics(h, y, weights=w[:0])


@pytest.mark.parametrize("kwargs,exc,argname", [
    (dict(eval_points=2.5), TypeError, "eval_points"),
    (dict(eval_points=0), ValueError, "eval_points"),
    (dict(seed=None), TypeError, "seed"),
    (dict(momentum=1e308), ValueError, "momentum"),
    (dict(lr=1e308), ValueError, "lr"),
    (dict(weight_decay=1e308), ValueError, "weight_decay"),
])
def test_train_mlp_nc_rejects_bad_hyperparameters(kwargs, exc, argname):
    x, y = gaussian_mixture(num_classes=3, n_per_class=5, dim=4, seed=0)
    with pytest.raises(exc, match=argname):
        nc.train_mlp_nc(x, y, epochs=2, width=4, feature_dim=3, **kwargs)


def test_training_that_diverges_says_so_naming_the_inputs_and_step_size():
    x, y = gaussian_mixture(num_classes=3, n_per_class=5, dim=4, seed=0)
    with pytest.raises(ValueError, match="lr"):
        nc.train_mlp_nc(x, y, epochs=30, lr=1e5, width=4, feature_dim=3, eval_points=3)
    with pytest.raises(ValueError, match=r"model 1.*features.*lr"):
        nc.train_mlp_nc_seeds(x * 1e25, y, [0, 1], loss=["ce", "mse"], epochs=3, width=4, feature_dim=3,
                              eval_points=3)


@pytest.mark.parametrize("argname,value", [("features", np.zeros((0, 4))), ("labels", "out_of_range"),
                                           ("seeds", None), ("seeds", 3), ("loss", None),
                                           ("weight_decay", 1j), ("test", ([[1.0] * 4], [7]))])
def test_train_mlp_nc_seeds_rejects_quickly(argname, value):
    """Empty features and out-of-range labels were minutes in the full sweep."""
    import time

    x, y = gaussian_mixture(num_classes=3, n_per_class=5, dim=4, seed=0)
    args = dict(features=x, labels=y, seeds=[0, 1])
    if isinstance(value, str):
        value = y.copy()
        value[3] = 10**6
    args[argname] = value
    start = time.perf_counter()
    with pytest.raises((ValueError, TypeError), match=argname if argname != "test" else "test"):
        nc.train_mlp_nc_seeds(**args, epochs=2, width=4, feature_dim=3)
    assert time.perf_counter() - start < 1.0


def test_perturbed_ufm_and_closed_forms_reject_overflowing_scales():
    h, y, _, _ = random_problem(3)
    with pytest.raises(ValueError, match="labels"):
        nc.perturbed_ufm(h, np.where(np.arange(y.size) == 0, 10**6, y), 1e-2, 0.5)  # was a 7 TiB eye()
    with pytest.raises(ValueError, match="beta"):
        nc.perturbed_ufm(h, y, 1e-2, 1e308)
    with pytest.raises(ValueError, match="lam_h"):
        nc.imbalanced_mse_solution([20, 10, 5], 1e-3, 1e308)
    with pytest.raises(ValueError, match="lam_w"):
        nc.ufm_ce_reduced_objective(2.0, 3, 10, 1e308, 1e-3)
    with pytest.raises(ValueError, match="init_scale"):
        nc.train_ufm([4, 4, 4], 5e-3, 5e-3, init_scale=1e308, steps=2)
    assert np.all(np.isfinite(nc.imbalanced_mse_solution([20, 10, 5], 1e100, 1e100, depth=4).p))


@pytest.mark.parametrize("bad,exc", [(None, TypeError), ("abc", TypeError), (torch.ones(5, 6) * (1 + 1j), TypeError),
                                     (torch.ones(30), ValueError), (torch.ones(0, 6), ValueError),
                                     (torch.ones(1, 5, 6), ValueError), (torch.full((5, 6), float("nan")), ValueError)])
def test_networks_check_their_inputs(bad, exc):
    torch.manual_seed(0)
    mlp = nc.MLPClassifier(in_dim=6, num_classes=3, width=8, feature_dim=4)
    stacked = nc.StackedMLP([mlp, mlp])
    for method in (mlp.forward, mlp.features, mlp.layer_outputs, stacked.forward, stacked.features):
        with pytest.raises(exc, match="x"):
            method(bad)
    with pytest.raises(TypeError, match="models"):
        nc.StackedMLP(None)
    # integer inputs are converted to the weights' dtype
    assert mlp(torch.ones(2, 6, dtype=torch.int64)).dtype == torch.float32
