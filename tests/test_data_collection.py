"""Reading labelled collections (folders, list files, CSV), groups and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activity.data.collection import Sample, VideoDataset, load_dataset
from activity.data.splits import split_train_val
from activity.errors import ActivityError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")  # readers of collections never open the videos
    return path


# ---------------------------------------------------------------- folder per class


def test_folder_per_class_sorted(tmp_path):
    for c in ["walk", "Run", "jump"]:
        for i in range(3):
            touch(tmp_path / c / f"{c}_{i}.mp4")
    touch(tmp_path / "jump" / "notes.txt")  # not a video: ignored
    touch(tmp_path / "walk" / "sub" / "deep.AVI")  # nested, upper-case suffix: included
    touch(tmp_path / "README.md")  # a file at the root: not a class
    (tmp_path / ".hidden").mkdir()  # hidden folder: not a class
    ds = load_dataset(tmp_path)
    assert ds.classes == ["Run", "jump", "walk"]  # sorted by name
    assert len(ds) == 10
    assert all(s.path.suffix.lower() in {".mp4", ".avi"} for s in ds.samples)
    assert [s.label for s in ds.samples] == ["Run"] * 3 + ["jump"] * 3 + ["walk"] * 4
    assert ds.targets().tolist() == [0] * 3 + [1] * 3 + [2] * 4
    assert tmp_path / "walk" / "sub" / "deep.AVI" in ds.paths
    assert ds.groups() is None
    # a stable order: reading twice gives the same list
    assert load_dataset(tmp_path).paths == ds.paths


def test_folder_class_without_videos_is_an_error(tmp_path):
    touch(tmp_path / "a" / "a1.mp4")
    (tmp_path / "b").mkdir()
    touch(tmp_path / "b" / "readme.txt")
    with pytest.raises(ActivityError, match=r"'b' has no video files"):
        VideoDataset.from_directory(tmp_path)


def test_folder_without_class_folders_is_an_error(tmp_path):
    touch(tmp_path / "clip.mp4")  # videos directly in the root
    with pytest.raises(ActivityError, match="no class folders") as ei:
        load_dataset(tmp_path)
    assert str(tmp_path) in str(ei.value)


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(ActivityError, match="no such file or directory"):
        load_dataset(tmp_path / "nope")


# ---------------------------------------------------------------- list files


def test_list_file_relative_paths_resolve_against_list_folder(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text(
        "# a comment\n"
        "../videos/a 1.mp4 run\n"
        "\n"
        "  ../videos/b.mp4   walk  \n"
        f"{tmp_path / 'abs' / 'c.mp4'} run\n"
    )
    monkeypatch.chdir("/")  # the working directory must not matter
    ds = load_dataset(lists / "train.txt")
    assert ds.paths == [lists / "../videos/a 1.mp4", lists / "../videos/b.mp4", tmp_path / "abs" / "c.mp4"]
    assert [p.resolve() for p in ds.paths[:2]] == [
        (tmp_path / "videos" / "a 1.mp4").resolve(),
        (tmp_path / "videos" / "b.mp4").resolve(),
    ]
    assert [s.label for s in ds.samples] == ["run", "walk", "run"]
    assert ds.classes == ["run", "walk"]
    assert ds.source == str(lists / "train.txt")


def test_list_file_paths_with_spaces(tmp_path):
    (tmp_path / "l.txt").write_text("my videos/clip one.mp4 jumping jacks\n")
    ds = VideoDataset.from_list(tmp_path / "l.txt")
    # the label is the last field; everything before it is the path
    assert ds.samples[0].path == tmp_path / "my videos" / "clip one.mp4 jumping"
    assert ds.samples[0].label == "jacks"
    (tmp_path / "l2.txt").write_text("my videos/clip one.mp4\tjump\n")
    ds2 = VideoDataset.from_list(tmp_path / "l2.txt")
    assert ds2.samples[0].path == tmp_path / "my videos" / "clip one.mp4"
    assert ds2.samples[0].label == "jump"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("l.txt", b"a.mp4 run\nlonely.mp4\n", r"l\.txt:2: expected 'path label'"),
        ("l.txt", b"\xff\xfe\x00\x81garbage", "not a text list file"),
        ("d.csv", b"path,label\na.mp4,run\nb.mp4,\n", r"d\.csv:3: empty path or label"),
    ],
    ids=["line-without-label", "binary-list", "csv-empty-label"],
)
def test_malformed_list_is_an_error_naming_file_and_line(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(ActivityError, match=message):
        load_dataset(f)


def test_empty_list_file_is_an_error(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("# nothing here\n\n")
    with pytest.raises(ActivityError, match="empty"):
        load_dataset(f)


# ---------------------------------------------------------------- CSV


def test_csv_with_groups(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "data.csv"
    f.write_text("path,label,group\nv/a.mp4,run,g1\n/abs/b.mp4,walk,g2\n\"v/with, comma.mp4\",run, g1 \n")
    ds = load_dataset(f)
    assert ds.paths == [tmp_path / "sub" / "v" / "a.mp4", Path("/abs/b.mp4"), tmp_path / "sub" / "v" / "with, comma.mp4"]
    assert [s.label for s in ds.samples] == ["run", "walk", "run"]
    assert ds.groups().tolist() == ["g1", "g2", "g1"]
    assert ds.classes == ["run", "walk"]


def test_csv_without_group_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("label,path\nrun,a.mp4\nwalk,b.mp4\n")  # column order does not matter
    ds = load_dataset(f)
    assert ds.paths == [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    assert ds.groups() is None


def test_csv_partial_groups_means_no_groups(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("path,label,group\na.mp4,run,g1\nb.mp4,walk,\n")
    ds = load_dataset(f)
    assert ds.samples[1].group is None
    assert ds.groups() is None


@pytest.mark.parametrize("header, missing", [("file,label", "path"), ("path,class", "label"), ("a,b", "label, path")])
def test_csv_missing_columns_is_an_error(tmp_path, header, missing):
    f = tmp_path / "d.csv"
    f.write_text(f"{header}\nx.mp4,run\n")
    with pytest.raises(ActivityError, match="missing column") as ei:
        load_dataset(f)
    assert missing in str(ei.value)
    assert str(f) in str(ei.value)


# ---------------------------------------------------------------- group regex


def _dataset(names_labels):
    return VideoDataset([Sample(Path("/data") / n, l) for n, l in names_labels])


def test_group_regex_capture_group():
    ds = _dataset([("v_Run_g01_c01.avi", "Run"), ("v_Run_g02_c01.avi", "Run"), ("v_Walk_g01_c03.avi", "Walk")])
    g = ds.with_group_regex(r"_g(\d+)_")
    assert g.groups().tolist() == ["01", "02", "01"]
    assert g.classes == ds.classes and g.paths == ds.paths
    assert ds.groups() is None  # the original is untouched


def test_group_regex_whole_match_without_capture_group():
    ds = _dataset([("Sit_3_1.mp4", "Sit"), ("Sit_4_2.mp4", "Sit")])
    assert ds.with_group_regex(r"\d+").groups().tolist() == ["3", "4"]


def test_group_regex_no_match_names_the_file():
    ds = _dataset([("v_Run_g01_c01.avi", "Run"), ("oddly_named.avi", "Run")])
    with pytest.raises(ActivityError, match="does not match") as ei:
        ds.with_group_regex(r"_g(\d+)_")
    assert "oddly_named.avi" in str(ei.value)


def test_group_regex_invalid_pattern():
    with pytest.raises(ActivityError, match="not a valid regular expression"):
        _dataset([("a.mp4", "x")]).with_group_regex("(unclosed")


def test_load_dataset_applies_group_regex(tmp_path):
    for c in ["a", "b"]:
        for g in range(2):
            touch(tmp_path / c / f"{c}_{g}_0.mp4")
    ds = load_dataset(tmp_path, group_regex=r"_(\d)_")
    assert ds.groups().tolist() == ["0", "1", "0", "1"]


# ---------------------------------------------------------------- splits


def _grouped_dataset(classes=4, groups_per_class=5, clips_per_group=3):
    samples = [
        Sample(Path(f"/d/{c}/{c}_g{g}_{i}.mp4"), f"c{c}", f"c{c}g{g}")
        for c in range(classes)
        for g in range(groups_per_class)
        for i in range(clips_per_group)
    ]
    return VideoDataset(samples)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_keeps_groups_on_one_side_and_is_stratified(seed):
    ds = _grouped_dataset()
    train, val = split_train_val(ds, 0.2, seed=seed)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted, no duplicates
    assert sorted([*train, *val]) == list(range(len(ds)))  # a partition
    groups = ds.groups()
    assert not set(groups[train]) & set(groups[val])
    y = ds.targets()
    # every class on both sides, about a fifth of each in validation (one group of five)
    assert np.bincount(y[val], minlength=4).tolist() == [3, 3, 3, 3]
    assert np.bincount(y[train], minlength=4).tolist() == [12, 12, 12, 12]


def test_split_with_groups_spanning_classes_never_leaks():
    # a "recording" holds clips of several classes
    samples = [Sample(Path(f"/d/{r}_{c}.mp4"), f"c{c}", f"rec{r}") for r in range(10) for c in range(3)]
    ds = VideoDataset(samples)
    train, val = split_train_val(ds, 0.3, seed=0)
    g = ds.groups()
    assert len(val) > 0 and len(train) > 0
    assert not set(g[train]) & set(g[val])
    assert set(ds.targets()[val]) == {0, 1, 2}


def test_split_without_groups_is_stratified():
    samples = [Sample(Path(f"/d/{c}_{i}.mp4"), f"c{c}") for c in range(3) for i in range(10)]
    ds = VideoDataset(samples)
    train, val = split_train_val(ds, 0.2, seed=0)
    assert sorted([*train, *val]) == list(range(30))
    assert np.bincount(ds.targets()[val], minlength=3).tolist() == [2, 2, 2]


def test_split_is_deterministic_per_seed():
    ds = _grouped_dataset()
    a = split_train_val(ds, 0.2, seed=5)
    b = split_train_val(ds, 0.2, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_split_with_a_single_group_is_an_error():
    samples = [Sample(Path(f"/d/{i}.mp4"), f"c{i % 2}", "only") for i in range(6)]
    with pytest.raises(ActivityError, match="same group"):
        split_train_val(VideoDataset(samples), 0.2)


def test_subset_keeps_classes():
    ds = _grouped_dataset(classes=3)
    sub = ds.subset([0, 1])
    assert sub.classes == ds.classes
    assert len(sub) == 2 and sub.samples == ds.samples[:2]
    assert sub.targets(ds.classes).tolist() == [0, 0]


def test_train_val_datasets_given_split_and_none():
    from activity.data.splits import train_val_datasets

    train = VideoDataset([Sample(Path(f"/d/{c}_{i}.mp4"), c, f"g{i}") for c in "ab" for i in range(5)])
    val = VideoDataset([Sample(Path("/v/a.mp4"), "a"), Sample(Path("/v/z.mp4"), "zebra")])
    tr, va, unknown = train_val_datasets(train, val, 0.2)
    assert tr is train and [s.label for s in va.samples] == ["a"] and va.classes == ["a", "b"]
    assert [s.path.name for s in unknown] == ["z.mp4"]
    tr, va, unknown = train_val_datasets(train, None, 0.2)
    assert len(tr) + len(va) == 10 and not unknown
    assert not {s.group for s in tr.samples} & {s.group for s in va.samples}
    tr, va, _ = train_val_datasets(train, None, 0.0)
    assert tr is train and va is None


def test_how_validation_was_made_is_described():
    from activity.data.splits import describe_validation, train_val_datasets, validation_phrase

    grouped = VideoDataset([Sample(Path(f"/d/{c}_{i}.mp4"), c, f"g{i}") for c in "ab" for i in range(5)])
    _, va, _ = train_val_datasets(grouped, None, 0.2)
    how = describe_validation(va)
    assert how == {"split": "by group", "groups": sorted({s.group for s in va.samples})} and how["groups"]
    assert validation_phrase(how) == f"split by group (validation groups: {', '.join(how['groups'])})"
    plain = VideoDataset([Sample(Path(f"/d/{c}_{i}.mp4"), c) for c in "ab" for i in range(5)])
    _, va, _ = train_val_datasets(plain, None, 0.2)
    assert describe_validation(va) == {"split": "random"}
    assert validation_phrase(describe_validation(va)).startswith("split at random, stratified by class (no groups known")
    assert describe_validation(va, given="/v") == {"split": "given", "source": "/v"}
    assert describe_validation(None) == {"split": "none"}
    many = {"split": "by group", "groups": [f"g{i}" for i in range(11)]}
    assert validation_phrase(many).endswith("g6, g7 and 3 more)")


def test_split_picks_a_fold_that_keeps_every_class_in_training():
    # one huge group (like ucf101-samples' g01) must not become the whole validation side
    samples = [Sample(Path(f"/d/a_{i}.mp4"), "a", "big") for i in range(8)]
    samples += [Sample(Path(f"/d/{c}_{i}.mp4"), c, f"g{c}{i}") for c in "ab" for i in range(4)]
    ds = VideoDataset(samples)
    tr, va = split_train_val(ds, 0.2)
    assert {s.label for s in ds.subset(tr).samples} == {"a", "b"}
    assert len(va) < len(tr)


def test_split_that_cannot_keep_every_class_is_a_clear_error():
    ds = VideoDataset([Sample(Path(f"/d/{c}.mp4"), c, c) for c in "abc"])  # one clip per class
    with pytest.raises(ActivityError, match="val_fraction=0"):
        split_train_val(ds, 0.2)


def test_csv_with_byte_order_mark_and_spaced_header(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes("\ufeffpath, label\na.mp4,run\n".encode("utf-8"))
    ds = load_dataset(f)
    assert ds.samples[0].label == "run" and ds.samples[0].path == tmp_path / "a.mp4"


def test_to_csv_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = VideoDataset([
        Sample(Path("rel/a, b.mp4"), "run", "g1"),
        Sample(tmp_path / "x" / ".." / "c.mp4", "jumping jacks", None),
        Sample(Path("/abs/d.mp4"), 'say "hi"', "g2"),
    ])
    out = ds.to_csv(tmp_path / "out.csv")
    assert out == tmp_path / "out.csv"
    assert out.read_text().splitlines()[0] == "path,label,group"
    back = load_dataset(out)
    assert back.paths == [(tmp_path / "rel" / "a, b.mp4").resolve(), (tmp_path / "c.mp4").resolve(), Path("/abs/d.mp4")]
    assert [s.label for s in back.samples] == ["run", "jumping jacks", 'say "hi"']
    assert [s.group for s in back.samples] == ["g1", None, "g2"]
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["out.csv"]  # no temporary file left behind


def test_without_labels_a_single_video_or_a_flat_folder_is_a_collection(tmp_path):
    """`activity extract --data clip.mp4` or `--data folder_of_videos/`: nothing to label, nothing to refuse."""
    from activity.data.collection import load_dataset

    (tmp_path / "flat").mkdir()
    for name in ("b.mp4", "a.avi", "notes.txt"):
        (tmp_path / "flat" / name).write_bytes(b"x")
    ds = load_dataset(tmp_path / "flat", require_labels=False)
    assert [p.name for p in ds.paths] == ["a.avi", "b.mp4"] and ds.classes == []
    one = load_dataset(tmp_path / "flat" / "b.mp4", require_labels=False)
    assert one.paths == [tmp_path / "flat" / "b.mp4"]
    with pytest.raises(ActivityError, match="no class folders"):
        load_dataset(tmp_path / "flat")  # training still needs labels


def test_leave_one_group_out_gives_one_fold_per_group():
    from activity.data.splits import leave_one_group_out

    groups = np.array(["b", "a", "b", "c", "a", "c"])
    folds = leave_one_group_out(np.zeros(6, dtype=int), groups)
    assert [te.tolist() for _, te in folds] == [[1, 4], [0, 2], [3, 5]]  # groups a, b, c in order
    assert all(sorted(tr.tolist() + te.tolist()) == list(range(6)) for tr, te in folds)
    with pytest.raises(ActivityError, match="needs groups"):
        leave_one_group_out(np.zeros(6, dtype=int), None)
    with pytest.raises(ActivityError, match="at least 2 groups"):
        leave_one_group_out(np.zeros(2, dtype=int), np.array(["a", "a"]))
