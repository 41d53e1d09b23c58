"""Coursework: student notebooks without solutions, and automatic grading.

Two commands (``python -m companion ...`` or the ``companion`` console script)::

    python -m companion student book/ -o student/
    python -m companion grade submissions/ -o grades.csv

``student`` writes, for every chapter notebook, a copy for students: each solution cell
(tagged ``solution``, or any code cell inside a ``solution-start`` / ``solution-end``
block) becomes a stub that keeps the ``def`` lines and docstrings and raises
``NotImplementedError`` with the exercise's task text; the ``solution-start`` and
``solution-end`` blocks are removed, outputs are cleared, and a table of the exercises
and their points is inserted after the title. The chapter id goes into the notebook's
metadata (``metadata.companion.chapter``) so the grader recognises the chapter even when
the file is renamed.

``grade`` executes every submitted notebook in a fresh kernel (per-notebook timeout,
errors do not stop the run), collects the verdicts that the exercise checks of
:mod:`companion.exercises` record (a JSON line per check call, written to the file named
by ``COMPANION_RESULTS``), and writes one CSV row per student and exercise. A verdict
counts only when it was produced by the registered check of that exercise during this
run: the grader signs the lines inside the kernel and rejects lines that a notebook
writes itself. Notebooks already graded (same path, same content) are skipped on the
next run, so a partial run resumes.

A student is identified by the first folder under the submissions folder
(``submissions/alice/anything.ipynb`` is ``alice``) or, for a file directly in it, by
the file name without extension (``submissions/alice.ipynb`` is ``alice``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import hashlib
import hmac
import importlib
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

__all__ = [
    "Exercise",
    "CSV_FIELDS",
    "exercise_registry",
    "find_exercises",
    "stub_solution",
    "student_notebook",
    "write_student_notebooks",
    "identify_chapter",
    "grade_notebook",
    "grade_submissions",
    "main",
]

#: the columns of the grades file, in order
CSV_FIELDS = ("student", "notebook", "chapter", "exercise", "points", "score", "passed",
              "message", "sha256")

#: environment variable listing extra exercise modules (comma separated) to register
MODULES_ENV = "COMPANION_EXERCISE_MODULES"

_KEY_ENV = "COMPANION_GRADER_KEYFILE"
_STUB_TAG = "answer"
_SKIP_DIRS = {".ipynb_checkpoints", "__MACOSX", "__pycache__", ".git"}
_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}(?P<arg>[^\n]*)$")


# ----------------------------------------------------------------------------------------
# Reading the exercise convention
# ----------------------------------------------------------------------------------------

@dataclass
class Exercise:
    """One graded exercise as a chapter notebook declares it.

    Parameters
    ----------
    id : str
        The exercise id (``"nc-nc1"``), as in the solution cell's metadata.
    points : int
        Points of the exercise (the registry's value when the check is registered).
    title : str
        The title of the ``exercise-start`` block (``"Implement NC1"``).
    task : str
        The task text of the exercise block, as one line of plain text.
    solution_cells : list of int
        Indices of the solution code cells.
    check_cells : list of int
        Indices of the check code cells.
    """

    id: str
    points: int = 0
    title: str = ""
    task: str = ""
    solution_cells: list = field(default_factory=list)
    check_cells: list = field(default_factory=list)


def _source(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _tags(cell) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, (list, tuple)) else []


def exercise_registry(modules: Iterable[str] = ()) -> dict:
    """The registered exercise checks: :func:`companion.exercises.load_all` plus extras.

    Parameters
    ----------
    modules : iterable of str
        Extra modules to import first (an instructor's own exercises, registered with
        :func:`companion.exercises.register`); the environment variable
        ``COMPANION_EXERCISE_MODULES`` (comma separated) adds more.

    Returns
    -------
    dict
        Exercise id to ``{"points", "chapter", "check", "module"}``.
    """
    from companion.exercises import load_all

    names = list(modules) + [m for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"modules must be module names, got {name!r}")
        importlib.import_module(name.strip())
    return load_all()


def _directive_blocks(text: str):
    """Yield ``(name, argument, options, body_lines)`` for each fenced MyST directive."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence = match["fence"]
        body, j = [], i + 1
        while j < len(lines) and not re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[j]):
            body.append(lines[j])
            j += 1
        options = {}
        while body and body[0].lstrip().startswith(":") and re.match(r"\s*:[\w-]+:", body[0]):
            key, _, value = body.pop(0).strip()[1:].partition(":")
            options[key.strip()] = value.strip()
        yield match["name"], match["arg"].strip(), options, body, (i, j)
        i = j + 1


