# The two commands of the README: `make book` and `make test`. Both create the virtual
# environment on first use and install everything the course needs into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export COMPANION_NO_PROGRESS ?= 1
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: install book book-strict test unit nbval robust parity colab-pins colab browser bench bench-grading student grade-reference record-outputs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A CPU build of torch first, when none is installed (on the course's build machines
	# torch 2.13.0 is a local CPU wheel); any torch >= 2.2 works.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q "torch>=2.2"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The HTML book, every chapter executed, explorers precomputed for the static pages.
book: install
	COMPANION_EXPLORER=static $(VENV)/bin/jupyter-book build . --builder html
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The same build with every Sphinx warning treated as an error.
book-strict: install
	rm -rf _build/html _build/.doctrees
	COMPANION_EXPLORER=static $(VENV)/bin/jupyter-book build . --builder html -W --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The unit tests and the doctests (the Examples sections of the docstrings, conftest.py).
unit: install
	$(PY) -m pytest tests companion -q --ignore=tests/browser --doctest-modules

nbval: install
	$(PY) -m pytest --nbval-lax book -q -p no:cacheprovider

# The checked cells again at two other base seeds and with two torch threads: a claim that
# another seed or another thread count reverses fails here (CONTRIBUTING, "Evidence").
ROBUST_SEEDS ?= 1 2
robust: install
	@for seed in $(ROBUST_SEEDS); do \
	  echo "== nbval with COMPANION_SEED=$$seed COMPANION_THREADS=2"; \
	  COMPANION_SEED=$$seed COMPANION_THREADS=2 $(PY) -m pytest --nbval-lax book -q -p no:cacheprovider || exit 1; \
	done

# The companion against the field's reference libraries (SAELens, TRL) on the same inputs.
# They are installed beside the course with torch held at the version already installed.
parity: install
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/parity-constraints.txt
	$(PY) -m pip install -q -c $(VENV)/parity-constraints.txt -e ".[parity]"
	COMPANION_PARITY_REQUIRED=1 $(PY) -m pytest tests/parity -q -p no:cacheprovider

# Colab: installing the companion must change none of Colab's preinstalled packages
# (tools/colab/pip-freeze.txt, from googlecolab/backend-info): pip's resolver against the pins,
# for Colab's Python; and a wheel of every dependency for Python 3.10 to 3.13.
colab-pins: install
	$(PY) tools/colab/check_pins.py

# Every chapter as in Colab: a venv with Colab's versions (IPython 7.34, ipywidgets 7.7.1, ...),
# a stand-in google.colab, each setup cell's own %pip install from a local release of this
# working tree; then no Colab package may have changed (tools/colab/run_chapters.py).
colab:
	$(PYTHON) tools/colab/run_chapters.py

# The built book in Debian's Chromium (headless, driven by Playwright; no browser download):
# every page offline without console errors, math typeset, images loaded, Colab links,
# solutions hidden until clicked, explorer sliders; screenshots in _build/screenshots.
browser: book-strict
	command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }
	COMPANION_BROWSER_REQUIRED=1 $(PY) -m pytest tests/browser -q -p no:cacheprovider

# Speed and accuracy against straightforward implementations, every chapter's run time, and
# grading throughput (benchmarks/bench_grading.py: notebooks per minute, fast vs full mode).
bench: install
	$(PY) benchmarks/run.py

# Only the grading benchmark (a few minutes: the full mode re-runs every chapter).
bench-grading: install
	$(PY) benchmarks/run.py --only grading

test: unit nbval browser

# Re-record the reference outputs of the checked cells (after changing a chapter's numbers).
record-outputs: install
	$(PY) tools/record_checked_outputs.py

# Student versions of every chapter (solutions removed, exercises numbered per chapter), into
# student/. Refuses (exit 1, naming the cell and the line) a chapter whose student version
# would still give an answer away.
student: install
	$(PY) -m companion student book/ -o student/

# Grade the reference notebooks as if they were submissions (fast mode, as for a class):
# every exercise must pass. Feedback notebooks in _build/reference-feedback/.
grade-reference: install
	rm -rf _build/reference _build/reference-feedback && mkdir -p _build/reference
	cp book/[0-9][0-9]_*.ipynb _build/reference/
	$(PY) -m companion grade _build/reference -o _build/reference-grades.csv -j 2 --force --feedback _build/reference-feedback
	! grep -q ',False,' _build/reference-grades.csv

clean:
	rm -rf _build student
