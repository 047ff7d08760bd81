"""The set-up installs the versions the tests last passed with: requirements.lock, and the Makefile that uses it."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
LOCK = Path(os.environ.get("ACTIVITY_LOCK") or ROOT / "requirements.lock")  # make lock checks the lock it is writing


def locked() -> dict[str, str]:
    """``{canonical name: version}`` of every pin in requirements.lock."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"requirements.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def declared() -> list[Requirement]:
    """The dependencies ``make setup`` asks for: the package's and its ``test`` extra's, for this platform."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def test_every_dependency_is_pinned_within_its_range():
    pins = locked()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but requirements.lock does not pin it: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject.toml's {req.specifier}"
    assert "pip" in pins and "setuptools" in pins  # the installer and the build backend are pinned too


def test_make_setup_installs_from_the_lock():
    """Every pip install of the set-up recipe is constrained by the lock, and the set-up reruns when it changes."""
    make = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\): (.*)\n((?:\t.*\n|.*\\\n)+)", make, re.M)
    assert recipe and "$(LOCK)" in recipe[1].split()
    installs = re.findall(r"pip install[^\n]*", recipe[2].replace("\\\n", " "))
    assert installs and all("--constraint $(LOCK)" in i for i in installs), installs
    assert re.search(r"^LOCK\s*:=\s*requirements\.lock$", make, re.M)


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(), reason="not make setup's .venv")
def test_make_setups_environment_holds_the_locked_versions():
    """In ``make test``'s own environment, what is installed is what the lock says."""
    pins = locked()
    wrong = {}
    # site-packages only: setuptools puts its own vendored copies (packaging, ...) on sys.path once imported
    for dist in metadata.distributions(path=[sysconfig.get_paths()["purelib"]]):
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and dist.version.split("+")[0] != pins[name].split("+")[0]:
            wrong[name] = f"{dist.version} installed, {pins[name]} locked"
    assert not wrong, f"{wrong}: run make setup again (rm .venv/.installed)"
