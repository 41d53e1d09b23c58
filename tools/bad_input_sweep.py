"""The bad-input sweep as a report: per-module rates and every call that is not clear.

    python tools/bad_input_sweep.py                      # every module, every function
    python tools/bad_input_sweep.py rl sae --fast        # two modules, without the slow functions
    python tools/bad_input_sweep.py -j 2 -o sweep.txt    # two worker processes, report to a file

One bad argument at a time (NaN, inf, 1e308, complex, wrong ndim, empty, mismatched
shapes, out-of-range ids, strings, None, 2.5 for an int, zero and negative sizes), built
from the valid baseline calls in tests/bad_inputs_baselines.py; outcomes as classified by
tests/bad_inputs_engine.py. A call that returns nothing within --timeout seconds is a
hang (its worker process is killed). The "good" rate counts clear errors naming the
argument and harmless outcomes; tests/test_bad_inputs.py asserts the per-module rates.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import bad_inputs_engine as engine  # noqa: E402


def report(results_by_module: dict, seconds: float, show_all: bool = False) -> str:
    lines = ["Bad-input sweep of the companion's public API",
             f"({seconds:.0f} s; good = clear error naming the argument, or harmless)", ""]
    header = f"{'module':28s} {'calls':>6s} {'good':>6s} {'rate':>7s}  " + " ".join(
        f"{c:>8s}" for c in engine.GOOD + engine.BAD) + "  no-baseline"
    lines.append(header)
    total = good = 0
    for module, results in results_by_module.items():
        s = engine.summarize(results)
        total += s["total"]
        good += s["good"]
        lines.append(f"{module:28s} {s['total']:6d} {s['good']:6d} {100 * s['rate']:6.1f}%  " + " ".join(
            f"{s['counts'][c]:8d}" for c in engine.GOOD + engine.BAD) + f"  {len(s['missing']):5d}")
    lines.append(f"{'all':28s} {total:6d} {good:6d} {100 * good / max(total, 1):6.1f}%")
    for module, results in results_by_module.items():
        bad = [r for r in results if r["category"] in engine.BAD]
        s = engine.summarize(results)
        if not bad and not s["missing"]:
            continue
        lines += ["", f"== {module}: {len(bad)} calls to fix"]
        for r in sorted(bad, key=lambda r: (engine.BAD.index(r["category"]), r["id"])):
            lines.append(f"  [{r['category']:8s}] {r['id']}: {r['detail'][:160]}")
        for qual, why in s["missing"]:
            lines.append(f"  [baseline] {qual}: {why[:160]}")
        if show_all:
            for r in results:
                if r["category"] in engine.GOOD:
                    lines.append(f"  [{r['category']:8s}] {r['id']}: {(r['detail'] or '')[:120]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules (default: all of {', '.join(engine.MODULES)})")
    parser.add_argument("--fast", action="store_true", help="leave out the functions listed in SLOW")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per call before it counts as a hang")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes in parallel")
    parser.add_argument("-o", "--output", type=Path, help="also write the report to this file")
    parser.add_argument("--all", action="store_true", help="list the good calls too")
    args = parser.parse_args(argv)
    modules = args.modules or list(engine.MODULES)
    start = time.time()
    jobs = max(1, min(args.jobs, len(modules)))
    shares = [modules[k::jobs] for k in range(jobs)]  # one worker process per share of the modules
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        parts = list(pool.map(lambda share: engine.run_modules(share, args.timeout, sys.executable, args.fast),
                              shares))
    merged = {m: r for part in parts for m, r in part.items()}
    results = {m: merged[m] for m in modules}
    text = report(results, time.time() - start, show_all=args.all)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
