"""Claims about trained models, measured over several seeds and checked with margins.

A training run's low digits differ from one CPU to another (SIMD width, BLAS kernels,
thread count) and training amplifies the difference, so the digits of a run are never
evidence and never a test. The course's rule instead:

1. every conclusion about trained models is measured on at least three seeds
   (:func:`companion.training.seeds`), and the figure or table shows their spread;
2. an unchecked cell prints the numbers (:func:`spread` formats one number per seed);
3. the next cell, marked ``# NBVAL_CHECK_OUTPUT``, prints the verdicts of explicit claims
   whose margins come from that spread (:func:`claim`), so a regression flips a verdict
   while another CPU or another seed does not::

       final_loss = np.array([run.last("loss") for run in runs])      # one per seed
       print("final loss:", spread(final_loss))                      # unchecked cell
       claim("sigmaReparam learns (final loss < 0.1) in every seed", final_loss < 0.1)

   prints ``sigmaReparam learns (final loss < 0.1) in every seed: True``.

``make robust`` re-runs every chapter with other base seeds (``COMPANION_SEED=1`` and
``2``) and another thread count; a claim that another seed reverses is weakened or
removed, never tuned until it passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_array, check_int

__all__ = ["Spread", "spread", "claim", "agreement"]


@dataclass(frozen=True)
class Spread:
    """The values of one quantity over independent seeds, with their mean and range.

    ``values`` has the seeds along its first axis; ``mean``, ``low`` and ``high`` reduce
    that axis (so a curve per seed gives a mean curve and a min-max band).
    """

    values: np.ndarray

    def __post_init__(self):
        arr = as_array(self.values, "values", min_rows=1)
        if arr.ndim == 0:
            raise ValueError("values must have one entry per seed along its first axis, got a scalar")
        object.__setattr__(self, "values", arr)

    @property
    def n(self) -> int:
        """The number of seeds."""
        return int(self.values.shape[0])

    @property
    def mean(self):
        return self.values.mean(axis=0)

    @property
    def low(self):
        return self.values.min(axis=0)

    @property
    def high(self):
        return self.values.max(axis=0)

    def format(self, fmt: str = ".3g") -> str:
        """``mean (min to max, n seeds)`` for a scalar quantity."""
        if self.values.ndim != 1:
            raise ValueError(f"format needs one value per seed, got values of shape {self.values.shape}")
        return (f"{self.mean:{fmt}} ({self.low:{fmt}} to {self.high:{fmt}}, "
                f"{self.n} seed{'s' if self.n != 1 else ''})")

    def __str__(self) -> str:
        return self.format() if self.values.ndim == 1 else f"Spread(shape={self.values.shape})"


def spread(values) -> Spread:
    """Collect one value (or one curve) per seed into a :class:`Spread`.

    Parameters
    ----------
    values : array-like, shape (n_seeds,) or (n_seeds, ...)
        The quantity measured in each seed; NaN and infinite values are rejected.

    Examples
    --------
    >>> print(spread([0.2, 0.1, 0.3]))
    0.2 (0.1 to 0.3, 3 seeds)
    """
    arr = as_array(values, "values", min_rows=1)
    if arr.ndim == 0:
        raise ValueError("values must have one entry per seed along its first axis, got a scalar")
    return Spread(arr)


def claim(statement: str, holds, *, at_least: int | None = None) -> bool:
    """Print ``statement: True`` or ``statement: False`` and return the verdict.

    Parameters
    ----------
    statement : str
        The claim in words, with its margin and its quantifier over seeds
        ("... in every seed", "... in at least 2 of 3 seeds").
    holds : bool or array-like of bool
        The verdict, or one verdict per seed (an array of any shape is flattened: every
        entry is one verdict).
    at_least : int, optional
        With per-seed verdicts: how many must hold (default: all of them).

    Examples
    --------
    >>> claim("NC1 falls more than 10-fold in every seed", np.array([40.0, 25.0, 61.0]) > 10)
    NC1 falls more than 10-fold in every seed: True
    True
    >>> claim("the fix learns in at least 2 of 3 seeds", [True, False, True], at_least=2)
    the fix learns in at least 2 of 3 seeds: True
    True
    """
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty string")
    flags = np.asarray(holds)
    if flags.dtype != bool:
        raise TypeError(f"holds must be a bool or an array of bools, got dtype {flags.dtype}")
    flags = flags.ravel()
    if flags.size == 0:
        raise ValueError("holds must contain at least one verdict")
    if at_least is not None and isinstance(at_least, (int, np.integer)) and not isinstance(at_least, bool) \
            and at_least > flags.size:
        raise ValueError(f"at_least must be <= the number of verdicts in holds ({flags.size}), got {at_least}")
    need = flags.size if at_least is None else check_int(at_least, "at_least", minimum=1,
                                                         maximum=flags.size)
    verdict = bool(flags.sum() >= need)
    print(f"{statement}: {verdict}")
    return verdict


def agreement(holds) -> str:
    """How many seeds agree, in words: ``"all 3 seeds"``, ``"2 of 3 seeds"``, ``"no seed"``.

    >>> agreement([True, False, True])
    '2 of 3 seeds'
    """
    flags = np.asarray(holds)
    if flags.dtype != bool or flags.ndim != 1 or flags.size == 0:
        raise ValueError("holds must be a non-empty 1-D array of bools, one per seed")
    k, n = int(flags.sum()), flags.size
    if k == n:
        return f"all {n} seeds" if n > 1 else "the one seed"
    if k == 0:
        return "no seed"
    return f"{k} of {n} seeds"
