"""The ``auto`` decoder: per file, OpenCV or decord, whichever decodes the sampled frames with less work.

OpenCV reads clips up to :data:`SEQUENTIAL_MAX_FRAMES` (1,000) frames forward,
decord seeks in longer ones where the sampled frames lie further apart than the
video's keyframes (else OpenCV reads those forward too), and OpenCV takes over wherever decord is missing,
cannot open a file or fails while decoding one (some HEVC clips make it fail
with "size must exactly match"). See :class:`AutoReader` for the measurements.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np

from activity.data.decoders.base import VideoReader, check_file
from activity.data.decoders.decord import DecordReader
from activity.data.decoders.opencv import OpenCVReader
from activity.errors import VideoError

SEQUENTIAL_MAX_FRAMES = 1000
"""``auto`` reads videos up to this many frames forward (OpenCV) and seeks in longer ones (decord):
with 8 to 32 sampled frames, that is where seeking starts to pay (see :class:`AutoReader`)."""

AUTO_HELP = (f"per file: OpenCV reading forward for clips up to {SEQUENTIAL_MAX_FRAMES:,} frames, "
             "decord seeking in longer ones where the sampled frames lie further apart than the keyframes, "
             "OpenCV where decord is missing or fails")
"""What ``auto`` does, in one line, for the command line's help and the config's documentation."""


def seeking_pays(indices: Sequence[int], keyframe_interval: float) -> bool:
    """Seeking to each sampled frame decodes less than reading forward: the sampled frames lie further apart,
    on average, than the keyframes (each seek decodes from the keyframe before its sample; reading forward
    decodes everything up to the last). Right for every group ``scripts/benchmark_decode.py`` measured."""
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        return False
    spacing = (idx[-1] + 1) / len(idx)
    return bool(spacing > keyframe_interval)


class AutoReader(VideoReader):
    """OpenCV or decord, whichever decodes this file's sampled frames with less work; the other where one fails.

    Reading forward and grabbing the skipped frames (OpenCV) costs less than
    seeking (decord) until the frames are far apart: measured on one core, it was
    cheaper for every H.264 and MPEG-4 clip up to 800 frames with 16 samples, and
    seeking won from about 100 frames per sample (H.264) or 200 (MPEG-4). So
    videos up to :data:`SEQUENTIAL_MAX_FRAMES` frames are read forward and longer
    ones, or ones whose length the container does not give, by seeking, unless
    the sampled frames lie no further apart than the keyframes: seeking lands on
    the keyframe before each sample and decodes forward from there, so with
    keyframes every 250 frames (x264's default) and samples every 94, decord
    took 7.9 ms a sample against OpenCV's 4.4 reading forward, while with
    keyframes every 12 it saves most of the decoding (``scripts/benchmark_decode.py``).
    The choice is made at the first :meth:`get_frames`, from the indices asked for
    and the container's keyframe index. A file
    decord cannot open or decode, or any file where decord is not installed,
    falls back to OpenCV. A caller that reads (nearly) every frame in order,
    such as a timeline, passes ``sequential=True`` and gets OpenCV whatever the
    length; decord's memory also grows with the length of the video it walks
    through (1.5 GB against OpenCV's 0.9 GB over a 2-minute timeline), OpenCV's
    does not.

    Everything a reader reports comes from the decoder in use at the moment.
    """

    def __init__(self, path: str | os.PathLike, *, sequential: bool = False) -> None:
        p = check_file(path)
        self._inner: VideoReader
        self._forward: OpenCVReader | None = None  # kept open beside decord until the first read says which reads
        try:
            forward: OpenCVReader | None = OpenCVReader(p, count_unknown=sequential)
        except VideoError:
            forward = None
        if forward is not None and (sequential or 0 < forward.frame_count <= SEQUENTIAL_MAX_FRAMES):
            self._inner = forward
            return
        try:
            self._inner = DecordReader(p)
        except (VideoError, ImportError):
            if forward is not None and forward.frame_count > 0:  # already open, and it knows its length
                self._inner = forward
                return
            if forward is not None:
                forward.close()
            self._inner = OpenCVReader(p)  # counts frames where needed; raises OpenCV's reason if it cannot read either
            return
        self._forward = forward

    path = property(lambda self: self._inner.path)
    frame_count = property(lambda self: self._inner.frame_count)
    fps = property(lambda self: self._inner.fps)
    size = property(lambda self: self._inner.size)
    decoder = property(lambda self: self._inner.decoder)  # type: ignore[assignment]

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        if self._forward is not None:  # the first read: decord seeking, or OpenCV reading forward
            forward, self._forward = self._forward, None
            decord = self._inner
            assert isinstance(decord, DecordReader)  # the only inner reader kept beside a forward one
            if forward.frame_count == decord.frame_count and not seeking_pays(indices, decord.keyframe_interval()):
                self._inner.close()
                self._inner = forward
            else:
                forward.close()
        try:
            return self._inner.get_frames(indices)
        except VideoError:
            if isinstance(self._inner, OpenCVReader):
                raise
            self._inner.close()
            self._inner = OpenCVReader(self.path)
            return self._inner.get_frames(np.minimum(np.asarray(indices), self.frame_count - 1))

    def seek(self, index: int) -> None:
        self._inner.seek(index)

    def iter_frames(self, chunk: int = 16) -> Iterator[tuple[int, np.ndarray]]:
        if isinstance(self._inner, OpenCVReader):  # to the real end of the stream
            return self._inner.iter_frames(chunk)
        return super().iter_frames(chunk)  # decord, through get_frames (and its fallback)

    def close(self) -> None:
        if self._forward is not None:
            self._forward.close()
            self._forward = None
        self._inner.close()
