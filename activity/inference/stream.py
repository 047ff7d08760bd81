"""Live sources: a camera, a stream URL, or a file played at its real rate.

A reader thread pulls frames as they arrive into a rolling buffer holding the
last ``window`` seconds. The main loop classifies that buffer ``rate`` times a
second. When classification is slower than the source, the buffer rolls on
rather than queueing: frames that left the buffer before any prediction saw
them are counted as dropped, and predictions never lag behind the source.
A model trained with the motion stream gets each sampled frame's flow from the
buffered frame ``gap`` seconds after it, as extraction takes it from a file.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from activity.data.sampling import segment_indices
from activity.data.live import open_source
from activity.errors import ActivityError
from activity.features.motion import flow_pairs

if TYPE_CHECKING:
    from activity.inference.recognizer import ActionRecognizer


@dataclass
class StreamResult:
    """One prediction: seconds since the start, the top-k labels and probabilities (most probable first),
    frames dropped so far."""

    time: float
    labels: list[str]
    probabilities: list[float]
    dropped: int

    label = property(lambda self: self.labels[0], doc="The most probable label.")
    probability = property(lambda self: self.probabilities[0], doc="Its probability.")

    def as_dict(self) -> dict:
        """``{"time", "label", "probability", "top_k": [{"label", "probability"}], "dropped"}``: the top label, and
        the top-k as ``predict --json`` writes a video's."""
        return {"time": round(self.time, 2), "label": self.label, "probability": round(self.probability, 4),
                "top_k": [{"label": l, "probability": round(p, 4)} for l, p in zip(self.labels, self.probabilities)],
                "dropped": self.dropped}


@dataclass
class StreamStats:
    frames_read: int = 0
    frames_dropped: int = 0
    inferences: int = 0


class _Source:
    """Reads frames on a thread into a ring buffer of ``(frame id, RGB frame)``."""

    def __init__(self, source: str, window: float) -> None:
        self.src = open_source(int(source) if source.isdigit() else source)
        self.is_file = self.src.is_file
        self.fps = self.src.fps or 30.0
        self.buffer: deque[tuple[int, np.ndarray]] = deque(maxlen=max(1, round(window * self.fps)))
        self.lock = threading.Lock()
        self.frames_read = 0
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while not self.finished.is_set():
            frame = self.src.read()
            if frame is None:
                break
            with self.lock:
                self.buffer.append((self.frames_read, frame))
                self.frames_read += 1
            if self.is_file:  # play a file at its real rate
                delay = start + self.frames_read / self.fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        self.finished.set()
        self.src.close()

    def snapshot(self) -> list[tuple[int, np.ndarray]]:
        with self.lock:
            return list(self.buffer)


def _encode_buffer(recognizer: "ActionRecognizer", frames: list[np.ndarray], fps: float) -> torch.Tensor:
    """The model's input ``(T, D + M)`` for the buffered uint8 RGB frames ``(H, W, 3)`` each, oldest first.

    ``T = num_frames`` segment centres of the buffer, as ``predict`` samples a file; with a motion
    stream each one's flow pair is the buffered frame ``gap`` seconds later (earlier at the newest
    end, keeping time order), as :func:`~activity.features.motion.flow_pairs` chooses it in a file.
    """
    idx = segment_indices(len(frames), recognizer.spec.num_frames)
    clip = np.stack([frames[i] for i in idx])
    gap = recognizer.spec.partner_gap(fps)
    if gap is None:
        return recognizer.encode_clip(clip)
    first, second = flow_pairs(idx, len(frames), gap)
    return recognizer.encode_clip(clip, np.stack([frames[i] for i in first]), np.stack([frames[i] for i in second]))


def run_stream(
    recognizer: "ActionRecognizer",
    source: str,
    *,
    window: float = 2.0,
    rate: float = 1.0,
    max_seconds: float | None = None,
    top_k: int = 1,
    on_result: Callable[[StreamResult], None] | None = None,
) -> StreamStats:
    """Classify a live source until it ends (or ``max_seconds`` pass).

    Args:
        recognizer: a loaded model.
        source: camera index (``"0"``), stream URL, or video file (played at its real rate).
        window: seconds of video in each prediction.
        rate: predictions per second.
        max_seconds: stop after this long.
        top_k: labels in each result.
        on_result: called with each :class:`StreamResult`.
    """
    if rate <= 0 or window <= 0:
        raise ActivityError(f"--rate and --window must be positive (got {rate}, {window})")
    if top_k < 1:
        raise ActivityError(f"--top-k must be at least 1, got {top_k}")
    src = _Source(str(source), window)
    stats = StreamStats()
    covered = -1  # highest frame id that some prediction has seen
    src.thread.start()
    t0 = time.perf_counter()
    next_tick = t0 + 1.0 / rate
    try:
        while True:
            done = src.finished.is_set()
            now = time.perf_counter()
            if max_seconds is not None and now - t0 >= max_seconds:
                break
            if not done and now < next_tick:
                time.sleep(min(0.01, next_tick - now))
                continue
            next_tick = max(next_tick + 1.0 / rate, now)
            frames = src.snapshot()
            if frames and frames[-1][0] > covered:
                first, last = frames[0][0], frames[-1][0]
                stats.frames_dropped += max(0, first - covered - 1)
                covered = last
                p = recognizer.probabilities(_encode_buffer(recognizer, [f for _, f in frames], src.fps)[None])[0]
                best = np.argsort(-p, kind="stable")[:top_k]
                stats.inferences += 1
                if on_result is not None:
                    on_result(StreamResult(last / src.fps, [recognizer.classes[k] for k in best],
                                           [float(p[k]) for k in best], stats.frames_dropped))
            if done:
                break
    finally:
        src.finished.set()
        src.thread.join(timeout=5)
    stats.frames_read = src.frames_read
    return stats
