"""The bad-input sweep: every public function, class and method, one bad argument at a time.

Used by ``tests/test_bad_inputs.py`` (rates per module, no hang) and by
``tools/bad_input_sweep.py`` (the report). The valid baseline calls live as data in
``tests/bad_inputs_baselines.py``.

How it works
------------
1. :func:`public_api` lists each module's ``__all__``: functions, classes (their
   constructor) and the public methods the classes define themselves (methods inherited
   from ``torch.nn.Module`` and ``object`` are not the package's API).
2. :func:`baseline_call` builds a valid call: explicit baselines first, else every
   required parameter from the name table (``VALUES``), defaults for the rest. The
   baseline must run (else the function is reported as "no baseline").
3. :func:`bad_values` derives the bad values of each argument from its valid value: NaN,
   inf, 1e308, complex, wrong ndim, empty, mismatched first axis, out-of-range ids,
   strings, None, 2.5 for an int, zero and negative sizes, ...
4. Each bad call runs in a worker process (:func:`run_module`), so that a call stuck in
   LAPACK is killed after ``timeout`` seconds and reported as a hang.
5. :func:`classify` sorts the outcome: ``clear`` (ValueError/TypeError naming the
   argument), ``harmless`` (accepted with a finite result where the value is legal, or
   declared harmless in the baselines with a reason), ``unnamed`` (ValueError/TypeError
   not naming the argument), ``cryptic`` (another exception), ``nan`` (a NaN/inf result),
   ``accepted`` (silently accepted), ``hang``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import re
import select
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: The modules of the sweep, in report order.
MODULES = ("neural_collapse", "entropy", "sae", "scaling", "rl", "data", "training", "evidence",
           "plotting", "widgets", "_validation", "exercises.neural_collapse", "exercises.entropy",
           "exercises.sae", "exercises.scaling", "exercises.rl", "exercises._core")

GOOD = ("clear", "harmless")
BAD = ("unnamed", "cryptic", "nan", "accepted", "hang")
#: String parameters that hold free text (any string is valid): no bad strings for them.
FREE_TEXT = re.compile(r"^(name|description|hint|detail|title|label|desc|statement|xlabel|ylabel|suptitle|fmt"
                       r"|exercise_id|chapter|text|message|titles)$")
#: Integer-array parameters whose entries are indices into something (range-checked).
ID_NAMES = re.compile(r"(label|token|ids?$|target|class|^y$|answer|action|digit|index|indices|prompt)", re.I)


# ---------------------------------------------------------------------------------------
# The public API
# ---------------------------------------------------------------------------------------

def _baselines():
    sys.path.insert(0, str(HERE))
    import bad_inputs_baselines

    return bad_inputs_baselines


def public_api(module_name: str) -> list[tuple[str, object, str]]:
    """``(qualified name, object, kind)`` with kind "function", "class" or "method"."""
    try:
        module = importlib.import_module(f"companion.{module_name}")
    except ModuleNotFoundError:
        module = importlib.import_module(module_name)  # a test module outside the package
    out = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name, None)
        qual = f"{module_name}.{name}"
        if inspect.isclass(obj):
            if issubclass(obj, BaseException):
                continue
            out.append((qual, obj, "class"))
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(value, (staticmethod, classmethod)):
                    out.append((f"{qual}.{attr}", getattr(obj, attr), "static"))
                elif inspect.isfunction(value):
                    out.append((f"{qual}.{attr}", value, "method"))
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj) or (callable(obj) and not inspect.ismodule(obj)):
            out.append((qual, obj, "function"))
    return out


# ---------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------

class NoBaseline(Exception):
    pass


def _fresh(value):
    """A fresh copy of a valid value (factories are called, arrays copied)."""
    if callable(value) and getattr(value, "__name__", "") == "<lambda>" and not inspect.signature(value).parameters:
        return value()
    if isinstance(value, np.ndarray):
        return value.copy()
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.clone()
    except ImportError:  # pragma: no cover
        pass
    return value


def _signature(obj, kind):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [p for p in sig.parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "cls")]
    return params


def baseline_call(qual: str, obj, kind: str):
    """``(callable, kwargs, params)`` of a valid call, or raise :class:`NoBaseline`.

    ``callable`` is the function, the class, or a bound method of a fresh instance.
    """
    B = _baselines()
    if qual in B.SKIP:
        raise NoBaseline(f"skipped: {B.SKIP[qual]}")
    params = _signature(obj, kind)
    if params is None:
        raise NoBaseline("no signature")
    module_name = qual.rsplit(".", 2 if kind in ("method", "static") else 1)[0]
    explicit = B.BASELINES.get(qual)
    if callable(explicit):
        explicit = explicit()
    kwargs = {}
    names = {**B.VALUES, **B.MODULE_VALUES.get(module_name, {})}
    for p in params:
        if explicit is not None and p.name in explicit:
            kwargs[p.name] = _fresh(explicit[p.name])
        elif p.default is not p.empty:
            continue
        elif p.name in names:
            kwargs[p.name] = _fresh(names[p.name])
        elif any(p.name.startswith(prefix) for prefix in B.PREFIX_VALUES):
            kwargs[p.name] = next(v for k, v in B.PREFIX_VALUES.items() if p.name.startswith(k))
        else:
            raise NoBaseline(f"no valid value for required parameter {p.name!r} "
                             f"(add it to BASELINES[{qual!r}] or VALUES)")
    if kind == "method":
        owner = qual.rsplit(".", 1)[0]
        instance = make_instance(owner)
        fn = getattr(instance, qual.rsplit(".", 1)[1])
    else:
        fn = obj
    return fn, kwargs, params


def make_instance(owner_qual: str):
    """A fresh instance of a public class, from its baseline (or ``INSTANCES``)."""
    B = _baselines()
    if owner_qual in B.INSTANCES:
        return B.INSTANCES[owner_qual]()
    module_name, name = owner_qual.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"companion.{module_name}"), name)
    fn, kwargs, _ = baseline_call(owner_qual, cls, "class")
    return fn(**kwargs)


# ---------------------------------------------------------------------------------------
# Bad values
# ---------------------------------------------------------------------------------------

def _is_tensor(x):
    try:
        import torch

        return isinstance(x, torch.Tensor)
    except ImportError:  # pragma: no cover
        return False


def _array_bad_values(name, value, shared_rows):
    """Bad variants of an array argument (numpy array, tensor or list of numbers)."""
    import torch

    tensor = _is_tensor(value)
    arr = value.detach().cpu().numpy() if tensor else np.asarray(value)
    as_list = isinstance(value, (list, tuple))

    def back(a):
        if tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(value.device)
        return a.tolist() if as_list else a

    out = []
    if arr.dtype.kind == "f" and arr.size:
        for kind, fill in (("nan", np.nan), ("inf", np.inf), ("huge", float(np.finfo(arr.dtype).max) / 2)):
            a = arr.copy()
            a.flat[a.size // 2] = fill
            out.append((kind, back(a)))
    if arr.dtype.kind in "iu" and arr.size and ID_NAMES.search(name):
        a = arr.copy()
        a.flat[a.size // 2] = max(int(arr.max()) + 1000, 10**6)
        out.append(("out_of_range", back(a)))
        a = arr.copy()
        a.flat[a.size // 2] = -1
        out.append(("negative", back(a)))
        out.append(("float_ids", back(arr.astype(np.float64) + 0.5)))
    if arr.dtype.kind in "fiu":
        out.append(("complex", back(arr.astype(np.complex128) + 1j)))
    if arr.ndim >= 1:
        out.append(("extra_dim", back(arr[None])))
    if arr.ndim >= 2:
        out.append(("flat", back(arr.reshape(-1))))
    elif arr.ndim == 1:
        out.append(("scalar", back(arr[0]) if arr.size else back(np.float64(1.0))))
    if arr.ndim >= 1 and arr.shape[0] > 0:
        out.append(("empty", back(arr[:0])))
    if arr.ndim >= 1 and arr.shape[0] > 1 and shared_rows:
        out.append(("mismatch", back(arr[:-1])))
    out.append(("string", "abc"))
    out.append(("none", None))
    return out


def bad_values(param, value, shared_rows: bool):
    """``[(kind, bad value), ...]`` for one argument whose valid value is ``value``."""
    import torch

    default_none = param.default is None
    out = []
    if isinstance(value, bool) or isinstance(value, np.bool_):
        out = [("string", "yes")]
    elif isinstance(value, (int, np.integer)):
        out = [("negative", -1), ("float_for_int", 2.5), ("string", "3")]
        if value > 0:
            out.append(("zero", 0))
        if value not in (0, 1):
            pass
    elif isinstance(value, (float, np.floating)):
        out = [("nan", float("nan")), ("inf", float("inf")), ("huge", 1e308), ("string", "0.1"),
               ("complex", 1 + 1j)]
    elif isinstance(value, str):
        if FREE_TEXT.search(param.name):
            return []  # any text is a valid label, title or message
        out = [("unknown_option", "nonsense"), ("number_for_str", 3)]
    elif isinstance(value, np.ndarray) or _is_tensor(value) or (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                              for v in value)):
        out = _array_bad_values(param.name, value, shared_rows)
        if default_none:
            out = [(k, v) for k, v in out if k != "none"]
        return out
    elif isinstance(value, torch.nn.Module):
        out = [("string", "abc"), ("wrong_object", 3)]
    elif callable(value):
        out = [("not_callable", 3)]
    elif value is None:
        return []
    else:
        out = [("string", "abc"), ("wrong_object", 3.5)]
    if not default_none:
        out.append(("none", None))
    return out


# ---------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------

def _nonfinite(value, depth=0) -> bool:
    import torch

    if depth > 4 or value is None or isinstance(value, (str, bytes, bool)):
        return False
    if isinstance(value, (float, np.floating, complex)):
        return not np.isfinite(value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "fc" and not np.all(np.isfinite(value))
    if isinstance(value, torch.Tensor):
        return value.is_floating_point() and not bool(torch.isfinite(value.detach()).all())
    if isinstance(value, torch.nn.Module):
        return any(_nonfinite(p, depth + 1) for p in value.parameters())
    if isinstance(value, dict):
        return any(_nonfinite(v, depth + 1) for v in list(value.values())[:200])
    if isinstance(value, (list, tuple)):
        return any(_nonfinite(v, depth + 1) for v in list(value)[:200])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_nonfinite(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    if type(value).__module__.startswith("companion") and hasattr(value, "__dict__"):
        return any(_nonfinite(v, depth + 1) for v in list(vars(value).values())[:50])
    return False


def classify(name: str, kind: str, error: BaseException | None, result, harmless_reason: str | None,
             expected: tuple = (), alias: str | None = None):
    """The outcome of one bad call: ``(category, detail)``.

    ``alias``: another name the message may use for the argument (the validators of
    ``companion._validation`` name the value by their ``name`` argument)."""
    if error is None:
        if _nonfinite(result):
            return ("harmless", harmless_reason) if harmless_reason else ("nan", "returned NaN or inf")
        if harmless_reason:
            return "harmless", harmless_reason
        if kind in ("huge", "zero"):
            return "harmless", f"{kind} is a legal value and the result is finite"
        return "accepted", "accepted silently"
    message = f"{type(error).__name__}: {error}"
    if expected and isinstance(error, expected):
        return "clear", message
    names = [name] + ([alias] if alias else [])
    named = any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", str(error)) for n in names)
    if isinstance(error, (ValueError, TypeError)) and type(error).__module__ == "builtins":
        return ("clear", message) if named else ("unnamed", message)
    if isinstance(error, (ValueError, TypeError)) and named and type(error).__module__.startswith("companion"):
        return "clear", message
    return "cryptic", message


def _harmless(qual, param, kind):
    B = _baselines()
    for key in ((qual, param, kind), (qual, param, "*"), (qual, "*", kind)):
        if key in B.HARMLESS:
            return B.HARMLESS[key]
    return B.HARMLESS_KINDS.get(kind)


# ---------------------------------------------------------------------------------------
# The calls of one module, run in a worker
# ---------------------------------------------------------------------------------------

def module_calls(module_name: str, fast: bool = False, *, skip=(), resume_after: str | None = None,
                 on_probe=None):
    """Yield ``(id, qual, param, kind, thunk)``; a thunk runs one bad call. A function
    without a working baseline yields one entry with ``thunk=None`` and the reason.

    ``on_probe(qual)`` is called before each baseline runs (so a hang there is attributed);
    ``skip`` names functions to leave out; ``resume_after`` (a call id) skips every call up
    to and including it, without running baselines again.
    """
    import torch

    B = _baselines()
    resuming = resume_after
    for qual, obj, kind in public_api(module_name):
        if (fast and qual in B.SLOW) or qual in skip:
            continue
        if resuming and not resuming.startswith(qual + "("):
            continue
        if resuming in (f"{qual}(baseline)", f"{qual}(no baseline)"):
            resuming = None  # the resume point is this function's baseline: go on with the next
            continue
        try:
            fn, kwargs, params = baseline_call(qual, obj, kind)
            if not resuming:
                if on_probe is not None:
                    on_probe(qual)
                _seed()
                try:
                    with _quiet():
                        fn(**kwargs)
                except _allowed(qual, "BASELINE_ERRORS"):
                    pass
        except NoBaseline as err:
            yield (f"{qual}(no baseline)", qual, None, f"no baseline: {err}", None)
            continue
        except Exception as err:  # noqa: BLE001
            yield (f"{qual}(no baseline)", qual, None, f"baseline fails: {type(err).__name__}: {str(err)[:200]}", None)
            continue
        values = {}
        for p in params:
            values[p.name] = kwargs[p.name] if p.name in kwargs else p.default
        rows = {}
        for n, v in values.items():
            if isinstance(v, np.ndarray) or isinstance(v, torch.Tensor):
                if v.ndim >= 1:
                    rows.setdefault(v.shape[0], []).append(n)
        for p in params:
            shared = any(len(ns) > 1 and p.name in ns for ns in rows.values())
            for bad_kind, bad in bad_values(p, values[p.name], shared):
                cid = f"{qual}({p.name}={bad_kind})"
                if cid in skip:
                    continue
                if resuming:
                    if cid == resuming:
                        resuming = None
                    continue

                def thunk(qual=qual, obj=obj, kind=kind, pname=p.name, bad=bad):
                    """Build the call (fresh arguments and instance); returns the call itself."""
                    fn, kw, _ = baseline_call(qual, obj, kind)
                    kw[pname] = bad

                    def call():
                        _seed()
                        return fn(**kw)
                    return call
                thunk.alias = values.get("name") if isinstance(values.get("name"), str) and p.name != "name" else None
                yield (cid, qual, p.name, bad_kind, thunk)
        resuming = None


def _allowed(qual, table):
    import fnmatch

    B = _baselines()
    for pattern, errors in getattr(B, table).items():
        if fnmatch.fnmatch(qual, pattern):
            return errors
    return ()


def _quiet():
    import contextlib
    import io

    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _seed():
    import random

    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def worker(modules: list[str], start_module: int, resume_after: str, out_fd: int, fast: bool = False,
           skip=()) -> None:
    """Run the calls of ``modules`` (from module ``start_module``, after the call id
    ``resume_after`` when not empty), one JSON line per event on ``out_fd``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    torch.set_num_threads(1)
    out = os.fdopen(out_fd, "w", buffering=1)
    for m, module_name in enumerate(modules):
        if m < start_module:
            continue

        def probe(qual, m=m, module_name=module_name):
            out.write(json.dumps({"event": "start", "module": module_name, "m": m, "index": -1,
                                  "id": f"{qual}(baseline)"}) + "\n")

        calls = module_calls(module_name, fast, skip=set(skip), on_probe=probe,
                             resume_after=resume_after if m == start_module and resume_after else None)
        for index, (cid, qual, param, kind, thunk) in enumerate(calls):
            head = {"module": module_name, "m": m, "index": index, "id": cid}
            if thunk is None:
                out.write(json.dumps({"event": "start", **head}) + "\n")
                out.write(json.dumps({"event": "done", **head, "qual": qual, "param": None, "kind": kind,
                                      "category": "no_baseline", "detail": kind}) + "\n")
                continue
            error = result = None
            out.write(json.dumps({"event": "prepare", **head}) + "\n")
            with _quiet():
                try:
                    call = thunk()
                except Exception as err:  # noqa: BLE001
                    call, error = None, err
                out.write(json.dumps({"event": "start", **head}) + "\n")
                if call is not None:
                    try:
                        result = call()
                    except Exception as err:  # noqa: BLE001
                        error = err
            category, detail = classify(param, kind, error, result, _harmless(qual, param, kind),
                                        expected=_allowed(f"{qual}:{param}", "EXPECTED_ERRORS"),
                                        alias=getattr(thunk, "alias", None))
            plt.close("all")
            out.write(json.dumps({"event": "done", **head, "qual": qual, "param": param, "kind": kind,
                                  "category": category, "detail": (detail or "")[:300]}) + "\n")
    out.write(json.dumps({"event": "end"}) + "\n")
    out.close()


