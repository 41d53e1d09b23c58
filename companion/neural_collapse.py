"""Neural collapse: metrics, the simplex ETF, unconstrained-features models and experiments.

Everything Chapter 1 calls lives here, in the order the chapter teaches it:

- Section 1: :func:`simplex_etf` builds the simplex equiangular tight frame (ETF);
  :func:`nc_metrics` measures NC1-NC4 of features (and of a linear classifier), and
  :class:`NCTracker` measures the same numbers streaming over batches, with memory that
  does not grow with the number of samples;
- Sections 2-3: :class:`MLPClassifier` and :func:`train_mlp_nc` train a small network while
  tracking the collapse metrics, :class:`StackedMLP` and :func:`train_mlp_nc_seeds` train
  several seeds (or weight decays) as one batch;
- Sections 4-5: :func:`ufm_ce_solution`, :func:`ufm_mse_solution` and
  :func:`imbalanced_mse_solution` are the closed-form global minimisers of the
  unconstrained features model (UFM), with their one-dimensional reductions
  (:func:`ufm_ce_reduced_objective`, :func:`minority_collapse_threshold`), and
  :func:`train_ufm` finds them by gradient-based optimisation;
- Section 6: :func:`perturbed_ufm` is the perturbation view of Tirer, Huang & Niles-Weed (2023);
- the ``plot_*`` functions draw the chapter's figures and :func:`nc_explorer` (Section 7)
  is its interactive explorer.

Every public function checks its arguments at its entry (declared with
:func:`companion._validation.validate_params` where the constraints fit a declaration), so
bad input raises ``ValueError`` or ``TypeError`` naming the argument, and the bodies read
like the papers' formulas.

Conventions (stated once, used everywhere): features are rows, ``H`` has shape
``(N, d)``; a classifier ``W`` has shape ``(C, d)`` (one row per class) and bias ``b`` shape
``(C,)``; labels are integers in ``{0, ..., C-1}``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ._validation import (Array, Interval, Labels, Options, as_array, as_labels, check_choice,
                          check_int, check_magnitude, check_nonnegative, check_params, is_tensor,
                          validate_params)
from .plotting import plot_spread, pyplot, subplots
from .training import History, set_seed, thread_limit, train_loop

__all__ = [
    "simplex_etf",
    "NCMetrics",
    "nc_metrics",
    "NCTracker",
    "MLPClassifier",
    "train_mlp_nc",
    "StackedMLP",
    "train_mlp_nc_seeds",
    "UFMSolution",
    "ImbalancedSolution",
    "ufm_ce_solution",
    "ufm_mse_solution",
    "imbalanced_mse_solution",
    "minority_collapse_threshold",
    "ufm_ce_reduced_objective",
    "mean_pairwise_cosine",
    "UFMResult",
    "train_ufm",
    "PerturbedUFM",
    "perturbed_ufm",
    "plot_etf",
    "plot_nc_history",
    "plot_layer_collapse",
    "plot_weight_decay_sweep",
    "plot_ufm_check",
    "plot_ce_minority_collapse",
    "plot_minority_collapse",
    "plot_perturbation",
    "plot_geometry",
    "nc_explorer",
]


# ---------------------------------------------------------------------------------------
# Input checks shared by the functions below
# ---------------------------------------------------------------------------------------
#: Largest magnitude accepted in arrays and scales whose squares and products the formulas
#: form (``1e308`` is finite, its square is not): features, classifiers, regularisation.
_MAX_ABS = 1e100
#: Largest input magnitude the float32 training functions accept (beyond it the float32
#: conversion overflows; large but smaller inputs are caught when the loss diverges).
_MAX_INPUT = 1e30


def _num_classes_of(labels: np.ndarray) -> int:
    """``C = max(labels) + 1`` after checking that every class ``0..C-1`` has a sample, ``C >= 2``."""
    counts = np.bincount(labels)
    if counts.size < 2:
        raise ValueError("labels must hold at least two classes (num_classes >= 2), got only class 0")
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if missing.size > 5 else "")
        raise ValueError(f"labels must hold every class 0..{counts.size - 1} (classes are 0..max(labels)); "
                         f"class(es) {shown} have no samples")
    return int(counts.size)


def _classifier_rows(args) -> int | None:
    """The bound on labels: ``num_classes`` if given, else the rows of ``weights`` (if any: fewer
    than two rows are reported as the weights' error, not the labels')."""
    if isinstance(args.get("num_classes"), (int, np.integer)):
        return int(args["num_classes"])
    w = args.get("weights")
    if (isinstance(w, np.ndarray) or is_tensor(w)) and w.ndim == 2 and w.shape[0] >= 2:
        return int(w.shape[0])
    return None


def _check_positive_entries(arr: np.ndarray, name: str) -> np.ndarray:
    """Entries drawn on a log axis or used as regularisation must be > 0."""
    if arr.size and np.min(arr) <= 0:
        raise ValueError(f"{name} must have positive entries, got minimum {np.min(arr):.3g}")
    return arr


def _check_batch(x, name: str, in_dim: int, *, stacked: int | None = None) -> torch.Tensor:
    """A batch of inputs of a network: a real tensor ``(N, in_dim)`` (or ``(S, N, in_dim)`` for a
    stack of ``S`` models), at least one row, finite."""
    if not is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor of shape (N, {in_dim}), got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} must be real, got complex values")
    ndims = (2,) if stacked is None else (2, 3)
    if x.dim() not in ndims or x.shape[-1] != in_dim or (x.dim() == 3 and x.shape[0] != stacked):
        want = f"(N, {in_dim})" + ("" if stacked is None else f" or ({stacked}, N, {in_dim})")
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} must hold at least one row, got shape {tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# ---------------------------------------------------------------------------------------
# Section 1: the simplex equiangular tight frame
# ---------------------------------------------------------------------------------------
def _orthonormal_complement_of_ones(num_classes: int) -> np.ndarray:
    """A (C, C-1) matrix whose orthonormal columns span the vectors orthogonal to 1."""
    centred = np.eye(num_classes) - 1.0 / num_classes
    q, _ = np.linalg.qr(centred[:, :-1])
    return q


def simplex_etf(num_classes: int, dim: int | None = None, seed: int | None = None) -> np.ndarray:
    """The simplex equiangular tight frame: ``C`` unit vectors with pairwise cosine ``-1/(C-1)``.

    Papyan, Han & Donoho (2020), Definition 1:

    .. math::

        M = \\sqrt{\\tfrac{C}{C-1}}\\, U \\left(I_C - \\tfrac{1}{C} \\mathbf{1}\\mathbf{1}^\\top\\right),

    with ``U`` a ``(dim, C)`` matrix of orthonormal columns. The columns of ``M`` have unit
    norm, pairwise cosines exactly ``-1/(C-1)``, sum to zero (``M 1 = 0``) and span a
    subspace of dimension ``C - 1``. Since only ``C - 1`` dimensions are used, any
    ``dim >= C - 1`` works: we write the centring projection as ``V V^T`` with ``V`` a
    ``(C, C-1)`` orthonormal basis of the vectors orthogonal to ``1`` and return
    ``sqrt(C/(C-1)) Q V^T`` with ``Q`` a ``(dim, C-1)`` matrix of orthonormal columns
    (for ``dim >= C`` this is exactly the formula above with ``U = Q V^T + u 1^T / sqrt(C)``
    for a unit ``u`` orthogonal to ``Q``).

    Parameters
    ----------
    num_classes : int
        Number of vectors ``C >= 2``.
    dim : int, optional
        Ambient dimension, at least ``C - 1`` (default ``C``).
    seed : int, optional
        ``None`` gives the canonical frame (``U`` = the first ``C`` columns of the identity,
        or ``Q`` = the identity when ``dim = C - 1``); an integer draws a random rotation.

    Returns
    -------
    ndarray, shape (dim, C)
        The frame, one vector per column.

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".

    Examples
    --------
    >>> m = simplex_etf(3)                  # (dim, C) = (3, 3)
    >>> np.round(m.T @ m, 3)                # unit norms, cosines -1/(C-1)
    array([[ 1. , -0.5, -0.5],
           [-0.5,  1. , -0.5],
           [-0.5, -0.5,  1. ]])
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    dim = num_classes if dim is None else check_int(dim, "dim", minimum=num_classes - 1)
    scale = math.sqrt(num_classes / (num_classes - 1))
    if seed is None:
        if dim >= num_classes:
            frame = np.zeros((dim, num_classes))
            frame[:num_classes] = np.eye(num_classes) - 1.0 / num_classes
            return scale * frame
        basis = np.eye(dim)[:, : num_classes - 1]
    else:
        rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
        basis, _ = np.linalg.qr(rng.standard_normal((dim, num_classes - 1)))
    return scale * basis @ _orthonormal_complement_of_ones(num_classes).T


# ---------------------------------------------------------------------------------------
# Section 1: the metrics (and their streaming version, used layer by layer in Section 2)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NCMetrics:
    """The neural-collapse metrics of one set of features (and optionally a classifier).

    Every quantity tends to 0 under neural collapse. Fields that need the classifier
    (``equinorm_weights``, ``self_duality``, ``ncc_mismatch``) are ``None`` when no
    classifier was given.

    Attributes
    ----------
    nc1 : float
        ``Tr(Sigma_W Sigma_B^+) / C`` (NC1, Papyan et al. 2020).
    nc1_trace_ratio : float
        ``Tr(Sigma_W) / Tr(Sigma_B)``.
    cdnv : float
        Class-distance normalised variance averaged over pairs of classes.
    equinorm_means : float
        Coefficient of variation of the centred class-mean norms (NC2).
    equinorm_weights : float or None
        Coefficient of variation of the classifier row norms (NC2).
    equiangularity : float
        Standard deviation of the cosines between centred class means (NC2).
    max_angle : float
        Mean of ``|cos + 1/(C-1)|`` over pairs of centred class means (NC2).
    self_duality : float or None
        Distance between normalised classifier and normalised class means (NC3).
    ncc_mismatch : float or None
        Fraction of samples where the classifier and the nearest class mean disagree (NC4).
    """

    nc1: float
    nc1_trace_ratio: float
    cdnv: float
    equinorm_means: float
    equinorm_weights: float | None
    equiangularity: float
    max_angle: float
    self_duality: float | None
    ncc_mismatch: float | None

    def as_dict(self) -> dict:
        """The metrics as a plain dict (``None`` entries kept)."""
        return asdict(self)


def _as_classifier(weights, bias, num_classes: int, dim: int):
    if weights is None:
        if bias is not None:
            raise ValueError("bias was given without weights")
        return None, None
    w = as_array(weights, "weights", ndim=2)
    check_magnitude(w, "weights", _MAX_ABS)
    if w.shape != (num_classes, dim):
        raise ValueError(f"weights must have shape (num_classes, dim) = {(num_classes, dim)}, got {w.shape}")
    b = np.zeros(num_classes) if bias is None else as_array(bias, "bias", ndim=1)
    check_magnitude(b, "bias", _MAX_ABS)
    if b.shape != (num_classes,):
        raise ValueError(f"bias must have shape ({num_classes},), got {b.shape}")
    return w, b


def _check_counts(counts: np.ndarray) -> None:
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        shown = ", ".join(map(str, empty[:5])) + (", ..." if empty.size > 5 else "")
        raise ValueError(f"labels: class(es) {shown} have no samples: every class needs at least one "
                         "sample to have a class mean")


def _pinv_trace(sigma_w: np.ndarray, centred_means: np.ndarray, scale: float = 0.0) -> float:
    """``Tr(Sigma_W Sigma_B^+)`` with ``Sigma_B = M M^T / C``, through the SVD of ``M``.

    Singular values below the rounding error of the centring are treated as zero. That error
    grows with the size of the *uncentred* means (``scale``, their spectral norm), not with
    the centred ones: with features offset far from the origin, a cut-off relative to the
    centred means alone would keep (and invert) pure rounding noise.
    """
    num_classes = centred_means.shape[1]
    u, s, _ = np.linalg.svd(centred_means, full_matrices=False)
    keep = s > max(s.max(), scale) * max(centred_means.shape) * np.finfo(float).eps * 10
    u, s = u[:, keep], s[keep]
    return float(num_classes * np.sum(np.einsum("ij,ik,kj->j", u, sigma_w, u) / s**2))


