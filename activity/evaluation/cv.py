"""K-fold cross-validation of temporal models and baselines on cached features.

Each fold's test clips are never seen in training, nor used for early
stopping: early stopping uses a validation split of the fold's training part
(by group when groups are known). Several models are compared on the same
folds in one run: trained temporal models (a :class:`~activity.config.Config`
each) and the logistic-regression baselines of :mod:`activity.temporal.baselines`.

:func:`cross_validate` works on features in memory; :func:`activity.workflows.cv` reads a
collection, extracts (or reads cached) features and runs it, which is what
``activity cv`` and ``scripts/benchmark_accuracy.py`` do.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from activity.config import Config
from activity.data.splits import kfold_splits, validation_split
from activity.errors import ActivityError
from activity.evaluation.metrics import compute_metrics
from activity.evaluation.reports import format_table
from activity.registry import BASELINES, TEMPORAL_MODELS
from activity.temporal.baselines import LogisticBaseline
from activity.temporal.models import Fusion
from activity.temporal.train import fit, predict_features, select_views

#: What :func:`cross_validate` compares: a config to train, or a baseline to fit.
Model = Union[Config, LogisticBaseline]

def model_names() -> list[str]:
    """The models ``activity cv`` compares by default: the temporal models, then the baselines (``--temporal``
    also takes ``lstm:<member>``, one member of the fusion alone)."""
    return list(dict.fromkeys(TEMPORAL_MODELS.names() + BASELINES.names()))  # the baselines are temporal models too


@dataclass
class CVResult:
    """Per-fold metrics of one model, and the predictions of every fold's test clips."""

    name: str
    folds: list[dict[str, Any]] = field(default_factory=list)
    tested: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)  # (true (n,), probs (n, C))

    def add(self, metrics: dict[str, Any], y_true: np.ndarray, probs: np.ndarray) -> None:
        """One fold's metrics and its test clips' true classes and probabilities."""
        self.folds.append(metrics)
        self.tested.append((np.asarray(y_true), np.asarray(probs)))

    def summary(self) -> dict[str, Any]:
        """Mean and standard deviation over folds of top-1 and mean class accuracy, the same pooled over the
        test clips of all folds (``pooled_*``: one number over every clip, where folds are small or test
        different classes, as arid6's groups do), and the total fitting time."""
        out: dict[str, Any] = {"name": self.name, "folds": len(self.folds)}
        for key in ("top1", "mean_class_accuracy"):
            values = np.array([f[key] for f in self.folds])
            out[key] = float(values.mean())
            out[key + "_std"] = float(values.std())
        if self.tested:
            y, probs = np.concatenate([t for t, _ in self.tested]), np.concatenate([p for _, p in self.tested])
            pooled = compute_metrics(y, probs, [str(c) for c in range(probs.shape[1])])["metrics"]
            out["pooled_top1"], out["pooled_mean_class_accuracy"] = pooled["top1"], pooled["mean_class_accuracy"]
        out["seconds"] = float(sum(f["seconds"] for f in self.folds))
        return out


