"""What determines a video's cached features: :class:`FeatureSpec` (backbone, weights, frames,
views, preprocessing, frame adjustments, precision, motion stream) and its cache key."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch

from activity.config import FeatureConfig
from activity.errors import ActivityError
from activity.features.backbones import get_spec
from activity.features.motion import MotionSpec
from activity.transforms.adjust import adjust_frames
from activity.transforms.preprocess import Preprocess


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that determines a video's cached features."""

    backbone: str
    weights: str
    num_frames: int
    views: int
    preprocess: Preprocess
    frame_fit: str = "crop"
    enhance: str = "none"
    precision: str = "float32"
    motion: str = "none"  # MotionSpec.name() of the motion stream stored after the appearance features, or "none"

    # Options added after entries and checkpoints were first written, with the value they had then.
    NEUTRAL: ClassVar[dict[str, str]] = {"frame_fit": "crop", "enhance": "none", "precision": "float32", "motion": "none"}

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> "FeatureSpec":
        spec = get_spec(cfg.backbone)
        pre = spec.preprocess if cfg.image_size is None else spec.preprocess.scaled(cfg.image_size)
        motion = MotionSpec().name() if cfg.motion else "none"
        return cls(cfg.backbone, spec.weights, cfg.num_frames, cfg.views, pre, cfg.frame_fit, cfg.enhance, cfg.precision, motion)

    @property
    def motion_spec(self) -> MotionSpec | None:
        """The motion stream's settings (None: appearance features only)."""
        if self.motion == "none":
            return None
        if self.motion != MotionSpec().name():
            raise ActivityError(f"motion features {self.motion!r} are not computed by this version of activity "
                                f"(it computes {MotionSpec().name()!r})")
        return MotionSpec()

    @property
    def motion_dim(self) -> int:
        """Motion numbers per step stored after the appearance features (0 without the motion stream)."""
        spec = self.motion_spec
        return 0 if spec is None else spec.dim

    def enhance_frames(self, frames: np.ndarray) -> np.ndarray:
        """The brightness adjustment alone (``features.enhance``), uint8 RGB ``(T, H, W, 3)`` -> the same."""
        return adjust_frames(np.asarray(frames), enhance=self.enhance)

    def crop(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decoded uint8 RGB frames ``(T, H, W, 3)`` -> resized and cropped uint8 ``(T, 3, S, S)``.

        The frame adjustments (:func:`activity.transforms.adjust.adjust_frames`), then the
        resize and crop of the backbone's own preprocessing; what decoding
        workers hand to :class:`FrameEncoder`.
        """
        if self.frame_fit != "crop" or self.enhance != "none":
            fill = tuple(round(255 * m) for m in self.preprocess.mean)  # normalises to zero
            keep = self.preprocess.crop_size / self.preprocess.resize_size
            frames = adjust_frames(np.asarray(frames), enhance=self.enhance, fit=self.frame_fit, fill=fill, keep=keep)  # type: ignore[arg-type]
        return self.preprocess.crop(frames).contiguous()

    def prepare(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decoded uint8 RGB frames ``(T, H, W, 3)`` -> backbone input ``(T, 3, S, S)`` float32
        (:meth:`crop`, then the preprocessing's scaling and normalisation)."""
        return self.preprocess.normalize(self.crop(frames)).contiguous()

    @property
    def length(self) -> int:
        """Frames stored per video."""
        return self.num_frames * self.views

    def key(self) -> str:
        """The cache folder's name: the backbone, then a hash of every field.

        A backbone name's characters that are not safe in a folder name on every system
        (the colon of ``timm:NAME``) become ``_`` in the readable part; the hash covers the
        name as written, and the registered names are unchanged.
        """
        fields = asdict(self)
        for name, neutral in self.NEUTRAL.items():
            if fields[name] == neutral:  # keeps the keys of entries written before these options existed
                del fields[name]
        blob = json.dumps(fields, sort_keys=True)
        return f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.backbone)}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"
