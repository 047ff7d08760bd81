"""Frame adjustments applied before the backbone's own preprocessing.

Pure functions on decoded uint8 RGB frames ``(T, H, W, 3)`` that return uint8
RGB frames. Each frame is treated on its own, so a frame's result does not
depend on which other frames it is decoded with (training clips, timeline
windows and live sources all see the same pixels).

* Brightness (``features.enhance``): :func:`auto_gamma` and :func:`clahe` bring
  dark or low-contrast footage (such as ARID's, mean pixel 6 to 38 of 255) into
  the range an ImageNet backbone was trained on. ``dark`` (the default) applies
  auto-gamma only to under-exposed frames (mean luminance below
  :data:`DARK_BELOW`), so ordinary footage reaches the backbone unchanged.
* Fitting to the backbone's square input (``features.frame_fit``): the
  backbone's preprocessing resizes the short side and centre-crops, which
  throws away the ends of the long side (the head and feet of a portrait
  crop). :func:`pad_to_square` and :func:`stretch_to_square` keep the whole
  frame; both add a margin that the later centre crop removes.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import cv2
import numpy as np

from activity.registry import ENHANCEMENTS

FrameFit = Literal["crop", "pad", "stretch"]

#: Mean luminance (on ``[0, 1]``) below which ``enhance: dark`` brightens a frame.
#: ImageNet photos average about 0.45; ARID's frames 0.03 to 0.14; the basketball
#: and UCF101 clips in ../shared/data 0.28 to 0.70.
DARK_BELOW = 0.2


def auto_gamma(frames: np.ndarray, target: float = 0.5, below: float = 1.0) -> np.ndarray:
    """Per frame, the gamma curve that maps the mean luminance to ``target``.

    Only darkens or brightens as much as needed: ``out = 255 * (in / 255) ** g``
    with ``g = log(target) / log(mean / 255)``, clamped to ``[0.2, 5]``.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``.
        target: mean luminance wanted, on the ``[0, 1]`` scale.
        below: frames whose mean luminance is at least this are left as they are.

    Returns:
        uint8 RGB ``(T, H, W, 3)``.
    """
    frames = np.asarray(frames, dtype=np.uint8)
    out = frames.copy()
    levels = np.arange(256) / 255.0
    for i, f in enumerate(frames):
        mean = float(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).mean()) / 255.0
        if mean >= below:
            continue
        mean = min(max(mean, 1.0 / 255), 254.0 / 255)
        g = min(max(math.log(target) / math.log(mean), 0.2), 5.0)
        lut = np.clip(np.round(255.0 * levels**g), 0, 255).astype(np.uint8)
        out[i] = cv2.LUT(f, lut)
    return out


def clahe(frames: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV) of each frame's lightness.

    Equalises the L channel of CIE Lab in ``tiles x tiles`` tiles, leaving the
    colour (a, b) alone.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``.
        clip_limit: OpenCV's contrast limit per tile.
        tiles: tiles per side.

    Returns:
        uint8 RGB ``(T, H, W, 3)``.
    """
    frames = np.asarray(frames, dtype=np.uint8)
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        lab = cv2.cvtColor(f, cv2.COLOR_RGB2LAB)
        lab[..., 0] = op.apply(np.ascontiguousarray(lab[..., 0]))
        out[i] = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return out


def pad_to_square(frames: np.ndarray, fill: Sequence[int] = (0, 0, 0), keep: float = 1.0) -> np.ndarray:
    """Centre each frame on a square of colour ``fill``.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``.
        fill: RGB padding colour.
        keep: the share of the square's side that a later centre crop keeps
            (``crop_size / resize_size``); the square is made large enough that
            such a crop still holds the whole frame.

    Returns:
        uint8 RGB ``(T, S, S, 3)`` with ``S = ceil(max(H, W) / keep)``.
    """
    frames = np.asarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    side = math.ceil(max(h, w) / keep)
    out = np.empty((t, side, side, 3), dtype=np.uint8)
    out[...] = np.asarray(fill, dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[:, top : top + h, left : left + w] = frames
    return out


def stretch_to_square(frames: np.ndarray, fill: Sequence[int] = (0, 0, 0), keep: float = 1.0) -> np.ndarray:
    """Resize each frame to a square of side ``max(H, W)`` (changing its aspect ratio), then :func:`pad_to_square`.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``.
        fill: RGB colour of the margin.
        keep: as in :func:`pad_to_square`.

    Returns:
        uint8 RGB ``(T, S, S, 3)`` with ``S = ceil(max(H, W) / keep)``.
    """
    frames = np.asarray(frames, dtype=np.uint8)
    side = max(frames.shape[1:3])
    square = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_CUBIC) for f in frames]) if len(frames) else frames
    return pad_to_square(square, fill, keep)


ENHANCEMENTS.add("none", lambda frames: frames)
ENHANCEMENTS.add("dark", lambda frames: auto_gamma(frames, below=DARK_BELOW))
ENHANCEMENTS.add("gamma", auto_gamma)
ENHANCEMENTS.add("clahe", clahe)


def adjust_frames(frames: np.ndarray, *, enhance: str = "none", fit: FrameFit = "crop",
                  fill: Sequence[int] = (0, 0, 0), keep: float = 1.0) -> np.ndarray:
    """Brightness first, then fitting to a square: what ``features.enhance`` and ``features.frame_fit`` ask for.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``.
        enhance: ``none``, ``dark`` (:func:`auto_gamma` of frames darker than
            :data:`DARK_BELOW`), ``gamma`` (:func:`auto_gamma` of every frame) or
            ``clahe`` (:func:`clahe`).
        fit: ``crop`` (unchanged: the backbone's centre crop decides), ``pad``
            (:func:`pad_to_square`) or ``stretch`` (:func:`stretch_to_square`).
        fill: padding colour (RGB).
        keep: share of the side that the later centre crop keeps.

    Returns:
        uint8 RGB frames; square ``(T, S, S, 3)`` unless ``fit`` is ``crop``.
    """
    frames = ENHANCEMENTS.get(enhance)(frames)
    if fit == "pad":
        frames = pad_to_square(frames, fill, keep)
    elif fit == "stretch":
        frames = stretch_to_square(frames, fill, keep)
    elif fit != "crop":
        raise ValueError(f"unknown frame fit {fit!r}")
    return frames
