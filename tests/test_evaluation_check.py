"""activity check: unreadable clips, identical files across classes, recordings on both sides of a split."""

from __future__ import annotations

import shutil

from activity.cli import main
from activity.data.collection import load_dataset
from activity.data.synthetic import make_order_dataset
from activity.evaluation.check import check_dataset


def _collection(tmp_path):
    data = make_order_dataset(tmp_path / "data", classes=["growing", "shrinking"], clips_per_class=3, num_frames=6, size=(32, 32))
    shutil.copy(data / "growing" / "growing_000.mp4", data / "shrinking" / "copied_000.mp4")  # label leak
    shutil.copy(data / "growing" / "growing_001.mp4", data / "growing" / "again_001.mp4")  # harmless duplicate
    (data / "shrinking" / "broken_002.mp4").write_bytes(b"not a video")
    return data


def test_check_finds_every_kind_of_problem(tmp_path):
    data = _collection(tmp_path)
    report = check_dataset(load_dataset(data))
    assert report.clips_per_class == {"growing": 4, "shrinking": 5}
    assert list(report.unreadable) == [data / "shrinking" / "broken_002.mp4"]
    assert sorted(len(g) for g in report.duplicates) == [2, 2]
    assert len(report.cross_class) == 1 and data / "shrinking" / "copied_000.mp4" in report.cross_class[0]
    assert not report.groups_known
    assert report.problems == 2


def test_check_finds_recordings_and_files_on_both_sides_of_a_split(tmp_path):
    data = make_order_dataset(tmp_path / "data", classes=["growing", "shrinking"], clips_per_class=4, num_frames=6, size=(32, 32))
    train = tmp_path / "train.csv"
    val = tmp_path / "val.csv"
    train.write_text("path,label,group\n" + "".join(f"{data}/growing/growing_00{i}.mp4,growing,g{i}\n" for i in range(3)))
    val.write_text("path,label,group\n" f"{data}/growing/growing_003.mp4,growing,g1\n" f"{data}/growing/growing_000.mp4,growing,g9\n")
    report = check_dataset(load_dataset(train), load_dataset(val))
    assert report.groups_known
    assert report.leaked_groups == ["g1"]
    assert len(report.split_duplicates) == 1
    assert report.problems == 2


def test_check_command_exit_code_and_report(tmp_path, capsys):
    data = _collection(tmp_path)
    assert main(["check", str(data), "--quiet", "--group-regex", r"_(\d+)\."]) == 1
    out = capsys.readouterr().out
    assert "broken_002.mp4" in out and "[different labels]" in out and "problems: 2" in out
    clean = tmp_path / "clean"
    make_order_dataset(clean, classes=["growing", "shrinking"], clips_per_class=2, num_frames=6, size=(32, 32))
    assert main(["check", str(clean), "--quiet"]) == 0
