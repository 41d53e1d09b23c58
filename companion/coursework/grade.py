"""Grading: one submitted notebook (:func:`grade_notebook`) and a folder of them
(:func:`grade_submissions`).

Each notebook runs in a fresh kernel. The default, fast mode runs only the cells the
exercises need (:func:`~companion.coursework.notebook.grading_plan`): the setup cell, the
exercise cells, the cells they declare in ``depends_on``, and the cells a student added;
``full=True`` runs every cell. A cell that runs longer than ``cell_timeout`` is
interrupted and the run goes on, so an infinite loop costs at most that; a cell that
ignores the interrupt (a loop inside one C call) costs that plus a short probe, and the
run goes on in a fresh kernel without it (the cells before it run again).
"""

from __future__ import annotations

import copy
import os
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from . import execute as _execution
from .execute import execute
from .notebook import (MODULES_ENV, _given_path, chapter_number, exercise_registry, find_exercises,
                       grading_plan, identify_chapter, number_exercises, source)
from .results import KEY_ENV, PROLOGUE, read_results, sha256
from .stubs import stub_hash
from .tables import (CSV_FIELDS, annotate, append_rows, read_grades, row, summary, write_student_summaries,
                     write_wide)

__all__ = ["grade_notebook", "grade_submissions", "DEFAULT_CELL_TIMEOUT", "wide_path"]

#: seconds a cell may run before the grader interrupts it
DEFAULT_CELL_TIMEOUT = 120.0
_SKIP_DIRS = {".ipynb_checkpoints", "__MACOSX", "__pycache__", ".git"}


def _student_of(relative: Path) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _number_key(number: str) -> tuple:
    """``"5.10"`` -> ``(5, 10)`` (numeric order); an exercise without a number goes last."""
    parts = str(number or "").split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (10 ** 9,)


def wide_path(output) -> Path:
    """Where the wide table goes: ``grades.csv`` -> ``grades-wide.csv``."""
    output = Path(output)
    return output.with_name(f"{output.stem}-wide{output.suffix or '.csv'}")


def _kernel_env(results: Path, key_file: Path, registry: dict, expected: dict, modules, threads) -> dict:
    env = dict(os.environ, COMPANION_RESULTS=str(results), COMPANION_NO_PROGRESS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    env[KEY_ENV] = str(key_file)
    needed = {registry[e]["module"] for e in expected if e in registry}
    env[MODULES_ENV] = ",".join(sorted(needed) + [m for m in modules if m not in needed])
    env.pop("MPLBACKEND", None)
    # the kernel runs in a scratch folder: make the import path absolute, and let it
    # import the extra exercise modules from where the grader was started
    paths = [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([os.getcwd()] if modules else []))
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = env["COMPANION_THREADS"] = str(threads)
    return env


def _run(nb, registry, expected, *, modules, timeout, cell_timeout, kernel_name, threads, only):
    """Execute ``nb`` (its prologue is cell 0) once; returns (run, verdicts, rejected)."""
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="companion-grade-") as tmp:
        key_file, results = Path(tmp) / "key", Path(tmp) / "results.jsonl"
        key_file.write_bytes(key)
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        env = _kernel_env(results, key_file, registry, expected, modules, threads)
        cells = set(only) if only is not None else {i for i, c in enumerate(nb.cells) if c.cell_type == "code"}
        skipped, errors, seconds = set(), {}, 0.0
        while True:
            key_file.write_bytes(key)  # the prologue deletes it
            run = execute(nb, timeout=timeout - seconds, cell_timeout=cell_timeout, env=env,
                          cwd=str(workdir), kernel_name=kernel_name, prologue=True, only=cells - skipped)
            seconds += run.seconds
            errors = {i: e for i, e in errors.items() if i in skipped} | run.errors
            if run.stopped != "stuck":
                break
            # a cell ignored the interrupt (a loop inside one C call): go on in a fresh
            # kernel without it; the cells before it run again to rebuild the state, those
            # that timed out do not
            skipped |= {run.stopped_at} | {i for i, e in run.errors.items() if e.startswith("Timeout")}
            if timeout - seconds <= 1:
                run.stopped = "timeout"
                break
        run.errors, run.seconds = errors, seconds
        verdicts, rejected = read_results(results, key)
    return run, verdicts, rejected


