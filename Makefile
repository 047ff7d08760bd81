# Two commands on a fresh machine:
#   make demo   set up .venv and run the whole pipeline on generated clips (offline)
#   make test   set up .venv and run the tests
# one for the pose stream (features.streams: [appearance, motion, pose]):
#   make pose   install MediaPipe 0.10.21 into .venv (Python 3.9 to 3.12; make test runs it too)
# and one for maintainers:
#   make lock   install the newest releases pyproject.toml allows into a scratch environment, run the
#               tests there, and only if they pass write those versions to requirements.lock
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
# The versions the tests last passed with. `make setup` installs exactly these (a constraints file:
# it pins what is installed, it adds nothing), while pyproject.toml keeps ranges for people who
# install the package into an environment of their own.
LOCK   := requirements.lock
LOCK_VENV := .venv-lock

# The pose stream (features.streams: [appearance, motion, pose]) needs MediaPipe 0.10.21, the last release
# with its legacy pose API, which serves Python 3.9 to 3.12. It declares NumPy 1, protobuf 4 and the full
# OpenCV, none of which its pose API needs here: `make pose` installs it without them (--no-deps), with its
# two small dependencies, at the lock's versions; the lock keeps protobuf below 7 (MediaPipe reads a
# descriptor field protobuf 7 removed). `make test` installs it, so the pose tests run.
POSE_PACKAGES := mediapipe absl-py attrs
POSE_STAMP := $(VENV)/.pose

.PHONY: setup demo test lock clean pose

# setuptools prints a 10-line notice on every editable install of a flat layout ("Please be careful
# with folders in your working directory with the same name as your package"), which recent pip shows
# even with --quiet. Here the folder of that name is the package itself, on purpose: the notice is muted.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make setup installs $(LOCK), whose versions need Python >= 3.11; $(PYTHON) is $$($(PYTHON) -V 2>&1). Run make PYTHON=python3.11 (or newer); for unpinned versions, install the package with pip into an environment of your own." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --constraint $(LOCK) pip
	PYTHONWARNINGS='ignore:Editable installation' $(VENV)/bin/python -m pip install --quiet --constraint $(LOCK) --build-constraint $(LOCK) -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

$(POSE_STAMP): $(STAMP)
	@if $(VENV)/bin/python -c 'import sys; sys.exit(not (3, 9) <= sys.version_info < (3, 13))'; then \
	  echo "$(VENV)/bin/python -m pip install --no-deps --constraint $(LOCK) $(POSE_PACKAGES)"; \
	  $(VENV)/bin/python -m pip install --quiet --no-deps --constraint $(LOCK) $(POSE_PACKAGES) && touch $(POSE_STAMP); \
	else echo "make pose: skipped: the pose stream needs Python 3.9 to 3.12 (MediaPipe 0.10.21); $(VENV) has $$($(VENV)/bin/python -V 2>&1)"; fi

pose: $(POSE_STAMP)

demo: $(STAMP)
	$(VENV)/bin/activity demo --out demo_run

test: $(STAMP) $(POSE_STAMP)
	$(VENV)/bin/python -m pytest -q

# Re-lock: the newest releases pyproject.toml allows, kept only if the whole test suite passes with them.
# The tests read the new lock (ACTIVITY_LOCK), so that a new or narrowed dependency is checked against it.
lock:
	rm -rf $(LOCK_VENV) $(LOCK).new
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(LOCK_VENV)/bin/python -m pip install --quiet --upgrade --editable '.[test]'
	$(LOCK_VENV)/bin/python -m pip install --quiet --no-deps 'mediapipe==0.10.21' absl-py attrs 'protobuf<7'
	{ echo "# The versions \`make test\` last passed with (written by \`make lock\`; \`make setup\` installs them)."; \
	  echo "# Made with $$($(LOCK_VENV)/bin/python -c 'import platform; print("Python", platform.python_version(), "on", platform.system(), platform.machine())')."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK).new
	ACTIVITY_LOCK=$(LOCK).new $(LOCK_VENV)/bin/python -m pytest -q -p no:cacheprovider
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)
	@echo "$(LOCK) updated: review it with git diff $(LOCK), then run make test to install it in $(VENV)"

clean:
	rm -rf demo_run .pytest_cache $(LOCK_VENV) $(LOCK).new
