"""A long video's sampled steps (timelines): step ``k`` is the frame at ``(k + 0.5) * step`` seconds, and
with a motion stream its flow pair; decoded once each, reading forward, by loader workers that each take
their own stretches of the video, and encoded as extraction encodes clips (:mod:`activity.features.extract`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from activity.data.decoders import open_video
from activity.errors import VideoError
from activity.features import runtime
from activity.features.encoder import FrameEncoder
from activity.features.extract import ExtractOptions, default_workers, with_descriptors, worker_init
from activity.features.spec import FeatureSpec

#: Consecutive sampled steps in one work item of :func:`encode_steps` (what a loader worker hands back at once).
STEP_CHUNK = 256
#: Consecutive items one worker takes in turn (:func:`worker_items`): each worker reads its own stretch of the
#: video (about 4 minutes at the default 8 steps a second), jumping over the others' with one seek.
STEP_RUN = 8
#: Steps decoded together inside an item (and the compiled backbone's fixed batch): with a motion stream, each
#: of them brings its flow pair, so at most about ``3 * STEP_BATCH`` full-size frames are held at once.
STEP_BATCH = 16


def step_frames(ks: np.ndarray, step: float, fps: float, frame_count: int, gap: int | None) -> np.ndarray:
    """Frame indices of the steps ``ks`` ``(K,)`` (step ``k`` is the frame at ``(k + 0.5) * step`` seconds):
    the sampled frames ``(K,)``, then (with a motion stream, ``gap`` frames between a frame and its flow
    partner) each one's flow pair (:func:`~activity.features.motion.flow_pairs`): ``(3K,)``."""
    from activity.features.motion import flow_pairs

    idx = np.minimum(((ks + 0.5) * step * fps).astype(np.int64), frame_count - 1)
    if gap is None:
        return idx
    return np.concatenate([idx, *flow_pairs(idx, frame_count, gap)])


