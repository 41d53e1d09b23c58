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
