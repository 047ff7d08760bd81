"""Frame preprocessing: from decoded uint8 frames to what a backbone expects.

Each backbone brings its own :class:`Preprocess` (resize, centre crop, mean and
std), taken from the weights it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms import InterpolationMode


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

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Preprocess a stack of frames.

        Args:
            frames: uint8 RGB, shape ``(T, H, W, 3)``.

        Returns:
            float32 tensor of shape ``(T, 3, crop_size, crop_size)``.
        """
        x = torch.as_tensor(frames).permute(0, 3, 1, 2)  # (T, 3, H, W), uint8
        x = TF.resize(x, [self.resize_size], interpolation=InterpolationMode(self.interpolation), antialias=True)
        x = TF.center_crop(x, [self.crop_size, self.crop_size])
        x = x.float().div_(255.0)
        return TF.normalize(x, list(self.mean), list(self.std))

    def scaled(self, crop_size: int) -> "Preprocess":
        """The same preset at another crop size (resize keeps its ratio to the crop)."""
        resize = round(self.resize_size * crop_size / self.crop_size)
        return Preprocess(resize, crop_size, self.mean, self.std, self.interpolation)
