# The two commands of the README: `make book` and `make test`. Both create the virtual
# environment on first use and install everything the course needs into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export COMPANION_NO_PROGRESS ?= 1
export MPLBACKEND ?= Agg
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: install book book-strict test unit nbval browser bench student clean

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

unit: install
	$(PY) -m pytest tests -q

nbval: install
	$(PY) -m pytest --nbval-lax book -q -p no:cacheprovider

test: unit nbval book-strict

clean:
	rm -rf _build student
