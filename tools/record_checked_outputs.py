"""Record the reference outputs of the cells nbval checks, and only those.

nbval compares a cell's output with the output stored in the notebook, and only when the
stored cell has an execution count. The chapters are committed without outputs, except the
cells that start with ``# NBVAL_CHECK_OUTPUT``: this script executes each notebook once in
a fresh kernel and stores the outputs of exactly those cells (their printed, rounded key
numbers), clearing every other cell. Run it after changing a chapter's numbers::

    make record-outputs                        # every chapter
    python tools/record_checked_outputs.py book/01_neural_collapse.ipynb

A checked cell must print text only (no figures, no warnings on stderr), so that what nbval
compares is the chapter's numbers and nothing else; the script refuses anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARKER = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARKER)


def _text_only(outputs, where: str):
    kept = []
    for out in outputs:
        if out.output_type == "stream" and out.name == "stdout":
            kept.append(out)
        elif out.output_type == "execute_result" and set(out.data) == {"text/plain"}:
            out.metadata = {}
            kept.append(out)
        else:
            kind = out.output_type + (f" ({out.name})" if out.output_type == "stream" else "")
            raise ValueError(f"{where}: a checked cell may only print text, it produced {kind}")
    return kept


def record(path: Path, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    executed = nbformat.read(path, as_version=4)
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    start = time.perf_counter()
    os.environ.setdefault("COMPANION_NO_PROGRESS", "1")
    NotebookClient(executed, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    for i, (cell, ran) in enumerate(zip(nb.cells, executed.cells)):
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            cell.outputs = _text_only(ran.outputs, f"{path.name}, cell {i}")
            cell.execution_count = ran.execution_count
        else:
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, path)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to record (default: every chapter in book/)")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    paths = args.notebooks or sorted((root / "book").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        seconds = record(path, args.timeout)
        print(f"{path.name}: executed in {seconds:.0f} s, checked outputs recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
