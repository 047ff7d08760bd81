"""The wheel: only the ``activity`` package, built without setuptools' package-discovery warnings.

With a flat layout, setuptools' automatic discovery also sees ``configs/``,
``datasets/``, ``scripts/`` and ``tests/`` next to ``activity/``, and warns about
them (ten lines on the first ``make demo``) or packs them; ``pyproject.toml``
names the package instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISCOVERY_WARNING = re.compile(r"(?i)multiple top-level (packages|modules)|flat-layout|absent from the `packages`|"
                               r"as data is deprecated|package would be ignored")


def _source_copy(dst: Path) -> Path:
    """The repository's tracked files (everything when git cannot list them) under ``dst``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [f for f in listed.decode().split("\0") if f and (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"))
        return dst
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dst / f)
    return dst


def test_wheel_holds_only_the_activity_package_and_building_it_warns_of_nothing(tmp_path):
    pytest.importorskip("setuptools")
    src = _source_copy(tmp_path / "src")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(tmp_path / "wheel"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert [l for l in log.splitlines() if DISCOVERY_WARNING.search(l)] == []
    (wheel,) = (tmp_path / "wheel").glob("activity-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"activity"}, sorted(top)
    assert "activity/cli/__init__.py" in names and "activity/data/decoders/decord.py" in names
    pages = {"index.html", "reports.html", "app.js", "reports.js", "common.js", "style.css"}
    assert {f"activity/serve/static/{f}" for f in pages} <= set(names)  # the server's pages work from an installed wheel
    (dist_info,) = [t for t in top if t.endswith(".dist-info")]
    assert zipfile.ZipFile(wheel).read(f"{dist_info}/top_level.txt").decode().split() == ["activity"]


def test_make_setup_installs_without_setuptools_notices(tmp_path):
    """``make setup``'s editable install, with the environment the Makefile gives it, prints no setuptools notice
    (recent pip shows the build backend's warnings even with --quiet)."""
    pytest.importorskip("setuptools")
    (line,) = [l for l in (ROOT / "Makefile").read_text().splitlines() if "pip install" in l and " -e " in l]
    env = dict(re.findall(r"(\w+)='([^']*)'", line.split("$(VENV)")[0]))
    assert "PYTHONWARNINGS" in env, line
    src = _source_copy(tmp_path / "src")
    (tmp_path / "wheel").mkdir()
    build = "import sys; from setuptools import build_meta; print(build_meta.build_editable(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", build, str(tmp_path / "wheel")], cwd=src, capture_output=True,
                          text=True, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(".whl")
    log = proc.stdout + proc.stderr
    assert "Please be careful" not in log and "Warning" not in log, log[-3000:]