def _decode_more(reader: Any, wanted: np.ndarray, held: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """``held`` and the frames of ``wanted`` not in it, decoded in one :meth:`~VideoReader.get_frames` call."""
    missing = np.unique([i for i in wanted.tolist() if i not in held]).astype(np.int64)
    if not missing.size:
        return dict(held)
    return {**held, **dict(zip(missing.tolist(), reader.get_frames(missing)))}


def decode_steps(reader: Any, ks_all: np.ndarray, step: float, fps: float, gap: int | None,
                 batch: int = STEP_BATCH) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Decode the consecutive steps ``ks_all`` in batches of ``batch``, each frame once, reading forward.

    A batch also decodes the frames of the next batch that come before its own last one (a flow partner
    can lie past the next sampled frames), so the reader never goes back. If decoding shows that the
    container over-reported its length, the batch is sampled again for the real length and is the last.

    Yields:
        ``(ks, frames)``: the batch's steps ``(K,)`` and their frames ``(K or 3K, H, W, 3)`` in the order
        of :func:`step_frames` (sampled frames, then with a motion stream the flow pairs' first and second).
    """
    held: dict[int, np.ndarray] = {}
    k, end = int(ks_all[0]), int(ks_all[-1]) + 1
    while k < end:
        ks = np.arange(k, min(k + batch, end))
        n = reader.frame_count
        need = step_frames(ks, step, fps, n, gap)
        ahead = step_frames(np.arange(ks[-1] + 1, min(ks[-1] + 1 + batch, end)), step, fps, n, gap)
        held = _decode_more(reader, np.concatenate([need, ahead[ahead <= need.max()]]), held)
        if reader.frame_count < n:  # the container over-reported its length
            ks = ks[need[: len(ks)] < reader.frame_count]
            need = step_frames(ks, step, fps, reader.frame_count, gap)
            held = _decode_more(reader, need, {}) if len(ks) else {}
            end = k  # nothing after this batch
        if len(ks):
            yield ks, np.stack([held[i] for i in need.tolist()])
        held = {i: held[i] for i in ahead.tolist() if i in held}
        k = int(ks[-1]) + 1 if len(ks) else end


def worker_items(items: int, workers: int, run: int | None = None) -> list[list[int]]:
    """Items ``0 .. items - 1`` shared among ``workers`` in contiguous stretches, in order.

    The items are cut into rounds of ``workers * run`` (None: :data:`STEP_RUN`); in each, worker ``w`` takes
    the ``w``-th ``run`` consecutive items, so each decodes only its own stretches and seeks over the
    others'. The last round is shared out evenly. The results come back a round at a time, so at most
    about a round of items waits to be handed out in order.
    """
    run = STEP_RUN if run is None else run
    out: list[list[int]] = [[] for _ in range(max(1, workers))]
    start = 0
    while start < items:
        per = run if items - start >= len(out) * run else -(-(items - start) // len(out))
        for w, mine in enumerate(out):
            mine.extend(range(min(items, start + w * per), min(items, start + (w + 1) * per)))
        start += len(out) * per
    return out


class _StepDataset(IterableDataset):
    """A long video's sampled steps, :data:`STEP_CHUNK` consecutive ones an item (run in loader workers).

    Each process opens the video once and reads its own items (:func:`worker_items`) forward,
    seeking (:meth:`~activity.data.decoders.VideoReader.seek`) over the stretches the other workers
    decode. An item is decoded in batches of :data:`STEP_BATCH` steps, each cropped (and its descriptor streams
    computed) at once, so a worker never holds more than a batch's full-size frames. With ``encoder``
    (CPU workers) the batches are encoded too, padded to exactly ``batch`` frames (the compiled
    backbone's shape). Iterating yields ``(item, *self[item])`` for this process's items.
    """

    def __init__(self, path: Path, spec: FeatureSpec, decoder: str, step: float, fps: float, total: int,
                 chunk: int, batch: int, encoder: FrameEncoder | None = None) -> None:
        self.path, self.spec, self.decoder, self.step, self.fps = path, spec, decoder, step, fps
        self.total, self.chunk, self.batch, self.encoder = total, chunk, batch, encoder
        self._reader: Any = None

    def __len__(self) -> int:
        return -(-self.total // self.chunk)

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        mine = worker_items(len(self), info.num_workers)[info.id] if info is not None else range(len(self))
        for i in mine:
            yield (i, *self[i])

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(K, D)`` of cropped frames ``(K, 3, S, S)``, in one call of ``batch`` frames."""
        n = len(frames)
        if n < self.batch:  # the last batch: padded, so that a compiled backbone sees its one shape
            frames = torch.cat([frames, frames[-1:].expand(self.batch - n, *frames.shape[1:])])
        return self.encoder(frames)[:n]  # type: ignore[misc]

    def __getitem__(self, i: int) -> tuple[np.ndarray, torch.Tensor | None, np.ndarray | None, int, str | None]:
        """``(steps (K,), features (K, D + M) or cropped frames (K, 3, S, S), descriptors (K, M) or None,
        frame_count, None)``, or ``(steps, None, None, frame_count, reason)`` where the video cannot be read."""
        ks_all = np.arange(i * self.chunk, min((i + 1) * self.chunk, self.total))
        try:
            if self._reader is None:
                self._reader = open_video(self.path, self.decoder, sequential=True)
            reader = self._reader
            gap = self.spec.partner_gap(reader.fps)  # as read_with_pairs
            if len(ks_all):  # past another worker's stretch: jump to this item's first frame
                reader.seek(int(step_frames(ks_all[:1], self.step, self.fps, reader.frame_count, gap).min()))
            done, outs, moves = [], [], []
            for ks, frames in decode_steps(reader, ks_all, self.step, self.fps, gap, self.batch):
                t = len(ks)
                x = self.spec.crop(frames[:t])
                pairs = (None, None) if gap is None else (frames[t : 2 * t], frames[2 * t :])
                moving = self.spec.describe(frames[:t], *pairs)
                if self.encoder is not None:
                    x, moving = with_descriptors(self._encode(x), moving), None
                done.append(ks)
                outs.append(x)
                moves.append(moving)
        except VideoError as e:
            return ks_all, None, None, 0, e.reason
        if not done:  # all past the real end
            return ks_all[:0], None, None, reader.frame_count, None
        motion_out = None if moves[0] is None else np.concatenate(moves)  # type: ignore[arg-type]
        return np.concatenate(done), torch.cat(outs), motion_out, reader.frame_count, None


def encode_steps(path: str | Path, spec: FeatureSpec, step: float, encoder: FrameEncoder, options: ExtractOptions,
                 *, fps: float, total: int, batch: int = STEP_BATCH, cache_root: Path | None = None
                 ) -> Iterator[tuple[np.ndarray, torch.Tensor, int]]:
    """The features of a long video's steps ``0 .. total - 1`` (step ``k``: the frame at ``(k + 0.5) * step``
    seconds, and with a motion stream its flow pair), in order, as extraction computes them.

    Work is split as :func:`~activity.features.extract.extract` splits clips: on the CPU each loader worker
    decodes and encodes items of :data:`STEP_CHUNK` consecutive steps on one thread (the backbone's runtime
    chosen first by the same rule, :func:`activity.features.runtime.prepare`), elsewhere workers decode and this process encodes;
    ``options.workers=0`` does everything here. Each worker reads its own stretches of the video
    (:func:`worker_items`) and seeks over the others', so every frame is decoded once; the items are
    handed out in order, and at most about a round of them (:data:`STEP_RUN` per worker) waits here,
    so memory does not grow with the video's length.

    Args:
        path: the video.
        spec: what to compute.
        step: seconds between steps.
        encoder: the backbone (compiled or exported here where ``options.runtime`` says: pass one that may be).
        options: ``workers``, ``runtime``, ``device``, ``decoder`` and ``progress`` are used.
        fps: frames per second to sample at (the video's, or a stand-in where it says none).
        total: steps in the video as its container reports its length.
        batch: steps decoded together and encoded in one call.
        cache_root: the feature cache's root, where an ONNX export is kept (None: a temporary folder).

    Yields:
        ``(steps (K,), features (K, D + M) float32, frame_count)`` an item at a time; after an item whose
        ``frame_count`` shows the container over-reported its length, nothing more.

    Raises:
        VideoError: the video cannot be decoded.
    """
    workers = default_workers(options.device) if options.workers is None else options.workers
    items = -(-total // STEP_CHUNK)
    in_workers = encoder.device.type == "cpu" and workers > 0 and items > 1
    workers = min(workers, items) if items > 1 else 0
    runtime.prepare(encoder, options.runtime, frames=total, in_workers=in_workers, cache_root=cache_root, batch=batch,
                    announce=options.progress and options.is_main)
    dataset = _StepDataset(Path(path), spec, options.decoder or "auto", step, fps, total, STEP_CHUNK, batch,
                           encoder if in_workers or workers == 0 else None)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=worker_init if workers > 0 else None,
                        prefetch_factor=2 if workers > 0 else None, pin_memory=encoder.device.type == "cuda")
    count = None
    waiting: dict[int, tuple[np.ndarray, torch.Tensor | None, int]] = {}  # come early, by item
    nxt = 0
    try:
        for item, ks, out, moving, frames, error in loader:
            if error is not None:
                raise VideoError(str(path), error)
            if out is not None and dataset.encoder is None:  # decoded in the workers, encoded here
                out = with_descriptors(encoder(out), moving)
            waiting[item] = (ks, out, frames)
            while nxt in waiting:  # in order
                ks, out, frames = waiting.pop(nxt)
                nxt += 1
                if out is not None:
                    yield ks, out, frames
                if count is not None and frames < count:
                    return
                count = frames if count is None else min(count, frames)
    finally:
        dataset.close()
