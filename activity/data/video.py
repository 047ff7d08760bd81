"""Reading frames from video files.

One interface, :class:`VideoReader`, over two decoders:

* ``decord``: fast random access to the sampled frames (x86-64 Linux and
  Windows wheels only);
* ``opencv``: always available; reads forward through the file, grabbing the
  frames it skips without converting them.

:func:`open_video` with ``decoder="auto"`` chooses per file: OpenCV reading
forward for clips (up to :data:`SEQUENTIAL_MAX_FRAMES` frames: less work than
seeking), decord seeking in longer videos, and OpenCV wherever decord cannot
open a file or fails while decoding one (some HEVC clips make it fail with
"size must exactly match").

Containers can report a wrong frame count. Readers never return a frame past
what really decodes: when a video turns out shorter than reported, the reader
lowers ``num_frames`` and :func:`read_sampled` samples again over the true
length.

Decoding a damaged file makes both libraries print their own lines on file
descriptor 2 ("[ERROR:0@0.3] global cap_ffmpeg_impl.hpp ... Could not find
decoder", decord's "Failed to seek file to position: 0", FFmpeg's
"[h264 @ 0x...]"), ahead of the one ``skipped PATH: reason`` line the commands
print. Every open and decode call runs inside :func:`quiet_native_stderr`,
which points descriptor 2 at the null device for the call's duration.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from activity.data.sampling import segment_indices
from activity.errors import VideoError, first_line
from activity.registry import DECODERS

# OpenCV's FFmpeg prints its own lines ("moov atom not found", "header damaged") for damaged
# files; activity reports each bad file once, with its path and reason, instead.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


_decode_threads = 0  # threads inside one decoder; 0: the library's choice

SEQUENTIAL_MAX_FRAMES = 1000
"""``auto`` reads videos up to this many frames forward (OpenCV) and seeks in longer ones (decord):
with 8 to 32 sampled frames, that is where seeking starts to pay (see :class:`AutoReader`)."""

SEEK_MIN_GAP = 300
""":meth:`OpenCVReader.seek` jumps only this many frames ahead or more: a seek decodes from the keyframe
before its target, which in common files lies up to 250 frames back."""


def set_decode_threads(n: int) -> None:
    """Threads each decoder opened from now on may use (0: the library's choice).

    Loader workers set 1: they decode several clips in parallel, one per
    process, and threads inside a decoder would only contend with the backbone.
    """
    global _decode_threads
    _decode_threads = max(0, int(n))


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


class OpenCVReader(VideoReader):
    """OpenCV decoder: reads forward, grabbing skipped frames without converting them."""

    decoder = "opencv"

    def __init__(self, path: str | os.PathLike, *, count_unknown: bool = True) -> None:
        """Open ``path``; ``count_unknown=False`` leaves ``num_frames`` at 0 when the container does not
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

        with quiet_native_stderr():  # OpenCV's own "[ERROR:0@...] ... Failed to initialize VideoCapture"
            if _decode_threads:
                return cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, _decode_threads])
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

        Leaves ``num_frames`` at the count that decoded. See :meth:`VideoReader.iter_frames`.
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


def _import_decord():
    """decord, imported only after OpenCV (ImportError where it is not installed).

    decord loads its library with ``RTLD_GLOBAL``, which puts its bundled zlib
    1.2.3 (``decord.libs/libz-*.so.1.2.3``) into the process's global symbol
    scope. An extension loaded after that (OpenCV's libpng and FFmpeg) binds
    ``inflateInit2_``/``inflate`` to that old zlib but ``inflateReset2`` (newer
    than 1.2.3) to the system's, so every PNG read in the process then fails
    ("libpng error: bad parameters to zlib"; ``cv2.imread`` returns None).
    Python binds an extension's symbols when it imports it, so importing cv2
    first keeps OpenCV on its own zlib.
    """
    import cv2  # noqa: F401  (before decord: see above)
    import decord

    return decord


class DecordReader(VideoReader):
    """decord decoder: seeks straight to the sampled frames."""

    decoder = "decord"

    def __init__(self, path: str | os.PathLike) -> None:
        decord = _import_decord()
        decord.logging.set_level(decord.logging.QUIET)
        p = check_file(path)
        try:
            with quiet_native_stderr():  # decord's C++ logger prints its own "ERROR opening" line
                vr = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=_decode_threads)
                count = len(vr)
                fps = float(vr.get_avg_fps())
        except Exception as e:  # decord raises its own DECORDError and RuntimeErrors
            raise VideoError(str(p), f"decord cannot open it ({first_line(e, 200) or type(e).__name__})") from None
        if count <= 0:
            raise VideoError(str(p), "no decodable frames")
        self._vr = vr
        # No size yet: decord only knows it by decoding, and the sampled frames tell it for free.
        super().__init__(p, count, fps if np.isfinite(fps) else 0.0, None)

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


class AutoReader(VideoReader):
    """OpenCV or decord, whichever decodes this file's sampled frames with less work; the other where one fails.

    Reading forward and grabbing the skipped frames (OpenCV) costs less than
    seeking (decord) until the frames are far apart: measured on one core, it was
    cheaper for every H.264 and MPEG-4 clip up to 800 frames with 16 samples, and
    seeking won from about 100 frames per sample (H.264) or 200 (MPEG-4). So
    videos up to :data:`SEQUENTIAL_MAX_FRAMES` frames are read forward and longer
    ones, or ones whose length the container does not give, by seeking. A file
    decord cannot open or decode falls back to OpenCV. A caller that reads
    (nearly) every frame in order, such as a timeline, passes ``sequential=True``
    and gets OpenCV whatever the length; decord's memory also grows with the
    length of the video it walks through (1.5 GB against OpenCV's 0.9 GB over a
    2-minute timeline), OpenCV's does not.

    Everything a reader reports comes from the decoder in use at the moment.
    """

    def __init__(self, path: str | os.PathLike, *, sequential: bool = False) -> None:
        p = check_file(path)
        self._inner: VideoReader
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
        if forward is not None:
            forward.close()

    path = property(lambda self: self._inner.path)
    frame_count = property(lambda self: self._inner.frame_count)
    fps = property(lambda self: self._inner.fps)
    size = property(lambda self: self._inner.size)
    decoder = property(lambda self: self._inner.decoder)  # type: ignore[assignment]

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
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
        self._inner.close()


def _open_decord(path: str | os.PathLike, *, sequential: bool = False) -> VideoReader:
    try:
        return DecordReader(path)
    except ImportError:
        raise VideoError(str(path), "decord is not installed on this platform; use decoder 'opencv'") from None


DECODERS.add("auto", AutoReader)
DECODERS.add("decord", _open_decord)
DECODERS.add("opencv", lambda path, *, sequential=False: OpenCVReader(path))


def open_video(path: str | os.PathLike, decoder: str = "auto", *, sequential: bool = False) -> VideoReader:
    """Open a video with the chosen decoder (a name in :data:`~activity.registry.DECODERS`).

    Args:
        path: video file.
        decoder: ``"auto"`` (per file: OpenCV reading forward for clips, decord
            seeking in long videos, OpenCV where decord fails), ``"decord"`` or ``"opencv"``.
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


_quiet_lock = threading.Lock()
_quiet_depth = 0  # blocks inside quiet_native_stderr now, over all threads
_quiet_saved: int | None = None  # duplicate of the real descriptor 2 while it points at the null device

STDERR_FD = 2
"""The descriptor C and C++ libraries write their logs to, whatever ``sys.stderr`` is in Python."""


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
