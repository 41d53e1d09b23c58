"""Reading the exercise convention of a chapter notebook.

Which cells are an exercise's task, solution and check; which chapter a notebook is; the
per-chapter exercise numbers ("Exercise 5.3"); and which cells the fast grading mode runs.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

__all__ = ["Exercise", "MODULES_ENV", "exercise_registry", "find_exercises", "identify_chapter",
           "chapter_number", "number_exercises", "grading_plan"]

#: environment variable listing extra exercise modules (comma separated) to register
MODULES_ENV = "COMPANION_EXERCISE_MODULES"

STUB_TAG = "answer"
FENCE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}(?P<arg>[^\n]*)$")


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
    number : str
        The per-chapter number (``"5.3"``), set by :func:`number_exercises`.
    """

    id: str
    points: int = 0
    title: str = ""
    task: str = ""
    solution_cells: list = field(default_factory=list)
    check_cells: list = field(default_factory=list)
    number: str = ""

    @property
    def label(self) -> str:
        """``"Exercise 5.3"`` (or ``"Exercise nc-nc1"`` without a number)."""
        return f"Exercise {self.number or self.id}"


def source(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def tags(cell) -> list:
    found = cell.get("metadata", {}).get("tags", [])
    return list(found) if isinstance(found, (list, tuple)) else []


def companion_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("companion", {})
    return meta if isinstance(meta, dict) else {}


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
        Exercise id to ``{"points", "chapter", "check", "module", "implements"}``.

    Raises
    ------
    ValueError
        When a module name is empty, is not found, or its import fails (the message names
        the module and the error).
    """
    from companion.exercises import load_all

    if isinstance(modules, (str, bytes)):
        modules = [modules]
    names = list(modules) + [m for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"modules must be module names, got {name!r}")
        try:
            importlib.import_module(name.strip())
        except ModuleNotFoundError as err:
            raise ValueError(f"exercise module {name.strip()!r} not found ({err})") from None
        except Exception as err:  # a syntax error, or an error while it runs
            detail = str(err).splitlines()[0] if str(err) else ""
            raise ValueError(f"exercise module {name.strip()!r} cannot be imported: "
                             f"{type(err).__name__}: {detail}") from None
    return load_all()


def _given_path(value, name: str) -> Path:
    """A path argument of the coursework tools: a non-empty str or path-like (an empty
    string would silently mean the current folder)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or Path), got {type(value).__name__}")
    text = os.fspath(value)
    if isinstance(text, bytes) or not text.strip():
        raise ValueError(f"{name} must be a non-empty path, got {text!r}")
    if "\0" in text:
        raise ValueError(f"{name} contains a NUL character: {text!r}")
    return Path(text)


