"""The figure helpers every chapter module shares (one home, imported everywhere).

Each chapter module draws its figures with one function per figure that returns the
``Figure``; they all start from :func:`subplots` and draw the spread over seeds with
:func:`plot_spread`, so that every multi-seed result in the book looks the same: the mean
as a line, the range of the seeds as a shaded band.
"""

from __future__ import annotations

import numpy as np

from ._validation import Array, Interval, _short, as_array, validate_params

__all__ = ["pyplot", "subplots", "plot_spread"]


def pyplot():
    """``matplotlib.pyplot``, imported on first use (importing the package stays fast)."""
    import matplotlib.pyplot as plt

    return plt


@validate_params({
    "ncols": [Interval(int, 1, 50)],
    "nrows": [Interval(int, 1, 50)],
    "width": [Interval(float, 0, 100, closed="right")],
    "height": [Interval(float, 0, 100, closed="right")],
})
def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 4.5, height: float = 3.5, **kwargs):
    """A figure of ``nrows x ncols`` panels of ``width x height`` inches each.

    Returns ``(fig, axes)`` with ``axes`` a flat array (``axes[0]`` for a single panel).

    Examples
    --------
    >>> fig, axes = subplots(2, width=3, height=2)
    >>> axes.shape, fig.get_size_inches().tolist()
    ((2,), [6.0, 2.0])
    >>> pyplot().close(fig)
    """
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                  squeeze=False, **kwargs)
    return fig, axes.ravel()


def plot_spread(ax, x, values, *, label: str | None = None, color=None, alpha: float = 0.2, **line_kwargs):
    """Draw the mean over seeds of ``values`` (shape ``(n_seeds, len(x))``) and its range.

    The line is the mean, the shaded band spans the lowest to the highest seed. Returns
    the line (its colour is the band's).

    Examples
    --------
    >>> fig, (ax,) = subplots()
    >>> line = plot_spread(ax, [0, 1, 2], [[1.0, 0.5, 0.2], [1.2, 0.6, 0.3], [0.9, 0.4, 0.1]], label="loss")
    >>> line.get_label()
    'loss (3 seeds)'
    >>> pyplot().close(fig)
    """
    if not (hasattr(ax, "plot") and hasattr(ax, "fill_between")):
        raise TypeError(f"ax must be a matplotlib Axes, got {_short(ax)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0 <= float(alpha) <= 1:
        raise (TypeError if not isinstance(alpha, (int, float, np.integer, np.floating)) or isinstance(alpha, bool)
               else ValueError)(f"alpha must be a number in [0, 1], got {_short(alpha)}")
    x = as_array(x, "x", ndim=1, min_rows=1)
    values = as_array(values, "values", ndim=2, min_rows=1)
    if values.shape[1] != x.shape[0]:
        raise ValueError(f"values must have shape (n_seeds, {x.shape[0]}) to match x, got {values.shape}")
    n = values.shape[0]
    line, = ax.plot(x, values.mean(axis=0), color=color,
                    label=None if label is None else f"{label} ({n} seeds)", **line_kwargs)
    ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=alpha,
                    linewidth=0)
    return line
