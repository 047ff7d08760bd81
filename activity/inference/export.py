"""Export a trained model as one self-contained graph: ONNX or TorchScript.

The exported graph is the whole model, backbone included: it maps preprocessed
frames ``(B, T, 3, S, S)`` float32 to class logits ``(B, C)``. ``T`` is the
checkpoint's ``features.num_frames`` and ``S`` its crop size; the batch size
``B`` is free (dynamic) in both formats. A model trained with the motion stream
(``features.streams: [appearance, motion]``, the default) takes a second input, ``motion (B, T, M)`` float32: the
descriptors of :func:`activity.features.motion.motion_features` for the same sampled
frames, which the graph appends to the backbone features (the sidecar's ``motion``
entry says how to compute them). A model with the pose stream is not exported: its
landmarks come from MediaPipe's own graphs, outside the model's (use ``activity predict``
or :class:`~activity.inference.recognizer.ActionRecognizer`).

The frames must already be sampled, resized, cropped and normalised exactly as
the backbone's :class:`~activity.transforms.preprocess.Preprocess` does (see
:func:`preprocess_for_export`). Everything a program needs to do that without
``activity`` installed (class names, input shape, frame sampling, resize, crop,
mean, std, interpolation) is written beside the model as a JSON sidecar,
``<out>.json``.

>>> from activity.inference.export import export_model
>>> export_model("runs/mine/model.pt", "onnx", "runs/mine/model.onnx")
PosixPath('runs/mine/model.onnx')

Differences from ``activity predict``: the feature cache stores features as
float16, the exported graph keeps them float32, so probabilities can differ in
the third decimal place (by less than 0.005 in the tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from activity import __version__
from activity.errors import ActivityError
from activity.features.motion import MAG_EDGES_PX, MotionSpec
from activity.features.spec import FeatureSpec
from activity.inference.export_formats import INPUT_NAME, MOTION_INPUT_NAME, ONNX_OPSET, OUTPUT_NAME
from activity.io import atomic_path, atomic_write
from activity.registry import EXPORT_FORMATS
from activity.temporal.checkpoint import Checkpoint, load_checkpoint

SIDECAR_FORMAT = "activity-export"
SIDECAR_VERSION = 1


class ExportModel(nn.Module):
    """Backbone and temporal model as one module: frames ``(B, T, 3, S, S)`` (and, with a motion
    stream, motion descriptors ``(B, T, M)``) to logits ``(B, C)``.

    Input: float32 frames, RGB, already resized (short side), centre-cropped to
    ``S x S``, scaled to [0, 1] and normalised with the backbone's mean and std,
    i.e. each clip is ``spec.preprocess(uint8 frames (T, H, W, 3))`` (see
    :func:`preprocess_for_export`). The model runs the backbone on all ``B * T``
    frames, reshapes the features to ``(B, T, D)`` and runs the temporal model
    on full-length sequences (``lengths=None``), as prediction does. With a
    motion stream the motion descriptors go after the backbone features,
    ``(B, T, D + M)``, as extraction stores them.

    Args:
        backbone: frozen frame encoder, ``(N, 3, S, S) -> (N, D)``.
        temporal: the checkpoint's temporal model, ``(B, T, D + M) -> (logits, weights)``.
        num_frames: ``T``, frames per clip the temporal model was trained on.
        crop_size: ``S``.
        motion_dim: ``M``, motion numbers a step (0: appearance only, one input).
    """

    def __init__(self, backbone: nn.Module, temporal: nn.Module, num_frames: int, crop_size: int,
                 motion_dim: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.temporal = temporal
        self.num_frames = int(num_frames)
        self.crop_size = int(crop_size)
        self.motion_dim = int(motion_dim)
        self.eval().requires_grad_(False)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, backbone: nn.Module | None = None) -> "ExportModel":
        """Build from a loaded checkpoint; the backbone is created from its config unless given."""
        from activity.features.backbones import create_backbone

        spec = exportable_spec(ckpt)
        if backbone is None:
            backbone = create_backbone(spec.backbone)
        m = spec.descriptor_dim
        dim = getattr(backbone, "feature_dim", ckpt.feature_dim - m) + m
        if dim != ckpt.feature_dim:
            raise ActivityError(
                f"backbone {spec.backbone} gives {dim - m}-d features (+{m} motion) "
                f"but the checkpoint expects {ckpt.feature_dim}"
            )
        return cls(backbone, ckpt.model, spec.num_frames, spec.preprocess.crop_size, m)

    def train(self, mode: bool = True) -> "ExportModel":
        return super().train(False)  # an export is for inference only: dropout stays off

    def forward(self, frames: torch.Tensor, motion: torch.Tensor | None = None) -> torch.Tensor:
        b, t = frames.shape[0], frames.shape[1]
        feats = self.backbone(frames.flatten(0, 1))  # (B*T, D)
        feats = feats.reshape(b, t, feats.shape[-1])
        if self.motion_dim:
            if motion is None:
                raise ValueError(f"this model also needs the motion descriptors (B, T, {self.motion_dim})")
            feats = torch.cat([feats, motion.to(feats.dtype)], -1)  # (B, T, D + M)
        logits, _ = self.temporal(feats, None)
        return logits

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Random inputs of the shapes the graph takes, to trace it with: ``(frames,)`` or ``(frames, motion)``."""
        g = torch.Generator().manual_seed(0)
        s, t = self.crop_size, self.num_frames
        frames = torch.randn(batch_size, t, 3, s, s, generator=g)
        if not self.motion_dim:
            return (frames,)
        return frames, torch.rand(batch_size, t, self.motion_dim, generator=g)


