"""The official splits of standard action-recognition datasets, read from their own files.

Each factory reads a dataset's split files exactly as they are published and
checks which of the listed clips are on disk (nothing is downloaded):

* :meth:`OfficialSplit.from_ucf101`: ``classInd.txt``, ``trainlist0N.txt``,
  ``testlist0N.txt``; clips in ``<videos>/<Class>/v_<Class>_g<group>_c<clip>.avi``.
* :meth:`OfficialSplit.from_hmdb51`: ``<class>_test_split<N>.txt`` with
  ``<file> <flag>`` lines (0 unused, 1 train, 2 test); clips in
  ``<videos>/<class>/<file>``.
* :meth:`OfficialSplit.from_kinetics`: CSVs with the header
  ``label,youtube_id,time_start,time_end,split``; clips named
  ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere below ``<videos>``.

The result holds one :class:`~activity.data.collection.VideoDataset` per side (train,
val, test) with labels and groups, and :meth:`OfficialSplit.write_csvs`
writes them as ``path,label,group`` CSVs, the form ``activity`` reads.
Clips a list names but the disk lacks are counted, not fatal, unless none at
all is found.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from activity.data.collection import VIDEO_EXTENSIONS, Sample, VideoDataset
from activity.errors import ActivityError

SIDES = ("train", "val", "test")
"""The sides of a split, in the order they are written and reported."""

UCF101_SPLITS = (1, 2, 3)
HMDB51_SPLITS = (1, 2, 3)

UCF101_GROUP = re.compile(r"_g(\d+)_")
"""The recording group in a UCF101 clip name (``v_ApplyEyeMakeup_g08_c01.avi`` -> ``08``).

