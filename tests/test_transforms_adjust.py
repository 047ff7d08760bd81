"""Frame adjustments before the backbone: brightness and fitting frames to a square."""

from __future__ import annotations

import numpy as np
import pytest

from activity.transforms.adjust import (
    DARK_BELOW,
    adjust_frames,
    auto_gamma,
    clahe,
    pad_to_square,
    stretch_to_square,
)


def _dark_clip(t: int = 3, h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 30, size=(t, h, w, 3), dtype=np.uint8)


def test_auto_gamma_brings_dark_frames_to_mid_grey_and_keeps_order():
    clip = _dark_clip()
    out = auto_gamma(clip)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert clip.mean() < 20 and 100 < out.mean() < 155
    # a monotone curve: brighter pixels stay brighter
    flat_in, flat_out = clip[0, ..., 0].ravel(), out[0, ..., 0].ravel()
    order = np.argsort(flat_in, kind="stable")
    assert np.all(np.diff(flat_out[order].astype(int)) >= 0)


def test_auto_gamma_treats_each_frame_alone():
    clip = _dark_clip()
    clip[1] = 200  # a bright frame in the same clip changes nothing for the others
    np.testing.assert_array_equal(auto_gamma(clip)[0], auto_gamma(clip[:1])[0])


def test_auto_gamma_leaves_a_mid_grey_frame_nearly_alone():
    frame = np.full((1, 8, 8, 3), 128, dtype=np.uint8)
    assert abs(int(auto_gamma(frame)[0, 0, 0, 0]) - 128) <= 1


def test_clahe_raises_the_contrast_of_a_flat_frame():
    rng = np.random.default_rng(0)
    clip = (100 + rng.integers(0, 8, size=(2, 64, 64, 1))).repeat(3, axis=3).astype(np.uint8)
    out = clahe(clip)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert out.std() > 2 * clip.std()


def test_pad_to_square_centres_the_whole_frame():
    clip = np.full((2, 30, 10, 3), 200, dtype=np.uint8)
    out = pad_to_square(clip, fill=(1, 2, 3))
    assert out.shape == (2, 30, 30, 3)
    np.testing.assert_array_equal(out[:, :, 10:20], clip)
    np.testing.assert_array_equal(out[0, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(out[0, :, 20:], np.broadcast_to([1, 2, 3], (30, 10, 3)))


def test_pad_margin_survives_a_centre_crop():
    clip = np.full((1, 70, 40, 3), 255, dtype=np.uint8)
    out = pad_to_square(clip, keep=0.875)
    side = out.shape[1]
    crop = round(side * 0.875)
    start = (side - crop) // 2
    kept = out[0, start : start + crop, start : start + crop]
    assert (kept == 255).all(axis=-1).sum() == 70 * 40  # every frame pixel is inside the crop


def test_stretch_fills_the_square():
    clip = np.full((2, 30, 10, 3), 200, dtype=np.uint8)
    out = stretch_to_square(clip)
    assert out.shape == (2, 30, 30, 3) and (out == 200).all()
    assert stretch_to_square(clip, keep=0.5).shape == (2, 60, 60, 3)


def test_adjust_frames_defaults_change_nothing():
    clip = _dark_clip()
    assert adjust_frames(clip) is clip
    assert adjust_frames(clip, enhance="gamma", fit="pad").shape == (3, 60, 60, 3)


@pytest.mark.parametrize("kwargs", [{"enhance": "hdr"}, {"fit": "zoom"}])
def test_adjust_frames_rejects_unknown_options(kwargs):
    with pytest.raises(ValueError):
        adjust_frames(_dark_clip(), **kwargs)


def test_dark_brightens_only_under_exposed_frames():
    clip = _dark_clip()  # mean luminance about 0.06
    clip[1] = np.random.default_rng(1).integers(60, 200, size=clip.shape[1:], dtype=np.uint8)  # an ordinary frame
    out = adjust_frames(clip, enhance="dark")
    np.testing.assert_array_equal(out[1], clip[1])
    np.testing.assert_array_equal(out[[0, 2]], auto_gamma(clip[[0, 2]]))
    assert out[0].mean() > 100
    # the threshold: a frame just below it is brightened, one at it is not
    below = np.full((1, 4, 4, 3), int(255 * DARK_BELOW) - 1, dtype=np.uint8)
    at = np.full((1, 4, 4, 3), int(np.ceil(255 * DARK_BELOW)), dtype=np.uint8)
    assert adjust_frames(below, enhance="dark")[0, 0, 0, 0] > below[0, 0, 0, 0]
    np.testing.assert_array_equal(adjust_frames(at, enhance="dark"), at)
