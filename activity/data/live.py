"""Live sources: a camera, a stream URL or a video file, read one frame at a time as it arrives (OpenCV)."""

from __future__ import annotations

import os

import numpy as np

from activity.data.decoders import check_file
from activity.errors import VideoError

LIVE_FPS_MAX = 1000.0
"""A live source reporting this many frames per second or more reports nonsense (some cameras say 0 or 90000)."""


class LiveSource:
    """Frames from a camera, a stream URL or a file, one at a time as the source delivers them (OpenCV).

    Attributes:
        name: the source as given (a camera index as its number).
        is_file: the source is a file (not a camera index, not a URL), so it can
            be played at its own rate.
        fps: frames per second the source reports (0 when unknown or implausible).
    """

    def __init__(self, source: int | str | os.PathLike) -> None:
        import cv2

        self.name = str(source)
        self.is_file = not isinstance(source, int) and "://" not in self.name
        self._cap = cv2.VideoCapture(source if isinstance(source, int) else self.name)
        if not self._cap.isOpened():
            self._cap.release()
            if self.is_file:
                check_file(source)  # a clearer reason where there is one: missing, a directory, empty...
            kind = "camera" if isinstance(source, int) else "stream" if not self.is_file else "video (OpenCV cannot open it)"
            raise VideoError(self.name, f"cannot open the {kind}")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and 0 < fps < LIVE_FPS_MAX else 0.0

    def read(self) -> np.ndarray | None:
        """The next frame as uint8 RGB ``(H, W, 3)``; ``None`` once the source has ended (or failed)."""
        import cv2

        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Release the source."""
        self._cap.release()

    def __enter__(self) -> "LiveSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LiveSource({self.name!r}, fps={self.fps:.2f}, file={self.is_file})"


def open_source(source: int | str | os.PathLike) -> LiveSource:
    """Open a live source: a camera by index (``0``), a stream URL (``rtsp://...``) or a video file.

    Raises:
        VideoError: the source cannot be opened; the message names it.
    """
    return LiveSource(source)
