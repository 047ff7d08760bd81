"""The feature cache on disk: two writers at once, entries damaged on disk, a full disk, a killed run's
temporary files (issue 14, "two writers, one cache"). The fake backbone is test_features_extract's."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import activity.io
from activity.errors import ActivityError
from activity.features.cache import FeatureCache

try:
    from test_features_extract import DIM, run, spec_for
    from utils import make_video
except ImportError:  # tests/ imported as a package
    from tests.test_features_extract import DIM, run, spec_for
    from tests.utils import make_video


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def videos(tmp_path):
    """Three small lossless clips of 16 frames."""
    return [make_video(tmp_path / "v" / f"clip{i}.avi", 16, (48, 40), lossless=True, seed=i)[0] for i in range(3)]


def _files(folder: Path) -> tuple[list[str], list[str]]:
    """The entries and the temporary files in a cache folder, by name."""
    names = sorted(p.name for p in folder.iterdir())
    return [n for n in names if n.endswith(".npy")], [n for n in names if n.startswith(".tmp-")]


# ---------------------------------------------------------------- a killed run's temporary files


def _leftover(folder: Path, name: str, age: float) -> Path:
    """A temporary file as a writer killed ``age`` seconds ago left it."""
    p = folder / name
    p.write_bytes(b"\x93NUMPY half an entry")
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def test_the_next_run_removes_a_killed_runs_old_temporary_files_but_not_a_running_writers(tmp_path, videos):
    spec = spec_for()
    folder = FeatureCache(tmp_path / "c", spec).dir
    old = _leftover(folder, ".tmp-killed1.npy.tmp", 3600)
    old_meta = _leftover(folder, ".tmp-killed2.json.tmp", 24 * 3600)
    young = _leftover(folder, ".tmp-writing.npy.tmp", 5)  # another process's, still being written
    res = run(videos, spec, FeatureCache(tmp_path / "c", spec))
    assert res.extracted == 3
    assert not old.exists() and not old_meta.exists()
    assert young.exists()
    assert _files(folder) == (sorted(_files(folder)[0]), [young.name]) and len(_files(folder)[0]) == 3


def test_a_temporary_file_still_being_written_is_not_stale(tmp_path):
    """The age is how long the file was not written, not when it was created: a slow writer that keeps writing keeps it."""
    folder = tmp_path / "f"
    folder.mkdir()
    p = _leftover(folder, ".tmp-slow.npy.tmp", 3600)
    with open(p, "ab") as f:
        f.write(b"more")
    assert activity.io.remove_stale_temporaries(folder, 600) == []
    assert p.exists()
    assert activity.io.remove_stale_temporaries(folder, -1) == [p]
