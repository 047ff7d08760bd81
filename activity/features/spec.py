"""What determines a video's cached features: :class:`FeatureSpec` (backbone, weights, frames,
views, preprocessing, frame adjustments, precision, the descriptor streams) and its cache key."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from typing import ClassVar, Sequence

import numpy as np
import torch

from activity.config import FeatureConfig
from activity.features.backbones import get_spec
from activity.features.streams import Descriptor, descriptors_of, from_settings, stream_names
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
    # The settings (``settings()``) of each descriptor stream stored after the appearance features, in order.
    streams: tuple[str, ...] = ()

    # Options added after entries and checkpoints were first written, with the value they had then.
    NEUTRAL: ClassVar[dict[str, str]] = {"frame_fit": "crop", "enhance": "none", "precision": "float32", "motion": "none"}

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> "FeatureSpec":
        spec = get_spec(cfg.backbone)
        pre = spec.preprocess if cfg.image_size is None else spec.preprocess.scaled(cfg.image_size)
        streams = tuple(d.settings() for d in descriptors_of(cfg.streams))
        return cls(cfg.backbone, spec.weights, cfg.num_frames, cfg.views, pre, cfg.frame_fit, cfg.enhance, cfg.precision, streams)

    @property
    def descriptors(self) -> list[Descriptor]:
        """The descriptor streams stored after the appearance features, in order (empty: appearance only).

        Raises:
            ActivityError: a stream's settings are not what this version of activity computes.
        """
        return [from_settings(s) for s in self.streams]

    @property
    def descriptor_dim(self) -> int:
        """Numbers per step stored after the appearance features (0: appearance only)."""
        return sum(d.dim for d in self.descriptors)

    def appearance_only(self) -> "FeatureSpec":
        """This spec without its descriptor streams: what determines the appearance features alone."""
        return replace(self, streams=())

    def with_descriptors(self, wanted: Sequence[bool]) -> "FeatureSpec":
        """This spec with only the descriptor streams whose ``wanted`` flag (one per stream, in order) is true."""
        return replace(self, streams=tuple(s for s, w in zip(self.streams, wanted) if w))

    def stream_keys(self) -> list[str]:
        """The cache folder of each descriptor stream's own entries, in order: the stream's name, then a hash of
        its settings and of what it reads (the sampled frames: ``num_frames``, ``views``; the brightening
        ``enhance``). Not the backbone, image size or precision: another backbone reuses them."""
        out = []
        for name, settings in zip(stream_names(self.streams)[1:], self.streams):
            blob = json.dumps({"stream": settings, "num_frames": self.num_frames, "views": self.views,
                               "enhance": self.enhance}, sort_keys=True)
            out.append(f"{name}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}")
        return out

    def partner_gap(self, fps: float) -> int | None:
        """Frames between a sampled frame and the partner a stream also needs (motion's flow), or None."""
        gaps = [g for g in (d.partner_gap(fps) for d in self.descriptors) if g is not None]
        return gaps[0] if gaps else None

    def describe(self, frames: np.ndarray, first: np.ndarray | None = None,
                 second: np.ndarray | None = None) -> np.ndarray | None:
        """Every descriptor stream's numbers ``(T, M)`` float32, side by side in order, for the sampled uint8 RGB
        frames ``(T, H, W, 3)`` (and, where :meth:`partner_gap` is not None, each one's pair ``first`` and
        ``second``, as :func:`~activity.features.motion.read_with_pairs` reads them); None without such streams."""
        parts = [d.compute(frames, first, second, self.enhance) for d in self.descriptors]
        return np.concatenate(parts, 1).astype(np.float32) if parts else None

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
        """The backbone, then a hash of every field: the appearance features' cache folder for the spec without
        descriptor streams (:meth:`appearance_only`); with them, the folder where every stream was stored
        together before each had its own (still read, see :mod:`activity.features.cache`).

        A backbone name's characters that are not safe in a folder name on every system
        (the colon of ``timm:NAME``) become ``_`` in the readable part; the hash covers the
        name as written, and the registered names are unchanged.
        """
        fields = asdict(self)
        # Written "motion" (its settings, or "none") when the motion stream was the only one; kept so for old keys.
        fields["motion"] = "+".join(fields.pop("streams")) or "none"
        for name, neutral in self.NEUTRAL.items():
            if fields[name] == neutral:  # keeps the keys of entries written before these options existed
                del fields[name]
        blob = json.dumps(fields, sort_keys=True)
        return f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.backbone)}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"
