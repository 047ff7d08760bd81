"""What every decoder gives: the :class:`VideoReader` interface, opening by name, sampled reading.

A decoder is a :class:`VideoReader` subclass in a module of its own
(:mod:`~activity.data.decoders.opencv`, :mod:`~activity.data.decoders.decord`,
:mod:`~activity.data.decoders.auto`), registered by name in
:data:`~activity.registry.DECODERS`; :func:`open_video` opens a file with one.

Containers can report a wrong frame count. Readers never return a frame past
what really decodes: when a video turns out shorter than reported, the reader
lowers ``frame_count`` and :func:`read_sampled` samples again over the true
length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from activity.data.sampling import segment_indices
from activity.errors import VideoError
from activity.registry import DECODERS

_decode_threads = 0  # threads inside one decoder; 0: the library's choice


def set_decode_threads(n: int) -> None:
    """Threads each decoder opened from now on may use (0: the library's choice).

    Loader workers set 1: they decode several clips in parallel, one per
    process, and threads inside a decoder would only contend with the backbone.
    """
    global _decode_threads
    _decode_threads = max(0, int(n))


def decode_threads() -> int:
    """Threads a decoder opened now may use (0: the library's choice); see :func:`set_decode_threads`."""
    return _decode_threads


def check_file(path: str | os.PathLike) -> Path:
    """Fail with a clear :class:`VideoError` unless ``path`` is a non-empty readable file."""
    p = Path(path)
    if not p.exists():
        raise VideoError(str(p), "no such file")
    if p.is_dir():
        raise VideoError(str(p), "is a directory, not a video file")
    if not os.access(p, os.R_OK):
        raise VideoError(str(p), "permission denied")
    if p.stat().st_size == 0:
        raise VideoError(str(p), "empty file (0 bytes)")
    return p


class VideoReader:
    """Random access to the frames of one video.

    Attributes:
        path: the file.
        frame_count: frames in the video, as far as is known (may be lowered
            once decoding finds fewer).
        fps: frames per second reported by the container (0 when unknown).
        size: ``(width, height)`` in pixels (``width``, ``height`` alike).
        decoder: name of the decoder in use.
    """

    decoder: str = "?"

    def __init__(self, path: Path, frame_count: int, fps: float, size: tuple[int, int] | None) -> None:
        self.path = path
        self.frame_count = frame_count
        self.fps = fps
        self._size = size  # None: not known until a frame is decoded (see _probe_size)

    @property
    def duration(self) -> float:
        """Length in seconds (0 when the frame rate is unknown)."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        if self._size is None:
            self._size = self._probe_size()
        return self._size

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def _probe_size(self) -> tuple[int, int]:
        """Frame size when the container did not say it; decodes a frame."""
        frame = self.get_frames([0])[0]
        return frame.shape[1], frame.shape[0]

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Decode frames by index.

        Args:
            indices: frame indices in ``[0, frame_count)``, in any order, repeats allowed.

        Returns:
            uint8 RGB array of shape ``(len(indices), H, W, 3)``.

        Raises:
            VideoError: the file cannot be decoded.
        """
        raise NotImplementedError

    def seek(self, index: int) -> None:
        """A hint that the next :meth:`get_frames` call starts at frame ``index``; readers that would
        otherwise decode every frame before it (OpenCV) jump there. Frames decoded afterwards are
        the same as without the hint. The base reader seeks on every call: nothing to do."""

    def iter_frames(self, chunk: int = 16) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame in order from the first, decoded once each.

        Stops after the last frame that decodes (``frame_count`` is lowered when
        the container over-reported it).

        Args:
            chunk: frames decoded per call to :meth:`get_frames`.

        Yields:
            ``(index, frame)``: the frame index and its uint8 RGB ``(H, W, 3)`` image.

        Raises:
            VideoError: the file cannot be decoded.
        """
        i = 0
        while i < self.frame_count:
            frames = self.get_frames(np.arange(i, min(i + chunk, self.frame_count)))
            n = min(len(frames), self.frame_count - i)  # frame_count may have dropped while decoding
            for k in range(n):
                yield i + k, frames[k]
            i += n

    def close(self) -> None:  # pragma: no cover - trivial
        """Release the decoder."""

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, frames={self.frame_count}, "
            f"fps={self.fps:.2f}, size={self.width}x{self.height})"
        )


def open_video(path: str | os.PathLike, decoder: str = "auto", *, sequential: bool = False) -> VideoReader:
    """Open a video with the chosen decoder (a name in :data:`~activity.registry.DECODERS`).

    Args:
        path: video file.
        decoder: ``"auto"`` (per file: OpenCV reading forward for clips up to
            1,000 frames, decord seeking in longer ones where the sampled frames lie
            further apart than the keyframes, OpenCV where decord is missing or fails;
            see :class:`~activity.data.decoders.auto.AutoReader`),
            ``"decord"`` or ``"opencv"``.
        sequential: the caller will read (nearly) every frame in order; ``auto``
            then reads forward (OpenCV) whatever the length.

    Raises:
        VideoError: the file is missing, empty, or not a readable video.
        ConfigError: an unknown decoder name.
    """
    return DECODERS.get(decoder)(path, sequential=sequential)


def read_sampled(
    reader: VideoReader,
    num_segments: int,
    *,
    random: bool = False,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``num_segments`` frames uniformly over the video and decode them.

    If decoding shows that the container over-reported its length, the frames
    are sampled again over the true length.

    Returns:
        ``(frames, indices)``: uint8 RGB ``(num_segments, H, W, 3)`` and the
        int64 frame indices ``(num_segments,)`` they came from.
    """
    for _ in range(3):
        n = reader.frame_count
        indices = segment_indices(n, num_segments, random=random, rng=rng)
        frames = reader.get_frames(indices)
        if reader.frame_count == n:
            return frames, indices
    return frames, np.minimum(indices, reader.frame_count - 1)