class _LineReader:
    """Lines from a pipe with a timeout. Unbuffered on purpose: ``select`` on a buffered
    file object misses lines already read ahead into Python's buffer, which would let a
    call's short deadline wait behind the long one of the line before it."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.eof = fd, b"", False

    def readline(self, timeout: float):
        """The next line (``""`` at end of file), or ``None`` when none came in ``timeout`` s."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buffer and not self.eof:
            ready, _, _ = select.select([self.fd], [], [], max(end - time.monotonic(), 0))
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self.buffer += chunk
        line, sep, self.buffer = self.buffer.partition(b"\n")
        return (line + sep).decode()

    def close(self):
        os.close(self.fd)


def run_modules(modules, timeout: float = 20.0, python: str = sys.executable,
                fast: bool = False, skip=()) -> dict[str, list[dict]]:
    """Every bad call of ``modules`` in one worker process, with a per-call ``timeout``.

    A call that does not return in time is recorded as ``hang`` (a crash of the process as
    ``cryptic``); the worker is killed and a new one continues with the next call. ``skip``
    holds functions (qualified names) or calls (ids) not to run.
    """
    import tempfile

    modules = list(modules)
    results = {m: [] for m in modules}
    start_module, resume_after, skip, stalls = 0, "", list(skip), 0
    env = {**os.environ, "COMPANION_NO_PROGRESS": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "COMPANION_EXPLORER": "live"}
    while True:
        read_fd, write_fd = os.pipe()
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen([python, __file__, "--worker", ",".join(modules), str(start_module),
                                     resume_after or "-", str(write_fd), "fast" if fast else "full", ",".join(skip)],
                                    pass_fds=(write_fd,), env=env, cwd=str(ROOT),
                                    stdout=subprocess.DEVNULL, stderr=errors)
            os.close(write_fd)
            reader = _LineReader(read_fd)
            current, finished = None, False
            deadline = time.monotonic() + 180  # start-up, and the baseline calls before a first call
            while True:
                line = reader.readline(max(deadline - time.monotonic(), 0))
                if line is None:
                    break  # timeout
                if not line:
                    break  # worker died
                msg = json.loads(line)
                if "m" in msg:
                    start_module = msg["m"]
                if msg["event"] == "prepare":  # building the arguments (and instance) of a call
                    current = msg
                    deadline = time.monotonic() + 180
                elif msg["event"] == "start":
                    current = msg
                    deadline = time.monotonic() + timeout
                elif msg["event"] == "done":
                    results[msg["module"]].append(msg)
                    current = None
                    deadline = time.monotonic() + 180
                elif msg["event"] == "end":
                    finished = True
                    break
            timed_out = proc.poll() is None
            if finished:
                proc.wait()
                reader.close()
                return results
            proc.kill()
            proc.wait()
            reader.close()
            if current is None:  # died or stalled between calls: note it, go on after the last call
                errors.seek(0)
                tail = errors.read().decode(errors="replace")[-300:]
                stalls += 1
                if stalls > 3:
                    raise RuntimeError(f"the sweep worker keeps stopping outside a call:\n{tail}")
                module = modules[start_module]
                done = [r for r in results[module] if r["index"] >= 0]
                resume_after = done[-1]["id"] if done else ""
                results[module].append({"event": "done", "module": module, "index": -1,
                                        "id": f"{module}(worker stopped)", "qual": module, "param": None,
                                        "kind": "worker", "category": "no_baseline",
                                        "detail": f"the worker stopped between calls: {tail}"})
                continue
        cid = current["id"]
        qual = cid.split("(")[0]
        start_module = current["m"]
        if cid.endswith("(baseline)"):  # the valid call itself hung or crashed
            results[current["module"]].append(
                {"event": "done", "module": current["module"], "index": -1, "id": cid, "qual": qual,
                 "param": None, "kind": "baseline", "category": "no_baseline",
                 "detail": "baseline hangs" if timed_out else "baseline crashes the process"})
            skip.append(qual)
            done = [r for r in results[current["module"]] if r["index"] >= 0]
            resume_after = done[-1]["id"] if done else ""
            continue
        param = cid.split("(")[1].split("=")[0]
        kind = cid.rsplit("=", 1)[1].rstrip(")")
        results[current["module"]].append(
            {"event": "done", "module": current["module"], "index": current["index"], "id": cid,
             "qual": qual, "param": param, "kind": kind,
             "category": "hang" if timed_out else "cryptic",
             "detail": f"no answer in {timeout:.0f} s" if timed_out else "the worker process crashed"})
        resume_after = cid


def run_module(module_name: str, timeout: float = 20.0, python: str = sys.executable,
               fast: bool = False) -> list[dict]:
    """Every bad call of one module (see :func:`run_modules`)."""
    return run_modules([module_name], timeout, python, fast)[module_name]


def summarize(results: list[dict]) -> dict:
    """Per module: counts per category, rate of good outcomes, functions without baseline."""
    counts = {c: 0 for c in GOOD + BAD}
    missing = []
    for r in results:
        if r["category"] == "no_baseline":
            missing.append((r["qual"], r["detail"]))
        else:
            counts[r["category"]] += 1
    total = sum(counts.values())
    good = counts["clear"] + counts["harmless"]
    return {"counts": counts, "total": total, "good": good,
            "rate": good / total if total else 1.0, "missing": missing}


if __name__ == "__main__" and len(sys.argv) == 8 and sys.argv[1] == "--worker":
    sys.path.insert(0, str(HERE))
    worker(sys.argv[2].split(","), int(sys.argv[3]), "" if sys.argv[4] == "-" else sys.argv[4], int(sys.argv[5]),
           fast=sys.argv[6] == "fast", skip=[q for q in sys.argv[7].split(",") if q])