def _clean_task(text: str) -> str:
    """Markdown task text as one line: no bold markers, no 'Exercise (N points).' prefix."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^\**\s*Exercise\b\s*(\([^)]*\))?\s*[.:]?\s*\**\s*", "", text, flags=re.I)
    text = text.replace("**", "").replace("__", "")
    return text.strip()


def _exercise_tasks(nb) -> tuple[dict, list]:
    """Exercise blocks of a notebook: ``{label: (title, task)}`` and their cell order.

    Handles the gated form (``exercise-start`` ... ``exercise-end``, possibly across
    cells) and the plain ``exercise`` directive.
    """
    tasks, order = {}, []
    open_block = None  # (label, title, lines) while inside exercise-start ... exercise-end
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = _source(cell)
        lines = text.splitlines()
        blocks = list(_directive_blocks(text))
        cursor = 0
        for name, arg, options, body, (start, end) in blocks:
            if open_block is not None:
                open_block[2].extend(lines[cursor:start])
            if name == "exercise-start":
                open_block = (options.get("label", ""), arg, [])
                order.append((index, open_block[0]))
            elif name == "exercise-end" and open_block is not None:
                label, title, content = open_block
                tasks[label] = (title, _clean_task("\n".join(content)))
                open_block = None
            elif name == "exercise":
                label = options.get("label", "")
                tasks[label] = (arg, _clean_task("\n".join(body)))
                order.append((index, label))
            cursor = end + 1
        if open_block is not None:
            open_block[2].extend(lines[cursor:])
    if open_block is not None:  # never closed: keep what was read
        tasks[open_block[0]] = (open_block[1], _clean_task("\n".join(open_block[2])))
    return tasks, order


def _label_to_id(label: str) -> str:
    return label[3:] if label.startswith("ex-") else label


def find_exercises(nb, registry: dict | None = None) -> list[Exercise]:
    """The graded exercises of a chapter notebook, in notebook order.

    A solution cell is a code cell tagged ``solution`` or any code cell between a
    ``solution-start`` and a ``solution-end`` block; its exercise id comes from the cell
    metadata ``exercise``, else from the ``solution-start`` label (``ex-<id>``). Check
    cells carry the tag ``check`` and the metadata ``exercise``. The task text is the
    body of the exercise block labelled ``ex-<id>`` (or the last exercise block before
    the solution).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A chapter notebook (nbformat 4).
    registry : dict, optional
        Exercise registry; when given, its points override the cell metadata.

    Returns
    -------
    list of Exercise
    """
    tasks, order = _exercise_tasks(nb)
    block_at = dict(order)
    exercises: dict[str, Exercise] = {}
    inside_label, last_label = None, None
    for index, cell in enumerate(nb.cells):
        if index in block_at:
            last_label = block_at[index]
        if cell.cell_type == "markdown":
            for name, arg, _, _, _ in _directive_blocks(_source(cell)):
                if name == "solution-start":
                    inside_label = arg or last_label or ""
                elif name == "solution-end":
                    inside_label = None
            continue
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {})
        is_solution = "solution" in _tags(cell) or _STUB_TAG in _tags(cell) or inside_label is not None
        is_check = "check" in _tags(cell)
        if not (is_solution or is_check):
            continue
        label = inside_label or last_label or ""
        ex_id = meta.get("exercise") or _label_to_id(label)
        if not ex_id:
            continue
        ex = exercises.setdefault(ex_id, Exercise(ex_id))
        if is_check and not is_solution:
            ex.check_cells.append(index)
            continue
        ex.solution_cells.append(index)
        if isinstance(meta.get("points"), int):
            ex.points = meta["points"]
        title, task = tasks.get(f"ex-{ex_id}") or tasks.get(ex_id) or tasks.get(label) or ("", "")
        ex.title, ex.task = ex.title or title, ex.task or task
    for ex in exercises.values():
        if registry and ex.id in registry:
            ex.points = int(registry[ex.id]["points"])
    return list(exercises.values())


# ----------------------------------------------------------------------------------------
# Stubs
# ----------------------------------------------------------------------------------------

def _raise_statement(message: str, indent: str) -> str:
    width = max(40, 88 - len(indent) - 6)
    chunks = textwrap.wrap(message, width=width, break_long_words=False, break_on_hyphens=False) or [""]
    literals = [json.dumps(c + (" " if i < len(chunks) - 1 else ""), ensure_ascii=False)
                for i, c in enumerate(chunks)]
    if len(literals) == 1:
        return f"{indent}raise NotImplementedError({literals[0]})"
    inner = "\n".join(f"{indent}    {lit}" for lit in literals)
    return f"{indent}raise NotImplementedError(\n{inner}\n{indent})"


def _has_docstring(node) -> bool:
    first = node.body[0]
    return (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str))


def _header_lines(node, lines: list[str]) -> list[str] | None:
    """Source lines of a def/class header (decorators, signature, docstring), or None
    when the body starts on the header line (then the caller unparses instead)."""
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    first = node.body[0]
    if lines[first.lineno - 1][:first.col_offset].strip():
        return None
    if _has_docstring(node):
        if lines[first.end_lineno - 1][first.end_col_offset:].strip():
            return None
        return lines[start - 1:first.end_lineno]
    header = lines[start - 1:first.lineno - 1]
    while header and (not header[-1].strip() or header[-1].lstrip().startswith("#")):
        header.pop()
    return header


def _indent_of(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _stub_function(node, lines: list[str], message: str) -> str:
    header = _header_lines(node, lines)
    indent = _indent_of(lines[node.lineno - 1])
    if header is None:
        new = copy.deepcopy(node)
        new.body = ([node.body[0]] if _has_docstring(node) else []) + [ast.Pass()]
        text = ast.unparse(new).rsplit("\n", 1)[0]  # drop the placeholder
        return textwrap.indent(text, indent) + "\n" + _raise_statement(message, indent + "    ")
    body_indent = _indent_of(lines[node.body[0].lineno - 1])
    return "\n".join(header) + "\n" + _raise_statement(message, body_indent)


def _stub_class(node, lines: list[str], message: str) -> str:
    header = _header_lines(node, lines)
    if header is None:
        return ast.get_source_segment("\n".join(lines), node, padded=True) or ast.unparse(node)
    methods = [s for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    parts = ["\n".join(header)] + [_stub_function(m, lines, message) for m in methods]
    if not methods and not _has_docstring(node):
        parts.append(_indent_of(lines[node.body[0].lineno - 1]) + "pass")
    return "\n\n".join(parts)


def _bound_names(node) -> list[str]:
    """Names a top-level statement binds (assignments, ``with ... as``), in order."""
    names: list[str] = []

    def targets(t):
        if isinstance(t, ast.Name):
            names.append(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for elt in t.elts:
                targets(elt)
        elif isinstance(t, ast.Starred):
            targets(t.value)

    stack = [node]
    while stack:
        item = stack.pop(0)
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(item, ast.Assign):
            for t in item.targets:
                targets(t)
        elif isinstance(item, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets(item.target)
        elif isinstance(item, ast.withitem) and item.optional_vars is not None:
            targets(item.optional_vars)
        stack.extend(ast.iter_child_nodes(item))
    return list(dict.fromkeys(n for n in names if not n.startswith("_")))


def stub_solution(source: str, message: str, answers: Iterable[str] | None = None) -> str:
    """Turn the source of a solution cell into the stub a student completes.

    * ``def`` (and ``async def``): decorators, signature and docstring are kept, the body
      becomes ``raise NotImplementedError(message)``;
    * ``class``: header and docstring kept, every method stubbed the same way;
    * private helpers (names starting with ``_``) are dropped, ``import`` statements kept;
    * any other statement (an assignment such as ``threshold = 0.5``, a loop, a call) is
      dropped, and each name it assigned (restricted to ``answers`` when given) becomes
      ``name = None  # TODO: your answer`` followed by
      ``if name is None: raise NotImplementedError(message)``.

    Parameters
    ----------
    source : str
        Python source of the reference solution (it must parse).
    message : str
        The text of the ``NotImplementedError`` (the exercise's instructions).
    answers : iterable of str, optional
        The names the exercise's check reads; assigned names outside it (intermediate
        variables of the reference solution) are not turned into answers.

    Returns
    -------
    str
        The stub's source (it parses, defines the same names, and raises only when a
        stubbed function is called or when an assigned answer is still ``None``).

    Raises
    ------
    TypeError
        If ``source`` or ``message`` is not a string.
    ValueError
        If ``source`` is not valid Python.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, got {type(message).__name__}")
    if isinstance(answers, str):
        raise TypeError("answers must be an iterable of names, not a single str")
    # IPython magics and shell escapes are not Python: blank them out before parsing
    clean = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                      for line in source.splitlines())
    try:
        tree = ast.parse(clean)
    except SyntaxError as err:
        raise ValueError(f"source is not valid Python (line {err.lineno}: {err.msg})") from None
    lines = clean.splitlines()
    imports, definitions, assigned = [], [], []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(ast.get_source_segment(clean, node) or ast.unparse(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith("_"):
                continue
            stub = _stub_class if isinstance(node, ast.ClassDef) else _stub_function
            definitions.append(stub(node, lines, message))
        else:
            assigned += [n for n in _bound_names(node) if n not in assigned]
    wanted = set(answers or ())
    answers = [n for n in assigned if n in wanted] or assigned
    if answers:
        block = "\n".join(f"{name} = None  # TODO: your answer" for name in answers)
        condition = " or ".join(f"{name} is None" for name in answers)
        definitions.append(f"{block}\nif {condition}:\n{_raise_statement(message, '    ')}")
    if not definitions:  # nothing to keep: the cell itself is the exercise
        definitions.append("# TODO: your code\n" + _raise_statement(message, ""))
    text = "\n".join(imports) + ("\n\n\n" if imports else "")
    return text + "\n\n\n".join(definitions) + "\n"


def _points(n: int) -> str:
    return f"{n} point" + ("" if n == 1 else "s")


def _names_read(sources: Iterable[str]) -> set:
    """Names that some code loads (the arguments a check cell passes, for instance)."""
    names = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names


def _stub_hash(source: str) -> str:
    normal = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------
# Student notebooks
# ----------------------------------------------------------------------------------------

def _strip_solution_blocks(text: str, inside: bool) -> tuple[str, bool]:
    """Remove ``solution-start``/``solution-end`` blocks and whatever lies between them."""
    lines = text.splitlines()
    kept, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match and match["name"] in ("solution-start", "solution-end", "solution"):
            fence = match["fence"]
            j = i + 1
            while j < len(lines) and not re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[j]):
                j += 1
            if match["name"] == "solution-start":
                inside = True
            elif match["name"] == "solution-end":
                inside = False
            i = j + 1
            continue
        if not inside:
            kept.append(lines[i])
        i += 1
    return "\n".join(kept).strip("\n"), inside


def _chapter_of(nb, exercises: list[Exercise], registry: dict, fallback: str) -> str:
    chapters = Counter(registry[e.id]["chapter"] for e in exercises if e.id in registry)
    if chapters:
        return chapters.most_common(1)[0][0]
    for cell in nb.cells:
        if cell.cell_type == "code":
            match = re.search(r"companion\.exercises(?:\s+import\s+|\.)(\w+)", _source(cell))
            if match and not match.group(1).startswith("_"):
                return match.group(1)
    return re.sub(r"^\d+[_-]", "", fallback)


def _points_table(exercises: list[Exercise]) -> str:
    total = sum(e.points for e in exercises)
    rows = "\n".join(f"| `{e.id}` | {e.title or '(untitled)'} | {e.points} |" for e in exercises)
    return (
        "**Coursework version of this chapter.** "
        f"It has {len(exercises)} graded exercises worth **{total} points** in total. "
        "Each exercise gives you a cell whose functions raise `NotImplementedError`: "
        "replace those lines with your code (keep the names and signatures), then run the "
        "check cell below it, which prints `[PASS]` or what went wrong. "
        "An exercise earns its points only when every case of its check passes.\n\n"
        "| Exercise | Task | Points |\n|---|---|---|\n"
        f"{rows}\n| | **Total** | **{total}** |"
    )


def student_notebook(nb, registry: dict | None = None, *, name: str = ""):
    """The student version of a chapter notebook.

    Solution code becomes stubs (see :func:`stub_solution`) whose
    ``NotImplementedError`` carries the exercise's task text; ``solution-start`` /
    ``solution-end`` blocks (and anything between them) are removed; outputs are
    cleared; a table of the exercises and points is inserted after the title; the
    chapter id, the exercises and their points go into ``metadata.companion``.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The chapter notebook with its reference solutions (it is not modified).
    registry : dict, optional
        Exercise registry (default: :func:`exercise_registry`), for points and the
        chapter id.
    name : str
        The source file name, recorded in the metadata and used as a last resort for
        the chapter id.

    Returns
    -------
    nbformat.NotebookNode
        A new notebook.

    Raises
    ------
    ValueError
        If the notebook has no graded exercise, or a solution cell is not valid Python.
    """
    if not hasattr(nb, "cells"):
        raise TypeError(f"nb must be an nbformat notebook, got {type(nb).__name__}")
    registry = exercise_registry() if registry is None else registry
    exercises = find_exercises(nb, registry)
    if not exercises:
        raise ValueError(f"nb ({name or 'notebook'}) has no graded exercise (no solution cell)")
    by_cell = {i: e for e in exercises for i in e.solution_cells}
    out = copy.deepcopy(nb)
    cells, inside = [], False
    for index, cell in enumerate(out.cells):
        if cell.cell_type == "markdown":
            text, inside = _strip_solution_blocks(_source(cell), inside)
            if text.strip():
                cell.source = text
                cells.append(cell)
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        if index in by_cell:
            ex = by_cell[index]
            task = ex.task or (f"complete {ex.title}" if ex.title else "write your solution here")
            points = _points(ex.points)
            message = f"Exercise {ex.id} ({points}): {task}"
            read = _names_read([_source(nb.cells[i]) for i in ex.check_cells])
            try:
                stub = stub_solution(_source(cell), message, answers=read)
            except ValueError as err:
                raise ValueError(f"the solution cell of {ex.id} in {name or 'the notebook'}: {err}") from None
            if "def " in stub or "class " in stub:
                how = ("# Replace each `raise NotImplementedError(...)` with your code, keeping the\n"
                       "# names and signatures, then run the check cell below.\n")
            else:
                how = "# Replace `None` by your answer, then run the check cell below.\n"
            header = f"# Exercise {ex.id} ({points}): your solution.\n" + how
            cell.source = (header + stub).rstrip("\n")
            tags = [t for t in _tags(cell) if t != "solution"]
            cell.metadata["tags"] = tags + ([_STUB_TAG] if _STUB_TAG not in tags else [])
            cell.metadata["exercise"], cell.metadata["points"] = ex.id, ex.points
            cell.metadata["companion"] = {"stub_sha256": _stub_hash(cell.source)}
            cells.append(cell)
            continue
        if cell.cell_type == "code" and inside:
            continue  # an untagged code cell inside a solution block: never ship it
        cells.append(cell)
    title_at = next((i for i, c in enumerate(cells)
                     if c.cell_type == "markdown" and _source(c).lstrip().startswith("# ")), -1)
    cells.insert(title_at + 1, nbformat.v4.new_markdown_cell(_points_table(exercises)))
    if out.get("nbformat_minor", 0) < 5:  # cell ids came with nbformat 4.5
        for cell in cells:
            cell.pop("id", None)
    out.cells = cells
    from companion import __version__

    out.metadata["companion"] = {
        "chapter": _chapter_of(nb, exercises, registry, Path(name).stem),
        "student_version": True,
        "source": Path(name).name,
        "companion_version": __version__,
        "exercises": [{"id": e.id, "title": e.title, "points": e.points} for e in exercises],
        "total_points": sum(e.points for e in exercises),
    }
    return out


def _cells_using_answers(nb) -> list[tuple[int, list, str]]:
    """Code cells (not checks) that use a name an exercise defines: they fail in the
    student version until that exercise is solved. Returns (cell number, names, id)."""
    defined, found = {}, []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        try:
            tree = ast.parse(_source(cell))
        except SyntaxError:
            continue
        if _STUB_TAG in tags:
            for node in tree.body:
                names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    else _bound_names(node)
                defined.update({n: cell.metadata.get("exercise", "?") for n in names})
        elif "check" not in tags and defined:
            used = sorted(_names_read([_source(cell)]) & set(defined))
            if used:
                found.append((number, used, defined[used[0]]))
    return found


def _notebooks_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))


