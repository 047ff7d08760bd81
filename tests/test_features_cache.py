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
    from utils import make_video, slowed_activity
except ImportError:  # tests/ imported as a package
    from tests.test_features_extract import DIM, run, spec_for
    from tests.utils import make_video, slowed_activity


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def videos(tmp_path):
    """Three small lossless clips of 16 frames."""
    return [make_video(tmp_path / "v" / f"clip{i}.avi", 16, (48, 40), lossless=True, seed=i)[0] for i in range(3)]


def _files(folder: Path) -> tuple[list[str], list[str]]:
    """The entries and the temporary files in a cache folder, by name."""
    names = sorted(p.name for p in folder.iterdir())
    return [n for n in names if n.endswith(".npy")], [n for n in names if n.startswith(".tmp-")]


# ---------------------------------------------------------------- two writers

#: ``python -m activity`` with each rename of a finished file slowed down, so that two processes writing the
#: same entries overlap (without it a write takes well under a millisecond and they rarely meet).
_SLOW_RENAMES = slowed_activity("os", "replace", 0.1)


def test_two_extract_processes_on_one_cache_both_finish_with_every_entry_whole(tmp_path):
    """Both extract the same clips into the same cache at once: each entry may be written twice, but every one
    is whole (it loads, has the right shape and its checksum matches) and neither run sees a damaged one.

    Both miss every entry when they start, so both write all six, at about the same time.
    """
    from activity.config import FeatureConfig
    from activity.features.spec import FeatureSpec

    data = tmp_path / "data"
    clips = [make_video(data / f"clip{i}.avi", 12, (48, 40), lossless=True, seed=i)[0] for i in range(6)]
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-c", _SLOW_RENAMES, "extract", "--data", str(data), "--cache", str(cache), "--quiet",
           "--workers", "0", "features.image_size=32", "features.num_frames=4"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "6 videos with features" in out
        assert "damaged" not in err and "error" not in err, err
    reader = FeatureCache(cache, FeatureSpec.from_config(FeatureConfig(image_size=32, num_frames=4)))
    assert len(reader.folders) == 2  # appearance and motion, each in its own folder
    for folder in reader.folders:
        entries, temps = _files(folder)
        assert len(entries) == 6 and not temps
    shapes = set()
    for clip in clips:
        x = np.concatenate([np.load(f, allow_pickle=False) for f in reader.entries(clip)], 1)
        np.testing.assert_array_equal(reader.get(clip), x)  # whole: the checksums match
        shapes.add(x.shape)
    assert len(shapes) == 1 and next(iter(shapes))[0] == 4


# ---------------------------------------------------------------- damaged entries


def _flip_data_byte(entry: Path) -> None:
    """Change one byte inside the float data (np.load reads such a file without complaint)."""
    data = bytearray(entry.read_bytes())
    with open(entry, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        start = f.tell()  # where the array's bytes begin
    data[start + 5] ^= 0x55
    entry.write_bytes(bytes(data))


def _truncate(entry: Path) -> None:
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_flip_data_byte, _truncate], ids=["flipped", "truncated"])
def test_a_damaged_entry_is_reported_in_one_line_and_extracted_again(tmp_path, videos, caplog, damage):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    run(videos, spec, cache)
    entry = cache.entry(videos[1])
    damage(entry)
    with caplog.at_level(logging.WARNING, logger="activity"):
        res = run(videos, spec, cache)
    assert res.extracted == 1 and not res.failed
    lines = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"{entry}: damaged cache entry (") and lines[0].endswith("); extracting again")
    fresh = run(videos[1:2], spec, FeatureCache(tmp_path / "fresh", spec)).features[videos[1]]
    np.testing.assert_array_equal(res.features[videos[1]], fresh)
    np.testing.assert_array_equal(cache.get(videos[1]), fresh)  # and the entry is whole again


def test_the_command_line_reports_a_damaged_entry_as_one_note(tmp_path, videos, cli):
    cache = tmp_path / "cache"
    opts = ["extract", "--data", videos[0].parent, "--cache", cache, "--quiet", "--workers", "0",
            "features.image_size=32", "features.num_frames=4", "features.motion=false"]
    assert cli(opts).code == 0
    entry = next(cache.glob("*/*.npy"))
    _flip_data_byte(entry)
    again = cli(opts)
    assert again.code == 0, again.err
    assert [l for l in again.err.splitlines() if "damaged" in l] == [
        f"note: {entry}: damaged cache entry (checksum mismatch); extracting again"]
    assert "1 extracted" in again.out


def test_an_entry_written_before_the_checksum_still_loads(tmp_path, videos, caplog):
    """A plain .npy (what earlier versions wrote) is read as it is, without a warning."""
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    old = np.arange(4 * DIM, dtype=np.float16).reshape(4, DIM)
    np.save(cache.entry(videos[0]), old)
    with caplog.at_level(logging.WARNING, logger="activity"):
        np.testing.assert_array_equal(cache.get(videos[0]), old)
    assert not caplog.records