def cross_validate(
    models: Mapping[str, Model],
    features: torch.Tensor,
    targets: np.ndarray,
    classes: Sequence[str],
    groups: np.ndarray | None,
    *,
    folds: int = 5,
    seed: int = 0,
    num_frames: int | None = None,
    threads: int | None = 1,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    streams: bool = False,
    progress: bool = False,
) -> list[CVResult]:
    """Train and test each named model on the same folds.

    Args:
        models: name -> a config to train (its ``model`` and ``train`` sections
            vary; all must share ``features``, since the features are given) or
            a :class:`~activity.temporal.baselines.LogisticBaseline` to fit.
        features: cached features ``(N, L, D)``.
        targets: class indices ``(N,)``.
        classes: class names.
        groups: group ids ``(N,)`` or None.
        folds: number of folds.
        seed: fold shuffling seed (also seeds each fold's validation split).
        num_frames: frames per clip that baselines see (the centre views);
            default: the first config's ``features.num_frames``, else ``L``.
        threads: CPU threads for PyTorch and BLAS while fitting (restored
            afterwards); None leaves them alone. These models are small: one
            thread is usually fastest, and several contend with anything else
            running (4x slower measured on a busy 2-core machine).
        splits: ``(train, test)`` index pairs to use instead of
            :func:`~activity.data.splits.kfold_splits` ``(targets, groups, folds, seed)``.
        progress: a progress bar over folds and models (``cv: fold 2/5, lstm``).
        streams: also score each member of a fusion on its own, as ``<name>:<member>``
            (``lstm:appearance``, ``lstm:motion``, ``lstm:appearance_lr``: the fusion's own
            members, no extra training).

    Returns:
        One :class:`CVResult` per model, in the order given.
    """
    if splits is None:
        splits = kfold_splits(targets, groups, folds, seed=seed)
    if threads is None:
        return _cross_validate(models, features, targets, classes, groups, splits, seed, num_frames, streams, progress)
    from threadpoolctl import (
        threadpool_limits,  # limits the BLAS libraries loaded so far: sklearn's are (activity.temporal.baselines)
    )

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return _cross_validate(models, features, targets, classes, groups, splits, seed, num_frames, streams, progress)
    finally:
        torch.set_num_threads(before)


def _cross_validate(models: Mapping[str, Model], features: torch.Tensor, targets: np.ndarray, classes: Sequence[str],
                    groups: np.ndarray | None, splits: Sequence[tuple[np.ndarray, np.ndarray]], seed: int,
                    num_frames: int | None, streams: bool, progress: bool = False) -> list[CVResult]:
    from activity.progress import progress_bar

    if num_frames is None:
        num_frames = next((m.features.num_frames for m in models.values() if isinstance(m, Config)), features.shape[1])
    results = {name: CVResult(name) for name in models}
    y_all = torch.from_numpy(targets)
    with progress_bar(total=len(splits) * len(models), desc="cv", unit="model", enabled=progress) as bar:
        for k, (train_idx, test_idx) in enumerate(splits):
            inner_groups = groups[train_idx] if groups is not None else None
            for name, model in models.items():
                bar.set_description(f"cv: fold {k + 1}/{len(splits)}, {name}")
                t0 = time.perf_counter()
                extra: dict[str, Any] = {}
                if isinstance(model, Config):
                    cfg = copy.deepcopy(model)
                    tr, va = _inner_split(targets[train_idx], inner_groups, cfg.train.val_fraction, seed + k)
                    tr, va = train_idx[tr], train_idx[va]
                    fitted = fit(cfg, features[tr], y_all[tr], len(classes), features[va], y_all[va], progress=False,
                                 groups=None if groups is None else groups[tr],
                                 val_groups=None if groups is None else groups[va])
                    probs = predict_features(fitted.model, features[test_idx], cfg.features.num_frames)[0].numpy()
                    extra["best_epoch"] = fitted.best_epoch
                    if fitted.selection:
                        extra["selection"] = fitted.selection
                    if streams and isinstance(fitted.model, Fusion) and len(fitted.model.names) > 1:
                        _score_streams(results, name, fitted.model, features[test_idx], targets[test_idx], classes,
                                       cfg.features.num_frames, k, compared=list(models))
                else:
                    baseline = copy.deepcopy(model)
                    baseline.fit(select_views(features[train_idx], num_frames, random=False), targets[train_idx], inner_groups)
                    probs = baseline.predict_proba(select_views(features[test_idx], num_frames, random=False), len(classes))
                    extra["C"] = baseline.c_
                m = compute_metrics(targets[test_idx], probs, classes)["metrics"]
                m.update(fold=k, seconds=time.perf_counter() - t0, **extra)
                results[name].add(m, targets[test_idx], probs)
                bar.update(1)
    order = {name: i for i, name in enumerate(models)}  # a member's rows right after its fusion's
    return sorted(results.values(), key=lambda r: order[r.name] if r.name in order else order[r.name.rsplit(":", 1)[0]])


