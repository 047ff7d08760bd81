"""Atomic writes: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import json
import os

import pytest

from activity.io import atomic_write


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_write_in_progress_never_matches_the_final_suffix(tmp_path):
    """A reader globbing '*.npy' (or a killed writer's leftovers) never sees a half-written entry as one."""
    with atomic_write(tmp_path / "entry.npy", durable=False) as f:
        f.write(b"partial")
        assert list(tmp_path.glob("*.npy")) == []
        assert len(list(tmp_path.iterdir())) == 1
    assert [p.name for p in tmp_path.glob("*.npy")] == ["entry.npy"]


def test_atomic_text_writes_whole_files_and_nothing_on_error(tmp_path):
    from activity.io import atomic_text, write_json

    out = write_json(tmp_path / "m.json", {"top1": 0.5})
    assert json.loads(out.read_text()) == {"top1": 0.5} and out.read_text().endswith("}\n")
    with pytest.raises(RuntimeError):
        with atomic_text(tmp_path / "m.json") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert json.loads(out.read_text()) == {"top1": 0.5}  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # and no temporary file is left


def test_atomic_path_can_keep_the_suffix_for_writers_that_choose_the_format_by_it(tmp_path):
    from activity.io import atomic_path

    with atomic_path(tmp_path / "out.mp4", keep_suffix=True) as tmp:
        assert tmp.name.startswith(".tmp-") and tmp.suffix == ".mp4" and tmp.parent == tmp_path
        tmp.write_bytes(b"video")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.mp4", keep_suffix=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"] and (tmp_path / "out.mp4").read_bytes() == b"video"
    with atomic_path(tmp_path / "out.mp4") as tmp:
        assert tmp.name.endswith(".mp4.tmp")  # the default never matches '*.mp4'
