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
    train.write_text("path,label,group\n" + "".join(f"{data}/growing/growing_00{i}.mp4,growing,g{i}\n" for i in range(3))
                     + "".join(f"{data}/shrinking/shrinking_00{i}.mp4,shrinking,s{i}\n" for i in range(2)))
    val.write_text("path,label,group\n" f"{data}/growing/growing_003.mp4,growing,g1\n" f"{data}/growing/growing_000.mp4,growing,g9\n")
    report = check_dataset(load_dataset(train), load_dataset(val))
    assert report.groups_known
    assert report.leaked_groups == ["g1"]
    assert report.on_both_sides == [data / "growing" / "growing_000.mp4"]  # the same file, not a pair of copies
    assert report.split_duplicates == [] and report.duplicates == []
    assert report.problems == 2
    shutil.copy(data / "growing" / "growing_001.mp4", tmp_path / "copy.mp4")  # a copy under another name is a duplicate
    val.write_text("path,label,group\n" f"{tmp_path}/copy.mp4,growing,g8\n")
    report = check_dataset(load_dataset(train), load_dataset(val))
    assert report.split_duplicates == [[data / "growing" / "growing_001.mp4", tmp_path / "copy.mp4"]]
    assert report.on_both_sides == [] and report.problems == 1


def test_check_of_the_same_collection_on_both_sides_says_so_once_per_clip(tmp_path, capsys):
    data = make_order_dataset(tmp_path / "data", classes=["growing", "shrinking"], clips_per_class=3, num_frames=6, size=(32, 32))
    assert main(["check", str(data), "--val", str(data), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "6 clips are on both sides (the same file in training and validation)" in out
    assert " = " not in out and "identical files: 0 group(s)" in out
    assert "problems: 6" in out
    relabelled = tmp_path / "val.txt"
    relabelled.write_text(f"{data / 'growing' / 'growing_000.mp4'} shrinking\n")  # the same file, another label
    report = check_dataset(load_dataset(data), load_dataset(relabelled))
    assert report.relabelled == [data / "growing" / "growing_000.mp4"] and report.problems == 2


def test_check_command_exit_code_and_report(tmp_path, capsys):
    data = _collection(tmp_path)
    assert main(["check", str(data), "--quiet", "--group-regex", r"_(\d+)\."]) == 1
    out = capsys.readouterr().out
    assert "broken_002.mp4" in out and "[different labels]" in out and "problems: 2" in out
    clean = tmp_path / "clean"
    make_order_dataset(clean, classes=["growing", "shrinking"], clips_per_class=2, num_frames=6, size=(32, 32))
    assert main(["check", str(clean), "--quiet"]) == 0


def test_check_flags_what_cannot_be_learnt_or_validated(tmp_path, capsys):
    data = make_order_dataset(tmp_path / "data", classes=["growing", "shrinking", "moving_left"], clips_per_class=2,
                              num_frames=6, size=(32, 32))
    (data / "moving_left" / "moving_left_001.mp4").unlink()  # one clip left
    one = tmp_path / "one"
    shutil.copytree(data / "growing", one / "growing")
    report = check_dataset(load_dataset(one))
    assert report.too_few_classes and report.problems == 1
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("path,label\n" f"{data}/growing/growing_000.mp4,growing\n" f"{data}/shrinking/shrinking_000.mp4,shrinking\n"
                     f"{data}/shrinking/shrinking_001.mp4,shrinking\n")
    val.write_text("path,label\n" f"{data}/growing/growing_001.mp4,growing\n" f"{data}/moving_left/moving_left_000.mp4,moving_left\n")
    report = check_dataset(load_dataset(train), load_dataset(val))
    assert not report.too_few_classes
    assert report.single_clip_classes == ["growing"] and report.val_only_classes == ["moving_left"]
    assert report.train_per_class == {"growing": 1, "shrinking": 2} and report.val_per_class == {"growing": 1, "moving_left": 1}
    assert report.problems == 2
    assert main(["check", str(train), "--val", str(val), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "  class        train  validation" in out and "  moving_left      0           1" in out
    assert "classes with a single training clip: 1 (growing)" in out
    assert "validation classes without training clips: 1 (moving_left)" in out
    assert main(["check", str(one), "--quiet"]) == 1
    assert "too few classes: 1 with training clips; a classifier needs at least 2" in capsys.readouterr().out
