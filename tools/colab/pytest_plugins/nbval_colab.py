"""A pytest plugin for `make colab` (``-p nbval_colab``): nbval executes cells as Colab does.

nbval sends every cell with ``store_history=False``. IPython 7.34 (Colab's) decides whether a
trailing ``;`` silences a cell's result by reading the last cell *stored in history*, so
under nbval it reads the previous cell and prints results that Colab, which stores every
cell, does not. Executing with ``store_history=True`` gives Colab's behaviour (IPython 8 and
later read the running cell either way, so ``make nbval`` is unaffected).
"""

from nbval.kernel import RunningKernel


def _execute_cell_input(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


RunningKernel.execute_cell_input = _execute_cell_input