def _rows(nb, run, verdicts, rejected, expected, exercises, *, student, notebook, chapter, sha,
          timeout, cell_timeout) -> list[dict]:
    """One row per expected exercise from one run (``nb`` has the prologue at index 0)."""
    def where(index):  # cell numbers as the student sees them (1-based, prologue removed)
        return f"cell {index}" if index is not None else "an unknown cell"

    def number(ex_id):
        return exercises[ex_id].number if ex_id in exercises else ""

    if run.stopped == "setup failed" or run.stopped.startswith("kernel failed"):
        reason = run.errors.get(0, run.stopped)
        return [row(student, notebook, chapter, ex_id, pts, 0, False,
                    f"grader error, not the student's: {run.stopped}: {reason}", sha, number(ex_id))
                for ex_id, pts in expected.items()]
    rows = []
    for ex_id, points in expected.items():
        found = verdicts.get(ex_id, [])
        passed = any(v["passed"] for v in found)
        ex = exercises.get(ex_id)
        stub_unchanged = ex is not None and any(
            nb.cells[i + 1].get("metadata", {}).get("companion", {}).get("stub_sha256")
            == stub_hash(source(nb.cells[i + 1])) for i in ex.solution_cells)
        own_errors = [(i + 1, what) for what, cells in
                      (("your solution cell", ex.solution_cells if ex else []),
                       ("the check cell", ex.check_cells if ex else [])) for i in cells]
        own_errors = [(i, what) for i, what in own_errors if i in run.errors]
        if passed:
            message = next(v["message"] for v in found if v["passed"])
        elif found and stub_unchanged:
            message = "not attempted (the solution cell is still the stub)"
        elif found:
            message = found[-1]["message"]
            if message.startswith("not attempted"):
                message = "not attempted: " + message[len("not attempted"):].strip(" :")
            if "KeyboardInterrupt" in message and run.stopped == "timeout":
                message = f"timeout: the notebook did not finish within {timeout:g} s"
            elif "KeyboardInterrupt" in message and cell_timeout:
                message = f"timeout: the check ran longer than {cell_timeout:g} s and was interrupted"
        elif own_errors and run.errors[own_errors[0][0]].startswith("Timeout"):
            i, what = own_errors[0]
            limit = min(cell_timeout or timeout, timeout)
            message = (f"timeout: {what} ({where(i)}) ran longer than {limit:g} s and was "
                       "interrupted; the check did not pass")
        elif run.stopped == "timeout":
            message = (f"timeout: the notebook did not finish within {timeout:g} s "
                       f"(stopped in {where(run.stopped_at)}); the check did not run")
        elif run.stopped == "kernel died":
            message = f"kernel died in {where(run.stopped_at)}; the check did not run"
        elif stub_unchanged:
            message = "not attempted (the solution cell is still the stub; the check did not run)"
        else:
            message = "check not run"
            if own_errors:
                i, what = own_errors[0]
                message += f": {what} ({where(i)}) raised {run.errors[i]}"
            elif any(i > 0 for i in run.errors):
                first = min(i for i in run.errors if i > 0)
                message += f"; the first error was in {where(first)}: {run.errors[first]}"
        if rejected.get(ex_id):
            message += f" [{rejected[ex_id]} result line(s) rejected: not written by the check]"
        rows.append(row(student, notebook, chapter, ex_id, points, points if passed else 0,
                        passed, message, sha, number(ex_id)))
    return rows


def _missing_name(rows, run, exercises) -> bool:
    """True when the fast mode may have failed an exercise for want of a chapter cell it
    skipped: a NameError in the exercise's cells or the check's message, while its own
    solution cells ran without error."""
    for r in rows:
        ex = exercises.get(r["exercise"])
        if r["passed"] or ex is None:
            continue
        if any(i + 1 in run.errors for i in ex.solution_cells):
            continue
        errors = [run.errors.get(i + 1, "") for i in ex.check_cells]
        if "NameError" in str(r["message"]) or any(e.startswith("NameError") for e in errors):
            return True
    return False


