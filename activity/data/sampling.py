"""Which frames of a video to look at: TSN-style uniform segment sampling.

A video of ``num_frames`` frames is cut into ``num_segments`` equal segments and
one frame is taken from each: the segment's centre at test time, a uniformly
random position inside it at training time. A video shorter than
``num_segments`` yields repeated frames, in order.
"""

from __future__ import annotations

import numpy as np


def segment_indices(
    num_frames: int,
    num_segments: int,
    *,
    random: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices, one per segment.

    Args:
        num_frames: frames in the video (at least 1).
        num_segments: how many frames to return (at least 1).
        random: pick a random position inside each segment (training) instead
            of its centre (testing); see :func:`jittered_segment_indices`.
        rng: random generator used when ``random`` is true.

    Returns:
        int64 array of shape ``(num_segments,)``, non-decreasing, each in
        ``[0, num_frames)``.
    """
    if random:
        return jittered_segment_indices(num_frames, num_segments, 1, rng)[0]
    _check(num_frames, num_segments)
    seg = num_frames / num_segments
    return _floor_clip(np.arange(num_segments) * seg + seg / 2, num_frames)


def jittered_segment_indices(
    num_frames: int,
    num_segments: int,
    batch: int,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Training-time indices for ``batch`` clips at once: a uniformly random position inside each segment.

    Each clip draws its own positions. With one clip this is
    ``segment_indices(num_frames, num_segments, random=True, rng=rng)`` (same draws from ``rng``).

    Args:
        num_frames: frames (or cached steps) per clip (at least 1).
        num_segments: indices per clip (at least 1).
        batch: clips (at least 0).
        rng: random generator; a fresh unseeded one when ``None``.

    Returns:
        int64 array of shape ``(batch, num_segments)``; each row non-decreasing,
        index ``j`` in segment ``[j * L / n, (j + 1) * L / n)``.
    """
    _check(num_frames, num_segments)
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    rng = rng if rng is not None else np.random.default_rng()
    seg = num_frames / num_segments
    offsets = rng.random((batch, num_segments)) * seg
    return _floor_clip(np.arange(num_segments) * seg + offsets, num_frames)


def _check(num_frames: int, num_segments: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")


def _floor_clip(positions: np.ndarray, num_frames: int) -> np.ndarray:
    """Frame indices (int64) of fractional positions, kept inside ``[0, num_frames)``."""
    return np.clip(np.floor(positions).astype(np.int64), 0, num_frames - 1)
