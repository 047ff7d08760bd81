"""Using a trained model on video files: the Python API under ``activity predict`` and ``evaluate``.

>>> from activity.inference.recognizer import load_model
>>> model = load_model("run/model.pt")
>>> model.predict("clip.mp4", top_k=3)
[('dribbling', 0.81), ('passing', 0.12), ('defense', 0.04)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from activity.errors import ActivityError
from activity.features.backbones import create_backbone
from activity.features.encoder import FrameEncoder
from activity.features.extract import ExtractOptions, Extractor, ExtractResult, with_descriptors
from activity.features.steps import STEP_BATCH, encode_steps
from activity.registry import RESULT_FORMATS
from activity.temporal.checkpoint import Checkpoint, load_checkpoint
from activity.temporal.train import predict_features


@dataclass
class Prediction:
    """Top-k labels of one video, most probable first."""

    path: Path
    labels: list[str]
    probabilities: list[float]

    def as_dict(self) -> dict:
        return {"path": str(self.path), "top_k": [{"label": l, "probability": round(p, 6)} for l, p in zip(self.labels, self.probabilities)]}


class ActionRecognizer:
    """A trained temporal model together with the backbone and sampling it was trained on.

    Args:
        checkpoint: a loaded :class:`~activity.temporal.checkpoint.Checkpoint`.
        options: how to extract features (cache, workers, device, decoder, runtime);
            ``options.decoder`` None means the one in the checkpoint's config.
        **kwargs: instead of ``options``, its fields (``cache_dir=False`` keeps
            features in memory only, ``device="cuda"``, ...).
    """

    def __init__(self, checkpoint: Checkpoint, options: ExtractOptions | None = None, **kwargs: Any) -> None:
        # Each process extracts what it is given: sharding among torchrun's ranks is the caller's (workflows.evaluate).
        options = (options or ExtractOptions(progress=False)).replace(**kwargs, dist=None)
        self.checkpoint = checkpoint
        self.classes = checkpoint.classes
        self.extractor = Extractor(checkpoint.config.features, options, backbone_factory=lambda: self._get_encoder().backbone)
        self.spec = self.extractor.spec
        self.options = self.extractor.options
        self._encoder: FrameEncoder | None = None

    @property
    def model(self) -> nn.Module:
        """The temporal model: features ``(B, T, D + M)`` -> ``(logits (B, C), per-step importances (B, T))``
        (``M = spec.descriptor_dim``, 0 with the appearance stream alone)."""
        return self.checkpoint.model

    def _get_encoder(self) -> FrameEncoder:
        """The frozen backbone with its preprocessing, built on first use, on ``options.device``."""
        if self._encoder is None:
            backbone = create_backbone(self.spec.backbone)
            if backbone.feature_dim + self.spec.descriptor_dim != self.checkpoint.feature_dim:
                raise ActivityError(
                    f"backbone {self.spec.backbone} gives {backbone.feature_dim}-d features "
                    f"(+{self.spec.descriptor_dim} of the other streams) but the checkpoint expects {self.checkpoint.feature_dim}"
                )
            self._encoder = FrameEncoder(backbone, self.spec, self.options.device)
        return self._encoder

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """Backbone features ``(T, D)`` float32 (on the CPU) of decoded uint8 RGB frames ``(T, H, W, 3)``."""
        return self._get_encoder().encode_frames(frames)

    def encode_clip(self, frames: np.ndarray, first: np.ndarray | None = None,
                    second: np.ndarray | None = None) -> torch.Tensor:
        """The model's input features ``(T, D + M)`` float32 (on the CPU), as extraction computes them.

        Args:
            frames: the sampled uint8 RGB frames ``(T, H, W, 3)``: their backbone features come first.
            first: with a motion stream, the first frame of each sampled frame's flow ``(T, H, W, 3)``
                (:func:`~activity.features.motion.flow_pairs`); ignored without one.
            second: the frames ``gap`` seconds after ``first`` ``(T, H, W, 3)``.

        Returns:
            ``(T, D + M)``: appearance, then each descriptor stream of ``features.streams`` in order
            (``M = 0`` with the appearance stream alone).

        Raises:
            ActivityError: the model has a motion stream and ``first`` or ``second`` is missing.
        """
        appearance = self.encode_frames(frames)
        if self.spec.partner_gap(0) is not None and (first is None or second is None):
            raise ActivityError("this model was trained with the motion stream (features.streams names it): "
                                "encode_clip needs each frame's flow pair (first, second)")
        return with_descriptors(appearance, self.spec.describe(frames, first, second))

    def encode_steps(self, path: str | Path, step: float, *, fps: float, total: int, batch: int = STEP_BATCH
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor, int]]:
        """The model's input features at every ``step`` seconds of a long video, an item of consecutive steps
        at a time, encoded as extraction encodes (loader workers, the runtime chosen as extraction chooses it):
        see :func:`~activity.features.steps.encode_steps`, which gives the arguments and what is yielded."""
        base = self._get_encoder()  # checks the backbone against the checkpoint
        # A FrameEncoder of its own, as extraction's: compiling it leaves this recognizer's eager.
        encoder = FrameEncoder(base.backbone, self.spec, self.options.device, batch_size=self.options.batch_size)
        cache = self.extractor.cache
        return encode_steps(path, self.spec, step, encoder, self.options, fps=fps, total=total, batch=batch,
                            cache_root=None if cache is None else cache.root)

    def features(
        self,
        paths: Sequence[str | Path],
        *,
        progress: bool = False,
        on_error: Callable[[Path, str], None] | None = None,
    ) -> ExtractResult:
        """Cached (or freshly extracted) features for each readable video."""
        return self.extractor(paths, read_all=False, progress=progress, on_error=on_error)

    def probabilities(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities ``(N, C)`` for cached features ``(N, L, D)``."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        probs, _ = predict_features(self.model, x, self.spec.num_frames)
        return probs.numpy()

    def top_k(self, probs: np.ndarray, k: int) -> tuple[list[str], list[float]]:
        """The ``k`` most probable labels of one clip's probabilities ``(C,)``, with their probabilities."""
        order = np.argsort(-probs)[: max(1, min(k, len(self.classes)))]
        return [self.classes[i] for i in order], [float(probs[i]) for i in order]

    def predict_many(
        self,
        paths: Sequence[str | Path],
        *,
        top_k: int = 5,
        progress: bool = False,
        on_error: Callable[[Path, str], None] | None = None,
    ) -> tuple[list[Prediction], dict[Path, str]]:
        """Top-k predictions for every readable video, and the reasons the others were skipped."""
        result = self.features(paths, progress=progress, on_error=on_error)
        ok = [Path(p) for p in paths if Path(p) in result.features]
        if not ok:
            return [], result.failed
        probs = self.probabilities(np.stack([result.features[p] for p in ok]))
        return [Prediction(p, *self.top_k(pr, top_k)) for p, pr in zip(ok, probs)], result.failed

    def timeline(self, video: str | Path, *, window: float = 2.0, stride: float = 1.0, top_k: int = 3,
                 threshold: float = 0.0, smooth: int = 1, progress: bool = False,
                 on_progress: Callable[[int, int], None] | None = None):
        """What happens when: sliding-window predictions and merged segments (see :mod:`activity.inference.timeline`).

        Returns:
            A :class:`~activity.inference.timeline.Timeline` with ``windows`` (start, end, top-k labels and
            probabilities) and ``segments`` (start, end, label, mean probability), times in seconds.
        """
        from activity.inference.timeline import compute_timeline

        return compute_timeline(self, video, window=window, stride=stride, top_k=top_k, threshold=threshold,
                                smooth=smooth, progress=progress, on_progress=on_progress)

    def predict(self, video: str | Path | Sequence[str | Path], top_k: int = 5
                ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """Top-k ``(label, probability)`` pairs for one video, or a list of them for a list of videos
        (in the same order); raises a clear error if a video cannot be read (:meth:`predict_many`
        skips and reports instead)."""
        videos = [video] if isinstance(video, (str, Path)) else list(video)
        preds, failed = self.predict_many(videos, top_k=top_k)
        if failed:
            path, reason = next(iter(failed.items()))
            raise ActivityError(f"{path}: {reason}")
        pairs = [list(zip(p.labels, p.probabilities)) for p in preds]
        return pairs[0] if isinstance(video, (str, Path)) else pairs


def write_predictions(preds: list[Prediction], failed: dict[Path, str], out_dir: str | Path, fmt: str = "csv") -> Path:
    """Write one row per video (top-k labels and probabilities) and the skipped files with their reasons.

    ``fmt`` is a name of :data:`~activity.registry.RESULT_FORMATS` (:mod:`activity.inference.results`):
    ``csv`` writes ``predictions.csv`` and ``skipped.csv``; ``json`` writes ``predictions.json`` holding both.
    Each file appears whole or not at all (:mod:`activity.io`); ``out_dir`` is created.

    Returns:
        The predictions file.

    Raises:
        ConfigError: an unknown format (one line naming the choices), before anything is written.
    """
    write = RESULT_FORMATS.get(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write(preds, failed, out)


def load_model(checkpoint: str | Path, options: ExtractOptions | None = None, **kwargs: Any) -> ActionRecognizer:
    """Load ``model.pt`` into an :class:`ActionRecognizer` (arguments as for it)."""
    return ActionRecognizer(load_checkpoint(checkpoint), options, **kwargs)
