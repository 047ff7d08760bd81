"""Result files: batch predictions and timelines written as CSV or JSON, one writer per format.

The formats are named once, in :data:`~activity.registry.RESULT_FORMATS` (predictions) and
:data:`~activity.registry.TIMELINE_FORMATS` (timelines), by the same names, so that a results
format chosen for a batch (``csv`` or ``json``) also holds for its timelines::

    RESULT_FORMATS.get("json")(preds, skipped, out_dir)       # out_dir/predictions.json
    TIMELINE_FORMATS.get("json")(timeline, out_dir, "clip")   # [out_dir/clip.json]

Callers go through :func:`~activity.inference.recognizer.write_predictions` and
:meth:`~activity.inference.timeline.Timeline.write`, which create ``out_dir`` first. Each file
appears whole or not at all (:mod:`activity.io`). Nothing here imports torch, so the names
list without it (the command line's choices).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from activity.io import atomic_text, write_json
from activity.registry import RESULT_FORMATS, TIMELINE_FORMATS

if TYPE_CHECKING:
    from activity.inference.recognizer import Prediction
    from activity.inference.timeline import Timeline


def _top_k_columns(k: int) -> list[str]:
    """``label_1, probability_1, ..., label_k, probability_k``: the columns of a row's top-k."""
    return [c for i in range(1, k + 1) for c in (f"label_{i}", f"probability_{i}")]


def _top_k_cells(labels: Sequence[str], probabilities: Sequence[float]) -> list[str]:
    """A row's top-k, in :func:`_top_k_columns`' order."""
    return [c for label, p in zip(labels, probabilities) for c in (label, f"{p:.4f}")]


# ---------------------------------------------------------------- predictions: (preds, skipped, out_dir) -> Path


@RESULT_FORMATS.register("csv")
def write_predictions_csv(preds: Sequence[Prediction], failed: dict[Path, str], out_dir: Path) -> Path:
    """``predictions.csv`` (a row per video: path, then each top-k label and probability) and
    ``skipped.csv`` (path, reason); returns the first."""
    k = max((len(p.labels) for p in preds), default=0)
    path = out_dir / "predictions.csv"
    with atomic_text(path) as f:
        w = csv.writer(f)
        w.writerow(["path", *_top_k_columns(k)])
        for p in preds:
            w.writerow([str(p.path), *_top_k_cells(p.labels, p.probabilities)])
    with atomic_text(out_dir / "skipped.csv") as f:
        w = csv.writer(f)
        w.writerow(["path", "reason"])
        w.writerows([str(p), r] for p, r in failed.items())
    return path


@RESULT_FORMATS.register("json")
def write_predictions_json(preds: Sequence[Prediction], failed: dict[Path, str], out_dir: Path) -> Path:
    """``predictions.json``: ``{"predictions": [Prediction.as_dict(), ...], "skipped": {path: reason}}``."""
    return write_json(out_dir / "predictions.json",
                      {"predictions": [p.as_dict() for p in preds], "skipped": {str(p): r for p, r in failed.items()}})


# ---------------------------------------------------------------- timelines: (timeline, out_dir, stem) -> [Path]


@TIMELINE_FORMATS.register("csv")
def write_timeline_csv(timeline: Timeline, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.windows.csv`` (start, end, each top-k label and probability) and ``<stem>.segments.csv``
    (start, end, label, probability), in that order."""
    windows, segments = out_dir / f"{stem}.windows.csv", out_dir / f"{stem}.segments.csv"
    k = max((len(w.labels) for w in timeline.windows), default=0)
    with atomic_text(windows) as f:
        w = csv.writer(f)
        w.writerow(["start", "end", *_top_k_columns(k)])
        for win in timeline.windows:
            w.writerow([f"{win.start:.3f}", f"{win.end:.3f}", *_top_k_cells(win.labels, win.probabilities)])
    with atomic_text(segments) as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "label", "probability"])
        for s in timeline.segments:
            w.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.label, f"{s.probability:.4f}"])
    return [windows, segments]


@TIMELINE_FORMATS.register("json")
def write_timeline_json(timeline: Timeline, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.json``: :meth:`Timeline.as_dict() <activity.inference.timeline.Timeline.as_dict>` (path, duration,
    window, stride, then the windows and segments, times in seconds)."""
    return [write_json(out_dir / f"{stem}.json", timeline.as_dict())]
