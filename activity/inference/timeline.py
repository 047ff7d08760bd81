"""What happens when in a long video: sliding-window predictions and merged segments.

A window of ``window`` seconds holds ``num_frames`` frames, one every
``step = window / num_frames`` seconds. Frames are decoded once, in order, at
that rate, and each frame's feature is computed once; consecutive windows,
``stride`` seconds apart (rounded to a whole number of steps), share them. Only
the features of the current window are kept, so memory does not grow with the
video's length. A model trained with the motion stream also gets, for each
sampled frame, the descriptor of its flow pair, chosen and computed as extraction does.
The frames are decoded and encoded as extraction does too, by loader workers (the
backbone's runtime chosen by the same rule), a few hundred consecutive steps a worker
at a time (:func:`~activity.features.steps.encode_steps`).

Each window owns the stretch of time around its centre (half a stride on each
side); consecutive windows with the same label above a threshold merge into a
segment, so segment boundaries fall where the label changes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch

from activity.data.decoders import VideoReader, open_video
from activity.io import atomic_path
from activity.registry import TIMELINE_FORMATS

if TYPE_CHECKING:
    from activity.features.extract import ExtractOptions, ExtractResult
    from activity.features.spec import FeatureSpec


class Recognizer(Protocol):
    """What a timeline needs of a model (:class:`~activity.inference.recognizer.ActionRecognizer` has it);
    a protocol, so that the recognizer can offer ``timeline()`` without this module importing it."""

    classes: list[str]
    spec: FeatureSpec
    options: ExtractOptions

    def encode_steps(self, path: str | Path, step: float, *, fps: float, total: int, batch: int = ...
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor, int]]: ...

    def probabilities(self, features: np.ndarray | torch.Tensor) -> np.ndarray: ...

    def top_k(self, probs: np.ndarray, k: int) -> tuple[list[str], list[float]]: ...

    def features(self, paths: Sequence[str | Path]) -> ExtractResult: ...


@dataclass
class Window:
    """One window's top-k prediction; times in seconds."""

    start: float
    end: float
    labels: list[str]
    probabilities: list[float]


@dataclass
class Segment:
    """A stretch of time with one label; ``probability`` is the mean over its windows."""

    start: float
    end: float
    label: str
    probability: float


@dataclass
class Timeline:
    """Sliding-window predictions over one video and the segments they merge into."""

    path: str
    duration: float
    window: float
    stride: float
    windows: list[Window] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def write(self, out_dir: str | Path, stem: str | None = None, fmt: str = "csv") -> list[Path]:
        """Write the timeline in ``fmt``, a name of :data:`~activity.registry.TIMELINE_FORMATS` (the names of
        :data:`~activity.registry.RESULT_FORMATS`); return the files written.

        ``csv``: ``<stem>.windows.csv`` and ``<stem>.segments.csv``; ``json``: ``<stem>.json`` holding
        :meth:`as_dict`. ``stem`` is the video's by default; ``out_dir`` is created. Each file appears whole
        or not at all (:mod:`activity.io`).

        Raises:
            ConfigError: an unknown format (one line naming the choices), before anything is written.
        """
        write = TIMELINE_FORMATS.get(fmt)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return write(self, out, stem or Path(self.path).stem)

    def label_at(self, t: float) -> Segment | None:
        """The segment covering time ``t``, if any."""
        for s in self.segments:
            if s.start <= t < s.end:
                return s
        return None


