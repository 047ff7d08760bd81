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


def test_crop_stays_uint8_takes_the_centre_and_normalize_scales():
    from torchvision.transforms import InterpolationMode

    p = Preprocess(8, 8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 20, 3), dtype=np.uint8)  # wide: the crop drops both ends
    cropped = p.crop(frames)
    assert cropped.dtype == torch.uint8 and cropped.shape == (2, 3, 8, 8)
    x = torch.as_tensor(frames).permute(0, 3, 1, 2)
    assert torch.equal(cropped, x[..., 6:14])  # already 8 high: no resize, the middle 8 columns
    assert not torch.equal(cropped, x[..., :8]) and not torch.equal(cropped, x[..., 12:])
    resized = Preprocess(4, 4, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear").crop(frames)  # resized, then the centre
    expected = TF.center_crop(TF.resize(x, [4], interpolation=InterpolationMode.BILINEAR, antialias=True), [4, 4])
    assert torch.equal(resized, expected)
    white = np.full((2, 8, 8, 3), 255, np.uint8)
    assert torch.allclose(p(white), torch.ones(2, 3, 8, 8))  # (1 - 0.5) / 0.5
