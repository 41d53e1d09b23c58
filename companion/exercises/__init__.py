"""Checks for the graded exercises, one module per chapter.

Each module mirrors the package module its chapter teaches::

    from companion.exercises import neural_collapse as ex
    ex.check_nc1(my_nc1)

See :mod:`companion.exercises._core` for the convention every check follows; a check
fails a student function that reaches the functions its exercise ``implements``
(:func:`forbidden_functions`).
"""

from __future__ import annotations

import importlib

from ._core import RESULTS_ENV, ExerciseCheck, ExerciseFailed, forbidden_functions, register, registry

__all__ = ["ExerciseCheck", "ExerciseFailed", "RESULTS_ENV", "register", "registry",
           "forbidden_functions", "CHAPTER_MODULES", "load_all"]

#: the exercise modules, in chapter order
CHAPTER_MODULES = ("neural_collapse", "entropy", "sae", "scaling", "rl")


def load_all() -> dict:
    """Import every chapter's exercise module (filling :data:`registry`) and return it."""
    for name in CHAPTER_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    return registry


def __getattr__(name):
    if name in CHAPTER_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