def write_student_notebooks(source, output, *, registry: dict | None = None,
                            log=print) -> list[Path]:
    """Write the student version of every chapter notebook of a folder.

    Parameters
    ----------
    source : str or Path
        A chapter notebook, or a folder whose ``*.ipynb`` files are read (notebooks
        without graded exercises are skipped with a note).
    output : str or Path
        Folder for the student notebooks (created; same file names as the sources).
    registry : dict, optional
        Exercise registry (default: :func:`exercise_registry`).
    log : callable
        Where the one-line reports go (default ``print``).

    Returns
    -------
    list of Path
        The notebooks written.
    """
    source, output = Path(source), Path(output)
    if not source.exists():
        raise ValueError(f"source {source} does not exist")
    if output.resolve() == (source if source.is_dir() else source.parent).resolve():
        raise ValueError("output must differ from the source folder (it would overwrite the chapters)")
    registry = exercise_registry() if registry is None else registry
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in _notebooks_in(source):
        nb = nbformat.read(path, as_version=4)
        try:
            student = student_notebook(nb, registry, name=path.name)
        except ValueError as err:
            if "no graded exercise" in str(err):
                log(f"skipped {path.name}: no graded exercise")
                continue
            raise
        target = output / path.name
        nbformat.write(student, target)
        meta = student.metadata["companion"]
        log(f"wrote {target}: chapter {meta['chapter']}, {len(meta['exercises'])} exercises, "
            f"{meta['total_points']} points")
        for number, names, ex_id in _cells_using_answers(student):
            log(f"  note: cell {number} uses {', '.join(names)} from exercise {ex_id}; "
                "it fails until the student solves that exercise")
        written.append(target)
    return written


