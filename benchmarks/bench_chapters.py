"""How long each chapter notebook takes to run top to bottom, against the 3-minute budget.

Every ``book/NN_*.ipynb`` is executed with nbclient in a fresh kernel (the venv's
``python3``), from the ``book/`` folder, with ``COMPANION_NO_PROGRESS=1`` as in the tests.
The row's ``baseline_s`` is the budget of CONTRIBUTING.md (180 s on 2 CPU cores), so its
ratio is budget / measured time: above 1 the chapter is within budget. A chapter that
raises is reported with the failing cell. Quick mode runs the chapters in full too (a
chapter has no smaller version); use ``run.py --only`` to leave them out.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"
BUDGET_S = 180.0
TIMEOUT_S = 600


def chapters() -> list[Path]:
    return sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def execute(path: Path) -> tuple[float, str]:
    """Run one notebook; returns (seconds, "ok" or the error)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except CellExecutionError as error:
        last_line = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()[-1]
        status = f"error: {last_line[:120]}"
    except Exception as error:  # timeouts, dead kernels
        status = f"error: {type(error).__name__}: {str(error)[:120]}"
    return time.perf_counter() - start, status


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("COMPANION_NO_PROGRESS", "1")
    rows = []
    for path in chapters():
        seconds, status = execute(path)
        rows.append({"name": f"chapter {path.stem}", "baseline_s": BUDGET_S, "companion_s": seconds,
                     "accuracy": status, "baseline": "3-minute budget",
                     "within_budget": status == "ok" and seconds <= BUDGET_S})
    return rows
