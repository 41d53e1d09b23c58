"""Number the exercises per chapter: "Exercise 5.3", not "Exercise 15" of the whole book.

Registered in ``_config.yml`` under ``sphinx.local_extensions``. sphinx-exercise numbers
its exercises with Sphinx's figure numbering (``numfig``); without numbered sections (the
book's table of contents is not numbered) Sphinx counts them across the whole book. After
Sphinx has assigned the numbers (the ``env-get-updated`` event, at a later priority than
Sphinx's own handler), this extension renumbers each document's exercises as
``(chapter, k)``: the chapter is the ``NN_`` prefix of the document's file name
(``book/05_rl_entropy`` is chapter 5), ``k`` counts the exercises of that document in
order. Titles, ``{ref}`` and ``{numref}`` links and the solutions' "Solution to
Exercise 5.3" all read these numbers. A document without a number prefix numbers its
exercises 1, 2, ... The student notebooks use the same numbers
(``companion.coursework.notebook.number_exercises``).
"""

from __future__ import annotations

import re

FIGTYPE = "exercise"


def chapter_of(docname: str) -> int | None:
    """``"book/05_rl_entropy"`` -> 5; None without an ``NN_`` prefix."""
    match = re.match(r"(\d+)[_-]", docname.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def number_per_chapter(app, env) -> list[str]:
    """Replace the book-wide exercise numbers by per-chapter ones."""
    for docname, figtypes in env.toc_fignumbers.items():
        numbers = figtypes.get(FIGTYPE)
        if not numbers:
            continue
        chapter = chapter_of(docname)
        ordered = sorted(numbers, key=lambda ident: numbers[ident])
        for k, ident in enumerate(ordered, start=1):
            numbers[ident] = (chapter, k) if chapter is not None else (k,)
    return []


def setup(app):
    app.connect("env-get-updated", number_per_chapter, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