# ----------------------------------------------------------------------------------------
# Grading: which chapter, which exercises
# ----------------------------------------------------------------------------------------

def identify_chapter(nb, registry: dict) -> tuple[str | None, dict]:
    """Which chapter a submitted notebook is, and the exercises it is graded on.

    The chapter comes from ``metadata.companion.chapter`` (written by the student
    generator) when the registry knows it; otherwise from the exercises the notebook
    shows: cell metadata ``exercise`` ids, ``from companion.exercises import <module>``
    lines and ``check_<name>(`` calls, by majority. The file name is never used.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The submitted notebook.
    registry : dict
        Exercise registry (:func:`exercise_registry`).

    Returns
    -------
    chapter : str or None
        The chapter id, None when nothing identifies it.
    expected : dict
        Exercise id to points: the registry's exercises of that chapter (or, for a
        chapter the registry lacks, the exercises listed in the metadata).
    """
    meta = nb.get("metadata", {}).get("companion", {})
    meta = meta if isinstance(meta, dict) else {}
    known = {info["chapter"] for info in registry.values()}
    chapter = meta.get("chapter") if meta.get("chapter") in known else None
    if chapter is None:
        votes: Counter = Counter()
        modules = {info["module"].rsplit(".", 1)[-1]: info["chapter"] for info in registry.values()}
        for cell in nb.get("cells", []):
            ex_id = cell.get("metadata", {}).get("exercise")
            if isinstance(ex_id, str) and ex_id in registry:
                votes[registry[ex_id]["chapter"]] += 3
            if cell.get("cell_type") != "code":
                continue
            src = _source(cell)
            for mod in re.findall(r"companion\.exercises(?:\s+import\s+|\.)(\w+)", src):
                if mod in modules:
                    votes[modules[mod]] += 2
            for mod in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", src, flags=re.M):
                if mod.rsplit(".", 1)[-1] in modules and not mod.startswith("companion."):
                    votes[modules[mod.rsplit(".", 1)[-1]]] += 2
            for info in registry.values():
                if re.search(rf"\b{re.escape(info['check'])}\s*\(", src):
                    votes[info["chapter"]] += 1
        if votes:
            chapter = votes.most_common(1)[0][0]
    if chapter is not None:
        return chapter, {k: int(v["points"]) for k, v in registry.items() if v["chapter"] == chapter}
    listed = meta.get("exercises")
    if meta.get("chapter") and isinstance(listed, list):
        expected = {e["id"]: int(e.get("points", 0)) for e in listed
                    if isinstance(e, dict) and isinstance(e.get("id"), str)}
        return str(meta["chapter"]), expected
    return None, {}


