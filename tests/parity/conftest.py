"""The parity suite: the companion against the field's reference libraries on the same inputs.

``make parity`` installs the optional extra ``parity`` (SAELens, TRL) with torch held at
the installed version and sets ``COMPANION_PARITY_REQUIRED=1``, so a missing library is an
error there; in ``make unit`` the suite is skipped when the libraries are absent.
"""

import importlib
import os

import pytest


def require(module: str):
    """Import ``module`` or skip (fail under ``make parity``)."""
    if os.environ.get("COMPANION_PARITY_REQUIRED") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)
