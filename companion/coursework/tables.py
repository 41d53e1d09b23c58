"""What the grader writes: the grades CSV (one row per student x exercise), the wide table
(one row per student, for gradebooks), the summary printed at the end, and the feedback
for students (the executed notebook with each check's verdict next to its exercise, and
one summary file per student)."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path

import nbformat

__all__ = ["CSV_FIELDS", "row", "read_grades", "append_rows", "summary", "table", "write_wide",
           "wide_rows", "annotate", "write_student_summaries"]

#: the columns of the grades file, in order
CSV_FIELDS = ("student", "notebook", "chapter", "exercise", "number", "points", "score", "passed",
              "message", "sha256")


def row(student, notebook, chapter, exercise, points, score, passed, message, sha, number="") -> dict:
    """One row of the grades file (``number`` is the per-chapter number, ``"5.3"``)."""
    return {"student": student, "notebook": notebook, "chapter": chapter or "", "exercise": exercise,
            "number": number, "points": points, "score": score, "passed": passed, "message": message,
            "sha256": sha}


def read_grades(path: Path) -> list[dict]:
    """The rows of an existing grades CSV; ``ValueError`` naming ``path`` when it is not
    one (another CSV, binary junk, a damaged row)."""
    def not_grades(detail):
        return ValueError(f"output {path} exists and is not a grades file of this tool ({detail}); "
                          "choose another name or use --force")

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise not_grades(f"{type(err).__name__}: {str(err)[:120]}") from None
    if columns is None or not set(CSV_FIELDS) - {"number"} <= set(columns):
        raise not_grades(f"columns {columns}")
    try:
        for r in rows:  # the types grade_notebook returns
            r["points"], r["score"] = int(r["points"] or 0), int(r["score"] or 0)
            r["passed"] = r["passed"] == "True"
            r["number"] = r.get("number") or ""
    except (ValueError, TypeError) as err:
        raise not_grades(f"a damaged row: {str(err)[:120]}") from None
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


_REASONS = ("not attempted", "timeout", "kernel died", "check not run", "not a notebook",
            "not a valid notebook", "unknown chapter", "grader error")


def reason(message: str) -> str:
    """The short reason of a failed row, for the summary table."""
    message = str(message)
    return next((r for r in _REASONS if message.startswith(r)), "failed")


def summary(rows: list[dict]) -> str:
    """The table printed at the end: one line per notebook, then one per exercise."""
    by_notebook: dict[str, list[dict]] = {}
    for row in rows:
        by_notebook.setdefault(row["notebook"], []).append(row)
    lines = [("student", "notebook", "chapter", "score", "passed", "note")]
    for notebook, group in sorted(by_notebook.items()):
        graded = [r for r in group if r["exercise"]]
        score = sum(int(r["score"]) for r in graded)
        total = sum(int(r["points"]) for r in graded)
        passed = sum(bool(r["passed"]) for r in graded)
        notes = Counter(reason(r["message"]) for r in group if not r["passed"])
        note = ", ".join(f"{k}" + (f" x{v}" if v > 1 else "") for k, v in notes.most_common(3))
        lines.append((group[0]["student"], notebook, group[0]["chapter"] or "-",
                      f"{score}/{total}", f"{passed}/{len(graded)}", note[:60]))
    exercises: dict[str, list[bool]] = {}
    for row in rows:
        if row["exercise"]:
            exercises.setdefault(row["exercise"], []).append(bool(row["passed"]))
    text = table(lines)
    if exercises:
        text += "\n\n" + table([("exercise", "passed by")] + [
            (ex, f"{sum(v)}/{len(v)}") for ex, v in exercises.items()])
    return text


def table(rows: list[tuple]) -> str:
    """Rows (the first is the header) as a fixed-width text table."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)




# ----------------------------------------------------------------------------------------
# The wide table: one row per student
# ----------------------------------------------------------------------------------------

def wide_rows(rows: list[dict], order: list[str] | None = None) -> tuple[list[str], list[dict]]:
    """One row per student: the score of each exercise, each chapter's total, the total.

    A student who handed in several notebooks of a chapter gets, per exercise, the best
    score among them. Exercises come in ``order`` (the registry's, i.e. chapter order),
    then any other in order of appearance.

    Returns
    -------
    columns : list of str
        ``student``, the exercise ids, ``<chapter> total`` per chapter, ``total``, ``max``.
    rows : list of dict
    """
    points, chapter_of, best = {}, {}, {}
    for r in rows:
        if not r["exercise"]:
            continue
        points[r["exercise"]] = int(r["points"])
        chapter_of[r["exercise"]] = r["chapter"]
        key = (r["student"], r["exercise"])
        best[key] = max(best.get(key, 0), int(r["score"]))
    exercises = [e for e in (order or []) if e in points] + [e for e in points if e not in (order or [])]
    chapters = list(dict.fromkeys(chapter_of[e] for e in exercises))
    students = sorted({r["student"] for r in rows})
    out = []
    for student in students:
        line = {"student": student}
        for ex in exercises:
            line[ex] = best.get((student, ex), 0)
        for chapter in chapters:
            line[f"{chapter} total"] = sum(line[e] for e in exercises if chapter_of[e] == chapter)
        line["total"] = sum(line[e] for e in exercises)
        line["max"] = sum(points[e] for e in exercises)
        out.append(line)
    columns = ["student"] + exercises + [f"{c} total" for c in chapters] + ["total", "max"]
    return columns, out


