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
            of its centre (testing).
        rng: random generator used when ``random`` is true.

    Returns:
        int64 array of shape ``(num_segments,)``, non-decreasing, each in
        ``[0, num_frames)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    seg = num_frames / num_segments
    starts = np.arange(num_segments) * seg
    if random:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.random(num_segments) * seg
    else:
        offsets = np.full(num_segments, seg / 2)
    idx = np.floor(starts + offsets).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)

