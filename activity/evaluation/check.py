"""Checking a labelled collection before training on it.

:func:`check_dataset` reports clips that cannot be decoded, clips per class,
files with identical content (above all across classes: a label leak), and
recordings (groups) present on both sides of a train/validation split.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from activity.data.collection import VideoDataset
from activity.data.decoders import open_video, read_sampled
from activity.errors import VideoError


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes:
        clips_per_class: class -> number of clips (train and validation together).
        unreadable: path -> reason, for clips that cannot be decoded.
        duplicates: groups of paths with identical content.
        cross_class: the duplicate groups whose members carry different labels.
        split_duplicates: duplicate groups with members in both train and validation (other files of the same content).
        on_both_sides: clips named on both sides (the same file in training and validation).
        relabelled: those of them labelled differently on the two sides.
        leaked_groups: recording groups present in both train and validation.
        groups_known: whether every clip has a group.
        train_per_class / val_per_class: class -> clips on each side (``val_per_class`` empty without a
            validation collection).
        too_few_classes: fewer than 2 classes have training clips: nothing can be learnt.
        single_clip_classes: training classes with one clip (no validation split can hold one out).
        val_only_classes: validation classes without a training clip.
    """

    clips_per_class: dict[str, int]
    unreadable: dict[Path, str] = field(default_factory=dict)
    duplicates: list[list[Path]] = field(default_factory=list)
    cross_class: list[list[Path]] = field(default_factory=list)
    split_duplicates: list[list[Path]] = field(default_factory=list)
    on_both_sides: list[Path] = field(default_factory=list)
    relabelled: list[Path] = field(default_factory=list)
    leaked_groups: list[str] = field(default_factory=list)
    groups_known: bool = False
    train_per_class: dict[str, int] = field(default_factory=dict)
    val_per_class: dict[str, int] = field(default_factory=dict)
    too_few_classes: bool = False
    single_clip_classes: list[str] = field(default_factory=list)
    val_only_classes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        """Count of findings that make results untrustworthy."""
        return (len(self.unreadable) + len(self.cross_class) + len(self.split_duplicates) + len(self.on_both_sides)
                + len(self.relabelled)
                + len(self.leaked_groups)
                + int(self.too_few_classes) + len(self.single_clip_classes) + len(self.val_only_classes))


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def probe(path: Path, decoder: str = "auto") -> str | None:
    """Decode three frames spread over the clip; the reason it fails, or None."""
    try:
        with open_video(path, decoder) as reader:  # type: ignore[arg-type]
            read_sampled(reader, 3)
        return None
    except VideoError as e:
        return e.reason
    except Exception as e:  # a decoder bug is still a finding, not a crash
        return f"cannot decode ({type(e).__name__})"


def check_dataset(
    train: VideoDataset,
    val: VideoDataset | None = None,
    *,
    decoder: str = "auto",
    progress: bool = False,
) -> CheckReport:
    """Check a collection (and optionally its validation collection).

    Args:
        train: the collection (or the training side of a split).
        val: the validation side, to look for clips and recordings on both sides.
        decoder: video decoder used to probe the clips.
        progress: show a progress bar.
    """
    from activity.progress import progress_bar

    report = CheckReport({})
    train_label = {s.path.resolve(): s.label for s in train.samples}
    samples = [(s, "train") for s in train.samples]
    for s in val.samples if val else []:
        where = s.path.resolve()
        if where not in train_label:
            samples.append((s, "val"))
            continue
        report.on_both_sides.append(s.path)  # read once, on the training side
        if s.label != train_label[where]:
            report.relabelled.append(s.path)
    by_digest: dict[str, list[tuple[Path, str | None, str]]] = defaultdict(list)
    for s, side in progress_bar(iterable=samples, total=len(samples), desc="check", unit="video", enabled=progress):
        reason = probe(s.path, decoder)
        if reason is not None:
            report.unreadable[s.path] = reason
        if s.path.is_file():
            try:
                by_digest[file_digest(s.path)].append((s.path, s.label, side))
            except OSError as e:
                report.unreadable.setdefault(s.path, f"cannot read ({e.strerror})")
    _count_sides(report, train, val)
    for members in by_digest.values():
        if len(members) < 2:
            continue
        paths = [p for p, _, _ in members]
        report.duplicates.append(paths)
        if len({label for _, label, _ in members}) > 1:
            report.cross_class.append(paths)
        if len({side for _, _, side in members}) > 1:
            report.split_duplicates.append(paths)
    train_groups, val_groups = train.groups(), val.groups() if val else None
    report.groups_known = train_groups is not None and (val is None or val_groups is not None)
    if train_groups is not None and val_groups is not None:
        report.leaked_groups = sorted(set(train_groups.tolist()) & set(val_groups.tolist()))
    return report


