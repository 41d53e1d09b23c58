"""The machinery every exercise check uses.

A check runs the student's function against the reference on several inputs, prints one
line (pass, or the first thing that went wrong and a hint) and raises ``AssertionError``
on failure. When the environment variable ``COMPANION_RESULTS`` names a file, the check
also appends one JSON line to it::

    {"exercise": "nc-nc1", "points": 2, "passed": true, "score": 2, "message": "..."}

The grader (``python -m companion grade``) reads that file instead of scraping outputs,
so reordered or deleted cells cannot confuse it.

A check cannot be passed by calling the course's own answer: ``register(...,
implements=(...))`` names the companion functions the exercise asks the student to write,
and while :meth:`ExerciseCheck.call` runs the student's function a profiler hook
(:func:`sys.setprofile`) watches for the code objects of those functions, and of the
``reference_*`` functions of the check's own module. Reaching any of them fails the case
with a message naming the function and the path, however it was reached: a direct call,
an alias (``from companion.scaling import compute_optimal as co``), a module attribute
(``scaling.compute_optimal``), or another function (the student's helper, or another
companion function that calls it internally: that is the same answer, so it counts
too). Every other companion function stays usable.

Writing a check::

    def check_nc1(student_nc1):
        with ExerciseCheck("nc-nc1", points=2, hint="Sigma_B^+ is a pseudo-inverse") as ex:
            for name, (H, y) in cases():
                got = ex.call(name, student_nc1, H, y)
                ex.expect_close(name, got, reference_nc1(H, y), rtol=1e-6)
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import sys
import traceback
import warnings
from typing import Callable

import numpy as np

__all__ = ["ExerciseCheck", "ExerciseFailed", "RESULTS_ENV", "registry", "register",
           "forbidden_functions", "resolve_implements"]

RESULTS_ENV = "COMPANION_RESULTS"

#: exercise id -> (points, check function name); filled by :func:`register`.
registry: dict[str, dict] = {}


def register(exercise_id: str, points: int, chapter: str, implements: tuple[str, ...] = ()):
    """Decorator recording a check function in :data:`registry` (used by the grader).

    ``implements`` names the companion functions the exercise asks the student to write
    (dotted paths such as ``"companion.neural_collapse.nc_metrics"``; a class names all
    its methods): a student function that reaches one of them, by any path, fails the
    check (see :func:`forbidden_functions`).
    """
    if isinstance(implements, str):
        implements = (implements,)
    for name in implements:
        if not isinstance(name, str) or "." not in name:
            raise ValueError(f"implements must be dotted names such as 'companion.scaling.compute_optimal', "
                             f"got {name!r}")

    def wrap(fn):
        registry[exercise_id] = {"points": points, "chapter": chapter, "check": fn.__name__,
                                 "module": fn.__module__, "implements": tuple(implements)}
        _FORBIDDEN.pop(exercise_id, None)
        fn.exercise_id = exercise_id
        fn.points = points
        return fn

    return wrap


#: exercise id -> {code object: dotted name}, filled on first use by :func:`forbidden_functions`
_FORBIDDEN: dict[str, dict] = {}


def resolve_implements(name: str):
    """The object a dotted name such as ``"companion.scaling.compute_optimal"`` points to.

    The longest importable module prefix is imported and the rest is read as attributes
    (so ``"companion.sae.TopKSAE.encode"`` works). Raises ``ValueError`` naming the part
    that does not exist.
    """
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ValueError(f"implements name {name!r}: {'.'.join(parts[:cut])} has no "
                                 f"attribute {attr!r}") from None
        return obj
    raise ValueError(f"implements name {name!r}: no importable module in it")


def _code_objects(obj, seen=None) -> list:
    """The code objects that running ``obj`` enters first: a function's own code (through
    decorators and ``functools.wraps``), every method of a class, a property's accessors."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, (staticmethod, classmethod)):
        return _code_objects(obj.__func__, seen)
    if isinstance(obj, property):
        return [c for f in (obj.fget, obj.fset, obj.fdel) if f is not None for c in _code_objects(f, seen)]
    if isinstance(obj, functools.partial):
        return _code_objects(obj.func, seen)
    if inspect.isclass(obj):
        return [c for member in vars(obj).values() for c in _code_objects(member, seen)]
    codes = []
    code = getattr(obj, "__code__", None)
    if code is not None:
        codes.append(code)
    if getattr(obj, "__wrapped__", None) is not None:
        codes += _code_objects(obj.__wrapped__, seen)
    if inspect.ismethod(obj):
        codes += _code_objects(obj.__func__, seen)
    return codes