def directive_blocks(text: str):
    """Yield ``(name, argument, options, body_lines, (first, last line))`` per MyST directive."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
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
    text = re.sub(r"^\**\s*Exercise\b\s*[\d.]*\s*(\([^)]*\))?\s*[.:]?\s*\**\s*", "", text, flags=re.I)
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
        text = source(cell)
        lines = text.splitlines()
        cursor = 0
        for name, arg, options, body, (start, end) in directive_blocks(text):
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

    A solution cell is a code cell tagged ``solution`` (``answer`` in a student
    notebook) or any code cell between a ``solution-start`` and a ``solution-end`` block;
    its exercise id comes from the cell metadata ``exercise`` (a non-empty str), else from
    the ``solution-start`` label (``ex-<id>``). Check cells carry the tag ``check`` and the
    metadata ``exercise``. The task text is the body of the exercise block labelled
    ``ex-<id>`` (or the last exercise block before the solution).

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
            for name, arg, _, _, _ in directive_blocks(source(cell)):
                if name == "solution-start":
                    inside_label = arg or last_label or ""
                elif name == "solution-end":
                    inside_label = None
            continue
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {})
        is_solution = "solution" in tags(cell) or STUB_TAG in tags(cell) or inside_label is not None
        is_check = "check" in tags(cell)
        if not (is_solution or is_check):
            continue
        label = inside_label or last_label or ""
        ex_id = meta.get("exercise")
        if not isinstance(ex_id, str) or not ex_id.strip():  # missing or malformed: the block's label
            ex_id = _label_to_id(label)
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
# Per-chapter numbers
# ----------------------------------------------------------------------------------------

def chapter_number(chapter: str | None = None, name: str = "") -> int | None:
    """The chapter's number: the ``NN_`` prefix of its file name (``05_rl_entropy.ipynb``
    is 5, as in the book), else its place in
    :data:`companion.exercises.CHAPTER_MODULES`, else None."""
    match = re.match(r"(\d+)[_-]", Path(name).name) if name else None
    if match:
        return int(match.group(1))
    from companion.exercises import CHAPTER_MODULES

    if chapter in CHAPTER_MODULES:
        return CHAPTER_MODULES.index(chapter) + 1
    return None


def number_exercises(exercises: list[Exercise], chapter_no: int | None) -> list[Exercise]:
    """Set ``number`` on each exercise: ``"5.1"``, ``"5.2"``, ... in notebook order
    (``"1"``, ``"2"``, ... when the chapter has no number)."""
    for k, ex in enumerate(exercises, start=1):
        ex.number = f"{chapter_no}.{k}" if chapter_no is not None else str(k)
    return exercises


# ----------------------------------------------------------------------------------------
# Which chapter a submission is
# ----------------------------------------------------------------------------------------

def names_read(sources: Iterable[str]) -> set:
    """Names that some code loads (the arguments a check cell passes, for instance)."""
    names = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names


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
            src = source(cell)
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
# The fast grading mode: which cells to run
# ----------------------------------------------------------------------------------------

def cell_key(cell) -> str | None:
    """The id a ``depends_on`` list names a cell by: the nbformat 4.5 cell id, or the copy
    the student generator keeps in ``metadata.companion.id`` (Colab drops cell ids)."""
    return companion_meta(cell).get("id") or cell.get("id")


def grading_plan(nb, registry: dict) -> tuple[list[int] | None, str]:
    """The code cells the fast grading mode runs, in notebook order.

    * the setup cell: the first code cell of the chapter (in a student notebook, the
      first cell the generator marked; a cell the student put above it runs too);
    * the exercise cells: solution or stub cells and check cells (tags, metadata
      ``exercise``), and any cell that calls a registered check (a check the student
      called from a cell of their own);
    * the cells named by an exercise cell's metadata ``"depends_on": [<cell id>, ...]``
      (and, in turn, those they name);
    * in a student notebook (one the generator wrote: its code cells carry
      ``metadata.companion``), every code cell the student added.

    Returns
    -------
    cells : list of int or None
        Cell indices, or None when the fast mode cannot be trusted for this notebook
        (a ``depends_on`` id that no cell has): grade it in full.
    note : str
        Why the fast mode was not used ("" otherwise).
    """
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and source(c).strip()]
    if not code:
        return [], ""
    generated = any(companion_meta(nb.cells[i]) for i in code)
    marked = [i for i in code if companion_meta(nb.cells[i])]
    setup = marked[0] if generated else code[0]
    checks = [re.escape(info["check"]) for info in registry.values()]
    calls = re.compile(rf"\b(?:{'|'.join(checks)})\s*\(" if checks else r"(?!)")
    keys = {}
    for i in code:
        key = cell_key(nb.cells[i])
        if key:
            keys.setdefault(key, i)
    chosen, pending = set(), []
    for i in code:
        cell = nb.cells[i]
        meta = cell.get("metadata", {})
        is_exercise = (bool({"solution", "check", STUB_TAG} & set(tags(cell))) or bool(meta.get("exercise"))
                       or bool(calls.search(source(cell))))
        added = generated and not companion_meta(cell)
        if i == setup or i < setup or is_exercise or added:
            chosen.add(i)
            pending.append(i)
    while pending:
        deps = nb.cells[pending.pop()].get("metadata", {}).get("depends_on", [])
        for key in deps if isinstance(deps, list) else [deps]:
            if key not in keys:
                return None, f"a depends_on id ({key!r}) names no cell of the notebook"
            if keys[key] not in chosen:
                chosen.add(keys[key])
                pending.append(keys[key])
    return sorted(chosen), ""
