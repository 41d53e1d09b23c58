"""Kernel execution: run a notebook's code cells (all, or the fast mode's selection) in a
fresh Jupyter kernel, errors allowed, within a per-cell and a per-notebook time limit.

A cell over its limit is interrupted (``KeyboardInterrupt``). Code that ignores the
interrupt (a long loop inside one C call, such as ``sum(range(10**13))``) would keep the
kernel busy, and every later cell would wait for it: after a timeout a short probe cell
checks that the kernel answers, and when it does not the run stops as ``"stuck"`` so that
the caller can go on in a fresh kernel without that cell."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from .notebook import source

__all__ = ["execute"]

_KERNELS: set = set()          # kernel managers running now (to kill them on Ctrl-C)
PROBE_SECONDS = 10.0            # how long an interrupted kernel has to answer again
_STOP = threading.Event()       # set while an interrupted run shuts down


def _kill_kernel(km) -> None:
    try:
        os.killpg(km.provisioner.pgid, signal.SIGKILL)
    except Exception:  # already gone, or no process group
        try:
            os.kill(km.provisioner.pid, signal.SIGKILL)
        except Exception:
            pass


def _answers(client, probe, run) -> bool:
    """After an interrupted cell: does the kernel run a trivial cell again in time?"""
    from nbclient.exceptions import CellTimeoutError

    cells = client.nb.cells
    cells.append(probe)  # nbclient stores the executed cell back at its index
    index = len(cells) - 1
    try:
        client.execute_cell(probe, index, execution_count=None)
    except CellTimeoutError:
        return False
    finally:
        cells.pop()
        error = run.errors.pop(index, "")
    return not error.startswith("Timeout")


@dataclass
class _Run:
    errors: dict = field(default_factory=dict)   # cell index -> "Ename: evalue"
    stopped: str = ""                            # "timeout", "kernel died", "setup failed", "stuck"
    stopped_at: int | None = None
    seconds: float = 0.0


def execute(nb, *, timeout: float, cell_timeout: float | None, env: dict, cwd: str,
            kernel_name: str, stop_after: int | None = None, prologue: bool = False,
            only=None) -> _Run:
    """Run the code cells of ``nb`` in a fresh kernel, errors allowed, within ``timeout``
    seconds in all and ``cell_timeout`` seconds per cell (a cell over its limit is
    interrupted and the run goes on with the next one).

    With ``prologue``, cell 0 is the grader's setup: the run stops when it fails. With
    ``only`` (a set of cell indices), the other cells are not run (the fast mode)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    run = _Run()

    def on_error(cell, cell_index, execute_reply):
        content = execute_reply.get("content", {})
        run.errors[cell_index] = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".rstrip(": ")

    deadline = [math.inf]
    import nbformat

    probe = nbformat.v4.new_code_cell("pass")

    def cell_limit(cell):
        remaining = max(1.0, deadline[0] - time.monotonic())
        if cell is probe:
            return int(math.ceil(min(remaining, PROBE_SECONDS, cell_timeout or PROBE_SECONDS)))
        if prologue and cell is nb.cells[0]:  # the grader's own setup: only the notebook's limit
            return int(math.ceil(remaining))
        return int(math.ceil(min(remaining, cell_timeout or remaining)))

    client = NotebookClient(
        nb, kernel_name=kernel_name, allow_errors=True, timeout_func=cell_limit,
        interrupt_on_timeout=True, record_timing=False, startup_timeout=120,
        error_on_timeout={"ename": "Timeout", "evalue": "the cell did not finish in time", "traceback": []},
        on_cell_error=on_error, shutdown_kernel="immediate", iopub_timeout=4)
    start = time.monotonic()
    try:
        with client.setup_kernel(env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            deadline[0] = time.monotonic() + timeout
            _KERNELS.add(client.km)
            for index, cell in enumerate(nb.cells):
                if _STOP.is_set():
                    break
                if cell.cell_type != "code" or not source(cell).strip():
                    continue
                if only is not None and index not in only:
                    continue
                if time.monotonic() >= deadline[0]:
                    run.stopped, run.stopped_at = "timeout", index
                    break
                try:
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                except DeadKernelError:
                    run.stopped, run.stopped_at = "kernel died", index
                    break
                except CellTimeoutError:
                    run.stopped, run.stopped_at = "timeout", index
                    break
                if run.errors.get(index, "").startswith("Timeout"):
                    if time.monotonic() >= deadline[0] - 1:
                        run.stopped, run.stopped_at = "timeout", index
                        break
                    if not _answers(client, probe, run):
                        run.stopped, run.stopped_at = "stuck", index
                        break
                if prologue and index == 0 and index in run.errors:
                    run.stopped, run.stopped_at = "setup failed", 0
                    break
                if stop_after is not None and index >= stop_after:
                    break
    except DeadKernelError:
        run.stopped = run.stopped or "kernel died"
    except RuntimeError as err:  # the kernel would not start
        run.stopped = run.stopped or f"kernel failed to start ({err})"
    finally:
        _KERNELS.discard(client.km)
    run.seconds = time.monotonic() - start
    return run

