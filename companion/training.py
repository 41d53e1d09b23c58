"""The one small training loop the chapters share: seeds, device, progress bar, history.

A chapter writes a ``step(i)`` function that does one optimisation step and returns a
dict of numbers (loss, accuracy, ...); :func:`train_loop` calls it, shows a progress bar,
and records everything in a :class:`History`, which turns each logged quantity into an
array for plotting::

    history = train_loop(step, num_steps=1000, evaluate=metrics, eval_every=50)
    plt.semilogy(history.steps("nc1"), history["nc1"])

Progress bars come from ``tqdm.auto`` (a widget in Jupyter, text elsewhere) and are
silenced when the environment variable ``COMPANION_NO_PROGRESS=1`` is set (the tests and
the book build set it, so outputs are stable).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import random
from typing import Callable, Iterable, Mapping

import numpy as np
import torch

from ._validation import _short, check_int

__all__ = ["SEED_ENV", "THREADS_ENV", "base_seed", "set_seed", "seeds", "set_threads", "thread_limit",
           "get_device", "progress", "progress_enabled", "History", "train_loop", "run_seeds"]

#: The environment variable holding the base seed of every chapter (default 0).
SEED_ENV = "COMPANION_SEED"
#: The environment variable that overrides the number of torch threads a chapter uses.
THREADS_ENV = "COMPANION_THREADS"


def _env_int(variable: str, default: int, minimum: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"the environment variable {variable} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"the environment variable {variable} must be >= {minimum}, got {value}")
    return value


def base_seed() -> int:
    """The base seed of a chapter: ``COMPANION_SEED`` from the environment, default 0.

    ``make robust`` re-runs every chapter with ``COMPANION_SEED=1`` and ``=2``: a claim
    that holds only at the default seed is not a claim.
    """
    return _env_int(SEED_ENV, 0, 0)


def set_seed(seed: int | None = None) -> int:
    """Seed Python's ``random``, numpy and torch (CPU and CUDA) so runs repeat exactly.

    Parameters
    ----------
    seed : int, optional
        The seed; by default :func:`base_seed` (``COMPANION_SEED``, default 0).

    Returns the seed, so a notebook can print what it used and derive the others from it.
    """
    seed = base_seed() if seed is None else check_int(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


def seeds(n: int, base: int | None = None) -> list[int]:
    """``n`` seeds for the independent runs behind one claim, derived from the base seed.

    Seed ``k`` of base ``b`` is ``1000 b + k``, so the default base 0 gives ``0, 1, 2, ...``
    and the seed sets of different bases never overlap.

    >>> seeds(3, base=0), seeds(3, base=2)
    ([0, 1, 2], [2000, 2001, 2002])
    """
    n = check_int(n, "n", minimum=1)
    base = base_seed() if base is None else check_int(base, "base", minimum=0)
    return [1000 * base + k for k in range(n)]


def set_threads(default: int | None = None) -> int:
    """Set the number of torch threads: ``COMPANION_THREADS`` if set, else ``default``.

    ``default`` is ``min(2, number of CPUs)`` when not given. Chapters whose models are
    tiny pass ``1`` (a second thread costs more in synchronisation than it saves);
    ``make robust`` sets ``COMPANION_THREADS=2`` so that the checked claims are also run
    with another thread count, hence other floating-point reductions. Returns the number.
    """
    if default is None:
        default = min(2, os.cpu_count() or 1)
    default = check_int(default, "default", minimum=1)
    threads = _env_int(THREADS_ENV, default, 1)
    torch.set_num_threads(threads)
    return threads


class thread_limit(contextlib.ContextDecorator):
    """Run small dense work on few threads (torch, BLAS and OpenMP), restored afterwards.

    The fits and tiny models of the course work on arrays of a few hundred entries, where
    multithreaded kernels only add synchronisation: on a shared machine one thread is
    several times faster. Use it as ``with thread_limit():`` or as a decorator
    ``@thread_limit()``. The limit is ``threads`` when given, else ``COMPANION_THREADS``
    when set, else 1.
    """

    def __init__(self, threads: int | None = None):
        self.threads = None if threads is None else check_int(threads, "threads", minimum=1)

    def __enter__(self):
        from threadpoolctl import threadpool_limits

        limit = self.threads if self.threads is not None else _env_int(THREADS_ENV, 1, 1)
        self._previous = torch.get_num_threads()
        torch.set_num_threads(limit)
        self._pool = threadpool_limits(limits=limit)
        return self

    def __exit__(self, *exc):
        self._pool.restore_original_limits()
        torch.set_num_threads(self._previous)
        return False


def get_device(prefer_gpu: bool = True) -> torch.device:
    """The device the chapters compute on: CUDA when present and wanted, else the CPU.

    Nothing in the course requires a GPU; the numbers printed in the book are computed on
    the CPU (``COMPANION_DEVICE=cpu`` forces it).
    """
    if not isinstance(prefer_gpu, (bool, np.bool_)):
        raise TypeError(f"prefer_gpu must be a bool, got {_short(prefer_gpu)}")
    forced = os.environ.get("COMPANION_DEVICE")
    if forced:
        return torch.device(forced)
    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def progress_enabled() -> bool:
    """False when ``COMPANION_NO_PROGRESS`` is set to a true value."""
    return os.environ.get("COMPANION_NO_PROGRESS", "").lower() not in {"1", "true", "yes"}


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             disable: bool | None = None, **kwargs):
    """A ``tqdm.auto`` progress bar that the tests and the book build can silence."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not progress_enabled()
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False, **kwargs)


