import json

import numpy as np
import pytest

from companion.exercises import ExerciseCheck, RESULTS_ENV


def _check_square(fn):
    with ExerciseCheck("demo-square", points=3, hint="multiply x by itself") as ex:
        for x in [0.0, 2.0, -3.0, np.arange(4.0)]:
            ex.expect_close(f"x={x}", ex.call(f"x={x}", fn, x), np.square(x))


def test_passing_check_prints_and_records(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    _check_square(lambda x: x * x)
    assert "[PASS] demo-square" in capsys.readouterr().out
    row = json.loads(results.read_text())
    assert row == {"exercise": "demo-square", "points": 3, "passed": True, "score": 3,
                   "message": "all 4 checks passed"}


@pytest.mark.parametrize("student, reason", [
    (lambda x: x + x, "x=-3.0: expected 9, got -6"),
    (lambda x: 1 / 0, "raised ZeroDivisionError"),
    (lambda x: np.array([x]), "expected shape ()"),
])
def test_failing_check_raises_with_message(student, reason, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    with pytest.raises(AssertionError):
        _check_square(student)
    out = capsys.readouterr().out
    assert "[FAIL] demo-square" in out and reason in out and "Hint: multiply" in out
    row = json.loads(results.read_text())
    assert row["passed"] is False and row["score"] == 0 and reason in row["message"]


def test_stub_is_reported_as_not_attempted(capsys):
    def stub(x):
        raise NotImplementedError("write me")

    with pytest.raises(AssertionError):
        _check_square(stub)
    assert "not attempted" in capsys.readouterr().out


def test_expect_raises():
    def strict(x):
        if x < 0:
            raise ValueError("x")
        return x

    with ExerciseCheck("demo-raise", points=1) as ex:
        ex.expect_raises("negative", strict, -1)
    with pytest.raises(AssertionError):
        with ExerciseCheck("demo-raise", points=1) as ex:
            ex.expect_raises("positive", strict, 1)


# --------------------------------------------------------------------------------------
# implements=: a check fails when the student's function reaches the course's answer
# --------------------------------------------------------------------------------------

import sys  # noqa: E402
import types  # noqa: E402

from companion.exercises import _core, load_all, register, registry  # noqa: E402

_DEMO_SOURCE = '''

def slope(x, y):
    """The answer the exercise asks for: least-squares slope."""
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())

def fit_report(x, y):
    """Another companion function that uses slope internally."""
    return {"slope": slope(x, y), "n": len(x)}

def mean(x):
    """A companion helper the student may use."""
    return float(sum(x) / len(x))


class Fitter:
    def fit(self, x, y):
        return slope(x, y)
'''


@pytest.fixture()
def demo(monkeypatch):
    """A fake ``companion._demo_fit`` module and an exercise that implements its ``slope``."""
    module = types.ModuleType("companion._demo_fit")
    exec(compile(_DEMO_SOURCE, "_demo_fit.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "companion._demo_fit", module)

    @register("demo-slope", points=2, chapter="demo", implements=("companion._demo_fit.slope",))
    def check_slope(student_slope):
        rng = np.random.default_rng(0)
        with ExerciseCheck("demo-slope", points=2, hint="cov(x, y) / var(x)") as ex:
            for n in (5, 50):
                x, y = rng.standard_normal(n), rng.standard_normal(n)
                ex.expect_close(f"n={n}", ex.call(f"n={n}", student_slope, x, y), module.slope(x, y))

    yield module, check_slope
    registry.pop("demo-slope", None)
    _core._FORBIDDEN.pop("demo-slope", None)


def _verdict(check, fn, capsys):
    try:
        check(fn)
    except AssertionError as err:
        capsys.readouterr()
        return str(err)
    capsys.readouterr()
    return "passed"


def test_honest_solutions_pass_even_with_other_companion_functions(demo, capsys):
    module, check = demo

    def honest(x, y):
        dx = x - module.mean(x)  # another function of the same module: allowed
        return float((dx * (y - y.mean())).sum() / (dx * dx).sum())

    assert _verdict(check, honest, capsys) == "passed"
    assert _verdict(check, lambda x, y: float(np.polyfit(x, y, 1)[0]), capsys) == "passed"


def test_every_way_of_reaching_the_answer_fails_with_the_reason(demo, capsys):
    module, check = demo
    import importlib

    alias = module.slope                                   # from companion._demo_fit import slope as s
    attribute = importlib.import_module("companion._demo_fit")

    def helper(x, y):                                      # the student's own helper calls it
        return alias(x, y)

    def captured(f=module.slope):                          # hidden in a default argument / closure
        return lambda x, y: f(x, y)

    cases = {
        "direct alias": lambda x, y: alias(x, y),
        "module attribute": lambda x, y: attribute.slope(x, y),
        "student helper": lambda x, y: helper(x, y),
        "closure": captured(),
        "getattr by string": lambda x, y: getattr(attribute, "sl" + "ope")(x, y),
        "class method": lambda x, y: module.Fitter().fit(x, y),
        "caught exception": lambda x, y: (alias(x, y), 1 / 0)[0],
    }
    for name, fn in cases.items():
        message = _verdict(check, fn, capsys)
        assert "your function calls companion._demo_fit.slope" in message, (name, message)
        assert "write it yourself" in message


def test_reaching_the_answer_through_another_companion_function_counts(demo, capsys):
    module, check = demo
    message = _verdict(check, lambda x, y: module.fit_report(x, y)["slope"], capsys)
    assert "companion._demo_fit.slope (through companion._demo_fit.fit_report)" in message


def test_the_checks_own_reference_functions_are_forbidden_too(capsys, monkeypatch, tmp_path):
    from companion.exercises import scaling as ex

    if not hasattr(ex, "reference_parabola_vertex"):
        pytest.skip("the scaling checks have no reference_parabola_vertex any more")
    shortcut = lambda log10_d, loss: ex.reference_parabola_vertex(log10_d, loss)  # noqa: E731
    message = _verdict(ex.check_parabola_vertex, shortcut, capsys)
    assert "reference_parabola_vertex" in message and "write it yourself" in message
    # handed in as such, it passes in unit tests, but not under the grader
    assert _verdict(ex.check_parabola_vertex, ex.reference_parabola_vertex, capsys) == "passed"
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path / "r.jsonl"))
    assert "write it yourself" in _verdict(ex.check_parabola_vertex, ex.reference_parabola_vertex, capsys)


def test_the_watch_is_removed_after_the_call(demo, capsys):
    module, check = demo
    before = sys.getprofile()
    _verdict(check, lambda x, y: module.slope(x, y), capsys)
    assert sys.getprofile() is before


def test_switching_the_watch_off_or_moving_to_a_thread_fails(demo, capsys):
    import cProfile
    import threading
    from concurrent.futures import ThreadPoolExecutor

    module, check = demo

    def off(x, y):                       # sys.setprofile(None), then the answer
        sys.setprofile(None)
        return module.slope(x, y)

    def off_and_back(x, y):              # ... and the hook put back afterwards
        hook = sys.getprofile()
        sys.setprofile(None)
        result = module.slope(x, y)
        sys.setprofile(hook)
        return result

    def profiler(x, y):                  # another profiler replaces the hook
        p = cProfile.Profile()
        p.enable()
        p.disable()
        return float(np.polyfit(x, y, 1)[0])

    def pool(x, y):                      # a thread started during the call
        with ThreadPoolExecutor(1) as workers:
            return workers.submit(module.slope, x, y).result()

    def thread(x, y):
        out = []
        t = threading.Thread(target=lambda: out.append(module.slope(x, y)))
        t.start()
        t.join()
        return out[0]

    for fn in (off, off_and_back, pool, thread):
        assert "your function calls companion._demo_fit.slope" in _verdict(check, fn, capsys), fn.__name__
    assert "switched off the grader's watch" in _verdict(check, profiler, capsys)
    assert sys.getprofile() is None and threading.getprofile() is None
    assert type(sys.setprofile).__name__ == "builtin_function_or_method"

    def honest_in_a_thread(x, y):        # threads themselves are fine
        with ThreadPoolExecutor(1) as workers:
            return workers.submit(lambda: float(np.polyfit(x, y, 1)[0])).result()

    assert _verdict(check, honest_in_a_thread, capsys) == "passed"


def test_under_the_grader_a_thread_pool_started_before_the_check_is_watched(demo, capsys, monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    module, check = demo
    monkeypatch.setattr(_core, "_THREADS_WATCHED", [False])
    try:
        _core.watch_new_threads()  # what the grader's prologue does
        workers = ThreadPoolExecutor(1)
        workers.submit(int).result()  # the thread exists before the check
        message = _verdict(check, lambda x, y: workers.submit(module.slope, x, y).result(), capsys)
        assert "your function calls companion._demo_fit.slope" in message
        assert _verdict(check, lambda x, y: workers.submit(np.polyfit, x, y, 1).result()[0], capsys) == "passed"
        threading.setprofile(None)  # the notebook removes the grader's thread watch
        assert "switched off the grader's watch" in _verdict(
            check, lambda x, y: float(np.polyfit(x, y, 1)[0]), capsys)
        workers.shutdown()
    finally:
        threading.setprofile(None)
    assert sys.getprofile() is None and not _core._ACTIVE


def test_the_path_skips_decorator_wrappers(capsys):
    from companion import scaling
    from companion.exercises import scaling as ex

    def shortcut(C, E, A, B, alpha, beta):
        n, d, _ = scaling.compute_optimal(C, scaling.ChinchillaParams(E=E, A=A, B=B, alpha=alpha, beta=beta))
        return n, d

    message = _verdict(ex.check_compute_optimal, shortcut, capsys)
    assert "calls companion.scaling.compute_optimal" in message and "_validation" not in message


def test_every_registered_implements_name_resolves():
    """A typo in ``implements=`` would silently switch the guard off: every name must
    resolve to a function or class, and it must have code to watch."""
    for ex_id, info in load_all().items():
        for name in info.get("implements", ()):
            assert name.startswith("companion."), f"{ex_id}: {name} is not a companion function"
            obj = _core.resolve_implements(name)
            assert _core._code_objects(obj), f"{ex_id}: {name} has no Python code to watch"


def test_a_shared_decorator_never_makes_another_function_forbidden():
    """validate_params wraps many functions with the same wrapper code: watching that code
    would report any decorated companion call as the forbidden one. Only each function's
    own code is watched, so no code object is forbidden by two different names."""
    from companion._validation import Interval, validate_params

    @validate_params({"x": [Interval(float, None, None)]})
    def first(x):
        return x

    @validate_params({"x": [Interval(float, None, None)]})
    def second(x):
        return -x

    assert _core._code_objects(first) == [first.__wrapped__.__code__]
    assert not set(_core._code_objects(first)) & set(_core._code_objects(second))
    owners = {}
    for ex_id, info in load_all().items():
        for name in info.get("implements", ()):
            for code in _core._code_objects(_core.resolve_implements(name)):
                owners.setdefault(code, set()).add(name)
    shared = {code.co_name: names for code, names in owners.items() if len(names) > 1}
    assert not shared, f"code watched for several implements names: {shared}"


def test_register_rejects_bad_implements():
    with pytest.raises(ValueError, match="implements"):
        register("demo-bad", points=1, chapter="demo", implements=("slope",))
    with pytest.raises(ValueError, match="no attribute"):
        _core.resolve_implements("companion.scaling.no_such_function")


# --------------------------------------------------------------------------------------
# bad arguments: the check author's mistakes name the argument; the student's
# (a non-function, a non-number, a complex result) fail the case
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("points, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                           ("3", TypeError), (None, TypeError), (True, TypeError)])
def test_points_must_be_a_positive_int(points, error):
    with pytest.raises(error, match="points"):
        ExerciseCheck("demo-points", points=points)
    with pytest.raises(error, match="points"):
        register("demo-points", points=points, chapter="demo")
    assert "demo-points" not in registry


@pytest.mark.parametrize("kwargs, error, name", [
    ({"exercise_id": ""}, ValueError, "exercise_id"),
    ({"exercise_id": 3}, TypeError, "exercise_id"),
    ({"chapter": None}, TypeError, "chapter"),
    ({"implements": None}, TypeError, "implements"),
    ({"implements": 3.5}, TypeError, "implements"),
    ({"implements": ("companion.scaling.compute_optimal", 3)}, ValueError, "implements"),
])
def test_register_names_a_bad_argument(kwargs, error, name):
    args = {"exercise_id": "demo-args", "points": 1, "chapter": "demo", **kwargs}
    with pytest.raises(error, match=name):
        register(**args)
    assert "demo-args" not in registry


def test_exercise_check_names_a_bad_hint_or_implements():
    with pytest.raises(TypeError, match="hint"):
        ExerciseCheck("demo-hint", points=1, hint=3)
    with pytest.raises(TypeError, match="implements"):
        ExerciseCheck("demo-hint", points=1, implements=3)
    assert ExerciseCheck("demo-hint", points=1, implements="companion._validation.check_int").forbidden
    with pytest.raises(TypeError, match="name"):
        _core.resolve_implements(3)
    with pytest.raises(TypeError, match="exercise_id"):
        _core.forbidden_functions(None)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"rtol": float("nan")}, ValueError, "rtol"),
    ({"rtol": -1e-6}, ValueError, "rtol"),
    ({"atol": float("inf")}, ValueError, "atol"),
    ({"atol": "0.1"}, TypeError, "atol"),
    ({"atol": 1j}, TypeError, "atol"),
    ({"rtol": None}, TypeError, "rtol"),
    ({"expected": float("nan")}, ValueError, "expected"),
    ({"expected": np.array([1.0, np.inf])}, ValueError, "expected"),
    ({"expected": "1.0"}, TypeError, "expected"),
    ({"expected": None}, TypeError, "expected"),
    ({"expected": np.array([1 + 1j])}, TypeError, "expected"),
])
def test_expect_close_names_the_check_authors_bad_argument(kwargs, error, name):
    ex = ExerciseCheck("demo-close", points=1)
    args = {"got": 1.0, "expected": 1.0, **kwargs}
    with pytest.raises(error, match=name):
        ex.expect_close("case", **args)


