"""K-fold cross-validation of temporal models on cached features.

Each fold's test clips are never seen in training, nor used for early
stopping: early stopping uses a validation split of the fold's training part
(by group when groups are known). Several temporal models are compared on the
same folds in one run.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from activity.config import Config
from activity.data import kfold_splits, validation_split
from activity.errors import ActivityError
from activity.evaluate import compute_metrics
from activity.train import fit, predict_features


@dataclass
class CVResult:
    """Per-fold metrics of one temporal model."""

    name: str
    folds: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "folds": len(self.folds)}
        for key in ("top1", "mean_class_accuracy"):
            values = np.array([f[key] for f in self.folds])
            out[key] = float(values.mean())
            out[key + "_std"] = float(values.std())
        out["seconds"] = float(sum(f["seconds"] for f in self.folds))
        return out


def cross_validate(
    configs: dict[str, Config],
    features: torch.Tensor,
    targets: np.ndarray,
    classes: Sequence[str],
    groups: np.ndarray | None,
    *,
    folds: int = 5,
    seed: int = 0,
) -> list[CVResult]:
    """Train and test each named config on the same folds.

    Args:
        configs: name -> config (the ``model`` and ``train`` sections vary; all
            must share ``features``, since the features are given).
        features: cached features ``(N, L, D)``.
        targets: class indices ``(N,)``.
        classes: class names.
        groups: group ids ``(N,)`` or None.
        folds: number of folds.
        seed: fold shuffling seed.

    Returns:
        One :class:`CVResult` per config, in the order given.
    """
    splits = kfold_splits(targets, groups, folds, seed=seed)
    results = {name: CVResult(name) for name in configs}
    y_all = torch.from_numpy(targets)
    for k, (train_idx, test_idx) in enumerate(splits):
        inner_groups = groups[train_idx] if groups is not None else None
        for name, cfg in configs.items():
            cfg = copy.deepcopy(cfg)
            tr, va = _inner_split(targets[train_idx], inner_groups, cfg.train.val_fraction, seed + k)
            tr, va = train_idx[tr], train_idx[va]
            t0 = time.perf_counter()
            fitted = fit(cfg, features[tr], y_all[tr], len(classes), features[va], y_all[va], progress=False)
            probs, _ = predict_features(fitted.model, features[test_idx], cfg.features.num_frames)
            m = compute_metrics(targets[test_idx], probs.numpy(), classes)["metrics"]
            m.update(fold=k, seconds=time.perf_counter() - t0, best_epoch=fitted.best_epoch)
            results[name].folds.append(m)
    return list(results.values())


def _inner_split(targets: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A validation split of a fold's training part, for early stopping; none where it cannot be made."""
    try:
        split = validation_split(targets, groups, fraction, seed=seed) if fraction > 0 else None
    except ActivityError:
        split = None
    return split if split is not None else (np.arange(len(targets)), np.arange(0))
