"""Silencing what C and C++ libraries print on file descriptor 2, and what Python libraries log.

Decoding a damaged file makes OpenCV, its FFmpeg and decord print their own
lines on descriptor 2 ("[ERROR:0@0.3] global cap_ffmpeg_impl.hpp ... Could not
find decoder", decord's "Failed to seek file to position: 0", FFmpeg's
"[h264 @ 0x...]"), ahead of the one ``skipped PATH: reason`` line the commands
print. The decoders (:mod:`activity.data.decoders`) run every open and decode
call inside :func:`quiet_native_stderr`, which points descriptor 2 at the null
device for the call's duration; the pose stream does the same around MediaPipe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Iterator

STDERR_FD = 2
"""The descriptor C and C++ libraries write their logs to, whatever ``sys.stderr`` is in Python."""

_quiet_lock = threading.Lock()
_quiet_depth = 0  # blocks inside quiet_native_stderr now, over all threads
_quiet_saved: int | None = None  # duplicate of the real descriptor 2 while it points at the null device


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at the null device for the block: silences C/C++ library logging.

    OpenCV, its FFmpeg and decord write straight to descriptor 2, so neither
    their log levels (decord's covers only part of it) nor replacing
    ``sys.stderr`` stops them. Python's ``sys.stderr`` is flushed first, so
    nothing written before the block is lost. Blocks may nest and overlap across
    threads: the first to enter redirects, the last to leave restores. Loader
    workers are processes, each with its own descriptors. Where descriptor 2 is
    closed or cannot be duplicated, the block runs unsilenced.
    """
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = _redirect_to_devnull(STDERR_FD)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                os.dup2(_quiet_saved, STDERR_FD)
                os.close(_quiet_saved)
                _quiet_saved = None


def _redirect_to_devnull(fd: int) -> int | None:
    """Point ``fd`` at the null device; return a duplicate of what it was (None where that fails)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to flush
            pass
    try:
        saved = os.dup(fd)
    except OSError:  # descriptor 2 closed: nothing to silence
        return None
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    return saved


@contextlib.contextmanager
def quiet_logger(name: str | None = None) -> Iterator[None]:
    """Only errors from the Python logger ``name`` (None: the root logger) for the block: for libraries that
    log what is not news to the user (torch's C++ toolchain lookup, ONNX Runtime's quantisation tools)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
