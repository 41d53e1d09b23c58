"""A stand-in for Colab's ``google.colab`` package, for ``make colab`` (tools/colab/run_chapters.py).

Colab's kernel imports ``google.colab`` at start-up; the chapters' setup cells test
``"google.colab" in sys.modules`` to decide whether to ``%pip install`` the companion. The
Colab-like CI job imports this module in the kernel's start-up (an IPython startup file), so
that the setup cells take their Colab branch. The chapters call nothing from it.
"""

IN_STANDIN = True
