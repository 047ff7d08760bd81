"""Metrics and report files for a labelled evaluation.

:func:`compute_metrics` turns true labels and predicted probabilities into
top-1, top-5, mean class accuracy and a confusion matrix; :func:`write_report`
writes them as files people can read and plot.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def topk_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the ``k`` most probable. ``probs`` is ``(N, C)``."""
    topk = np.argsort(-probs, axis=1)[:, :k]
    return float((topk == y_true[:, None]).any(axis=1).mean())


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Top-1, top-5 (more than 5 classes), mean class accuracy, per-class report and confusion matrix.

    Args:
        y_true: true class indices ``(N,)``.
        probs: predicted probabilities ``(N, C)``.
        classes: the ``C`` class names.
    """
    from sklearn.metrics import classification_report, confusion_matrix

    y_pred = probs.argmax(1)
    labels = list(range(len(classes)))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(1)
    present = support > 0
    per_class_acc = np.divide(np.diag(cm), support, out=np.zeros(len(classes)), where=present)
    metrics: dict[str, Any] = {
        "num_videos": int(len(y_true)),
        "top1": float((y_pred == y_true).mean()),
        "mean_class_accuracy": float(per_class_acc[present].mean()),
    }
    if len(classes) > 5:
        metrics["top5"] = topk_accuracy(y_true, probs, 5)
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(classes), output_dict=True, zero_division=0)
    return {"metrics": metrics, "report": report, "confusion": cm, "per_class_accuracy": per_class_acc}


def threshold_curves(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """ROC and precision-recall curves of a two-class evaluation, with each class in turn as the positive one.

    For choosing a decision threshold (fall or no fall, fight or not): the
    score is the positive class's probability. The area under the ROC curve is
    the same for either positive class; the precision-recall curve and its area
    (average precision: the recall-weighted mean of the precisions, which is how
    scikit-learn integrates that step curve) are not.

    Args:
        y_true: true class indices ``(N,)``.
        probs: predicted probabilities ``(N, 2)``.
        classes: the two class names.

    Returns:
        ``{positive class: {"roc_auc", "pr_auc", "roc": (fpr, tpr, thresholds), "pr": (precision, recall,
        thresholds)}}``, or None when there are not exactly two classes or the clips hold only one of them
        (no curve can be drawn).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    if len(classes) != 2 or len(set(np.asarray(y_true).tolist())) != 2:
        return None
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(classes):
        positive, score = (np.asarray(y_true) == k).astype(int), probs[:, k]
        fpr, tpr, roc_t = roc_curve(positive, score)
        precision, recall, pr_t = precision_recall_curve(positive, score)
        out[name] = {"roc_auc": float(roc_auc_score(positive, score)),
                     "pr_auc": float(average_precision_score(positive, score)),
                     "roc": (fpr, tpr, roc_t), "pr": (precision, recall, pr_t)}
    return out

