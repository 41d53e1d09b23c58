"""Bad input gets a clear error: the sweep over the public API, and property tests.

1. The sweep (tests/bad_inputs_engine.py, baselines in tests/bad_inputs_baselines.py):
   every public function, class and method of every module, one bad argument at a time
   (NaN, inf, 1e308, complex, wrong ndim, empty, mismatched shapes, out-of-range ids,
   strings, None, 2.5 for an int, zero and negative sizes), each call in a worker process
   with a timeout. Per module, the share of calls that end in a clear error naming the
   argument (or are harmless by documented design) must reach ``MIN_RATE``, and no call
   may hang. Every module measures 100 %; ``MIN_RATE`` holds each at 99 % (see there).
   ``python tools/bad_input_sweep.py`` lists the failing calls.
   The unit test leaves out the functions in ``SLOW`` (the report includes them).
2. Property tests (hypothesis) on the shared modules, which are held to every bad value:
   random arrays with a non-finite entry anywhere, random wrong shapes, random non-numeric
   values, all of which must be rejected with an error naming the argument.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bad_inputs_engine as engine  # noqa: E402
import bad_inputs_baselines as baselines  # noqa: E402

#: Minimum share of good outcomes per module (measured, rounded down; target 0.97).
MIN_RATE = {
    # Every module measured 100 % in the full sweep on 2026-11-30 (tools/bad_input_sweep.py;
    # calls per module in brackets). The floor of 0.99 leaves room for a call whose outcome
    # depends on the machine (a "huge" value that one CPU's kernels overflow); a real
    # regression in a module fails it, and the report names the calls.
    "neural_collapse": 0.99,            # 100 % [670]
    "entropy": 0.99,                    # 100 % [791]
    "sae": 0.99,                        # 100 % [901]
    "scaling": 0.99,                    # 100 % [894]
    "rl": 0.99,                         # 100 % [1222]
    "data": 0.99,                       # 100 % [97]
    "training": 0.99,                   # 100 %
    "evidence": 0.99,                   # 100 %
    "plotting": 0.99,                   # 100 %
    "widgets": 0.99,                    # 100 %
    "_validation": 0.99,                # 100 %
    "exercises.neural_collapse": 0.99,  # 100 % [8]
    "exercises.entropy": 0.99,          # 100 % [16]
    "exercises.sae": 0.99,              # 100 % [128]
    "exercises.scaling": 0.99,          # 100 % [131]
    "exercises.rl": 0.99,               # 100 % [15]
    "exercises._core": 0.99,            # 100 % [45]
}
#: Calls known to hang today, allowed until their module is fixed: delete each
#: entry with its fix. Any other hang fails the test.
KNOWN_HANGS: set[str] = set()
#: Modules whose every public entry must have a baseline (the others list what is missing).
COMPLETE_BASELINES = ("data", "training", "evidence", "plotting", "widgets", "_validation")
#: Seconds one bad call may take before it counts as a hang.
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def sweep():
    """The fast sweep in two worker processes (the machine's two cores)."""
    from concurrent.futures import ThreadPoolExecutor

    shares = [list(engine.MODULES[0::2]), list(engine.MODULES[1::2])]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = pool.map(lambda share: engine.run_modules(share, timeout=TIMEOUT, fast=True,
                                                          skip=sorted(KNOWN_HANGS)), shares)
        return {m: r for part in parts for m, r in part.items()}


def test_every_module_of_the_sweep_has_a_threshold():
    assert set(MIN_RATE) == set(engine.MODULES)
    assert all(0 <= r <= 1 for r in MIN_RATE.values())


@pytest.mark.parametrize("module", engine.MODULES)
def test_no_bad_input_hangs_and_the_rate_of_clear_errors_holds(sweep, module):
    results = sweep[module]
    hangs = [r["id"] for r in results if r["category"] == "hang" and r["id"] not in KNOWN_HANGS]
    assert not hangs, f"calls that hang (no answer in {TIMEOUT:.0f} s): {hangs}"
    summary = engine.summarize(results)
    failing = [f"{r['id']} [{r['category']}]: {r['detail'][:100]}" for r in results if r["category"] in engine.BAD]
    assert summary["rate"] >= MIN_RATE[module], (
        f"{module}: {100 * summary['rate']:.1f}% of {summary['total']} bad calls get a clear error "
        f"(needs {100 * MIN_RATE[module]:.0f}%); failing:\n" + "\n".join(failing[:40]))
    if module in COMPLETE_BASELINES:
        missing = [q for q, why in summary["missing"] if q not in baselines.SKIP]
        assert not missing, f"{module}: public entries without a baseline: {missing}"


# ---------------------------------------------------------------------------------------
# The classification itself
# ---------------------------------------------------------------------------------------

def test_classify_sorts_the_outcomes():
    assert engine.classify("lr", "nan", ValueError("lr must be finite"), None, None)[0] == "clear"
    assert engine.classify("lr", "nan", ValueError("must be finite"), None, None)[0] == "unnamed"
    assert engine.classify("x", "nan", ValueError("max_x must be finite"), None, None)[0] == "unnamed"
    assert engine.classify("x", "nan", IndexError("index 5 is out of bounds"), None, None)[0] == "cryptic"
    assert engine.classify("x", "nan", None, np.array([1.0, np.nan]), None)[0] == "nan"
    assert engine.classify("x", "nan", None, 1.0, None)[0] == "accepted"
    assert engine.classify("x", "huge", None, 1.0, None)[0] == "harmless"
    assert engine.classify("x", "nan", None, 1.0, "documented")[0] == "harmless"
    assert engine.classify("fn", "none", AssertionError("wrong"), None, None, expected=(AssertionError,))[0] == "clear"


def test_the_worker_pipe_reader_sees_lines_that_arrived_together():
    """Two events written at once ("prepare", then "start"): the second is returned at once,
    not after a timeout (a buffered reader under ``select`` would wait for the next write)."""
    import os

    read_fd, write_fd = os.pipe()
    reader = engine._LineReader(read_fd)
    os.write(write_fd, b'{"event": "prepare"}\n{"event": "start"}\n')
    assert reader.readline(1.0) == '{"event": "prepare"}\n'
    assert reader.readline(0.0) == '{"event": "start"}\n'
    assert reader.readline(0.05) is None  # nothing more yet: a timeout
    os.close(write_fd)
    assert reader.readline(1.0) == ""  # end of file
    reader.close()


def test_a_hanging_call_is_reported_and_the_sweep_goes_on(tmp_path, monkeypatch):
    """A module whose NaN call sleeps: the sweep records a hang, kills the worker and
    finishes the other calls in a new one."""
    (tmp_path / "sweep_demo.py").write_text(
        "import time\n"
        "__all__ = ['f']\n"
        "def f(x: float = 1.0, k: int = 2):\n"
        "    if x != x:\n"
        "        time.sleep(120)\n"
        "    if not isinstance(k, int):\n"
        "        raise TypeError('k must be an int')\n"
        "    return x\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + ":" + __import__("os").environ.get("PYTHONPATH", ""))
    results = engine.run_modules(["sweep_demo"], timeout=5.0)["sweep_demo"]
    by_id = {r["id"]: r["category"] for r in results}
    assert by_id["sweep_demo.f(x=nan)"] == "hang"
    assert by_id["sweep_demo.f(k=string)"] == "clear"
    assert by_id["sweep_demo.f(x=inf)"] == "nan"
    assert by_id["sweep_demo.f(x=string)"] == "accepted"
    assert len(by_id) == len(results)


# ---------------------------------------------------------------------------------------
# Property tests on the shared modules (hypothesis)
# ---------------------------------------------------------------------------------------

SHARED_MODULES = ("data", "training", "evidence", "plotting", "_validation")


def _baseline_arguments(modules):
    """(qualified name, object, kind, parameter, valid value) for every argument of the
    public entries of ``modules`` that have a baseline (functions in ``SLOW`` left out)."""
    for module in modules:
        for qual, obj, kind in engine.public_api(module):
            if qual in baselines.SKIP or qual in baselines.SLOW:
                continue
            try:
                _, kwargs, params = engine.baseline_call(qual, obj, kind)
            except engine.NoBaseline:
                continue
            for p in params:
                yield qual, obj, kind, p.name, kwargs.get(p.name, p.default)


def _harmless(qual, name, kind):
    return (qual, name, kind) in baselines.HARMLESS or (qual, name, "*") in baselines.HARMLESS


def _shared_array_calls(modules=SHARED_MODULES):
    """(qualified name, object, kind, parameter) for every float-array argument of ``modules``."""
    import torch

    return [(qual, obj, kind, name) for qual, obj, kind, name, value in _baseline_arguments(modules)
            if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim >= 1
            and value.dtype in (np.float64, np.float32, torch.float32, torch.float64)
            and not _harmless(qual, name, "nan")]


SHARED_ARRAY_CALLS = _shared_array_calls()
#: The same for the chapter and exercise modules: the whole public API.
CHAPTER_ARRAY_CALLS = _shared_array_calls([m for m in engine.MODULES if m not in SHARED_MODULES])


def _call_with(qual, obj, kind, name, value):
    import matplotlib.pyplot as plt

    fn, kwargs, _ = engine.baseline_call(qual, obj, kind)
    kwargs[name] = value
    try:
        with engine._quiet():
            return fn(**kwargs)
    finally:
        plt.close("all")


def test_there_are_shared_array_arguments_to_test():
    assert len(SHARED_ARRAY_CALLS) >= 5
    assert len(CHAPTER_ARRAY_CALLS) >= 50


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(SHARED_ARRAY_CALLS), bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       position=st.floats(0, 1, exclude_max=True), as_tensor=st.booleans())
def test_property_a_nonfinite_entry_anywhere_is_rejected_naming_the_argument(call, bad, position, as_tensor):
    _assert_nonfinite_entry_rejected(call, bad, position, as_tensor)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(CHAPTER_ARRAY_CALLS), bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       position=st.floats(0, 1, exclude_max=True), as_tensor=st.booleans())