def _metrics_from_statistics(counts, means, sigma_w, class_variances, weights, bias,
                             ncc_mismatch) -> NCMetrics:
    """The metrics from sufficient statistics (shared by :func:`nc_metrics` and the tracker)."""
    num_classes = counts.shape[0]
    global_mean = counts @ means / counts.sum()
    centred = (means - global_mean).T  # (d, C)
    norms = np.linalg.norm(centred, axis=0)
    if np.any(norms == 0) or np.allclose(means, means[0]):
        raise ValueError("features: class means coincide (between-class covariance is zero); "
                         "the collapse metrics are undefined")
    sigma_b_trace = float(np.sum(norms**2) / num_classes)
    scale = float(np.linalg.norm(means, 2))
    nc1 = max(_pinv_trace(sigma_w, centred, scale) / num_classes, 0.0)  # >= 0 up to rounding
    trace_ratio = float(np.trace(sigma_w)) / sigma_b_trace

    pair_dist = np.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=-1)
    upper = np.triu_indices(num_classes, k=1)
    if np.any(pair_dist[upper] == 0):
        raise ValueError("features: two class means coincide, so their CDNV is undefined")
    cdnv = float(np.mean((class_variances[:, None] + class_variances[None, :])[upper] / (2 * pair_dist[upper])))

    unit = centred / norms
    cosines = (unit.T @ unit)[~np.eye(num_classes, dtype=bool)]
    equinorm_means = float(norms.std() / norms.mean())
    equiangularity = float(cosines.std())
    max_angle = float(np.mean(np.abs(cosines + 1.0 / (num_classes - 1))))

    equinorm_weights = self_duality = None
    if weights is not None:
        w_norms = np.linalg.norm(weights, axis=1)
        if np.any(w_norms == 0):
            raise ValueError("weights: a classifier row is zero, its norm ratio is undefined")
        equinorm_weights = float(w_norms.std() / w_norms.mean())
        diff = weights.T / np.linalg.norm(weights) - centred / np.linalg.norm(centred)
        self_duality = float(np.sum(diff**2))
    return NCMetrics(nc1=float(nc1), nc1_trace_ratio=trace_ratio, cdnv=cdnv,
                     equinorm_means=equinorm_means, equinorm_weights=equinorm_weights,
                     equiangularity=equiangularity, max_angle=max_angle,
                     self_duality=self_duality, ncc_mismatch=ncc_mismatch)


def _ncc_disagreements(features, means, weights, bias=None, logits=None) -> int:
    """Number of samples whose classifier prediction differs from the nearest class mean."""
    dist = (np.sum(features**2, axis=1, keepdims=True) - 2 * features @ means.T
            + np.sum(means**2, axis=1)[None, :])
    nearest = np.argmin(dist, axis=1)
    if logits is None:
        logits = features @ weights.T + bias
    return int(np.sum(np.argmax(logits, axis=1) != nearest))


@validate_params({
    # NaN, inf and entries beyond _MAX_ABS are caught chunk by chunk (NCTracker.update), so
    # that checking them costs no copy of the whole features
    "features": [Array(ndim=2, shape=("n", "d"), min_rows=1, finite=False)],
    "labels": [Labels(high=_classifier_rows, shape=("n",))],
    "weights": [Array(ndim=2, shape=("num_classes", "d"), min_rows=2, max_abs=_MAX_ABS), None],
    "bias": [Array(ndim=1, shape=("num_classes",), max_abs=_MAX_ABS), None],
    "num_classes": [Interval(int, 2, None), None],
})
def nc_metrics(features, labels, weights=None, bias=None, *, num_classes: int | None = None) -> NCMetrics:
    """Neural-collapse metrics NC1-NC4 of features, with or without a linear classifier.

    Definitions (Papyan, Han & Donoho 2020; CDNV from Galanti et al. 2022), for features
    ``h_i`` (rows of ``features``), labels ``y_i``, ``n_c`` samples in class ``c``:

    - class means ``mu_c`` and the **sample-weighted** global mean
      ``mu_G = (1/N) sum_i h_i = sum_c (n_c/N) mu_c`` (with imbalanced classes this is not
      the plain average of the class means; every centred quantity below uses it);
    - ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` (population normalisation,
      pooled over classes, so large classes weigh more) and
      ``Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T`` (each class counts once);
    - ``nc1 = Tr(Sigma_W Sigma_B^+) / C``, **divided by C** as in the paper's definition
      (their public code and several follow-ups omit the ``1/C`` and report ``C`` times this
      value); the pseudo-inverse keeps the singular values of the centred means above a
      relative tolerance; ``nc1_trace_ratio = Tr(Sigma_W) / Tr(Sigma_B)``;
    - ``cdnv``: the mean over pairs ``c < c'`` of ``(V_c + V_c') / (2 ||mu_c - mu_c'||^2)``
      with ``V_c`` the mean of ``||h_i - mu_c||^2`` over class ``c`` (population variance);
    - NC2: ``equinorm_means = std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||`` and
      ``equinorm_weights`` the same for the rows ``w_c`` of ``W`` (not centred), both with
      the **population** standard deviation (``ddof=0``; public code often uses
      ``torch.std``, the unbiased one, which is larger by ``sqrt(C/(C-1))``); ``equiangularity`` is the population std of
      ``cos(mu_c - mu_G, mu_c' - mu_G)`` over ``c != c'``, and ``max_angle`` the mean of
      ``|cos + 1/(C-1)|`` over ``c != c'``;
    - NC3: ``self_duality = || W^T / ||W||_F - M / ||M||_F ||_F^2`` with ``M`` the ``(d, C)``
      matrix of centred class means;
    - NC4: ``ncc_mismatch``, the fraction of samples whose classifier prediction
      ``argmax_c (W h + b)_c`` differs from the nearest class mean ``argmin_c ||h - mu_c||``
      (ties go to the lowest index).

    Parameters
    ----------
    features : array-like or torch.Tensor, shape (N, d)
        Penultimate-layer features (any device; computed in float64 on the CPU, in chunks of
        rows: beyond the input, memory is ``O(d^2 + C d)`` plus one chunk).
    labels : array-like or torch.Tensor, shape (N,)
        Integer labels in ``{0, ..., C-1}``.
    weights : array-like or torch.Tensor, shape (C, d), optional
        Last-layer weights (one row per class).
    bias : array-like or torch.Tensor, shape (C,), optional
        Last-layer bias (zero when omitted).
    num_classes : int, optional
        ``C``; default: the number of rows of ``weights``, else ``max(labels) + 1``.

    Returns
    -------
    NCMetrics

    Raises
    ------
    ValueError
        Fewer than two classes, a class without samples, shapes that do not match, NaN or
        infinite values (or entries beyond ``1e100``, whose squares overflow), labels out of
        range, or coinciding class means.
    TypeError
        Labels that are not integers, complex values, or input that is not an array.

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    - galanti2022role: Galanti et al. (2022), "On the Role of Neural Collapse in Transfer Learning".

    Examples
    --------
    Features sitting exactly on their class means, with the classifier equal to the means:
    every metric is zero.

    >>> means = simplex_etf(3).T                      # (C, d): one mean per class
    >>> labels = np.repeat(np.arange(3), 4)           # (N,)
    >>> m = nc_metrics(means[labels], labels, weights=means)
    >>> round(m.nc1, 6), round(m.max_angle, 6), round(m.self_duality, 6), m.ncc_mismatch
    (0.0, 0.0, 0.0, 0.0)
    """
    h = as_array(features, "features", dtype=None, finite=False)  # checked chunk by chunk below
    if h.dtype not in (np.float32, np.float64):
        h = h.astype(np.float64)  # ints, float16, ...: float64
    y = as_labels(labels, "labels")
    if num_classes is None:
        num_classes = as_array(weights, "weights").shape[0] if weights is not None else _num_classes_of(y)
    w, b = _as_classifier(weights, bias, num_classes, h.shape[1])
    # The statistics are NCTracker's, fed chunks of rows of the features (numpy, so on the
    # CPU): each chunk is converted to float64 on its own, so no N x d copy is ever made.
    tracker = NCTracker(num_classes, h.shape[1])
    rows = max(1, _CHUNK_ELEMENTS // h.shape[1])
    for start in range(0, h.shape[0], rows):
        tracker.update(h[start:start + rows], y[start:start + rows])
    if w is not None:  # NC4 needs the class means of the whole first pass: a second pass
        for start in range(0, h.shape[0], rows):
            tracker.update_ncc(h[start:start + rows], weights=w, bias=b)
    return tracker.compute(w, b)


_CHUNK_ELEMENTS = 1 << 22  # nc_metrics converts 2^22 feature entries (32 MiB of float64) at a time


class NCTracker:
    """Streaming neural-collapse metrics: feed batches, get :func:`nc_metrics`'s numbers.

    Memory is ``O(d^2 + C d)`` whatever the number of samples: the tracker keeps the class
    counts, the class sums of the (shifted) features, the per-class sums of squared norms
    and the total ``d x d`` second moment, all in float64 (on the device of the first
    torch batch, except MPS, which lacks float64). Each class's features are shifted by a
    reference point ``r_c``, the mean of that class in the first batch that contains it,
    before accumulating: with ``m_c`` the mean of the shifted features of class ``c`` and
    ``S`` their pooled second moment, ``Sigma_W = S/N - sum_c (n_c/N) m_c m_c^T``, and since
    ``m_c`` is small (zero when one batch holds the whole class) the subtraction does not
    lose digits to cancellation, however far the features lie from the origin. This is
    also how :func:`nc_metrics` computes its statistics (it feeds chunks of rows to a
    tracker), so both give the same numbers.

    NC4 (the nearest-class-mean agreement) needs the class means, which are known only
    after the whole pass. It therefore takes an honest **second pass**: after the first
    pass (:meth:`update`), feed the same samples again to :meth:`update_ncc` with the
    logits (or with the classifier); :meth:`compute` then reports ``ncc_mismatch``.
    Without a second pass ``ncc_mismatch`` is ``None``.

    Parameters
    ----------
    num_classes : int
        ``C >= 2``.
    dim : int
        Feature dimension ``d``.

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".

    Examples
    --------
    Three batches give the numbers of :func:`nc_metrics` on all twelve samples:

    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat(np.arange(3), 4)                      # (N,)
    >>> h = simplex_etf(3).T[labels] + 0.1 * rng.standard_normal((12, 3))  # (N, d)
    >>> tracker = NCTracker(num_classes=3, dim=3)
    >>> for rows in np.split(np.arange(12), 3):
    ...     tracker = tracker.update(h[rows], labels[rows])
    >>> bool(np.isclose(tracker.compute().nc1, nc_metrics(h, labels).nc1))
    True

    With a model and a data loader (the chapter's use):

    >>> tracker = NCTracker(num_classes=10, dim=64)
    >>> for x, y in loader:                       # doctest: +SKIP
    ...     tracker.update(model.features(x), y)
    >>> for x, y in loader:                       # optional second pass for NC4  # doctest: +SKIP
    ...     h = model.features(x); tracker.update_ncc(h, logits=model.classifier(h))
    >>> metrics = tracker.compute(model.classifier.weight, model.classifier.bias)  # doctest: +SKIP
    """

    def __init__(self, num_classes: int, dim: int):
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        self.dim = check_int(dim, "dim", minimum=1)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._device = None
        self._shift = self._has_shift = None
        self._counts = self._sums = self._sq_norms = self._second = None
        self._ncc_seen = 0
        self._ncc_wrong = 0

    @property
    def num_samples(self) -> int:
        """Samples seen in the first pass."""
        return 0 if self._counts is None else int(self._counts.sum().item())

    def _to_tensor(self, x, name: str, ndim: int) -> torch.Tensor:
        if is_tensor(x):
            if x.is_complex():
                raise TypeError(f"{name} must be real, got complex values")
            t = x.detach()
            if self._device is None:
                self._device = t.device if t.device.type != "mps" else torch.device("cpu")
            t = t.to(self._device, torch.float64 if t.is_floating_point() else t.dtype)
        else:
            arr = as_array(x, name, dtype=None)  # NaN / infinity checked here, in numpy
            if self._device is None:
                self._device = torch.device("cpu")
            t = torch.as_tensor(arr, device=self._device)
            if t.is_floating_point():
                t = t.to(torch.float64)
        if t.dim() != ndim:
            raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
        if t.is_floating_point() and t.numel():
            largest = float(t.abs().max())  # one reduction: NaN propagates
            if not math.isfinite(largest):
                raise ValueError(f"{name} contains NaN or infinite values")
            if largest > _MAX_ABS:
                raise ValueError(f"{name} must have entries of magnitude at most {_MAX_ABS:g}, got {largest:.3g}")
        return t

    def _labels(self, labels, n: int) -> torch.Tensor:
        if is_tensor(labels):
            y = labels.detach()
            if y.is_floating_point() or y.dtype == torch.bool:
                as_labels(y, "labels")  # raises with the usual message when not integral
            y = y.to(self._device, torch.int64)
        else:
            y = torch.as_tensor(as_labels(labels, "labels"), device=self._device)
        if y.dim() != 1 or y.shape[0] != n:
            raise ValueError(f"labels must have {n} entries (one per row of features), got shape {tuple(y.shape)}")
        if n and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes - 1}], got range "
                             f"[{int(y.min())}, {int(y.max())}]")
        return y

    def update(self, features, labels) -> "NCTracker":
        """First pass: add a batch of features ``(n, d)`` and labels ``(n,)``; returns ``self``.

        Features must be real and finite with entries at most ``1e100`` in magnitude; labels
        in ``[0, num_classes)``. An empty batch (``n = 0``) adds nothing.
        """
        h = self._to_tensor(features, "features", 2)
        if h.shape[1] != self.dim:
            raise ValueError(f"features must have {self.dim} columns (dim), got shape {tuple(h.shape)}")
        y = self._labels(labels, h.shape[0])
        if h.shape[0] == 0:
            return self
        if self._counts is None:
            kw = dict(dtype=torch.float64, device=self._device)
            self._counts = torch.zeros(self.num_classes, **kw)
            self._sums = torch.zeros(self.num_classes, self.dim, **kw)
            self._sq_norms = torch.zeros(self.num_classes, **kw)
            self._second = torch.zeros(self.dim, self.dim, **kw)
            self._shift = torch.zeros(self.num_classes, self.dim, **kw)
            self._has_shift = torch.zeros(self.num_classes, dtype=torch.bool, device=self._device)
        if self._ncc_seen:
            raise RuntimeError("update() after update_ncc(): finish the first pass before the second")
        batch_counts = torch.bincount(y, minlength=self.num_classes)
        new = (batch_counts > 0) & ~self._has_shift
        if bool(new.any()):  # classes seen for the first time: their batch mean is the reference
            batch_sums = torch.zeros_like(self._sums).index_add_(0, y, h)
            self._shift[new] = batch_sums[new] / batch_counts[new].unsqueeze(1)
            self._has_shift |= new
        h = torch.sub(h, self._shift[y], out=self._shift[y])  # one (n, d) temporary
        self._counts += batch_counts.to(torch.float64)
        self._sums.index_add_(0, y, h)
        self._sq_norms.index_add_(0, y, torch.linalg.vector_norm(h, dim=1).square_())
        self._second.addmm_(h.T, h)
        return self

    def class_means(self) -> np.ndarray:
        """The class means ``(C, d)`` of the first pass (numpy, float64)."""
        if self._counts is None:
            raise ValueError("no samples yet: call update() first")
        counts = self._counts.cpu().numpy()
        _check_counts(counts)
        return (self._sums.cpu().numpy() / counts[:, None]) + self._shift.cpu().numpy()

    def update_ncc(self, features, logits=None, *, weights=None, bias=None) -> "NCTracker":
        """Second pass for NC4: count disagreements between classifier and nearest class mean.

        Give either the batch's ``logits`` ``(n, C)`` or the classifier (``weights``
        ``(C, d)``, optional ``bias``). The class means are those of the completed first
        pass. An empty batch adds nothing. Returns ``self``.
        """
        means = self.class_means()
        h = self._to_tensor(features, "features", 2).cpu().numpy()
        if h.shape[1] != self.dim:
            raise ValueError(f"features must have {self.dim} columns (dim), got shape {h.shape}")
        if logits is None:
            if weights is None:
                raise ValueError("update_ncc needs logits or weights")
            w, b = _as_classifier(weights, bias, self.num_classes, self.dim)
            wrong = _ncc_disagreements(h, means, w, b)
        else:
            z = as_array(logits, "logits", ndim=2)
            if z.shape != (h.shape[0], self.num_classes):
                raise ValueError(f"logits must have shape {(h.shape[0], self.num_classes)}, got {z.shape}")
            wrong = _ncc_disagreements(h, means, None, logits=z)
        self._ncc_seen += h.shape[0]
        self._ncc_wrong += wrong
        return self

    def compute(self, weights=None, bias=None) -> NCMetrics:
        """The metrics of everything seen, equal to :func:`nc_metrics` on the concatenated data.

        ``ncc_mismatch`` is reported when a complete second pass (:meth:`update_ncc`) was
        made, ``None`` when none was; a partial second pass raises ``ValueError``.
        """
        means = self.class_means()
        counts = self._counts.cpu().numpy()
        n = counts.sum()
        shifted = self._sums.cpu().numpy() / counts[:, None]
        second = self._second.cpu().numpy()
        sigma_w = (second - (shifted.T * counts) @ shifted) / n
        sigma_w = (sigma_w + sigma_w.T) / 2
        class_variances = self._sq_norms.cpu().numpy() / counts - np.sum(shifted**2, axis=1)
        w, b = _as_classifier(weights, bias, self.num_classes, self.dim)
        mismatch = None
        if self._ncc_seen:
            if self._ncc_seen != int(n):
                raise ValueError(f"the NC4 pass saw {self._ncc_seen} samples but the first pass saw "
                                 f"{int(n)}: feed the same samples to update_ncc")
            mismatch = float(self._ncc_wrong / n)
        return _metrics_from_statistics(counts, means, sigma_w, np.maximum(class_variances, 0.0),
                                        w, b, mismatch)