def exportable_spec(ckpt: Checkpoint) -> FeatureSpec:
    """The checkpoint's feature spec, if its streams can be computed outside activity (appearance, motion).

    Raises:
        ActivityError: the model reads the pose stream, which MediaPipe computes outside the graph.
    """
    spec = FeatureSpec.from_config(ckpt.config.features)
    others = [s for s in ckpt.config.features.streams[1:] if s != "motion"]
    if others:
        raise ActivityError(f"a model with the {', '.join(others)} stream cannot be exported: its numbers come from "
                            "MediaPipe's own graphs, outside the model's; use activity predict or the Python API")
    return spec


def preprocess_for_export(frames: np.ndarray | torch.Tensor, spec: FeatureSpec | Checkpoint) -> torch.Tensor:
    """The input one clip needs: uint8 RGB ``(T, H, W, 3)`` -> float32 ``(T, 3, S, S)``.

    This is exactly ``spec.prepare`` (the same call feature extraction
    makes); stack clips along a new first axis for a batch. ``spec`` may be a
    :class:`~activity.features.spec.FeatureSpec` or a loaded checkpoint.
    """
    if isinstance(spec, Checkpoint):
        spec = FeatureSpec.from_config(spec.config.features)
    return spec.prepare(frames)


_ENHANCE = {
    "none": "nothing",
    "dark": "as gamma, but only for frames with m < 0.2 (m before clamping); other frames unchanged",
    "gamma": "per frame, before anything else: m = mean of the grey image (OpenCV RGB2GRAY) / 255, clamped to [1/255, 254/255]; "
             "g = clamp(log(0.5) / log(m), 0.2, 5); each channel value v becomes round(255 * (v / 255) ** g)",
    "clahe": "per frame, before anything else: OpenCV CLAHE (clipLimit 2, 8x8 tiles) on the L channel of RGB2LAB, then back to RGB",
}
_FIT = {
    "crop": "nothing: the resize and centre crop below decide",
    "pad": "after enhance: centre the frame on a square of side ceil(max(h, w) * resize_short_side / crop_size) "
           "filled with round(255 * mean) per channel (top and left margins floor((side - h) / 2), floor((side - w) / 2))",
    "stretch": "after enhance: resize the frame to max(h, w) x max(h, w) (OpenCV INTER_CUBIC), then pad as for frame_fit pad",
}


def motion_metadata(motion: MotionSpec, enhance: str, num_frames: int) -> dict[str, dict[str, Any]]:
    """The sidecar's entries for the second input: its shape, and how to compute it from the video."""
    return {
        "motion_input": {
            "name": MOTION_INPUT_NAME,
            "shape": ["batch", num_frames, motion.dim],
            "dtype": "float32",
            "layout": "batch, sampled frames, motion descriptor (direction histograms, then magnitude shares)",
        },
        "motion": {
            "gap_seconds": motion.gap,
            "gap_frames": "max(1, round(gap_seconds * fps)) with the video's frame rate; 3 when the rate is unknown",
            "pair": "forward in time: for sampled frame i, (i, i + gap) if i + gap < frame_count, "
                    "else (max(i - gap, 0), i)",
            "enhance_before_flow": True,
            "enhance": enhance,
            "enhance_method": _ENHANCE[enhance] + " (on both frames of the pair; frame_fit is not applied)",
            "size": motion.size,
            "grey": "OpenCV RGB2GRAY, then resized (INTER_AREA) to max(8, round(w * size / min(h, w))) x "
                    "max(8, round(h * size / min(h, w)))",
            "flow": "OpenCV DISOpticalFlow, preset ULTRAFAST, first grey frame to second",
            "camera": "subtract the median flow (per component, over all pixels) from every pixel",
            "grid": motion.grid,
            "bins": motion.bins,
            "directions": "bin = floor((atan2(dy, dx) + pi) / (2 pi) * bins) mod bins; cell of pixel (r, c) = "
                          "min(r * grid // h, grid - 1) * grid + min(c * grid // w, grid - 1); value = sum of the "
                          "magnitudes hypot(dx, dy) of the cell's pixels in the bin / the cell's pixel count",
            "magnitude_edges_px": list(MAG_EDGES_PX),
            "magnitudes": "share of all pixels per bin of log1p(magnitude), edges log1p(magnitude_edges_px), "
                          "bin = number of edges below the value (left-closed, as numpy searchsorted left)",
            "order": "grid * grid * bins direction values (cell-major, then bin), then len(edges) + 1 shares",
            "dim": motion.dim,
        },
    }


