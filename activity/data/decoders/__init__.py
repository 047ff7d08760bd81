"""Reading frames from video files: one interface, :class:`VideoReader`, over decoders chosen by name.

* ``auto`` (:mod:`~activity.data.decoders.auto`, the default): per file, OpenCV
  reading forward for clips up to 1,000 frames, decord seeking in longer ones,
  OpenCV where decord is missing or fails;
* ``decord`` (:mod:`~activity.data.decoders.decord`): fast random access to the
  sampled frames (x86-64 Linux and Windows wheels only);
* ``opencv`` (:mod:`~activity.data.decoders.opencv`): always available; reads
  forward through the file, grabbing the frames it skips without converting them.

The names are registered here, in :data:`~activity.registry.DECODERS` (which
imports this package the first time it is read); :func:`open_video` opens a file
with one. Each decoder runs its open and decode calls inside
:func:`~activity.data.quiet.quiet_native_stderr`.
"""

from __future__ import annotations

from activity.data.decoders.auto import AUTO_HELP, SEQUENTIAL_MAX_FRAMES, AutoReader
from activity.data.decoders.base import VideoReader, check_file, open_video, read_sampled, set_decode_threads
from activity.data.decoders.decord import open_decord
from activity.data.decoders.opencv import SEEK_MIN_GAP, open_opencv
from activity.registry import DECODERS

DECODERS.add("auto", AutoReader)
DECODERS.add("decord", open_decord)
DECODERS.add("opencv", open_opencv)

__all__ = ["AUTO_HELP", "SEEK_MIN_GAP", "SEQUENTIAL_MAX_FRAMES", "VideoReader", "check_file", "open_video",
           "read_sampled", "set_decode_threads"]
