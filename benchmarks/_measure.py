"""Timing and memory helpers shared by the benchmark modules (not a benchmark itself)."""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from typing import Any, Callable

__all__ = ["best_time", "peak_memory", "on_one_torch_thread"]


def best_time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The fastest of ``repeat`` wall-clock runs of ``fn()`` (seconds) and its last result.

    The minimum is the usual estimator for a deterministic computation on a shared
    machine: noise from other processes only ever adds time.
    """
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_memory(fn: Callable[[], Any], interval: float = 0.002) -> tuple[float | None, float, Any]:
    """Peak extra memory of one run of ``fn()``, in MiB, measured two ways.

    Returns ``(rss_mib, traced_mib, result)``:

    - ``rss_mib``: the peak of the process's resident memory during the run, sampled every
      ``interval`` seconds by a thread, minus the resident memory before it (``None``
      where ``/proc`` is unavailable). It sees every allocator, torch's included.
    - ``traced_mib``: the peak seen by :mod:`tracemalloc`, which counts Python and numpy
      allocations but not torch's (torch allocates outside Python's tracing hooks).
    """
    gc.collect()
    before = _rss_bytes()
    peak = [before or 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss = _rss_bytes()
            if rss is not None and rss > peak[0]:
                peak[0] = rss
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    try:
        result = fn()
        _, traced = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        done.set()
        sampler.join()
    rss = _rss_bytes()
    if rss is not None:
        peak[0] = max(peak[0], rss)
    rss_mib = None if before is None else (peak[0] - before) / 2**20
    return rss_mib, traced / 2**20, result


def on_one_torch_thread(rows_fn: Callable[[bool], list], quick: bool) -> list[dict]:
    """``rows_fn(quick)`` run on one torch thread (restored afterwards), each row noting it.

    On the course's 2-core machine shared with other jobs, two threads make every small
    step wait for a busy core (a step took up to five times longer than on one thread), so
    the torch benchmarks run both sides single-threaded; the row's ``threads`` note says so.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [{**row, "threads": 1} for row in rows_fn(quick)]
    finally:
        torch.set_num_threads(threads)
