"""Benchmark: variable projection against the multi-start Approach 3 fit, same data.

Fits the 240 Chinchilla points of Besiroglu et al. (2024) and a noisy synthetic IsoFLOP data
set (true parameters known) with

- ``fit_variable_projection`` (Huber on relative residuals, 2-D search over the exponents),
- ``fit_approach3`` from a grid of starts (Huber on log-loss residuals, L-BFGS per start),

and prints a table of wall-clock time, objective, the fitted parameters and their error
against the reference (for the real data the Huber-loss grid fit of Epoch's repository
notebook, ``scaling.BESIROGLU_2024_HUBER``, which is the protocol of ``fit_approach3``; the truth for the
synthetic data), plus the fraction of Approach 3 starts that reach the best objective.

Usage::

    python benchmarks/bench_scaling.py          # Approach 3 from the 243-start sub-grid (~1 min)
    python benchmarks/bench_scaling.py --full   # the full 4500-start grid of Epoch (minutes)

Where every start of the full grid ends on the Chinchilla points is shipped as data
(``tools/chinchilla_approach3_grid.py`` makes ``companion/resources/chinchilla_approach3_grid.csv``,
read by ``companion.scaling.load_approach3_grid``), so Chapter 4 never runs the grid live.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from companion import scaling
from companion.data import load_chinchilla


def _row(label, fit, reference, seconds):
    p = fit.params.as_array()
    err = np.abs(p / reference.as_array() - 1).max()
    return (f"{label:46s}{seconds:9.2f}{fit.objective:12.4g}"
            + "".join(f"{v:10.4g}" for v in p) + f"{100 * err:9.2f}%")


def report(kind: str) -> None:
    header = (f"{'data / method':46s}{'time s':>9s}{'objective':>12s}"
              + "".join(f"{n:>10s}" for n in ("E", "A", "B", "alpha", "beta")) + f"{'max err':>10s}")
    chin = load_chinchilla()
    noisy_truth = scaling.HOFFMANN_2022
    noisy = scaling.isoflop_grid(noisy_truth, width=8, noise=0.003, seed=0)
    cases = [("Chinchilla (240 points)", chin.N, chin.D, chin.loss, scaling.BESIROGLU_2024_HUBER),
             ("synthetic, 0.3% noise", noisy.N, noisy.D, noisy.loss, noisy_truth)]
    print(header)
    print("-" * len(header))
    for name, N, D, L, reference in cases:
        start = time.perf_counter()
        vp = scaling.fit_variable_projection(N, D, L)
        t_vp = time.perf_counter() - start
        start = time.perf_counter()
        a3 = scaling.fit_approach3(N, D, L, starts=kind)
        t_a3 = time.perf_counter() - start
        start = time.perf_counter()
        polish = scaling.fit_approach3(N, D, L, starts=vp.params)
        t_polish = time.perf_counter() - start
        print(_row(f"{name}: VP", vp, reference, t_vp))
        print(_row(f"{name}: A3 {a3.info['starts']} starts", a3, reference, t_a3))
        print(_row(f"{name}: A3 from VP (1 start)", polish, reference, t_vp + t_polish))
        values = a3.info["start_objectives"]
        reached = np.mean(values <= a3.objective * (1 + 1e-6) + 1e-12)
        print(f"    fraction of Approach 3 starts reaching the best objective: {reached:.3f}")
    print("objective: each method's own (Huber of relative residuals for VP, of log residuals for A3).")
    print("A3 from VP: time includes the variable-projection fit that provides the start.")
    print("max err: largest relative error of (E, A, B, alpha, beta) against the Huber-loss grid "
          "fit of Epoch's repository (Chinchilla) or the truth (synthetic).")


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py: variable projection (companion) vs multi-start Approach 3 (baseline)."""
    chin = load_chinchilla()
    truth = scaling.HOFFMANN_2022
    noisy = scaling.isoflop_grid(truth, width=8, noise=0.003, seed=0)
    cases = [("Chinchilla (240 points)", chin.N, chin.D, chin.loss, scaling.BESIROGLU_2024_HUBER),
             ("synthetic, 0.3% noise", noisy.N, noisy.D, noisy.loss, truth)]
    rows = []
    for name, N, D, L, reference in cases:
        start = time.perf_counter()
        vp = scaling.fit_variable_projection(N, D, L)
        t_vp = time.perf_counter() - start
        start = time.perf_counter()
        a3 = scaling.fit_approach3(N, D, L, starts="small")
        t_a3 = time.perf_counter() - start
        err = lambda fit: np.abs(fit.params.as_array() / reference.as_array() - 1).max()  # noqa: E731
        rows.append({"name": f"{name}: VP vs Approach 3 ({a3.info['starts']} starts)",
                     "baseline_s": t_a3, "companion_s": t_vp,
                     "accuracy": f"objective VP {vp.objective:.4g} vs A3 {a3.objective:.4g}",
                     "max_param_err": f"VP {100 * err(vp):.2f}% / A3 {100 * err(a3):.2f}%"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run Epoch's full 4500-start grid")
    args = parser.parse_args(argv)
    report("full" if args.full else "small")


if __name__ == "__main__":
    main()