def merge_segments(
    windows: list[Window], probs: np.ndarray, classes: list[str], duration: float, stride: float,
    *, threshold: float = 0.0, smooth: int = 1,
) -> list[Segment]:
    """Merge consecutive windows with the same top label into segments.

    Args:
        windows: the windows, in time order.
        probs: their class probabilities ``(W, C)``.
        classes: class names.
        duration: video length in seconds (the last segment ends there).
        stride: seconds between window starts.
        threshold: windows whose top probability is below it belong to no segment.
        smooth: average probabilities over this many neighbouring windows first (odd; 1: none).
    """
    if not windows:
        return []
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        pad = np.pad(probs, ((smooth // 2, smooth - 1 - smooth // 2), (0, 0)), mode="edge")
        probs = np.stack([np.convolve(pad[:, c], kernel, mode="valid") for c in range(probs.shape[1])], axis=1)
    top = probs.argmax(1)
    centres = np.array([(w.start + w.end) / 2 for w in windows])
    segments: list[Segment] = []
    run: list[int] = []

    def close(run: list[int]) -> None:
        a, b = run[0], run[-1]
        start = 0.0 if a == 0 else max(0.0, centres[a] - stride / 2)
        end = duration if b == len(windows) - 1 else min(duration, centres[b] + stride / 2)
        segments.append(Segment(round(start, 3), round(end, 3), classes[top[a]], float(probs[run, top[a]].mean())))

    for i in range(len(windows)):
        confident = probs[i, top[i]] >= threshold
        if run and (not confident or top[i] != top[run[-1]]):
            close(run)
            run = []
        if confident:
            run.append(i)
    if run:
        close(run)
    return segments


WINDOW_BATCH = 32
"""Windows the temporal model classifies at once in a timeline (``scripts/benchmark_speed.py``: 1.1 ms a window
in batches, 9.2 ms one at a time, on 2 cores)."""

_TIMELINE_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}, {rate_fmt}]"
"""The timeline's progress bar: seconds of video done, of the whole (tqdm scales its frame count by the step)."""


def _frame_features(recognizer: Recognizer, reader: VideoReader, step: float, info: dict, *, chunk: int | None = None,
                    progress: bool = False, on_progress: Callable[[int, int], None] | None = None
                    ) -> Iterator[tuple[float, torch.Tensor]]:
    """Yield ``(time, feature (D + M,))`` every ``step`` seconds through the video ``reader`` opened, in order.

    The frames are decoded and encoded by :meth:`~Recognizer.encode_steps` (loader workers, as extraction
    does; ``reader`` only says the video's rate and length), each frame once, in batches of ``chunk`` steps
    (None: :data:`~activity.features.steps.STEP_BATCH`); with a motion stream (``M`` numbers), each sampled
    frame's flow pair (:func:`~activity.features.motion.flow_pairs`, as extraction chooses it) with it.
    Sets ``info["duration"]`` (seconds) at the start, and again if the video turns out shorter.
    """
    from activity.features.steps import STEP_BATCH
    from activity.progress import progress_bar

    fps = reader.fps if reader.fps > 0 else 25.0
    n = reader.frame_count
    info["duration"] = n / fps
    total = max(1, int(n / fps / step))
    # Counted in sampled frames (whole numbers, so it ends at exactly 100%) and shown in seconds of video.
    bar = progress_bar(total=total, desc="timeline", unit="s", unit_scale=step, enabled=progress, bar_format=_TIMELINE_BAR)
    try:
        for ks, feats, count in recognizer.encode_steps(reader.path, step, fps=fps, total=total, batch=chunk or STEP_BATCH):
            if count < n:  # the container over-reported its length: this is the last item
                bar.total = max(int(count / fps / step), bar.n + len(ks))
                info["duration"] = count / fps
            for k, f in zip(ks.tolist(), feats):
                yield (k + 0.5) * step, f
            bar.update(len(ks))
            if on_progress is not None:  # the bar counts only where it is drawn
                on_progress(min(int(ks[-1]) + 1, total), total)
    finally:
        bar.close()


def compute_timeline(
    recognizer: Recognizer,
    path: str | Path,
    *,
    window: float = 2.0,
    stride: float = 1.0,
    top_k: int = 3,
    threshold: float = 0.0,
    smooth: int = 1,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Timeline:
    """Sliding-window predictions over a whole video.

    Args:
        recognizer: a loaded model.
        path: video file.
        window: window length in seconds (at least ``num_frames`` frames of the video; the
            timeline reports the window it used).
        stride: seconds between window starts (rounded to a multiple of ``window / num_frames``).
        top_k: labels kept per window.
        threshold: minimum top probability for a window to join a segment.
        smooth: moving average over this many windows before merging.
        progress: show a progress bar (position in the video and speed).
        on_progress: called with ``(sampled frames encoded, sampled frames in all)`` after each item of steps.
    """
    from activity.errors import ActivityError

    if window <= 0 or stride <= 0:
        raise ActivityError(f"--window and --stride must be positive (got {window}, {stride})")
    path = Path(path)
    t_frames = recognizer.spec.num_frames
    reader = open_video(path, recognizer.options.decoder, sequential=True)  # type: ignore[arg-type]
    # Never sample faster than the video's frames: a shorter window would only repeat them.
    step = max(window / t_frames, 1.0 / (reader.fps if reader.fps > 0 else 25.0))
    window = step * t_frames
    hop = max(1, round(stride / step))
    buf: deque[torch.Tensor] = deque(maxlen=t_frames)
    windows: list[Window] = []
    probs: list[np.ndarray] = []
    seen = 0
    info: dict = {}
    pending: list[tuple[float, torch.Tensor]] = []  # windows not classified yet: (start, features (T, D))

    def classify() -> None:  # in batches: a window at a time cost 7x as much per window
        for (start, _), p in zip(pending, recognizer.probabilities(torch.stack([w for _, w in pending]))):
            windows.append(Window(round(start, 3), round(start + window, 3), *recognizer.top_k(p, top_k)))
            probs.append(p)
        pending.clear()

    with reader:
        for _, f in _frame_features(recognizer, reader, step, info, progress=progress, on_progress=on_progress):
            buf.append(f)
            seen += 1
            if seen >= t_frames and (seen - t_frames) % hop == 0:
                pending.append(((seen - t_frames) * step, torch.stack(list(buf))))
                if len(pending) == WINDOW_BATCH:
                    classify()
        if pending:
            classify()
    duration = info["duration"]
    if not windows:  # shorter than one window: the whole video is one window, sampled as in predict
        result = recognizer.features([path])
        if path not in result.features:
            raise ActivityError(f"{path}: {result.failed.get(path, 'cannot read the video')}")
        p = recognizer.probabilities(result.features[path][None])[0]
        windows = [Window(0.0, round(duration, 3), *recognizer.top_k(p, top_k))]
        probs = [p]
    tl = Timeline(str(path), round(duration, 3), window, round(hop * step, 3) if len(windows) > 1 else stride, windows)
    tl.segments = merge_segments(windows, np.stack(probs), recognizer.classes, duration, hop * step, threshold=threshold, smooth=smooth)
    return tl


def write_overlay(timeline: Timeline, video: str | Path, out: str | Path, *, progress: bool = False) -> Path:
    """Write ``video`` again (MPEG-4, same size and rate) with the current segment's label and probability on every frame.

    The file appears under ``out`` only once it is complete.

    Raises:
        VideoError: ``video`` cannot be read.
        ActivityError: ``out`` cannot be written.
    """
    import cv2

    from activity.errors import ActivityError
    from activity.progress import progress_bar

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_video(video, sequential=True) as reader, atomic_path(out, keep_suffix=True) as tmp:
        fps = reader.fps or 25.0
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, reader.size)
        if not writer.isOpened():
            raise ActivityError(f"{out}: cannot write the overlay video")
        scale = max(0.4, reader.height / 480)
        bar = progress_bar(total=reader.frame_count or None, desc="overlay", unit="frame", enabled=progress)
        try:
            for i, frame in reader.iter_frames():
                seg = timeline.label_at(i / fps)
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                _draw_label(bgr, f"{seg.label} {seg.probability:.2f}" if seg else "-", scale)
                writer.write(bgr)
                bar.update(1)
        finally:
            bar.close()
            writer.release()
    return out


def _draw_label(frame: np.ndarray, text: str, scale: float) -> None:
    """Draw ``text`` in white on a black box in the top-left corner of a ``(H, W, 3)`` frame, in place."""
    import cv2

    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.rectangle(frame, (0, 0), (tw + 12, th + 14), (0, 0, 0), -1)
    cv2.putText(frame, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
