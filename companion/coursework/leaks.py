r"""Leak checks: a student notebook must not give an exercise's answer away.

The student generator removes the solution cells, but an answer can survive elsewhere:
a later markdown cell that states the number the exercise asks for, a code cell that
repeats the solution's formula, a docstring that spells out the body. Authors mark a
markdown cell that gives an answer away with the metadata ``"student_version":
"<markdown>"`` (the generator puts that text in its place); :func:`find_leaks` is the
safety net that makes the generator refuse a notebook in which a solution's
*distinctive* lines or numbers still appear.

Distinctive, so that honest chapters pass and real leaks are caught:

* **a line** of a solution's body (not the ``def`` line, the docstring, an import or a
  comment) whose expression carries a computation: at least 8 AST nodes and at least one
  arithmetic operator, comparison or call nested in a call (``np.sum(x) / len(x)``,
  ``np.trace(Sw @ np.linalg.pinv(Sb)) / C``; not ``np.asarray(x, dtype=float)``,
  ``len(x)`` or ``x - mean(x)``). It leaks when the same expression (compared after
  parsing, so spacing does not matter) appears in any code cell of the student notebook,
  or its text (without spaces) in any markdown cell;
* **a number**: a numeric literal of a solution with at least three significant digits
  that is not an integer (``0.0625``, ``1.4142``), or any number other than 0 and 1
  assigned as an answer at the top level of a value exercise (``threshold = 0.37``). It
  leaks when a markdown cell states the same value, or a code cell outside the exercise
  uses it as a literal;
* **a formula for the answer's symbol**: when the task names its answer with a starred
  or "opt" symbol (``$\lambda^\star_k$``, ``$N_{\mathrm{opt}}$``) in a sentence that
  asks for it (returns, compute, derive, find, predict, give, set, write), a markdown cell that
  states ``symbol = <formula>`` in math, with a formula the task itself does not show
  (a summary line ``$\lambda^\star_k = \sqrt{n_k}/N$``).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

__all__ = ["Leak", "LeakError", "find_leaks", "distinctive_parts"]


@dataclass
class Leak:
    """One place where a student notebook gives an answer away."""

    exercise: str
    cell: int            # 1-based cell number in the student notebook
    cell_id: str
    line: int            # 1-based line in that cell
    what: str            # the distinctive expression or number

    def __str__(self) -> str:
        where = f"cell {self.cell}" + (f" (id {self.cell_id})" if self.cell_id else "")
        return f"{where}, line {self.line}: gives away exercise {self.exercise}: {self.what}"


class LeakError(ValueError):
    """The student version of a notebook would give an answer away."""

    def __init__(self, name: str, leaks: list[Leak]):
        self.leaks = leaks
        lines = "\n".join(f"  {leak}" for leak in leaks)
        super().__init__(
            f"{name or 'the notebook'}: the student version gives answers away, so it was not "
            f"written:\n{lines}\n  Mark such a markdown cell with the metadata \"student_version\" "
            "(the text students get instead), or reword the cell.")


_OPS = (ast.BinOp, ast.Compare, ast.BoolOp, ast.UnaryOp)


def _size(node) -> int:
    return sum(1 for n in ast.walk(node) if not isinstance(n, (ast.expr_context, ast.operator,
                                                              ast.cmpop, ast.boolop, ast.unaryop)))


def _computes(node) -> bool:
    if any(isinstance(n, (ast.BinOp, ast.Compare, ast.BoolOp)) for n in ast.walk(node)):
        return True
    return any(isinstance(n, ast.Call) and any(isinstance(m, ast.Call) for m in ast.walk(n) if m is not n)
               for n in ast.walk(node))


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _expressions(stmt) -> list:
    """The expressions a statement computes on its own line(s)."""
    if isinstance(stmt, (ast.Return, ast.Expr)) and stmt.value is not None:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            return []  # a docstring or a bare constant
        return [stmt.value]
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and stmt.value is not None:
        return [stmt.value]
    if isinstance(stmt, (ast.If, ast.While)):
        return [stmt.test]
    if isinstance(stmt, ast.For):
        return [stmt.iter]
    return []


def _parse(source: str):
    clean = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        return ast.parse(clean)
    except SyntaxError:
        return None


def _significant(value) -> int:
    digits = f"{abs(value):.15g}".split("e")[0].replace(".", "").lstrip("0").rstrip("0")
    return len(digits)


def distinctive_parts(source: str) -> tuple[dict, dict]:
    """The distinctive expressions and numbers of a solution cell.

    Returns
    -------
    expressions : dict
        Normalised unparsed expression -> its text as written.
    numbers : dict
        float value -> the literal as written.
    """
    tree = _parse(source)
    expressions, numbers = {}, {}
    if tree is None:
        return expressions, numbers

    def visit_body(body):
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit_body(stmt.body)
                continue
            for expr in _expressions(stmt):
                if _size(expr) >= 8 and _computes(expr):
                    expressions.setdefault(_norm(ast.unparse(expr)), ast.unparse(expr))
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit_body(getattr(stmt, field, []) or [])
            for node in ast.walk(stmt):
                if isinstance(node, ast.Constant) and type(node.value) in (int, float) \
                        and not float(node.value).is_integer() and _significant(node.value) >= 3:
                    numbers.setdefault(float(node.value), repr(node.value))

    visit_body(tree.body)
    for stmt in tree.body:  # value exercises: the numbers assigned at the top level
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            value = stmt.value.operand if isinstance(stmt.value, ast.UnaryOp) else stmt.value
            if isinstance(value, ast.Constant) and type(value.value) in (int, float) \
                    and value.value not in (0, 1) and math.isfinite(value.value):
                sign = -1 if isinstance(stmt.value, ast.UnaryOp) and isinstance(stmt.value.op, ast.USub) else 1
                numbers.setdefault(sign * float(value.value), ast.unparse(stmt.value))
    return expressions, numbers


_NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?(?![\w.]*\d)|(?<![\w.])[-−]?\.\d+")


def _same(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def _text_numbers(line: str) -> list[float]:
    found = []
    for match in _NUMBER.finditer(line.replace("\\,", "")):
        token = match.group(0).replace("−", "-")
        try:
            found.append(float(token))
        except ValueError:
            try:
                found.append(float(token.replace(",", "")))
            except ValueError:
                pass
    return found


_MATH = re.compile(r"\$\$?([^$]+)\$\$?")
_ANSWER_SYMBOL = re.compile(r"\\star|\^\s*\*|\^\s*\{\s*\*\s*\}|opt")


def _tex(text: str) -> str:
    return re.sub(r"\s+|\\[,;:! ]|\\left|\\right|\{|\}", "", text)


_ASKS = re.compile(r"\b(return|returns|returning|compute|computes|derive|find|predict|give|gives|set|write)\b",
                   re.I)


def answer_symbols(task: str) -> list[str]:
    """Math symbols a task names its answer by: starred or "opt" symbols (not relations)
    in a sentence that asks for something ("returns ... $\\lambda^\\star_k$"), not in one
    that only mentions them ("the check verifies that the minimiser is $x^\\star$")."""
    found = []
    for sentence in re.split(r"(?<=[.;])\s+", task or ""):
        if not _ASKS.search(_MATH.sub(" ", sentence)):
            continue
        found += [m.strip() for m in _MATH.findall(sentence)
                  if _ANSWER_SYMBOL.search(m) and not re.search(r"=|\\le|\\ge|<|>|\\approx", m)]
    return list(dict.fromkeys(found))


def _formula_leaks(text: str, symbols: list[str], task: str):
    """(line, shown) for each ``symbol = formula`` in the math of ``text``."""
    flat_task = _tex(task)
    for number, line in enumerate(text.splitlines(), start=1):
        for math in _MATH.findall(line):
            sides = re.split(r"(?<![<>!=])=(?!=)", math)
            for lhs, rhs in zip(sides, sides[1:]):
                symbol = next((s for s in symbols if _tex(lhs).endswith(_tex(s))), None)
                if symbol is None or not _tex(rhs) or _tex(rhs) in flat_task:
                    continue
                if re.fullmatch(r"[-+]?[\d.]+", _tex(rhs)):
                    continue  # a value (the numbers check handles those)
                yield number, f"${symbol} = {rhs.strip()}$"


def find_leaks(student_nb, solutions: dict, tasks: dict | None = None) -> list[Leak]:
    """Places of ``student_nb`` that give away a solution's distinctive lines or numbers.

    Parameters
    ----------
    student_nb : nbformat.NotebookNode
        The generated student notebook.
    solutions : dict
        Exercise id -> the source of its reference solution (all its solution cells).
    tasks : dict, optional
        Exercise id -> the task text (for the formula check).

    Returns
    -------
    list of Leak
        Empty when nothing leaks.
    """
    parts = {ex_id: distinctive_parts(src) for ex_id, src in solutions.items()}
    tasks = tasks or {}
    symbols = {ex_id: answer_symbols(task) for ex_id, task in tasks.items()}
    leaks: list[Leak] = []
    for number, cell in enumerate(student_nb.cells, start=1):
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        cell_id = cell.get("id", "") or ""
        own = cell.get("metadata", {}).get("exercise")
        if cell.cell_type == "code":
            tree = _parse(text)
            if tree is None:
                continue
            seen = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.expr):
                    seen.setdefault(_norm(ast.unparse(node)), getattr(node, "lineno", 1))
            constants = [(float(n.value), n.lineno) for n in ast.walk(tree)
                         if isinstance(n, ast.Constant) and type(n.value) in (int, float)]
            for ex_id, (expressions, numbers) in parts.items():
                for key, shown in expressions.items():
                    if key in seen:
                        leaks.append(Leak(ex_id, number, cell_id, seen[key], f"`{shown}`"))
                if own == ex_id:
                    continue  # the exercise's own cells may use its numbers (a check's tolerance)
                for value, shown in numbers.items():
                    line = next((ln for v, ln in constants if _same(v, value)), None)
                    if line is not None:
                        leaks.append(Leak(ex_id, number, cell_id, line, f"the number {shown}"))
        elif cell.cell_type == "markdown":
            lines = text.splitlines()
            flat = [_norm(line) for line in lines]
            for ex_id, (expressions, numbers) in parts.items():
                for key, shown in expressions.items():
                    line = next((i for i, f in enumerate(flat, 1) if key in f), None)
                    if line is None and key in "".join(flat):
                        line = 1
                    if line is not None:
                        leaks.append(Leak(ex_id, number, cell_id, line, f"`{shown}`"))
                for value, shown in numbers.items():
                    line = next((i for i, raw in enumerate(lines, 1)
                                 if any(_same(v, value) for v in _text_numbers(raw))), None)
                    if line is not None:
                        leaks.append(Leak(ex_id, number, cell_id, line, f"the number {shown}"))
            for ex_id, found in symbols.items():
                if found and "exercise-start" not in text:
                    for line, shown in _formula_leaks(text, found, tasks[ex_id]):
                        leaks.append(Leak(ex_id, number, cell_id, line, shown))
    return leaks
