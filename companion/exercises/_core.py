"""The machinery every exercise check uses.

A check runs the student's function against the reference on several inputs, prints one
line (pass, or the first thing that went wrong and a hint) and raises ``AssertionError``
on failure. When the environment variable ``COMPANION_RESULTS`` names a file, the check
also appends one JSON line to it::

    {"exercise": "nc-nc1", "points": 2, "passed": true, "score": 2, "message": "..."}

The grader (``python -m companion grade``) reads that file instead of scraping outputs,
so reordered or deleted cells cannot confuse it.

Writing a check::

    def check_nc1(student_nc1):
        with ExerciseCheck("nc-nc1", points=2, hint="Sigma_B^+ is a pseudo-inverse") as ex:
            for name, (H, y) in cases():
                got = ex.call(name, student_nc1, H, y)
                ex.expect_close(name, got, reference_nc1(H, y), rtol=1e-6)
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Callable

import numpy as np

__all__ = ["ExerciseCheck", "ExerciseFailed", "RESULTS_ENV", "registry", "register"]

RESULTS_ENV = "COMPANION_RESULTS"

#: exercise id -> (points, check function name); filled by :func:`register`.
registry: dict[str, dict] = {}


def register(exercise_id: str, points: int, chapter: str, implements: tuple[str, ...] = ()):
    """Decorator recording a check function in :data:`registry` (used by the grader).

    ``implements`` names the companion functions the exercise asks the student to write
    (dotted paths such as ``"companion.neural_collapse.nc_metrics"``): a student function
    that reaches one of them does not earn the points.
    """

    def wrap(fn):
        registry[exercise_id] = {"points": points, "chapter": chapter, "check": fn.__name__,
                                 "module": fn.__module__, "implements": tuple(implements)}
        fn.exercise_id = exercise_id
        fn.points = points
        return fn

    return wrap


class ExerciseFailed(Exception):
    """Raised inside a check when one case fails; turned into ``AssertionError`` on exit."""


def _to_numpy(value):
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(value, dtype=float)


class ExerciseCheck:
    """Context manager collecting the verdict of one exercise.

    Parameters
    ----------
    exercise_id : str
        The id used by the solution cell's metadata (e.g. ``"nc-nc1"``).
    points : int
        Points awarded when every case passes (all or nothing).
    hint : str
        One sentence shown when a case fails.
    """

    def __init__(self, exercise_id: str, points: int, hint: str = ""):
        self.exercise_id = exercise_id
        self.points = int(points)
        self.hint = hint
        self.cases_passed = 0

    # -- the assertions a check uses -------------------------------------------------
    def call(self, description: str, fn: Callable, *args, **kwargs):
        """Call the student's ``fn``; a stub or an exception fails the case with a message."""
        if not callable(fn):
            raise ExerciseFailed(f"expected a function, got {type(fn).__name__}")
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise ExerciseFailed("not attempted yet (the function still raises NotImplementedError)") from None
        except Exception as err:  # the student's bug, reported, not propagated
            where = traceback.extract_tb(err.__traceback__)[-1]
            raise ExerciseFailed(f"{description}: your function raised {type(err).__name__}: {err} "
                                 f"(line {where.lineno})") from None

    def expect_close(self, description: str, got, expected, *, rtol: float = 1e-6, atol: float = 1e-8):
        """Pass when ``got`` has ``expected``'s shape and values (``np.allclose``)."""
        try:
            got_arr = _to_numpy(got)
        except (TypeError, ValueError):
            raise ExerciseFailed(f"{description}: expected a number or an array, got {type(got).__name__}") from None
        exp_arr = _to_numpy(expected)
        if got_arr.shape != exp_arr.shape:
            raise ExerciseFailed(f"{description}: expected shape {exp_arr.shape}, got {got_arr.shape}")
        if not np.all(np.isfinite(got_arr)):
            raise ExerciseFailed(f"{description}: your result contains NaN or infinity")
        if not np.allclose(got_arr, exp_arr, rtol=rtol, atol=atol):
            if exp_arr.size == 1:
                detail = f"expected {exp_arr.item():.6g}, got {got_arr.item():.6g}"
            else:
                worst = np.argmax(np.abs(got_arr - exp_arr))
                detail = (f"largest difference at flat index {worst}: expected "
                          f"{exp_arr.ravel()[worst]:.6g}, got {got_arr.ravel()[worst]:.6g}")
            raise ExerciseFailed(f"{description}: {detail}")
        self.cases_passed += 1

    def expect_true(self, description: str, condition: bool, detail: str = ""):
        """Pass when ``condition`` holds."""
        if not bool(condition):
            raise ExerciseFailed(f"{description}" + (f": {detail}" if detail else ""))
        self.cases_passed += 1

    def expect_raises(self, description: str, fn: Callable, *args, exception=ValueError, **kwargs):
        """Pass when ``fn(*args, **kwargs)`` raises ``exception``."""
        try:
            fn(*args, **kwargs)
        except NotImplementedError:
            raise ExerciseFailed("not attempted yet (the function still raises NotImplementedError)") from None
        except exception:
            self.cases_passed += 1
            return
        except Exception as err:
            raise ExerciseFailed(f"{description}: expected {exception.__name__}, got "
                                 f"{type(err).__name__}: {err}") from None
        raise ExerciseFailed(f"{description}: expected {exception.__name__}, nothing was raised")

    # -- the verdict -------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            n = self.cases_passed
            passed, message = True, (f"all {n} checks passed" if n != 1 else "the check passed")
        elif issubclass(exc_type, ExerciseFailed):
            passed, message = False, str(exc)
        else:  # a bug in the check itself or an unexpected error: report, do not hide
            passed, message = False, f"the check could not run: {exc_type.__name__}: {exc}"
        self._record(passed, message)
        score = self.points if passed else 0
        if passed:
            print(f"[PASS] {self.exercise_id}: {message} ({score}/{self.points} points)")
            return False
        hint = f" Hint: {self.hint}" if self.hint else ""
        print(f"[FAIL] {self.exercise_id}: {message}.{hint} (0/{self.points} points)")
        raise AssertionError(f"{self.exercise_id}: {message}") from None

    def _record(self, passed: bool, message: str) -> None:
        path = os.environ.get(RESULTS_ENV)
        if not path:
            return
        row = {"exercise": self.exercise_id, "points": self.points, "passed": passed,
               "score": self.points if passed else 0, "message": message}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