def grade_notebook(path, root=None, *, timeout: float = 600,
                   cell_timeout: float | None = DEFAULT_CELL_TIMEOUT, full: bool = False,
                   kernel_name: str = "python3", modules: Sequence[str] = (),
                   feedback_dir=None, executed_dir=None, threads: int | None = None) -> list[dict]:
    """Grade one submitted file: execute it in a fresh kernel and read its checks' verdicts.

    Parameters
    ----------
    path : str or Path
        The submitted file (anything: a file that is not a valid notebook gets one row
        saying so).
    root : str or Path, optional
        The submissions folder; the student is the first folder below it, or the file
        name without extension (default: the file's folder).
    timeout : float
        Seconds the whole notebook may run (kernel start excluded); exercises whose
        check had not run by then get ``timeout``.
    cell_timeout : float or None
        Seconds one cell may run before it is interrupted (the run then goes on);
        default 120, None for no per-cell limit.
    full : bool
        Run every cell of the notebook. By default (the fast mode) only the cells the
        exercises need run (see :func:`~companion.coursework.notebook.grading_plan`); a
        notebook whose ``depends_on`` names a missing cell, or whose exercise failed on
        a ``NameError`` in the fast mode, is graded again in full.
    kernel_name : str
        Jupyter kernel to run in (default ``python3``, the grader's own interpreter).
    modules : sequence of str
        Extra exercise modules (see :func:`exercise_registry`).
    feedback_dir : str or Path, optional
        When given, the executed notebook, with the grader's verdict after each
        exercise, is saved in ``feedback_dir/<student>/``.
    executed_dir : str or Path, optional
        Older name of ``feedback_dir``.
    threads : int, optional
        Thread count for the kernel's numpy/torch (set when grading in parallel).

    Returns
    -------
    list of dict
        One row per exercise of the notebook's chapter, with the keys
        :data:`CSV_FIELDS`; one row with an empty exercise when the file cannot be graded.
    """
    path = _given_path(path, "path")
    if not path.is_file():
        raise ValueError(f"path {path} is not a file")
    root = _given_path(root, "root") if root is not None else path.parent
    relative = path.resolve().relative_to(Path(root).resolve())
    student, notebook, sha = _student_of(relative), relative.as_posix(), sha256(path)
    feedback_dir = feedback_dir if feedback_dir is not None else executed_dir

    def single(message):
        return [row(student, notebook, "", "", 0, 0, False, message, sha)]

    if path.suffix.lower() != ".ipynb":
        return single(f"not a notebook: {path.name} is not an .ipynb file")
    try:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as err:  # JSON errors, wrong schema, binary junk, ...
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        return single(f"not a valid notebook: {detail[:200]}")
    registry = exercise_registry(modules)
    chapter, expected = identify_chapter(nb, registry)
    if not chapter or not expected:
        return single("unknown chapter: the notebook shows no exercise of the course "
                      "(no companion metadata, exercise ids or check calls)")

    meta = nb.get("metadata", {}).get("companion", {})
    meta = meta if isinstance(meta, dict) else {}
    exercises = {e.id: e for e in number_exercises(
        find_exercises(nb), chapter_number(chapter, str(meta.get("source") or "")))}
    listed = {e.get("id"): e.get("number") for e in meta.get("exercises", []) if isinstance(e, dict)}
    for ex_id, ex in exercises.items():
        ex.number = listed.get(ex_id) or ex.number
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    plan, note = (None, "") if full else grading_plan(nb, registry)
    mode = "full" if plan is None else "fast"
    options = dict(modules=modules, timeout=timeout, cell_timeout=cell_timeout,
                   kernel_name=kernel_name, threads=threads)
    context = dict(student=student, notebook=notebook, chapter=chapter, sha=sha, timeout=timeout,
                   cell_timeout=cell_timeout)

    def attempt(only):
        run_nb = copy.deepcopy(nb)
        run_nb.cells.insert(0, nbformat.v4.new_code_cell(PROLOGUE))
        run, verdicts, rejected = _run(run_nb, registry, expected, only=only, **options)
        return run_nb, run, _rows(run_nb, run, verdicts, rejected, expected, exercises, **context)

    # rows in the order students see the exercises (1.1, 1.2, ...), not the registry's
    expected = dict(sorted(expected.items(), key=lambda item: _number_key(
        exercises[item[0]].number if item[0] in exercises else "")))
    run_nb, run, rows = attempt(None if plan is None else {0} | {i + 1 for i in plan})
    if mode == "fast" and _missing_name(rows, run, exercises):
        mode = "full"
        run_nb, run, rows = attempt(None)
    if feedback_dir is not None:
        executed = copy.copy(run_nb)
        executed.cells = run_nb.cells[1:]  # without the grader's prologue
        target = Path(feedback_dir) / student / Path(*relative.parts[1:] or relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(annotate(executed, rows, exercises, mode), target)
    return rows


# ----------------------------------------------------------------------------------------
# A folder of submissions
# ----------------------------------------------------------------------------------------

def _submitted_files(folder: Path, exclude: Iterable[Path]) -> list[Path]:
    """Every file under ``folder`` but hidden ones and those under ``exclude``."""
    excluded = [p.resolve() for p in exclude]
    if folder.is_file():
        return [folder]
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(p in _SKIP_DIRS or p.startswith(".") for p in parts):
            continue
        resolved = path.resolve()
        if path.is_file() and not any(resolved == e or e in resolved.parents for e in excluded):
            files.append(path)
    return files


def _grade_job(args: tuple) -> list[dict]:
    path, root, options = args
    try:
        return grade_notebook(path, root, **options)
    except Exception as err:  # never let one submission stop the run
        relative = Path(path).resolve().relative_to(Path(root).resolve())
        sha = sha256(Path(path)) if Path(path).is_file() else ""
        return [row(_student_of(relative), relative.as_posix(), "", "", 0, 0, False,
                    f"grader error: {type(err).__name__}: {err}", sha)]


def _check_output(path: Path, what: str, *, folder: bool = False) -> Path:
    """Fail early (before any grading) on an output path that cannot be written."""
    if folder:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{what} {path} is an existing file, not a folder")
    elif path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name such as {path / 'grades.csv'}")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{what} {path}: {parent} is not writable")
    return path


