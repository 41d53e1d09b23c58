"""The coursework tools: student notebooks (``python -m companion student``) and grading
(``python -m companion grade``).

The tests use a tiny chapter that follows the exercise convention
(``tests/fixtures/fixture_chapter.ipynb``, checks in ``tests/fixtures/coursework_exercises.py``,
chapter id ``fixture``), so they do not depend on the real chapters; one test, skipped
when no chapter notebook exists (or with ``COMPANION_SKIP_CHAPTER_RUNS=1``), generates the
student version of every ``book/*.ipynb`` chapter and runs it up to its first exercise.
"""

import ast
import copy
import csv
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from companion import coursework as cw
from companion.coursework.execute import execute
from companion.exercises import registry as global_registry

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHAPTER = FIXTURES / "fixture_chapter.ipynb"
BOOK_CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
MODULES = ("coursework_exercises",)
EXPECTED = {"fx-add": 2, "fx-stats": 3, "fx-n-params": 1}


def _source(cell):
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


@pytest.fixture(scope="module")
def registry():
    """The real registry plus the fixture chapter's checks (removed again afterwards)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(FIXTURES))
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")])))
        yield cw.exercise_registry(MODULES)
    for ex_id in EXPECTED:
        global_registry.pop(ex_id, None)
    sys.modules.pop("coursework_exercises", None)
    sys.modules.pop("fixture_lib", None)


@pytest.fixture(scope="module")
def chapter():
    return nbformat.read(CHAPTER, as_version=4)


@pytest.fixture(scope="module")
def student(chapter, registry):
    return cw.student_notebook(chapter, registry, name=CHAPTER.name)


def _answer_cell(nb, ex_id):
    return next(c for c in nb.cells if c.metadata.get("exercise") == ex_id and "check" not in c.metadata.get("tags", []))


def _check_cell(nb, ex_id):
    return next(c for c in nb.cells if c.metadata.get("exercise") == ex_id and "check" in c.metadata.get("tags", []))


# --------------------------------------------------------------------------------------
# stubs
# --------------------------------------------------------------------------------------

def _exec(source):
    namespace = {}
    exec(compile(source, "<stub>", "exec"), namespace)
    return namespace


def test_stub_keeps_signatures_and_docstrings_and_raises_the_instructions():
    message = 'Exercise x (2 points): write `f(a, b=2)` returning "a + b"; see \\ and ünïcode. ' * 3
    message = message.strip()
    source = (
        "import math\n\n"
        "def f(a, b=2):\n"
        '    """Add.\n\n    Returns a + b.\n    """\n'
        "    # secret comment\n"
        "    return a + b\n\n"
        "def g(\n    x,\n    y,\n):\n    # the trick\n    return math.hypot(x, y)\n\n"
        "def h(x): return 2 * x\n\n"
        "def _helper(v):\n    return v\n\n"
        "class Model:\n    \"\"\"A model.\"\"\"\n    scale = 3\n\n"
        "    def forward(self, x):\n        return self.scale * x\n\n"
        "f(1)\n"
    )
    stub = cw.stub_solution(source, message)
    names = _exec(stub)
    assert {"f", "g", "h", "Model", "math"} <= set(names) and "_helper" not in names
    assert names["f"].__doc__ == _exec(source)["f"].__doc__
    for call in (lambda: names["f"](1), lambda: names["g"](1, 2), lambda: names["h"](1),
                 lambda: names["Model"]().forward(1)):
        with pytest.raises(NotImplementedError) as err:
            call()
        assert str(err.value) == message  # the wrapped literal reassembles exactly
    for secret in ("return a + b", "secret comment", "hypot", "the trick", "2 * x", "scale = 3"):
        assert secret not in stub, secret
    assert "def g(\n    x,\n    y,\n):" in stub  # the author's formatting of the signature
    assert all(len(line) <= 100 for line in stub.splitlines())


def test_stub_of_a_value_answer_and_of_statements():
    stub = cw.stub_solution("w = 3 * 2\nn_params = w + 2\n", "set n_params", answers={"n_params"})
    assert "w =" not in stub and "n_params = None" in stub
    with pytest.raises(NotImplementedError, match="set n_params"):
        _exec(stub)
    assert _exec(stub.replace("n_params = None", "n_params = 8"))["n_params"] == 8
    both = cw.stub_solution("a, b = 1, 2\nwith open('f') as fh:\n    pass\n", "m")
    assert "a = None" in both and "b = None" in both and "fh = None" in both
    with pytest.raises(NotImplementedError, match="^only$"):
        _exec(cw.stub_solution("print(1)\n", "only"))
    ast.parse(cw.stub_solution("%matplotlib inline\ndef f():\n    return 1\n", "m"))


def test_stub_rejects_bad_input():
    with pytest.raises(ValueError, match="source"):
        cw.stub_solution("def f(:\n", "m")
    with pytest.raises(TypeError, match="source"):
        cw.stub_solution(None, "m")
    with pytest.raises(TypeError, match="message"):
        cw.stub_solution("x = 1", 3)
    with pytest.raises(TypeError, match="answers"):
        cw.stub_solution("x = 1", "m", answers="x")


# --------------------------------------------------------------------------------------
# student notebooks
# --------------------------------------------------------------------------------------

def test_find_exercises_reads_ids_points_tasks_and_cells(chapter, registry):
    found = {e.id: e for e in cw.find_exercises(chapter, registry)}
    assert {k: e.points for k, e in found.items()} == EXPECTED
    assert found["fx-stats"].title == "Mean and centering"
    assert found["fx-add"].task.startswith("Write `add(a, b)` that returns the elementwise sum")
    for ex in found.values():
        assert len(ex.solution_cells) == 1 and len(ex.check_cells) == 1
        assert ex.solution_cells[0] < ex.check_cells[0]


@pytest.mark.parametrize("bad_id", [3, None, "", ["fx-add"]])
def test_a_malformed_exercise_id_in_the_metadata_falls_back_to_the_label(chapter, registry, bad_id):
    nb = copy.deepcopy(chapter)
    _answer_cell(nb, "fx-add").metadata["exercise"] = bad_id
    found = {e.id: e for e in cw.find_exercises(nb, registry)}
    assert set(found) == set(EXPECTED) and found["fx-add"].solution_cells


def test_student_notebook_hides_every_solution_and_keeps_the_rest(chapter, student):
    nbformat.validate(student)
    markdown = "\n".join(_source(c) for c in student.cells if c.cell_type == "markdown")
    code = "\n".join(_source(c) for c in student.cells if c.cell_type == "code")
    assert "{solution-start}" not in markdown and "{solution-end}" not in markdown
    for secret in ("np.add(a, b)", "np.sum(x) / len(x)", "x - mean(x)\n", "3 * 2", "@title Solution"):
        assert secret not in code, secret
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    # every non-solution cell is kept, in order
    kept = [_source(c) for c in chapter.cells if "solution" not in c.metadata.get("tags", [])
            and "{solution-" not in _source(c)]
    shown = [re.sub(r"\*\*Exercise [\d.]+ \(", "**Exercise (", _source(c))  # numbered per chapter
             for c in student.cells if "answer" not in c.metadata.get("tags", [])]
    assert [s for s in shown if s in kept] == kept
    # one stub per exercise, with the exercise's task in its NotImplementedError
    for ex_id, points in EXPECTED.items():
        cell = _answer_cell(student, ex_id)
        assert cell.metadata["points"] == points and "raise NotImplementedError" in _source(cell)
        assert _source(_check_cell(student, ex_id)) == _source(_check_cell(chapter, ex_id))
    assert "(it must broadcast like numpy)" in _source(_answer_cell(student, "fx-add"))
    # the points table right after the title, and the chapter in the metadata
    assert _source(student.cells[0]).startswith("# Chapter 0")
    table = _source(student.cells[1])
    assert "**Total** | **6**" in table and "| 2 | `fx-stats` | Mean and centering | 3 |" in table
    meta = student.metadata["companion"]
    assert meta["chapter"] == "fixture" and meta["total_points"] == 6
    assert [e["id"] for e in meta["exercises"]] == list(EXPECTED)


def test_student_notebook_rejects_a_notebook_without_exercises(registry):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Notes")])
    with pytest.raises(ValueError, match="no graded exercise"):
        cw.student_notebook(nb, registry)
    with pytest.raises(TypeError, match="nb"):
        cw.student_notebook({"cells": []}, registry)


def test_chapter_is_identified_from_content_not_from_the_file_name(chapter, student, registry):
    assert cw.identify_chapter(student, registry) == ("fixture", EXPECTED)
    assert cw.identify_chapter(chapter, registry) == ("fixture", EXPECTED)  # no metadata
    bare = copy.deepcopy(student)
    bare.metadata.pop("companion")
    for cell in bare.cells:
        cell.metadata = {}
    assert cw.identify_chapter(bare, registry)[0] == "fixture"  # from the check calls only
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    assert cw.identify_chapter(empty, registry) == (None, {})


def test_cli_writes_student_notebooks(tmp_path, registry):
    assert cw.main(["student", str(FIXTURES), "-o", str(tmp_path / "student"),
                    "--exercises", MODULES[0]]) == 0
    written = nbformat.read(tmp_path / "student" / CHAPTER.name, as_version=4)
    assert written.metadata["companion"]["chapter"] == "fixture"
    assert cw.main(["student", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 2
    assert cw.main(["student", str(FIXTURES), "-o", str(FIXTURES)]) == 2  # never overwrite the book


def test_generator_names_cells_that_use_an_exercise(chapter, registry, tmp_path):
    nb = copy.deepcopy(chapter)
    # a cell that falls back to the reference while the stub raises runs: no note
    nb.cells.append(nbformat.v4.new_code_cell(
        "try:\n    total = add(1, 2)\nexcept NotImplementedError:\n    total = 3"))
    nb.cells.append(nbformat.v4.new_code_cell("print(add(1, 2), n_params)"))
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    log = []
    cw.write_student_notebooks(tmp_path / "chapter.ipynb", tmp_path / "out", registry=registry, log=log.append)
    notes = [line for line in log if "note:" in line]
    assert len(notes) == 1 and "uses add, n_params from exercise fx-add" in notes[0]
    assert f"cell {len(nb.cells) - 6 + 1} uses" in notes[0]  # 6 solution-block cells gone, 1 table added


def test_student_version_runs_and_fails_only_at_the_exercises(student, tmp_path, registry):
    nb = copy.deepcopy(student)
    env = dict(os.environ, COMPANION_NO_PROGRESS="1")
    run = execute(nb, timeout=120, cell_timeout=None, env=env, cwd=str(tmp_path), kernel_name="python3")
    assert run.stopped == ""
    failing = {i for i in run.errors}
    checks = {i for i, c in enumerate(nb.cells) if "check" in c.metadata.get("tags", [])}
    answers = {i for i, c in enumerate(nb.cells) if "answer" in c.metadata.get("tags", [])}
    assert checks <= failing <= checks | answers, run.errors
    first_exercise = min(checks | answers)
    assert all(i >= first_exercise for i in failing)
    assert all(run.errors[i].startswith("AssertionError") for i in checks)
    assert "[FAIL] fx-add: not attempted" in "".join(o.get("text", "") for o in nb.cells[min(checks)].outputs)


# --------------------------------------------------------------------------------------
# grading
# --------------------------------------------------------------------------------------

def _solve(nb, answers):
    nb = copy.deepcopy(nb)
    for ex_id, src in answers.items():
        _answer_cell(nb, ex_id).source = src
    return nb


SOLUTIONS = {
    "fx-add": "def add(a, b):\n    return a + b",
    "fx-stats": "def mean(x):\n    return sum(x) / len(x)\n\ndef centered(x):\n    return x - mean(x)",
    "fx-n-params": "n_params = 8",
}


CELL_LIMIT = 5


@pytest.fixture(scope="module")
def graded(tmp_path_factory, chapter, student, registry):
    """One grading run over a folder with every kind of submission (2 notebooks at a time)."""
    folder = tmp_path_factory.mktemp("submissions")
    (folder / "alice").mkdir()
    nbformat.write(chapter, folder / "alice" / "my_homework.ipynb")          # the reference solutions
    nbformat.write(student, folder / "bob.ipynb")                            # untouched student version
    # renamed, metadata stripped, cells reordered and deleted, the check called elsewhere,
    # plus attempts to forge results
    carol = _solve(student, SOLUTIONS)
    carol.metadata.pop("companion")
    carol.cells.remove(_check_cell(carol, "fx-add"))
    carol.cells.remove(_check_cell(carol, "fx-stats"))
    value = [c for c in carol.cells if c.metadata.get("exercise") == "fx-n-params"]
    carol.cells = [c for c in carol.cells if c not in value]
    value[-1].source = "import coursework_exercises as ex\n" + value[-1].source
    carol.cells[3:3] = value  # the last exercise moved before the first
    carol.cells.append(nbformat.v4.new_code_cell(
        "import json, os\n"
        "with open(os.environ['COMPANION_RESULTS'], 'a') as fh:\n"
        "    fh.write(json.dumps({'exercise': 'fx-stats', 'points': 3, 'passed': True, 'score': 3,"
        " 'message': 'forged'}) + '\\n')\n"
        "from companion.exercises import ExerciseCheck\n"
        "with ExerciseCheck('fx-stats', points=3):\n    pass\n"
        "ex.check_add(add)"))
    for cell in carol.cells:
        cell.metadata.pop("companion", None)
    (folder / "carol").mkdir()
    nbformat.write(carol, folder / "carol" / "renamed.ipynb")
    # an infinite loop after the first exercise
    dan = _solve(student, {"fx-add": SOLUTIONS["fx-add"], "fx-stats": "while True:\n    pass"})
    nbformat.write(dan, folder / "dan.ipynb")
    # a loop inside one C call, which ignores the interrupt
    dora = _solve(student, dict(SOLUTIONS, **{"fx-stats": "total = sum(range(10 ** 14))"}))
    nbformat.write(dora, folder / "dora.ipynb")
    # a syntax error in one exercise, the others solved
    erin = _solve(student, dict(SOLUTIONS, **{"fx-add": "def add(a, b)\n    return a + b"}))
    nbformat.write(erin, folder / "erin.ipynb")
    # shortcuts: the library's own answer, by alias, by module attribute, through another
    # library function; ivan is honest and uses another library function
    hana = _solve(student, dict(SOLUTIONS, **{
        "fx-stats": "from fixture_lib import mean as m\n\ndef mean(x):\n    return m(x)\n\n"
                    "def centered(x):\n    return x - mean(x)"}))
    nbformat.write(hana, folder / "hana.ipynb")
    (folder / "igor").mkdir()
    igor = _solve(student, dict(SOLUTIONS, **{
        "fx-stats": "import fixture_lib\n\ndef mean(x):\n    return fixture_lib.describe(x)['mean']\n\n"
                    "def centered(x):\n    return x - sum(x) / len(x)"}))
    nbformat.write(igor, folder / "igor" / "igor.ipynb")
    ivan = _solve(student, dict(SOLUTIONS, **{
        "fx-stats": "import fixture_lib\n\ndef mean(x):\n    return sum(x) / fixture_lib.size(x)\n\n"
                    "def centered(x):\n    return x - mean(x)"}))
    nbformat.write(ivan, folder / "ivan.ipynb")
    (folder / "frank.pdf").write_bytes(b"%PDF-1.4 not a notebook")
    (folder / "gina.ipynb").write_text("{this is not json")
    (folder / ".ipynb_checkpoints").mkdir()
    nbformat.write(chapter, folder / ".ipynb_checkpoints" / "alice-checkpoint.ipynb")
    output = folder.parent / "grades.csv"
    feedback = folder.parent / "feedback"
    log = []
    rows = cw.grade_submissions(folder, output, timeout=60, cell_timeout=CELL_LIMIT, jobs=2,
                                modules=MODULES, feedback_dir=feedback, show_progress=False,
                                log=log.append)
    return folder, output, rows, "\n".join(log), feedback


def _by_student(rows):
    out = {}
    for row in rows:
        out.setdefault(row["student"], {})[row["exercise"]] = row
    return out


def test_reference_solutions_get_full_marks(graded):
    alice = _by_student(graded[2])["alice"]
    assert {k: (r["score"], r["passed"]) for k, r in alice.items()} == {k: (p, True) for k, p in EXPECTED.items()}
    assert all(r["notebook"] == "alice/my_homework.ipynb" and r["chapter"] == "fixture" for r in alice.values())


def test_untouched_student_version_gets_zero_not_attempted(graded):
    bob = _by_student(graded[2])["bob"]
    assert set(bob) == set(EXPECTED)
    assert all(r["score"] == 0 and not r["passed"] and r["message"].startswith("not attempted")
               for r in bob.values())


def test_renamed_reordered_and_forged_submission(graded):
    carol = _by_student(graded[2])["carol"]
    assert carol["fx-add"]["score"] == 2          # check cell deleted, check called elsewhere
    assert carol["fx-n-params"]["score"] == 1     # moved before the first exercise
    stats = carol["fx-stats"]                     # check deleted, results forged
    assert stats["score"] == 0 and stats["message"].startswith("check not run")
    assert "2 result line(s) rejected" in stats["message"]


def test_infinite_loop_costs_one_cell_limit_and_the_rest_is_graded(graded):
    dan = _by_student(graded[2])["dan"]
    assert dan["fx-add"]["score"] == 2
    stats = dan["fx-stats"]
    assert stats["score"] == 0 and stats["message"].startswith(
        f"timeout: your solution cell (cell "), stats["message"]
    assert f"ran longer than {CELL_LIMIT} s and was interrupted" in stats["message"]
    assert dan["fx-n-params"]["message"].startswith("not attempted")  # the run went on


def test_a_cell_that_ignores_the_interrupt_costs_one_cell_limit_too(graded):
    """The kernel stays busy after the interrupt: the grader goes on in a fresh kernel
    without that cell, so the exercises after it are graded (not timed out one by one)."""
    dora = _by_student(graded[2])["dora"]
    assert dora["fx-add"]["score"] == 2 and dora["fx-n-params"]["score"] == 1, dora
    assert dora["fx-stats"]["score"] == 0 and dora["fx-stats"]["message"].startswith(
        "timeout: your solution cell (cell "), dora["fx-stats"]["message"]


def test_a_shortcut_to_the_librarys_answer_gets_zero_with_the_reason(graded):
    rows = _by_student(graded[2])
    for name, how in (("hana", "fixture_lib.mean"), ("igor", "fixture_lib.mean")):
        stats = rows[name]["fx-stats"]
        assert stats["score"] == 0 and f"your function calls {how}" in stats["message"], stats
        assert rows[name]["fx-add"]["score"] == 2 and rows[name]["fx-n-params"]["score"] == 1
    assert rows["ivan"]["fx-stats"]["score"] == 3  # another library function is fine


def test_syntax_error_and_non_notebooks_get_a_clear_reason(graded):
    rows = _by_student(graded[2])
    erin = rows["erin"]
    assert erin["fx-add"]["score"] == 0 and "SyntaxError" in erin["fx-add"]["message"]
    assert erin["fx-stats"]["score"] == 3 and erin["fx-n-params"]["score"] == 1
    assert rows["frank"][""]["message"].startswith("not a notebook")
    assert rows["gina"][""]["message"].startswith("not a valid notebook")
    assert not any("checkpoint" in r["notebook"] for r in graded[2])


def test_csv_and_summary(graded):
    folder, output, rows, log, _ = graded
    with open(output, newline="") as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == len(rows) == 3 * 9 + 2
    assert list(written[0]) == list(cw.CSV_FIELDS)
    assert "alice" in log and "6/6" in log and "0/6" in log and "timeout" in log


def test_second_run_resumes_and_regrades_only_changed_files(graded, tmp_path):
    folder, output, rows, _, _ = graded
    resumed = tmp_path / "grades.csv"
    resumed.write_bytes(output.read_bytes())
    log = []
    again = cw.grade_submissions(folder, resumed, timeout=20, modules=MODULES, show_progress=False,
                                 log=log.append)
    assert "graded 0 file(s)" in log[-1]
    key = lambda r: (r["notebook"], r["exercise"])  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, rows))
    assert {key(r): r["score"] for r in again} == {key(r): r["score"] for r in rows}
    # a changed file is graded again, its old rows replaced
    (folder / "frank.pdf").write_bytes(b"%PDF-1.4 a new version")
    log.clear()
    again = cw.grade_submissions(folder, resumed, timeout=20, modules=MODULES, show_progress=False,
                                 log=log.append)
    assert "graded 1 file(s)" in log[-1] and len(again) == len(rows)
    with pytest.raises(ValueError, match="not a grades file"):
        bad = tmp_path / "other.csv"
        bad.write_text("a,b\n1,2\n")
        cw.grade_submissions(folder, bad, modules=MODULES, show_progress=False, log=lambda *_: None)


def test_grade_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        cw.grade_submissions(tmp_path / "missing", tmp_path / "g.csv")
    with pytest.raises(ValueError, match="jobs"):
        cw.grade_submissions(tmp_path, tmp_path / "g.csv", jobs=0)
    with pytest.raises(ValueError, match="timeout"):
        cw.grade_submissions(tmp_path, tmp_path / "g.csv", timeout=-1)
    assert cw.main(["grade", str(tmp_path / "missing")]) == 2


def test_feedback_notebooks_summaries_and_the_wide_table(graded):
    folder, output, rows, log, feedback = graded
    executed = nbformat.read(feedback / "alice" / "my_homework.ipynb", as_version=4)
    texts = [_source(c) for c in executed.cells]
    assert texts[0].startswith("**Grader feedback: 6/6 points.**")
    for ex_id in EXPECTED:  # the verdict right after the exercise's check cell
        check = next(i for i, c in enumerate(executed.cells)
                     if c.metadata.get("exercise") == ex_id and "check" in c.metadata.get("tags", []))
        assert texts[check + 1].startswith(f"**Grader: Exercise ") and f"({ex_id})" in texts[check + 1]
    dan = nbformat.read(feedback / "dan" / "dan.ipynb", as_version=4)
    assert any("ran longer than" in _source(c) and "Grader:" in _source(c) for c in dan.cells)
    summary = (feedback / "dan" / "summary.md").read_text()
    assert "**Total: 2/6 points.**" in summary and "fx-stats" in summary and "timeout" in summary
    assert (feedback / "frank" / "summary.md").exists()
    with open(cw.wide_path(output), newline="") as fh:
        wide = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(wide) == {r["student"] for r in rows}  # one row per student
    assert wide["alice"]["total"] == "6" and wide["alice"]["max"] == "6"
    assert wide["dan"]["fx-add"] == "2" and wide["dan"]["fx-stats"] == "0"
    assert wide["alice"]["fixture total"] == "6"
    assert "-wide.csv" in log


def test_fast_mode_runs_only_what_the_exercises_need(chapter, student, registry):
    plan, note = cw.grading_plan(student, registry)
    assert note == ""
    by_id = {c.metadata.get("companion", {}).get("id"): i for i, c in enumerate(student.cells)}
    assert by_id["7d7dd3c2"] in plan          # the setup cell
    assert by_id["fx-data"] in plan           # declared in depends_on
    assert by_id["1e12cd9a"] not in plan      # an experiment no exercise needs
    for ex_id in EXPECTED:
        assert student.cells.index(_answer_cell(student, ex_id)) in plan
        assert student.cells.index(_check_cell(student, ex_id)) in plan
    # a cell the student added runs too; a depends_on that names no cell: grade in full
    mine = copy.deepcopy(student)
    mine.cells.insert(5, nbformat.v4.new_code_cell("helper = 1"))
    assert 5 in cw.grading_plan(mine, registry)[0]
    for cell in mine.cells:
        if cell.metadata.get("companion", {}).get("id") == "fx-data":
            cell.metadata["companion"]["id"] = "renamed"
            cell.pop("id", None)
    plan, note = cw.grading_plan(mine, registry)
    assert plan is None and "fx-data" in note
    # the reference chapter (no generator marks): setup, exercises, dependencies
    plan, _ = cw.grading_plan(chapter, registry)
    ids = [chapter.cells[i].get("id") for i in plan]
    assert ids[0] == "7d7dd3c2" and "fx-data" in ids and "1e12cd9a" not in ids


def test_fast_and_full_modes_agree_on_the_reference(chapter, registry, tmp_path):
    path = tmp_path / "ref.ipynb"
    nbformat.write(chapter, path)
    fast = cw.grade_notebook(path, modules=MODULES, timeout=60)
    full = cw.grade_notebook(path, modules=MODULES, timeout=60, full=True)
    assert [(r["exercise"], r["score"]) for r in fast] == [(r["exercise"], r["score"]) for r in full]
    assert sum(r["score"] for r in fast) == 6
    assert [r["number"] for r in fast] == ["1", "2", "3"]


def test_a_missing_chapter_cell_sends_the_notebook_to_the_full_mode(student, registry, tmp_path):
    """The student's solution uses a variable of a chapter cell no exercise declares: the
    fast run fails on a NameError, so the notebook is graded again in full, and passes."""
    nb = _solve(student, dict(SOLUTIONS, **{"fx-add": "def add(a, b):\n    return a + b + late"}))
    path = tmp_path / "uses_a_chapter_variable.ipynb"
    chapter_cell = nbformat.v4.new_code_cell("late = 0.0")  # a chapter cell, as the generator marks it
    chapter_cell.metadata["companion"] = {"id": "chapter-late"}
    nb.cells.insert(nb.cells.index(_answer_cell(nb, "fx-add")), chapter_cell)
    assert nb.cells.index(chapter_cell) not in cw.grading_plan(nb, registry)[0]
    nbformat.write(nb, path)
    rows = {r["exercise"]: r for r in cw.grade_notebook(path, modules=MODULES, timeout=60)}
    assert rows["fx-add"]["score"] == 2, rows["fx-add"]["message"]


# --------------------------------------------------------------------------------------
# numbering and leaks
# --------------------------------------------------------------------------------------

def test_exercises_are_numbered_per_chapter(chapter, registry):
    nb = cw.student_notebook(chapter, registry, name="07_fixture.ipynb")
    tasks = [_source(c) for c in nb.cells if "{exercise-start}" in _source(c)]
    assert ["**Exercise 7.1 (2 points).**" in tasks[0], "**Exercise 7.2 (3 points).**" in tasks[1],
            "**Exercise 7.3 (1 point).**" in tasks[2]] == [True] * 3
    assert _source(_answer_cell(nb, "fx-stats")).startswith("# Exercise 7.2 (fx-stats, 3 points)")
    assert [e["number"] for e in nb.metadata["companion"]["exercises"]] == ["7.1", "7.2", "7.3"]
    assert cw.chapter_number("rl") == 5 and cw.chapter_number("rl", "03_x.ipynb") == 3
    assert cw.chapter_number("unknown") is None


def test_rows_and_wide_columns_follow_the_exercise_numbers():
    from companion.coursework.grade import _number_key

    numbers = ["5.10", "5.2", "", "5.1", "x"]
    assert sorted(numbers, key=_number_key) == ["5.1", "5.2", "5.10", "", "x"]


def _with_markdown(chapter, text, metadata=None, at=None):
    nb = copy.deepcopy(chapter)
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata.update(metadata or {})
    cell["id"] = "leaky"
    nb.cells.insert(len(nb.cells) if at is None else at, cell)
    return nb


def test_a_solution_line_in_the_text_is_refused_with_cell_and_line(chapter, registry):
    nb = _with_markdown(chapter, "## Summary\n\nThe mean is just\n`np.sum(x)/len(x)`, as you found.")
    with pytest.raises(cw.LeakError) as err:
        cw.student_notebook(nb, registry, name="leaky.ipynb")
    message = str(err.value)
    assert "leaky.ipynb" in message and "(id leaky), line 4" in message and "fx-stats" in message
    assert "np.sum(x) / len(x)" in message
    # the same cell with a student version passes, and students get that text
    nb = _with_markdown(chapter, "The mean is `np.sum(x) / len(x)`.",
                        {"student_version": "The mean is what you computed above."})
    out = cw.student_notebook(nb, registry, name="leaky.ipynb")
    assert "The mean is what you computed above." in [_source(c) for c in out.cells]
    assert all("student_version" not in c.metadata for c in out.cells)


def test_a_solution_line_in_another_code_cell_is_refused(chapter, registry):
    nb = copy.deepcopy(chapter)
    nb.cells.append(nbformat.v4.new_code_cell("m = np.sum(x)   /  len(x)\nprint(m)"))
    with pytest.raises(cw.LeakError, match=r"line 1: gives away exercise fx-stats"):
        cw.student_notebook(nb, registry)


def test_a_value_answer_or_an_answer_formula_in_the_text_is_refused(chapter, registry):
    nb = copy.deepcopy(chapter)
    value = next(c for c in nb.cells if c.metadata.get("exercise") == "fx-n-params"
                 and "solution" in c.metadata.get("tags", []))
    value.source = "# @title Solution\nn_params = 8\nthreshold = 0.375"
    leaky = _with_markdown(nb, "As the exercise shows, the threshold is $0.375$.")
    with pytest.raises(cw.LeakError, match=r"line 1: gives away exercise fx-n-params: the number 0.375"):
        cw.student_notebook(leaky, registry)
    cw.student_notebook(_with_markdown(nb, "Thresholds such as 0.5 or 3 are common."), registry)
    # a formula for the answer's starred symbol, not shown by the task
    task = next(c for c in nb.cells if ":label: ex-fx-n-params" in _source(c))
    task.source = task.source.replace("Set `n_params`", "Set `n_params`, the count $P^\\star$")
    with pytest.raises(cw.LeakError, match=r"P\^\\star = 3 \\cdot 2 \+ 2"):
        cw.student_notebook(_with_markdown(nb, "Recall that $P^\\star = 3 \\cdot 2 + 2$."), registry)
    cw.student_notebook(_with_markdown(nb, "We count $P^\\star$ below."), registry)
    # a starred symbol the task only mentions (not what it asks for) is not an answer
    task.source = task.source.replace("with a bias.", "with a bias. The check verifies $Q^\\star$ too.")
    cw.student_notebook(_with_markdown(nb, "Later, $Q^\\star = \\log(2)$."), registry)


def test_distinctive_parts_ignore_boilerplate():
    from companion.coursework.leaks import distinctive_parts

    expressions, numbers = distinctive_parts(
        "import numpy as np\n\ndef f(x, eps=1e-12):\n    \"\"\"np.sum(x) / len(x)\"\"\"\n"
        "    x = np.asarray(x, dtype=float)\n    n = len(x)\n    return np.sum(x * x) / (n + eps) * 0.28\n")
    assert list(expressions.values()) == ["np.sum(x * x) / (n + eps) * 0.28"]
    assert numbers == {}


@pytest.mark.skipif(not BOOK_CHAPTERS, reason="no chapter notebook in book/ yet")
@pytest.mark.parametrize("path", BOOK_CHAPTERS, ids=lambda p: p.stem)
def test_the_shipped_chapters_give_no_answer_away(path):
    nb = nbformat.read(path, as_version=4)
    student = cw.student_notebook(nb, cw.exercise_registry(), name=path.name)  # raises LeakError
    number = int(path.name[:2])
    assert all(e["number"].startswith(f"{number}.") for e in student.metadata["companion"]["exercises"])


# --------------------------------------------------------------------------------------
# the command line: one line and a non-zero exit for every bad path
# --------------------------------------------------------------------------------------

def _cli(capsys, *argv):
    status = cw.main(list(argv))
    err = capsys.readouterr().err.strip()
    return status, err


def test_cli_bad_paths_get_one_line_and_a_nonzero_exit(tmp_path, capsys, registry):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        ("grade", str(FIXTURES), "-o", str(tmp_path / "dir")),
        ("grade", str(tmp_path / "missing")),
        ("grade", str(FIXTURES), "-o", str(tmp_path / "g.csv"), "--feedback", str(tmp_path / "file.txt")),
        ("grade", str(FIXTURES), "-o", str(tmp_path / "g.csv"), "--kernel", "no-such-kernel"),
        ("student", str(FIXTURES), "-o", str(tmp_path / "file.txt"), "--exercises", MODULES[0]),
        ("student", str(tmp_path / "missing"), "-o", str(tmp_path / "out")),
        ("student", str(FIXTURES), "-o", str(FIXTURES)),
        ("student", str(FIXTURES), "--exercises", "no_such_module_xyz"),
        ("student", str(tmp_path / "file.txt"), "-o", str(tmp_path / "out")),    # not a notebook
        ("student", str(tmp_path / "dir"), "-o", str(tmp_path / "out")),         # no notebook in it
        ("student", "", "-o", str(tmp_path / "out")),                            # "" is not "."
        ("student", str(FIXTURES), "-o", str(tmp_path / "file.txt" / "out"), "--exercises", MODULES[0]),
        ("grade", ""),
        ("grade", str(tmp_path / "dir"), "-o", str(tmp_path / "g.csv")),        # nothing to grade
        ("grade", str(FIXTURES), "-o", str(tmp_path / "file.txt" / "g.csv")),   # parent is a file
        ("grade", str(FIXTURES), "-o", str(tmp_path / "junk.csv")),             # not a grades file
        ("grade", str(FIXTURES), "-o", str(tmp_path / "g.csv"), "--feedback", str(FIXTURES)),
        ("grade", str(FIXTURES), "-o", str(tmp_path / "g.csv"), "--feedback", str(FIXTURES.parent)),
        ("grade", str(FIXTURES), "--timeout", "abc"),                            # argparse, one line too
        ("grade", str(FIXTURES), "-j", "0"),
        ("grade", str(FIXTURES), "--cell-timeout", "nan"),
        ("bogus",),
    ]
    (tmp_path / "junk.csv").write_bytes(bytes(range(256)))
    for argv in cases:
        status, err = _cli(capsys, *argv)
        assert status == 2, argv
        assert err.startswith("error: ") and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "g.csv").exists()  # every case stopped before grading anything


def test_cli_a_broken_exercise_module_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_syntax_exercises.py").write_text("def check(:\n")
    (tmp_path / "broken_import_exercises.py").write_text("raise RuntimeError('boom')\n")
    for module, reason in (("broken_syntax_exercises", "SyntaxError"), ("broken_import_exercises", "boom"),
                           ("no_such_module_xyz", "not found")):
        for command in (("student", str(FIXTURES), "-o", str(tmp_path / "out")),
                        ("grade", str(FIXTURES), "-o", str(tmp_path / "g.csv"))):
            status, err = _cli(capsys, *command, "--exercises", module)
            assert status == 2 and len(err.splitlines()) == 1, (module, err)
            assert module in err and reason in err, err
        sys.modules.pop(module, None)


def test_cli_student_skips_a_corrupt_notebook_and_names_it(tmp_path, capsys, registry):
    source = tmp_path / "book"
    source.mkdir()
    nbformat.write(nbformat.read(CHAPTER, as_version=4), source / "01_good.ipynb")
    (source / "02_broken.ipynb").write_text('{"cells": [')
    (source / "03_binary.ipynb").write_bytes(bytes(range(256)))
    (source / "04_schema.ipynb").write_text('{"cells": [1, 2], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    broken = nbformat.read(CHAPTER, as_version=4)
    _answer_cell(broken, "fx-add").source = "def add(a, b:\n    return a + b\n"
    nbformat.write(broken, source / "05_bad_solution.ipynb")
    status = cw.main(["student", str(source), "-o", str(tmp_path / "out"), "--exercises", MODULES[0]])
    captured = capsys.readouterr()
    assert status == 0 and captured.err == "", captured.err
    for name in ("02_broken", "03_binary", "04_schema"):
        assert f"skipped {name}.ipynb: not a valid notebook" in captured.out
    assert "skipped 05_bad_solution.ipynb: no student version (ValueError: the solution cell of fx-add" \
        in captured.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01_good.ipynb"]


def test_cli_student_on_a_folder_of_only_corrupt_notebooks_fails_in_one_line(tmp_path, capsys, registry):
    source = tmp_path / "book"
    source.mkdir()
    (source / "01_broken.ipynb").write_text('{"cells": [')
    status, err = _cli(capsys, "student", str(source), "-o", str(tmp_path / "out"), "--exercises", MODULES[0])
    assert status == 2 and err == f"error: source {source}: no student notebook written (1 notebook(s) " \
                                  "skipped, see above)"
    status, err = _cli(capsys, "student", str(source / "01_broken.ipynb"), "-o", str(tmp_path / "out"),
                       "--exercises", MODULES[0])
    assert status == 2 and "01_broken.ipynb: not a valid notebook" in err and len(err.splitlines()) == 1


def test_cli_student_refuses_a_leak_with_exit_1(tmp_path, capsys, chapter, registry):
    source = tmp_path / "book"
    source.mkdir()
    nbformat.write(_with_markdown(chapter, "Use `np.sum(x) / len(x)`."), source / "01_leaky.ipynb")
    status = cw.main(["student", str(source), "-o", str(tmp_path / "out"), "--exercises", MODULES[0]])
    captured = capsys.readouterr()
    assert status == 1 and "01_leaky.ipynb" in captured.err and "gives away exercise fx-stats" in captured.err
    assert not (tmp_path / "out" / "01_leaky.ipynb").exists()


def test_python_dash_m_companion_and_the_package_layout():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "companion", "grade", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--full" in out and "--cell-timeout" in out and "--feedback" in out
    import companion.coursework as package

    assert Path(package.__file__).name == "__init__.py"
    for job in ("notebook", "stubs", "leaks", "student", "execute", "results", "grade", "tables", "cli"):
        assert (Path(package.__file__).parent / f"{job}.py").exists()


# --------------------------------------------------------------------------------------
# the real chapters (skipped until they exist)
# --------------------------------------------------------------------------------------

@pytest.mark.skipif(not BOOK_CHAPTERS, reason="no chapter notebook in book/ yet")
@pytest.mark.skipif(os.environ.get("COMPANION_SKIP_CHAPTER_RUNS") == "1",
                    reason="COMPANION_SKIP_CHAPTER_RUNS=1: the chapters run (about 1-2 min each) are skipped")
@pytest.mark.parametrize("path", BOOK_CHAPTERS, ids=lambda p: p.stem)
def test_student_version_of_every_chapter_runs_up_to_its_first_exercise(path, tmp_path):
    registry = cw.exercise_registry()
    chapter = nbformat.read(path, as_version=4)
    nb = cw.student_notebook(chapter, registry, name=path.name)
    assert nb.metadata["companion"]["total_points"] > 0
    first_check = min(i for i, c in enumerate(nb.cells) if "check" in c.metadata.get("tags", []))
    env = dict(os.environ, COMPANION_NO_PROGRESS="1", COMPANION_EXPLORER="static")
    run = execute(nb, timeout=600, cell_timeout=None, env=env, cwd=str(tmp_path),
                      kernel_name="python3", stop_after=first_check)
    assert run.stopped == "", run.stopped
    assert set(run.errors) <= {first_check}, f"cells failed before the first exercise: {run.errors}"
    assert run.errors.get(first_check, "").startswith("AssertionError"), "the untouched check must fail"
    output = "".join(o.get("text", "") for o in nb.cells[first_check].outputs)
    assert "not attempted" in output


def test_the_book_numbers_exercises_per_chapter(tmp_path):
    """book/_ext/exercise_numbers.py on a two-chapter Sphinx project: 'Exercise 2.1', not 3."""
    pytest.importorskip("sphinx_exercise")
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    (src / "book").mkdir(parents=True)
    (src / "conf.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nextensions = ['sphinx_exercise', 'exercise_numbers']\n"
        % str(ROOT / "book" / "_ext"))
    (src / "index.rst").write_text("Book\n====\n\n.. toctree::\n\n   book/01_a\n   book/02_b\n")
    for doc, count in (("01_a", 2), ("02_b", 2)):
        body = "".join(f".. exercise:: Task {k}\n   :label: ex-{doc}-{k}\n\n   Do {k}.\n\n"
                       for k in range(1, count + 1))
        (src / "book" / f"{doc}.rst").write_text(f"{doc}\n====\n\n{body}See :numref:`ex-{doc}-2`.\n")
    app = Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "doctrees"), "html",
                 status=None, warning=None, freshenv=True)
    app.build()
    first = (tmp_path / "out" / "book" / "01_a.html").read_text()
    second = (tmp_path / "out" / "book" / "02_b.html").read_text()
    assert "Exercise 1.1" in first and "Exercise 1.2" in first
    assert "Exercise 2.1" in second and "Exercise 2.2" in second and "Exercise 3" not in second