def test_property_chapter_functions_reject_a_nonfinite_entry_anywhere(call, bad, position, as_tensor):
    """The whole public API: any float-array argument of a chapter or exercise module, a
    NaN or inf at a random position, given as numpy or as a tensor."""
    _assert_nonfinite_entry_rejected(call, bad, position, as_tensor)


def _id_array_calls():
    """(qualified name, object, kind, parameter) for every integer id or label argument
    (by name, as the sweep finds them) of every module."""
    import torch

    def ids(value):
        value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.size > 0

    return [(qual, obj, kind, name) for qual, obj, kind, name, value in _baseline_arguments(engine.MODULES)
            if ids(value) and engine.ID_NAMES.search(name) and not _harmless(qual, name, "out_of_range")]


ID_ARRAY_CALLS = _id_array_calls()


def test_there_are_id_arguments_to_test():
    assert len(ID_ARRAY_CALLS) >= 10


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(ID_ARRAY_CALLS), offset=st.integers(0, 10**6), negative=st.booleans(),
       position=st.floats(0, 1, exclude_max=True))
def test_property_an_id_out_of_range_anywhere_is_rejected_naming_the_argument(call, offset, negative, position):
    """A token id or label at or above the vocabulary/classes (max + 1 + offset, which the
    valid call never reaches) or below 0, at a random position."""
    import torch

    qual, obj, kind, name = call
    _, kwargs, params = engine.baseline_call(qual, obj, kind)
    value = kwargs.get(name, next(p.default for p in params if p.name == name))
    tensor = isinstance(value, torch.Tensor)
    arr = (value.detach().cpu().numpy() if tensor else np.asarray(value)).copy()
    arr.flat[int(position * arr.size)] = -1 - offset if negative else _id_bound(qual, obj, kind, name, arr) + offset
    bad = torch.from_numpy(arr).to(value.device) if tensor else arr
    alias = kwargs.get("name", next((p.default for p in params if p.name == "name"), None))
    names = name if not isinstance(alias, str) else f"(?:{name}|{alias})"  # a validator names its caller's argument
    with pytest.raises((ValueError, TypeError), match=rf"(?<![\w.]){names}(?!\w)"):
        _call_with(qual, obj, kind, name, bad)


