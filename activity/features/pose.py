"""The pose stream: where the person's body is, and how it is held, in each sampled frame.

MediaPipe's BlazePose (its legacy ``solutions.pose`` API, whose two TFLite models ship inside the
``mediapipe`` wheel: no download, Apache-2.0) finds one person per frame and 33 body landmarks.
Each sampled frame becomes ``dim`` numbers:

* the 33 landmarks' ``(x, y)``, centred on the hips' midpoint and divided by the torso's length
  (hips' to shoulders' midpoint), so that where the person stands and how large they appear
  do not change them (66 numbers);
* each landmark's visibility, as MediaPipe scores it (33);
* where the body is in the frame: the hips' midpoint ``(x, y)`` as shares of the frame's width and
  height, and the torso's length as a share of the frame's height (3): for actions that are a
  change of place or of size (walking off, sitting down, falling);
* ``found``: 1 where a person was found, else 0 with every other number 0 (1).

The frames are brightened as the appearance stream's are (``features.enhance``): on dark footage
that finds a person in more frames. Frames whose short side is under ``min_side`` pixels are put
on a grey border of that size instead of being scaled up (BlazePose finds small people on a
padded frame far more often than on an enlarged one). The person detector's confidence
threshold is ``confidence``.

MediaPipe 0.10.21 is the last release with this API; ``make pose`` installs it (Python 3.9 to
3.12) without the NumPy 1 and OpenCV builds it declares, which it does not need for this.
"""

from __future__ import annotations

import atexit
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from activity.errors import ActivityError, describe
from activity.transforms.adjust import adjust_frames

#: Body landmarks BlazePose gives, and the ones the torso is measured between.
LANDMARKS = 33
_SHOULDERS, _HIPS = (11, 12), (23, 24)
_GREY = 128

#: What to install when MediaPipe is missing (one line, in every message that needs it).
INSTALL_HINT = "the pose stream needs MediaPipe 0.10.21 (Python 3.9 to 3.12): run make pose, or see the README's 'Pose stream'"


