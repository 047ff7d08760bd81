"""Splitting a collection: stratified k folds and train/validation splits, by group when the
groups (recordings) are known, so that clips of one recording never sit on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from activity.data.collection import Sample, VideoDataset
from activity.errors import ActivityError, first_line


def kfold_splits(
    targets: np.ndarray, groups: np.ndarray | None, folds: int, *, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, test) index pairs, stratified by class and, when ``groups`` is given, by group.

    With groups, clips of one group never sit on both sides of a fold. Folds
    are capped by the number of groups, or without groups by the smallest class
    (at least 2), so that every class has a clip in every test fold where it can;
    :func:`classes_missing_from_tests` tells which folds still lack which class.

    Args:
        targets: class indices ``(N,)``.
        groups: group ids ``(N,)`` or None.
        folds: requested number of folds (at least 2).
        seed: shuffling seed.

    Returns:
        A list of ``(train_indices, test_indices)`` int64 arrays, sorted.
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if folds < 2:
        raise ActivityError(f"need at least 2 folds, got {folds}")
    n = len(targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when a class has fewer members than folds
        if groups is not None:
            n_groups = len(set(groups.tolist()))
            if n_groups < 2:
                raise ActivityError("cannot split by group: every clip is in the same group")
            splitter = StratifiedGroupKFold(n_splits=min(folds, n_groups), shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(n), targets, groups)
        else:
            counts = np.bincount(targets)
            smallest = int(counts[counts > 0].min()) if n else 2
            splitter = StratifiedKFold(n_splits=min(folds, max(2, smallest)), shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(n), targets)
        try:
            return [(np.sort(tr), np.sort(te)) for tr, te in splits]
        except ValueError as e:  # e.g. fewer clips in every class than folds
            raise ActivityError(f"cannot split {n} clips into {folds} folds: {first_line(e)}") from None


def classes_missing_from_tests(splits: list[tuple[np.ndarray, np.ndarray]], targets: np.ndarray) -> dict[int, list[int]]:
    """``{fold index: classes (indices, sorted) with clips in the collection but none in that fold's test side}``.

    Empty when every fold tests every class. Where it is not, mean class
    accuracy averages over different sets of classes from fold to fold.
    """
    present = set(targets.tolist())
    missing = {k: sorted(present - set(targets[te].tolist())) for k, (_, te) in enumerate(splits)}
    return {k: m for k, m in missing.items() if m}


def validation_split(
    targets: np.ndarray, groups: np.ndarray | None, fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split indices into train and validation, stratified by class and by group when known.

    With groups, clips of one group never sit on both sides. Of the folds of
    ``round(1 / fraction)``, the one that keeps every class in training and
    whose size is closest to ``fraction`` is chosen (one big group can
    otherwise make a fold far larger than asked for).

    Args:
        targets: class indices ``(N,)``.
        groups: group ids ``(N,)`` or None.
        fraction: validation share.
        seed: shuffling seed.

    Returns:
        ``(train_indices, val_indices)`` int64 arrays, or None when no fold
        leaves every class in training.

    Raises:
        ActivityError: no folds can be made at all (the reason says why).
    """
    n_classes = len(set(targets.tolist()))
    splits = kfold_splits(targets, groups, max(2, round(1.0 / fraction)), seed=seed)
    keeps_all = [len(set(targets[tr].tolist())) == n_classes for tr, _ in splits]
    candidates = [sp for sp, ok in zip(splits, keeps_all) if ok]
    if not candidates:
        return None
    return min(candidates, key=lambda sp: abs(len(sp[1]) - fraction * len(targets)))


def split_train_val(
    dataset: VideoDataset, fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`validation_split` of a dataset, with a clear error when it cannot be made."""
    try:
        split, why = validation_split(dataset.targets(), dataset.groups(), fraction, seed=seed), "too few clips or recording groups per class"
    except ActivityError as e:
        split, why = None, str(e)
    if split is None:
        raise ActivityError(
            f"{dataset.source or 'the dataset'}: no validation split of about {fraction:.0%} leaves every class in training "
            f"({why}); pass --val, or train.val_fraction=0 to train without validation"
        )
    return split


def train_val_datasets(
    train: VideoDataset, val: VideoDataset | None, fraction: float, *, seed: int = 0
) -> tuple[VideoDataset, VideoDataset | None, list[Sample]]:
    """The training and validation sides of a run.

    With a given validation collection, its clips whose label is not a
    training class are left out (and returned, to be reported); otherwise a
    share ``fraction`` of ``train`` is split off (by group when known), or no
    validation at all when ``fraction`` is 0.

    Returns:
        ``(train, validation or None, left-out validation samples)``.
    """
    if val is not None:
        unknown = [s for s in val.samples if s.label not in train.classes]
        kept = val.subset([i for i, s in enumerate(val.samples) if s.label in train.classes])
        kept.classes = list(train.classes)
        return train, kept, unknown
    if fraction > 0:
        tr, va = split_train_val(train, fraction, seed=seed)
        return train.subset(tr), train.subset(va), []
    return train, None, []


def describe_validation(val: VideoDataset | None, given: str | Path | None = None) -> dict[str, Any]:
    """How a run's validation side was made, for its log line and ``train_summary.json``.

    Args:
        val: the validation side :func:`train_val_datasets` returned (None: no validation).
        given: the validation collection named by the user, if any.

    Returns:
        ``{"split": "given", "source": ...}``, ``{"split": "by group", "groups": [...]}`` (the groups
        that went to validation, sorted), ``{"split": "random"}`` (stratified by class; no groups
        known, so clips of one recording may sit on both sides) or ``{"split": "none"}``.
    """
    if val is None:
        return {"split": "none"}
    if given is not None:
        return {"split": "given", "source": str(given)}
    groups = val.groups()
    if groups is not None:
        return {"split": "by group", "groups": sorted(set(groups.tolist()))}
    return {"split": "random"}


def validation_phrase(how: dict[str, Any]) -> str:
    """:func:`describe_validation`'s record in words: ``split by group (validation groups: 3, 7)``."""
    if how["split"] == "given":
        return f"the given collection {how['source']}"
    if how["split"] == "by group":
        shown = how["groups"][:8]
        more = f" and {len(how['groups']) - len(shown)} more" if len(how["groups"]) > len(shown) else ""
        return f"split by group (validation groups: {', '.join(map(str, shown))}{more})"
    if how["split"] == "random":
        return "split at random, stratified by class (no groups known: clips of one recording may sit on both sides)"
    return "none"


def leave_one_group_out(targets: np.ndarray, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (train, test) index pair per group: test on the group, train on all the others.

    The test of a change that must carry over to new scenes: with a camera site or a
    source video as the group, every fold tests on a scene the model never saw.

    Args:
        targets: class indices ``(N,)`` (for the error when a side would lack a class).
        groups: group ids ``(N,)``.

    Returns:
        Pairs of sorted int64 index arrays, in the order of the sorted group ids.

    Raises:
        ActivityError: no groups, or fewer than two.
    """
    if groups is None:
        raise ActivityError("leave-one-group-out needs groups (a CSV 'group' column or --group-regex)")
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        raise ActivityError(f"leave-one-group-out needs at least 2 groups, got {len(names)}")
    idx = np.arange(len(targets))
    return [(idx[groups != g], idx[groups == g]) for g in names]
