"""Evaluation reports as files people can read and plot (metrics.json, per_class.csv,
confusion_matrix.csv/.png, predictions.csv), and plain-text tables.

Every file is written through :mod:`activity.io`: it appears whole or not at all.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from activity.io import atomic_path, atomic_text, write_json


def write_report(
    out_dir: str | Path,
    result: dict[str, Any],
    classes: Sequence[str],
    paths: Sequence[Path],
    y_true: np.ndarray,
    probs: np.ndarray,
    skipped: dict[Path, str],
) -> dict[str, Any]:
    """Write ``metrics.json``, ``per_class.csv``, ``confusion_matrix.csv``/``.png`` and ``predictions.csv``.

    Returns the metrics dict as written to ``metrics.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = dict(result["metrics"])
    metrics["skipped"] = len(skipped)
    metrics["skipped_files"] = {str(p): r for p, r in skipped.items()}
    write_json(out / "metrics.json", metrics)

    report = result["report"]
    with atomic_text(out / "per_class.csv") as f:
        w = csv.writer(f)
        w.writerow(["class", "precision", "recall", "f1", "support", "accuracy"])
        for i, c in enumerate(classes):
            r = report[c]
            w.writerow([c, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1-score']:.4f}", int(r["support"]), f"{result['per_class_accuracy'][i]:.4f}"])

    cm = result["confusion"]
    with atomic_text(out / "confusion_matrix.csv") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for c, row in zip(classes, cm):
            w.writerow([c, *map(int, row)])
    plot_confusion(cm, classes, out / "confusion_matrix.png")

    with atomic_text(out / "predictions.csv") as f:
        w = csv.writer(f)
        w.writerow(["path", "true_label", "predicted_label", "probability", "correct"])
        for p, t, pr in zip(paths, y_true, probs):
            k = int(pr.argmax())
            w.writerow([str(p), classes[int(t)], classes[k], f"{pr[k]:.4f}", int(k == int(t))])
    return metrics


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """A row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90 if n > 6 else 45, ha="right" if n <= 6 else "center")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title("confusion matrix\n(colour: share of the true class)", fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain aligned text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
