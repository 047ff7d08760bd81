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
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from activity.config import FeatureConfig
from activity.data.decoders import open_video, read_sampled, set_decode_threads
from activity.distributed import DistInfo
from activity.errors import ActivityError, VideoError, describe
from activity.features.backbones import Backbone, create_backbone
from activity.features import runtime
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
    runtime: str = "eager"  # what ran the backbone: "eager", "compiled" or "onnxruntime" (activity.features.runtime)
    notes: list[str] = field(default_factory=list)  # one-line remarks for the user (e.g. why a runtime was not used)

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
            return i, None, None, f"cannot decode ({describe(e)})"


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


def worker_init(_: int) -> None:
    # Each worker works on whole clips on one core; threads inside a worker would only contend
    # with the other processes'.
    torch.set_num_threads(1)
    set_decode_threads(1)


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

    One object for every workflow that reads videos (:mod:`activity.workflows`: ``extract``, ``train``,
    ``resume``, ``evaluate``, ``predict``, ``timelines``, ``live``, ``cv``, ``load_model``).

    Attributes:
        cache_dir: feature cache root (None: :func:`~activity.features.cache.default_cache_dir`;
            False: no cache, features kept in memory only).
        workers: loader processes (None: :func:`default_workers`; 0: decode and encode
            in this process, with all of torch's threads).
        device: where the backbone runs.
        decoder: video decoder name (None: the config's ``features.decoder``).
        batch_size: frames per backbone forward pass (clips are batched together; on the
            CPU with workers, each worker encodes one clip per pass).
        runtime: what runs the backbone: ``"auto"`` (default), ``"eager"``, ``"compiled"`` or
            ``"onnxruntime"``; chosen by :func:`activity.features.runtime.prepare`, whose module says
            when ``auto`` picks which.
        progress: show progress bars.
        on_error: called with ``(path, reason)`` for each video that cannot be read.
        dist: the torchrun process group (None: one process); ranks share the extraction.
    """

    cache_dir: str | Path | Literal[False] | None = None
    workers: int | None = None
    device: str = "cpu"
    decoder: str | None = None
    batch_size: int = 32
    runtime: str = "auto"
    progress: bool = True
    on_error: Callable[[Path, str], None] | None = None
    dist: DistInfo | None = None

    def __post_init__(self) -> None:
        runtime.check_runtime(self.runtime)

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
    ``options.runtime`` chooses what runs the backbone (:func:`activity.features.runtime.prepare`); where a
    runtime named explicitly cannot be used it runs eagerly and ``result.notes`` says why.

    Args:
        paths: video files.
        spec: what to extract.
        cache: where to read and store features (None: compute, keep in memory only).
        backbone_factory: builds the backbone; only called when something is missing.
        options: how (``cache_dir`` and ``dist`` are not used here: ``cache`` is the cache, and
            :class:`Extractor` shares the work among torchrun's ranks).

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
        result.runtime, note = runtime.prepare(encoder, options.runtime, frames=encoded * spec.length * ranks,
                                               in_workers=in_workers, cache_root=None if cache is None else cache.root,
                                               batch=spec.length, announce=options.progress and options.is_main)
        if note is not None:
            result.notes.append(note)
        dataset = _EncodingDataset(todo, spec, decoder, encoder, needs) if in_workers else _ClipDataset(todo, spec, decoder, needs)
        batcher = None if in_workers else _Batcher(encoder)
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=torch.device(options.device).type == "cuda",
    )
    _drain(loader, todo, have, spec, cache, result, batcher, options)
    return result


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
        self.cache = None if cache_dir is False else FeatureCache(cache_dir or default_cache_dir(), self.spec)
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
