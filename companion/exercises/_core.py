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
too), also in a thread the function starts. Turning the watch off during the call
(``sys.setprofile``, another profiler) fails the case as well. Every other companion
function stays usable. This catches shortcuts, not a determined attack on the grader:
code copied out of the package is new code, and outside the grader (which calls
:func:`watch_new_threads` first) work handed to a thread started before the call is not
seen on Python < 3.12.

Two kinds of bad input are told apart: a mistake of the check's author (``points`` that
is not an int >= 1, a NaN ``rtol``, a non-finite or complex ``expected``, a ``condition``
that is not a bool) raises ``ValueError``/``TypeError`` naming the argument, while
whatever the student hands in (not a function, a string or complex result, NaN) fails
the case with a message.

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
import numbers
import os
import sys
import traceback
import warnings
from typing import Callable

import numpy as np

__all__ = ["ExerciseCheck", "ExerciseFailed", "RESULTS_ENV", "registry", "register",
           "forbidden_functions", "resolve_implements", "watch_new_threads"]

RESULTS_ENV = "COMPANION_RESULTS"

# ---------------------------------------------------------------------------------------
# The registry: which check grades which exercise
# ---------------------------------------------------------------------------------------

#: exercise id -> {"points", "chapter", "check", "module", "implements"}; filled by :func:`register`.
registry: dict[str, dict] = {}


def register(exercise_id: str, points: int, chapter: str, implements: tuple[str, ...] = ()):
    """Decorator recording a check function in :data:`registry` (used by the grader).

    ``points`` is an int >= 1; ``implements`` names the companion functions the exercise
    asks the student to write (dotted paths such as
    ``"companion.neural_collapse.nc_metrics"``, one name or a sequence of them; a class
    names all its methods): a student function that reaches one of them, by any path,
    fails the check (see :func:`forbidden_functions`).
    """
    exercise_id, chapter = _checked_text(exercise_id, "exercise_id"), _checked_text(chapter, "chapter")
    points, implements = _checked_points(points), _checked_implements(implements)

    def wrap(fn):
        registry[exercise_id] = {"points": points, "chapter": chapter, "check": fn.__name__,
                                 "module": fn.__module__, "implements": implements}
        _FORBIDDEN.pop(exercise_id, None)
        fn.exercise_id = exercise_id
        fn.points = points
        return fn

    return wrap


# ---------------------------------------------------------------------------------------
# What a solution must not reach: the course's own answer, watched with sys.setprofile
# ---------------------------------------------------------------------------------------

#: exercise id -> {code object: dotted name}, filled on first use by :func:`forbidden_functions`
_FORBIDDEN: dict[str, dict] = {}


def resolve_implements(name: str):
    """The object a dotted name such as ``"companion.scaling.compute_optimal"`` points to.

    The longest importable module prefix is imported and the rest is read as attributes
    (so ``"companion.sae.TopKSAE.encode"`` works). Raises ``ValueError`` naming the part
    that does not exist.
    """
    parts = _checked_text(name, "name").split(".")
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
    if getattr(obj, "__wrapped__", None) is not None:
        # a decorator's wrapper code is shared by every function it decorates (the
        # package's validate_params): only the wrapped function's own code identifies it
        return _code_objects(obj.__wrapped__, seen)
    codes = []
    code = getattr(obj, "__code__", None)
    if code is not None:
        codes.append(code)
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
    if _checked_text(exercise_id, "exercise_id") in _FORBIDDEN:
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


_ACTIVE: list = []          # the watches running now (innermost last), for other threads
_THREADS_WATCHED = [False]  # set by watch_new_threads(): the grader's kernel


def _thread_dispatch(frame, event, arg):
    """Profile function of every thread started after :func:`watch_new_threads`: it hands
    the event to the watch running now, if any (a near no-op otherwise)."""
    if _ACTIVE:
        _ACTIVE[-1]._hook(frame, event, arg)


def watch_new_threads() -> None:
    """Make every thread started from now on visible to the checks' watch.

    The grader calls it before the student's first cell, so that a student function
    handing the course's answer to a thread pool created earlier is seen (Python < 3.12
    cannot install a profile function in a running thread). A notebook that removes it
    (``threading.setprofile``) fails the next check that watches a call.
    """
    import threading

    threading.setprofile(_thread_dispatch)
    _THREADS_WATCHED[0] = True


