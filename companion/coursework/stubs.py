"""Stub generation: the solution cell of an exercise becomes the cell a student completes."""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import textwrap
from typing import Iterable

__all__ = ["stub_solution", "stub_hash", "bound_names"]


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


def bound_names(node) -> list[str]:
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
            assigned += [n for n in bound_names(node) if n not in assigned]
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


def stub_hash(source: str) -> str:
    normal = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()

