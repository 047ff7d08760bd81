"""Small generated videos for the demo and the tests.

The classes form a temporal-order task: ``moving_right`` and ``moving_left``
hold exactly the same frames in opposite orders (an object crossing a textured
background), as do ``growing`` and ``shrinking``. A model that averages frame
features cannot tell the members of a pair apart; a model that reads the
order can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

ORDER_CLASSES: tuple[str, ...] = ("moving_right", "moving_left", "growing", "shrinking")

_CODECS = {".mp4": "mp4v", ".avi": "FFV1", ".webm": "VP90"}  # FFV1 in AVI is lossless; VP9 in WebM plays in browsers


def write_video(path: str | Path, frames: np.ndarray | Sequence[np.ndarray], fps: float = 12.0) -> Path:
    """Write uint8 RGB frames ``(T, H, W, 3)`` with OpenCV (``.mp4``: MPEG-4; ``.avi``: lossless FFV1; ``.webm``: VP9)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.asarray(f) for f in frames]
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*_CODECS.get(path.suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return path


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    coarse = rng.integers(40, 215, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    bg = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(70, -70, w)[None, :, None]  # bright on the left: position shows in the frame
    return np.clip(bg.astype(np.float32) + ramp, 0, 255).astype(np.uint8)


def motion_frames(kind: str, *, num_frames: int = 24, size: tuple[int, int] = (128, 96), seed: int = 0) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` of one clip: ``kind`` is ``moving`` or ``scaling`` (forward order)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    bg = _background(rng, h, w)
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    edge = tuple(255 - c for c in color)
    cy = int(h * rng.uniform(0.35, 0.65))
    frames = []
    for t in np.linspace(0.0, 1.0, num_frames):
        img = bg.copy()
        if kind == "moving":
            r = h // 4
            cx = int(r + t * (w - 2 * r))
            center, radius = (cx, cy), r
        elif kind == "scaling":
            center, radius = (w // 2, h // 2), int(h * (0.06 + 0.36 * t))
        else:
            raise ValueError(f"unknown motion kind {kind!r}")
        cv2.circle(img, center, radius, color, -1, lineType=cv2.LINE_AA)
        cv2.circle(img, center, max(1, radius // 2), edge, -1, lineType=cv2.LINE_AA)
        frames.append(img)
    return np.stack(frames)


def order_clip(label: str, *, num_frames: int = 24, size: tuple[int, int] = (128, 96), seed: int = 0) -> np.ndarray:
    """Frames of a clip of class ``label`` (one of :data:`ORDER_CLASSES`); pairs share frames for the same seed."""
    kind, reverse = {
        "moving_right": ("moving", False),
        "moving_left": ("moving", True),
        "growing": ("scaling", False),
        "shrinking": ("scaling", True),
    }[label]
    frames = motion_frames(kind, num_frames=num_frames, size=size, seed=seed)
    return frames[::-1] if reverse else frames


def make_order_dataset(
    root: str | Path,
    *,
    classes: Sequence[str] = ORDER_CLASSES,
    clips_per_class: int = 10,
    num_frames: int = 24,
    size: tuple[int, int] = (128, 96),
    fps: float = 12.0,
    seed: int = 0,
    ext: str = ".mp4",
) -> Path:
    """A folder-per-class collection ``root/<class>/<class>_<i><ext>``; clip ``i`` of paired classes shares frames."""
    root = Path(root)
    for label in classes:
        for i in range(clips_per_class):
            frames = order_clip(label, num_frames=num_frames, size=size, seed=seed * 100003 + i)
            write_video(root / label / f"{label}_{i:03d}{ext}", frames, fps)
    return root
