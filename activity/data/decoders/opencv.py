"""The ``opencv`` decoder: always available; reads forward through the file, grabbing the frames it
skips without converting them, and seeks only far ahead."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from activity.data.decoders.base import VideoReader, check_file, decode_threads
from activity.data.quiet import quiet_native_stderr
from activity.errors import VideoError

# OpenCV's FFmpeg prints its own lines ("moov atom not found", "header damaged") for damaged
# files; activity reports each bad file once, with its path and reason, instead.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

SEEK_MIN_GAP = 300
""":meth:`OpenCVReader.seek` jumps only this many frames ahead or more: a seek decodes from the keyframe
before its target, which in common files lies up to 250 frames back."""


class OpenCVReader(VideoReader):
    """OpenCV decoder: reads forward, grabbing skipped frames without converting them."""

    decoder = "opencv"

    def __init__(self, path: str | os.PathLike, *, count_unknown: bool = True) -> None:
        """Open ``path``; ``count_unknown=False`` leaves ``frame_count`` at 0 when the container does not
        say it, instead of reading the whole file once to count."""
        p = check_file(path)
        cap = self._open(p)
        if not cap.isOpened():
            raise VideoError(str(p), "not a readable video (OpenCV cannot open it)")
        import cv2

        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._cap = cap
        self._pos = 0  # index of the next frame grab() returns
        self._msec0: float | None = None  # the first frame's timestamp (checks where a seek landed)
        self._seekable = True  # False once a seek landed elsewhere: this file is read forward only
        self.path = p
        if count <= 0 or w <= 0 or h <= 0:
            count = 0
            if count_unknown:  # unknown length: count by reading through once
                count = self._count_frames()
                if count == 0:
                    raise VideoError(str(p), "no decodable frames")
        super().__init__(p, count, fps if np.isfinite(fps) else 0.0, (w, h))

    @staticmethod
    def _open(path: Path):
        import cv2

        threads = decode_threads()
        with quiet_native_stderr():  # OpenCV's own "[ERROR:0@...] ... Failed to initialize VideoCapture"
            if threads:
                return cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads])
            return cv2.VideoCapture(str(path))

    def _rewind(self) -> None:
        self._cap.release()
        self._cap = self._open(self.path)
        self._pos = 0

    def _count_frames(self) -> int:
        n = 0
        with quiet_native_stderr():
            while self._cap.grab():
                n += 1
        self._rewind()
        return n

    def seek(self, index: int) -> None:
        """Jump to frame ``index`` when it is :data:`SEEK_MIN_GAP` frames ahead or more.

        OpenCV seeks by timestamp. The frame before ``index`` is grabbed after the jump and its
        timestamp compared with the one that frame has when reading forward at a constant rate
        (the first frame's, plus ``(index - 1) / fps``); where they differ by a quarter of a frame
        or more (a variable frame rate, a broken index) the reader goes back to the start and reads
        this file forward from then on, so the frames decoded afterwards are always the ones reading
        forward gives.
        """
        import cv2

        if index - self._pos < SEEK_MIN_GAP or self.fps <= 0 or not self._seekable:
            return
        with quiet_native_stderr():
            if self._msec0 is None:
                if self._pos:
                    self._rewind()
                if not self._cap.grab():
                    return
                self._msec0 = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
                self._pos = 1
            landed = self._cap.set(cv2.CAP_PROP_POS_FRAMES, index - 1) and self._cap.grab()
            want = self._msec0 + (index - 1) * 1000.0 / self.fps
            if landed and abs(float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) - want) < 250.0 / self.fps:
                self._pos = index
                return
        self._seekable = False  # somewhere else: read forward from the start, now and from now on
        self._rewind()

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        import cv2

        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        wanted = np.unique(idx)
        if wanted[0] < self._pos:
            self._rewind()
        decoded: dict[int, np.ndarray] = {}
        with quiet_native_stderr():
            for i in wanted:
                while self._pos < i:  # skip without converting
                    if not self._cap.grab():
                        break
                    self._pos += 1
                ok, frame = (self._cap.read() if self._pos == i else (False, None))
                if not ok or frame is None:
                    break
                self._pos += 1
                decoded[int(i)] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if len(decoded) < len(wanted):
            # The container over-reported its length: the stream ended after self._pos frames.
            # Never index past what decodes.
            if self._pos == 0:
                raise VideoError(str(self.path), "no decodable frames")
            self.frame_count = self._pos
            if not decoded:
                return self.get_frames(np.minimum(idx, self._pos - 1))
        last = decoded[max(decoded)]
        h, w = last.shape[:2]
        self._size = (w, h)  # what decodes, e.g. after a rotation
        return np.stack([decoded.get(int(i), last) for i in idx])

    def iter_frames(self, chunk: int = 16) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame in order, read forward to the end of the stream whatever the container reported.

        Leaves ``frame_count`` at the count that decoded. See :meth:`VideoReader.iter_frames`.
        """
        import cv2

        if self._pos:
            self._rewind()
        while True:
            with quiet_native_stderr():  # per frame: the caller's own output between frames stays visible
                ok, frame = self._cap.read()
            if not ok or frame is None:
                break
            self._pos += 1
            yield self._pos - 1, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if self._pos == 0:
            raise VideoError(str(self.path), "no decodable frames")
        self.frame_count = self._pos

    def close(self) -> None:
        self._cap.release()


def open_opencv(path: str | os.PathLike, *, sequential: bool = False) -> OpenCVReader:
    """The ``opencv`` entry of :data:`~activity.registry.DECODERS` (it reads forward whatever ``sequential`` says)."""
    return OpenCVReader(path)
