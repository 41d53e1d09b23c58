"""Student notebooks: the chapter without its solutions, and without answers given away.

For every chapter notebook, :func:`student_notebook` writes a copy for students: each
solution cell (tagged ``solution``, or any code cell inside a ``solution-start`` /
``solution-end`` block) becomes a stub that keeps the ``def`` lines and docstrings and
raises ``NotImplementedError`` with the exercise's task text; the ``solution-start`` and
``solution-end`` blocks are removed; a markdown cell with the metadata
``"student_version"`` is replaced by that text; outputs are cleared; exercises are
numbered per chapter ("Exercise 5.3"); a table of the exercises and their points is
inserted after the title. The chapter id goes into the notebook's metadata
(``metadata.companion.chapter``) so the grader recognises the chapter even when the file
is renamed, and every code cell keeps its id in ``metadata.companion.id`` (Colab drops
cell ids; the fast grading mode resolves ``depends_on`` with it). Finally
:func:`companion.coursework.leaks.find_leaks` must find nothing, or no notebook is written.
"""

from __future__ import annotations

import ast
import copy
import re
from collections import Counter
from pathlib import Path

import nbformat

from .leaks import LeakError, find_leaks
from .notebook import (FENCE, STUB_TAG, Exercise, _given_path, chapter_number, directive_blocks,
                       exercise_registry, find_exercises, names_read, number_exercises, source, tags)
from .stubs import bound_names, stub_hash, stub_solution

__all__ = ["student_notebook", "write_student_notebooks"]


def _points(n: int) -> str:
    return f"{n} point" + ("" if n == 1 else "s")


def _strip_solution_blocks(text: str, inside: bool) -> tuple[str, bool]:
    """Remove ``solution-start``/``solution-end`` blocks and whatever lies between them."""
    lines = text.splitlines()
    kept, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
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


_TASK_LINE = re.compile(r"\*\*Exercise\s*(\((?P<points>[^)]*)\))?\s*(?P<end>[.:]?)\*\*")


def _number_task_lines(text: str, numbers: dict) -> str:
    """``**Exercise (2 points).**`` -> ``**Exercise 5.3 (2 points).**`` inside each
    ``exercise`` block, by the block's label."""
    out, lines = [], text.splitlines()
    label = None
    for line in lines:
        match = FENCE.match(line)
        if match and match["name"] in ("exercise-start", "exercise"):
            label = ""
        if label == "" and re.match(r"\s*:label:\s*(\S+)", line):
            label = re.match(r"\s*:label:\s*(\S+)", line).group(1)
        if label and label in numbers and _TASK_LINE.search(line):
            number = numbers.pop(label)
            line = _TASK_LINE.sub(lambda m: f"**Exercise {number}"
                                  + (f" ({m['points']})" if m["points"] else "") + f"{m['end']}**", line, count=1)
        out.append(line)
    return "\n".join(out)


def _chapter_of(nb, exercises: list[Exercise], registry: dict, fallback: str) -> str:
    chapters = Counter(registry[e.id]["chapter"] for e in exercises if e.id in registry)
    if chapters:
        return chapters.most_common(1)[0][0]
    for cell in nb.cells:
        if cell.cell_type == "code":
            match = re.search(r"companion\.exercises(?:\s+import\s+|\.)(\w+)", source(cell))
            if match and not match.group(1).startswith("_"):
                return match.group(1)
    return re.sub(r"^\d+[_-]", "", fallback)


def _points_table(exercises: list[Exercise]) -> str:
    total = sum(e.points for e in exercises)
    rows = "\n".join(f"| {e.number} | `{e.id}` | {e.title or '(untitled)'} | {e.points} |" for e in exercises)
    return (
        "**Coursework version of this chapter.** "
        f"It has {len(exercises)} graded exercises worth **{total} points** in total. "
        "Each exercise gives you a cell whose functions raise `NotImplementedError`: "
        "replace those lines with your code (keep the names and signatures), then run the "
        "check cell below it, which prints `[PASS]` or what went wrong. "
        "An exercise earns its points only when every case of its check passes, and only "
        "with your own code: a function that calls the course's implementation of what the "
        "exercise asks for (in `companion`) earns nothing.\n\n"
        "| No. | Exercise | Task | Points |\n|---|---|---|---|\n"
        f"{rows}\n| | | **Total** | **{total}** |"
    )


