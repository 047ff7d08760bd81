"""Labelled video collections and how to split them.

A collection is read from one of:

* a folder per class: ``root/<class>/<clip>`` (classes sorted by name);
* a list file of ``path label`` lines;
* a CSV file with a header ``path,label[,group]``.

Relative paths in list and CSV files resolve against the file's own folder.
Groups (the recording a clip was cut from) come from the CSV's ``group``
column or from a regular expression over file names (``--group-regex``), and
keep clips of one recording on one side of every split. The official splits of
UCF101, HMDB51 and Kinetics are read by :mod:`activity.data.official`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from activity.errors import ActivityError
from activity.io import atomic_write

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".ogv"}
)


@dataclass(frozen=True)
class Sample:
    """One labelled clip."""

    path: Path
    label: str | None = None
    group: str | None = None


@dataclass
class VideoDataset:
    """An ordered list of samples and the sorted class names.

    Attributes:
        samples: the clips, in a stable order.
        classes: sorted class names; ``samples[i].label`` is one of them.
        source: where the collection was read from, for messages.
    """

    samples: list[Sample]
    classes: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = sorted({s.label for s in self.samples if s.label is not None})

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    def targets(self, classes: list[str] | None = None) -> np.ndarray:
        """Class indices ``(N,)`` into ``classes`` (default: this dataset's)."""
        index = {c: i for i, c in enumerate(classes or self.classes)}
        return np.array([index[s.label] for s in self.samples], dtype=np.int64)

    def groups(self) -> np.ndarray | None:
        """Group ids ``(N,)`` where every sample has one, else None."""
        if self.samples and all(s.group is not None for s in self.samples):
            return np.array([s.group for s in self.samples])
        return None

    def require_classes(self, minimum: int = 2) -> "VideoDataset":
        """This dataset, if its clips carry at least ``minimum`` classes (what a classifier needs).

        Raises:
            ActivityError: fewer classes, named with their clip counts.
        """
        counts = {c: sum(s.label == c for s in self.samples) for c in self.classes}
        if len([c for c, n in counts.items() if n]) < minimum:
            found = ", ".join(f"{c!r} ({n} clips)" for c, n in counts.items() if n) or "none"
            raise ActivityError(f"{self.source or 'the dataset'}: clips of at least {minimum} classes are needed to train "
                                f"a classifier; found {found}")
        return self

    def subset(self, indices: np.ndarray | list[int]) -> "VideoDataset":
        return VideoDataset([self.samples[i] for i in indices], list(self.classes), self.source)

    def to_csv(self, path: str | Path) -> Path:
        """Write the samples as a CSV ``path,label,group`` (absolute paths) that :meth:`from_csv` reads back.

        The file is replaced atomically; a sample without a group gets an empty
        ``group`` cell.

        Returns:
            ``path``.
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "label", "group"])
        w.writerows([s.path.resolve(), s.label, s.group or ""] for s in self.samples)
        with atomic_write(path) as f:
            f.write(buf.getvalue().encode("utf-8"))
        return Path(path)

    # ---------------------------------------------------------------- readers

    @classmethod
    def from_directory(cls, root: str | Path) -> "VideoDataset":
        """A folder per class: ``root/<class>/<clip>``; class names sorted."""
        root = Path(root)
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not class_dirs:
            raise ActivityError(f"{root}: no class folders (expected {root}/<class>/<clip>)")
        samples = []
        for d in class_dirs:
            clips = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not clips:
                raise ActivityError(f"{d}: class {d.name!r} has no video files")
            samples += [Sample(p, d.name) for p in clips]
        return cls(samples, [d.name for d in class_dirs], str(root))

    @classmethod
    def from_list(cls, list_file: str | Path) -> "VideoDataset":
        """``path label`` per line (the path may contain spaces; the label is the last field)."""
        list_file = Path(list_file)
        samples = []
        for n, line in enumerate(_read_text(list_file).splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ActivityError(f"{list_file}:{n}: expected 'path label', got {line!r}")
            samples.append(Sample(_resolve(list_file, parts[0]), parts[1]))
        return cls(samples, source=str(list_file))

    @classmethod
    def from_csv(cls, csv_file: str | Path) -> "VideoDataset":
        """A CSV with a header ``path,label[,group]``."""
        csv_file = Path(csv_file)
        reader = csv.DictReader(_read_text(csv_file).splitlines())
        if reader.fieldnames:
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
        rows = list(reader)
        if not rows:
            return cls([], source=str(csv_file))
        missing = {"path", "label"} - set(rows[0])
        if missing:
            raise ActivityError(f"{csv_file}: missing column(s) {', '.join(sorted(missing))}; expected path,label[,group]")
        samples = []
        for n, row in enumerate(rows, 2):
            if not row["path"] or not row["label"]:
                raise ActivityError(f"{csv_file}:{n}: empty path or label")
            group = (row.get("group") or "").strip() or None
            samples.append(Sample(_resolve(csv_file, row["path"].strip()), row["label"].strip(), group))
        return cls(samples, source=str(csv_file))

    def with_group_regex(self, pattern: str) -> "VideoDataset":
        """Set each sample's group from ``pattern`` searched in its file name (first capture group if any)."""
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ActivityError(f"--group-regex {pattern!r} is not a valid regular expression ({e})") from None
        samples = []
        for s in self.samples:
            m = rx.search(s.path.name)
            if m is None:
                raise ActivityError(f"{s.path}: --group-regex {pattern!r} does not match this file name")
            samples.append(Sample(s.path, s.label, m.group(1) if rx.groups else m.group(0)))
        return VideoDataset(samples, list(self.classes), self.source)


def load_dataset(source: str | Path, *, group_regex: str | None = None, require_labels: bool = True) -> VideoDataset:
    """Read a collection from a class folder, a list file or a CSV, chosen by what ``source`` is.

    Where no labels are required (``activity extract``), a single video file or a
    folder of videos without class folders also does.
    """
    p = Path(source)
    if not p.exists():
        raise ActivityError(f"{p}: no such file or directory")
    if not require_labels and p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
        ds = VideoDataset([Sample(p)], source=str(p))
    elif not require_labels and p.is_dir() and not any(d.is_dir() and not d.name.startswith(".") for d in p.iterdir()):
        ds = VideoDataset([Sample(f) for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS],
                          source=str(p))
    elif p.is_dir():
        ds = VideoDataset.from_directory(p)
    elif p.suffix.lower() == ".csv":
        ds = VideoDataset.from_csv(p)
    else:
        ds = VideoDataset.from_list(p)
    if not ds.samples:
        raise ActivityError(f"{p}: the dataset is empty")
    if require_labels and not ds.classes:
        raise ActivityError(f"{p}: no labels found")
    if group_regex:
        ds = ds.with_group_regex(group_regex)
    return ds










def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # also reads Excel's "CSV UTF-8" (with a byte-order mark)
    except UnicodeDecodeError:
        raise ActivityError(f"{path}: not a text list file (expected 'path label' lines or a CSV)") from None
    except OSError as e:
        raise ActivityError(f"{path}: cannot read ({e.strerror})") from None


def _resolve(list_file: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else list_file.parent / p
