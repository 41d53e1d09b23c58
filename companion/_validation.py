"""Input validation shared by every module of the companion.

Every public function of the package checks its inputs with these helpers, so that bad
input fails early with a ``ValueError`` or ``TypeError`` whose message names the
argument and says what was expected (the scikit-learn convention).
"""

from __future__ import annotations

import numbers
from typing import Iterable

import numpy as np

try:  # torch is a dependency, but keep the validation importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = [
    "is_tensor",
    "as_array",
    "as_labels",
    "check_int",
    "check_positive",
    "check_nonnegative",
    "check_fraction",
    "check_choice",
]


def is_tensor(x) -> bool:
    """True when ``x`` is a ``torch.Tensor``."""
    return torch is not None and isinstance(x, torch.Tensor)


def as_array(x, name: str, *, ndim: int | Iterable[int] | None = None,
             dtype=np.float64, finite: bool = True, min_rows: int | None = None) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested list to a numpy array and validate it.

    Parameters
    ----------
    x : array-like or torch.Tensor
        The value to convert (tensors are detached and moved to the CPU).
    name : str
        The argument's name, used in error messages.
    ndim : int or iterable of int, optional
        Allowed numbers of dimensions.
    dtype : numpy dtype, optional
        Target dtype (default float64). ``None`` keeps the input's dtype.
    finite : bool
        Reject NaN and infinite entries (default True).
    min_rows : int, optional
        Minimum length of the first axis.

    Raises
    ------
    TypeError
        If ``x`` is not array-like (a string, a dict, None, ...).
    ValueError
        If the shape or the values are not as required.
    """
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if is_tensor(x):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric array-like, got {type(x).__name__}: {err}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimension(s), got shape {arr.shape}")
    if min_rows is not None and (arr.ndim == 0 or arr.shape[0] < min_rows):
        raise ValueError(f"{name} must have at least {min_rows} rows, got shape {arr.shape}")
    if finite and np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_labels(y, name: str = "labels", *, n: int | None = None,
              num_classes: int | None = None) -> np.ndarray:
    """Validate integer class labels in ``{0, ..., num_classes - 1}``.

    Raises ``ValueError`` when the labels are not a 1-D integer array, do not have ``n``
    entries, are negative, or reach ``num_classes``.
    """
    arr = as_array(y, name, ndim=1, dtype=None, finite=False)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries (one per sample), got {arr.shape[0]}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {arr.min()}")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ValueError(f"{name} must be below num_classes={num_classes}, got maximum {arr.max()}")
    return arr


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int after checking its type and range."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float after checking that it is finite and > 0."""
    value = _check_real(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_nonnegative(value, name: str) -> float:
    """Return ``value`` as a float after checking that it is finite and >= 0."""
    value = _check_real(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_fraction(value, name: str, *, inclusive: bool = True) -> float:
    """Return ``value`` as a float in [0, 1] (or (0, 1) when ``inclusive`` is False)."""
    value = _check_real(value, name)
    ok = 0 <= value <= 1 if inclusive else 0 < value < 1
    if not ok:
        interval = "[0, 1]" if inclusive else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