def write_wide(path: Path, rows: list[dict], order: list[str] | None = None) -> Path:
    """Write :func:`wide_rows` as CSV (the format gradebooks import)."""
    columns, lines = wide_rows(rows, order)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(lines)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------
# Feedback for students
# ----------------------------------------------------------------------------------------

def _verdict_text(r: dict, number: str = "") -> str:
    label = f"Exercise {number} ({r['exercise']})" if number else f"Exercise {r['exercise']}"
    mark = "passed" if r["passed"] else "not passed"
    return f"**Grader: {label}: {r['score']}/{r['points']} points, {mark}.** {r['message']}"


def annotate(nb, rows: list[dict], exercises: dict, mode: str):
    """The executed notebook with the grader's verdict in a markdown cell right after each
    exercise (after its last check cell, else its solution cell, else at the end) and a
    summary cell at the top. ``exercises`` maps an exercise id to its
    :class:`~companion.coursework.notebook.Exercise` (cell indices of ``nb``)."""
    nb = nbformat.from_dict(nb)
    by_id = {r["exercise"]: r for r in rows if r["exercise"]}
    after: dict[int, list] = {}
    at_end = []
    for ex_id, r in by_id.items():
        ex = exercises.get(ex_id)
        cells = (ex.check_cells or ex.solution_cells) if ex is not None else []
        cell = nbformat.v4.new_markdown_cell(_verdict_text(r, getattr(ex, "number", "")))
        cell.metadata["companion"] = {"grader": True}
        if cells:
            after.setdefault(max(cells), []).append(cell)
        else:
            at_end.append(cell)
    cells = []
    for index, cell in enumerate(nb.cells):
        cells.append(cell)
        cells += after.get(index, [])
    score = sum(int(r["score"]) for r in by_id.values())
    total = sum(int(r["points"]) for r in by_id.values())
    note = ("Only the setup cell, the exercise cells and the cells they depend on were run "
            "(fast grading mode); the other cells have no output here." if mode == "fast" else
            "Every cell was run.")
    head = nbformat.v4.new_markdown_cell(
        f"**Grader feedback: {score}/{total} points.** Each exercise's verdict is in a cell "
        f"that starts with **Grader:** right after the exercise. {note}")
    head.metadata["companion"] = {"grader": True}
    nb.cells = [head] + cells + at_end
    if nb.get("nbformat_minor", 0) < 5:  # cell ids came with nbformat 4.5
        for cell in nb.cells:
            cell.pop("id", None)
    return nb


def _safe(name: str) -> str:
    return re.sub(r"[^\w.@+-]+", "_", name).strip("._") or "student"


def write_student_summaries(folder: Path, rows: list[dict], numbers: dict | None = None) -> list[Path]:
    """One ``summary.md`` per student in ``folder/<student>/``: each notebook, each
    exercise with its points and the check's message, and the total."""
    numbers = numbers or {}
    by_student: dict[str, list[dict]] = {}
    for r in rows:
        by_student.setdefault(r["student"], []).append(r)
    written = []
    for student, group in sorted(by_student.items()):
        graded = [r for r in group if r["exercise"]]
        score = sum(int(r["score"]) for r in graded)
        total = sum(int(r["points"]) for r in graded)
        lines = [f"# Grades of {student}", "", f"**Total: {score}/{total} points.**", ""]
        for notebook in sorted({r["notebook"] for r in group}):
            mine = [r for r in group if r["notebook"] == notebook]
            chapter = mine[0]["chapter"] or "-"
            lines += [f"## {notebook} (chapter {chapter})", "",
                      "| Exercise | Points | Passed | Message |", "|---|---|---|---|"]
            for r in mine:
                name = r["exercise"] or "-"
                if r["exercise"] and numbers.get(r["exercise"]):
                    name = f"{numbers[r['exercise']]} ({r['exercise']})"
                message = str(r["message"]).replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {name} | {r['score']}/{r['points']} | {'yes' if r['passed'] else 'no'} | {message} |")
            lines.append("")
        target = folder / _safe(student) / "summary.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines), encoding="utf-8")
        written.append(target)
    return written
