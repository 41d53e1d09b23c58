"""Coursework: student notebooks without solutions, and automatic grading.

Two commands (``python -m companion ...`` or the ``companion`` console script)::

    python -m companion student book/ -o student/
    python -m companion grade submissions/ -o grades.csv -j 2 --feedback feedback/

``student`` writes, for every chapter notebook, a copy for students (solutions replaced
by stubs, exercises numbered per chapter, answers that the text would give away replaced
or refused); ``grade`` runs every submitted notebook in a fresh kernel (by default only
the cells the exercises need), collects the verdicts the exercise checks sign, and writes
one CSV row per student and exercise, a wide table with one row per student, and, with
``--feedback``, each student's executed notebook with the verdicts next to the exercises
and a summary file.

A student is identified by the first folder under the submissions folder
(``submissions/alice/anything.ipynb`` is ``alice``) or, for a file directly in it, by
the file name without extension (``submissions/alice.ipynb`` is ``alice``).

One module per job:

=====================  ==================================================================
``notebook``           reading the exercise convention, chapter and exercise numbers,
                       which cells the fast grading mode runs
``stubs``              a solution cell -> the stub a student completes
``leaks``              refusing a student notebook that gives an answer away
``student``            the student version of a chapter notebook (and of a folder)
``execute``            running cells in a fresh Jupyter kernel with time limits
``results``            the signed verdicts of the checks
``grade``              grading one notebook and a folder of them
``tables``             the grades CSV, the wide table, the summary, the feedback files
``cli``                the command line
=====================  ==================================================================
"""

from .cli import main
from .grade import DEFAULT_CELL_TIMEOUT, grade_notebook, grade_submissions, wide_path
from .leaks import Leak, LeakError, find_leaks
from .notebook import (Exercise, chapter_number, exercise_registry, find_exercises, grading_plan,
                       identify_chapter)
from .stubs import stub_solution
from .student import student_notebook, write_student_notebooks
from .tables import CSV_FIELDS

__all__ = [
    "Exercise",
    "CSV_FIELDS",
    "DEFAULT_CELL_TIMEOUT",
    "Leak",
    "LeakError",
    "chapter_number",
    "exercise_registry",
    "find_exercises",
    "find_leaks",
    "grading_plan",
    "stub_solution",
    "student_notebook",
    "write_student_notebooks",
    "identify_chapter",
    "grade_notebook",
    "grade_submissions",
    "wide_path",
    "main",
]