# ---------------------------------------------------------------------------------------
# Sections 2-3: a small network, trained with collapse tracking
# ---------------------------------------------------------------------------------------
class MLPClassifier(nn.Module):
    """A ReLU MLP whose last hidden layer is the "feature" layer, then a linear classifier.

    ``in_dim -> width -> ... -> width -> feature_dim -> num_classes``, ReLU after every
    hidden layer (the setting of Papyan et al. 2020, scaled down). ``features(x)`` returns
    the penultimate activations ``h``; ``forward(x)`` returns the logits ``W h + b``.
    Every method takes a real tensor ``x`` of shape ``(N, in_dim)`` with ``N >= 1`` and
    finite entries (integer or other floating dtypes are converted to the weights' dtype).

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    """

    def __init__(self, in_dim: int, num_classes: int, width: int = 256, feature_dim: int = 64,
                 hidden_layers: int = 2):
        super().__init__()
        in_dim = check_int(in_dim, "in_dim", minimum=1)
        num_classes = check_int(num_classes, "num_classes", minimum=2)
        width = check_int(width, "width", minimum=1)
        feature_dim = check_int(feature_dim, "feature_dim", minimum=1)
        hidden_layers = check_int(hidden_layers, "hidden_layers", minimum=1)
        sizes = [in_dim] + [width] * hidden_layers + [feature_dim]
        blocks = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.in_dim = in_dim

    def _input(self, x) -> torch.Tensor:
        """``x`` checked (see the class docstring), in the weights' dtype."""
        return _check_batch(x, "x", self.in_dim).to(self.classifier.weight.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``h`` (N, feature_dim)."""
        return self.body(self._input(x))

    def layer_outputs(self, x: torch.Tensor) -> list:
        """The input and the output of every hidden layer (after its ReLU), features last.

        ``[x, relu(L1 x), relu(L2 relu(L1 x)), ..., h]``: the representations whose collapse
        :class:`NCTracker` can measure layer by layer.
        """
        x = self._input(x)
        outputs = [x]
        for module in self.body:
            x = module(x)
            if isinstance(module, nn.ReLU):
                outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``W h + b`` (N, num_classes)."""
        return self.classifier(self.body(self._input(x)))


def _log_grid(num_steps: int, points: int) -> list[int]:
    grid = np.unique(np.round(np.logspace(0, np.log10(max(num_steps, 1)), points)).astype(int))
    return [int(g) for g in grid if 1 <= g <= num_steps]


#: The parameters that train_mlp_nc and train_mlp_nc_seeds share, declared once.
_TRAINING_CONSTRAINTS = {
    "features": [Array(ndim=2, shape=("n", None), min_rows=2, max_abs=_MAX_INPUT)],
    "labels": [Labels(shape=("n",))],
    "epochs": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, 1e6, closed="right")],
    "momentum": [Interval(float, 0, 1, closed="left")],
    "width": [Interval(int, 1, None)],
    "feature_dim": [Interval(int, 1, None)],
    "hidden_layers": [Interval(int, 1, None)],
    "eval_points": [Interval(int, 1, None)],
    "desc": [str, None],
}
_WEIGHT_DECAY = Interval(float, 0, 1e6)


def _diverged(epoch: int, model: str = "") -> ValueError:
    """The error for a loss that is no longer finite: the inputs or the step size are too large."""
    return ValueError(f"training diverged{model}: the loss is not finite at epoch {epoch}; "
                      "standardise features or lower lr or weight_decay")


@validate_params({**_TRAINING_CONSTRAINTS, "loss": [Options(("mse", "ce"))], "weight_decay": [_WEIGHT_DECAY],
                  "seed": [Interval(int, 0, None)]})
def train_mlp_nc(features, labels, *, loss: str = "mse", epochs: int = 500, lr: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 5e-3, width: int = 256,
                 feature_dim: int = 64, hidden_layers: int = 2, eval_points: int = 25,
                 seed: int = 0, device=None, desc: str | None = None):
    """Train an :class:`MLPClassifier` full-batch and track the collapse metrics per epoch.

    Full-batch SGD with momentum and weight decay on the whole training set (the terminal
    phase of training of Papyan et al. 2020 on a CPU budget). ``loss="ce"`` is the
    cross-entropy; ``loss="mse"`` is the squared error to one-hot targets,
    ``(1/N) sum_i ||f(x_i) - e_{y_i}||^2`` (Han, Papyan & Donoho 2022). The metrics of
    :func:`nc_metrics` on the training features (with the classifier), the loss and the
    training error are logged at initialisation and on a log-spaced grid of about
    ``eval_points`` epochs, through :func:`companion.training.train_loop`.

    Parameters
    ----------
    features : array-like, shape (N, in_dim)
        Entries at most ``1e30`` in magnitude (standardised inputs train best).
    labels : array-like, shape (N,)
        Every class ``0..max(labels)`` needs a sample.
    loss : {"mse", "ce"}
    epochs : int
        Full-batch steps.
    lr, momentum, weight_decay : float
        SGD hyper-parameters (weight decay on every parameter, as ``torch.optim.SGD`` does):
        ``lr`` in ``(0, 1e6]``, ``momentum`` in ``[0, 1)``, ``weight_decay`` in ``[0, 1e6]``.
        A run whose loss stops being finite raises ``ValueError``.
    width, feature_dim, hidden_layers : int
        Architecture (see :class:`MLPClassifier`).
    eval_points : int
        Approximate number of evaluations.
    seed : int
    device : torch.device or str, optional
        Default: the CPU.
    desc : str, optional
        Progress-bar label.

    Returns
    -------
    model : MLPClassifier
    history : companion.training.History
        Keys ``loss``, ``train_error`` and every field of :class:`NCMetrics`.

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    - han2022neural: Han et al. (2022), "Neural Collapse Under MSE Loss: Proximity to and
      Dynamics on the Central Path".
    """
    x = as_array(features, "features", dtype=np.float32)
    y = as_labels(labels, "labels")
    num_classes = _num_classes_of(y)
    lr, momentum, weight_decay = float(lr), float(momentum), float(weight_decay)
    device = torch.device("cpu") if device is None else torch.device(device)
    set_seed(seed)
    model = MLPClassifier(x.shape[1], num_classes, width, feature_dim, hidden_layers).to(device)
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    target = nn.functional.one_hot(yt, num_classes).float()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    def criterion(logits):
        if loss == "ce":
            return nn.functional.cross_entropy(logits, yt)
        return ((logits - target) ** 2).sum(dim=1).mean()

    def step(_):
        opt.zero_grad()
        value = criterion(model(xt))
        value.backward()
        opt.step()
        return {"loss": value.item()}

    def evaluate(i):
        with torch.no_grad():
            h = model.features(xt)
            logits = model.classifier(h)
            if not bool(torch.isfinite(criterion(logits))):
                raise _diverged(i)
            metrics = nc_metrics(h, yt, model.classifier.weight, model.classifier.bias)
            error = (logits.argmax(dim=1) != yt).double().mean().item()
        return {"eval_loss": criterion(logits).item(), "train_error": error, **metrics.as_dict()}

    with thread_limit():  # tiny matrices: one thread (COMPANION_THREADS overrides) beats two on a busy CPU
        history = train_loop(step, epochs, evaluate=evaluate, eval_every=epochs + 1,
                             eval_at=_log_grid(epochs, eval_points), desc=desc or f"MLP ({loss})")
    return model, history