def test_a_new_entry_is_still_a_plain_npy_file(tmp_path, videos):
    """np.load (and so an earlier version of the package) reads an entry with its checksum."""
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    f = run(videos[:1], spec, cache).features[videos[0]]
    np.testing.assert_array_equal(np.load(cache.entry(videos[0]), allow_pickle=False), f)


# ---------------------------------------------------------------- a full disk


class _FullDisk:
    """``open`` for :mod:`activity.io`: a cache entry's temporary file takes a few bytes, then the disk is full."""

    def __init__(self) -> None:
        self.files: list[Path] = []

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if not str(path).endswith(".npy.tmp"):
            return f
        self.files.append(Path(path))
        real_write = f.write

        def write(data):
            real_write(bytes(data)[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        f.write = write  # type: ignore[method-assign]
        return f


def test_a_full_disk_is_one_error_naming_the_folder_and_leaves_nothing_behind(tmp_path, videos, monkeypatch):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    full = _FullDisk()
    monkeypatch.setattr(activity.io, "open", full, raising=False)
    with pytest.raises(ActivityError) as e:
        run(videos, spec, cache)
    assert full.files, "the write did not go through activity.io"
    message = str(e.value)
    assert "\n" not in message and str(cache.dir) in message and "no space left on device" in message
    assert _files(cache.dir) == ([], [])


def test_the_command_line_reports_a_full_disk_in_one_error_line(tmp_path, videos, monkeypatch, cli):
    monkeypatch.setattr(activity.io, "open", _FullDisk(), raising=False)
    cache = tmp_path / "cache"
    res = cli(["extract", "--data", videos[0].parent, "--cache", cache, "--quiet", "--workers", "0",
               "features.image_size=32", "features.num_frames=4", "features.motion=false"])
    assert res.code == 1
    errors = [l for l in res.err.splitlines() if l.strip()]
    folder = next(cache.iterdir())
    assert len(errors) == 1 and errors[0].startswith(f"error: {folder}: no space left on device"), res.err
    assert _files(folder) == ([], [])


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


# ---------------------------------------------------------------- one folder per stream


def _motion_computed(monkeypatch) -> list[int]:
    """Counts the motion stream's computations (in this process: the runs below use no workers)."""
    from activity.features.motion import MotionSpec

    calls: list[int] = []
    compute = MotionSpec.compute

    def counted(self, *args, **kw):
        calls.append(1)
        return compute(self, *args, **kw)

    monkeypatch.setattr(MotionSpec, "compute", counted)
    return calls


def test_turning_a_stream_on_computes_only_that_stream(tmp_path, videos, monkeypatch):
    try:
        from test_features_extract import no_backbone
    except ImportError:
        from tests.test_features_extract import no_backbone

    both = spec_for(streams=["appearance", "motion"])
    reference = run(videos, both, FeatureCache(tmp_path / "fresh", both)).features  # both streams from scratch
    alone = spec_for()
    run(videos, alone, FeatureCache(tmp_path / "c", alone))
    res = run(videos, both, FeatureCache(tmp_path / "c", both), no_backbone)  # the appearance features are cached
    assert res.extracted == 3
    for v in videos:
        np.testing.assert_array_equal(res.features[v], reference[v])
        assert res.features[v].shape == (both.length, DIM + 80) and res.features[v].dtype == np.float16
    # Another backbone setting reuses the motion numbers: only the appearance features are computed.
    calls = _motion_computed(monkeypatch)
    bigger = spec_for(streams=["appearance", "motion"], image_size=48)
    res = run(videos, bigger, FeatureCache(tmp_path / "c", bigger))
    assert res.extracted == 3 and not calls
    for v in videos:
        np.testing.assert_array_equal(res.features[v][:, DIM:], reference[v][:, DIM:])
    assert run(videos, both, FeatureCache(tmp_path / "c", both), no_backbone).extracted == 0 and not calls
    folders = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(folders) == 3 and sum(n.startswith("motion-") for n in folders) == 1  # two backbones' and one motion


def test_entries_of_several_streams_together_are_still_read(tmp_path, videos, monkeypatch):
    """Written before each stream had its folder: one entry of appearance and motion under the whole spec's key."""
    try:
        from test_features_extract import no_backbone
    except ImportError:
        from tests.test_features_extract import no_backbone
    from activity.features.cache import encode_entry

    both = spec_for(streams=["appearance", "motion"])
    features = run(videos, both, None).features
    old = tmp_path / "c" / both.key()
    old.mkdir(parents=True)
    for v in videos:
        (old / FeatureCache._name(v)).write_bytes(encode_entry(features[v]))
    calls = _motion_computed(monkeypatch)
    res = run(videos, both, FeatureCache(tmp_path / "c", both), no_backbone)
    assert res.extracted == 0 and not calls
    for v in videos:
        np.testing.assert_array_equal(res.features[v], features[v])
