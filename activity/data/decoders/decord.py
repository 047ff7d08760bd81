"""The ``decord`` decoder: seeks straight to the sampled frames (x86-64 Linux and Windows wheels only).

This module shares its name with the ``decord`` package it wraps; it imports
that package by its absolute name, inside :func:`_import_decord`, never by a
relative import.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Sequence

import numpy as np

from activity.data.decoders.base import VideoReader, check_file, decode_threads
from activity.data.quiet import quiet_native_stderr
from activity.errors import VideoError, first_line


def _import_decord() -> ModuleType:
    """The ``decord`` package, imported only after OpenCV (ImportError where it is not installed).

    decord loads its library with ``RTLD_GLOBAL``, which puts its bundled zlib
    1.2.3 (``decord.libs/libz-*.so.1.2.3``) into the process's global symbol
    scope. An extension loaded after that (OpenCV's libpng and FFmpeg) binds
    ``inflateInit2_``/``inflate`` to that old zlib but ``inflateReset2`` (newer
    than 1.2.3) to the system's, so every PNG read in the process then fails
    ("libpng error: bad parameters to zlib"; ``cv2.imread`` returns None).
    Python binds an extension's symbols when it imports it, so importing cv2
    first keeps OpenCV on its own zlib.
    """
    importlib.import_module("cv2")  # before decord: see above
    return importlib.import_module("decord")  # the package, not this module


class DecordReader(VideoReader):
    """decord decoder: seeks straight to the sampled frames."""

    decoder = "decord"

    def __init__(self, path: str | os.PathLike) -> None:
        decord = _import_decord()
        decord.logging.set_level(decord.logging.QUIET)
        p = check_file(path)
        try:
            with quiet_native_stderr():  # decord's C++ logger prints its own "ERROR opening" line
                vr = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=decode_threads())
                count = len(vr)
                fps = float(vr.get_avg_fps())
        except Exception as e:  # decord raises its own DECORDError and RuntimeErrors
            raise VideoError(str(p), f"decord cannot open it ({first_line(e, 200) or type(e).__name__})") from None
        if count <= 0:
            raise VideoError(str(p), "no decodable frames")
        self._vr = vr
        # No size yet: decord only knows it by decoding, and the sampled frames tell it for free.
        super().__init__(p, count, fps if np.isfinite(fps) else 0.0, None)

    def keyframe_interval(self) -> float:
        """Mean frames from one keyframe to the next (the frame count over the keyframes the container
        indexes; the frame count where it indexes none)."""
        try:
            keys = len(self._vr.get_key_indices())
        except Exception:  # an index decord cannot read: as if one keyframe
            keys = 0
        return self.frame_count / max(keys, 1)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        idx = [int(i) for i in indices]
        if any(i < 0 or i >= self.frame_count for i in idx):
            raise IndexError(f"frame index out of range [0, {self.frame_count})")
        try:
            with quiet_native_stderr():  # "Failed to seek file to position: 0" and FFmpeg's "[h264 @ ...]" lines
                frames = self._vr.get_batch(idx).asnumpy()
        except Exception as e:
            raise VideoError(str(self.path), f"decord failed to decode ({first_line(e, 200) or type(e).__name__})") from None
        if len(frames):
            self._size = (frames.shape[2], frames.shape[1])
        return frames


def open_decord(path: str | os.PathLike, *, sequential: bool = False) -> DecordReader:
    """The ``decord`` entry of :data:`~activity.registry.DECODERS`: a :class:`VideoError` where decord is not installed."""
    try:
        return DecordReader(path)
    except ImportError:
        raise VideoError(str(path), "decord is not installed on this platform; use decoder 'opencv'") from None
