"""Extraction: features for a list of videos, from the cache where present, else decoded and
encoded, with loader workers (on the CPU each worker decodes and encodes whole clips).

An entry holds float16 features ``(num_frames * views, D)``: frames sampled
uniformly over the whole video (``num_frames * views`` segments, centre of
each). Training takes ``num_frames`` of them with a random position inside
each of ``num_frames`` segments (temporal jitter without decoding again);
evaluation and prediction take the centres.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from activity.config import FeatureConfig
from activity.data.decoders import open_video, read_sampled, set_decode_threads
from activity.distributed import DistInfo
from activity.errors import ActivityError, VideoError, first_line
from activity.features.backbones import Backbone, create_backbone
from activity.features.cache import FeatureCache, default_cache_dir, join_parts
from activity.features.encoder import FrameEncoder
from activity.features.motion import read_with_pairs
from activity.features.spec import FeatureSpec
from activity.features.streams import stream_names

if TYPE_CHECKING:
    from activity.data.collection import VideoDataset

log = logging.getLogger(__name__)


@dataclass
class ExtractResult:
    """Features by video, and the videos that failed with their reasons."""

    features: dict[Path, np.ndarray]
    failed: dict[Path, str]
    extracted: int = 0  # how many were computed (not read from the cache)
    frames: int = 0  # frames decoded and encoded
    compiled: bool = False  # the backbone ran through torch.compile
    runtime: str = "torch"  # what ran the backbone: "torch" or "onnxruntime"
    notes: list[str] = field(default_factory=list)  # one-line remarks for the user (e.g. why not compiled)

    def readable(self, ds: VideoDataset) -> tuple[VideoDataset, torch.Tensor | None]:
        """The samples of ``ds`` that have features, and their features ``(N, L, D)`` float16
        (None when no sample has)."""
        kept = ds.subset([i for i, s in enumerate(ds.samples) if s.path in self.features])
        if not len(kept):
            return kept, None
        return kept, torch.from_numpy(np.stack([self.features[p] for p in kept.paths]))




class _ClipDataset(Dataset):
    """Decodes the sampled frames of each video and resizes and crops them (runs in loader workers);
    with descriptor streams (:mod:`activity.features.streams`), also the frames they need (the motion
    stream's flow pairs), and computes them from the same decoded frames. ``needs`` says, per video,
    which streams are wanted (the others are in the cache): frames only where appearance is,
    descriptors only where they are (default: every stream)."""

    def __init__(self, paths: Sequence[Path], spec: FeatureSpec, decoder: str,
                 needs: Sequence[tuple[bool, ...]] | None = None) -> None:
        self.paths = list(paths)
        self.spec = spec
        self.decoder = decoder
        self.needs = list(needs) if needs is not None else [(True,) * (1 + len(spec.streams))] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int) -> tuple[torch.Tensor | None, np.ndarray | None]:
        """Cropped uint8 frames ``(L, 3, S, S)`` of video ``i`` (None where its appearance is not wanted) and the
        wanted descriptor streams' numbers ``(L, M)`` float32 side by side (None without)."""
        need = self.needs[i]
        spec = self.spec.with_descriptors(need[1:])
        with open_video(self.paths[i], self.decoder) as reader:
            if not spec.streams:
                frames, _ = read_sampled(reader, spec.length)
                return spec.crop(frames) if need[0] else None, None
            frames, first, second = read_with_pairs(reader, spec.length, spec)
        return spec.crop(frames) if need[0] else None, spec.describe(frames, first, second)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str | None]:
        """``(i, frames or None, descriptors or None, None)``, or ``(i, None, None, reason)``."""
        try:
            return i, *self.decode(i), None
        except VideoError as e:
            return i, None, None, e.reason
        except Exception as e:  # a decoder bug must not end the whole job
            return i, None, None, f"cannot decode ({type(e).__name__}: {first_line(e)})"


class _EncodingDataset(_ClipDataset):
    """Decodes a clip and encodes it with the worker's own copy of the backbone (CPU only).

    On the CPU decoding cannot hide behind the backbone: both need the cores. One
    single-threaded process per core, each doing all the work for its clips, keeps
    every core busy without threads stalling each other (two one-thread processes
    encode faster than one two-thread process).
    """

    def __init__(self, paths: Sequence[Path], spec: FeatureSpec, decoder: str, encoder: "FrameEncoder",
                 needs: Sequence[tuple[bool, ...]] | None = None) -> None:
        super().__init__(paths, spec, decoder, needs)
        self.encoder = encoder

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str | None]:
        """``(i, appearance features (L, D) float16 or None, descriptors or None, None)``, or ``(i, None, None, reason)``."""
        i, frames, described, error = super().__getitem__(i)
        if error is not None:
            return i, None, None, error
        return i, None if frames is None else self.encoder(frames).half(), described, None