def _count_sides(report: CheckReport, train: VideoDataset, val: VideoDataset | None) -> None:
    """Clips per class on each side and together, and the class findings that follow from them."""
    def count(ds: VideoDataset | None) -> Counter[str]:
        return Counter(s.label or "?" for s in (ds.samples if ds is not None else []))

    sides = count(train), count(val)
    report.train_per_class, report.val_per_class = (dict(sorted(c.items())) for c in sides)
    report.clips_per_class = dict(sorted((sides[0] + sides[1]).items()))
    report.too_few_classes = len(report.train_per_class) < 2
    report.single_clip_classes = [c for c, n in report.train_per_class.items() if n == 1]
    report.val_only_classes = [c for c in report.val_per_class if c not in report.train_per_class]


def _class_table(report: CheckReport) -> list[str]:
    if not report.val_per_class:
        width = max((len(c) for c in report.clips_per_class), default=5)
        return ["clips per class:", *(f"  {c.ljust(width)}  {n}" for c, n in report.clips_per_class.items())]
    names = sorted(set(report.train_per_class) | set(report.val_per_class))
    width = max(len(c) for c in [*names, "class"])
    lines = ["clips per class:", f"  {'class'.ljust(width)}  train  validation"]
    return lines + [f"  {c.ljust(width)}  {report.train_per_class.get(c, 0):5d}  {report.val_per_class.get(c, 0):10d}"
                    for c in names]


def _class_findings(report: CheckReport) -> list[str]:
    lines = []
    if report.too_few_classes:
        lines.append(f"too few classes: {len(report.train_per_class)} with training clips; a classifier needs at least 2")
    if report.single_clip_classes:
        lines.append(f"classes with a single training clip: {len(report.single_clip_classes)} "
                     f"({', '.join(report.single_clip_classes[:20])}); validation cannot hold one out")
    if report.val_only_classes:
        lines.append(f"validation classes without training clips: {len(report.val_only_classes)} "
                     f"({', '.join(report.val_only_classes[:20])})")
    return lines


def format_report(report: CheckReport) -> str:
    """A readable multi-line summary."""
    lines = _class_table(report) + _class_findings(report)
    lines.append(f"unreadable clips: {len(report.unreadable)}")
    lines += [f"  {p}: {r}" for p, r in report.unreadable.items()]
    lines.append(f"identical files: {len(report.duplicates)} group(s), {len(report.cross_class)} across classes (label leak)")
    for group in report.duplicates:
        tag = " [different labels]" if group in report.cross_class else ""
        lines.append(f"  {' = '.join(map(str, group))}{tag}")
    if report.on_both_sides:
        n = len(report.on_both_sides)
        lines.append(f"{n} clip{'s are' if n != 1 else ' is'} on both sides (the same file in training and validation)")
        lines += [f"  {p}" for p in report.on_both_sides[:20]] + ([f"  ... and {n - 20} more"] if n > 20 else [])
    if report.relabelled:
        lines.append(f"clips labelled differently on the two sides: {len(report.relabelled)} "
                     f"({', '.join(map(str, report.relabelled[:20]))})")
    if report.split_duplicates:
        lines.append(f"identical files on both sides of the split: {len(report.split_duplicates)}")
    if report.leaked_groups:
        lines.append(f"recordings on both sides of the split: {len(report.leaked_groups)} ({', '.join(report.leaked_groups[:20])})")
    elif not report.groups_known:
        lines.append("recording groups unknown: pass --group-regex (or a CSV group column) to check for leaks between splits")
    lines.append(f"problems: {report.problems}")
    return "\n".join(lines)