class _Watch:
    """Context manager: while active, records every entry into one of ``codes`` (and the
    companion functions the call went through on its way there) with :func:`sys.setprofile`.
    The student's code runs to its end either way; the verdict is read afterwards.

    The watch also covers threads the call starts (:func:`threading.setprofile`; on
    Python 3.12+ every thread), and notices a call that turns it off: ``sys.setprofile``
    is guarded while it runs (a call to it re-installs the watch and counts as
    tampering), and the hook must still be in place when the call returns (a profiler
    such as ``cProfile`` replaces it). It catches shortcuts, not a determined attack on
    the grader (code copied out of the package is new code, for instance).
    """

    def __init__(self, codes: dict):
        self.codes = codes
        self.hits: list[tuple[str, list[str]]] = []
        self.tampered = ""

    def _hook(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:  # any thread
            path, caller = [], frame.f_back
            while caller is not None:
                module = caller.f_globals.get("__name__", "")
                if caller.f_code in self.codes:  # reached through another forbidden one
                    return
                if not module.startswith("companion.") or module.startswith("companion.exercises"):
                    break
                if module != "companion._validation":  # a decorator's wrapper, not a step of the path
                    path.append(f"{module}.{getattr(caller.f_code, 'co_qualname', caller.f_code.co_name)}")
                caller = caller.f_back
            hit = (self.codes[frame.f_code], path[::-1])
            if hit not in self.hits:
                self.hits.append(hit)
        if self.previous is not None:
            self.previous(frame, event, arg)

    def _guard(self, function):
        """Stands in for ``sys.setprofile`` during the call: the watch stays on (a thread the
        call starts installs the watch through it, which is no tampering)."""
        if function != self._hook:
            self.tampered = self.tampered or "sys.setprofile called"
        self._setprofile(self._hook)

    def __enter__(self):
        import threading

        self.previous = sys.getprofile() if self.codes else None
        if self.codes:
            self._setprofile, self._thread_hook = sys.setprofile, threading.getprofile()
            if _THREADS_WATCHED[0] and self._thread_hook is not _thread_dispatch:
                self.tampered = "threading.setprofile called"
            _ACTIVE.append(self)
            everywhere = getattr(threading, "setprofile_all_threads", None)  # Python 3.12+
            (everywhere or threading.setprofile)(self._hook)
            sys.setprofile = self._guard
            self._setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        if self.codes:
            import threading

            installed = sys.getprofile()
            sys.setprofile = self._setprofile
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            if _THREADS_WATCHED[0]:
                self._thread_hook = _thread_dispatch
            everywhere = getattr(threading, "setprofile_all_threads", None)
            if everywhere is not None:
                everywhere(self._thread_hook)
            else:
                threading.setprofile(self._thread_hook)
            sys.setprofile(self.previous)
            if installed != self._hook and not self.tampered:
                self.tampered = (f"replaced by {type(installed).__name__}" if installed is not None
                                 else "removed by a profiler")
        return False

    def message(self) -> str:
        if not self.hits:  # only tampering
            return (f"your function switched off the grader's watch ({self.tampered}), which checks that "
                    "it does not call the course's own implementation; remove that call")
        name, path = self.hits[0]
        via = f" (through {' -> '.join(path)})" if path else ""
        return (f"your function calls {name}{via}, the course's own implementation of what this "
                "exercise asks you to write; write it yourself (other companion functions are fine)")


class ExerciseFailed(Exception):
    """Raised inside a check when one case fails; turned into ``AssertionError`` on exit."""


# ---------------------------------------------------------------------------------------
# Argument checks. Numpy only: a check module imports without torch (a tensor can exist
# only if torch is imported already), so these do not use companion._validation.
# ---------------------------------------------------------------------------------------

def _checked_text(value, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _checked_points(points) -> int:
    if isinstance(points, bool) or not isinstance(points, numbers.Integral):
        raise TypeError(f"points must be an int >= 1, got {points!r}")
    if points < 1:
        raise ValueError(f"points must be an int >= 1, got {points!r}")
    return int(points)


def _checked_tolerance(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {value!r}")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite real number >= 0, got {value!r}")
    return float(value)


def _checked_implements(implements) -> tuple:
    """``implements`` as a tuple of dotted names (one name allowed)."""
    if isinstance(implements, str):
        implements = (implements,)
    if not isinstance(implements, (list, tuple, set, frozenset)):
        raise TypeError(f"implements must be a dotted name or a sequence of them, got {implements!r}")
    for name in implements:
        if not isinstance(name, str) or "." not in name:
            raise ValueError(f"implements must be dotted names such as 'companion.scaling.compute_optimal', "
                             f"got {name!r}")
    return tuple(implements)


def _checked_exception(exception):
    """An exception class, or a non-empty tuple of them (what ``except`` accepts)."""
    classes = exception if isinstance(exception, tuple) and exception else (exception,)
    if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        raise TypeError(f"exception must be an exception class (such as ValueError) or a tuple of them, "
                        f"got {exception!r}")
    return exception


def _checked_condition(condition) -> bool:
    """A verdict: a bool, or a bool array / tensor with one entry."""
    if isinstance(condition, (bool, np.bool_)):
        return bool(condition)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(condition, torch.Tensor):
        condition = condition.detach().cpu().numpy()
    if isinstance(condition, np.ndarray) and condition.dtype == bool and condition.size == 1:
        return bool(condition.item())
    raise TypeError(f"condition must be a bool (reduce an array with all() or any()), got "
                    f"{type(condition).__name__}")


def _real_values(value, name: str) -> np.ndarray:
    """``value`` (a number, array, tensor or nested list) as a float64 array; ``TypeError``
    naming ``name`` when it is something else or complex."""
    torch = sys.modules.get("torch")  # a tensor exists only if torch is imported already
    if torch is not None and isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        return value.detach().cpu().double().numpy()
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
        if arr.dtype.kind == "O":  # e.g. a list of 0-d tensors
            arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__}") from None
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex values")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__} "
                        f"of dtype {arr.dtype}")
    return arr.astype(np.float64)


