"""Each Chapter 3 exercise: the reference solution passes its check, wrong ones fail."""

import numpy as np
import pytest
import torch

from companion import sae
from companion.exercises import sae as ex
from companion.exercises import registry


def test_checks_are_registered():
    for exercise_id in ("sae-fvu", "sae-topk", "sae-effective", "sae-linear-error", "sae-l1-code",
                        "sae-auxk", "sae-top-tokens"):
        assert registry[exercise_id]["chapter"] == "sae"
    assert "companion.sae.TopKSAE.aux_loss" in registry["sae-auxk"]["implements"]
    assert "companion.sae.top_token_indices" in registry["sae-top-tokens"]["implements"]


def _my_fvu(x, x_hat):
    x, x_hat = np.asarray(x, dtype=float), np.asarray(x_hat, dtype=float)
    return float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


def _my_effective(z):
    mass = np.abs(np.asarray(z, dtype=float)).mean(0)
    p = mass[mass > 0] / mass.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def test_fvu_check():
    ex.check_fvu(_my_fvu)
    with pytest.raises(AssertionError):  # calls the companion function it is asked to write
        ex.check_fvu(lambda x, x_hat: sae.fvu(x, x_hat))
    with pytest.raises(AssertionError):  # normalised by ||x||^2 instead of the variance
        ex.check_fvu(lambda x, x_hat: float(((np.asarray(x) - np.asarray(x_hat)) ** 2).sum() / (np.asarray(x) ** 2).sum()))
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
    ex.check_effective_features(_my_effective)
    with pytest.raises(AssertionError):  # entropy without the exponential
        ex.check_effective_features(lambda z: float(np.log(_my_effective(z))))
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


def test_l1_code_check():
    ex.check_l1_code(lambda a, lam: np.maximum(np.asarray(a, dtype=float) - lam / 2, 0.0))
    for wrong in (lambda a, lam: np.maximum(np.asarray(a) - lam, 0.0),     # forgot the factor 1/2
                  lambda a, lam: np.asarray(a, dtype=float) - lam / 2,       # no clipping at zero
                  lambda a, lam: np.asarray(a, dtype=float)):                # no shrinkage at all
        with pytest.raises(AssertionError):
            ex.check_l1_code(wrong)


def _auxk(pre, error, dead, W_dec, k_aux, aux_coef=1 / 32, *, centre=True, relu=True):
    if not bool(dead.any()):
        return pre.new_zeros(())
    values, indices = pre.masked_fill(~dead, float("-inf")).topk(min(k_aux, pre.shape[-1]), dim=-1)
    z = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values) if relu else values.clamp_min(-1e30))
    norm = ((error - error.mean(0)) ** 2).sum() if centre else (error ** 2).sum()
    return aux_coef * ((error - z @ W_dec.T) ** 2).sum() / norm


def test_auxk_check():
    ex.check_auxk_loss(_auxk)
    with pytest.raises(AssertionError):  # the squared norm instead of the variance (the old bug)
        ex.check_auxk_loss(lambda *a: _auxk(*a, centre=False))
    with pytest.raises(AssertionError):  # live latents allowed to reconstruct the error

        def all_latents(pre, error, dead, W_dec, k_aux, aux_coef=1 / 32):
            return _auxk(pre, error, torch.ones_like(dead), W_dec, k_aux, aux_coef)

        ex.check_auxk_loss(all_latents)
    with pytest.raises(AssertionError):  # calls the companion's method

        def via_companion(pre, error, dead, W_dec, k_aux, aux_coef=1 / 32):
            model = sae.TopKSAE(W_dec.shape[0], W_dec.shape[1], k=1, k_aux=k_aux, aux_coef=aux_coef)
            with torch.no_grad():
                model.W_dec.copy_(W_dec)
            return model.aux_loss(pre, error, dead)

        ex.check_auxk_loss(via_companion)


def test_top_tokens_check():
    def mine(values, k):
        values = np.asarray(values)
        order = np.argsort(-values, kind="stable")
        return order[values[order] > 0][:k]

    ex.check_top_tokens(mine)
    for wrong in (lambda v, k: np.argsort(-np.asarray(v), kind="stable")[:k],   # keeps silent tokens
                  lambda v, k: np.argsort(np.asarray(v))[::-1][:k][np.asarray(v)[np.argsort(np.asarray(v))[::-1][:k]] > 0],  # ties reversed
                  lambda v, k: sae.top_token_indices(v, k)):                   # the companion function
        with pytest.raises(AssertionError):
            ex.check_top_tokens(wrong)


def test_references_reject_bad_input_without_hanging():
    import time

    rng = np.random.default_rng(0)
    args = [rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), rng.normal(size=(20, 4)), rng.normal(size=(20, 4))]
    start = time.monotonic()
    for i, name in enumerate(["x_train", "e_train", "x_test", "e_test"]):
        for value in (np.inf, np.nan, 1e308):
            bad = [a.copy() for a in args]
            bad[i][3, 1] = value
            with pytest.raises(ValueError, match=name):
                ex.reference_linear_error_r2(*bad)
    assert time.monotonic() - start < 5  # LAPACK never sees inf (it spun for minutes)
    with pytest.raises(ValueError, match="e_test"):
        ex.reference_linear_error_r2(args[0], args[1], args[2], np.ones((20, 4)))
    with pytest.raises(TypeError, match="k"):
        ex.reference_topk(torch.randn(3, 5), None)
    with pytest.raises(ValueError, match="k"):
        ex.reference_topk(torch.randn(3, 5), 6)
    with pytest.raises(ValueError, match="pre"):
        ex.reference_topk(torch.tensor([[float("nan"), 1.0]]), 1)
    with pytest.raises(TypeError, match="dead"):
        ex.reference_auxk_loss(torch.randn(4, 6), torch.randn(4, 3), torch.zeros(6), torch.randn(3, 6), 2)
    with pytest.raises(ValueError, match="lam"):
        ex.reference_l1_code(np.ones(3), float("nan"))
