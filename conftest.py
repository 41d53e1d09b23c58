"""Shared pytest set-up for the unit tests (tests/) and the doctests of the package (companion/).

``make unit`` runs ``pytest tests companion --doctest-modules``: every ``Examples`` section
of a public docstring is run, with ``np`` and ``torch`` already imported (as a reader of
the docstring would have them) and NUMBER/ELLIPSIS/NORMALIZE_WHITESPACE set in
pyproject.toml, so ``0.333`` matches ``0.3333333``. Examples that need a trained model or a
data loader mark their lines ``# doctest: +SKIP``.
"""

import os

import pytest

os.environ.setdefault("COMPANION_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ``python -m companion`` runs the CLI when imported, and the fixtures are data for the
# coursework tests (importing them would register fake exercises): not modules to doctest.
collect_ignore = ["companion/__main__.py", "tests/fixtures"]


@pytest.fixture(autouse=True, scope="session")
def _doctest_imports(doctest_namespace):
    import numpy as np
    import torch

    doctest_namespace["np"] = np
    doctest_namespace["torch"] = torch