def with_descriptors(features: torch.Tensor, described: np.ndarray | None) -> torch.Tensor:
    """Appearance features ``(L, D)`` with the descriptor streams' numbers ``(L, M)`` after them: ``(L, D + M)``."""
    return features if described is None else torch.cat([features.float(), torch.as_tensor(described).float()], 1)


def _worker_init(_: int) -> None:
    # Each worker works on whole clips on one core; threads inside a worker would only contend
    # with the other processes'.
    torch.set_num_threads(1)
    set_decode_threads(1)


# Frames to encode from which extraction on the CPU compiles the backbone by default. On 2 cores,
# compiling EfficientNet-Lite0 takes about 20 s the first time and about 5 s once inductor's
# cache (/tmp/torchinductor_<user>) is warm, and then saves about 3.7 ms a frame end to end
# (283 basketball clips, 4,528 frames: 52.4 s eager, 35.5 s compiled, 55 s compiling cold).
COMPILE_MIN_FRAMES = 4000
# Frames to encode from which the default runtime (``auto``) exports the backbone for ONNX Runtime when
# it is not cached yet. Exporting and checking EfficientNet-Lite0 takes about 1.5 s on 2 cores; each
# frame then costs about 16 ms instead of 29 ms on a core, so it pays from about 120 frames.
ONNX_MIN_FRAMES = 320
# Frames from which a cached export is used: below, importing onnxruntime and opening a session cost
# more than the faster forward saves (a cold predict of one 16-frame clip: 2.97 s against 2.89 s).
ONNX_CACHED_MIN_FRAMES = 64


