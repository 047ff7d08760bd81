"""The reason for the LSTM: classes that hold the same frames in opposite orders.

Clips are lossless (FFV1), so a clip and its reverse have exactly the same
frames and the frame-averaging model sees exactly the same input for both:
over the held-out pairs it can score at most 50%. The BiLSTM must reach 90%.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activity.config import Config
from activity.data.collection import load_dataset
from activity.data.splits import split_train_val
from activity.data.synthetic import ORDER_CLASSES, make_order_dataset
from activity.features.backbones import create_backbone
from activity.features.cache import FeatureCache
from activity.features.extract import ExtractOptions, extract
from activity.features.spec import FeatureSpec
from activity.temporal.train import fit, predict_features

GROUP = r"_(\d+)\."


@pytest.fixture(scope="module")
def order_features(tmp_path_factory):
    root = tmp_path_factory.mktemp("order")
    train_root = make_order_dataset(root / "train", clips_per_class=32, seed=0, ext=".avi")
    test_root = make_order_dataset(root / "test", clips_per_class=8, seed=1, ext=".avi")
    cfg = Config()
    cfg.features.streams = ["appearance"]  # one stream: these features are synthetic
    cfg.model.pooled_members = False  # the BiLSTM alone (tests/test_features_motion.py trains a fusion)
    cfg.features.image_size = 112  # small crops keep the test fast; the task does not need more
    spec = FeatureSpec.from_config(cfg.features)
    cache = FeatureCache(root / "cache", spec)
    backbone = create_backbone(spec.backbone)

    def load(r):
        ds = load_dataset(r, group_regex=GROUP)
        res = extract(ds.paths, spec, cache, lambda: backbone, ExtractOptions(progress=False))
        assert not res.failed
        return ds, torch.from_numpy(np.stack([res.features[p] for p in ds.paths])), torch.from_numpy(ds.targets())

    return cfg, load(train_root), load(test_root)


@pytest.mark.parametrize("temporal, low, high", [("mean", 0.0, 0.5), ("lstm", 0.9, 1.0)])
def test_only_the_lstm_reads_frame_order(order_features, temporal, low, high):
    cfg, (ds, x, y), (test_ds, xt, yt) = order_features
    assert test_ds.classes == sorted(ORDER_CLASSES)
    cfg.model.temporal = temporal
    tr, va = split_train_val(ds, 0.2, seed=0)
    result = fit(cfg, x[tr], y[tr], len(ds.classes), x[va], y[va], progress=False)
    probs, weights = predict_features(result.model, xt, cfg.features.num_frames)
    accuracy = (probs.argmax(1) == yt).float().mean().item()
    assert low <= accuracy <= high, f"{temporal}: held-out accuracy {accuracy:.3f}"
    assert torch.allclose(weights.sum(1), torch.ones(len(xt)), atol=1e-5)
