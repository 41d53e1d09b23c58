"""Input validation shared by every module of the companion.

Every public function of the package checks its inputs with these helpers, so that bad
input fails early with a ``ValueError`` or ``TypeError`` whose message names the
argument and says what was expected (the scikit-learn convention).

Two ways to use them:

- the small imperative checks (:func:`as_array`, :func:`as_labels`, :func:`check_int`,
  ...), which also convert;
- a declaration of every parameter's constraints, checked at the function's entry by
  :func:`validate_params` (a decorator) or :func:`check_params` (a call, for ``__init__``
  and ``__post_init__``), in the spirit of scikit-learn's ``_parameter_constraints``. The
  declaration sits above the function, so its body reads like the paper::

      @validate_params({
          "features": [Array(ndim=2, shape=("n", "d"))],
          "labels": [Labels(high="num_classes", shape=("n",))],
          "num_classes": [Interval(int, 2, None)],
          "reduction": [Options({"mean", "sum"})],
          "weights": [Array(ndim=1, shape=("n",)), None],
      })
      def nc1(features, labels, num_classes, reduction="mean", weights=None): ...

  A parameter is valid when it satisfies any one of its constraints. A value of a type
  that no constraint accepts raises ``TypeError``; a value of an accepted type that
  breaks the constraint (out of range, NaN, wrong shape) raises ``ValueError``. Both
  messages start with the parameter's name.

Constraints (see each class): ``None``; a Python type (``int`` excludes ``bool``,
``float`` accepts any real number); ``"callable"``, ``"boolean"``, ``"string"``;
:class:`Interval` (ints or reals in a range; NaN and, unless allowed, inf are rejected);
:class:`Options` (one of a set of values); :class:`Array` (numpy array, torch tensor or
nested list: number of dimensions, dtype kind, finiteness, magnitude, shape, size;
complex values are rejected unless ``dtype="complex"``); :class:`Labels` and
:class:`TokenIds` (integer arrays with every entry in ``[0, high)``, ``high`` an int, the
name of another parameter, ``"self.<attribute>"`` or a callable of the bound arguments).
Symbolic shape entries (``shape=("n", "d")``) bind to the first array that names them, so
mismatched arrays are reported naming the second one; a symbol that is also an integer
parameter (``"num_classes"``) takes that parameter's value.

Numerical routines that could hang: LAPACK (``eigh``, ``lstsq``, ``svd``) can spin for
minutes on non-finite input and iterative searches never converge on values near the
float limit. Guard them at the entry: ``Array(finite=True)`` (the default) rejects NaN and
inf, ``Array(max_abs=...)`` (or :func:`check_magnitude`) rejects values whose squares or
products overflow, and every iterative loop has an explicit iteration cap
(``max_iter``) and raises when it is reached instead of looping on.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from typing import Any, Callable, Iterable, Mapping

import numpy as np

try:  # torch is a dependency, but keep the validation importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = [
    "is_tensor",
    "as_array",
    "as_tensor",
    "as_labels",
    "check_int",
    "check_positive",
    "check_nonnegative",
    "check_fraction",
    "check_choice",
    "check_magnitude",
    "Interval",
    "Options",
    "Array",
    "Labels",
    "TokenIds",
    "validate_params",
    "check_params",
]


def is_tensor(x) -> bool:
    """True when ``x`` is a ``torch.Tensor``."""
    return torch is not None and isinstance(x, torch.Tensor)


def as_array(x, name: str, *, ndim: int | Iterable[int] | None = None,
             dtype=np.float64, finite: bool = True, min_rows: int | None = None,
             allow_complex: bool = False) -> np.ndarray:
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
    allow_complex : bool
        Accept complex values (default False: a complex input raises ``TypeError`` instead
        of losing its imaginary part in the conversion to a real dtype).

    Raises
    ------
    TypeError
        If ``x`` is not array-like (a string, a dict, None, ...) or is complex.
    ValueError
        If the shape or the values are not as required.
    """
    allowed = _ndims(ndim)
    finite, allow_complex = _flag(finite, "finite"), _flag(allow_complex, "allow_complex")
    min_rows = _optional_int(min_rows, "min_rows")
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a numpy dtype or None, got {_short(dtype)}") from None
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if is_tensor(x):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.numpy()
    if not allow_complex and _is_complex(x):
        raise TypeError(f"{name} must be real, got complex values")
    try:
        arr = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric array-like, got {type(x).__name__}: {err}") from None
    if allowed is not None:
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimension(s), got shape {arr.shape}")
    if min_rows is not None and (arr.ndim == 0 or arr.shape[0] < min_rows):
        raise ValueError(f"{name} must have at least {min_rows} rows, got shape {arr.shape}")
    if finite and np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_tensor(x, name: str, *, ndim: int | Iterable[int] | None = None, dtype=None,
              finite: bool = True):
    """Convert a tensor, numpy array or nested list to a floating torch tensor and validate it.

    The one tensor conversion of the package (the chapter modules import it). A tensor
    keeps its device, its autograd graph and its floating dtype (integer and bool tensors
    become ``dtype``); anything else goes through :func:`as_array` and becomes a CPU tensor.

    Parameters
    ----------
    x : torch.Tensor or array-like
        The value to convert.
    name : str
        The argument's name, used in error messages.
    ndim : int or iterable of int, optional
        Allowed numbers of dimensions.
    dtype : torch dtype, optional
        The dtype of converted input (default ``torch.float64``); a floating tensor keeps
        its own.
    finite : bool
        Reject NaN and infinite entries (default True).

    Raises
    ------
    TypeError
        If ``x`` is not array-like or is complex.
    ValueError
        If the number of dimensions or the values are not as required.

    Examples
    --------
    >>> as_tensor([[1, 2], [3, 4]], "x", ndim=2).dtype
    torch.float64
    >>> as_tensor(torch.ones(3), "x", ndim=2)
    Traceback (most recent call last):
    ...
    ValueError: x must have 2 dimension(s), got shape (3,)
    """
    dtype = torch.float64 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype, got {_short(dtype)}")
    finite = _flag(finite, "finite")
    if not is_tensor(x):
        return torch.from_numpy(as_array(x, name, ndim=ndim, finite=finite)).to(dtype)
    allowed = _ndims(ndim)
    if x.is_complex():
        raise TypeError(f"{name} must be real, got complex values")
    if allowed is not None and x.ndim not in allowed:
        want = " or ".join(str(a) for a in allowed)
        raise ValueError(f"{name} must have {want} dimension(s), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(dtype)
    if finite and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _flag(value, name: str) -> bool:
    """A bool argument of a validator (``finite``, ``inclusive``, ...)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_short(value)}")
    return bool(value)


def _optional_int(value, name: str, minimum: int = 0):
    """An int argument of a validator that may be None (``min_rows``, ``n``, ...)."""
    return None if value is None else check_int(value, name, minimum=minimum)


def _optional_real(value, name: str):
    """A finite real argument of a validator that may be None (bounds)."""
    return None if value is None else _check_real(value, name)


def _ndims(ndim, name: str = "ndim"):
    """``ndim`` as a tuple of allowed numbers of dimensions (or None)."""
    if ndim is None:
        return None
    if isinstance(ndim, (numbers.Integral, np.integer)) and not isinstance(ndim, bool):
        return (check_int(ndim, name, minimum=0),)
    if isinstance(ndim, (str, bytes)) or not isinstance(ndim, Iterable):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {_short(ndim)}")
    values = tuple(check_int(d, name, minimum=0) for d in ndim)
    if not values:
        raise ValueError(f"{name} must name at least one number of dimensions")
    return values


def _is_complex(x) -> bool:
    """True for complex scalars, arrays, tensors and nested lists holding a complex entry."""
    if is_tensor(x):
        return bool(x.is_complex())
    if isinstance(x, (complex, np.complexfloating)):
        return True
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "c"
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x).dtype.kind == "c"
        except (TypeError, ValueError):
            return any(_is_complex(v) for v in x)
    return False


def as_labels(y, name: str = "labels", *, n: int | None = None,
              num_classes: int | None = None) -> np.ndarray:
    """Validate integer class labels in ``{0, ..., num_classes - 1}``.

    Raises ``ValueError`` when the labels are not a 1-D integer array, do not have ``n``
    entries, are negative, or reach ``num_classes``.
    """
    n = _optional_int(n, "n")
    num_classes = _optional_int(num_classes, "num_classes", minimum=1)
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
    for bound, label in ((minimum, "minimum"), (maximum, "maximum")):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (numbers.Integral, np.integer))):
            raise TypeError(f"{label} must be an integer or None, got {_short(bound)}")
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
    inclusive = _flag(inclusive, "inclusive")
    ok = 0 <= value <= 1 if inclusive else 0 < value < 1
    if not ok:
        interval = "[0, 1]" if inclusive else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
        raise TypeError(f"choices must be a sequence of allowed values, got {_short(choices)}")
    choices = tuple(choices)
    try:
        ok = any(value is c or (type(value) is type(c) and value == c) for c in choices)
    except (TypeError, ValueError):  # arrays and other values without a plain ==
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {choices}, got {_short(value)}")
    return value


def check_magnitude(x, name: str, max_abs: float) -> None:
    """Raise ``ValueError`` when an entry of ``x`` exceeds ``max_abs`` in absolute value.

    For numerical routines whose intermediate squares or products would overflow (and
    then return NaN, or make an iterative solver spin): ``1e308`` is finite, but its
    square is not.
    """
    max_abs = check_positive(max_abs, "max_abs")
    arr = as_array(x, name)
    if arr.size and np.nanmax(np.abs(arr)) > max_abs:
        raise ValueError(f"{name} must have entries of magnitude at most {max_abs:g}, "
                         f"got {np.nanmax(np.abs(arr)):.3g}")


# ---------------------------------------------------------------------------------------
# Declarative parameter constraints (scikit-learn's _parameter_constraints, in small)
# ---------------------------------------------------------------------------------------

def _short(value, limit: int = 60) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, np.ndarray) or is_tensor(value):
        kind = "tensor" if is_tensor(value) else "array"
        return f"{kind} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Invalid(Exception):
    """Raised by a constraint: the value has an accepted type but breaks the constraint.

    ``requirement`` completes "<name> must be ..." and ``got`` says what was passed.
    """

    def __init__(self, requirement: str, got: str):
        super().__init__(f"{requirement}, got {got}")
        self.requirement, self.got = requirement, got


class _Constraint:
    """One allowed form of a parameter's value.

    ``_accepts_type(value)`` says whether the value's type is one this constraint is about;
    ``_check(value, name, context)`` raises :class:`_Invalid` (with the reason) when the value
    breaks the constraint, and may record shape symbols in ``context``.
    """

    def _accepts_type(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, value, name: str, context: "_Context") -> None:
        return None

    def _describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class _NoneConstraint(_Constraint):
    def _accepts_type(self, value):
        return value is None

    def _describe(self):
        return "None"


class _TypeConstraint(_Constraint):
    def __init__(self, kind):
        self.kind = kind

    def _accepts_type(self, value):
        if self.kind is int:
            return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))
        if self.kind is float:
            return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))
        if self.kind is bool:
            return isinstance(value, (bool, np.bool_))
        return isinstance(value, self.kind)

    def _check(self, value, name, context):
        if self.kind is float and not np.isfinite(float(value)):
            raise _Invalid("a finite real number", repr(value))

    def _describe(self):
        return {int: "an int", float: "a real number", bool: "a bool", str: "a str"}.get(
            self.kind, f"an instance of {getattr(self.kind, '__qualname__', self.kind)}")


class _Named(_Constraint):
    def __init__(self, name):
        self.name = name

    def _accepts_type(self, value):
        if self.name == "callable":
            return callable(value)
        if self.name == "boolean":
            return isinstance(value, (bool, np.bool_))
        if self.name == "string":
            return isinstance(value, str)
        raise ValueError(f"unknown constraint {self.name!r}")

    def _describe(self):
        return {"callable": "a callable", "boolean": "a bool", "string": "a str"}[self.name]


class Interval(_Constraint):
    """Numbers of one kind in an interval.

    Parameters
    ----------
    kind : ``int`` or ``float`` (also ``numbers.Integral`` / ``numbers.Real``, ``"int"`` / ``"real"``)
        ``int`` accepts Python and numpy integers (not bools); ``float`` any real number
        (ints included, bools not). NaN is always rejected, infinities unless ``allow_inf``.
    left, right : number or None
        The bounds; ``None`` leaves that side open to infinity.
    closed : {"both", "left", "right", "neither"}
        Which bounds belong to the interval (default "both").

    Examples
    --------
    >>> @validate_params({"lr": [Interval(float, 0, None, closed="neither")]})
    ... def sgd(lr):
    ...     return lr
    >>> sgd(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a real number in (0, inf), got -1.0
    """

    def __init__(self, kind, left=None, right=None, *, closed: str = "both", allow_inf: bool = False):
        if kind in (int, numbers.Integral, "int", "integer"):
            self.kind = int
        elif kind in (float, numbers.Real, "real", "float"):
            self.kind = float
        else:
            raise TypeError(f"kind must be int or float, got {kind!r}")
        if not isinstance(closed, str) or closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        left, right = _optional_real(left, "left"), _optional_real(right, "right")
        allow_inf = _flag(allow_inf, "allow_inf")
        if left is not None and right is not None and left > right:
            raise ValueError(f"left must be <= right, got {left} > {right}")
        self.left, self.right, self.closed, self.allow_inf = left, right, closed, allow_inf

    def _accepts_type(self, value):
        return _TypeConstraint(self.kind)._accepts_type(value)

    def __contains__(self, value) -> bool:
        if not self._accepts_type(value):
            return False
        try:
            self._check(value, "value", _Context({}))
        except _Invalid:
            return False
        return True

    def _interval(self) -> str:
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        lo = "-inf" if self.left is None else f"{self.left:g}" if isinstance(self.left, float) else str(self.left)
        hi = "inf" if self.right is None else f"{self.right:g}" if isinstance(self.right, float) else str(self.right)
        return f"{lb}{lo}, {hi}{rb}"

    def _check(self, value, name, context):
        v = float(value)
        if np.isnan(v) or (np.isinf(v) and not self.allow_inf):
            raise _Invalid(self._describe(), repr(value))
        lo_ok = (self.left is None or v > self.left
                 or (v == self.left and self.closed in ("both", "left")))
        hi_ok = (self.right is None or v < self.right
                 or (v == self.right and self.closed in ("both", "right")))
        if not (lo_ok and hi_ok):
            raise _Invalid(self._describe(), repr(value))

    def _describe(self):
        return f"{'an int' if self.kind is int else 'a real number'} in {self._interval()}"


class Options(_Constraint):
    """One of a fixed set of values (strings, numbers, ...), compared with ``==``.

    >>> check_params({"reduction": "max"}, {"reduction": [Options({"mean", "sum"})]})
    Traceback (most recent call last):
    ...
    ValueError: reduction must be one of ['mean', 'sum'], got 'max'
    """

    def __init__(self, options: Iterable):
        if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
            raise TypeError(f"options must be a set or sequence of allowed values, got {_short(options)}")
        ordered = isinstance(options, (list, tuple))
        options = list(options)
        if not options:
            raise ValueError("options must contain at least one allowed value")
        self.options = tuple(options) if ordered else tuple(sorted(options, key=repr))
        self.types = tuple({type(o) for o in self.options})

    def _accepts_type(self, value):
        if isinstance(value, bool) and not any(isinstance(o, bool) for o in self.options):
            return False
        return isinstance(value, self.types) or (
            isinstance(value, numbers.Number) and any(isinstance(o, numbers.Number) for o in self.options))

    def _check(self, value, name, context):
        try:
            ok = any(value == o for o in self.options)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise _Invalid(self._describe(), _short(value))

    def _describe(self):
        return f"one of {list(self.options)}"


_KINDS = {
    "real": ("fiu", "real numbers"),       # floats, ints, unsigned (bools are not numbers here)
    "float": ("f", "floating-point numbers"),
    "integer": ("iu", "integers"),
    "bool": ("b", "bools"),
    "numeric": ("fiub", "numbers"),
    "complex": ("fiuc", "real or complex numbers"),
}


class Array(_Constraint):
    """A numpy array, torch tensor or nested list of numbers, with its shape and values.

    Parameters
    ----------
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype : {"real", "float", "integer", "bool", "numeric", "complex"} or None
        Allowed kind of entries (default "real": ints and floats; integer-valued floats are
        *not* integers). Complex values are rejected unless the kind is "complex".
    finite : bool
        Reject NaN and infinite entries (default True).
    shape : tuple, optional
        One entry per dimension: an int (that exact length), a str symbol (the same length
        wherever the symbol appears in the call; a symbol that is also an integer
        parameter takes its value) or None (any length). Needs a fixed ``ndim``.
    min_size : int, optional
        Minimum number of entries (``min_size=1`` rejects empty arrays).
    min_rows : int, optional
        Minimum length of the first axis.
    low, high : float, optional
        Every entry must be ``>= low`` / ``<= high`` (e.g. probabilities in [0, 1]).
    max_abs : float, optional
        Every entry's magnitude at most ``max_abs`` (guards squares and products against
        overflow, see :func:`check_magnitude`).
    tensor : bool, optional
        ``True``: only torch tensors; ``False``: only numpy arrays / lists; default either.

    Examples
    --------
    >>> check_params({"x": [[1.0, float("nan")]]}, {"x": [Array(ndim=2)]})
    Traceback (most recent call last):
    ...
    ValueError: x must contain only finite values (no NaN or inf)
    >>> check_params({"x": np.array([1 + 2j])}, {"x": [Array()]})
    Traceback (most recent call last):
    ...
    TypeError: x must be real, got complex values
    """

    def __init__(self, ndim=None, *, dtype: str | None = "real", finite: bool = True, shape=None,
                 min_size: int | None = None, min_rows: int | None = None, low=None, high=None,
                 max_abs: float | None = None, tensor: bool | None = None):
        self.ndim = _ndims(ndim)
        if dtype is not None and (not isinstance(dtype, str) or dtype not in _KINDS):
            raise ValueError(f"dtype must be one of {sorted(_KINDS)} or None, got {dtype!r}")
        if shape is not None:
            shape = tuple(shape)
            if self.ndim is None:
                self.ndim = (len(shape),)
            elif self.ndim != (len(shape),):
                raise ValueError(f"shape {shape} does not match ndim {self.ndim}")
        finite = _flag(finite, "finite")
        min_size, min_rows = _optional_int(min_size, "min_size"), _optional_int(min_rows, "min_rows")
        low, high = _optional_real(low, "low"), _optional_real(high, "high")
        max_abs = None if max_abs is None else check_positive(max_abs, "max_abs")
        if tensor is not None:
            tensor = _flag(tensor, "tensor")
        self.dtype, self.finite, self.shape = dtype, finite, shape
        self.min_size, self.min_rows, self.low, self.high = min_size, min_rows, low, high
        self.max_abs, self.tensor = max_abs, tensor

    def _accepts_type(self, value):
        if is_tensor(value):
            return self.tensor is not False
        if self.tensor:
            return False
        if isinstance(value, np.ndarray):
            return True
        if isinstance(value, (list, tuple)):
            try:
                arr = np.asarray(value)
            except (TypeError, ValueError):
                return False
            return arr.dtype.kind in "biufc"
        return False

    @staticmethod
    def _numpy(value) -> np.ndarray:
        if is_tensor(value):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16 or value.dtype == torch.float16:
                value = value.float()
            return value.numpy()
        return np.asarray(value)

    def _kind_error(self, arr) -> str | None:
        if self.dtype is None:
            return None
        kinds, words = _KINDS[self.dtype]
        if arr.dtype.kind not in kinds:
            return words
        return None

    def _check(self, value, name, context):
        arr = self._numpy(value)
        if arr.dtype.kind == "c" and self.dtype != "complex":
            raise TypeError(f"{name} must be real, got complex values")
        words = self._kind_error(arr)
        if words is not None:
            raise TypeError(f"{name} must hold {words}, got dtype {arr.dtype}")
        if self.ndim is not None and arr.ndim not in self.ndim:
            want = " or ".join(str(a) for a in self.ndim)
            raise _Invalid(f"an array with {want} dimension(s)", f"shape {arr.shape}")
        if self.min_size is not None and arr.size < self.min_size:
            raise _Invalid(f"an array with at least {self.min_size} entries", f"shape {arr.shape}")
        if self.min_rows is not None and (arr.ndim == 0 or arr.shape[0] < self.min_rows):
            raise _Invalid(f"an array with at least {self.min_rows} rows", f"shape {arr.shape}")
        if self.shape is not None:
            context.match_shape(name, arr.shape, self.shape)
        if arr.dtype.kind in "fc" and arr.size:
            if self.finite and not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
            if not self.finite and self.max_abs is None and (self.low is not None or self.high is not None) \
                    and np.any(np.isnan(arr)):
                raise ValueError(f"{name} must not contain NaN")
        if arr.size and arr.dtype.kind in "fiu":
            if self.low is not None and np.nanmin(arr) < self.low:
                raise _Invalid(f"an array with entries >= {self.low}", f"minimum {np.nanmin(arr):.4g}")
            if self.high is not None and np.nanmax(arr) > self.high:
                raise _Invalid(f"an array with entries <= {self.high}", f"maximum {np.nanmax(arr):.4g}")
            if self.max_abs is not None:
                check_magnitude(arr, name, self.max_abs)

    def _describe(self):
        parts = ["a tensor" if self.tensor else "an array"]
        if self.shape is not None:
            parts.append(f"of shape {tuple('*' if s is None else s for s in self.shape)}".replace("'", ""))
        elif self.ndim is not None:
            parts.append(f"with {' or '.join(map(str, self.ndim))} dimension(s)")
        if self.dtype is not None:
            parts.append(f"of {_KINDS[self.dtype][1]}")
        return " ".join(parts)


class Labels(Array):
    """An integer array with every entry in ``[0, high)``: class labels.

    ``high`` is an int, the name of another parameter (``"num_classes"``), an attribute of
    ``self`` (``"self.num_classes"``) or a callable of the bound arguments; None leaves it
    unbounded above. Integer-valued floats are *not* accepted (pass ``np.int64`` labels).

    >>> check_params({"y": [0, 3], "num_classes": 3},
    ...              {"y": [Labels(high="num_classes")], "num_classes": [Interval(int, 1, None)]})
    Traceback (most recent call last):
    ...
    ValueError: y must have entries in [0, 3) (num_classes=3), got maximum 3
    """

    what = "class labels"

    def __init__(self, high=None, *, ndim=1, shape=None, min_size=None, tensor=None):
        super().__init__(ndim, dtype="integer", finite=True, shape=shape, min_size=min_size, tensor=tensor)
        if not (high is None or isinstance(high, str) or callable(high)):
            high = check_int(high, "high", minimum=1)
        self.bound = high

    def _check(self, value, name, context):
        super()._check(value, name, context)
        arr = self._numpy(value)
        if not arr.size:
            return
        if arr.min() < 0:
            raise _Invalid(f"non-negative {self.what}", f"minimum {arr.min()}")
        high, label = context.resolve(self.bound)
        if high is not None and arr.max() >= high:
            raise ValueError(f"{name} must have entries in [0, {high}){label}, got maximum {arr.max()}")

    def _describe(self):
        return f"an integer array of {self.what}"


class TokenIds(Labels):
    """Token ids: an integer array (any ``ndim`` by default) with entries in ``[0, high)``,
    ``high`` the vocabulary size (an int, a parameter name, ``"self.vocab_size"``, ...)."""

    what = "token ids"

    def __init__(self, high=None, *, ndim=None, shape=None, min_size=None, tensor=None):
        super().__init__(high, ndim=ndim, shape=shape, min_size=min_size, tensor=tensor)


class _Context:
    """The bound arguments of one call, and the shape symbols seen so far."""

    def __init__(self, arguments: Mapping[str, Any]):
        self.arguments = arguments
        self.symbols: dict[str, tuple[int, str]] = {}

    def resolve(self, ref):
        """``(value, label)`` of a bound given as int, parameter name, ``self.attr`` or callable."""
        if ref is None or isinstance(ref, (int, np.integer)):
            return ref, ""
        if callable(ref):
            return ref(self.arguments), ""
        if isinstance(ref, str):
            if ref.startswith("self."):
                obj = self.arguments.get("self")
                value = obj
                for part in ref.split(".")[1:]:
                    value = getattr(value, part, None)
                return value, f" ({ref}={value})"
            value = self.arguments.get(ref)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                return int(value), f" ({ref}={value})"
            return None, ""
        raise TypeError(f"cannot resolve bound {ref!r}")

    def match_shape(self, name, shape, spec):
        for axis, (got, want) in enumerate(zip(shape, spec)):
            if want is None:
                continue
            if isinstance(want, str):
                if want in self.symbols:
                    expected, source = self.symbols[want]
                elif (want in self.arguments or want.startswith("self.")) and self.resolve(want)[0] is not None:
                    expected, source = int(self.resolve(want)[0]), want
                else:
                    self.symbols[want] = (got, f"{name}.shape[{axis}]")
                    continue
                if got != expected:
                    raise ValueError(f"{name} must have {expected} entries along axis {axis} to match "
                                     f"{source} ({want}), got shape {tuple(shape)}")
            elif got != want:
                raise ValueError(f"{name} must have {want} entries along axis {axis}, got shape {tuple(shape)}")


def _as_constraint(c) -> _Constraint:
    if isinstance(c, _Constraint):
        return c
    if c is None:
        return _NoneConstraint()
    if isinstance(c, str):
        return _Named(c)
    if isinstance(c, (set, frozenset)):
        return Options(c)
    if isinstance(c, type):
        return _TypeConstraint(c)
    raise TypeError(f"unknown constraint {c!r}")


def _check_constraints(constraints) -> None:
    """``constraints`` must map parameter names to lists of constraints."""
    if not isinstance(constraints, Mapping):
        raise TypeError(f"constraints must be a mapping of parameter names to lists of constraints, "
                        f"got {_short(constraints)}")
    for key, options in constraints.items():
        if isinstance(options, (str, bytes)) or not isinstance(options, (list, tuple)):
            raise TypeError(f"constraints[{key!r}] must be a list of constraints, got {_short(options)}")
        for c in options:
            _as_constraint(c)


def check_params(values: Mapping[str, Any], constraints: Mapping[str, Iterable], *,
                 skip: Iterable[str] = ()) -> None:
    """Check every parameter in ``values`` against its list of allowed constraints.

    The imperative form of :func:`validate_params`, for ``__init__`` / ``__post_init__`` and
    for parameters that need converting first. Parameters are checked in the order of
    ``values`` (so shape symbols bind to the first array that names them). A parameter
    without constraints, or named in ``skip``, is not checked.

    Raises
    ------
    TypeError
        When no constraint accepts the value's type.
    ValueError
        When a constraint accepts the type but not the value.
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of parameter names to values, got {_short(values)}")
    _check_constraints(constraints)
    if isinstance(skip, (str, bytes)) or not isinstance(skip, Iterable):
        raise TypeError(f"skip must be a collection of parameter names, got {_short(skip)}")
    context = _Context(values)
    skip = set(skip)
    # Scalars first, then arrays: a bad ``num_classes`` is reported as itself, not as
    # labels out of range.
    names = [n for n in values if n not in skip and n in constraints]
    names.sort(key=lambda n: any(isinstance(c, Array) for c in constraints[n]))
    for name in names:
        value = values[name]
        options = [_as_constraint(c) for c in constraints[name]]
        typed = [c for c in options if c._accepts_type(value)]
        want = " or ".join(c._describe() for c in options)
        if not typed:
            raise TypeError(f"{name} must be {want}, got {_short(value)}")
        failures = []
        for c in typed:
            try:
                c._check(value, name, context)
                break
            except _Invalid as err:
                failures.append(err)
        else:
            if len(failures) == 1:
                raise ValueError(f"{name} must be {failures[0].requirement}, got {failures[0].got}")
            reasons = "; ".join(str(f) for f in failures)
            raise ValueError(f"{name} must be {want}, got {_short(value)} ({reasons})")


def validate_params(constraints: Mapping[str, Iterable]):
    """Decorator: check the arguments of every call against declared constraints.

    ``constraints`` maps parameter names to lists of allowed constraints (see the module
    docstring); parameters left out are not checked. The declaration is stored on the
    function as ``_parameter_constraints``, so the documentation and the bad-input tests
    can read it. Misnamed parameters fail when the function is defined, not when called.

    Examples
    --------
    >>> @validate_params({"x": [Array(ndim=1, min_size=1)], "k": [Interval(int, 1, None)]})
    ... def top(x, k=1):
    ...     return sorted(x)[-k:]
    >>> top([3.0, 1.0, 2.0], k=2)
    [2.0, 3.0]
    >>> top([3.0, 1.0], k=2.5)
    Traceback (most recent call last):
    ...
    TypeError: k must be an int in [1, inf), got 2.5
    """

    _check_constraints(constraints)

    def decorator(func: Callable):
        signature = inspect.signature(func)
        unknown = set(constraints) - set(signature.parameters)
        if unknown:
            raise ValueError(f"{func.__qualname__}: constraints for unknown parameters {sorted(unknown)}")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check_params(bound.arguments, constraints)
            return func(*args, **kwargs)

        wrapper._parameter_constraints = dict(constraints)
        return wrapper

    return decorator
