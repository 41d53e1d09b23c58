"""Run every benchmark module ``benchmarks/bench_*.py`` and print one table of ratios.

Usage (from the repository root, in the course's virtual environment)::

    python benchmarks/run.py                 # full sizes
    python benchmarks/run.py --quick         # small sizes, a smoke test of every benchmark
    python benchmarks/run.py --only neural   # modules whose name contains "neural"
    python benchmarks/run.py --markdown benchmarks/RESULTS.md --json results.json

Each module exposes ``run(quick: bool) -> list[dict]``; see ``benchmarks/README.md`` for
the row format. The harness times nothing itself: every number comes from a module that
measured the baseline and the companion side by side in this one process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIRED = ("name", "baseline_s", "companion_s", "accuracy")
COLUMNS = ("benchmark", "name", "baseline_s", "companion_s", "ratio", "accuracy", "notes")


def discover(only: list[str] | None = None) -> list[Path]:
    """The benchmark modules, sorted by file name, filtered by ``only`` substrings."""
    modules = sorted(HERE.glob("bench_*.py"))
    if only:
        modules = [m for m in modules if any(o in m.stem for o in only)]
    return modules


def load(path: Path):
    """Import one benchmark module from its file (``benchmarks/`` is not a package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"{path.name} has no run(quick) function")
    return module


def ratio_of(row: dict) -> float | None:
    """``baseline_s / companion_s`` (above 1: the companion is faster), unless the row gives one."""
    if row.get("ratio") is not None:
        return float(row["ratio"])
    base, comp = row.get("baseline_s"), row.get("companion_s")
    if base is None or comp is None or comp <= 0:
        return None
    return float(base) / float(comp)


def normalise(benchmark: str, row: dict) -> dict:
    """Check a module's row and bring it to the table's columns (extra keys go to notes)."""
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"{benchmark}: row {row.get('name', row)!r} lacks {missing}")
    extra = {k: v for k, v in row.items() if k not in COLUMNS}
    notes = "; ".join(f"{k}={_fmt(v)}" for k, v in extra.items())
    if row.get("notes"):
        notes = f"{row['notes']}; {notes}" if notes else str(row["notes"])
    return {"benchmark": benchmark, "name": str(row["name"]), "baseline_s": row["baseline_s"],
            "companion_s": row["companion_s"], "ratio": ratio_of(row),
            "accuracy": row["accuracy"], "notes": notes}


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value == 0:
            return "0"
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def table(rows: list[dict], markdown: bool = False) -> str:
    """The rows as a fixed-width text table, or as a Markdown table."""
    cells = [[_fmt(r[c]) if c != "ratio" or r[c] is None else f"{r[c]:.2f}x" for c in COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(COLUMNS)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths])] + [line(row) for row in cells])


def machine() -> str:
    import numpy
    try:
        import torch
        torch_info = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_info = "no torch"
    return (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, numpy {numpy.__version__}, "
            f"{torch_info}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problem sizes (a smoke test)")
    parser.add_argument("--only", nargs="+", metavar="SUBSTRING", help="run only matching modules")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("COMPANION_NO_PROGRESS", "1")

    modules = discover(args.only)
    if not modules:
        print(f"no benchmark modules matched in {HERE}", file=sys.stderr)
        return 1
    rows, failures, start = [], [], time.perf_counter()
    for path in modules:
        t0 = time.perf_counter()
        print(f"[bench] {path.stem} ({'quick' if args.quick else 'full'}) ...", flush=True)
        try:
            module_rows = [normalise(path.stem, r) for r in load(path).run(quick=args.quick)]
        except Exception as error:  # a failing benchmark is reported, the others still run
            traceback.print_exc()
            failures.append(path.stem)
            module_rows = [{"benchmark": path.stem, "name": "FAILED", "baseline_s": None, "companion_s": None,
                            "ratio": None, "accuracy": f"{type(error).__name__}: {error}", "notes": ""}]
        rows += module_rows
        print(f"[bench] {path.stem}: {len(module_rows)} row(s) in {time.perf_counter() - t0:.1f} s", flush=True)

    header = (f"Benchmarks ({'quick' if args.quick else 'full'}), {time.perf_counter() - start:.0f} s in all; "
              f"{machine()}\nratio = baseline_s / companion_s (above 1: the companion is faster; "
              "for chapters: the time budget over the measured time)")
    print()
    print(header)
    print(table(rows))
    if args.markdown:
        args.markdown.write_text(header.replace("\n", "\n\n") + "\n\n" + table(rows, markdown=True) + "\n")
        print(f"\nMarkdown table written to {args.markdown}")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": rows}, indent=2, default=str))
        print(f"JSON rows written to {args.json}")
    if failures:
        print(f"\nFAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
