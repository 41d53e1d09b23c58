"""Run Epoch's full Approach 3 grid once on the Chinchilla points and ship where each start ends.

Chapter 4 cannot run the 4500-start grid of Besiroglu et al. (2024) live (minutes on two
cores), yet its argument needs to know how often the full grid reaches its best basin. This
script fits the 240 points of :func:`companion.data.load_chinchilla` with
:func:`companion.scaling.fit_approach3` from every start of
``approach3_start_grid("full")`` (in that order) and writes one row per start to
``companion/resources/chinchilla_approach3_grid.csv``: the start's index, the Huber
objective it reached and the exponents and irreducible loss it ended at.

The last digits of an L-BFGS run differ between CPUs, so the file records one machine's
run; the chapter reads basins from it with tolerances far above those digits.

Usage::

    python tools/chinchilla_approach3_grid.py            # about 2 to 10 minutes on one core
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from companion import scaling
from companion.data import load_chinchilla

OUT = Path(__file__).resolve().parents[1] / "companion" / "resources" / "chinchilla_approach3_grid.csv"


def main() -> None:
    chin = load_chinchilla()
    grid = scaling.approach3_start_grid("full")
    start = time.perf_counter()
    fit = scaling.fit_approach3(chin.N, chin.D, chin.loss, starts=grid, show_progress=True)
    seconds = time.perf_counter() - start
    values, thetas = fit.info["start_objectives"], fit.info["start_thetas"]
    lines = [f"# Approach 3 (Huber delta 1e-3 on log loss, L-BFGS) from each of the {len(grid)} starts of "
             f"approach3_start_grid('full') on the 240 Chinchilla points; made by "
             f"tools/chinchilla_approach3_grid.py in {seconds:.0f} s on {platform.machine()}, "
             f"numpy {np.__version__}",
             "start,objective,E,alpha,beta"]
    for i, (value, theta) in enumerate(zip(values, thetas)):
        if np.isfinite(value):
            lines.append(f"{i},{value:.10e},{np.exp(theta[2]):.6g},{theta[3]:.6g},{theta[4]:.6g}")
        else:
            lines.append(f"{i},inf,nan,nan,nan")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(grid)} starts, {seconds:.0f} s); best objective {fit.objective:.10e}: "
          f"{fit.params}")


if __name__ == "__main__":
    main()