def _student_callable(description, fn) -> None:
    """The student's function must be callable: else the case fails (their answer)."""
    if not callable(fn):
        raise ExerciseFailed(f"{description}: expected a function, got {type(fn).__name__}")


# ---------------------------------------------------------------------------------------
# The check: cases, assertions and the verdict
# ---------------------------------------------------------------------------------------

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

    implements : str or sequence of str, optional
        Dotted names of functions the student's function must not reach; by default
        those registered for ``exercise_id`` (see :func:`forbidden_functions`).
    """

    def __init__(self, exercise_id: str, points: int, hint: str = "", implements=None):
        self.exercise_id = _checked_text(exercise_id, "exercise_id")
        self.points = _checked_points(points)
        if not isinstance(hint, str):
            raise TypeError(f"hint must be a str, got {type(hint).__name__}")
        self.hint = hint
        self.cases_passed = 0
        if implements is None:
            self.forbidden = forbidden_functions(exercise_id)
        else:
            self.forbidden = {code: name for name in _checked_implements(implements)
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
            if watch.hits or watch.tampered:
                raise ExerciseFailed(f"{description}: {watch.message()}") from None
            raise
        if watch.hits or watch.tampered:
            raise ExerciseFailed(f"{description}: {watch.message()}")
        return result

    # -- the assertions a check uses -------------------------------------------------
    def call(self, description: str, fn: Callable, *args, **kwargs):
        """Call the student's ``fn``; a stub or an exception fails the case with a message."""
        _student_callable(description, fn)
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
        """Pass when ``got`` has ``expected``'s shape and values (``np.allclose``).

        ``expected`` (the check's reference) must be real and finite, ``rtol`` and ``atol``
        finite and >= 0 (else ``ValueError``/``TypeError`` naming them); a ``got`` that is
        not a real number or array, or holds NaN or inf, fails the case.
        """
        rtol, atol = _checked_tolerance(rtol, "rtol"), _checked_tolerance(atol, "atol")
        exp_arr = _real_values(expected, "expected")
        if not np.all(np.isfinite(exp_arr)):
            raise ValueError("expected must contain only finite values (no NaN or inf)")
        try:
            got_arr = _real_values(got, "got")
        except TypeError:
            raise ExerciseFailed(f"{description}: expected real numbers (a number or an array), got "
                                 f"{type(got).__name__}") from None

        if got_arr.shape != exp_arr.shape:
            raise ExerciseFailed(f"{description}: expected shape {exp_arr.shape}, got {got_arr.shape}")
        if not np.all(np.isfinite(got_arr)):
            raise ExerciseFailed(f"{description}: your result contains NaN or infinity")
        if not np.allclose(got_arr, exp_arr, rtol=rtol, atol=atol):
            if exp_arr.size == 1:
                detail = f"expected {exp_arr.item():.6g}, got {got_arr.item():.6g}"
            else:
                with np.errstate(over="ignore"):
                    worst = np.argmax(np.abs(got_arr - exp_arr))
                detail = (f"largest difference at flat index {worst}: expected "
                          f"{exp_arr.ravel()[worst]:.6g}, got {got_arr.ravel()[worst]:.6g}")
            raise ExerciseFailed(f"{description}: {detail}")
        self.cases_passed += 1

    def expect_true(self, description: str, condition: bool, detail: str = ""):
        """Pass when ``condition`` holds: a bool (or a one-entry bool array or tensor);
        anything else is a ``TypeError`` naming ``condition``."""
        if not _checked_condition(condition):
            raise ExerciseFailed(f"{description}" + (f": {detail}" if detail else ""))
        self.cases_passed += 1

    def expect_raises(self, description: str, fn: Callable, *args, exception=ValueError, **kwargs):
        """Pass when the student's ``fn(*args, **kwargs)`` raises ``exception`` (an exception
        class or a tuple of them)."""
        exception = _checked_exception(exception)
        expected = exception.__name__ if isinstance(exception, type) else \
            " or ".join(e.__name__ for e in exception)
        _student_callable(description, fn)
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
            raise ExerciseFailed(f"{description}: expected {expected}, got "
                                 f"{type(err).__name__}: {err}") from None
        raise ExerciseFailed(f"{description}: expected {expected}, nothing was raised")

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
