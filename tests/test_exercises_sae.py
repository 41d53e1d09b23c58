"""Each Chapter 3 exercise: the reference solution passes its check, wrong ones fail."""

import numpy as np
import pytest
import torch

from companion import sae
from companion.exercises import sae as ex
from companion.exercises import registry


def test_checks_are_registered():
    for exercise_id in ("sae-fvu", "sae-topk", "sae-effective", "sae-linear-error"):
        assert registry[exercise_id]["chapter"] == "sae"


def test_fvu_check():
    ex.check_fvu(sae.fvu)
    with pytest.raises(AssertionError):  # normalised by ||x||^2 instead of the variance
        ex.check_fvu(sae.normalized_mse)
    with pytest.raises(AssertionError):  # mean instead of sum: off by a factor d
        ex.check_fvu(lambda x, x_hat: float(np.mean((np.asarray(x) - np.asarray(x_hat)) ** 2)
                                            / np.sum(np.var(np.asarray(x), axis=0))))


def test_topk_check():
    ex.check_topk(ex.reference_topk)

    def no_relu(pre, k):
        values, indices = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values)

    def threshold_by_batch(pre, k):  # the k-th largest of the whole batch, not per row
        cut = pre.flatten().topk(k * pre.shape[0]).values[-1]
        return torch.relu(pre) * (pre >= cut)

    for wrong in (no_relu, threshold_by_batch):
        with pytest.raises(AssertionError):
            ex.check_topk(wrong)

    def stub(pre, k):
        raise NotImplementedError

    with pytest.raises(AssertionError):
        ex.check_topk(stub)


def test_effective_features_check():
    ex.check_effective_features(sae.effective_features)
    with pytest.raises(AssertionError):  # entropy without the exponential
        ex.check_effective_features(lambda z: float(np.log(sae.effective_features(z))))
    with pytest.raises(AssertionError):  # signed means instead of absolute values

        def signed(z):
            mass = np.asarray(z).mean(0)
            p = mass[mass != 0] / mass.sum()
            return float(np.exp(-(p * np.log(np.abs(p))).sum()))

        ex.check_effective_features(signed)


def test_linear_error_check():
    ex.check_linear_error_r2(ex.reference_linear_error_r2)

    def no_intercept(x_train, e_train, x_test, e_test):
        coef, *_ = np.linalg.lstsq(x_train, e_train, rcond=None)
        pred = x_test @ coef
        return float(1 - ((e_test - pred) ** 2).sum() / ((e_test - e_test.mean(0)) ** 2).sum())

    def in_sample(x_train, e_train, x_test, e_test):  # evaluated on the train split
        return ex.reference_linear_error_r2(x_train, e_train, x_train, e_train)

    for wrong in (no_intercept, in_sample):
        with pytest.raises(AssertionError):
            ex.check_linear_error_r2(wrong)


def test_reference_linear_error_matches_dark_matter():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 6))
    e = x @ rng.normal(size=(6, 6)) + rng.normal(size=(1000, 6))
    dm = sae.dark_matter(x, x - e, seed=4, ridge=0.0)
    train = np.setdiff1d(np.arange(1000), dm.test_idx)
    r2 = ex.reference_linear_error_r2(x[train], e[train], x[dm.test_idx], e[dm.test_idx])
    assert r2 == pytest.approx(dm.r2_vector_pooled, rel=1e-8)
