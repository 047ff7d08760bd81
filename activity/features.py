"""Per-video backbone features, extracted once and cached on disk.

An entry holds float16 features ``(num_frames * views, D)``: frames sampled
uniformly over the whole video (``num_frames * views`` segments, centre of
each). Training takes ``num_frames`` of them with a random position inside
each of ``num_frames`` segments (temporal jitter without decoding again);
evaluation and prediction take the centres.

Entries live in ``CACHE/<feature key>/<video key>.npy``. The feature key hashes
everything that changes the features (backbone and its weights, frames, views,
preprocessing); the video key hashes the file's identity (absolute path, size,
modification time), so an edited file is extracted again. Writes are atomic
(temporary file, then rename), so an interrupted run leaves no partial entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from activity.adjust import adjust_frames
from activity.backbones import Backbone, get_spec
from activity.config import FeatureConfig
from activity.errors import ActivityError, VideoError
from activity.io import atomic_write
from activity.transforms import Preprocess
from activity.video import open_video, read_sampled


def default_cache_dir() -> Path:
    """``$ACTIVITY_CACHE``, else ``$XDG_CACHE_HOME/activity``, else ``~/.cache/activity``."""
    if os.environ.get("ACTIVITY_CACHE"):
        return Path(os.environ["ACTIVITY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "activity"


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that determines a video's cached features."""

    backbone: str
    weights: str
    num_frames: int
    views: int
    preprocess: Preprocess
    frame_fit: str = "crop"
    enhance: str = "none"

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> "FeatureSpec":
        spec = get_spec(cfg.backbone)
        pre = spec.preprocess if cfg.image_size is None else spec.preprocess.scaled(cfg.image_size)
        return cls(cfg.backbone, spec.weights, cfg.num_frames, cfg.views, pre, cfg.frame_fit, cfg.enhance)

    def prepare(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decoded uint8 RGB frames ``(T, H, W, 3)`` -> backbone input ``(T, 3, S, S)`` float32.

        The frame adjustments (:func:`activity.adjust.adjust_frames`), then the backbone's own preprocessing.
        """
        if self.frame_fit != "crop" or self.enhance != "none":
            fill = tuple(round(255 * m) for m in self.preprocess.mean)  # normalises to zero
            keep = self.preprocess.crop_size / self.preprocess.resize_size
            frames = adjust_frames(np.asarray(frames), enhance=self.enhance, fit=self.frame_fit, fill=fill, keep=keep)  # type: ignore[arg-type]
        return self.preprocess(frames)

    @property
    def length(self) -> int:
        """Frames stored per video."""
        return self.num_frames * self.views

    def key(self) -> str:
        fields = asdict(self)
        for name, neutral in (("frame_fit", "crop"), ("enhance", "none")):
            if fields[name] == neutral:  # keeps the keys of entries written before these options existed
                del fields[name]
        blob = json.dumps(fields, sort_keys=True)
        return f"{self.backbone}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


class FeatureCache:
    """Feature files for one :class:`FeatureSpec` under a cache root."""

    def __init__(self, root: str | Path, spec: FeatureSpec) -> None:
        self.spec = spec
        self.dir = Path(root) / spec.key()
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "spec.json"
        if not meta.exists():
            with atomic_write(meta) as f:
                f.write(json.dumps(asdict(spec), indent=2).encode())

    def entry(self, video: str | Path) -> Path:
        p = Path(video).resolve()
        st = p.stat()
        ident = f"{p}\0{st.st_size}\0{st.st_mtime_ns}"
        return self.dir / (hashlib.sha1(ident.encode()).hexdigest() + ".npy")

    def get(self, video: str | Path) -> np.ndarray | None:
        """Cached features ``(length, D)`` float16, or None on a miss (or an unreadable entry)."""
        try:
            f = self.entry(video)
        except OSError:
            return None
        if not f.exists():
            return None
        try:
            x = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # corrupt entry: treated as a miss and written again
        if x.ndim != 2 or x.shape[0] != self.spec.length:
            return None
        return x

    def put(self, video: str | Path, features: np.ndarray) -> None:
        f = self.entry(video)
        with atomic_write(f) as tmp:
            np.save(tmp, features.astype(np.float16, copy=False), allow_pickle=False)


@dataclass
class ExtractResult:
    """Features by video, and the videos that failed with their reasons."""

    features: dict[Path, np.ndarray]
    failed: dict[Path, str]
    extracted: int = 0  # how many were computed (not read from the cache)
    frames: int = 0  # frames decoded and encoded


class _ClipDataset(Dataset):
    """Decodes and preprocesses the sampled frames of each video (runs in loader workers)."""

    def __init__(self, paths: Sequence[Path], spec: FeatureSpec, decoder: str) -> None:
        self.paths = list(paths)
        self.spec = spec
        self.decoder = decoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        path = self.paths[i]
        try:
            with open_video(path, self.decoder) as reader:  # type: ignore[arg-type]
                frames, _ = read_sampled(reader, self.spec.length)
            return i, self.spec.prepare(frames), None
        except VideoError as e:
            return i, None, e.reason
        except Exception as e:  # a decoder bug must not end the whole job
            return i, None, f"cannot decode ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def extract(
    paths: Iterable[str | Path],
    spec: FeatureSpec,
    cache: FeatureCache | None,
    backbone_factory: Callable[[], Backbone],
    *,
    decoder: str = "auto",
    batch_size: int = 64,
    workers: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_error: Callable[[Path, str], None] | None = None,
) -> ExtractResult:
    """Features for every video: from the cache where present, else decoded and encoded.

    Args:
        paths: video files.
        spec: what to extract.
        cache: where to read and store features (None: compute, keep in memory only).
        backbone_factory: builds the backbone; only called when something is missing.
        decoder: video backend name.
        batch_size: frames per backbone forward pass (clips are batched together).
        workers: loader processes that decode and preprocess while the backbone runs.
        device: where the backbone runs.
        progress: show a progress bar.
        on_error: called with ``(path, reason)`` for each video that cannot be read.

    Returns:
        An :class:`ExtractResult`; ``features[path]`` is float16 ``(spec.length, D)``.
    """
    from tqdm import tqdm

    paths = [Path(p) for p in paths]
    result = ExtractResult({}, {})
    todo: list[Path] = []
    for p in dict.fromkeys(paths):
        hit = cache.get(p) if cache is not None else None
        if hit is not None:
            result.features[p] = hit
        else:
            todo.append(p)
    if not todo:
        return result

    backbone = backbone_factory().to(device)
    loader = DataLoader(
        _ClipDataset(todo, spec, decoder),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
    pending: list[tuple[Path, torch.Tensor]] = []
    pending_frames = 0

    def flush() -> None:
        nonlocal pending_frames
        if not pending:
            return
        frames = torch.cat([t for _, t in pending]).to(device)
        with torch.inference_mode():
            feats = torch.cat([backbone(chunk) for chunk in frames.split(batch_size)]).float().cpu().numpy()
        start = 0
        for p, t in pending:
            f = feats[start : start + len(t)].astype(np.float16)
            start += len(t)
            if cache is not None:
                cache.put(p, f)
            result.features[p] = f
            result.extracted += 1
            result.frames += len(t)
        pending.clear()
        pending_frames = 0

    bar = tqdm(total=len(todo), desc="extract", unit="video", disable=None if progress else True, dynamic_ncols=True)
    for i, frames, error in loader:
        p = todo[i]
        if error is not None:
            result.failed[p] = error
            if on_error is not None:
                on_error(p, error)
        else:
            pending.append((p, frames))
            pending_frames += len(frames)
            if pending_frames >= batch_size:
                flush()
        bar.update(1)
    flush()
    bar.close()
    return result


def require_features(result: ExtractResult, what: str) -> None:
    """Fail clearly when no video at all could be read."""
    if not result.features:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in list(result.failed.items())[:3])
        raise ActivityError(f"no readable video in {what} ({reasons})")
