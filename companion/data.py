"""Datasets that need no network: shipped with the package or with an installed library.

Synthetic generators that belong to one chapter's science live in that chapter's module;
this module holds the real data the chapters share or that a reader may want on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from ._validation import Interval, as_array, check_params
from ._validation import as_labels, check_fraction, check_int, check_nonnegative

__all__ = ["load_digits", "gaussian_mixture", "stratified_split", "ChinchillaData", "load_chinchilla"]


def load_digits(standardize: bool = True, dtype=np.float32):
    """The UCI handwritten digits bundled with scikit-learn (no download).

    1797 images of 8 x 8 pixels, 10 classes (about 180 per class).

    Parameters
    ----------
    standardize : bool
        Centre each pixel and divide by its standard deviation (constant pixels are left
        at zero).
    dtype : numpy dtype
        dtype of the returned features.

    Returns
    -------
    features : ndarray, shape (1797, 64)
    labels : ndarray of int64, shape (1797,)
    """
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = bunch.data.astype(np.float64)
    if standardize:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x.astype(dtype), bunch.target.astype(np.int64)


def gaussian_mixture(num_classes: int = 4, n_per_class: int = 100, dim: int = 16,
                     separation: float = 3.0, noise: float = 1.0, seed: int = 0,
                     dtype=np.float32):
    """Isotropic Gaussian classes around random means: a synthetic classification set.

    Class means are drawn from ``N(0, separation^2 / dim I)`` and samples from
    ``N(mu_c, noise^2 / dim I)``, so ``separation / noise`` is the signal-to-noise ratio.

    Returns
    -------
    features : ndarray, shape (num_classes * n_per_class, dim)
    labels : ndarray of int64
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    n_per_class = check_int(n_per_class, "n_per_class", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    separation = check_nonnegative(separation, "separation")
    noise = check_nonnegative(noise, "noise")
    # 1e308 is finite but its square is not: bound the scales so the samples stay finite.
    check_params({"separation": separation, "noise": noise},
                 {"separation": [Interval(float, 0, 1e100)], "noise": [Interval(float, 0, 1e100)]})
    try:
        dtype = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise TypeError("dtype must be a numpy floating dtype such as np.float32")
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    means = rng.normal(scale=separation / np.sqrt(dim), size=(num_classes, dim))
    labels = np.repeat(np.arange(num_classes), n_per_class)
    x = means[labels] + rng.normal(scale=noise / np.sqrt(dim), size=(labels.size, dim))
    return x.astype(dtype), labels.astype(np.int64)


def stratified_split(labels, test_fraction: float = 0.25, seed: int = 0):
    """Indices of a random train/test split that keeps every class's share.

    Each class contributes ``round(test_fraction * n_c)`` of its samples (at least one, and
    at least one left for training) to the test set, drawn at random with ``seed``.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
    test_fraction : float
        Share of each class held out, in (0, 1).
    seed : int

    Returns
    -------
    train_index, test_index : ndarray of int64, sorted

    Examples
    --------
    >>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], 0.25, seed=0)
    >>> len(train), len(test)
    (6, 2)
    """
    y = as_labels(labels, "labels")
    if y.size < 2:
        raise ValueError(f"labels must hold at least 2 samples to split, got {y.size}")
    test_fraction = check_fraction(test_fraction, "test_fraction", inclusive=False)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    test = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if members.size < 2:
            raise ValueError(f"labels: class {c} has {members.size} sample, need at least 2 to split")
        k = min(max(int(round(test_fraction * members.size)), 1), members.size - 1)
        test.append(rng.choice(members, size=k, replace=False))
    test = np.sort(np.concatenate(test)).astype(np.int64)
    train = np.setdiff1d(np.arange(y.size), test).astype(np.int64)
    return train, test


@dataclass(frozen=True)
class ChinchillaData:
    """The Chinchilla training runs as extracted by Besiroglu et al. (2024).

    Attributes are float64 arrays of equal length: parameters ``N``, tokens ``D``
    (= ``C / (6 N)``), training compute ``C`` in FLOP, and final ``loss``.
    """

    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    loss: np.ndarray

    def __post_init__(self):
        n = None
        for name in ("N", "D", "C", "loss"):
            arr = as_array(getattr(self, name), name, ndim=1, min_rows=1)
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"{name} must have {n} entries like N, got {arr.shape[0]}")
            if name != "loss" and np.any(arr <= 0):
                raise ValueError(f"{name} must be positive, got minimum {arr.min():.3g}")
            n = arr.shape[0]
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.loss)


CHINCHILLA_CITATION = (
    "Data: Hoffmann et al. (2022), Training Compute-Optimal Large Language Models, Figure 4; "
    "points extracted by Besiroglu, Erdil, Barnett & You (2024), Chinchilla Scaling: "
    "A replication attempt (Epoch AI).")


def load_chinchilla(drop_highest_loss: int = 5) -> ChinchillaData:
    """The 245 (N, C, loss) points extracted from the Chinchilla paper's Figure 4.

    Following Besiroglu et al. (2024), the ``drop_highest_loss`` points with the highest
    loss are dropped (5 by default, leaving the 240 points their fit uses). Tokens are
    ``D = C / (6 N)``. Cite both Hoffmann et al. (2022) and Besiroglu et al. (2024)
    (:data:`CHINCHILLA_CITATION`).
    """
    drop_highest_loss = check_int(drop_highest_loss, "drop_highest_loss", minimum=0, maximum=244)
    text = resources.files("companion.resources").joinpath("chinchilla_svg_extracted.csv").read_text()
    table = np.loadtxt(text.splitlines(), delimiter=",", skiprows=1)
    n, c, loss = table[:, 0], table[:, 1], table[:, 2]
    if drop_highest_loss:
        keep = np.sort(np.argsort(loss)[: len(loss) - drop_highest_loss])
        n, c, loss = n[keep], c[keep], loss[keep]
    return ChinchillaData(N=n, D=c / (6 * n), C=c, loss=loss)
