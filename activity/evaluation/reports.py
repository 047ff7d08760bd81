"""Evaluation reports as files people can read and plot (metrics.json, per_class.csv,
confusion_matrix.csv/.png, predictions.csv; ROC and precision-recall curves for two classes), and
plain-text tables.

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
    """Write ``metrics.json``, ``per_class.csv``, ``confusion_matrix.csv``/``.png`` and ``predictions.csv``
    (with every class's probability), and for two classes ``roc_curve.csv``/``.png`` and ``pr_curve.csv``/``.png``
    (:func:`~activity.evaluation.metrics.threshold_curves`), whose areas go to ``metrics.json`` as
    ``roc_auc`` and ``pr_auc`` (by positive class).

    Returns the metrics dict as written to ``metrics.json``.
    """
    from activity.evaluation.metrics import threshold_curves

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = dict(result["metrics"])
    curves = threshold_curves(y_true, probs, classes)
    if curves is not None:
        metrics["roc_auc"] = next(iter(curves.values()))["roc_auc"]  # the same with either class as the positive one
        metrics["pr_auc"] = {c: v["pr_auc"] for c, v in curves.items()}
        write_threshold_curves(curves, out)
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
        w.writerow(["path", "true_label", "predicted_label", "probability", "correct", *(f"prob_{c}" for c in classes)])
        for p, t, pr in zip(paths, y_true, probs):
            k = int(pr.argmax())
            w.writerow([str(p), classes[int(t)], classes[k], f"{pr[k]:.4f}", int(k == int(t)), *(f"{x:.6f}" for x in pr)])
    return metrics


#: file stem -> (the curve's key in threshold_curves, CSV columns of its arrays, x and y axis labels)
_CURVES = {
    "roc_curve": ("roc", ["false_positive_rate", "true_positive_rate"], "false positive rate", "true positive rate"),
    "pr_curve": ("pr", ["precision", "recall"], "recall", "precision"),
}


def write_threshold_curves(curves: dict[str, dict[str, Any]], out: Path) -> None:
    """``roc_curve.csv``/``.png`` and ``pr_curve.csv``/``.png`` of :func:`~activity.evaluation.metrics.threshold_curves`.

    Each CSV has a row per threshold and positive class (``positive_class, threshold, ...``; the
    precision-recall curve's last point, recall 0, has no threshold); each PNG a line per positive
    class with its area in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for stem, (key, columns, xlabel, ylabel) in _CURVES.items():
        area = "roc_auc" if key == "roc" else "pr_auc"
        with atomic_text(out / f"{stem}.csv") as f:
            w = csv.writer(f)
            w.writerow(["positive_class", "threshold", *columns])
            for name, c in curves.items():
                a, b, thresholds = c[key]
                for i in range(len(a)):
                    w.writerow([name, f"{thresholds[i]:.6f}" if i < len(thresholds) else "", f"{a[i]:.6f}", f"{b[i]:.6f}"])
        fig, ax = plt.subplots(figsize=(4.8, 4.4))
        for name, c in curves.items():
            a, b, _ = c[key]
            x, y = (a, b) if key == "roc" else (b, a)
            ax.plot(x, y, drawstyle="steps-post" if key == "pr" else "default", label=f"{name} positive ({area.replace('_', ' ')} {c[area]:.3f})")
        if key == "roc":
            ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", label="chance")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel,
               title="ROC curve" if key == "roc" else "precision-recall curve")
        ax.legend(loc="lower right" if key == "roc" else "lower left", fontsize=8)
        fig.tight_layout()
        try:
            with atomic_path(out / f"{stem}.png") as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        finally:
            plt.close(fig)


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