def _id_bound(qual, obj, kind, name, arr):
    """A value no valid id reaches: the vocabulary or class count when the call names one,
    else far above the largest id of the valid call."""
    return max(int(arr.max()) + 1000, 10**6)


def _assert_nonfinite_entry_rejected(call, bad, position, as_tensor):
    import torch

    qual, obj, kind, name = call
    _, kwargs, params = engine.baseline_call(qual, obj, kind)
    value = kwargs.get(name, next(p.default for p in params if p.name == name))
    arr = (value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)).astype(np.float64).copy()
    arr.flat[int(position * arr.size)] = bad
    dtype = value.dtype if isinstance(value, (np.ndarray, torch.Tensor)) else np.float64
    value = torch.from_numpy(arr).to(dtype if isinstance(dtype, torch.dtype) else torch.float64) if as_tensor else arr
    if isinstance(dtype, np.dtype):
        value = value.to(torch.from_numpy(np.zeros(1, dtype)).dtype) if as_tensor else arr.astype(dtype)
    with pytest.raises((ValueError, TypeError), match=rf"(?<![\w.]){name}(?!\w)"):
        _call_with(qual, obj, kind, name, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(SHARED_ARRAY_CALLS),
       bad=st.one_of(st.text(max_size=4), st.none(), st.complex_numbers(allow_nan=False, min_magnitude=1e-3),
                     st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)))
def test_property_non_numeric_values_are_rejected_naming_the_argument(call, bad):
    qual, obj, kind, name = call
    if bad is None and any(p.name == name and p.default is None
                           for p in engine._signature(obj, kind)):
        return  # None is the documented default
    with pytest.raises((ValueError, TypeError), match=rf"(?<![\w.]){name}(?!\w)"):
        _call_with(qual, obj, kind, name, bad)