def student_notebook(nb, registry: dict | None = None, *, name: str = "", check_leaks: bool = True):
    """The student version of a chapter notebook.

    Solution code becomes stubs (see :func:`~companion.coursework.stubs.stub_solution`)
    whose ``NotImplementedError`` carries the exercise's number and task text;
    ``solution-start`` / ``solution-end`` blocks (and anything between them) are
    removed; markdown cells with the metadata ``"student_version"`` are replaced by that
    text; outputs are cleared; the task lines are numbered per chapter; a table of the
    exercises and points is inserted after the title; the chapter id, the exercises and
    their points go into ``metadata.companion``.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The chapter notebook with its reference solutions (it is not modified).
    registry : dict, optional
        Exercise registry (default: :func:`exercise_registry`), for points and the
        chapter id.
    name : str
        The source file name: recorded in the metadata, and its ``NN_`` prefix is the
        chapter number (else the chapter's place in the course).
    check_leaks : bool
        Refuse (``LeakError``) a student version that gives an answer away (default).

    Returns
    -------
    nbformat.NotebookNode
        A new notebook.

    Raises
    ------
    ValueError
        If the notebook has no graded exercise, or a solution cell is not valid Python.
    LeakError
        (a ``ValueError``) If a solution's distinctive line or number is still in the
        student version; the message names the cell and the line.
    """
    if not hasattr(nb, "cells"):
        raise TypeError(f"nb must be an nbformat notebook, got {type(nb).__name__}")
    registry = exercise_registry() if registry is None else registry
    exercises = find_exercises(nb, registry)
    if not exercises:
        raise ValueError(f"nb ({name or 'notebook'}) has no graded exercise (no solution cell)")
    chapter = _chapter_of(nb, exercises, registry, Path(name).stem)
    number_exercises(exercises, chapter_number(chapter, name))
    numbers = {f"ex-{e.id}": e.number for e in exercises}
    by_cell = {i: e for e in exercises for i in e.solution_cells}
    out = copy.deepcopy(nb)
    cells, inside = [], False
    for index, cell in enumerate(out.cells):
        if cell.cell_type == "markdown":
            replacement = cell.metadata.pop("student_version", None)
            if isinstance(replacement, str):
                cell.source = replacement
            text, inside = _strip_solution_blocks(source(cell), inside)
            if text.strip():
                cell.source = _number_task_lines(text, numbers)
                cells.append(cell)
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            mark = {"id": cell["id"]} if cell.get("id") else {"id": f"cell-{index}"}
        if index in by_cell:
            ex = by_cell[index]
            task = ex.task or (f"complete {ex.title}" if ex.title else "write your solution here")
            points = _points(ex.points)
            message = f"{ex.label} ({ex.id}, {points}): {task}"
            read = names_read([source(nb.cells[i]) for i in ex.check_cells])
            try:
                stub = stub_solution(source(cell), message, answers=read)
            except ValueError as err:
                raise ValueError(f"the solution cell of {ex.id} in {name or 'the notebook'}: {err}") from None
            if "def " in stub or "class " in stub:
                how = ("# Replace each `raise NotImplementedError(...)` with your code, keeping the\n"
                       "# names and signatures, then run the check cell below.\n")
            else:
                how = "# Replace `None` by your answer, then run the check cell below.\n"
            header = f"# {ex.label} ({ex.id}, {points}): your solution.\n" + how
            cell.source = (header + stub).rstrip("\n")
            kept_tags = [t for t in tags(cell) if t != "solution"]
            cell.metadata["tags"] = kept_tags + ([STUB_TAG] if STUB_TAG not in kept_tags else [])
            cell.metadata["exercise"], cell.metadata["points"] = ex.id, ex.points
            cell.metadata.pop("cellView", None)  # the stub is the student's to see
            cell.metadata["companion"] = dict(mark, stub_sha256=stub_hash(cell.source))
            cells.append(cell)
            continue
        if cell.cell_type == "code" and inside:
            continue  # an untagged code cell inside a solution block: never ship it
        if cell.cell_type == "code":
            cell.metadata["companion"] = mark
        cells.append(cell)
    title_at = next((i for i, c in enumerate(cells)
                     if c.cell_type == "markdown" and source(c).lstrip().startswith("# ")), -1)
    cells.insert(title_at + 1, nbformat.v4.new_markdown_cell(_points_table(exercises)))
    if out.get("nbformat_minor", 0) < 5:  # cell ids came with nbformat 4.5
        for cell in cells:
            cell.pop("id", None)
    out.cells = cells
    from companion import __version__

    out.metadata["companion"] = {
        "chapter": chapter,
        "student_version": True,
        "source": Path(name).name,
        "companion_version": __version__,
        "exercises": [{"id": e.id, "number": e.number, "title": e.title, "points": e.points}
                      for e in exercises],
        "total_points": sum(e.points for e in exercises),
    }
    if check_leaks:
        solutions = {e.id: "\n\n".join(source(nb.cells[i]) for i in e.solution_cells) for e in exercises}
        leaks = find_leaks(out, solutions, {e.id: e.task for e in exercises})
        if leaks:
            raise LeakError(name, leaks)
    return out


_FALLBACK_ERRORS = {"NotImplementedError", "RuntimeError", "Exception", "BaseException"}


