"""Companion package of the course *Collapse and Scaling in Deep Learning*.

One module per chapter topic (``neural_collapse``, ``entropy``, ``sae``, ``scaling``,
``rl``), plus the shared pieces the chapters use (``data``, ``training``, ``evidence``, ``plotting``, ``widgets``,
``exercises``, ``coursework``). Import the module a chapter teaches::

    from companion import neural_collapse as nc
"""

import importlib

__version__ = "0.1.0"

__all__ = ["__version__"]

_MODULES = ("neural_collapse", "entropy", "sae", "scaling", "rl", "data", "training",
            "evidence", "plotting", "widgets", "exercises", "coursework")


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