def forbidden_functions(exercise_id: str) -> dict:
    """The functions a student's solution of ``exercise_id`` must not reach.

    They are the functions named by ``register(..., implements=...)`` and the
    ``reference_*`` functions of the module that holds the exercise's check (the check's
    own answer; outside the grader a check called with such a reference function itself
    passes, so that unit tests can hand it in). Returns ``{code object: dotted name}``; names that do not resolve are
    skipped with a warning (``tests/test_exercises_core.py`` fails on them).
    """
    if exercise_id in _FORBIDDEN:
        return _FORBIDDEN[exercise_id]
    info = registry.get(exercise_id)
    found: dict = {}
    if info is not None:
        for name in info.get("implements", ()):
            try:
                obj = resolve_implements(name)
            except ValueError as err:
                warnings.warn(str(err), stacklevel=2)
                continue
            for code in _code_objects(obj):
                found.setdefault(code, name)
        module = sys.modules.get(info.get("module", ""))
        for attr, obj in vars(module).items() if module is not None else ():
            if attr.startswith("reference_") and callable(obj) and \
                    getattr(obj, "__module__", None) == module.__name__:
                for code in _code_objects(obj):
                    found.setdefault(code, f"{module.__name__}.{attr}")
    _FORBIDDEN[exercise_id] = found
    return found


class _Watch:
    """Context manager: while active, records every entry into one of ``codes`` (and the
    companion functions the call went through on its way there) with :func:`sys.setprofile`.
    The student's code runs to its end either way; the verdict is read afterwards."""

    def __init__(self, codes: dict):
        self.codes = codes
        self.hits: list[tuple[str, list[str]]] = []

    def _hook(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:
            path, caller = [], frame.f_back
            while caller is not None:
                module = caller.f_globals.get("__name__", "")
                if caller.f_code in self.codes:  # reached through another forbidden one
                    return
                if not module.startswith("companion.") or module.startswith("companion.exercises"):
                    break
                path.append(f"{module}.{getattr(caller.f_code, 'co_qualname', caller.f_code.co_name)}")
                caller = caller.f_back
            hit = (self.codes[frame.f_code], path[::-1])
            if hit not in self.hits:
                self.hits.append(hit)
        if self.previous is not None:
            self.previous(frame, event, arg)

    def __enter__(self):
        self.previous = sys.getprofile() if self.codes else None
        if self.codes:
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        if self.codes:
            sys.setprofile(self.previous)
        return False

    def message(self) -> str:
        name, path = self.hits[0]
        via = f" (through {' -> '.join(path)})" if path else ""
        return (f"your function calls {name}{via}, the course's own implementation of what this "
                "exercise asks you to write; write it yourself (other companion functions are fine)")


class ExerciseFailed(Exception):
    """Raised inside a check when one case fails; turned into ``AssertionError`` on exit."""


def _to_numpy(value):
    torch = sys.modules.get("torch")  # a tensor exists only if torch is imported already
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
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

    implements : sequence of str, optional
        Dotted names of functions the student's function must not reach; by default
        those registered for ``exercise_id`` (see :func:`forbidden_functions`).
    """

    def __init__(self, exercise_id: str, points: int, hint: str = "", implements=None):
        self.exercise_id = exercise_id
        self.points = int(points)
        self.hint = hint
        self.cases_passed = 0
        if implements is None:
            self.forbidden = forbidden_functions(exercise_id)
        else:
            self.forbidden = {code: name for name in ([implements] if isinstance(implements, str) else implements)
                              for code in _code_objects(resolve_implements(name))}

    def _run(self, description, fn, args, kwargs):
        """Call ``fn`` watched: reaching a forbidden function fails the case afterwards."""
        forbidden = self.forbidden
        own = getattr(fn, "__code__", None)
        if own in forbidden and ".reference_" in forbidden[own] and not os.environ.get(RESULTS_ENV):
            # the check's own reference handed in as such (the unit tests do this); under
            # the grader, where RESULTS_ENV is set, it counts as the shortcut it is
            forbidden = {c: n for c, n in forbidden.items() if c is not own}
        watch = _Watch(forbidden)
        try:
            with watch:
                result = fn(*args, **kwargs)
        except Exception:
            if watch.hits:
                raise ExerciseFailed(f"{description}: {watch.message()}") from None
            raise
        if watch.hits:
            raise ExerciseFailed(f"{description}: {watch.message()}")
        return result

    # -- the assertions a check uses -------------------------------------------------
    def call(self, description: str, fn: Callable, *args, **kwargs):
        """Call the student's ``fn``; a stub or an exception fails the case with a message."""
        if not callable(fn):
            raise ExerciseFailed(f"expected a function, got {type(fn).__name__}")
        try:
            return self._run(description, fn, args, kwargs)
        except ExerciseFailed:
            raise
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
            self._run(description, fn, args, kwargs)
        except ExerciseFailed:
            raise
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