Groups are numbered per class, but the official splits hold out the same group
numbers in every class, so the number alone is kept: clips sharing a number
stay on one side, as in the official splits."""

HMDB51_TAGS = re.compile(r"_[a-z]+_[a-z]+_np\d+_[a-z]+_[a-z]+_\d+$")
"""The meta tags that end every HMDB51 clip name: visible body part, camera
motion, number of people, viewpoint, quality, clip number
(``..._u_nm_np1_ba_goo_0``)."""

_KINETICS_SIDES = {"train": "train", "val": "val", "valid": "val", "validate": "val", "validation": "val", "test": "test"}


@dataclass
class OfficialSplit:
    """One official split of a standard dataset: its sides, and what its lists name that the disk lacks.

    Attributes:
        name: what was read, for messages (``"UCF101 split 1"``).
        sides: side (``"train"``, ``"val"``, ``"test"``) -> the listed clips
            found on disk, in list order, each with a label and a group; every
            side carries the dataset's full sorted class list.
        missing: side -> the listed clips not found on disk (their expected
            path, or for Kinetics their file name).
        unlabelled: side -> listed clips without a label (Kinetics test sets),
            left out of ``sides``.
    """

    name: str
    sides: dict[str, VideoDataset]
    missing: dict[str, list[str]] = field(default_factory=dict)
    unlabelled: dict[str, int] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """The dataset's sorted class names."""
        return next(iter(self.sides.values())).classes

    # ---------------------------------------------------------------- factories

    @classmethod
    def from_ucf101(cls, videos: str | Path, splits: str | Path, split: int) -> "OfficialSplit":
        """UCF101's split ``split`` (1, 2 or 3) from its official list files.

        Args:
            videos: the folder holding the class folders (``UCF-101/``).
            splits: the folder holding ``classInd.txt``, ``trainlist0N.txt`` and
                ``testlist0N.txt`` (``ucfTrainTestlist/``).
            split: which of the three splits.

        Returns:
            Sides ``train`` and ``test``; groups from ``_g(\\d+)_`` (see
            :data:`UCF101_GROUP`).

        Raises:
            ActivityError: an unknown split number, a missing or malformed list
                file (``file:line``), a class that is not in ``classInd.txt``,
                or no listed clip on disk.
        """
        if split not in UCF101_SPLITS:
            raise ActivityError(f"UCF101 has splits 1, 2 and 3; got --split {split}")
        videos, splits = _folder(videos, "--videos"), _folder(splits, "--splits")
        class_ind = splits / "classInd.txt"
        index: dict[int, str] = {}
        for n, fields in _lines(class_ind, "UCF101 split folder"):
            if len(fields) != 2 or not fields[0].isdigit():
                raise ActivityError(f"{class_ind}:{n}: expected '<index> <Class>', got {' '.join(fields)!r}")
            index[int(fields[0])] = fields[1]
        classes = sorted(index.values())
        listed: dict[str, list[Sample]] = {}
        for side, list_name in (("train", f"trainlist{split:02d}.txt"), ("test", f"testlist{split:02d}.txt")):
            list_file = splits / list_name
            samples = []
            for n, fields in _lines(list_file, "UCF101 split folder"):
                where = f"{list_file}:{n}"
                rel = fields[0]
                if len(fields) > 2 or rel.count("/") != 1 or not all(rel.split("/")):
                    raise ActivityError(f"{where}: expected '<Class>/<clip file>[ <class index>]', got {' '.join(fields)!r}")
                label, name = rel.split("/")
                if label not in classes:
                    raise ActivityError(f"{where}: class {label!r} is not in {class_ind}")
                if len(fields) == 2:
                    if not fields[1].isdigit() or int(fields[1]) not in index:
                        raise ActivityError(f"{where}: class index {fields[1]!r} is not in {class_ind}")
                    if index[int(fields[1])] != label:
                        raise ActivityError(f"{where}: class index {fields[1]} is {index[int(fields[1])]!r} in {class_ind}, "
                                            f"but the clip is in folder {label!r}")
                m = UCF101_GROUP.search(name)
                if m is None:
                    raise ActivityError(f"{where}: {name!r} has no UCF101 group (_gNN_) in its name")
                samples.append(Sample(videos / label / name, label, m.group(1)))
            listed[side] = samples
        return _on_disk(f"UCF101 split {split}", listed, classes, videos)

    @classmethod
    def from_hmdb51(cls, videos: str | Path, splits: str | Path, split: int) -> "OfficialSplit":
        """HMDB51's split ``split`` (1, 2 or 3) from its ``<class>_test_split<N>.txt`` files.

        Args:
            videos: the folder holding the class folders (``hmdb51_org/``).
            splits: the folder holding the split files
                (``testTrainMulti_7030_splits/``).
            split: which of the three splits.

        Returns:
            Sides ``train`` (flag 1) and ``test`` (flag 2); clips flagged 0 are
            left out. Groups are source videos, see :func:`hmdb51_group`.

        Raises:
            ActivityError: an unknown split number, no split files, a class
                whose file for this split is missing, a malformed line
                (``file:line``), or no listed clip on disk.
        """
        if split not in HMDB51_SPLITS:
            raise ActivityError(f"HMDB51 has splits 1, 2 and 3; got --split {split}")
        videos, splits = _folder(videos, "--videos"), _folder(splits, "--splits")
        files: dict[str, dict[int, Path]] = defaultdict(dict)
        for p in splits.iterdir():
            m = re.fullmatch(r"(.+)_test_split(\d+)\.txt", p.name)
            if m and p.is_file():
                files[m.group(1)][int(m.group(2))] = p
        if not files:
            raise ActivityError(f"{splits}: no HMDB51 split files (<class>_test_split<N>.txt)")
        classes = sorted(files)
        lacking = [c for c in classes if split not in files[c]]
        if lacking:
            raise ActivityError(f"{splits / f'{lacking[0]}_test_split{split}.txt'}: no such file "
                                f"({len(lacking)} of {len(classes)} classes lack a split-{split} file)")
        listed: dict[str, list[Sample]] = {"train": [], "test": []}
        for label in classes:
            split_file = files[label][split]
            for n, fields in _lines(split_file, "HMDB51 split folder"):
                if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                    raise ActivityError(f"{split_file}:{n}: expected '<clip file> <0|1|2>', got {' '.join(fields)!r}")
                if fields[1] != "0":
                    side = "train" if fields[1] == "1" else "test"
                    listed[side].append(Sample(videos / label / fields[0], label, hmdb51_group(fields[0], label)))
        return _on_disk(f"HMDB51 split {split}", listed, classes, videos)

    @classmethod
    def from_kinetics(cls, videos: str | Path, csv_files: list[str | Path]) -> "OfficialSplit":
        """A Kinetics-style annotation (Kinetics-400/600/700) mapped onto downloaded clip files.

        Every CSV has the header ``label,youtube_id,time_start,time_end,split``
        (any order; extra columns such as ``is_cc`` are ignored; ``label`` may
        be absent or empty in test files). A row's clip is the file named
        ``<youtube_id>_<time_start:06d>_<time_end:06d>`` with a video extension
        anywhere below ``videos``, so all the usual layouts work:
        ``<videos>/<split>/<label>/<clip>``, ``<videos>/<split>/<clip>`` and
        ``<videos>/<clip>``.

        Args:
            videos: the folder the clips were downloaded into.
            csv_files: one or more annotation CSVs (``train.csv``,
                ``validate.csv``, ``test.csv``).

        Returns:
            Sides named by the ``split`` column (``train``, ``validate`` -> ``val``,
            ``test``); group = ``youtube_id``. Rows without a label are counted
            in ``unlabelled`` and left out.

        Raises:
            ActivityError: a missing file or column, a malformed row
                (``file:line``), or no listed clip on disk.
        """
        videos = _folder(videos, "--videos")
        if not csv_files:
            raise ActivityError("no Kinetics annotation CSV given")
        rows: list[tuple[str, str | None, str, str]] = []  # side, label, youtube_id, clip name
        for csv_file in map(Path, csv_files):
            reader = csv.DictReader([line for _, line in _text_lines(csv_file, "Kinetics annotations")])
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
            lacking = {"youtube_id", "time_start", "time_end", "split"} - set(reader.fieldnames)
            if lacking:
                raise ActivityError(f"{csv_file}: missing column(s) {', '.join(sorted(lacking))}; "
                                    "expected label,youtube_id,time_start,time_end,split")
            for n, row in enumerate(reader, 2):
                where = f"{csv_file}:{n}"
                side = _KINETICS_SIDES.get((row["split"] or "").strip().lower())
                if side is None:
                    raise ActivityError(f"{where}: split {row['split']!r} is not train, validate or test")
                youtube_id = (row["youtube_id"] or "").strip()
                if not youtube_id:
                    raise ActivityError(f"{where}: empty youtube_id")
                start, end = (_whole_seconds(row[k], k, where) for k in ("time_start", "time_end"))
                label = (row.get("label") or "").strip() or None
                rows.append((side, label, youtube_id, f"{youtube_id}_{start:06d}_{end:06d}"))
        if not rows:
            raise ActivityError(f"{', '.join(map(str, csv_files))}: no annotation rows")
        on_disk = _index_clips(videos)
        classes = sorted({label for _, label, _, _ in rows if label is not None})
        listed = sorted({side for side, *_ in rows}, key=SIDES.index)
        found: dict[str, list[Sample]] = {side: [] for side in listed}
        missing: dict[str, list[str]] = {side: [] for side in listed}
        unlabelled: dict[str, int] = {side: 0 for side in listed}
        seen: set[tuple[str, str]] = set()
        for side, label, youtube_id, clip in rows:
            if label is None:
                unlabelled[side] += 1
            elif (side, clip) not in seen:  # a row repeated in the annotations counts once
                seen.add((side, clip))
                if clip in on_disk:
                    found[side].append(Sample(on_disk[clip], label, youtube_id))
                else:
                    missing[side].append(f"{clip}.mp4")
        if not any(found.values()):
            example = next((v[0] for v in missing.values() if v), None)
            why = (f"none of the {len(seen)} labelled clips is below {videos} (e.g. no file {example})" if example
                   else "no row has a label")
            raise ActivityError(f"Kinetics: {why}; is --videos the folder the clips were downloaded into?")
        return cls("Kinetics", {side: VideoDataset(found[side], list(classes), "Kinetics") for side in listed},
                   missing, unlabelled)

    # ---------------------------------------------------------------- outputs

    def summary(self) -> str:
        """One line: clips per side, classes, groups, missing and unlabelled clips."""
        groups = {s.group for ds in self.sides.values() for s in ds.samples}
        parts = [", ".join(f"{side} {len(ds)} clips" for side, ds in self.sides.items()),
                 f"{len(self.classes)} classes", f"{len(groups)} groups"]
        n_missing = sum(map(len, self.missing.values()))
        if n_missing:
            per_side = ", ".join(f"{side} {len(v)}" for side, v in self.missing.items() if v)
            example = next(v[0] for v in self.missing.values() if v)
            parts.append(f"{n_missing} listed clips not on disk ({per_side}; e.g. {example})")
        else:
            parts.append("every listed clip found")
        if any(self.unlabelled.values()):
            parts.append(", ".join(f"{n} {side} clips without a label left out" for side, n in self.unlabelled.items() if n))
        return f"{self.name}: " + "; ".join(parts)

    def write_csvs(self, out: str | Path) -> list[Path]:
        """Write ``out/<side>.csv`` (``path,label,group``, absolute paths) for every side.

        A side with no clip on disk is written with its header only, so that
        no stale file from an earlier run survives.

        Returns:
            The files written, in side order.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return [ds.to_csv(out / f"{side}.csv") for side, ds in self.sides.items()]


def prepare_split(build: Callable[[], OfficialSplit], out: str | Path) -> int:
    """What the ``datasets/*.py`` preparation scripts do: build the split, write its CSVs, say so.

    Returns:
        The exit code: 0, or 1 with a one-line ``error:`` on stderr when the split cannot be built.
    """
    try:
        split = build()
        written = split.write_csvs(out)
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{split.summary()}; wrote {', '.join(map(str, written))}")
    return 0


def numbered_split_main(argv: list[str] | None, doc: str | None, build: Callable[[Path, Path, int], OfficialSplit], *,
                        videos: str, splits: str) -> int:
    """The command of ``datasets/ucf101.py`` and ``datasets/hmdb51.py``: ``--videos``, ``--splits``,
    ``--split N`` and ``--out``, then :func:`prepare_split` of ``build(videos, splits, N)``.

    Args:
        argv: the arguments (None: the command line's).
        doc: the script's docstring, shown by ``--help``.
        build: ``OfficialSplit.from_ucf101`` or ``from_hmdb51``.
        videos: the usual name of the folder of class folders, for the help text.
        splits: the usual name of the folder of official split files, for the help text.
    """
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help=f"folder of class folders ({videos})")
    p.add_argument("--splits", type=Path, required=True, help=f"folder of the official split files ({splits})")
    p.add_argument("--split", type=int, required=True, help="official split: 1, 2 or 3")
    p.add_argument("--out", type=Path, required=True, help="folder for train.csv and test.csv")
    args = p.parse_args(argv)
    return prepare_split(lambda: build(args.videos, args.splits, args.split), args.out)


def hmdb51_group(file_name: str, label: str) -> str:
    """The source video of an HMDB51 clip, from its name: all clips cut from one movie or web video share it.

    HMDB51 names clips ``<source>_<class>_<body>_<camera>_<people>_<view>_<quality>_<n>.avi``
    (``April_09_brush_hair_u_nm_np1_ba_goo_0.avi``: source ``April_09``). The
    group is ``<source>`` in lower case, so clips of one source stay together
    across classes. Different spellings of one movie, or its numbered parts
    (``..._Turnen(Part4)``), stay different groups: nothing in the names links
    them reliably. A name that does not follow the pattern is its own group
    (its name without extension).

    Args:
        file_name: the clip's file name.
        label: its class, as named by the split file.
    """
    stem = Path(file_name).stem
    head = HMDB51_TAGS.sub("", stem)
    suffix = f"_{label}"
    if head != stem and head.endswith(suffix) and len(head) > len(suffix):
        return head[: -len(suffix)].lower()
    return stem


# ---------------------------------------------------------------- helpers


def _folder(path: str | Path, option: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ActivityError(f"{p}: no such folder ({option})")
    return p.resolve()


def _text_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of a text file, with clear errors for a missing or binary file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ActivityError(f"{path}: no such file (expected in the {what})") from None
    except UnicodeDecodeError:
        raise ActivityError(f"{path}: not a text file") from None
    except OSError as e:
        raise ActivityError(f"{path}: cannot read ({e.strerror})") from None
    return list(enumerate(text.splitlines(), 1))


def _lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """The non-blank lines of a list file, split on whitespace; an error when there are none."""
    lines = [(n, line.split()) for n, line in _text_lines(path, what) if line.strip()]
    if not lines:
        raise ActivityError(f"{path}: the file is empty")
    return lines


def _whole_seconds(text: str | None, column: str, where: str) -> int:
    try:
        value = float((text or "").strip())
    except ValueError:
        value = float("nan")
    if not value.is_integer() or value < 0:
        raise ActivityError(f"{where}: {column} must be whole seconds, got {text!r}")
    return int(value)


def _index_clips(videos: Path) -> dict[str, Path]:
    """Clip name (file name without extension) -> path, for every video file below ``videos``.

    A name found more than once maps to the first in sorted path order.
    """
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(videos, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                found.setdefault(stem, Path(folder) / name)
    return found


def _on_disk(name: str, listed: dict[str, list[Sample]], classes: list[str], videos: Path) -> OfficialSplit:
    """Keep the listed clips that exist; count the rest; fail when none exists."""
    sides, missing = {}, {}
    for side, samples in listed.items():
        exists = [s.path.is_file() for s in samples]
        sides[side] = VideoDataset([s for s, ok in zip(samples, exists) if ok], list(classes), name)
        missing[side] = [str(s.path) for s, ok in zip(samples, exists) if not ok]
    if not any(len(ds) for ds in sides.values()):
        total = sum(map(len, listed.values()))
        example = next((v[0] for v in missing.values() if v), "?")
        raise ActivityError(f"{name}: none of the {total} listed clips is under {videos} (e.g. {example}); "
                            "is --videos the folder that holds the class folders?")
    return OfficialSplit(name, sides, missing)
