"""The motion stream: what moves, and which way, between a sampled frame and one a moment later.

Frozen ImageNet features describe the scene; in a scene the model never saw, motion is
what carries over. For each sampled step this computes dense optical flow (OpenCV's DIS,
no weights) between the sampled frame and the frame ``gap`` seconds later,
on grey frames scaled to a short side of ``size`` pixels, and summarises it as

* per cell of a ``grid x grid`` layout, a histogram of flow directions in ``bins`` bins,
  each bin the mean magnitude of the cell's pixels moving that way (pixels per ``gap``
  seconds at ``size`` px, camera motion removed as the frame's median flow), and
* a histogram of the log-magnitudes of all pixels in ``mag_bins`` bins (shares of the frame).

That is ``grid * grid * bins + mag_bins`` numbers a step (80 by default), computed from
frames the extraction decodes anyway, in NumPy and OpenCV alone (``scripts/run_exported.py``
uses the same function).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from activity.data.sampling import segment_indices
from activity.data.decoders import VideoReader
from activity.errors import ActivityError

#: Upper edges, in pixels (at ``size`` px), of the flow magnitudes' histogram (binned as log1p of both).
MAG_EDGES_PX = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
_MAG_EDGES = np.log1p(np.array(MAG_EDGES_PX))


@dataclass(frozen=True)
class MotionSpec:
    """Everything that determines the motion features (their cache key).

    Attributes:
        gap: seconds between a sampled frame and its partner (3 frames at 30 fps).
        size: short side, in pixels, of the grey frames the flow is computed on.
        grid: cells per side of the direction histograms.
        bins: flow directions per cell.
    """

    gap: float = 0.1
    size: int = 128
    grid: int = 3
    bins: int = 8

    @property
    def dim(self) -> int:
        """Numbers per step."""
        return self.grid * self.grid * self.bins + len(_MAG_EDGES) + 1

    def settings(self) -> str:
        """The settings in one string (part of the feature cache key)."""
        return f"flow-gap{self.gap:g}-s{self.size}-g{self.grid}-b{self.bins}"

    def partner_gap(self, fps: float) -> int:
        """Frames between a sampled frame and its partner at ``fps`` (at least 1; 3 when the rate is unknown)."""
        return max(1, round(self.gap * fps)) if fps > 0 else 3

    def compute(self, frames: np.ndarray, first: np.ndarray | None, second: np.ndarray | None,
                enhance: str) -> np.ndarray:
        """The stream's descriptors ``(T, dim)``: :func:`motion_features` of the brightened flow pairs
        (``frames``, the sampled frames themselves, are not needed)."""
        from activity.transforms.adjust import adjust_frames

        if first is None or second is None:
            raise ActivityError("the motion stream needs each sampled frame's flow pair (first, second)")
        return motion_features(adjust_frames(np.asarray(first), enhance=enhance),
                               adjust_frames(np.asarray(second), enhance=enhance), self)


def flow_pairs(indices: np.ndarray, frame_count: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """The two frames, in time order, whose flow describes each sampled frame's motion.

    The sampled frame and the one ``gap`` frames later; near the end of the video, the
    one ``gap`` frames earlier and the sampled frame (so the flow always runs forward in time).

    Args:
        indices: sampled frame indices ``(T,)``.
        frame_count: frames in the video.
        gap: frames between the two.

    Returns:
        ``(first, second)``: int64 indices ``(T,)`` each.
    """
    idx = np.asarray(indices, dtype=np.int64)
    fits = idx + gap < frame_count
    return np.where(fits, idx, np.maximum(idx - gap, 0)), np.where(fits, idx + gap, idx)


def read_with_pairs(reader: VideoReader, num_segments: int, spec: Any
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The sampled frames and, for each, the two frames of its flow, decoded in one pass.

    Sampling as :func:`~activity.data.decoders.read_sampled` (segment centres); if decoding
    shows that the container over-reported its length, everything is sampled again.

    Args:
        reader: the open video.
        num_segments: frames to sample.
        spec: anything with ``partner_gap(fps) -> int | None`` (a :class:`MotionSpec`, or a
            :class:`~activity.features.spec.FeatureSpec`, None when no stream needs pairs).

    Returns:
        ``(frames, first, second)``: uint8 RGB ``(num_segments, H, W, 3)`` each; ``first`` and
        ``second`` None when ``spec`` needs no pairs.
    """
    t = num_segments
    for _ in range(3):
        n = reader.frame_count
        idx = segment_indices(n, t)
        gap = spec.partner_gap(reader.fps)
        if gap is None:
            wanted = idx
        else:
            first, second = flow_pairs(idx, n, gap)
            wanted = np.concatenate([idx, first, second])
        frames = reader.get_frames(wanted)
        if reader.frame_count == n:
            break
    if gap is None:
        return frames, None, None
    return frames[:t], frames[t : 2 * t], frames[2 * t :]


def _grey(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    dsize = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), dsize, interpolation=cv2.INTER_AREA) for f in frames])


def flow_histograms(flow: np.ndarray, spec: MotionSpec) -> np.ndarray:
    """One step's descriptor ``(spec.dim,)`` float32 of a flow field ``(H, W, 2)`` (see the module's docstring)."""
    flow = flow - np.median(flow.reshape(-1, 2), axis=0)  # the camera's own motion
    mag = np.hypot(flow[..., 0], flow[..., 1])
    direction = ((np.arctan2(flow[..., 1], flow[..., 0]) + np.pi) / (2 * np.pi) * spec.bins).astype(np.int64) % spec.bins
    h, w = mag.shape
    rows = np.minimum(np.arange(h) * spec.grid // h, spec.grid - 1)
    cols = np.minimum(np.arange(w) * spec.grid // w, spec.grid - 1)
    cell = rows[:, None] * spec.grid + cols[None, :]
    where = (cell * spec.bins + direction).ravel()
    sums = np.bincount(where, weights=mag.ravel(), minlength=spec.grid * spec.grid * spec.bins)
    pixels = np.bincount(cell.ravel(), minlength=spec.grid * spec.grid).repeat(spec.bins)
    shares = np.bincount(np.searchsorted(_MAG_EDGES, np.log1p(mag).ravel()), minlength=len(_MAG_EDGES) + 1) / mag.size
    return np.concatenate([sums / np.maximum(pixels, 1), shares]).astype(np.float32)


def motion_features(first: np.ndarray, second: np.ndarray, spec: MotionSpec) -> np.ndarray:
    """Motion descriptors ``(T, spec.dim)`` float32: the flow from each frame of ``first`` to its pair in ``second``.

    Args:
        first: uint8 RGB frames ``(T, H, W, 3)`` (after the frame adjustments, so that dark
            footage is brightened first); see :func:`flow_pairs`.
        second: the frames ``gap`` seconds after them ``(T, H, W, 3)``.
        spec: the descriptor's settings.
    """
    import cv2

    if len(first) == 0:
        return np.zeros((0, spec.dim), np.float32)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    a, b = _grey(np.asarray(first), spec.size), _grey(np.asarray(second), spec.size)
    return np.stack([flow_histograms(dis.calc(x, y, None), spec) for x, y in zip(a, b)])
