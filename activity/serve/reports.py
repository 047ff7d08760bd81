"""An evaluation's report folder (written by ``activity evaluate``) as the viewer reads it: the metrics, the
per-class table, the confusion matrix, and the clips behind each of its cells."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activity import workflows

#: The files ``activity evaluate`` writes that the viewer needs.
REPORT_FILES = ("metrics.json", "per_class.csv", "confusion_matrix.csv", "predictions.csv")


@dataclass
class EvaluationReport:
    """One report folder, read once.

    Attributes:
        folder: where it was read from.
        metrics: ``metrics.json``.
        classes: the classes, in the confusion matrix's order.
        per_class: ``per_class.csv``'s rows.
        confusion: counts ``[true][predicted]``.
        rows: ``predictions.csv``'s rows (path, true_label, predicted_label, probability, ...).
    """

    folder: Path
    metrics: dict[str, Any]
    classes: list[str]
    per_class: list[dict[str, str]]
    confusion: list[list[int]]
    rows: list[dict[str, str]]

    @classmethod
    def read(cls, folder: str | Path) -> EvaluationReport:
        """Read a report folder.

        Raises:
            ActivityError: the folder or one of :data:`REPORT_FILES` is missing or unreadable.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise workflows.ActivityError(f"{folder}: no such report folder (write one with activity evaluate)")
        missing = [f for f in REPORT_FILES if not (folder / f).is_file()]
        if missing:
            raise workflows.ActivityError(f"{folder}: not an evaluation report folder (no {', '.join(missing)}; "
                                          "write one with activity evaluate)")
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
            with open(folder / "per_class.csv", newline="", encoding="utf-8") as f:
                per_class = list(csv.DictReader(f))
            with open(folder / "confusion_matrix.csv", newline="", encoding="utf-8") as f:
                table = list(csv.reader(f))
            with open(folder / "predictions.csv", newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            classes = table[0][1:]
            confusion = [[int(x) for x in r[1:]] for r in table[1:]]
        except (OSError, ValueError, IndexError, csv.Error) as e:
            raise workflows.ActivityError(f"{folder}: cannot read the report ({workflows.describe(e)})") from None
        return cls(folder, metrics, classes, per_class, confusion, rows)

    def summary(self) -> dict[str, Any]:
        """What the viewer draws: metrics, classes, the per-class table and the confusion matrix."""
        return {"folder": str(self.folder), "metrics": self.metrics, "classes": self.classes,
                "per_class": self.per_class, "confusion": self.confusion}

    def clips(self, true: str | None = None, predicted: str | None = None) -> list[dict[str, Any]]:
        """The clips of one confusion cell (or all): their row, file name, true and predicted label and probability."""
        return [{"row": i, "name": Path(r["path"]).name, "true": r["true_label"], "predicted": r["predicted_label"],
                 "probability": float(r["probability"])}
                for i, r in enumerate(self.rows)
                if (true is None or r["true_label"] == true) and (predicted is None or r["predicted_label"] == predicted)]

    def video(self, row: int) -> Path:
        """The video of the report's row ``row``: only files the report names are ever served.

        Raises:
            LookupError: the row does not exist or its file is gone (the server answers 404).
        """
        if not 0 <= row < len(self.rows):
            raise LookupError(f"the report has no clip {row} (it lists {len(self.rows)})")
        path = Path(self.rows[row]["path"])
        if not path.is_absolute():  # as evaluate was given it: from where it ran, else beside the report
            path = path if path.is_file() else self.folder.parent / path
        if not path.is_file():
            raise LookupError(f"{self.rows[row]['path']}: the video is no longer there")
        return path
