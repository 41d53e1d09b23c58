"""Grading throughput: graded notebooks per minute on 2 cores, fast mode vs full mode.

The submissions are copies of the current chapter notebooks (``book/NN_*.ipynb``, which
carry the reference solutions, so every exercise should pass); they are graded with
``python -m companion grade -j 2`` as an instructor would, once in the default fast mode
(the setup cell, the exercise cells and their ``depends_on`` cells) and once with
``--full`` (every cell). The row's ``baseline_s`` is the full mode's wall time per
notebook, ``companion_s`` the fast mode's, so the ratio is the speed-up; the notes give
notebooks per minute, the CPU seconds per notebook (kernels included), and the projected
time of the course's goal, 150 submissions (30 students x 5 chapters) in under 10 minutes
on 2 cores: ``150 x CPU seconds per notebook / 2``, which does not depend on how busy the
machine is, next to ``150 / (notebooks per minute)`` measured on this machine now.

Run it alone with ``python benchmarks/run.py --only grading`` (``--quick``: one copy of
each chapter and no full-mode run).
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SUBMISSIONS, GOAL_MINUTES, CORES = 150, 10.0, 2


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def grade(folder: Path, full: bool) -> dict:
    """Grade ``folder`` with ``-j 2``; wall and CPU seconds (grader + kernels), the rows."""
    from companion.coursework import grade_submissions

    output = folder.parent / ("full.csv" if full else "fast.csv")
    cpu0 = time.process_time() + _children_cpu()
    start = time.perf_counter()
    rows = grade_submissions(folder, output, jobs=CORES, force=True, full=full,
                             show_progress=False, log=lambda *_: None)
    wall = time.perf_counter() - start
    cpu = time.process_time() + _children_cpu() - cpu0
    return {"wall": wall, "cpu": cpu, "rows": rows}


def _scores(rows) -> dict:
    return {(r["notebook"], r["exercise"]): int(r["score"]) for r in rows if r["exercise"]}


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("COMPANION_NO_PROGRESS", "1")
    paths = chapters()
    if not paths:
        return []
    copies = 1 if quick else 2
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        fast_dir, full_dir = Path(tmp) / "fast" / "submissions", Path(tmp) / "full" / "submissions"
        for k in range(copies):
            for path in paths:
                target = fast_dir / f"student{k}" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
        for path in paths:
            target = full_dir / "student0" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        fast = grade(fast_dir, full=False)
        full = None if quick else grade(full_dir, full=True)
    n_fast = len(paths) * copies
    fast_rows = [r for r in fast["rows"] if r["exercise"]]
    passed = sum(bool(r["passed"]) for r in fast_rows)
    per_nb_fast, cpu_fast = fast["wall"] / n_fast, fast["cpu"] / n_fast
    row = {
        "name": f"grade {n_fast} chapter notebooks, -j {CORES}: full vs fast mode (s per notebook)",
        "baseline_s": None if full is None else full["wall"] / len(paths),
        "companion_s": per_nb_fast,
        "fast_per_min": 60.0 / per_nb_fast,
        "fast_cpu_s_per_nb": cpu_fast,
        "projected_150_min": GOAL_SUBMISSIONS * cpu_fast / CORES / 60.0,
        "measured_150_min": GOAL_SUBMISSIONS * per_nb_fast / 60.0,
    }
    row["goal_met"] = row["projected_150_min"] < GOAL_MINUTES
    accuracy = f"fast: {passed}/{len(fast_rows)} exercises passed"
    if full is not None:
        row["full_per_min"] = 60.0 * len(paths) / full["wall"]
        row["full_cpu_s_per_nb"] = full["cpu"] / len(paths)
        fast_first = {(nb.split("/", 1)[1], ex): s for (nb, ex), s in _scores(fast["rows"]).items()
                      if nb.startswith("student0/")}
        full_scores = {(nb.split("/", 1)[1], ex): s for (nb, ex), s in _scores(full["rows"]).items()}
        differ = sorted(k for k in full_scores if fast_first.get(k) != full_scores[k])
        accuracy += ("; same scores as full" if not differ else
                     f"; {len(differ)} score(s) differ from full: {', '.join(e for _, e in differ[:4])}")
    row["accuracy"] = accuracy
    return [row]


if __name__ == "__main__":
    for r in run(quick=False):
        print(r)
