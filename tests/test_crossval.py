"""Cross-validation on cached features: same folds for every model, every clip tested once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activity.config import Config
from activity.crossval import _inner_split, cross_validate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(temporal: str) -> Config:
    cfg = Config()
    cfg.features.num_frames = 4
    cfg.model.temporal = temporal
    cfg.model.hidden_size = cfg.model.projection = 8
    cfg.train.epochs = 2
    return cfg


def test_every_clip_is_tested_once_per_model_on_the_same_folds():
    y = np.arange(24) % 3
    x = torch.randn(24, 4, 16) + torch.from_numpy(y)[:, None, None].float()
    results = cross_validate({"lstm": _cfg("lstm"), "mean": _cfg("mean")}, x, y, ["a", "b", "c"], None, folds=4)
    assert [r.name for r in results] == ["lstm", "mean"]
    for r in results:
        assert len(r.folds) == 4 and sum(f["num_videos"] for f in r.folds) == 24
    assert [f["num_videos"] for f in results[0].folds] == [f["num_videos"] for f in results[1].folds]


def test_folds_too_small_for_early_stopping_train_without_it():
    # one clip per class in a fold's training part: no validation split can keep every class
    tr, va = _inner_split(np.array([0, 1, 2]), np.array(["g1", "g2", "g3"]), 0.2, seed=0)
    assert tr.tolist() == [0, 1, 2] and va.size == 0
    y = np.array([0, 0, 0, 1, 1, 2])
    groups = np.array(["g1", "g1", "g2", "g3", "g3", "g1"])  # like ucf101-samples: one big group
    results = cross_validate({"mean": _cfg("mean")}, torch.randn(6, 4, 16), y, ["a", "b", "c"], groups, folds=3)
    assert sum(f["num_videos"] for f in results[0].folds) == 6
