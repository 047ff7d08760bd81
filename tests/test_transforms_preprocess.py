"""Preprocessing computes exactly what torchvision's transforms compute, without importing torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from activity.transforms.preprocess import Preprocess, center_crop


def _torchvision(frames: np.ndarray, p: Preprocess) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode

    x = torch.as_tensor(frames).permute(0, 3, 1, 2)
    x = TF.resize(x, [p.resize_size], interpolation=InterpolationMode(p.interpolation), antialias=True)
    x = TF.center_crop(x, [p.crop_size, p.crop_size])
    return TF.normalize(x.float().div_(255.0), list(p.mean), list(p.std))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("hw", [(240, 320), (124, 70), (256, 454), (50, 60), (301, 301), (256, 256)])
def test_preprocess_equals_torchvision_exactly(interpolation, hw):
    frames = np.random.default_rng(hw[0] * hw[1]).integers(0, 256, (3, *hw, 3), dtype=np.uint8)
    p = Preprocess(256, 224, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4), interpolation)
    out = p(frames)
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.float32
    assert torch.equal(out, _torchvision(frames, p))


@pytest.mark.parametrize("hw", [(10, 30), (31, 12), (5, 5)])
def test_center_crop_pads_like_torchvision_when_the_frame_is_smaller(hw):
    x = torch.randint(0, 256, (2, 3, *hw), dtype=torch.uint8)
    assert torch.equal(center_crop(x, 16), TF.center_crop(x, [16, 16]))


def test_crop_stays_uint8_and_normalize_scales():
    p = Preprocess(8, 8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    frames = np.full((2, 8, 8, 3), 255, np.uint8)
    assert p.crop(frames).dtype == torch.uint8
    assert torch.allclose(p(frames), torch.ones(2, 3, 8, 8))  # (1 - 0.5) / 0.5
