"""Logistic-regression baselines on pooled frame features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activity.errors import ActivityError
from activity.temporal.baselines import (
    LogisticBaseline,
    middle_frame,
    pooled_statistics,
)


def test_pooled_statistics_are_mean_and_std_of_features_and_differences():
    x = np.array([[[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]])  # (1, T=3, D=2)
    z = pooled_statistics(x)
    assert z.shape == (1, 8)
    np.testing.assert_allclose(z[0], [2.0, 1.0, np.std([0, 2, 4]), 0.0, 2.0, 0.0, 0.0, 0.0])
    assert pooled_statistics(np.ones((2, 1, 3))).shape == (2, 12)  # one step: zero differences, no error


def test_middle_frame_is_the_central_step():
    x = np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3)
    np.testing.assert_array_equal(middle_frame(x), x[:, 2])


def _motion_task(n: int = 60, t: int = 8, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 holds still, class 1 flickers around the same mean: only the spread over time tells them apart."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    base = rng.normal(size=(n, 1, d))
    sign = np.where(np.arange(t) % 2 == 0, 1.0, -1.0)[None, :, None] * rng.choice([-1, 1], size=(n, 1, 1))
    x = base + 2.0 * y[:, None, None] * sign + 0.05 * rng.normal(size=(n, t, d))
    return x.astype(np.float32), y


def test_pooled_statistics_see_motion_that_a_single_frame_cannot():
    x, y = _motion_task()
    xt, yt = _motion_task(seed=1)
    pooled = LogisticBaseline("pooled_lr").fit(torch.from_numpy(x), y)
    middle = LogisticBaseline("middle_lr").fit(x, y)
    acc = lambda m: float((m.predict_proba(xt, 2).argmax(1) == yt).mean())
    assert acc(pooled) > 0.95
    assert acc(middle) < 0.75
    assert pooled.c_ in pooled.cs


def test_classes_missing_from_training_get_zero_probability():
    rng = np.random.default_rng(0)
    y = np.array([0, 2] * 10)
    x = rng.normal(size=(20, 4, 3)) + y[:, None, None]
    p = LogisticBaseline("pooled_lr", cs=(1.0,)).fit(x, y).predict_proba(x, 3)
    assert p.shape == (20, 3)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.all(p[:, 1] == 0)


def test_one_class_only_predicts_it():
    p = LogisticBaseline("middle_lr").fit(np.zeros((4, 2, 3)), np.array([1, 1, 1, 1])).predict_proba(np.zeros((2, 2, 3)), 3)
    np.testing.assert_array_equal(p, [[0, 1, 0], [0, 1, 0]])


def test_inner_folds_respect_groups_or_fall_back():
    x, y = _motion_task(n=24)
    groups = np.repeat(np.arange(12), 2)
    assert LogisticBaseline("pooled_lr").fit(x, y, groups).c_ in LogisticBaseline("pooled_lr").cs
    # one group cannot be split at all: the middle C is kept
    b = LogisticBaseline("pooled_lr").fit(x, y, np.zeros(24, dtype=int))
    assert b.c_ == b.cs[len(b.cs) // 2]


def test_unknown_name_and_use_before_fit():
    with pytest.raises(ActivityError, match="unknown baseline 'gru'"):
        LogisticBaseline("gru")
    with pytest.raises(ActivityError, match="before fit"):
        LogisticBaseline("pooled_lr").predict_proba(np.zeros((1, 2, 3)), 2)


@pytest.mark.parametrize("name,classes", [("pooled_lr", 3), ("pooled_lr", 2), ("middle_lr", 4)])
def test_a_fitted_baseline_as_a_temporal_model_gives_its_probabilities(name, classes):
    from activity.config import ModelConfig
    from activity.temporal.models import PooledLogistic

    rng = np.random.default_rng(0)
    y = np.arange(40) % classes
    x = rng.normal(size=(40, 6, 5)) + y[:, None, None] * 0.7
    baseline = LogisticBaseline(name).fit(x, y)
    model = PooledLogistic.from_baseline(baseline, 5, classes + 1, ModelConfig(temporal=name))  # one class never seen
    logits, weights = model(torch.from_numpy(x).float())
    got = logits.softmax(1).detach().numpy()
    np.testing.assert_allclose(got, baseline.predict_proba(x, classes + 1), atol=1e-5)
    assert got[:, classes].max() < 1e-6 and weights.shape == (40, 6)


def test_a_baseline_of_one_class_as_a_temporal_model_gives_that_class():
    from activity.config import ModelConfig
    from activity.temporal.models import PooledLogistic

    x = np.random.default_rng(1).normal(size=(6, 4, 3))
    baseline = LogisticBaseline("pooled_lr").fit(x, np.full(6, 2))  # only class 2 in training
    model = PooledLogistic.from_baseline(baseline, 3, 3, ModelConfig(temporal="pooled_lr"))
    np.testing.assert_allclose(model(torch.from_numpy(x).float())[0].softmax(1).detach().numpy(),
                               baseline.predict_proba(x, 3), atol=1e-6)
