"""The command line: ``python -m companion student|grade`` and the ``companion`` script.

Every bad path or argument gets one line on stderr and exit status 2; a refused student
notebook (an answer given away) exits with 1; Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .grade import DEFAULT_CELL_TIMEOUT, grade_submissions
from .leaks import LeakError
from .notebook import exercise_registry
from .student import write_student_notebooks

__all__ = ["main"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
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
    grade.add_argument("-o", "--output", default="grades.csv",
                       help="grades CSV, one row per student and exercise (default: grades.csv); "
                            "the wide table, one row per student, goes next to it (grades-wide.csv)")
    grade.add_argument("--full", action="store_true",
                       help="run every cell of each notebook (default: only the setup cell, the "
                            "exercise cells and the cells they depend on)")
    grade.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default: 600)")
    grade.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                       help=f"seconds per cell before it is interrupted (default: {DEFAULT_CELL_TIMEOUT:g}; "
                            "0 for no per-cell limit)")
    grade.add_argument("-j", "--jobs", type=int, default=1, help="notebooks graded in parallel (default: 1)")
    grade.add_argument("--force", action="store_true", help="grade everything again")
    grade.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    grade.add_argument("--feedback", "--executed", dest="feedback", default=None, metavar="DIR",
                       help="write feedback for students in DIR: per student, the executed notebook "
                            "with each check's verdict next to its exercise, and summary.md")
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
        The exit status: 0 on success, 1 when a student notebook was refused (an answer
        given away), 2 on bad arguments or input, 130 on Ctrl-C.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already reported in one line
        return stop.code if isinstance(stop.code, int) else 2
    try:
        if args.command == "student":
            registry = exercise_registry(args.exercises)
            written = write_student_notebooks(args.source, args.output, registry=registry)
            print(f"{len(written)} student notebook(s) in {args.output}")
            return 0
        grade_submissions(args.submissions, args.output, timeout=args.timeout,
                          cell_timeout=args.cell_timeout or None, full=args.full, jobs=args.jobs,
                          force=args.force, kernel_name=args.kernel, modules=args.exercises,
                          feedback_dir=args.feedback,
                          show_progress=False if args.no_progress else None)
        return 0
    except LeakError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a path that cannot be read or written
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _one_line(err: BaseException) -> str:
    """An error message on one line (a message may quote a multi-line value)."""
    return " ".join(str(err).split("\n")).strip() or type(err).__name__