@dataclass(frozen=True)
class PoseSpec:
    """Everything that determines the pose features (part of their cache key).

    Attributes:
        confidence: BlazePose's minimum detection confidence (0.3 found more people than 0.5 on
            every set it was tried on).
        complexity: BlazePose's landmark model (0 lite, 1 full, 2 heavy: only 0 and 1 ship in the wheel).
        min_side: frames with a shorter side are padded with grey to this size, not scaled up.
    """

    confidence: float = 0.3
    complexity: int = 1
    min_side: int = 256

    #: Numbers a step: normalised landmarks, visibilities, position and scale, found.
    dim = 2 * LANDMARKS + LANDMARKS + 3 + 1

    def settings(self) -> str:
        """The settings in one string (part of the feature cache key)."""
        return f"pose-blazepose{self.complexity}-c{self.confidence:g}-pad{self.min_side}"

    def partner_gap(self, fps: float) -> None:
        """The pose of a frame needs no other frame."""
        return None

    def compute(self, frames: np.ndarray, first: np.ndarray | None, second: np.ndarray | None,
                enhance: str) -> np.ndarray:
        """Pose descriptors ``(T, dim)`` float32 of the sampled uint8 RGB frames ``(T, H, W, 3)`` (see the module).

        MediaPipe does not survive ``fork``: a loader worker forked from a process that has run BlazePose
        crashes when it starts its own. So BlazePose runs only in loader workers and in one helper process
        (:class:`_Helper`), never in the process that forks the workers.
        """
        frames = np.asarray(frames)
        if not len(frames):
            return np.zeros((0, self.dim), np.float32)
        check_installed()  # here, so that a missing install is one line in this process
        if _runs_here():
            return self.compute_here(frames, enhance)
        return _helper().compute(self, frames, enhance)

    def compute_here(self, frames: np.ndarray, enhance: str) -> np.ndarray:
        """:meth:`compute` in this process (a loader worker, or the helper)."""
        from activity.data.quiet import quiet_native_stderr

        out = np.zeros((len(frames), self.dim), np.float32)

        model = _pose_model(self.complexity, self.confidence)
        with quiet_native_stderr():  # TensorFlow Lite and absl log to descriptor 2 on the first frames
            for t, frame in enumerate(adjust_frames(frames, enhance=enhance)):
                image, box = self._padded(frame)
                result = model.process(image)
                if result.pose_landmarks is not None:
                    out[t] = self.describe(_landmark_array(result.pose_landmarks), box, image.shape[1::-1])
        return out

    def _padded(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The frame on a grey canvas whose sides are at least ``min_side`` (unchanged if it is that large),
        and where it lies there: ``(x0, y0, width, height)`` in canvas pixels."""
        h, w = frame.shape[:2]
        if min(h, w) >= self.min_side:
            return np.ascontiguousarray(frame), (0, 0, w, h)
        ch, cw = max(h, self.min_side), max(w, self.min_side)
        y0, x0 = (ch - h) // 2, (cw - w) // 2
        canvas = np.full((ch, cw, 3), _GREY, np.uint8)
        canvas[y0 : y0 + h, x0 : x0 + w] = frame
        return canvas, (x0, y0, w, h)

    def describe(self, landmarks: np.ndarray, box: tuple[int, int, int, int], canvas: tuple[int, int]) -> np.ndarray:
        """One frame's descriptor ``(dim,)`` from BlazePose's landmarks ``(33, 3)`` (x and y as shares of the
        canvas, visibility), the frame's place ``box`` on the canvas (see :meth:`_padded`) and the canvas's
        ``(width, height)``."""
        x0, y0, w, h = box
        xy = landmarks[:, :2] * np.asarray(canvas, np.float64) - (x0, y0)  # frame pixels
        hips = xy[list(_HIPS)].mean(0)
        torso = max(float(np.linalg.norm(xy[list(_SHOULDERS)].mean(0) - hips)), 1.0)
        where = np.array([hips[0] / w, hips[1] / h, torso / h])
        return np.concatenate([((xy - hips) / torso).ravel(), landmarks[:, 2], where, [1.0]]).astype(np.float32)


_IN_HELPER = False
_HELPER: "_Helper | None" = None


def _runs_here() -> bool:
    """Whether BlazePose may run in this process: a loader worker, or the helper."""
    from torch.utils.data import get_worker_info

    return _IN_HELPER or get_worker_info() is not None


class _Helper:
    """A child process (a fresh interpreter, not a fork, and not one that re-runs the caller's script as
    ``multiprocessing``'s spawn would) that computes pose descriptors: ``(spec, frames, enhance)`` in,
    ``(T, dim)`` or an error out, pickled over its standard input and output."""

    def __init__(self) -> None:
        import subprocess
        import threading

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen([sys.executable, "-c", "from activity.features.pose import serve; serve()"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._lock = threading.Lock()
        atexit.register(self.close)

    def compute(self, spec: PoseSpec, frames: np.ndarray, enhance: str) -> np.ndarray:
        import pickle

        with self._lock:
            try:
                pickle.dump((spec, frames, enhance), self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[arg-type]
                self._proc.stdin.flush()  # type: ignore[union-attr]
                out = pickle.load(self._proc.stdout)  # type: ignore[arg-type]
            except (OSError, EOFError, pickle.UnpicklingError):
                raise ActivityError(f"the pose stream's helper process stopped (exit code {self._proc.poll()})") from None
        if isinstance(out, str):
            raise ActivityError(out)
        return out

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait(timeout=10)


def serve() -> None:
    """The helper's loop (see :class:`_Helper`). Its standard output carries the answers, so what native
    libraries print there goes to standard error instead."""
    import pickle

    global _IN_HELPER
    _IN_HELPER = True
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    while True:
        try:
            spec, frames, enhance = pickle.load(requests)
        except EOFError:
            return
        try:
            out: Any = spec.compute_here(frames, enhance)
        except Exception as e:  # answered as one line; the helper keeps serving
            out = f"pose: {describe(e)}"
        pickle.dump(out, channel, protocol=pickle.HIGHEST_PROTOCOL)
        channel.flush()


def _helper() -> _Helper:
    """The one helper process that runs BlazePose for this process, started on first use."""
    global _HELPER
    if _HELPER is None:
        _HELPER = _Helper()
    return _HELPER


def _landmark_array(landmarks: Any) -> np.ndarray:
    return np.array([(p.x, p.y, p.visibility) for p in landmarks.landmark], np.float64)


_MODELS: dict[tuple[int, int, float], Any] = {}  # one per process and setting: loading the graph takes about 0.2 s


def _pose_model(complexity: int, confidence: float) -> Any:
    """BlazePose on single images (each sampled frame is seconds from the last: nothing to track).

    One per process: a loader worker forked after the parent used BlazePose inherits the parent's graph
    without its threads, and would wait on them forever, so the cache is keyed by process id too.
    """
    key = (os.getpid(), complexity, confidence)
    if key not in _MODELS:
        mp_pose = import_mediapipe_pose()
        from activity.data.quiet import quiet_native_stderr

        with quiet_native_stderr(), warnings.catch_warnings():  # TensorFlow Lite's and absl's start-up lines
            warnings.simplefilter("ignore", DeprecationWarning)  # MediaPipe reads protobuf's deprecated FieldDescriptor.label
            _MODELS[key] = mp_pose.Pose(static_image_mode=True, model_complexity=complexity,
                                        min_detection_confidence=confidence)
    return _MODELS[key]


def import_mediapipe_pose() -> Any:
    """``mediapipe.solutions.pose``, or an :class:`ActivityError` with :data:`INSTALL_HINT`.

    MediaPipe 0.10.21 calls ``MessageFactory.GetPrototype``, which protobuf 5 removed in favour of
    ``message_factory.GetMessageClass``; where it is missing it is put back as that function.
    """
    if sys.version_info >= (3, 13):
        raise ActivityError(f"{INSTALL_HINT}; this is Python {sys.version_info.major}.{sys.version_info.minor}")
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        from google.protobuf import message_factory

        if not hasattr(message_factory.MessageFactory, "GetPrototype"):
            message_factory.MessageFactory.GetPrototype = lambda self, descriptor: message_factory.GetMessageClass(descriptor)
        from mediapipe.python.solutions import pose
    except ImportError as e:
        raise ActivityError(f"{INSTALL_HINT} ({e.msg if hasattr(e, 'msg') else e})") from None
    return pose


def check_installed() -> None:
    """An :class:`ActivityError` with :data:`INSTALL_HINT` where MediaPipe cannot serve the pose stream; MediaPipe
    itself is not imported (in the process that forks loader workers, it must not be)."""
    import importlib.util

    if sys.version_info >= (3, 13):
        raise ActivityError(f"{INSTALL_HINT}; this is Python {sys.version_info.major}.{sys.version_info.minor}")
    if importlib.util.find_spec("mediapipe") is None:
        raise ActivityError(f"{INSTALL_HINT} (no module named 'mediapipe')")


def pose_available() -> bool:
    """Whether MediaPipe is installed for the pose stream (without importing it)."""
    try:
        check_installed()
    except ActivityError:
        return False
    return True