def grade_submissions(folder, output, *, timeout: float = 600,
                      cell_timeout: float | None = DEFAULT_CELL_TIMEOUT, full: bool = False,
                      jobs: int = 1, force: bool = False, kernel_name: str = "python3",
                      modules: Sequence[str] = (), feedback_dir=None, executed_dir=None,
                      show_progress: bool | None = None, log=print) -> list[dict]:
    """Grade every file under a submissions folder and write the grades.

    Each file is graded by :func:`grade_notebook`; its rows are appended to ``output``
    as soon as it is done, so an interrupted run loses nothing. Files already in
    ``output`` with the same path and content hash are skipped (their rows are kept)
    unless ``force``; a file whose content changed is graded again and its old rows
    are replaced. Hidden files and folders and ``.ipynb_checkpoints`` are ignored. At the
    end the wide table (one row per student, :func:`wide_path`) is written next to
    ``output`` and, with ``feedback_dir``, one ``summary.md`` per student.

    Parameters
    ----------
    folder : str or Path
        The submissions folder (or a single file).
    output : str or Path
        The grades CSV (columns :data:`CSV_FIELDS`); not a folder.
    timeout, cell_timeout, full, kernel_name, modules, feedback_dir, executed_dir
        As in :func:`grade_notebook`.
    jobs : int
        Notebooks graded in parallel (each in its own kernel, which then uses one thread).
    force : bool
        Grade everything again and rewrite ``output``.
    show_progress : bool, optional
        Progress bar (default: on unless ``COMPANION_NO_PROGRESS`` is set).
    log : callable
        Where the summary table goes (default ``print``).

    Returns
    -------
    list of dict
        All the rows of ``output`` (kept and new).
    """
    from .._validation import check_int, check_positive

    folder, output = _given_path(folder, "folder"), _given_path(output, "output")
    if not folder.exists():
        raise ValueError(f"folder {folder} does not exist")
    jobs = check_int(jobs, "jobs", minimum=1)
    timeout = check_positive(timeout, "timeout")
    if cell_timeout is not None:
        cell_timeout = check_positive(cell_timeout, "cell_timeout")
    feedback_dir = feedback_dir if feedback_dir is not None else executed_dir
    _check_output(output, "output")
    _check_output(wide_path(output), "the wide table")
    if feedback_dir is not None:
        feedback_dir = _check_output(_given_path(feedback_dir, "feedback_dir"), "feedback folder", folder=True)
        inside = folder.resolve()
        if feedback_dir.resolve() == inside or feedback_dir.resolve() in inside.parents:
            raise ValueError(f"feedback folder {feedback_dir} must not be or contain the submissions folder "
                             f"{folder} (its files would not be graded)")
    registry = exercise_registry(modules)  # fail early on a bad module name
    from jupyter_client.kernelspec import NoSuchKernel, get_kernel_spec

    try:
        get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise ValueError(f"kernel_name {kernel_name!r} is not an installed Jupyter kernel "
                         "(see jupyter kernelspec list)") from None
    root = folder if folder.is_dir() else folder.parent
    tmp = output.with_name(output.name + ".tmp")
    exclude = [output, tmp, wide_path(output)] + ([Path(feedback_dir)] if feedback_dir else [])
    files = _submitted_files(folder, exclude)
    if not files:
        raise ValueError(f"folder {folder} holds no submission (no file in it but hidden ones and "
                         "the grader's own output)")
    kept: list[dict] = []
    if output.exists() and not force:
        kept = read_grades(output)
    current = {}
    for path in files:
        current[path.resolve().relative_to(root.resolve()).as_posix()] = path
    done = {(r["notebook"], r["sha256"]) for r in kept
            if not str(r["message"]).startswith("grader error")}  # the grader's failures are retried
    todo = [p for rel, p in current.items() if (rel, sha256(p)) not in done]
    regraded = {p.resolve().relative_to(root.resolve()).as_posix() for p in todo}
    kept = [r for r in kept if r["notebook"] not in regraded]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        import csv

        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, output)
    if kept:
        log(f"kept the grades of {len({r['notebook'] for r in kept})} notebook(s) graded before "
            f"(same content); use --force to grade them again")

    from ..training import progress

    options = dict(timeout=timeout, cell_timeout=cell_timeout, full=full, kernel_name=kernel_name,
                   modules=tuple(modules), feedback_dir=feedback_dir,
                   threads=1 if jobs > 1 else None)
    new_rows: list[dict] = []
    bar = progress(total=len(todo), desc="grading", disable=None if show_progress is None else not show_progress)
    jobs_args = [(str(p), str(root), options) for p in todo]
    # Worker threads even for one job: the work happens in the kernels (other processes),
    # and the main thread stays free to turn Ctrl-C into a clean stop.
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(_grade_job, a) for a in jobs_args]
        for future in as_completed(futures):
            rows = future.result()
            append_rows(output, rows)
            new_rows += rows
            bar.update(1)
    except KeyboardInterrupt:
        _execution._STOP.set()
        for km in list(_execution._KERNELS):
            _execution._kill_kernel(km)
        pool.shutdown(wait=True, cancel_futures=True)
        _execution._STOP.clear()
        bar.close()
        log(f"interrupted: {len(new_rows)} new row(s) saved in {output}; run the same command to resume")
        raise
    pool.shutdown(wait=True)
    bar.close()
    all_rows = kept + new_rows
    numbers = {r["exercise"]: _number_key(r.get("number", "")) for r in all_rows if r["exercise"]}
    order = sorted(registry, key=lambda e: numbers.get(e, (10 ** 9,)))  # as numbered: 1.1, 1.2, ...
    write_wide(wide_path(output), all_rows, order)
    if feedback_dir is not None:
        numbers = {r["exercise"]: r.get("number", "") for r in all_rows if r.get("number")}
        write_student_summaries(Path(feedback_dir), all_rows, numbers)
    if all_rows:
        log(summary(all_rows))
    log(f"graded {len(todo)} file(s), kept {len({r['notebook'] for r in kept})}; grades in {output}, "
        f"one row per student in {wide_path(output)}"
        + (f", feedback in {feedback_dir}" if feedback_dir is not None else ""))
    return all_rows
