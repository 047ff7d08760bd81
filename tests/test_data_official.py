"""Official splits of UCF101, HMDB51 and Kinetics, and the preparation scripts in datasets/.

Each format is built in a tmp dir as the dataset publishes it (list files with
Windows line endings where the original has them) around empty clip files:
the readers never open a video.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from activity.data.collection import load_dataset
from activity.data.official import OfficialSplit, hmdb51_group
from activity.errors import ActivityError

REPO = Path(__file__).resolve().parents[1]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def script(name: str):
    """A preparation script in datasets/ as a module (its ``main(argv)`` runs it in-process)."""
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", REPO / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv_back(path: Path):
    ds = load_dataset(path)
    return [(s.path, s.label, s.group) for s in ds.samples]


# ---------------------------------------------------------------- UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]


def ucf101(tmp_path: Path, *, train: list[str] | None = None, test: list[str] | None = None, class_ind: str | None = None):
    """A UCF101 copy: UCF-101/<Class>/<clip> and ucfTrainTestlist/ (CRLF line endings, as published).

    Split 1 trains on groups 08-09 and tests on 01; split 2 swaps them.
    HandstandPushups keeps UCF101's quirk: its clips are named v_HandStandPushups_...
    """
    videos, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    splits.mkdir(parents=True, exist_ok=True)
    names = {c: [f"v_{c.replace('Handstand', 'HandStand')}_g{g:02d}_c{k:02d}.avi" for g in (1, 8, 9) for k in (1, 2)] for c in UCF_CLASSES}
    for c, files in names.items():
        for f in files:
            touch(videos / c / f)
    index = {c: i for i, c in enumerate(UCF_CLASSES, 1)}
    crlf = lambda lines: "".join(f"{line}\r\n" for line in lines)  # noqa: E731
    (splits / "classInd.txt").write_text(class_ind if class_ind is not None else crlf(f"{i} {c}" for c, i in index.items()), newline="")
    held_out = {1: "_g01_", 2: "_g08_"}
    for n, group in held_out.items():
        tr = [f"{c}/{f} {index[c]}" for c, files in names.items() for f in files if group not in f]
        te = [f"{c}/{f}" for c, files in names.items() for f in files if group in f]
        (splits / f"trainlist0{n}.txt").write_text(crlf(train if train is not None and n == 1 else tr), newline="")
        (splits / f"testlist0{n}.txt").write_text(crlf(test if test is not None and n == 1 else te), newline="")
    return videos, splits


def test_ucf101_split1(tmp_path):
    videos, splits = ucf101(tmp_path)
    split = OfficialSplit.from_ucf101(videos, splits, 1)
    assert list(split.sides) == ["train", "test"]
    train, test = split.sides["train"], split.sides["test"]
    assert split.classes == UCF_CLASSES == train.classes == test.classes
    assert len(train) == 12 and len(test) == 6
    assert {s.group for s in train.samples} == {"08", "09"} and {s.group for s in test.samples} == {"01"}
    assert train.samples[0].path == videos.resolve() / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi"
    # the label is the folder (HandStandPushups files sit in HandstandPushups/, as in UCF101)
    hs = [s for s in test.samples if "HandStand" in s.path.name]
    assert [s.label for s in hs] == ["HandstandPushups"] * 2
    assert all(s.path.is_file() for ds in split.sides.values() for s in ds.samples)
    assert not any(split.missing.values())


def test_ucf101_split2_reads_its_own_lists(tmp_path):
    videos, splits = ucf101(tmp_path)
    split = OfficialSplit.from_ucf101(videos, splits, 2)
    assert {s.group for s in split.sides["test"].samples} == {"08"}
    assert {s.group for s in split.sides["train"].samples} == {"01", "09"}


def test_ucf101_missing_clips_are_counted_not_fatal(tmp_path):
    videos, splits = ucf101(tmp_path)
    gone = videos / "Basketball" / "v_Basketball_g08_c02.avi"
    gone.unlink()
    split = OfficialSplit.from_ucf101(videos, splits, 1)
    assert len(split.sides["train"]) == 11
    assert split.missing == {"train": [str(gone.resolve())], "test": []}
    line = split.summary()
    assert "\n" not in line
    assert "train 11 clips, test 6 clips" in line and "3 classes" in line
    assert f"1 listed clips not on disk (train 1; e.g. {gone.resolve()})" in line


def test_ucf101_no_clip_on_disk_is_an_error(tmp_path):
    _, splits = ucf101(tmp_path)
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    with pytest.raises(ActivityError, match=r"none of the 18 listed clips is under .*empty.*--videos"):
        OfficialSplit.from_ucf101(elsewhere, splits, 1)


@pytest.mark.parametrize("dataset", ["UCF101", "HMDB51"])
@pytest.mark.parametrize("split", [0, 4, -1])
def test_unknown_split_number(tmp_path, dataset, split):
    make, load = {"UCF101": (ucf101, OfficialSplit.from_ucf101), "HMDB51": (hmdb51, OfficialSplit.from_hmdb51)}[dataset]
    videos, splits = make(tmp_path)
    with pytest.raises(ActivityError, match=rf"{dataset} has splits 1, 2 and 3; got --split {split}"):
        load(videos, splits, split)


@pytest.mark.parametrize("missing", ["classInd.txt", "trainlist01.txt", "testlist01.txt"])
def test_ucf101_missing_split_file(tmp_path, missing):
    videos, splits = ucf101(tmp_path)
    (splits / missing).unlink()
    with pytest.raises(ActivityError, match=rf"{re.escape(str(splits.resolve() / missing))}: no such file"):
        OfficialSplit.from_ucf101(videos, splits, 1)


def test_ucf101_missing_folders(tmp_path):
    videos, splits = ucf101(tmp_path)
    with pytest.raises(ActivityError, match=r"nope: no such folder \(--videos\)"):
        OfficialSplit.from_ucf101(tmp_path / "nope", splits, 1)
    with pytest.raises(ActivityError, match=r"nope: no such folder \(--splits\)"):
        OfficialSplit.from_ucf101(videos, tmp_path / "nope", 1)


@pytest.mark.parametrize(
    "train, test, message",
    [
        (None, ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Juggling/v_Juggling_g01_c01.avi"],
         r"testlist01\.txt:2: class 'Juggling' is not in .*classInd\.txt"),
        (["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 7"], None, r"trainlist01\.txt:1: class index '7' is not in .*classInd\.txt"),
        (["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2"], None,
         r"trainlist01\.txt:1: class index 2 is 'Basketball' in .*classInd\.txt, but the clip is in folder 'ApplyEyeMakeup'"),
        (["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "", "v_ApplyEyeMakeup_g08_c02.avi 1"], None,
         r"trainlist01\.txt:3: expected '<Class>/<clip file>\[ <class index>\]', got 'v_ApplyEyeMakeup_g08_c02\.avi 1'"),
        (["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1 extra"], None, r"trainlist01\.txt:1: expected '<Class>/<clip file>"),
        (["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi one"], None, r"trainlist01\.txt:1: class index 'one' is not in"),
        (None, ["ApplyEyeMakeup/clip.avi"], r"testlist01\.txt:1: 'clip\.avi' has no UCF101 group \(_gNN_\)"),
        ([], None, r"trainlist01\.txt: the file is empty"),
    ],
    ids=["unknown-class", "unknown-index", "index-disagrees-with-folder", "no-class-folder", "extra-field", "index-not-a-number",
         "no-group", "empty-list"],
)
def test_ucf101_bad_list_line_names_file_and_line(tmp_path, train, test, message):
    videos, splits = ucf101(tmp_path, train=train, test=test)
    with pytest.raises(ActivityError, match=message):
        OfficialSplit.from_ucf101(videos, splits, 1)


def test_ucf101_malformed_class_index(tmp_path):
    videos, splits = ucf101(tmp_path, class_ind="1 ApplyEyeMakeup\nBasketball 2\n")
    with pytest.raises(ActivityError, match=r"classInd\.txt:2: expected '<index> <Class>', got 'Basketball 2'"):
        OfficialSplit.from_ucf101(videos, splits, 1)


def test_ucf101_on_real_sample_names(tmp_path, shared_data):
    """The real UCF101 clips in ../shared/data, with split files written around their names."""
    videos = shared_data / "ucf101-samples"
    if not videos.is_dir():
        pytest.skip(f"{videos} not found")
    official = {"ApplyEyeMakeup": 1, "Basketball": 8, "BenchPress": 10, "Biking": 11, "Diving": 26, "HeadMassage": 39, "LongJump": 51}
    clips = sorted(videos.glob("*/*.avi"))
    assert {p.parent.name for p in clips} == set(official)
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for c, i in official.items()), newline="")
    # split 1 holds out groups 01-07 in the real lists; give training the c01 clips so both sides have some
    train = [p for p in clips if "_c01" in p.name]
    test = [p for p in clips if "_c01" not in p.name]
    (splits / "trainlist01.txt").write_text("".join(f"{p.parent.name}/{p.name} {official[p.parent.name]}\r\n" for p in train), newline="")
    (splits / "testlist01.txt").write_text("".join(f"{p.parent.name}/{p.name}\r\n" for p in test), newline="")
    with open(splits / "testlist01.txt", "a", newline="") as f:
        f.write("Diving/v_Diving_g01_c06.avi\r\n")  # listed, not among the samples

    out = tmp_path / "out"
    split = OfficialSplit.from_ucf101(videos, splits, 1)
    split.write_csvs(out)
    assert split.missing["test"] == [str(videos.resolve() / "Diving" / "v_Diving_g01_c06.avi")]
    back = {side: read_csv_back(out / f"{side}.csv") for side in ("train", "test")}
    assert [p.name for p, _, _ in back["train"]] == [p.name for p in train]
    assert [p.name for p, _, _ in back["test"]] == [p.name for p in test]
    for p, label, group in back["train"] + back["test"]:
        assert p.is_absolute() and p.is_file()
        assert label == p.parent.name
        assert group == re.search(r"_g(\d+)_", p.name).group(1)
    assert ("v_Biking_g06_c03.avi", "06") in {(p.name, g) for p, _, g in back["test"]}


# ---------------------------------------------------------------- HMDB51

HMDB = {
    # class -> [(file, split1 flag, split2 flag)]
    "brush_hair": [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1, 2),
        ("April_09_brush_hair_u_nm_np1_ba_goo_1.avi", 1, 2),
        ("My_Hair_Routine_brush_hair_h_nm_np1_le_goo_0.avi", 2, 1),
        ("Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi", 0, 1),
    ],
    "cartwheel": [
        ("(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", 1, 0),
        ("Zwei_hoffnungslose_Pflegef_lle_beim_Turnen(Part4)_cartwheel_f_cm_np1_ri_bad_0.avi", 2, 1),
    ],
    "sword": [("AHF_longsword_against_Rapier_and_Dagger_Fight_sword_f_cm_np2_ri_bad_0.avi", 1, 2)],
    "sword_exercise": [
        ("Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_med_3.avi", 1, 1),
        ("my_sword_clip.avi", 2, 2),  # not in HMDB's naming pattern
    ],
    "fall_floor": [
        ("American_History_X_fall_floor_f_cm_np1_fr_med_0.avi", 1, 1),
        ("april_09_fall_floor_f_nm_np1_fr_goo_0.avi", 2, 2),  # same source as brush_hair's April_09, other case
    ],
}


def hmdb51(tmp_path: Path, splits_numbers=(1, 2, 3)):
    videos, splits = tmp_path / "hmdb51_org", tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label, rows in HMDB.items():
        for name, *_ in rows:
            touch(videos / label / name)
        for n in splits_numbers:
            column = min(n, 2)  # split 3 reuses split 2's flags
            (splits / f"{label}_test_split{n}.txt").write_text("".join(f"{row[0]} {row[column]} \n" for row in rows))
    return videos, splits


def test_hmdb51_split_flags(tmp_path):
    videos, splits = hmdb51(tmp_path)
    split = OfficialSplit.from_hmdb51(videos, splits, 1)
    assert split.classes == sorted(HMDB)
    side = {s.path.name: (name, s.label) for name, ds in split.sides.items() for s in ds.samples}
    for label, rows in HMDB.items():
        for file, flag, _ in rows:
            expected = {0: None, 1: ("train", label), 2: ("test", label)}[flag]
            assert side.get(file) == expected, file
    assert split.sides["train"].samples[0].path == videos.resolve() / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
    split2 = OfficialSplit.from_hmdb51(videos, splits, 2)
    assert "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi" in [p.name for p in split2.sides["train"].paths]


def test_hmdb51_groups_are_source_videos(tmp_path):
    videos, splits = hmdb51(tmp_path)
    split = OfficialSplit.from_hmdb51(videos, splits, 1)
    groups = {s.path.name: s.group for ds in split.sides.values() for s in ds.samples}
    assert groups["April_09_brush_hair_u_nm_np1_ba_goo_0.avi"] == "april_09"
    assert groups["April_09_brush_hair_u_nm_np1_ba_goo_1.avi"] == "april_09"
    assert groups["april_09_fall_floor_f_nm_np1_fr_goo_0.avi"] == "april_09"  # one source across classes
    assert groups["(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi"] == "(rad)schlag_die_bank!"
    assert groups["AHF_longsword_against_Rapier_and_Dagger_Fight_sword_f_cm_np2_ri_bad_0.avi"] == "ahf_longsword_against_rapier_and_dagger_fight"
    assert groups["Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_med_3.avi"] == "blade_of_fury_-_scene_1"
    assert groups["my_sword_clip.avi"] == "my_sword_clip"  # off-pattern: its own group


@pytest.mark.parametrize(
    "name, label, group",
    [
        ("American_History_X_fall_floor_f_cm_np1_fr_med_0.avi", "fall_floor", "american_history_x"),
        ("20060723sfjffbartsinger_wave_f_cm_np1_ba_med_0.avi", "wave", "20060723sfjffbartsinger"),
        ("CastAway2_drink_u_cm_np1_le_goo_8.avi", "drink", "castaway2"),
        ("brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair", "brush_hair_u_nm_np1_ba_goo_0"),  # no source left
        ("Some_movie_kiss_u_nm_np2_fr_goo_1.avi", "hug", "Some_movie_kiss_u_nm_np2_fr_goo_1"),  # class not in the name
    ],
)
def test_hmdb51_group(name, label, group):
    assert hmdb51_group(name, label) == group


def test_hmdb51_no_split_files(tmp_path):
    videos, splits = hmdb51(tmp_path)
    for f in splits.iterdir():
        f.unlink()
    with pytest.raises(ActivityError, match=r"no HMDB51 split files \(<class>_test_split<N>\.txt\)"):
        OfficialSplit.from_hmdb51(videos, splits, 1)


def test_hmdb51_missing_split_file_of_one_class(tmp_path):
    videos, splits = hmdb51(tmp_path)
    (splits / "cartwheel_test_split3.txt").unlink()
    assert len(OfficialSplit.from_hmdb51(videos, splits, 1).classes) == 5  # other splits are complete
    with pytest.raises(ActivityError, match=r"cartwheel_test_split3\.txt: no such file \(1 of 5 classes lack a split-3 file\)"):
        OfficialSplit.from_hmdb51(videos, splits, 3)


@pytest.mark.parametrize("line", ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 3", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "a.avi 1 2"])
def test_hmdb51_malformed_line(tmp_path, line):
    videos, splits = hmdb51(tmp_path)
    f = splits / "brush_hair_test_split1.txt"
    f.write_text(f.read_text() + "\n" + line + "\n")
    with pytest.raises(ActivityError, match=rf"brush_hair_test_split1\.txt:6: expected '<clip file> <0\|1\|2>', got {re.escape(repr(line))}"):
        OfficialSplit.from_hmdb51(videos, splits, 1)


def test_hmdb51_missing_clips_counted(tmp_path):
    videos, splits = hmdb51(tmp_path)
    (videos / "sword" / HMDB["sword"][0][0]).unlink()
    split = OfficialSplit.from_hmdb51(videos, splits, 1)
    assert [Path(p).name for p in split.missing["train"]] == [HMDB["sword"][0][0]]
    assert "sword" in split.classes  # a class keeps its place even with no clip on disk
    assert "1 listed clips not on disk (train 1; e.g." in split.summary()


# ---------------------------------------------------------------- Kinetics

K_ROWS = [
    # label, youtube_id, start, end, split
    ("abseiling", "0347ZoDXyP0", 14, 24, "train"),
    ("air drumming", "-_Jb9Zx8cJ4", 0, 10, "train"),
    ("air drumming", "-_Jb9Zx8cJ4", 30, 40, "train"),
    ("massaging person's head", "a_b-c", 123456, 123466, "train"),
    ("abseiling", "3caPS4FHFF8", 36, 46, "val"),
    ("air drumming", "zzz", 5, 15, "val"),
]


def k_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}.mp4"


def kinetics_csv(path: Path, rows, header="label,youtube_id,time_start,time_end,split,is_cc", split_name=None) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header.split(","))
        for label, yid, start, end, split in rows:
            row = {"label": label, "youtube_id": yid, "time_start": start, "time_end": end, "split": split_name or split, "is_cc": 0}
            w.writerow([row[k] for k in header.split(",")])
    return path


@pytest.mark.parametrize("layout", ["split/label", "split/label_underscored", "split", "flat"])
def test_kinetics_layouts(tmp_path, layout):
    videos = tmp_path / "kinetics400"
    for label, yid, start, end, split in K_ROWS:
        folder = {"split/label": videos / split / label, "split/label_underscored": videos / f"{split}_256" / label.replace(" ", "_"),
                  "split": videos / split, "flat": videos}[layout]
        touch(folder / k_name(yid, start, end))
    train = kinetics_csv(tmp_path / "ann" / "train.csv", [r for r in K_ROWS if r[4] == "train"])
    val = kinetics_csv(tmp_path / "ann" / "validate.csv", [r for r in K_ROWS if r[4] == "val"], split_name="validate")
    split = OfficialSplit.from_kinetics(videos, [train, val])
    assert list(split.sides) == ["train", "val"]
    assert split.classes == ["abseiling", "air drumming", "massaging person's head"]
    got = [(s.path.name, s.label, s.group) for s in split.sides["train"].samples]
    assert got == [(k_name(y, a, b), label, y) for label, y, a, b, side in K_ROWS if side == "train"]
    assert len(split.sides["val"]) == 2
    assert all(s.path.is_file() for ds in split.sides.values() for s in ds.samples)

    out = tmp_path / "out"
    assert split.write_csvs(out) == [out / "train.csv", out / "val.csv"]
    back = read_csv_back(out / "train.csv")
    assert [(p.name, label, group) for p, label, group in back] == got
    assert back[3][1] == "massaging person's head"


def test_kinetics_missing_and_unlabelled(tmp_path):
    videos = tmp_path / "k"
    present = K_ROWS[:2] + K_ROWS[4:5]
    for label, yid, start, end, split in present:
        touch(videos / split / label / k_name(yid, start, end))
    touch(videos / "test" / k_name("tst1", 0, 10))
    ann = kinetics_csv(tmp_path / "all.csv", K_ROWS + [K_ROWS[0]])  # a repeated row counts once
    test = kinetics_csv(tmp_path / "test.csv", [("", "tst1", 0, 10, "test"), ("", "tst2", 0, 10, "test")])
    nolabel = tmp_path / "test_nolabel.csv"
    kinetics_csv(nolabel, [(None, "tst3", 0, 10, "test")], header="youtube_id,time_start,time_end,split")
    split = OfficialSplit.from_kinetics(videos, [ann, test, nolabel])
    assert list(split.sides) == ["train", "val", "test"]
    assert [len(split.sides[s]) for s in ("train", "val", "test")] == [2, 1, 0]
    assert split.missing == {"train": [k_name(*K_ROWS[2][1:4]), k_name(*K_ROWS[3][1:4])], "val": [k_name(*K_ROWS[5][1:4])], "test": []}
    assert split.unlabelled == {"train": 0, "val": 0, "test": 3}
    line = split.summary()
    assert "train 2 clips, val 1 clips, test 0 clips" in line
    assert f"3 listed clips not on disk (train 2, val 1; e.g. {k_name(*K_ROWS[2][1:4])})" in line
    assert "3 test clips without a label left out" in line
    out = tmp_path / "out"
    out.mkdir()
    (out / "test.csv").write_text("path,label,group\n/stale.mp4,x,y\n")
    split.write_csvs(out)
    assert (out / "test.csv").read_text() == "path,label,group\n"  # no stale rows survive


def test_kinetics_nothing_on_disk_is_an_error(tmp_path):
    (tmp_path / "videos").mkdir()
    ann = kinetics_csv(tmp_path / "train.csv", K_ROWS)
    with pytest.raises(ActivityError, match=r"none of the 6 labelled clips is below .*videos \(e\.g\. no file 0347ZoDXyP0_000014_000024\.mp4\)"):
        OfficialSplit.from_kinetics(tmp_path / "videos", [ann])


@pytest.mark.parametrize(
    "content, message",
    [
        ("label,youtube_id,time_start,split\nx,a,1,train\n", r"missing column\(s\) time_end"),
        ("label,youtube_id,time_start,time_end,split\nx,a,1,11,train\nx,b,1,11,holdout\n", r"k\.csv:3: split 'holdout' is not train, validate or test"),
        ("label,youtube_id,time_start,time_end,split\nx,a,one,11,train\n", r"k\.csv:2: time_start must be whole seconds, got 'one'"),
        ("label,youtube_id,time_start,time_end,split\nx,a,1,11.5,train\n", r"k\.csv:2: time_end must be whole seconds, got '11\.5'"),
        ("label,youtube_id,time_start,time_end,split\nx,,1,11,train\n", r"k\.csv:2: empty youtube_id"),
        ("label,youtube_id,time_start,time_end,split\n", r"no annotation rows"),
    ],
    ids=["missing-column", "unknown-split", "bad-time", "fractional-time", "empty-id", "no-rows"],
)
def test_kinetics_bad_csv(tmp_path, content, message):
    (tmp_path / "v").mkdir()
    f = tmp_path / "k.csv"
    f.write_text(content)
    with pytest.raises(ActivityError, match=message):
        OfficialSplit.from_kinetics(tmp_path / "v", [f])


def test_kinetics_missing_csv(tmp_path):
    (tmp_path / "v").mkdir()
    with pytest.raises(ActivityError, match=r"train\.csv: no such file"):
        OfficialSplit.from_kinetics(tmp_path / "v", [tmp_path / "train.csv"])


# ---------------------------------------------------------------- the scripts


def test_ucf101_script(tmp_path, capsys):
    videos, splits = ucf101(tmp_path)
    out = tmp_path / "data" / "ucf101-split1"
    code = script("ucf101").main(["--videos", str(videos), "--splits", str(splits), "--split", "1", "--out", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("UCF101 split 1: train 12 clips, test 6 clips; 3 classes; 3 groups; every listed clip found; wrote ")
    train, test = read_csv_back(out / "train.csv"), read_csv_back(out / "test.csv")
    assert len(train) == 12 and len(test) == 6
    assert all(p.is_absolute() and p.is_file() for p, _, _ in train + test)
    assert {g for _, _, g in train} == {"08", "09"} and {g for _, _, g in test} == {"01"}
    assert load_dataset(out / "train.csv").classes == UCF_CLASSES


def test_hmdb51_script(tmp_path, capsys):
    videos, splits = hmdb51(tmp_path)
    out = tmp_path / "out"
    assert script("hmdb51").main(["--videos", str(videos), "--splits", str(splits), "--split", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("HMDB51 split 2: train 5 clips, test 5 clips; 5 classes; 8 groups;")
    assert {label for _, label, _ in read_csv_back(out / "test.csv")} == {"brush_hair", "sword", "sword_exercise", "fall_floor"}


def test_kinetics_script(tmp_path, capsys):
    videos = tmp_path / "k"
    for label, yid, start, end, split in K_ROWS:
        touch(videos / k_name(yid, start, end))
    ann = kinetics_csv(tmp_path / "train.csv", K_ROWS)
    assert script("kinetics").main(["--videos", str(videos), "--csv", str(ann), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("Kinetics: train 4 clips, val 2 clips; 3 classes; 5 groups; every listed clip found")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.csv", "val.csv"]


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_scripts_print_one_error_line(tmp_path, capsys, name):
    videos, splits = ucf101(tmp_path) if name == "ucf101" else hmdb51(tmp_path)
    code = script(name).main(["--videos", str(videos), "--splits", str(splits), "--split", "5", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [f"error: {name.upper()} has splits 1, 2 and 3; got --split 5"]
    assert not (tmp_path / "out").exists()


def test_split_script_writes_groups(tmp_path, capsys):
    """datasets/split.py (now through VideoDataset.to_csv) still writes a grouped, held-out pair."""
    for c in "ab":
        for g in range(5):
            touch(tmp_path / "clips" / c / f"{c}_{g}_0.mp4")
    assert script("split").main([str(tmp_path / "clips"), "--out", str(tmp_path / "out"), "--group-regex", r"_(\d)_"]) == 0
    train, test = read_csv_back(tmp_path / "out" / "train.csv"), read_csv_back(tmp_path / "out" / "test.csv")
    assert len(train) + len(test) == 10 and test
    assert not {g for *_, g in train} & {g for *_, g in test}
    assert all(p.is_absolute() for p, _, _ in train + test)


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_preparation_scripts_write_the_split_csvs(tmp_path, name, capsys):
    import importlib.util

    videos, splits = {"ucf101": ucf101, "hmdb51": hmdb51}[name](tmp_path)
    path = Path(__file__).resolve().parents[1] / "datasets" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--videos", str(videos), "--splits", str(splits), "--split", "1", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out' / 'train.csv'}" in out and (tmp_path / "out" / "test.csv").is_file()
    assert script.main(["--videos", str(tmp_path / "nowhere"), "--splits", str(splits), "--split", "1", "--out", str(tmp_path / "o2")]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nowhere'}")