def default_workers(device: str | torch.device = "cpu") -> int:
    """Loader processes for this process's share of the cores (``LOCAL_WORLD_SIZE`` under torchrun).

    On a GPU they decode (the bottleneck there): all cores but one. On the CPU each
    decodes and encodes whole clips on one thread: one per core, up to 16.
    """
    cores = max(1, (os.cpu_count() or 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if torch.device(device).type == "cuda":
        return max(1, min(cores - 1, 16))
    return min(cores, 16)


class _Batcher:
    """Cuts a stream of clips into forward passes of exactly ``batch_size`` frames.

    Clips are added with their frames; whenever a full batch is available it is
    encoded, and every clip whose frames have all been encoded is returned.
    """

    def __init__(self, encoder: FrameEncoder) -> None:
        self.encoder = encoder
        self.frames: list[torch.Tensor] = []  # not yet encoded
        self.pending = 0
        self.clips: deque[tuple[Path, int]] = deque()  # in order, with their frame counts
        self.done: list[torch.Tensor] = []  # features encoded but not yet handed out
        self.done_count = 0

    def add(self, path: Path, frames: torch.Tensor) -> list[tuple[Path, np.ndarray]]:
        self.frames.append(frames)
        self.pending += len(frames)
        self.clips.append((path, len(frames)))
        bs = self.encoder.batch_size
        if self.pending < bs:
            return []
        x = torch.cat(self.frames)
        full = (len(x) // bs) * bs
        self._encode(x[:full])
        self.frames = [x[full:]] if full < len(x) else []
        self.pending = len(x) - full
        return self._ready()

    def finish(self) -> list[tuple[Path, np.ndarray]]:
        if self.frames:
            self._encode(torch.cat(self.frames))
            self.frames, self.pending = [], 0
        return self._ready()

    def _encode(self, x: torch.Tensor) -> None:
        self.done.append(self.encoder(x))
        self.done_count += len(x)

    def _ready(self) -> list[tuple[Path, np.ndarray]]:
        out = []
        feats = torch.cat(self.done) if len(self.done) > 1 else (self.done[0] if self.done else None)
        used = 0
        while self.clips and self.clips[0][1] <= self.done_count - used:
            path, n = self.clips.popleft()
            out.append((path, feats[used : used + n].numpy().astype(np.float16)))  # type: ignore[index]
            used += n
        if feats is not None:
            self.done = [feats[used:]] if used < len(feats) else []
            self.done_count -= used
        return out


@dataclass(frozen=True)
class ExtractOptions:
    """How features are extracted (what is extracted is the :class:`~activity.features.spec.FeatureSpec`).

    One object for every workflow that reads videos: ``extract``, ``train``,
    ``evaluate``, ``predict``, ``cv``.

    Attributes:
        cache_dir: feature cache root (None: :func:`~activity.features.cache.default_cache_dir`;
            False: no cache, features kept in memory only).
        workers: loader processes (None: :func:`default_workers`; 0: decode and encode
            in this process, with all of torch's threads).
        device: where the backbone runs.
        decoder: video decoder name (None: the config's ``features.decoder``).
        batch_size: frames per backbone forward pass (clips are batched together; on the
            CPU with workers, each worker encodes one clip per pass).
        compile_backbone: run the backbone through ``torch.compile`` when the workers encode
            on the CPU (None: when at least :data:`COMPILE_MIN_FRAMES` frames are to be encoded).
        runtime: what runs the backbone: ``"auto"`` (default: ONNX Runtime where it applies, on the
            CPU in float32, unless ``compile_backbone`` is True, for at least :data:`ONNX_MIN_FRAMES`
            frames to encode, or :data:`ONNX_CACHED_MIN_FRAMES` where the export is already cached;
            torch otherwise), ``"torch"``, or
            ``"onnxruntime"`` (the backbone exported once to ``<cache root>/onnx/`` and checked
            against torch, one thread per worker; where onnxruntime is missing or the export fails,
            torch, with a note when it was asked for by name; a failed export is remembered
            beside where it would be cached, and ``auto`` does not try it again; never compiled).
        progress: show progress bars.
        on_error: called with ``(path, reason)`` for each video that cannot be read.
        dist: the torchrun process group (None: one process); ranks share the extraction.
    """

    cache_dir: str | Path | None | bool = None
    workers: int | None = None
    device: str = "cpu"
    decoder: str | None = None
    batch_size: int = 32
    compile_backbone: bool | None = None
    runtime: str = "auto"
    progress: bool = True
    on_error: Callable[[Path, str], None] | None = None
    dist: DistInfo | None = None

    @property
    def is_main(self) -> bool:
        """True where summaries are printed and result files written: rank 0 under torchrun, else always."""
        return self.dist is None or self.dist.is_main

    def replace(self, **changes: Any) -> "ExtractOptions":
        return dataclasses.replace(self, **changes)


def extract(
    paths: Iterable[str | Path],
    spec: FeatureSpec,
    cache: FeatureCache | None,
    backbone_factory: Callable[[], Backbone],
    options: ExtractOptions = ExtractOptions(),
) -> ExtractResult:
    """Features for every video: from the cache where present, else decoded and encoded.

    Loader workers decode only the sampled frames of each clip and resize and
    crop them. On a GPU they do so while the backbone runs, and the backbone
    sees fixed batches of ``batch_size`` frames drawn from consecutive clips; on
    the CPU each worker also encodes its clips, one forward pass per clip on one
    thread, so that decoding and encoding share the cores without contention.
    Where compiling fails the backbone runs eagerly and ``result.notes`` says why.

    Args:
        paths: video files.
        spec: what to extract.
        cache: where to read and store features (None: compute, keep in memory only).
        backbone_factory: builds the backbone; only called when something is missing.
        options: how (``cache_dir`` and ``dist`` are not used here: see :class:`Extractor`).

    Returns:
        An :class:`ExtractResult`; ``features[path]`` is float16 ``(spec.length, D)``.
    """
    paths = [Path(p) for p in paths]
    result = ExtractResult({}, {})
    todo: list[Path] = []
    have: dict[Path, list[np.ndarray | None]] = {}  # each stream's cached numbers, of the videos with something missing
    for p in dict.fromkeys(paths):
        parts = cache.get_parts(p) if cache is not None else [None] * (1 + len(spec.streams))
        if all(x is not None for x in parts):
            result.features[p] = join_parts(parts)  # type: ignore[arg-type]
        else:
            todo.append(p)
            have[p] = parts
    if not todo:
        return result
    needs = [tuple(x is None for x in have[p]) for p in todo]
    appearance = any(n[0] for n in needs)
    if options.progress and options.is_main:  # named before the backbone is built (and perhaps exported)
        cached = f", {len(result.features)} from the cache" if result.features else ""
        if appearance:
            log.info(f"extracting {spec.backbone} features of {len(todo)} video{'s' * (len(todo) != 1)}{cached}")
        else:
            names = stream_names(spec.streams)
            wanted = [n for k, n in enumerate(names[1:], 1) if any(need[k] for need in needs)]
            log.info(f"computing the {', '.join(wanted)} stream{'s' * (len(wanted) > 1)} of {len(todo)} video{'s' * (len(todo) != 1)} "
                     f"(their appearance features are in the cache){cached}")
    workers = default_workers(options.device) if options.workers is None else options.workers
    decoder = options.decoder or "auto"
    if not appearance:  # the descriptor streams alone: no backbone to build, the workers compute them
        workers = min(workers, len(todo)) if len(todo) > 1 else 0
        dataset: _ClipDataset = _ClipDataset(todo, spec, decoder, needs)
        batcher = None
    else:
        encoder = FrameEncoder(backbone_factory(), spec, options.device, batch_size=options.batch_size)
        # On the CPU the workers encode too (one thread each) and this process only stores; elsewhere
        # they decode and this process encodes. One clip: a worker would only add its start-up.
        in_workers = encoder.device.type == "cpu" and workers > 0 and len(todo) > 1
        workers = min(workers, len(todo)) if in_workers else min(workers, len(todo) - 1)
        # Under torchrun every rank decides for about the whole job (its share times the ranks), so that they agree.
        ranks = options.dist.world_size if options.dist is not None and options.dist.enabled else 1
        encoded = sum(n[0] for n in needs)
        if not _maybe_onnxruntime(encoder, result, options, cache.root if cache is not None else None,
                                  encoded * spec.length * ranks):
            _maybe_compile(encoder, result, options.compile_backbone, in_workers, encoded, spec.length,
                           options.progress and options.is_main)
        dataset = _EncodingDataset(todo, spec, decoder, encoder, needs) if in_workers else _ClipDataset(todo, spec, decoder, needs)
        batcher = None if in_workers else _Batcher(encoder)
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=torch.device(options.device).type == "cuda",
    )
    _drain(loader, todo, have, spec, cache, result, batcher, options)
    return result


def _maybe_onnxruntime(encoder: FrameEncoder, result: ExtractResult, options: ExtractOptions,
                       root: Path | None, frames: int) -> bool:
    """Switch ``encoder`` to ONNX Runtime where ``options.runtime`` asks for it (``auto``: where it applies
    and pays for ``frames`` frames to encode); True where it now runs there.

    The model is cached under ``options.cache_dir`` where it names a folder, else under ``root`` (the
    feature cache's root), else under :func:`~activity.features.cache.default_cache_dir`. Where it cannot
    be used, the backbone stays on torch; when onnxruntime was asked for by name, one note (also
    logged) says why.
    """
    if options.runtime == "torch":
        return False
    if options.runtime not in ("auto", "onnxruntime"):
        raise ActivityError(f"unknown backbone runtime {options.runtime!r} (auto, torch or onnxruntime)")
    if options.cache_dir not in (None, False, True):
        root = Path(options.cache_dir)  # type: ignore[arg-type]
    elif root is None:
        root = default_cache_dir()
    if options.runtime == "auto":
        if options.compile_backbone is True or not encoder.onnxruntime_applies():
            return False
        if frames < ONNX_CACHED_MIN_FRAMES or (frames < ONNX_MIN_FRAMES and not encoder.onnx_cached(root)):
            return False
        if encoder.onnx_failed(root) is not None:  # tried before: not again on every run
            return False
    exporting = options.progress and options.is_main and not encoder.onnx_cached(root)
    if exporting:
        log.info(f"exporting the backbone for ONNX Runtime, once (kept in {root / 'onnx'})")
    t0 = time.perf_counter()
    why = encoder.use_onnxruntime(root)
    if exporting and why is None:
        log.info(f"exported in {time.perf_counter() - t0:.1f} s")
    if why is not None:
        if options.runtime == "auto":
            encoder.remember_onnx_failure(root, why)
            log.info(why)
        else:
            result.notes.append(why)
            log.warning(why)
        return False
    result.runtime = "onnxruntime"
    return True


def _maybe_compile(encoder: FrameEncoder, result: ExtractResult, wanted: bool | None, in_workers: bool,
                   clips: int, length: int, progress: bool = False) -> None:
    """Compile the backbone where it applies (and, for ``wanted=None``, where it pays); notes say why not.
    With ``progress``, a line before compiling and one after (it is silent work of 5 to 20 s)."""
    note = None
    if wanted is None:  # auto: only where it applies, and only when it pays
        wanted = in_workers and clips * length >= COMPILE_MIN_FRAMES
    if wanted and not in_workers:  # asked for where it does not apply
        where = "a GPU" if encoder.device.type != "cpu" else ("one clip" if clips == 1 else "no workers")
        note = f"torch.compile is used only where CPU workers encode (here: {where}); encoding without it"
    elif wanted:
        if progress:
            log.info(f"compiling the backbone with torch.compile for {clips * length:,} frames "
                     "(about 20 s the first time, 5 s once its cache is warm; --compile no skips it)")
        t0 = time.perf_counter()
        why = encoder.compile(length, threads=1)  # before the workers fork: they inherit the compiled code
        result.compiled = why is None
        if progress and why is None:
            log.info(f"compiled in {time.perf_counter() - t0:.1f} s")
        note = None if why is None else f"torch.compile unavailable, encoding without it ({why})"
    if note is not None:
        result.notes.append(note)
        log.warning(note)


def _drain(loader: DataLoader, todo: list[Path], have: dict[Path, list[np.ndarray | None]], spec: FeatureSpec,
           cache: FeatureCache | None, result: ExtractResult, batcher: _Batcher | None, options: ExtractOptions) -> None:
    """Store what the loader yields with what ``have`` holds of each video: appearance features (workers
    encoded) or frames to batch (``batcher``), and the descriptor streams' numbers that were missing."""
    from activity.progress import progress_bar

    dims = [d.dim for d in spec.descriptors]

    def store(p: Path, appearance: Any, described: Any) -> None:
        """``appearance`` ``(L, D)`` and ``described`` ``(L, M)`` as arrays or tensors (the loader's), or None."""
        appearance, described = (x.numpy() if isinstance(x, torch.Tensor) else x for x in (appearance, described))
        parts = list(have.pop(p))
        new: list[np.ndarray | None] = [None] * len(parts)
        if appearance is not None:
            new[0] = appearance
        if described is not None:  # the missing descriptors' numbers side by side, in order
            start = 0
            for k, dim in enumerate(dims, 1):
                if parts[k] is None:
                    new[k], start = described[:, start : start + dim], start + dim
        parts = [n if n is not None else x for n, x in zip(new, parts)]
        if cache is not None:
            cache.put_parts(p, new)
        features = join_parts(parts)  # type: ignore[arg-type]
        result.features[p] = features
        result.extracted += 1
        result.frames += len(features)

    described: dict[Path, np.ndarray | None] = {}  # waiting for their clip's appearance features from the batcher

    def batched(done: list[tuple[Path, np.ndarray]]) -> None:
        for p, f in done:
            store(p, f, described.pop(p))

    with progress_bar(total=len(todo), desc="extract", unit="video", enabled=options.progress) as bar:
        for i, frames, moving, error in loader:
            p = todo[i]
            if error is not None:
                result.failed[p] = error
                have.pop(p, None)
                if options.on_error is not None:
                    options.on_error(p, error)
            elif batcher is None or frames is None:  # already features, or the appearance was cached
                store(p, frames, moving)
            else:
                described[p] = moving
                batched(batcher.add(p, frames))
            bar.update(1)
        if batcher is not None:
            batched(batcher.finish())


class Extractor:
    """The one place that turns a feature config and :class:`ExtractOptions` into a spec, a cache
    and extraction; used by every workflow, the recognizer and cross-validation.

    Args:
        features: the config's ``features`` section.
        options: how to extract.
        backbone_factory: builds the backbone when something must be encoded
            (default: :func:`~activity.features.backbones.create_backbone` of the spec's backbone).
    """

    def __init__(self, features: FeatureConfig, options: ExtractOptions = ExtractOptions(), *,
                 backbone_factory: Callable[[], Backbone] | None = None) -> None:
        self.spec = FeatureSpec.from_config(features)
        self.options = options if options.decoder else options.replace(decoder=features.decoder)
        cache_dir = options.cache_dir
        self.cache = None if cache_dir is False else FeatureCache(cache_dir or default_cache_dir(), self.spec)  # type: ignore[arg-type]
        self.backbone_factory = backbone_factory or (lambda: create_backbone(self.spec.backbone))

    def __call__(self, paths: Sequence[str | Path], *, read_all: bool = True, progress: bool | None = None,
                 on_error: Callable[[Path, str], None] | None = None) -> ExtractResult:
        """Features for ``paths``; under torchrun the ranks share the work.

        Each rank extracts its shard (:meth:`~activity.distributed.DistInfo.shard`)
        into the cache; the ranks then exchange what they extracted and which
        videos they skipped. With ``read_all``, this rank then reads everyone
        else's entries from the cache (which must be a folder all ranks see;
        an entry it cannot find there it extracts itself). Without it, the result
        holds this rank's features only; ``failed``, ``extracted`` and ``frames``
        always cover all ranks.
        """
        opts = self.options.replace(progress=self.options.progress if progress is None else progress,
                                    on_error=on_error or self.options.on_error)
        dist = opts.dist
        if dist is None or not dist.enabled:
            return self._extract(paths, opts)
        mine = self._extract(dist.shard(list(paths)), opts)
        failed: dict[Path, str] = {}
        extracted = frames = 0
        for part_failed, part_extracted, part_frames in dist.all_gather((mine.failed, mine.extracted, mine.frames)):
            failed.update(part_failed)
            extracted += part_extracted
            frames += part_frames
        order = [Path(p) for p in dict.fromkeys(paths)]
        failed = {p: failed[p] for p in order if p in failed}  # in input order, as one process finds them
        res = ExtractResult(dict(mine.features), failed, extracted, frames)
        if read_all:
            rest = self._extract([p for p in order if p not in failed and p not in mine.features], opts.replace(progress=False))
            if rest.extracted:
                log.warning(f"rank {dist.rank} extracted {rest.extracted} video(s) that other ranks had extracted but it "
                            "could not find in the cache; give all ranks a --cache folder they all see")
            res.features.update(rest.features)
            res.failed.update(rest.failed)
        return res

    def _extract(self, paths: Sequence[str | Path], opts: ExtractOptions) -> ExtractResult:
        opts = opts.replace(progress=opts.progress and opts.is_main)
        return extract(paths, self.spec, self.cache, self.backbone_factory, opts)


def require_features(result: ExtractResult, what: str) -> None:
    """Fail clearly when no video at all could be read."""
    if not result.features:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in list(result.failed.items())[:3])
        raise ActivityError(f"no readable video in {what} ({reasons})")


# ---------------------------------------------------------------- a long video's sampled steps (timelines)

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
    seeking (:meth:`~activity.data.video.VideoReader.seek`) over the stretches the other workers
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
                 *, fps: float, total: int, batch: int = STEP_BATCH
                 ) -> Iterator[tuple[np.ndarray, torch.Tensor, int]]:
    """The features of a long video's steps ``0 .. total - 1`` (step ``k``: the frame at ``(k + 0.5) * step``
    seconds, and with a motion stream its flow pair), in order, as extraction computes them.

    Work is split as :func:`extract` splits clips: on the CPU each loader worker decodes and encodes
    items of :data:`STEP_CHUNK` consecutive steps on one thread (the backbone compiled first, by the same
    rule, when ``options.compile_backbone`` allows), elsewhere workers decode and this process encodes;
    ``options.workers=0`` does everything here. Each worker reads its own stretches of the video
    (:func:`worker_items`) and seeks over the others', so every frame is decoded once; the items are
    handed out in order, and at most about a round of them (:data:`STEP_RUN` per worker) waits here,
    so memory does not grow with the video's length.

    Args:
        path: the video.
        spec: what to compute.
        step: seconds between steps.
        encoder: the backbone (compiled here where it pays: pass one that may be).
        options: ``workers``, ``compile_backbone``, ``decoder`` and ``progress`` are used.
        fps: frames per second to sample at (the video's, or a stand-in where it says none).
        total: steps in the video as its container reports its length.
        batch: steps decoded together and encoded in one call.

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
    if not _maybe_onnxruntime(encoder, ExtractResult({}, {}), options, None, total):
        _maybe_compile(encoder, ExtractResult({}, {}), options.compile_backbone, in_workers, -(-total // batch),
                       batch, options.progress and options.is_main)
    dataset = _StepDataset(Path(path), spec, options.decoder or "auto", step, fps, total, STEP_CHUNK, batch,
                           encoder if in_workers or workers == 0 else None)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=_worker_init if workers > 0 else None,
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