# ----------------------------------------------------------------------------------------
# Grading: executing one notebook
# ----------------------------------------------------------------------------------------

_PROLOGUE = r'''
def _companion_grader_setup():
    import hashlib, hmac, importlib, inspect, json, os, sys
    key_file = os.environ.pop("COMPANION_GRADER_KEYFILE")
    with open(key_file, "rb") as fh:
        key = fh.read()
    os.remove(key_file)
    results = os.environ.get("COMPANION_RESULTS")
    for name in filter(None, (m.strip() for m in os.environ.get("COMPANION_EXERCISE_MODULES", "").split(","))):
        importlib.import_module(name)
    from companion.exercises import _core
    codes = {}
    for eid, info in dict(_core.registry).items():
        fn = getattr(sys.modules.get(info["module"]), info["check"], None)
        codes[eid] = (getattr(fn, "__code__", None), info["module"], int(info["points"]))

    def _record(self, passed, message):
        code, module, points = codes.get(self.exercise_id, (None, None, 0))
        frame, genuine = sys._getframe(1), False
        while frame is not None and not genuine:
            genuine = frame.f_code is code if code is not None else frame.f_globals.get("__name__") == module
            frame = frame.f_back
        row = {"exercise": str(self.exercise_id), "points": points, "passed": bool(passed) and genuine,
               "message": str(message), "genuine": genuine}
        body = json.dumps(row, sort_keys=True)
        row["mac"] = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
        with open(results, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")

    _core.ExerciseCheck._record = _record

_companion_grader_setup()
del _companion_grader_setup
'''


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_results(path: Path, key: bytes) -> tuple[dict, Counter]:
    """Verified verdicts per exercise, and how many lines were rejected per exercise."""
    verdicts: dict[str, list] = {}
    rejected: Counter = Counter()
    if not path.exists():
        return verdicts, rejected
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            rejected["?"] += 1
            continue
        if not isinstance(row, dict):
            rejected["?"] += 1
            continue
        mac = row.pop("mac", None)
        expected = hmac.new(key, json.dumps(row, sort_keys=True).encode(), hashlib.sha256).hexdigest()
        ex_id = row.get("exercise") if isinstance(row.get("exercise"), str) else "?"
        if isinstance(mac, str) and hmac.compare_digest(mac, expected) and row.get("genuine") is True:
            verdicts.setdefault(ex_id, []).append(row)
        else:
            rejected[ex_id] += 1
    return verdicts, rejected