def export_metadata(ckpt: Checkpoint, fmt: str) -> dict[str, Any]:
    """The sidecar: what a program without ``activity`` needs to feed the exported graph."""
    spec = exportable_spec(ckpt)
    meta = _appearance_metadata(ckpt, spec, fmt)
    for motion in spec.descriptors:  # the motion stream alone, or none
        meta.update(motion_metadata(motion, spec.enhance, spec.num_frames))
    return meta


def _appearance_metadata(ckpt: Checkpoint, spec: FeatureSpec, fmt: str) -> dict[str, Any]:
    pre = spec.preprocess
    s, t = pre.crop_size, spec.num_frames
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "model_format": fmt,
        "activity_version": __version__,
        "classes": list(ckpt.classes),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", t, 3, s, s],
            "dtype": "float32",
            "layout": "batch, frames, RGB channels, height, width",
        },
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(ckpt.classes)], "meaning": "logits; softmax over the last axis gives probabilities"},
        "sampling": {
            "num_frames": t,
            "method": "cut the video into num_frames equal segments and take each segment's centre frame: "
                      "seg = frame_count / num_frames; index_i = min(floor(i * seg + seg / 2), frame_count - 1), "
                      "i = 0 .. num_frames - 1",
        },
        "preprocessing": {
            "color": "RGB",
            "enhance": spec.enhance,
            "enhance_method": _ENHANCE[spec.enhance],
            "frame_fit": spec.frame_fit,
            "frame_fit_method": _FIT[spec.frame_fit],
            "resize_short_side": pre.resize_size,
            "resize_long_side": "floor(resize_short_side * long / short)",
            "interpolation": pre.interpolation,
            "antialias": True,
            "crop": "centre: top = round((height - crop_size) / 2), left = round((width - crop_size) / 2)",
            "crop_size": s,
            "scale": "divide by 255 to [0, 1], then (x - mean) / std per channel",
            "mean": list(pre.mean),
            "std": list(pre.std),
        },
        "backbone": {"name": spec.backbone, "weights": spec.weights},
        "onnx_opset": ONNX_OPSET if fmt == "onnx" else None,
    }


def _prepare_out(out_path: str | Path) -> Path:
    out = Path(out_path)
    if out.is_dir():
        raise ActivityError(f"{out}: is a folder; give the file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ActivityError(f"{out}: cannot create its folder ({e.strerror or type(e).__name__})") from None
    if not os.access(out.parent, os.W_OK):
        raise ActivityError(f"{out}: folder {out.parent} is not writable")
    return out


def export_model(checkpoint_path: str | Path, fmt: str, out_path: str | Path, *, batch_size: int = 1) -> Path:
    """Export a checkpoint, backbone included, to ONNX or TorchScript, with a JSON sidecar.

    Args:
        checkpoint_path: a ``model.pt`` written by ``activity train``.
        fmt: a name of :data:`~activity.registry.EXPORT_FORMATS`: ``"onnx"`` or ``"torchscript"``.
        out_path: the file to write (its folder is created); the sidecar goes to ``<out_path>.json``.
        batch_size: batch of the example input the graph is traced with (ONNX
            uses at least 2, as torch.export would fix a batch axis of size 1).
            Either way the exported graph accepts any batch size.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`. A model trained with the motion
        stream is exported with two inputs, ``frames`` and ``motion``.

    Raises:
        ActivityError: unknown format (:class:`~activity.errors.ConfigError`, naming the choices), missing
            or unreadable checkpoint, an out path that cannot be written, or a missing exporter dependency
            (the ONNX exporter's).
    """
    export_format = EXPORT_FORMATS.get(fmt)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ActivityError(f"batch_size must be a positive integer, got {batch_size!r}")
    export_format.check()
    ckpt = load_checkpoint(checkpoint_path)
    out = _prepare_out(out_path)
    model = ExportModel.from_checkpoint(ckpt).cpu()
    example = model.example_inputs(batch_size)
    sidecar = out.with_name(out.name + ".json")
    try:
        with atomic_path(out) as tmp:
            export_format.write(model, example, tmp)
        with atomic_write(sidecar) as f:
            f.write((json.dumps(export_metadata(ckpt, fmt), indent=2) + "\n").encode())
    except OSError as e:
        raise ActivityError(f"{out}: cannot write ({e.strerror or type(e).__name__})") from None
    return out