@pytest.mark.parametrize("got, reason", [
    ("1.0", "expected real numbers"),            # a string that would convert to 1.0
    (None, "expected real numbers"),
    (np.array([1.0 + 1e-3j]), "expected real numbers"),   # the real part alone would match
    (float("nan"), "NaN or infinity"),
    (np.array([1.0, 1.0]), "expected shape ()"),
])
def test_expect_close_fails_the_case_for_a_bad_student_result(got, reason):
    ex = ExerciseCheck("demo-close", points=1)
    with pytest.raises(_core.ExerciseFailed, match=reason):
        ex.expect_close("case", got, 1.0)


def test_expect_close_accepts_tensors_ints_bools_and_lists():
    torch = pytest.importorskip("torch")
    ex = ExerciseCheck("demo-close", points=1)
    ex.expect_close("tensor", torch.tensor([1.0, 2.0], requires_grad=True) * 1, np.array([1, 2]))
    ex.expect_close("list of 0-d tensors", [torch.tensor(1.0), torch.tensor(2.0)], [1.0, 2.0])
    ex.expect_close("bools", np.array([True, False]), [1, 0])
    ex.expect_close("huge but equal", 1e300, 1e300)
    with pytest.raises(_core.ExerciseFailed, match="expected"):
        ex.expect_close("complex tensor", torch.tensor([1.0 + 0j]), 1.0)
    assert ex.cases_passed == 4