def _score_streams(results: dict[str, "CVResult"], name: str, model: Fusion, x: torch.Tensor, y: np.ndarray,
                   classes: Sequence[str], num_frames: int, fold: int, compared: Sequence[str] = ()) -> None:
    """Each member of a fitted fusion on its own, as ``<name>:<member>`` (``lstm:appearance``, ``lstm:motion_lr``):
    no extra training, they are the fusion's members. A member named like one of the ``compared`` models
    (``lstm:motion`` given as a model of its own) is left to that model."""
    for member in model.names:
        if f"{name}:{member}" in compared:  # trained alone as a model of its own: reported as that
            continue
        probs = predict_features(model.member(member), model.part(member, x), num_frames)[0].numpy()
        m = compute_metrics(y, probs, classes)["metrics"]
        m.update(fold=fold, seconds=0.0)
        results.setdefault(f"{name}:{member}", CVResult(f"{name}:{member}")).add(m, y, probs)


def _inner_split(targets: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A validation split of a fold's training part, for early stopping; none where it cannot be made."""
    try:
        split = validation_split(targets, groups, fraction, seed=seed) if fraction > 0 else None
    except ActivityError:
        split = None
    return split if split is not None else (np.arange(len(targets)), np.arange(0))


def build_models(cfg: Config, names: Sequence[str]) -> dict[str, Model]:
    """Name -> model: ``lstm`` and ``mean`` are ``cfg`` with that temporal model; the others are baselines.

    Raises:
        ActivityError: an unknown name.
    """
    models: dict[str, Model] = {}
    for name in dict.fromkeys(names):
        if name in BASELINES:  # fitted here directly (train fits the same and saves it as a PooledLogistic)
            models[name] = LogisticBaseline(name, seed=cfg.train.seed)
        elif name in TEMPORAL_MODELS or name.startswith("lstm:"):  # lstm:<member>: the fusion's member alone
            c = copy.deepcopy(cfg)
            c.set("model.temporal", name, source="--temporal")
            models[name] = c
        else:
            raise ActivityError(f"unknown model {name!r}; choose from {', '.join(model_names())}")
    return models


@dataclass
class CVReport:
    """One collection's cross-validation: what was split, how, and every model's per-fold metrics."""

    data: str
    split: str
    clips: int
    classes: list[str]
    skipped: dict[str, str]
    config: Config
    results: list[CVResult]
    test_folds: list[list[str]] = field(default_factory=list)

    def table(self) -> str:
        """Mean ± std over folds of top-1 and mean class accuracy, both pooled over all folds' test clips,
        and the per-fold top-1."""
        rows = []
        for r in self.results:
            s = r.summary()
            rows.append([r.name, f"{100 * s['top1']:.1f} ± {100 * s['top1_std']:.1f}",
                         f"{100 * s['mean_class_accuracy']:.1f} ± {100 * s['mean_class_accuracy_std']:.1f}",
                         f"{100 * s['pooled_top1']:.1f} / {100 * s['pooled_mean_class_accuracy']:.1f}",
                         " ".join(f"{100 * f['top1']:.0f}" for f in r.folds), f"{s['seconds']:.0f}"])
        head = f"{self.data}: {self.clips} clips, {len(self.classes)} classes, {self.split}"
        return head + "\n" + format_table(rows, ["model", "top-1 %", "mean class acc %", "pooled top-1 / mca %",
                                                "per-fold top-1 %", "fit s"])

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "split": self.split, "clips": self.clips, "classes": self.classes,
                "skipped": self.skipped, "config": self.config.to_dict(),
                "results": [{**r.summary(), "per_fold": r.folds} for r in self.results], "test_folds": self.test_folds}
