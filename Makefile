# Two commands on a fresh machine:
#   make demo   set up .venv and run the whole pipeline on generated clips (offline)
#   make test   set up .venv and run the tests
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean

# setuptools prints a 10-line notice on every editable install of a flat layout ("Please be careful
# with folders in your working directory with the same name as your package"), which recent pip shows
# even with --quiet. Here the folder of that name is the package itself, on purpose: the notice is muted.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/activity demo --out demo_run

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf demo_run .pytest_cache