class History:
    """Everything a training run logged, step by step.

    ``history["loss"]`` is a numpy array of the logged values and ``history.steps("loss")``
    the steps at which they were logged (quantities evaluated every ``k`` steps have their
    own steps).
    """

    def __init__(self):
        self._values: dict[str, list[float]] = {}
        self._steps: dict[str, list[int]] = {}

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Record ``values`` (a mapping of names to numbers) at ``step``.

        A value may be a number, a one-element tensor or None (logged as NaN: "not measured
        at this step"); anything else raises ``TypeError`` naming it.
        """
        step = check_int(step, "step", minimum=0)
        if not isinstance(values, Mapping):
            raise TypeError(f"values must be a mapping of names to numbers, got {_short(values)}")
        row = {}
        for key, value in values.items():
            if isinstance(value, (torch.Tensor, np.ndarray)):
                if value.size != 1 if isinstance(value, np.ndarray) else value.numel() != 1:
                    raise ValueError(f"values[{key!r}] must be a number, got shape {tuple(value.shape)}")
                value = value.detach().cpu().item() if isinstance(value, torch.Tensor) else value.item()
            if value is not None and (isinstance(value, (complex, np.complexfloating))
                                      or not isinstance(value, (numbers.Real, np.number, np.bool_))):
                raise TypeError(f"values[{key!r}] must be a number or None, got {_short(value)}")
            row[key] = float(value) if value is not None else np.nan
        for key, value in row.items():
            self._values.setdefault(key, []).append(value)
            self._steps.setdefault(key, []).append(step)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._values:
            raise KeyError(f"nothing logged under {key!r}; logged: {sorted(self._values)}")
        return np.asarray(self._values[key])

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def steps(self, key: str) -> np.ndarray:
        """The steps at which ``key`` was logged."""
        if key not in self._steps:
            raise KeyError(f"nothing logged under {key!r}; logged: {sorted(self._values)}")
        return np.asarray(self._steps[key])

    def last(self, key: str) -> float:
        """The last logged value of ``key``."""
        return float(self[key][-1])

    def keys(self):
        return self._values.keys()

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}[{len(v)}]" for k, v in self._values.items())
        return f"History({parts})"


def train_loop(step: Callable[[int], Mapping[str, float] | None], num_steps: int, *,
               evaluate: Callable[[int], Mapping[str, float]] | None = None,
               eval_every: int = 1, eval_at: Iterable[int] | None = None,
               desc: str = "training", show_progress: bool | None = None,
               history: History | None = None) -> History:
    """Run ``step(i)`` for ``i = 0 .. num_steps - 1`` with a progress bar and a history.

    Parameters
    ----------
    step : callable
        ``step(i)`` performs one optimisation step and returns a dict of numbers to log
        (or None).
    num_steps : int
        Number of steps.
    evaluate : callable, optional
        ``evaluate(i)`` returns a dict of (more expensive) quantities. It is called before
        the first step (logged at step 0), then after step ``i`` (logged at ``i + 1``)
        whenever ``i + 1`` is a multiple of ``eval_every`` or belongs to ``eval_at``.
    eval_every : int
        Evaluation period in steps (default 1).
    eval_at : iterable of int, optional
        Extra steps at which to evaluate (e.g. a log-spaced grid).
    desc : str
        Progress bar label.
    show_progress : bool, optional
        Force the bar on or off (default: on unless ``COMPANION_NO_PROGRESS`` is set).
    history : History, optional
        Continue logging into an existing history.

    Returns
    -------
    History
    """
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    eval_every = check_int(eval_every, "eval_every", minimum=1)
    if not callable(step):
        raise TypeError(f"step must be callable, got {type(step).__name__}")
    if evaluate is not None and not callable(evaluate):
        raise TypeError(f"evaluate must be callable, got {type(evaluate).__name__}")
    extra = set(int(s) for s in eval_at) if eval_at is not None else set()
    history = History() if history is None else history
    if evaluate is not None:
        history.log(0, evaluate(0))
    disable = None if show_progress is None else not show_progress
    with progress(total=num_steps, desc=desc, disable=disable) as bar:
        for i in range(num_steps):
            values = step(i)
            if values:
                history.log(i + 1, values)
            if evaluate is not None and ((i + 1) % eval_every == 0 or (i + 1) in extra):
                history.log(i + 1, evaluate(i + 1))
            bar.update(1)
            if values and "loss" in values:
                bar.set_postfix(loss=f"{float(values['loss']):.4g}", refresh=False)
    return history


def run_seeds(run: Callable[[int], object], seed_list: Iterable[int], *, desc: str = "seeds") -> list:
    """``[run(seed) for seed in seed_list]`` with a progress bar: the runs behind one claim.

    Prefer training the seeds together (one model with a batch dimension over independent
    copies) where the chapter's model allows it; this is the plain loop for the rest.
    """
    if not callable(run):
        raise TypeError(f"run must be callable, got {type(run).__name__}")
    if isinstance(seed_list, (str, bytes)) or not isinstance(seed_list, Iterable):
        raise TypeError(f"seed_list must be a sequence of seeds, got {_short(seed_list)}")
    seed_list = [check_int(s, "seed_list", minimum=0) for s in seed_list]
    if not seed_list:
        raise ValueError("seed_list must contain at least one seed")
    return [run(seed) for seed in progress(seed_list, desc=desc)]