def _unguarded_names(tree) -> set:
    """Names the code loads, except inside the body of a ``try`` that falls back when the
    stub raises (``except NotImplementedError:``, or a broader handler): such a cell runs
    in the student version before the exercise is solved."""
    def guarded(node) -> bool:
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if handler.type is None or any(isinstance(k, ast.Name) and k.id in _FALLBACK_ERRORS for k in kinds):
                return True
        return False

    names, stack = set(), [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Try) and guarded(node):
            children = [c for c in children if not any(c is b for b in node.body)]
        stack.extend(children)
    return names


def _cells_using_answers(nb) -> list[tuple[int, list, str]]:
    """Code cells (not checks) that use a name an exercise defines: they fail in the
    student version until that exercise is solved. Returns (cell number, names, id)."""
    defined, found = {}, []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(source(cell))
        except SyntaxError:
            continue
        if STUB_TAG in tags(cell):
            for node in tree.body:
                names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    else bound_names(node)
                defined.update({n: cell.metadata.get("exercise", "?") for n in names})
        elif "check" not in tags(cell) and defined:
            used = sorted(_unguarded_names(tree) & set(defined))
            if used:
                found.append((number, used, defined[used[0]]))
    return found


def _notebooks_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))


def write_student_notebooks(source_path, output, *, registry: dict | None = None,
                            log=print) -> list[Path]:
    """Write the student version of every chapter notebook of a folder.

    One notebook's problem never stops the others: a file that is not a valid notebook,
    or whose exercises cannot be turned into a student version (a solution cell that is
    not valid Python, broken metadata), is skipped with a line naming it and the reason;
    a notebook without graded exercises is skipped with a note; a notebook whose student
    version would give an answer away is not written, and after the others are written a
    ``LeakError`` lists every such place.

    Parameters
    ----------
    source_path : str or Path
        A chapter notebook, or a folder whose ``*.ipynb`` files are read.
    output : str or Path
        Folder for the student notebooks (created; same file names as the sources); it
        must not be an existing file nor the source folder.
    registry : dict, optional
        Exercise registry (default: :func:`exercise_registry`).
    log : callable
        Where the one-line reports go (default ``print``).

    Returns
    -------
    list of Path
        The notebooks written.

    Raises
    ------
    ValueError
        For a bad path (missing source, a folder without notebooks, an output that is a
        file or the source folder), when the one notebook asked for cannot be converted,
        and when a folder gave no student notebook at all (every one skipped).
    LeakError
        When a student version would give an answer away.
    """
    source_path, output = _given_path(source_path, "source"), _given_path(output, "output")
    if not source_path.exists():
        raise ValueError(f"source {source_path} does not exist")
    if output.exists() and not output.is_dir():
        raise ValueError(f"output {output} is an existing file; the student notebooks go into a folder")
    folder = source_path if source_path.is_dir() else source_path.parent
    if output.resolve() == folder.resolve():
        raise ValueError("output must differ from the source folder (it would overwrite the chapters)")
    registry = exercise_registry() if registry is None else registry
    paths = _notebooks_in(source_path)
    if not paths:
        raise ValueError(f"source {source_path} has no .ipynb notebook")
    written, refused, skipped = [], [], []

    def skip(path, why):
        if source_path.is_file():  # the one notebook asked for: an error, not a skip
            raise ValueError(f"source {source_path}: {why}")
        log(f"skipped {path.name}: {why}")
        skipped.append(path)

    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
            if not isinstance(nb.get("cells"), list):
                raise ValueError("it has no list of cells")
        except Exception as err:  # JSON errors, wrong schema, binary junk, unreadable
            skip(path, f"not a valid notebook ({_first_line(err)})")
            continue
        try:
            student = student_notebook(nb, registry, name=path.name)
        except LeakError as err:
            refused.append(err)
            log(f"refused {path.name}: its student version gives answers away (see below)")
            continue
        except Exception as err:  # a broken solution cell or metadata: this notebook only
            if isinstance(err, ValueError) and "no graded exercise" in str(err):
                log(f"skipped {path.name}: no graded exercise")
                skipped.append(path)
                continue
            skip(path, f"no student version ({type(err).__name__}: {_first_line(err)})")
            continue
        output.mkdir(parents=True, exist_ok=True)
        target = output / path.name
        nbformat.write(student, target)
        meta = student.metadata["companion"]
        log(f"wrote {target}: chapter {meta['chapter']}, {len(meta['exercises'])} exercises, "
            f"{meta['total_points']} points")
        for number, names, ex_id in _cells_using_answers(student):
            log(f"  note: cell {number} uses {', '.join(names)} from exercise {ex_id}; "
                "it fails until the student solves that exercise")
        written.append(target)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        error = LeakError("several notebooks", [leak for e in refused for leak in e.leaks])
        error.args = ("\n".join(str(e) for e in refused),)
        raise error
    if not written:
        raise ValueError(f"source {source_path}: no student notebook written "
                         f"({len(skipped)} notebook(s) skipped, see above)")
    return written


def _first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an error message (its type when empty), cut to ``limit``."""
    text = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:limit]
