# Two commands on a fresh machine:
#   make demo   set up .venv and run the whole pipeline on generated clips (offline)
#   make test   set up .venv and run the tests
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/activity demo --out demo_run

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf demo_run .pytest_cache