_KERNELS: set = set()          # kernel managers running now (to kill them on Ctrl-C)
_STOP = threading.Event()       # set while an interrupted run shuts down


def _kill_kernel(km) -> None:
    try:
        os.killpg(km.provisioner.pgid, signal.SIGKILL)
    except Exception:  # already gone, or no process group
        try:
            os.kill(km.provisioner.pid, signal.SIGKILL)
        except Exception:
            pass


@dataclass
class _Run:
    errors: dict = field(default_factory=dict)   # cell index -> "Ename: evalue"
    stopped: str = ""                            # "timeout", "kernel died", "setup failed"
    stopped_at: int | None = None
    seconds: float = 0.0


def _execute(nb, *, timeout: float, cell_timeout: float | None, env: dict, cwd: str,
             kernel_name: str, stop_after: int | None = None, prologue: bool = False) -> _Run:
    """Run the code cells of ``nb`` in a fresh kernel, errors allowed, within ``timeout``.

    With ``prologue``, cell 0 is the grader's setup: the run stops when it fails."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    run = _Run()

    def on_error(cell, cell_index, execute_reply):
        content = execute_reply.get("content", {})
        run.errors[cell_index] = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".rstrip(": ")

    deadline = [math.inf]

    def cell_limit(cell):
        remaining = max(1.0, deadline[0] - time.monotonic())
        return int(math.ceil(min(remaining, cell_timeout or remaining)))

    client = NotebookClient(
        nb, kernel_name=kernel_name, allow_errors=True, timeout_func=cell_limit,
        interrupt_on_timeout=True, record_timing=False, startup_timeout=120,
        error_on_timeout={"ename": "Timeout", "evalue": "the cell did not finish in time", "traceback": []},
        on_cell_error=on_error, shutdown_kernel="immediate", iopub_timeout=4)
    start = time.monotonic()
    try:
        with client.setup_kernel(env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            deadline[0] = time.monotonic() + timeout
            _KERNELS.add(client.km)
            for index, cell in enumerate(nb.cells):
                if _STOP.is_set():
                    break
                if cell.cell_type != "code" or not _source(cell).strip():
                    continue
                if time.monotonic() >= deadline[0]:
                    run.stopped, run.stopped_at = "timeout", index
                    break
                try:
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                except DeadKernelError:
                    run.stopped, run.stopped_at = "kernel died", index
                    break
                except CellTimeoutError:
                    run.stopped, run.stopped_at = "timeout", index
                    break
                if run.errors.get(index, "").startswith("Timeout") and time.monotonic() >= deadline[0] - 1:
                    run.stopped, run.stopped_at = "timeout", index
                    break
                if prologue and index == 0 and index in run.errors:
                    run.stopped, run.stopped_at = "setup failed", 0
                    break
                if stop_after is not None and index >= stop_after:
                    break
    except DeadKernelError:
        run.stopped = run.stopped or "kernel died"
    except RuntimeError as err:  # the kernel would not start
        run.stopped = run.stopped or f"kernel failed to start ({err})"
    finally:
        _KERNELS.discard(client.km)
    run.seconds = time.monotonic() - start
    return run


def _row(student, notebook, chapter, exercise, points, score, passed, message, sha) -> dict:
    return {"student": student, "notebook": notebook, "chapter": chapter or "", "exercise": exercise,
            "points": points, "score": score, "passed": passed, "message": message, "sha256": sha}


def _student_of(relative: Path) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def grade_notebook(path, root=None, *, timeout: float = 600, cell_timeout: float | None = None,
                   kernel_name: str = "python3", modules: Sequence[str] = (),
                   executed_dir=None, threads: int | None = None) -> list[dict]:
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
    cell_timeout : float, optional
        Seconds one cell may run before it is interrupted (the run then goes on).
    kernel_name : str
        Jupyter kernel to run in (default ``python3``, the grader's own interpreter).
    modules : sequence of str
        Extra exercise modules (see :func:`exercise_registry`).
    executed_dir : str or Path, optional
        When given, the executed notebook is saved there (same relative path).
    threads : int, optional
        ``OMP_NUM_THREADS`` for the kernel (set when grading in parallel).

    Returns
    -------
    list of dict
        One row per exercise of the notebook's chapter, with the keys
        :data:`CSV_FIELDS`; one row with an empty exercise when the file cannot be graded.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {path} is not a file")
    root = Path(root) if root is not None else path.parent
    relative = path.resolve().relative_to(Path(root).resolve())
    student, notebook, sha = _student_of(relative), relative.as_posix(), _sha256(path)

    def single(message):
        return [_row(student, notebook, "", "", 0, 0, False, message, sha)]

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

    exercises = {e.id: e for e in find_exercises(nb)}
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.insert(0, nbformat.v4.new_code_cell(_PROLOGUE))
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="companion-grade-") as tmp:
        key_file, results = Path(tmp) / "key", Path(tmp) / "results.jsonl"
        key_file.write_bytes(key)
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        env = dict(os.environ, COMPANION_RESULTS=str(results), COMPANION_NO_PROGRESS="1",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
        env[_KEY_ENV] = str(key_file)
        needed = {registry[e]["module"] for e in expected if e in registry}
        env[MODULES_ENV] = ",".join(sorted(needed) + [m for m in modules if m not in needed])
        env.pop("MPLBACKEND", None)
        # the kernel runs in a scratch folder: make the import path absolute, and let it
        # import the extra exercise modules from where the grader was started
        paths = [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths + ([os.getcwd()] if modules else []))
        if threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        run = _execute(nb, timeout=timeout, cell_timeout=cell_timeout, env=env, cwd=str(workdir),
                       kernel_name=kernel_name, prologue=True)
        verdicts, rejected = _read_results(results, key)
    if executed_dir is not None:
        target = Path(executed_dir) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        executed = copy.copy(nb)
        executed.cells = nb.cells[1:]  # without the grader's prologue
        nbformat.write(executed, target)

    if run.stopped == "setup failed" or run.stopped.startswith("kernel failed"):
        reason = run.errors.get(0, run.stopped)
        return [_row(student, notebook, chapter, ex_id, pts, 0, False,
                     f"grader error, not the student's: {run.stopped}: {reason}", sha)
                for ex_id, pts in expected.items()]

    def where(index):  # cell numbers as the student sees them (1-based, prologue removed)
        return f"cell {index}" if index is not None else "an unknown cell"

    rows = []
    for ex_id, points in expected.items():
        found = verdicts.get(ex_id, [])
        passed = any(v["passed"] for v in found)
        ex = exercises.get(ex_id)
        stub_unchanged = ex is not None and any(
            nb.cells[i + 1].get("metadata", {}).get("companion", {}).get("stub_sha256")
            == _stub_hash(_source(nb.cells[i + 1])) for i in ex.solution_cells)
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
        elif run.stopped == "timeout":
            message = (f"timeout: the notebook did not finish within {timeout:g} s "
                       f"(stopped in {where(run.stopped_at)}); the check did not run")
        elif run.stopped == "kernel died":
            message = f"kernel died in {where(run.stopped_at)}; the check did not run"
        elif stub_unchanged:
            message = "not attempted (the solution cell is still the stub; the check did not run)"
        else:
            message = "check not run"
            mine = [(i + 1, "your solution cell") for i in (ex.solution_cells if ex else [])] + \
                   [(i + 1, "the check cell") for i in (ex.check_cells if ex else [])]
            mine = [(i, what) for i, what in mine if i in run.errors]
            if mine and run.errors[mine[0][0]].startswith("Timeout"):
                message = (f"timeout: {mine[0][1]} ({where(mine[0][0])}) ran longer than "
                           f"{cell_timeout or timeout:g} s and was interrupted; the check did not pass")
            elif mine:
                message += f": {mine[0][1]} ({where(mine[0][0])}) raised {run.errors[mine[0][0]]}"
            elif any(i > 0 for i in run.errors):
                first = min(i for i in run.errors if i > 0)
                message += f"; the first error was in {where(first)}: {run.errors[first]}"
        if rejected.get(ex_id):
            message += f" [{rejected[ex_id]} result line(s) rejected: not written by the check]"
        rows.append(_row(student, notebook, chapter, ex_id, points, points if passed else 0,
                         passed, message, sha))
    return rows


# ----------------------------------------------------------------------------------------
# Grading: a folder
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


def _read_grades(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not set(CSV_FIELDS) <= set(reader.fieldnames):
            raise ValueError(f"output {path} exists and is not a grades file of this tool "
                             f"(columns {reader.fieldnames}); choose another name or use --force")
        rows = list(reader)
    for row in rows:  # the types grade_notebook returns
        row["points"], row["score"] = int(row["points"] or 0), int(row["score"] or 0)
        row["passed"] = row["passed"] == "True"
    return rows


def _append_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def _grade_job(args: tuple) -> list[dict]:
    path, root, options = args
    try:
        return grade_notebook(path, root, **options)
    except Exception as err:  # never let one submission stop the run
        relative = Path(path).resolve().relative_to(Path(root).resolve())
        sha = _sha256(Path(path)) if Path(path).is_file() else ""
        return [_row(_student_of(relative), relative.as_posix(), "", "", 0, 0, False,
                     f"grader error: {type(err).__name__}: {err}", sha)]


_REASONS = ("not attempted", "timeout", "kernel died", "check not run", "not a notebook",
            "not a valid notebook", "unknown chapter", "grader error")


def _reason(message: str) -> str:
    """The short reason of a failed row, for the summary table."""
    message = str(message)
    return next((r for r in _REASONS if message.startswith(r)), "failed")


def _summary(rows: list[dict]) -> str:
    by_notebook: dict[str, list[dict]] = {}
    for row in rows:
        by_notebook.setdefault(row["notebook"], []).append(row)
    table = [("student", "notebook", "chapter", "score", "passed", "note")]
    for notebook, group in sorted(by_notebook.items()):
        graded = [r for r in group if r["exercise"]]
        score = sum(int(r["score"]) for r in graded)
        total = sum(int(r["points"]) for r in graded)
        passed = sum(bool(r["passed"]) for r in graded)
        notes = Counter(_reason(r["message"]) for r in group if not r["passed"])
        note = ", ".join(f"{k}" + (f" x{v}" if v > 1 else "") for k, v in notes.most_common(3))
        table.append((group[0]["student"], notebook, group[0]["chapter"] or "-",
                      f"{score}/{total}", f"{passed}/{len(graded)}", note[:60]))
    exercises: dict[str, list[bool]] = {}
    for row in rows:
        if row["exercise"]:
            exercises.setdefault(row["exercise"], []).append(bool(row["passed"]))
    text = _table(table)
    if exercises:
        text += "\n\n" + _table([("exercise", "passed by")] + [
            (ex, f"{sum(v)}/{len(v)}") for ex, v in exercises.items()])
    return text


def _table(table: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def grade_submissions(folder, output, *, timeout: float = 600, cell_timeout: float | None = None,
                      jobs: int = 1, force: bool = False, kernel_name: str = "python3",
                      modules: Sequence[str] = (), executed_dir=None, show_progress: bool | None = None,
                      log=print) -> list[dict]:
    """Grade every file under a submissions folder and write the grades CSV.

    Each file is graded by :func:`grade_notebook`; its rows are appended to ``output``
    as soon as it is done, so an interrupted run loses nothing. Files already in
    ``output`` with the same path and content hash are skipped (their rows are kept)
    unless ``force``; a file whose content changed is graded again and its old rows
    are replaced. Hidden files and folders and ``.ipynb_checkpoints`` are ignored.

    Parameters
    ----------
    folder : str or Path
        The submissions folder (or a single file).
    output : str or Path
        The grades CSV (columns :data:`CSV_FIELDS`).
    timeout, cell_timeout, kernel_name, modules, executed_dir
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
    from ._validation import check_int, check_positive

    folder, output = Path(folder), Path(output)
    if not folder.exists():
        raise ValueError(f"folder {folder} does not exist")
    jobs = check_int(jobs, "jobs", minimum=1)
    timeout = check_positive(timeout, "timeout")
    if cell_timeout is not None:
        cell_timeout = check_positive(cell_timeout, "cell_timeout")
    exercise_registry(modules)  # fail early on a bad module name
    from jupyter_client.kernelspec import NoSuchKernel, get_kernel_spec

    try:
        get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise ValueError(f"kernel_name {kernel_name!r} is not an installed Jupyter kernel "
                         "(see jupyter kernelspec list)") from None
    root = folder if folder.is_dir() else folder.parent
    tmp = output.with_name(output.name + ".tmp")
    files = _submitted_files(folder, [output, tmp] + ([Path(executed_dir)] if executed_dir else []))
    kept: list[dict] = []
    if output.exists() and not force:
        kept = _read_grades(output)
    current = {}
    for path in files:
        current[path.resolve().relative_to(root.resolve()).as_posix()] = path
    done = {(r["notebook"], r["sha256"]) for r in kept
            if not str(r["message"]).startswith("grader error")}  # the grader's failures are retried
    todo = [p for rel, p in current.items() if (rel, _sha256(p)) not in done]
    regraded = {p.resolve().relative_to(root.resolve()).as_posix() for p in todo}
    kept = [r for r in kept if r["notebook"] not in regraded]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, output)
    if kept:
        log(f"kept the grades of {len({r['notebook'] for r in kept})} notebook(s) graded before "
            f"(same content); use --force to grade them again")

    from .training import progress

    options = dict(timeout=timeout, cell_timeout=cell_timeout, kernel_name=kernel_name,
                   modules=tuple(modules), executed_dir=executed_dir,
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
            _append_rows(output, rows)
            new_rows += rows
            bar.update(1)
    except KeyboardInterrupt:
        _STOP.set()
        for km in list(_KERNELS):
            _kill_kernel(km)
        pool.shutdown(wait=True, cancel_futures=True)
        _STOP.clear()
        bar.close()
        log(f"interrupted: {len(new_rows)} new row(s) saved in {output}; run the same command to resume")
        raise
    pool.shutdown(wait=True)
    bar.close()
    all_rows = kept + new_rows
    if all_rows:
        log(_summary(all_rows))
    log(f"graded {len(todo)} file(s), kept {len({r['notebook'] for r in kept})}; grades in {output}")
    return all_rows


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m companion",
        description="Coursework tools: student notebooks and automatic grading.")
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="write the student version of the chapter notebooks")
    student.add_argument("source", help="a chapter notebook or a folder of them (e.g. book/)")
    student.add_argument("-o", "--output", default="student", help="output folder (default: student/)")
    student.add_argument("--exercises", action="append", default=[], metavar="MODULE",
                         help="extra module registering exercise checks (repeatable)")
    grade = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    grade.add_argument("submissions", help="folder of submissions (one subfolder or one file per student)")
    grade.add_argument("-o", "--output", default="grades.csv", help="grades CSV (default: grades.csv)")
    grade.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default: 600)")
    grade.add_argument("--cell-timeout", type=float, default=None,
                       help="seconds per cell before it is interrupted (default: no per-cell limit)")
    grade.add_argument("-j", "--jobs", type=int, default=1, help="notebooks graded in parallel (default: 1)")
    grade.add_argument("--force", action="store_true", help="grade everything again")
    grade.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    grade.add_argument("--executed", default=None, metavar="DIR",
                       help="also save the executed notebooks in DIR (feedback for students)")
    grade.add_argument("--exercises", action="append", default=[], metavar="MODULE",
                       help="extra module registering exercise checks (repeatable)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m companion`` and of the ``companion`` console script.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 on bad arguments or input.
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "student":
            registry = exercise_registry(args.exercises)
            written = write_student_notebooks(args.source, args.output, registry=registry)
            print(f"{len(written)} student notebook(s) in {args.output}")
            return 0
        grade_submissions(args.submissions, args.output, timeout=args.timeout,
                          cell_timeout=args.cell_timeout, jobs=args.jobs, force=args.force,
                          kernel_name=args.kernel, modules=args.exercises,
                          executed_dir=args.executed,
                          show_progress=False if args.no_progress else None)
        return 0
    except (ValueError, TypeError, ModuleNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