def test_expect_true_wants_a_verdict():
    torch = pytest.importorskip("torch")
    ex = ExerciseCheck("demo-true", points=1)
    ex.expect_true("bool", True)
    ex.expect_true("numpy bool", np.all(np.ones(3) > 0))
    ex.expect_true("0-d tensor", torch.tensor(True))
    with pytest.raises(_core.ExerciseFailed, match="case: why"):
        ex.expect_true("case", np.bool_(False), "why")
    for bad in ("yes", None, 1, np.array([True, False]), torch.ones(2, dtype=torch.bool)):
        with pytest.raises(TypeError, match="condition"):
            ex.expect_true("case", bad)
    assert ex.cases_passed == 3


def test_expect_raises_checks_its_exception_and_the_students_function():
    ex = ExerciseCheck("demo-raises", points=1)
    for bad in (None, 3, "ValueError", int, ()):
        with pytest.raises(TypeError, match="exception"):
            ex.expect_raises("case", lambda: 1 / 0, exception=bad)
    ex.expect_raises("tuple", lambda: 1 / 0, exception=(ValueError, ZeroDivisionError))
    with pytest.raises(_core.ExerciseFailed, match="expected ValueError or KeyError, nothing"):
        ex.expect_raises("tuple", lambda: 1, exception=(ValueError, KeyError))
    for bad in (None, 3):  # the student's name bound to something that is not a function
        with pytest.raises(_core.ExerciseFailed, match="case: expected a function"):
            ex.expect_raises("case", bad, exception=TypeError)
        with pytest.raises(_core.ExerciseFailed, match="case: expected a function"):
            ex.call("case", bad)


def test_a_bad_argument_inside_a_check_is_reported_as_the_check_failing(capsys):
    with pytest.raises(AssertionError, match="the check could not run: ValueError: rtol"):
        with ExerciseCheck("demo-inside", points=1) as ex:
            ex.expect_close("case", 1.0, 1.0, rtol=float("nan"))
    assert "[FAIL] demo-inside" in capsys.readouterr().out