class StackedMLP(nn.Module):
    """Several independent :class:`MLPClassifier` trained as one model (a batch of models).

    The weights of ``S`` models with the same architecture are stored stacked, ``(S, out, in)``,
    and every layer is one batched matrix product, so the seeds (or the weight decays) of an
    experiment train together at the cost of one larger model. Model ``k`` computes exactly
    what ``models[k]`` computes; :meth:`unstack` gives it back as an :class:`MLPClassifier`.
    Inputs ``x`` are real tensors ``(N, in_dim)`` (the same inputs for every model) or
    ``(S, N, in_dim)`` (one batch per model), ``N >= 1``, finite.

    Parameters
    ----------
    models : sequence of MLPClassifier
        The models to stack (same architecture), e.g. freshly initialised with different seeds.
    """

    def __init__(self, models: Sequence[MLPClassifier]):
        super().__init__()
        if isinstance(models, nn.Module) or not isinstance(models, (list, tuple, nn.ModuleList)):
            raise TypeError(f"models must be a non-empty sequence of MLPClassifier, got {type(models).__name__}")
        models = list(models)
        if not models or not all(isinstance(m, MLPClassifier) for m in models):
            raise TypeError("models must be a non-empty sequence of MLPClassifier")
        layers = [[mod for mod in m.body if isinstance(mod, nn.Linear)] + [m.classifier] for m in models]
        shapes = [[tuple(lin.weight.shape) for lin in ls] for ls in layers]
        if any(sh != shapes[0] for sh in shapes):
            raise ValueError("models must all have the same architecture")
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[j].weight.detach() for ls in layers]).clone()) for j in range(len(shapes[0]))])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[j].bias.detach() for ls in layers]).clone()) for j in range(len(shapes[0]))])
        self._sizes = (shapes[0][0][1], shapes[0][0][0], shapes[0][-2][0], shapes[0][-1][0], len(shapes[0]) - 2)

    @property
    def num_models(self) -> int:
        """``S``, the number of stacked models."""
        return int(self.weights[0].shape[0])

    def _input(self, x, name: str, layer: int) -> torch.Tensor:
        """``x`` checked as the input of ``layer`` (2-D shared or 3-D per model), in the weights' dtype."""
        w = self.weights[layer]
        return _check_batch(x, name, int(w.shape[2]), stacked=self.num_models).to(w.dtype)

    def _linear(self, j: int, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weights[j], self.biases[j]
        if x.dim() == 2:   # the same inputs for every model: (N, in) x (S, in, out)
            return torch.matmul(x, w.transpose(1, 2)) + b[:, None, :]
        return torch.baddbmm(b[:, None, :], x, w.transpose(1, 2))

    def _layers(self, x: torch.Tensor) -> list:
        outputs = [x]
        for j in range(len(self.weights) - 1):
            x = torch.relu(self._linear(j, x))  # (S, N, width)
            outputs.append(x)
        return outputs

    def _classify(self, h: torch.Tensor) -> torch.Tensor:
        return self._linear(len(self.weights) - 1, h)  # (S, N, C)

    def layer_outputs(self, x: torch.Tensor) -> list:
        """``[x, hidden_1, ..., features]`` with shapes ``(S, N, width)`` (``x`` as given)."""
        return self._layers(self._input(x, "x", 0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features of every model, ``(S, N, feature_dim)``."""
        return self._layers(self._input(x, "x", 0))[-1]

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """Logits ``(S, N, C)`` from stacked features ``(S, N, feature_dim)``."""
        return self._classify(self._input(h, "h", len(self.weights) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(S, N, C)`` of every model."""
        return self._classify(self.features(x))

    def unstack(self, k: int) -> MLPClassifier:
        """Model ``k`` as a plain :class:`MLPClassifier` (a copy, on the same device)."""
        k = check_int(k, "k", minimum=0, maximum=self.num_models - 1)
        in_dim, width, feature_dim, num_classes, hidden = self._sizes
        model = MLPClassifier(in_dim, num_classes, width, feature_dim, hidden).to(self.weights[0].device)
        linears = [mod for mod in model.body if isinstance(mod, nn.Linear)] + [model.classifier]
        with torch.no_grad():
            for j, lin in enumerate(linears):
                lin.weight.copy_(self.weights[j][k])
                lin.bias.copy_(self.biases[j][k])
        return model


def _per_model(value, name: str, count: int, convert):
    """A scalar broadcast to ``count`` models, or a sequence with one entry per model."""
    if isinstance(value, (str, int, float, np.floating, np.integer)):
        return [convert(value, name)] * count
    values = list(np.asarray(value).tolist() if isinstance(value, np.ndarray) else value)
    if len(values) != count:
        raise ValueError(f"{name} must be one value or one per model ({count}), got {len(values)}")
    return [convert(v, name) for v in values]


def _check_test_set(test, in_dim: int, num_classes: int):
    """``test = (features, labels)``: held-out data with the training set's columns and classes."""
    if len(test) != 2:
        raise ValueError(f"test must be a pair (features, labels), got {len(test)} entries")
    check_params({"test[0]": test[0]}, {"test[0]": [Array(ndim=2, shape=(None, in_dim), min_rows=1,
                                                          max_abs=_MAX_INPUT)]})
    xt = as_array(test[0], "test[0]", dtype=np.float32)
    return xt, as_labels(test[1], "test[1]", n=xt.shape[0], num_classes=num_classes)


def _loss_gradient_norm(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean over samples of ``||d loss_i / d logits_i||``: how hard the loss still pushes."""
    if loss == "ce":
        return (torch.softmax(logits, dim=-1) - target).norm(dim=-1).mean()
    return (2 * (logits - target)).norm(dim=-1).mean()


@validate_params({
    **_TRAINING_CONSTRAINTS,
    "seeds": [Array(ndim=1, dtype=None, min_size=1), range],
    "loss": [Options(("mse", "ce")), list, tuple],
    "weight_decay": [_WEIGHT_DECAY, Array(ndim=1, low=0, high=1e6)],
    "test": [tuple, None],
})
def train_mlp_nc_seeds(features, labels, seeds: Sequence[int], *, loss="mse", epochs: int = 500,
                       lr: float = 0.1, momentum: float = 0.9, weight_decay=5e-3, width: int = 256,
                       feature_dim: int = 64, hidden_layers: int = 2, eval_points: int = 25,
                       test=None, device=None, desc: str | None = None):
    """Train one :class:`MLPClassifier` per seed, all together, tracking the collapse metrics.

    The batched version of :func:`train_mlp_nc`: model ``k`` is initialised exactly as
    ``train_mlp_nc(..., seed=seeds[k])`` initialises its model and follows the same
    full-batch SGD with momentum (``buf = momentum * buf + grad + wd * p; p -= lr * buf``,
    the update of ``torch.optim.SGD``), so each model is an independent run; they share only
    the matrix products (:class:`StackedMLP`). ``loss`` and ``weight_decay`` may differ from
    model to model (one entry per seed), so a weight-decay sweep over several seeds, or
    cross-entropy and MSE runs, train as one batch.

    Logged at initialisation and on a log-spaced grid of epochs, for every model: every
    field of :class:`NCMetrics` on the training features (with the classifier),
    ``train_error``, ``eval_loss``, ``feature_norm`` (mean ``||h_i||``) and ``loss_grad``
    (the mean over samples of ``||d loss_i / d z_i||``, the size of the push the loss
    still gives each sample's logits ``z_i``); with ``test=(x, y)`` also ``test_error`` and
    the metrics of the held-out features as ``test_<field>`` (class means of the held-out
    set, same classifier).

    Parameters
    ----------
    features : array-like, shape (N, in_dim)
        Entries at most ``1e30`` in magnitude (standardised inputs train best).
    labels : array-like, shape (N,)
        Every class ``0..max(labels)`` needs a sample.
    seeds : sequence of int
        One model per entry (repeat a seed to train it under several settings).
    loss : {"mse", "ce"} or sequence of them (one per model)
    epochs : int
    lr, momentum : float
        ``lr`` in ``(0, 1e6]``, ``momentum`` in ``[0, 1)``.
    weight_decay : float or sequence of float (one per model)
        In ``[0, 1e6]``. A model whose loss stops being finite raises ``ValueError``.
    width, feature_dim, hidden_layers : int
    eval_points : int
    test : tuple (features, labels), optional
        Held-out data, evaluated at the same epochs (not trained on).
    device : torch.device or str, optional
        Default: the CPU.
    desc : str, optional

    Returns
    -------
    model : StackedMLP
    histories : list of companion.training.History, one per model

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    - han2022neural: Han et al. (2022), "Neural Collapse Under MSE Loss: Proximity to and
      Dynamics on the Central Path".
    - hui2022limitations: Hui et al. (2022), "Limitations of Neural Collapse for Understanding
      Generalization in Deep Learning".
    """
    x = as_array(features, "features", dtype=np.float32)
    y = as_labels(labels, "labels")
    num_classes = _num_classes_of(y)
    seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    count = len(seeds)
    losses = _per_model(loss, "loss", count, lambda v, n: check_choice(v, n, ("mse", "ce")))
    decays = _per_model(weight_decay, "weight_decay", count, check_nonnegative)
    lr, momentum = float(lr), float(momentum)
    if test is not None:
        xt_np, yt_np = _check_test_set(test, x.shape[1], num_classes)
    device = torch.device("cpu") if device is None else torch.device(device)

    models = []
    for s in seeds:  # the same initialisation as train_mlp_nc(seed=s)
        set_seed(s)
        models.append(MLPClassifier(x.shape[1], num_classes, width, feature_dim, hidden_layers))
    model = StackedMLP(models).to(device)
    params = list(model.parameters())
    buffers = [torch.zeros_like(p) for p in params]
    wd = torch.tensor(decays, dtype=torch.float32, device=device)
    is_ce = torch.tensor([l == "ce" for l in losses], device=device)
    xd, yd = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    target = nn.functional.one_hot(yd, num_classes).float()
    sets = [("", xd, yd, target)]
    if test is not None:
        yt = torch.as_tensor(yt_np, device=device)
        sets.append(("test_", torch.as_tensor(xt_np, device=device), yt,
                     nn.functional.one_hot(yt, num_classes).float()))

    def per_model_loss(logits, yy, tt):
        ce = nn.functional.cross_entropy(logits.reshape(-1, num_classes), yy.repeat(count),
                                         reduction="none").view(count, -1).mean(dim=1)
        mse = ((logits - tt) ** 2).sum(dim=-1).mean(dim=1)
        return torch.where(is_ce, ce, mse)

    def step(_):
        for p in params:
            p.grad = None
        total = per_model_loss(model(xd), yd, target).sum()
        total.backward()
        with torch.no_grad():
            for p, buf in zip(params, buffers):
                decay = wd.view(-1, *([1] * (p.dim() - 1)))
                buf.mul_(momentum).add_(p.grad + decay * p)
                p.sub_(lr * buf)
        return None

    histories = [History() for _ in range(count)]

    def evaluate(i):
        with torch.no_grad():
            for prefix, xx, yy, tt in sets:
                h = model.features(xx)        # (S, N, feature_dim)
                logits = model._classify(h)   # (S, N, C); h may have diverged, checked below
                values = per_model_loss(logits, yy, tt)
                if not prefix and not bool(torch.isfinite(values).all()):
                    k = int(torch.nonzero(~torch.isfinite(values))[0])
                    raise _diverged(i, f" (model {k}: seed {seeds[k]}, loss {losses[k]}, "
                                       f"weight_decay {decays[k]:g})")
                for k in range(count):
                    row = {f"{prefix}error": (logits[k].argmax(dim=1) != yy).double().mean().item()}
                    w, b = model.weights[-1][k], model.biases[-1][k]
                    metrics = nc_metrics(h[k], yy, w, b, num_classes=num_classes).as_dict()
                    row.update({f"{prefix}{key}": v for key, v in metrics.items()})
                    if not prefix:
                        row["train_error"] = row.pop("error")
                        row["eval_loss"] = values[k].item()
                        row["feature_norm"] = h[k].norm(dim=1).mean().item()
                        row["loss_grad"] = _loss_gradient_norm(logits[k], tt, losses[k]).item()
                    histories[k].log(i, row)
        return {}

    with thread_limit():  # tiny matrices: one thread (COMPANION_THREADS overrides) beats two on a busy CPU
        train_loop(step, epochs, evaluate=evaluate, eval_every=epochs + 1,
                   eval_at=_log_grid(epochs, eval_points), desc=desc or f"{count} MLPs")
    return model, histories


# ---------------------------------------------------------------------------------------
# Sections 4-5: closed forms of the unconstrained features model and its 1-D reductions
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UFMSolution:
    """Global minimiser of a balanced unconstrained features model (closed form).

    Attributes
    ----------
    loss : str
        ``"ce"`` or ``"mse"``.
    num_classes, n_per_class : int
    lam_w, lam_h : float
    weight_norm_sq : float
        ``||w_k||^2`` of every classifier row.
    feature_norm_sq : float
        ``||h_k||^2`` of every (collapsed) feature.
    margin : float
        Cross-entropy: the logit gap ``x*`` between the true and every other class.
        MSE: ``p``, the value of the true-class output (``W h_k = p e_k``).
    collapsed : bool
        True when the minimiser is zero (regularisation too strong).
    objective : float
        Value of the objective at the minimiser.
    """

    loss: str
    num_classes: int
    n_per_class: int
    lam_w: float
    lam_h: float
    weight_norm_sq: float
    feature_norm_sq: float
    margin: float
    collapsed: bool
    objective: float


#: lam_w, lam_h, beta: positive, and neither their products nor their powers over- or underflow
_REGULARISATION = Interval(float, 1 / _MAX_ABS, _MAX_ABS)


def _check_ufm_args(num_classes, n_per_class, lam_w, lam_h):
    check_params({"num_classes": num_classes, "n_per_class": n_per_class, "lam_w": lam_w, "lam_h": lam_h},
                 {"num_classes": [Interval(int, 2, None)], "n_per_class": [Interval(int, 1, None)],
                  "lam_w": [_REGULARISATION], "lam_h": [_REGULARISATION]})
    return int(num_classes), int(n_per_class), float(lam_w), float(lam_h)


def ufm_ce_solution(num_classes: int, n_per_class: int, lam_w: float, lam_h: float) -> UFMSolution:
    """Closed-form global minimiser of the balanced cross-entropy UFM (Zhu et al. 2021, Thm 3.1).

    The objective, over ``W (K x d)``, ``H (d x N)`` (``N = n K``, ``d >= K - 1``) and an
    unregularised bias ``b``, is

    .. math::

        \\frac{1}{N} \\sum_{i} \\mathrm{CE}(W h_i + b, y_i)
        + \\frac{\\lambda_W}{2} \\|W\\|_F^2 + \\frac{\\lambda_H}{2} \\|H\\|_F^2 .

    With ``s = sqrt(n lam_W lam_H)``, when ``s < 1/K`` every minimiser has collapsed
    features ``h_ki = h_k``, classifier rows forming a simplex ETF,
    ``w_k = sqrt(n lam_H / lam_W) h_k``, and

    .. math::

        x^* = \\log\\left(\\frac{1}{s} - (K-1)\\right),\\quad
        \\|w\\|^2 = \\frac{K-1}{K} x^* \\sqrt{\\frac{n\\lambda_H}{\\lambda_W}},\\quad
        \\|h\\|^2 = \\frac{K-1}{K} x^* \\sqrt{\\frac{\\lambda_W}{n\\lambda_H}},

    where ``x*`` is the logit gap between the true class and each other class. When
    ``s >= 1/K`` the minimiser is ``W = 0, H = 0``.

    Parameters
    ----------
    num_classes, n_per_class : int
        ``K >= 2`` classes of ``n >= 1`` samples.
    lam_w, lam_h : float
        Regularisation strengths in ``[1e-100, 1e100]``.

    Returns
    -------
    UFMSolution

    References
    ----------
    - zhu2021geometric: Zhu et al. (2021), "A Geometric Analysis of Neural Collapse with
      Unconstrained Features".

    Examples
    --------
    >>> sol = ufm_ce_solution(4, 5, 5e-3, 5e-3)
    >>> round(sol.margin, 4), round(sol.weight_norm_sq, 4), sol.collapsed
    (4.4595, 7.4788, False)
    """
    k, n, lam_w, lam_h = _check_ufm_args(num_classes, n_per_class, lam_w, lam_h)
    s = math.sqrt(n * lam_w * lam_h)
    if s >= 1.0 / k:
        return UFMSolution("ce", k, n, lam_w, lam_h, 0.0, 0.0, 0.0, True, math.log(k))
    margin = math.log(1.0 / s - (k - 1))
    w_sq = (k - 1) / k * margin * math.sqrt(n * lam_h / lam_w)
    h_sq = (k - 1) / k * margin * math.sqrt(lam_w / (n * lam_h))
    objective = (math.log1p((k - 1) * math.exp(-margin)) + lam_w / 2 * k * w_sq
                 + lam_h / 2 * k * n * h_sq)
    return UFMSolution("ce", k, n, lam_w, lam_h, w_sq, h_sq, margin, False, objective)


def ufm_mse_solution(num_classes: int, n_per_class: int, lam_w: float, lam_h: float) -> UFMSolution:
    """Closed-form global minimiser of the balanced, bias-free MSE UFM (Tirer & Bruna 2022; Zhou et al. 2022).

    The objective is ``(1/2N) ||W H - Y||_F^2 + lam_W/2 ||W||_F^2 + lam_H/2 ||H||_F^2`` with
    one-hot targets ``Y`` and ``d >= K``. With ``p = 1 - K sqrt(n lam_W lam_H)``, when
    ``p > 0`` the minimisers have collapsed features forming an orthogonal frame with
    ``W M = p I`` and

    .. math::

        \\|w\\|^2 = p \\sqrt{\\frac{n\\lambda_H}{\\lambda_W}},\\qquad
        \\|h\\|^2 = p \\sqrt{\\frac{\\lambda_W}{n\\lambda_H}} ;

    when ``p <= 0`` the minimiser is zero. The ``margin`` field holds ``p``.

    Parameters
    ----------
    num_classes, n_per_class : int
        ``K >= 2`` classes of ``n >= 1`` samples.
    lam_w, lam_h : float
        Regularisation strengths in ``[1e-100, 1e100]``.

    Returns
    -------
    UFMSolution

    References
    ----------
    - tirer2022extended: Tirer and Bruna (2022), "Extended Unconstrained Features Model for
      Exploring Deep Neural Collapse".
    - zhou2022optimization: Zhou et al. (2022), "On the Optimization Landscape of Neural
      Collapse under MSE Loss: Global Optimality with Unconstrained Features".

    Examples
    --------
    >>> sol = ufm_mse_solution(4, 5, 5e-3, 5e-3)
    >>> round(sol.margin, 4), round(sol.feature_norm_sq, 4), sol.collapsed    # margin is p
    (0.9553, 0.4272, False)
    """
    k, n, lam_w, lam_h = _check_ufm_args(num_classes, n_per_class, lam_w, lam_h)
    p = 1.0 - k * math.sqrt(n * lam_w * lam_h)
    if p <= 0:
        return UFMSolution("mse", k, n, lam_w, lam_h, 0.0, 0.0, 0.0, True, 0.5)
    w_sq = p * math.sqrt(n * lam_h / lam_w)
    h_sq = p * math.sqrt(lam_w / (n * lam_h))
    objective = 0.5 * (1 - p) ** 2 + lam_w / 2 * k * w_sq + lam_h / 2 * k * n * h_sq
    return UFMSolution("mse", k, n, lam_w, lam_h, w_sq, h_sq, p, False, objective)


@dataclass(frozen=True)
class ImbalancedSolution:
    """Global minimiser of the imbalanced bias-free MSE UFM of depth ``M`` (Dang et al. 2023).

    Arrays have one entry per class.

    Attributes
    ----------
    n_per_class : ndarray of int
    lam_w, lam_h : float
    depth : int
    p : ndarray
        The true-class output ``p_k`` of the collapsed feature of class ``k``.
    feature_norm_sq : ndarray
        ``||h_k||^2``.
    singular_values : ndarray
        ``s_k``, the singular value of every weight matrix along class ``k``'s direction
        (for depth 1, ``s_k^2 = ||w_k||^2``).
    collapsed : ndarray of bool
        Classes whose features and classifier are zero (minority collapse).
    objective : float
        Value of the objective at the minimiser.
    """

    n_per_class: np.ndarray
    lam_w: float
    lam_h: float
    depth: int
    p: np.ndarray
    feature_norm_sq: np.ndarray
    singular_values: np.ndarray
    collapsed: np.ndarray
    objective: float

    @property
    def weight_norm_sq(self) -> np.ndarray:
        """``||w_k||^2`` of the end-to-end classifier rows, ``s_k^(2M)``."""
        return self.singular_values ** (2 * self.depth)


def _check_counts_arg(n_per_class) -> np.ndarray:
    """Samples per class: positive integers (any size: they are counts, not class ids)."""
    n = as_array(n_per_class, "n_per_class", ndim=1, min_rows=2)
    if np.any(n < 1) or np.any(n != np.round(n)):
        raise ValueError(f"n_per_class must hold positive integers, got {n.tolist()}")
    return n.astype(np.int64)


def _largest_root(b_over_n: float, depth: int) -> float:
    """Largest real root of ``b/n = M x^(M-1) / (x^M + 1)^2`` on ``x > 0`` (0 if none)."""
    def g(x):  # written in 1/x beyond 1, so that no power overflows
        if x <= 1:
            return depth * x ** (depth - 1) / (x**depth + 1) ** 2
        return depth * x ** (-depth - 1) / (1 + x ** (-depth)) ** 2
    if depth == 1:
        return max(1.0 / math.sqrt(b_over_n) - 1.0, 0.0)
    peak = ((depth - 1) / (depth + 1)) ** (1.0 / depth)  # g is increasing before, decreasing after
    if g(peak) < b_over_n:
        return 0.0
    lo, hi = peak, max(2.0 * peak, 1.0)
    for _ in range(2100):  # doubling reaches the float limit in ~1030 steps, where g is 0 or NaN
        if not g(hi) > b_over_n:
            break
        hi *= 2.0
    for _ in range(200):  # bisection on the decreasing branch
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) > b_over_n else (lo, mid)
    return 0.5 * (lo + hi)


def imbalanced_mse_solution(n_per_class, lam_w: float, lam_h: float, depth: int = 1) -> ImbalancedSolution:
    """Closed-form minimiser of the imbalanced bias-free MSE UFM (Dang et al. 2023).

    Objective, with ``N = sum_k n_k`` one-hot targets ``Y`` and ``M = depth`` weight
    matrices of equal regularisation:

    .. math::

        \\frac{1}{2N}\\|W_M \\cdots W_1 H - Y\\|_F^2 + \\frac{\\lambda_W}{2}\\sum_{j=1}^{M}\\|W_j\\|_F^2
        + \\frac{\\lambda_H}{2}\\|H\\|_F^2 .

    The features collapse to orthogonal class means. For depth 1,

    .. math::

        p_k = 1 - N\\sqrt{\\frac{\\lambda_W\\lambda_H}{n_k}},\\qquad
        \\|h_k\\|^2 = p_k\\sqrt{\\frac{\\lambda_W}{n_k\\lambda_H}},

    and class ``k`` collapses to zero (minority collapse) iff ``n_k <= N^2 lam_W lam_H``.
    For depth ``M``, with ``b = M N (N lam_W^M lam_H)^(1/M)``, ``x_k`` is the largest real
    root of ``b / n_k = M x^(M-1) / (x^M + 1)^2`` (0 if none), the singular values are
    ``s_k = (N lam_H x_k^M)^(1/(2M))``, ``p_k = x_k^M / (x_k^M + 1)`` and
    ``||h_k||^2 = x_k^M / (N lam_H (x_k^M + 1)^2)``. For ``M >= 2`` the root is a critical
    point; we keep it only where its objective beats the zero solution (the class's term
    ``n_k/(2N)``), and report the class as collapsed otherwise (the threshold is
    :func:`minority_collapse_threshold`, where ``p_k`` jumps from ``a*`` to 0). For
    ``M >= 2`` zero is also a strict *local* minimum of each class's term (near zero the
    fit term changes only at order ``M + 1`` while the penalties grow quadratically), so an
    optimiser (:func:`train_ufm`) can leave a class at zero below its threshold.

    Parameters
    ----------
    n_per_class : sequence of int
        Samples per class (positive counts of any size; at least two classes).
    lam_w, lam_h : float
        Regularisation strengths in ``[1e-100, 1e100]``.
    depth : int
        Number of weight matrices ``M >= 1``.

    Returns
    -------
    ImbalancedSolution

    References
    ----------
    - dang2023neural: Dang et al. (2023), "Neural Collapse in Deep Linear Networks: From
      Balanced to Imbalanced Data".

    Examples
    --------
    The smallest class (two samples) has collapsed to zero, the others have not:

    >>> sol = imbalanced_mse_solution([20, 10, 5, 2], 0.05, 0.05)
    >>> np.round(sol.p, 3), sol.collapsed
    (array([0.586, 0.415, 0.173, 0.   ]), array([False, False, False,  True]))
    """
    n = _check_counts_arg(n_per_class)
    check_params({"lam_w": lam_w, "lam_h": lam_h, "depth": depth},
                 {"lam_w": [_REGULARISATION], "lam_h": [_REGULARISATION], "depth": [Interval(int, 1, None)]})
    lam_w, lam_h, depth = float(lam_w), float(lam_h), int(depth)
    total = float(n.sum())
    with np.errstate(over="ignore"):  # b = M N (N lam_W^M lam_H)^(1/M), in logs: lam_W^M may overflow
        b = float(depth * total * np.exp((np.log(total) + depth * np.log(lam_w) + np.log(lam_h)) / depth))
    x = np.array([_largest_root(b / nk, depth) for nk in n])
    xm = x**depth
    s = (total * lam_h * xm) ** (1.0 / (2 * depth))
    p = xm / (xm + 1)
    t = np.where(x > 0, s**depth / (total * lam_h * (xm + 1)), 0.0)  # ||h_k||
    class_obj = n / (2 * total) * (1 - p) ** 2 + depth * lam_w / 2 * s**2 + lam_h / 2 * n * t**2
    worse = class_obj >= n / (2 * total)
    x, s, p, t = (np.where(worse, 0.0, v) for v in (x, s, p, t))
    class_obj = np.where(worse, n / (2 * total), class_obj)
    return ImbalancedSolution(n_per_class=n, lam_w=lam_w, lam_h=lam_h, depth=depth, p=p,
                              feature_norm_sq=t**2, singular_values=s, collapsed=(p == 0),
                              objective=float(class_obj.sum()))


def minority_collapse_threshold(n_per_class, depth: int = 1) -> np.ndarray:
    """The regularisation ``lam = lam_W = lam_H`` at which each class collapses (MSE UFM, depth ``M``).

    Reduction to one dimension (the derivation of Section 5 of Chapter 1): at the optimum of
    :func:`imbalanced_mse_solution` class ``k`` lives on its own direction, its output is
    ``a = s^M t`` (``s`` the singular value of every layer along it, ``t = ||h_k||``) and
    balancing the ``M + 1`` factors leaves, after dividing by ``n_k / (2N)``,

    .. math::

        f_k(a) = (1 - a)^2 + \\kappa_k\\, a^{q},\\qquad q = \\frac{2}{M+1},\\qquad
        \\kappa_k = (M+1)\\,\\frac{N}{n_k}\\,\\lambda_W^{M/(M+1)} (\\lambda_H n_k)^{1/(M+1)} .

    The class collapses (``a = 0`` is the global minimiser) iff
    ``kappa_k >= G_q = sup_{a>0} (2a - a^2) / a^q``, attained at ``a* = 2(1-q)/(2-q)``, so
    ``G_q = a*^(1-q) (2 - a*)`` (``G_1 = 2``). With ``lam_W = lam_H = lam``:

    .. math::

        \\lambda^\\star_k = \\frac{G_q\\, n_k^{M/(M+1)}}{(M+1)\\, N} ,

    which is ``sqrt(n_k) / N`` at depth 1 (Dang et al. 2023: collapse iff
    ``n_k <= N^2 lam_W lam_H``) and ``n_k^(2/3) / (2^(4/3) N)`` at depth 2. At depth 1 the
    class fades out continuously (``p_k -> 0``); at depth ``M >= 2`` it drops from
    ``p_k = a*`` to 0 (a first-order transition). Smaller classes collapse first.

    Parameters
    ----------
    n_per_class : sequence of int
        Samples per class (positive counts of any size; at least two classes).
    depth : int
        Number of weight matrices ``M >= 1``.

    Returns
    -------
    ndarray, shape (K,)

    References
    ----------
    - dang2023neural: Dang et al. (2023), "Neural Collapse in Deep Linear Networks: From
      Balanced to Imbalanced Data".

    Examples
    --------
    >>> np.round(minority_collapse_threshold([20, 10, 5, 2]), 4)
    array([0.1209, 0.0855, 0.0604, 0.0382])
    """
    n = _check_counts_arg(n_per_class)
    depth = check_int(depth, "depth", minimum=1)
    q = 2.0 / (depth + 1)
    a_star = 2 * (1 - q) / (2 - q)
    g = a_star ** (1 - q) * (2 - a_star)
    return g * n ** (depth / (depth + 1)) / ((depth + 1) * n.sum())


def ufm_ce_reduced_objective(x, num_classes: int, n_per_class: int, lam_w: float, lam_h: float):
    """The balanced cross-entropy UFM objective on its collapsed solutions, as a function of the margin.

    Reduction to one dimension (Zhu et al. 2021, proof of Theorem 3.1): restrict the UFM to
    collapsed configurations, features ``h_ki = h_k`` on a simplex ETF, classifier rows
    ``w_k = rho h_k`` with the balance ``rho = sqrt(n lam_H / lam_W)`` (it minimises the
    regulariser for a given product). The logit gap between the true class and each other
    class is then ``x = rho ||h||^2 K / (K - 1)``, every sample's loss is
    ``log(1 + (K-1) e^{-x})`` and the regulariser is ``(K - 1) s x`` with
    ``s = sqrt(n lam_W lam_H)``:

    .. math::

        f(x) = \\log\\bigl(1 + (K-1)e^{-x}\\bigr) + (K-1)\\,\\sqrt{n\\lambda_W\\lambda_H}\\; x,
        \\qquad x \\ge 0 .

    Its minimiser is ``x* = log(1/s - (K-1))`` when ``s < 1/K`` and ``0`` otherwise, the
    margin of :func:`ufm_ce_solution`.

    Parameters
    ----------
    x : float or array-like
        Margins ``x >= 0``.
    num_classes, n_per_class : int
    lam_w, lam_h : float

    Returns
    -------
    float or ndarray
        ``f(x)``, with the shape of ``x``.

    References
    ----------
    - zhu2021geometric: Zhu et al. (2021), "A Geometric Analysis of Neural Collapse with
      Unconstrained Features".

    Examples
    --------
    >>> round(float(ufm_ce_reduced_objective(0.0, 4, 5, 5e-3, 5e-3)), 6)   # log K at x = 0
    1.386294
    """
    k, n, lam_w, lam_h = _check_ufm_args(num_classes, n_per_class, lam_w, lam_h)
    arr = as_array(x, "x")
    if np.any(arr < 0):
        raise ValueError("x must be nonnegative (it is a margin)")
    value = np.log1p((k - 1) * np.exp(-arr)) + (k - 1) * math.sqrt(n * lam_w * lam_h) * arr
    return float(value) if value.ndim == 0 else value


def mean_pairwise_cosine(vectors) -> float:
    """Mean cosine between distinct rows of ``vectors`` (``-1/(K-1)`` for a simplex ETF).

    Used for the minority collapse of Fang et al. (2021): the cosines between the classifier
    rows of the minority classes rise toward 1 as the imbalance grows.

    Parameters
    ----------
    vectors : array-like, shape (K, d)
        At least two nonzero rows (entries at most ``1e100`` in magnitude).

    References
    ----------
    - fang2021exploring: Fang et al. (2021), "Exploring deep neural networks via layer-peeled
      model: Minority collapse in imbalanced training".

    Examples
    --------
    >>> round(mean_pairwise_cosine(simplex_etf(4).T), 6)
    -0.333333
    """
    v = as_array(vectors, "vectors", ndim=2, min_rows=2)
    check_magnitude(v, "vectors", _MAX_ABS)
    norms = np.linalg.norm(v, axis=1)
    if np.any(norms == 0):
        raise ValueError("vectors: a row is zero, its cosine is undefined")
    unit = v / norms[:, None]
    k = v.shape[0]
    return float(((unit @ unit.T).sum() - k) / (k * (k - 1)))


# ---------------------------------------------------------------------------------------
# Sections 4-5: the unconstrained features model, optimised
# ---------------------------------------------------------------------------------------
@dataclass
class UFMResult:
    """An optimised unconstrained features model.

    Attributes
    ----------
    features : ndarray, shape (N, d)
        The free features ``h_i`` (rows).
    labels : ndarray, shape (N,)
    weights : ndarray, shape (K, d)
        The end-to-end classifier ``W_M ... W_1``.
    bias : ndarray, shape (K,) or None
    objective : float
        Final value of the objective.
    history : ndarray
        Objective after each optimiser step.
    layers : list of ndarray
        The individual weight matrices ``W_1, ..., W_M``.
    """

    features: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    bias: np.ndarray | None
    objective: float
    history: np.ndarray
    layers: list = field(default_factory=list)

    def class_feature_norms_sq(self) -> np.ndarray:
        """``||mu_k||^2`` of each class mean of the features."""
        k = self.weights.shape[0]
        means = np.stack([self.features[self.labels == c].mean(axis=0) for c in range(k)])
        return np.sum(means**2, axis=1)

    def metrics(self) -> NCMetrics:
        """:func:`nc_metrics` of the optimised features and classifier."""
        return nc_metrics(self.features, self.labels, self.weights, self.bias)


@validate_params({
    "lam_w": [_REGULARISATION],
    "lam_h": [_REGULARISATION],
    "loss": [Options(("ce", "mse"))],
    "dim": [Interval(int, 1, None), None],
    "bias": ["boolean", None],
    "depth": [Interval(int, 1, None)],
    "steps": [Interval(int, 1, None)],
    "seed": [Interval(int, 0, None)],
    "init_scale": [Interval(float, 0, 100, closed="right")],
})
def train_ufm(n_per_class, lam_w: float, lam_h: float, *, loss: str = "ce", dim: int | None = None,
              bias: bool | None = None, depth: int = 1, steps: int = 300, seed: int = 0,
              init_scale: float = 0.1) -> UFMResult:
    """Minimise the unconstrained features model by gradient-based optimisation (L-BFGS).

    The features ``H`` are free parameters (Mixon et al. 2020; Zhu et al. 2021), so the
    model is

    .. math::

        \\min_{W_1..W_M, H, b}\\ \\frac{1}{N}\\sum_i \\ell(W_M\\cdots W_1 h_i + b, y_i)
        + \\frac{\\lambda_W}{2}\\sum_j \\|W_j\\|_F^2 + \\frac{\\lambda_H}{2}\\|H\\|_F^2,

    with ``ell`` the cross-entropy (``loss="ce"``) or half the squared error to the one-hot
    target (``loss="mse"``), matching :func:`ufm_ce_solution`, :func:`ufm_mse_solution` and
    :func:`imbalanced_mse_solution`. The bias is unregularised; by default it is used with
    cross-entropy and omitted with MSE (the closed forms are bias-free for MSE). The
    optimiser is full-batch L-BFGS with a strong-Wolfe line search in float64, started
    from small random values (``init_scale``), so that a run takes well under a second.

    Parameters
    ----------
    n_per_class : sequence of int
        Samples per class, e.g. ``[5] * 4`` for four balanced classes of five samples
        (positive counts: the optimisation has one free feature per sample).
    lam_w, lam_h : float
        Regularisation strengths in ``[1e-100, 1e100]``.
    loss : {"ce", "mse"}
    dim : int, optional
        Feature dimension (default: the number of classes).
    bias : bool, optional
        Learn an unregularised bias (default: True for CE, False for MSE).
    depth : int
        Number of weight matrices (``W_1..W_{M-1}`` are ``d x d``).
    steps : int
        L-BFGS iterations.
    seed : int
        Seed of the random initialisation.
    init_scale : float
        Standard deviation of the initial entries, in ``(0, 100]``.

    Returns
    -------
    UFMResult

    References
    ----------
    - mixon2022neural: Mixon et al. (2022), "Neural collapse with unconstrained features".
    - zhu2021geometric: Zhu et al. (2021), "A Geometric Analysis of Neural Collapse with
      Unconstrained Features".
    - dang2023neural: Dang et al. (2023), "Neural Collapse in Deep Linear Networks: From
      Balanced to Imbalanced Data".
    """
    n = _check_counts_arg(n_per_class)
    k = n.size
    dim = k if dim is None else check_int(dim, "dim", minimum=k - 1 if loss == "ce" else k)
    lam_w, lam_h, init_scale = float(lam_w), float(lam_h), float(init_scale)
    use_bias = (loss == "ce") if bias is None else bool(bias)
    labels = np.repeat(np.arange(k), n)
    total = labels.size

    gen = torch.Generator().manual_seed(int(seed))
    def param(*shape):  # noqa: E306
        return (init_scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).requires_grad_()
    layers = [param(dim, dim) for _ in range(depth - 1)] + [param(k, dim)]
    h = param(total, dim)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=use_bias)
    y = torch.as_tensor(labels)
    target = torch.nn.functional.one_hot(y, k).to(torch.float64)
    params = layers + [h] + ([b] if use_bias else [])

    def objective():
        z = h
        for w in layers:
            z = z @ w.T
        z = z + b
        fit = (nn.functional.cross_entropy(z, y) if loss == "ce"
               else 0.5 * ((z - target) ** 2).sum() / total)
        reg = lam_w / 2 * sum((w**2).sum() for w in layers) + lam_h / 2 * (h**2).sum()
        return fit + reg

    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, history_size=50, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")
    history = []

    def closure():
        opt.zero_grad()
        value = objective()
        value.backward()
        history.append(float(value.detach()))
        return value

    with thread_limit():  # a few hundred variables: one thread (COMPANION_THREADS overrides)
        opt.step(closure)
    with torch.no_grad():
        final = float(objective())
        end_to_end = layers[0]
        for w in layers[1:]:
            end_to_end = w @ end_to_end
    return UFMResult(features=h.detach().numpy().copy(), labels=labels,
                     weights=end_to_end.detach().numpy().copy(),
                     bias=b.detach().numpy().copy() if use_bias else None, objective=final,
                     history=np.asarray(history), layers=[w.detach().numpy().copy() for w in layers])


# ---------------------------------------------------------------------------------------
# Section 6: the perturbation view (Tirer, Huang & Niles-Weed 2023)
# ---------------------------------------------------------------------------------------
@dataclass
class PerturbedUFM:
    """Features optimised near fixed input features (see :func:`perturbed_ufm`).

    Attributes
    ----------
    features : ndarray, shape (N, d)
        The optimised features ``H``.
    weights : ndarray, shape (K, d)
    objective : float
    """

    features: np.ndarray
    weights: np.ndarray
    objective: float


@validate_params({
    "inputs": [Array(ndim=2, shape=("n", None), min_rows=2, max_abs=_MAX_ABS)],
    "labels": [Labels(high="num_classes", shape=("n",))],
    "lam_w": [_REGULARISATION],
    "beta": [_REGULARISATION],
    "num_classes": [Interval(int, 2, None), None],
    "iterations": [Interval(int, 1, None)],
})
def perturbed_ufm(inputs, labels, lam_w: float, beta: float, *, num_classes: int | None = None,
                  iterations: int = 200) -> PerturbedUFM:
    """Features that fit one-hot targets while staying near fixed inputs (Tirer et al. 2023).

    The perturbation model of Tirer, Huang & Niles-Weed (2023) keeps the features close to a
    given matrix ``H0`` (the output of the earlier layers, which in a real network cannot
    move freely) instead of leaving them unconstrained:

    .. math::

        \\min_{W, H}\\ \\frac{1}{2N}\\|W H - Y\\|_F^2 + \\frac{\\lambda_W}{2}\\|W\\|_F^2
        + \\frac{\\beta}{2N}\\|H - H_0\\|_F^2 .

    For a fixed ``W`` the optimal features are
    ``H = (W^T W + beta I)^{-1} (W^T Y + beta H0)``, so their within-class deviations are
    those of ``H0`` multiplied by ``beta (W^T W + beta I)^{-1}``, a contraction: the
    within-class variability shrinks, and it shrinks more as ``beta`` (the pull toward the
    inputs) gets weaker. For a fixed ``H`` the optimal ``W`` is the ridge solution
    ``W = Y H^T (H H^T + N lam_W I)^{-1}``. We alternate the two exact minimisations
    (block coordinate descent; the objective decreases at every step).

    Parameters
    ----------
    inputs : array-like, shape (N, d)
        The fixed features ``H0`` (rows; entries at most ``1e100`` in magnitude).
    labels : array-like, shape (N,)
    lam_w : float
        Classifier regularisation, in ``[1e-100, 1e100]``.
    beta : float
        Strength of the pull toward ``H0``, in ``[1e-100, 1e100]``.
    num_classes : int, optional
        Default ``max(labels) + 1`` (then every class ``0..max(labels)`` needs a sample).
    iterations : int
        Alternating steps.

    Returns
    -------
    PerturbedUFM

    References
    ----------
    - tirer2023perturbation: Tirer et al. (2023), "Perturbation Analysis of Neural Collapse".

    Examples
    --------
    The optimised features keep much less within-class variability than the inputs:

    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat(np.arange(3), 4)                              # (N,)
    >>> h0 = np.eye(3)[labels] + 0.3 * rng.standard_normal((12, 3))      # (N, d)
    >>> result = perturbed_ufm(h0, labels, lam_w=1e-3, beta=0.1)
    >>> round(nc_metrics(h0, labels).nc1, 4), round(nc_metrics(result.features, labels).nc1, 4)
    (0.0863, 0.0009)
    """
    h0 = as_array(inputs, "inputs")
    y = as_labels(labels, "labels")
    k = _num_classes_of(y) if num_classes is None else int(num_classes)
    n, d = h0.shape
    target = np.eye(k)[y].T  # (K, N)
    hmat = h0.T.copy()       # (d, N)
    eye = np.eye(d)
    for _ in range(iterations):
        w = np.linalg.solve(hmat @ hmat.T + n * lam_w * eye, hmat @ target.T).T
        hmat = np.linalg.solve(w.T @ w + beta * eye, w.T @ target + beta * h0.T)
    objective = (0.5 / n * np.sum((w @ hmat - target) ** 2) + lam_w / 2 * np.sum(w**2)
                 + beta / (2 * n) * np.sum((hmat - h0.T) ** 2))
    return PerturbedUFM(features=hmat.T.copy(), weights=w, objective=float(objective))


# ---------------------------------------------------------------------------------------
# Figures, in the order of the chapter
# ---------------------------------------------------------------------------------------
def _style_unit_axes(ax, dims: int, limit: float) -> None:
    """Square axes over ``[-limit, limit]`` in 2-D or 3-D, labelled by direction."""
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    if dims == 3:
        ax.set_zlim(-limit, limit)
        ax.set_zlabel("direction 3")
        ax.set_box_aspect((1, 1, 1))
    else:
        ax.set_aspect("equal")


def plot_etf(frame=None, num_classes: int = 4):
    """The simplex ETF: Gram matrix of its vectors, and the vectors drawn in their span.

    Parameters
    ----------
    frame : array-like, shape (d, C), optional
        Default: ``simplex_etf(num_classes, seed=0)``.
    num_classes : int
        Used when ``frame`` is omitted.

    The right panel draws the vectors in the span of their leading singular vectors (3-D
    when the rank is at least 3, so a 4-vector frame shows as a regular tetrahedron).

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    """
    m = simplex_etf(num_classes, seed=0) if frame is None else as_array(frame, "frame", ndim=2)
    c = m.shape[1]
    plt = pyplot()
    fig = plt.figure(figsize=(9, 3.8))
    ax1 = fig.add_subplot(1, 2, 1)
    gram = m.T @ m
    im = ax1.imshow(gram, cmap="RdBu_r", vmin=-1, vmax=1)
    ax1.set_xticks(range(c))
    ax1.set_yticks(range(c))
    ax1.set_title("Gram matrix $M^\\top M$")
    ax1.set_xlabel("class $c'$")
    ax1.set_ylabel("class $c$")
    fig.colorbar(im, ax=ax1, fraction=0.046, label="cosine")
    u, _, _ = np.linalg.svd(m, full_matrices=False)
    dims = 3 if np.linalg.matrix_rank(m) >= 3 else 2
    coords = u[:, :dims].T @ m
    ax2 = fig.add_subplot(1, 2, 2, projection="3d" if dims == 3 else None)
    for j in range(c):
        color = f"C{j % 10}"
        if dims == 3:
            ax2.plot(*[[0.0, v] for v in coords[:, j]], color=color, lw=2)
            ax2.scatter(*coords[:, j], color=color, s=30)
            ax2.text(*(1.15 * coords[:, j]), str(j))
        else:
            ax2.annotate("", xy=coords[:, j], xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color))
            ax2.text(*(1.1 * coords[:, j]), str(j), ha="center", va="center")
    _style_unit_axes(ax2, dims, 1.1)
    ax2.set_title(f"the {c} vectors in their {dims}-D span")
    fig.tight_layout()
    return fig


_METRIC_LABELS = {
    "nc1": "NC1  Tr$(\\Sigma_W\\Sigma_B^+)/C$",
    "equinorm_means": "NC2 equinorm (means)",
    "max_angle": "NC2 max-angle",
    "self_duality": "NC3 self-duality",
    "ncc_mismatch": "NC4 NCC mismatch",
    "train_error": "training error",
    "test_error": "held-out error",
    "test_nc1": "NC1 on held-out data",
    "loss_grad": "per-sample loss gradient $\\|\\partial\\ell/\\partial z\\|$",
    "cdnv": "CDNV",
    "nc1_trace_ratio": "Tr$\\Sigma_W$ / Tr$\\Sigma_B$",
    "equiangularity": "NC2 equiangularity",
}


def _seed_curves(runs, key):
    """``(n_seeds, n_points)`` values of ``key`` and their steps, from one History or a list."""
    runs = [runs] if isinstance(runs, History) else list(runs)
    if not runs or not all(isinstance(r, History) for r in runs):
        raise TypeError("each entry of histories must be a History or a non-empty list of Histories")
    steps = runs[0].steps(key)
    values = np.stack([r[key] for r in runs])
    return steps, values


def plot_nc_history(histories: dict, keys: Sequence[str] = ("train_error", "nc1", "equinorm_means",
                                                             "max_angle", "self_duality", "ncc_mismatch")):
    """Collapse metrics over training, one panel per metric, one line (and band) per setting.

    Parameters
    ----------
    histories : dict of str -> History or list of History
        Runs from :func:`train_mlp_nc` or :func:`train_mlp_nc_seeds`, keyed by their legend
        label. A list holds one run per seed (logged at the same epochs): the line is their
        mean and the band spans the lowest to the highest seed
        (:func:`companion.plotting.plot_spread`).
    keys : sequence of str
        Logged quantities to draw (log scale; zeros are drawn at the bottom of the axis).

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    """
    if not isinstance(histories, dict) or not histories:
        raise TypeError("histories must be a non-empty dict of label -> History (or list of Histories)")
    if isinstance(keys, str) or not isinstance(keys, Sequence) or not keys or \
            not all(isinstance(k, str) for k in keys):
        raise TypeError(f"keys must be a non-empty sequence of logged names (str), got {keys!r}")
    cols = 3
    rows = math.ceil(len(keys) / cols)
    fig, axes = subplots(cols, rows, width=3.7, height=3.0)
    for ax, key in zip(axes, keys):
        for j, (label, runs) in enumerate(histories.items()):
            steps, values = _seed_curves(runs, key)
            x = np.maximum(steps, 1).astype(float)
            if values.shape[0] == 1:
                ax.plot(x, values[0], marker=".", color=f"C{j}", label=label)
            else:
                plot_spread(ax, x, values, label=label, color=f"C{j}", marker=".")
        ax.set_xscale("log")
        if key.endswith("error") or key.endswith("ncc_mismatch"):  # fractions that reach exactly 0
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_ylim(bottom=0)
        else:
            ax.set_yscale("log")
        ax.set_xlabel("epoch (epoch 0 drawn at 1)")
        ax.set_ylabel("fraction" if key.endswith("error") or key.endswith("ncc_mismatch") else "metric")
        ax.set_title(_METRIC_LABELS.get(key, key), fontsize=10)
    for ax in axes[len(keys):]:
        ax.axis("off")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_layer_collapse(layer_names: Sequence[str], nc1_by_set: dict):
    """NC1 of every layer's representation, one line (mean, min-max band over seeds) per data set.

    Parameters
    ----------
    layer_names : sequence of str
        The layers, input first.
    nc1_by_set : dict of str -> array-like, shape (n_seeds, n_layers)
        E.g. ``{"training": ..., "held-out": ...}``; positive values (log scale).

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    - hui2022limitations: Hui et al. (2022), "Limitations of Neural Collapse for Understanding
      Generalization in Deep Learning".
    """
    if isinstance(layer_names, str) or not isinstance(layer_names, Sequence) or not layer_names or \
            not all(isinstance(n, str) for n in layer_names):
        raise TypeError(f"layer_names must be a non-empty sequence of str, got {layer_names!r}")
    names = list(layer_names)
    if not isinstance(nc1_by_set, dict) or not nc1_by_set:
        raise TypeError("nc1_by_set must be a non-empty dict of label -> (n_seeds, n_layers) values")
    curves = {}
    for label, values in nc1_by_set.items():
        v = as_array(values, f"nc1_by_set[{label!r}]", ndim=2)
        if v.shape[1] != len(names):
            raise ValueError(f"nc1_by_set[{label!r}] must have one column per entry of layer_names "
                             f"({len(names)}), got shape {v.shape}")
        curves[label] = _check_positive_entries(v, f"nc1_by_set[{label!r}]")
    fig, axes = subplots(1, width=5.5, height=3.6)
    x = np.arange(len(names), dtype=float)
    for j, (label, values) in enumerate(curves.items()):
        plot_spread(axes[0], x, values, label=label, color=f"C{j}", marker="o")
    axes[0].set_xticks(x)
    axes[0].set_xticklabels(names)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("layer")
    axes[0].set_ylabel("NC1")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_weight_decay_sweep(weight_decays, final_metrics: dict):
    """End-of-training metrics against weight decay, one panel per metric.

    Parameters
    ----------
    weight_decays : sequence of float
        Nonnegative weight decays, drawn at equally spaced positions (0 included).
    final_metrics : dict of str -> array-like, shape (n_wd,) or (n_seeds, n_wd)
        For each metric name (e.g. ``"nc1"``, ``"self_duality"``), its value at the end of
        each run; with one row per seed the panel shows the mean and the min-max band.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    """
    wd = as_array(weight_decays, "weight_decays", ndim=1, min_rows=1)
    if np.any(wd < 0):
        raise ValueError("weight_decays must be nonnegative")
    if not isinstance(final_metrics, dict) or not final_metrics:
        raise TypeError("final_metrics must be a non-empty dict of metric name -> values")
    fig, axes = subplots(len(final_metrics), width=3.8, height=3.3)
    x = np.arange(wd.size, dtype=float)
    for ax, (key, values) in zip(axes, final_metrics.items()):
        v = as_array(values, f"final_metrics[{key!r}]")
        v = v[None, :] if v.ndim == 1 else v
        if v.ndim != 2 or v.shape[1] != wd.size:
            raise ValueError(f"final_metrics[{key!r}] must have {wd.size} values per seed, got shape {v.shape}")
        if v.shape[0] == 1:
            ax.plot(x, v[0], marker="o")
        else:
            plot_spread(ax, x, v, label="mean, min-max", marker="o")
            ax.legend(fontsize=8)
        ax.set_yscale("log" if np.all(v > 0) else "symlog", **({} if np.all(v > 0) else {"linthresh": 1e-3}))
        ax.set_xticks(x)
        ax.set_xticklabels([f"{w:g}" for w in wd])
        ax.set_xlabel("weight decay")
        ax.set_ylabel(key)
        ax.set_title(_METRIC_LABELS.get(key, key), fontsize=10)
    fig.tight_layout()
    return fig


def plot_ufm_check(rows: Sequence[tuple]):
    """Gradient-based optimum vs closed form, one point per quantity (parity plot).

    Parameters
    ----------
    rows : sequence of (label, closed_form_value, optimised_value)
        Finite values.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - zhu2021geometric: Zhu et al. (2021), "A Geometric Analysis of Neural Collapse with
      Unconstrained Features".
    - zhou2022optimization: Zhou et al. (2022), "On the Optimization Landscape of Neural
      Collapse under MSE Loss: Global Optimality with Unconstrained Features".
    """
    if isinstance(rows, str) or not isinstance(rows, Sequence) or not all(
            isinstance(r, (tuple, list)) and len(r) == 3 and isinstance(r[0], str) for r in rows):
        raise TypeError(f"rows must be a sequence of (label, closed_form_value, optimised_value), got {rows!r:.60}")
    if not rows:
        raise ValueError("rows must not be empty")
    check_params({"rows": [r[1:] for r in rows]}, {"rows": [Array(ndim=2, max_abs=_MAX_ABS)]})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    expected = np.array([r[1] for r in rows], dtype=float)
    got = np.array([r[2] for r in rows], dtype=float)
    for j, (label, e, g) in enumerate(rows):
        ax.scatter([e], [g], color=f"C{j % 10}", label=label, zorder=3)
    lo, hi = min(expected.min(), got.min()), max(expected.max(), got.max())
    pad = 0.05 * (hi - lo + 1e-12)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="gray", ls="--", label="y = x")
    ax.set_xlabel("closed form")
    ax.set_ylabel("optimised UFM")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_ce_minority_collapse(ratios, cosines, norm_ratios):
    """Cross-entropy minority collapse (Fang et al. 2021) in the UFM, against the imbalance ratio.

    Parameters
    ----------
    ratios : sequence of float
        Imbalance ratios ``R = n_majority / n_minority``.
    cosines : array-like, shape (n_seeds, len(ratios))
        Mean cosine between the minority classes' classifier rows.
    norm_ratios : array-like, shape (n_seeds, len(ratios))
        Mean minority row norm over mean majority row norm.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - fang2021exploring: Fang et al. (2021), "Exploring deep neural networks via layer-peeled
      model: Minority collapse in imbalanced training".
    """
    check_params({"ratios": ratios, "cosines": cosines, "norm_ratios": norm_ratios},
                 {"ratios": [Array(ndim=1, shape=("R",), min_size=1)],
                  "cosines": [Array(ndim=2, shape=("S", "R"), min_rows=1)],
                  "norm_ratios": [Array(ndim=2, shape=("S", "R"), min_rows=1)]})
    r = _check_positive_entries(as_array(ratios, "ratios"), "ratios")
    fig, axes = subplots(2, width=4.3, height=3.4)
    plot_spread(axes[0], r, as_array(cosines, "cosines"), label="optimised UFM", marker="o")  # (n_seeds, R)
    axes[0].set_ylabel("mean cosine between minority rows")
    plot_spread(axes[1], r, as_array(norm_ratios, "norm_ratios"), label="optimised UFM", marker="o")
    axes[1].set_ylabel("minority / majority row norm")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("imbalance ratio $R$")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_minority_collapse(lams, optimised_norms_sq, n_per_class):
    """``||h_k||`` of each class against the regularisation, with the predicted thresholds.

    Parameters
    ----------
    lams : sequence of float
        Values of ``lam = lam_W = lam_H``, in ``[1e-100, 1e100]``.
    optimised_norms_sq : array-like, shape (len(lams), K)
        ``||mu_k||^2`` of the optimised UFM features.
    n_per_class : sequence of int
        Samples per class (positive counts of any size).

    Returns
    -------
    matplotlib.figure.Figure
        Markers: optimised; lines: :func:`imbalanced_mse_solution`; dotted verticals:
        :func:`minority_collapse_threshold`.

    References
    ----------
    - dang2023neural: Dang et al. (2023), "Neural Collapse in Deep Linear Networks: From
      Balanced to Imbalanced Data".
    """
    check_params({"lams": lams, "optimised_norms_sq": optimised_norms_sq},
                 {"lams": [Array(ndim=1, shape=("L",), min_size=1, low=1 / _MAX_ABS, high=_MAX_ABS)],
                  "optimised_norms_sq": [Array(ndim=2, shape=("L", None), max_abs=_MAX_ABS)]})
    lam, got = as_array(lams, "lams"), as_array(optimised_norms_sq, "optimised_norms_sq")
    n = _check_counts_arg(n_per_class)
    if got.shape[1] != n.size:
        raise ValueError(f"optimised_norms_sq must have one column per class of n_per_class ({n.size}), "
                         f"got shape {got.shape}")
    fine = np.linspace(lam.min(), lam.max(), 300)
    theory = np.array([imbalanced_mse_solution(n, l, l).feature_norm_sq for l in fine])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k in range(n.size):
        ax.plot(fine, np.sqrt(theory[:, k]), color=f"C{k}", lw=1.2)
        ax.plot(lam, np.sqrt(np.maximum(got[:, k], 0)), "o", color=f"C{k}", ms=4, label=f"$n_{k}$ = {n[k]}")
    for k, t in enumerate(minority_collapse_threshold(n)):
        if lam.min() <= t <= lam.max():
            ax.axvline(t, color=f"C{k}", ls=":", lw=1)
    ax.set_xlabel("$\\lambda = \\lambda_W = \\lambda_H$")
    ax.set_ylabel("$\\|h_k\\|$ (class-mean feature norm)")
    ax.set_title("lines: closed form; dots: optimised; dotted: predicted threshold", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_perturbation(betas, nc1_optimised, nc1_inputs):
    """NC1 of features optimised near fixed inputs, against the pull strength ``beta``.

    Parameters
    ----------
    betas : array-like, shape (B,)
        Positive pull strengths (log axis).
    nc1_optimised : array-like, shape (B,)
        Positive NC1 of the optimised features (log axis).
    nc1_inputs : float
        Positive NC1 of the inputs, drawn as a horizontal line.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - tirer2023perturbation: Tirer et al. (2023), "Perturbation Analysis of Neural Collapse".
    """
    check_params({"betas": betas, "nc1_optimised": nc1_optimised, "nc1_inputs": nc1_inputs},
                 {"betas": [Array(ndim=1, shape=("B",), min_size=1)],
                  "nc1_optimised": [Array(ndim=1, shape=("B",))],
                  "nc1_inputs": [Interval(float, 0, None, closed="neither")]})
    b = _check_positive_entries(as_array(betas, "betas"), "betas")
    got = _check_positive_entries(as_array(nc1_optimised, "nc1_optimised"), "nc1_optimised")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.loglog(b, got, marker="o", label="optimised features $H$")
    ax.axhline(float(nc1_inputs), color="gray", ls="--", label="inputs $H_0$")
    ax.set_xlabel("$\\beta$ (pull toward the inputs)")
    ax.set_ylabel("NC1")
    ax.legend()
    fig.tight_layout()
    return fig


@validate_params({
    "features": [Array(ndim=2, shape=("n", "d"), min_rows=1, max_abs=_MAX_ABS)],
    "labels": [Labels(high=_classifier_rows, shape=("n",))],
    "weights": [Array(ndim=2, shape=(None, "d"), min_rows=2, max_abs=_MAX_ABS)],
    "title": [str],
    "dims": [Options((2, 3))],
})
def plot_geometry(features, labels, weights, ax=None, title: str = "", dims: int = 2):
    """Centred class means (dots) and classifier rows (arrows), projected on their leading span.

    Both sets are normalised (means by their largest norm, rows by theirs) so that
    directions can be compared, and projected on the ``dims`` leading left singular vectors
    of the centred class means and classifier rows together.

    Parameters
    ----------
    features : array-like, shape (N, d)
    labels : array-like, shape (N,)
    weights : array-like, shape (C, d)
    ax : matplotlib Axes, optional
        Axes to draw on (a 3-D axes when ``dims=3``); default: a new figure.
    title : str
    dims : {2, 3}
        Dimension of the projection.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    - papyan2020prevalence: Papyan et al. (2020), "Prevalence of neural collapse during the
      terminal phase of deep learning training".
    """
    h, y, w = as_array(features, "features"), as_labels(labels, "labels"), as_array(weights, "weights")
    k = w.shape[0]
    counts = np.bincount(y, minlength=k)
    plt = pyplot()
    if ax is None:
        fig = plt.figure(figsize=(4.4, 4.2))
        ax = fig.add_subplot(1, 1, 1, projection="3d" if dims == 3 else None)
    else:
        fig = ax.figure
    present = counts > 0
    means = np.zeros((k, h.shape[1]))
    np.add.at(means, y, h)
    means[present] /= counts[present, None]
    centred = means - counts @ means / counts.sum()
    basis, _, _ = np.linalg.svd(np.concatenate([centred, w]).T, full_matrices=False)
    basis = np.pad(basis, ((0, 0), (0, max(0, dims - basis.shape[1]))))[:, :dims]
    pm = centred @ basis / max(np.linalg.norm(centred, axis=1).max(), 1e-12)
    pw = w @ basis / max(np.linalg.norm(w, axis=1).max(), 1e-12)
    for c in range(k):
        color = f"C{c % 10}"
        if dims == 3:
            ax.plot(*[[0.0, v] for v in pw[c]], color=color, lw=2)
            ax.scatter(*pm[c], color=color, s=40, edgecolor="k", depthshade=False)
        else:
            ax.annotate("", xy=pw[c], xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, lw=1.5))
            ax.scatter(*pm[c], color=color, s=40, zorder=3, edgecolor="k")
    _style_unit_axes(ax, dims, 1.05)
    ax.set_title(title or ("class means (dots) and classifier rows (" + ("lines" if dims == 3 else "arrows") + ")"),
                 fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------
# Section 7: the explorer
# ---------------------------------------------------------------------------------------
def _explorer_frame(num_classes: int, imbalance: float, weight_decay: float, loss: str):
    """One explorer state: optimise a small UFM and draw its geometry and metrics."""
    sizes = np.maximum(np.round(20 * imbalance ** (-np.arange(num_classes) / max(num_classes - 1, 1))), 1)
    result = train_ufm(sizes.astype(int), weight_decay, weight_decay, loss=loss, steps=150, seed=0)
    norms = np.sqrt(result.class_feature_norms_sq())
    row_norms = np.linalg.norm(result.weights, axis=1)
    plt = pyplot()
    fig = plt.figure(figsize=(9, 3.9))
    ax1 = fig.add_subplot(1, 2, 1, projection="3d")
    ax2 = fig.add_subplot(1, 2, 2)
    plot_geometry(result.features, result.labels, result.weights, ax=ax1, dims=3)
    pos = np.arange(num_classes)
    colors = [f"C{c % 10}" for c in range(num_classes)]
    ax2.bar(pos - 0.2, norms, width=0.4, color=colors, label="class mean $\\|\\mu_k\\|$")
    ax2.bar(pos + 0.2, row_norms, width=0.4, color=colors, alpha=0.45, hatch="//",
            label="classifier row $\\|w_k\\|$")
    ax2.set_xticks(range(num_classes))
    ax2.set_xlabel("class (samples: " + ", ".join(str(int(s)) for s in sizes) + ")")
    ax2.set_ylabel("norm")
    ax2.legend(fontsize=7)
    ax2.set_title("norms (0 = collapsed class)", fontsize=9)
    fig.tight_layout()
    collapsed = int(np.sum(norms < 1e-3 * max(norms.max(), 1e-12)))
    lines = [f"{loss.upper()} objective {result.objective:.4f}; collapsed classes: {collapsed}"]
    small = row_norms[-2:]
    if np.all(small > 1e-6 * max(row_norms.max(), 1e-12)):
        lines.append("cosine between the classifier rows of the two smallest classes: "
                     f"{mean_pairwise_cosine(result.weights[-2:]):.3f} (a simplex ETF has "
                     f"{-1 / (num_classes - 1):.3f}; Fang et al.'s minority collapse drives it toward 1)")
    else:
        lines.append("the classifier rows of the two smallest classes are (close to) zero")
    if collapsed < num_classes:
        try:
            m = nc_metrics(result.features, result.labels, result.weights, result.bias)
            lines.append(f"NC1 {m.nc1:.2e}, equinorm {m.equinorm_means:.3f}, max-angle {m.max_angle:.3f}, "
                         f"self-duality {m.self_duality:.3f}")
        except ValueError as err:
            lines.append(f"metrics undefined: {err}")
    return fig, "\n".join(lines)


def nc_explorer():
    """Interactive explorer of the unconstrained features model's geometry.

    Controls: number of classes, imbalance ratio (largest over smallest class, sizes
    geometric from 20 samples down), weight decay (``lam_W = lam_H``), loss (CE or MSE).
    Each state optimises a UFM with :func:`train_ufm` (well under a second) and shows the
    class means and classifier rows projected on their leading 3-D span, the norms of the
    class means and of the classifier rows (the squared-loss minority collapse of Dang et
    al. 2023 shows as bars at zero), the cosine between the classifier rows of the two
    smallest classes (the cross-entropy minority collapse of Fang et al. 2021 drives it
    toward 1) and the metrics as text. The static book precomputes the weight decay and
    the loss (8 frames) at the default imbalance.

    Returns
    -------
    companion.widgets.Explorer

    References
    ----------
    - mixon2022neural: Mixon et al. (2022), "Neural collapse with unconstrained features".
    - fang2021exploring: Fang et al. (2021), "Exploring deep neural networks via layer-peeled
      model: Minority collapse in imbalanced training".
    - dang2023neural: Dang et al. (2023), "Neural Collapse in Deep Linear Networks: From
      Balanced to Imbalanced Data".
    """
    from .widgets import Choice, Explorer

    controls = {
        "num_classes": Choice([3, 4, 5, 6], default=4, label="classes"),
        "imbalance": Choice([1.0, 4.0, 10.0], default=10.0, label="imbalance ratio", fmt="{:g}"),
        "weight_decay": Choice([0.001, 0.01, 0.03, 0.05], default=0.01, label="weight decay", fmt="{:g}"),
        "loss": Choice(["mse", "ce"], default="mse", label="loss"),
    }
    return Explorer(_explorer_frame, controls, title="Unconstrained features model: geometry at the optimum",
                    precompute=["weight_decay", "loss"])
