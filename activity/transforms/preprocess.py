"""Frame preprocessing: from decoded uint8 frames to what a backbone expects.

Each backbone brings its own :class:`Preprocess` (resize, centre crop, mean and
std), taken from the weights it was trained with. The steps are torchvision's
``Resize(antialias=True)``, ``CenterCrop``, ``ToDtype(scale=True)`` and
``Normalize`` on uint8 tensors, computed with the same torch kernels (the tests
check they agree exactly) without importing torchvision, which keeps start-up
short. Resizing and cropping run on uint8, so the float frames exist only at the
crop size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


def resize_short_side(frames: torch.Tensor, size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Resize so that the short side is ``size``, keeping the aspect ratio (anti-aliased).

    Args:
        frames: uint8 or float frames ``(T, 3, H, W)``.
        size: length of the short side after resizing.
        interpolation: ``"bilinear"`` or ``"bicubic"``.

    Returns:
        ``(T, 3, H', W')`` of the same dtype, ``min(H', W') == size``.
    """
    h, w = frames.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_h, new_w = (new_long, size) if w <= h else (size, new_long)
    if (new_h, new_w) == (h, w):
        return frames
    return F.interpolate(frames, size=(new_h, new_w), mode=interpolation, align_corners=False, antialias=True)


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size x size`` window of ``(T, C, H, W)`` frames (zero-padded where a side is shorter)."""
    h, w = frames.shape[-2:]
    if size > h or size > w:
        pad_h, pad_w = max(size - h, 0), max(size - w, 0)
        frames = F.pad(frames, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        h, w = frames.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return frames[..., top : top + size, left : left + size]


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side, centre-crop, scale to [0, 1] and normalise.

    Args:
        resize_size: length of the short side after resizing.
        crop_size: side of the square centre crop.
        mean: per-channel mean (RGB, on the [0, 1] scale).
        std: per-channel standard deviation.
        interpolation: ``"bilinear"`` or ``"bicubic"``.
    """

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def crop(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Resize and centre-crop, still uint8.

        Args:
            frames: uint8 RGB, shape ``(T, H, W, 3)``.

        Returns:
            uint8 tensor ``(T, 3, crop_size, crop_size)``.
        """
        x = torch.as_tensor(frames).permute(0, 3, 1, 2)  # (T, 3, H, W): a view, channels-last in memory
        x = resize_short_side(x, self.resize_size, self.interpolation)
        return center_crop(x, self.crop_size)

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(..., 3, S, S)`` to float32 scaled to [0, 1] and normalised with ``mean`` and
        ``std``, on the frames' device."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=frames.device).reshape(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=frames.device).reshape(3, 1, 1)
        return frames.float().div_(255.0).sub_(mean).div_(std)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Preprocess a stack of frames.

        Args:
            frames: uint8 RGB, shape ``(T, H, W, 3)``.

        Returns:
            float32 tensor of shape ``(T, 3, crop_size, crop_size)``.
        """
        return self.normalize(self.crop(frames)).contiguous()

    def scaled(self, crop_size: int) -> "Preprocess":
        """The same preset at another crop size (resize keeps its ratio to the crop)."""
        resize = round(self.resize_size * crop_size / self.crop_size)
        return Preprocess(resize, crop_size, self.mean, self.std, self.interpolation)
