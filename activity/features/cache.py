"""The on-disk feature cache: ``CACHE/<stream key>/<video key>.npy``, one float16 array
``(num_frames * views, width)`` per stream and video.

Each stream has its own entries: the appearance features under the key of the backbone's settings
(:meth:`~activity.features.spec.FeatureSpec.key` of the spec without descriptor streams), each
descriptor stream under a key of its own settings and the frames it reads
(:meth:`~activity.features.spec.FeatureSpec.stream_keys`: no backbone in it). So turning a stream on
computes only that stream, and another backbone reuses the motion and pose numbers. A video's
features are its streams' entries side by side, in ``features.streams`` order. Entries of several
streams stored together in one (written before the streams had their own, under the key of the spec
with those streams) are still read, for every stream they hold: an old ``[appearance, motion]`` cache
gives both to a spec that adds ``pose``. The video key hashes the file's identity
(absolute path, size, modification time), so an edited file is extracted
again. Writes are atomic (temporary file, then rename), so an interrupted run
leaves no partial entry, and several processes may fill one cache at once (an
entry two of them extract is written twice, whole each time).

An entry is an ``.npy`` file followed by a checksum of its bytes
(:data:`CHECKSUM_TAG` and 16 hex digits), which ``np.load`` ignores: a file
damaged on disk (truncated, or bytes changed) is found on reading, reported
as one warning and extracted again. Entries written before the checksum (none
after the array) are read as they are. Temporary files a killed run left are
removed by the next run once they are :data:`STALE_TEMP_SECONDS` old.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import itertools
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from activity.errors import ActivityError, first_line
from activity.features.spec import FeatureSpec
from activity.io import atomic_write, remove_stale_temporaries

log = logging.getLogger(__name__)

#: What follows the array in an entry, before the 16 hex digits of the checksum of everything before it.
CHECKSUM_TAG = b"\n#activity-blake2b-64:"
_CHECKSUM_LEN = len(CHECKSUM_TAG) + 16

#: Temporary files not written for this long are a killed run's: every writer renames its own within
#: moments, so a younger one may be another process's, still at work.
STALE_TEMP_SECONDS = 300.0

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # disk full, quota used up


class DamagedEntry(Exception):
    """A cache file that is not a whole entry; the message says why (one line)."""


def default_cache_dir() -> Path:
    """``$ACTIVITY_CACHE``, else ``$XDG_CACHE_HOME/activity``, else ``~/.cache/activity``."""
    if os.environ.get("ACTIVITY_CACHE"):
        return Path(os.environ["ACTIVITY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "activity"


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).hexdigest().encode()


def encode_entry(features: np.ndarray) -> bytes:
    """The bytes of an entry: ``features`` as float16 ``.npy``, then its checksum."""
    buf = io.BytesIO()
    np.save(buf, features.astype(np.float16, copy=False), allow_pickle=False)
    data = buf.getvalue()
    return data + CHECKSUM_TAG + _checksum(data)


def _array_end(data: bytes) -> int:
    """Where the array of an ``.npy`` file's bytes ends, from its header (ValueError if it has none)."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"npy format version {version[0]}.{version[1]} is not one the cache writes")
    return f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def decode_entry(data: bytes) -> np.ndarray:
    """The array of an entry's bytes, checked against its checksum where it has one.

    Raises:
        DamagedEntry: the bytes are not a whole entry (unreadable header, too short,
            checksum missing a part or not matching).
    """
    try:
        end = _array_end(data)
    except (ValueError, EOFError, SyntaxError) as e:
        raise DamagedEntry(f"unreadable header: {first_line(e) or type(e).__name__}") from None
    if len(data) < end:
        raise DamagedEntry(f"truncated: {len(data)} of {end} bytes")
    trailer = data[end:]
    if trailer:  # entries written before the checksum have none
        if len(trailer) != _CHECKSUM_LEN or not trailer.startswith(CHECKSUM_TAG):
            raise DamagedEntry(f"{len(trailer)} bytes after the array where a {_CHECKSUM_LEN}-byte checksum belongs")
        if trailer[len(CHECKSUM_TAG):] != _checksum(data[:end]):
            raise DamagedEntry("checksum mismatch")
    try:
        return np.load(io.BytesIO(data[:end]), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise DamagedEntry(f"unreadable: {first_line(e) or type(e).__name__}") from None


class FeatureCache:
    """Feature files for one :class:`FeatureSpec` under a cache root: a folder per stream (see the module).

    Opening it removes the temporary files a killed run left in its folders
    (those :data:`STALE_TEMP_SECONDS` old: younger ones may be another process's).

    Attributes:
        dir: the appearance features' folder.
        folders: every stream's folder, appearance first, in the spec's order.

    Raises:
        ActivityError: a folder cannot be created or written (for example a full disk).
    """

    def __init__(self, root: str | Path, spec: FeatureSpec) -> None:
        self.spec = spec
        self.root = Path(root)
        appearance = spec.appearance_only()
        metas = [asdict(appearance)] + [{"stream": n, "settings": st, "num_frames": spec.num_frames,
                                          "views": spec.views, "enhance": spec.enhance}
                                         for n, st in zip(spec.stream_keys(), spec.streams)]
        self.folders = [self.root / appearance.key(), *(self.root / k for k in spec.stream_keys())]
        self.dir = self.folders[0]
        self.widths = [d.dim for d in spec.descriptors]  # the descriptors'; appearance is the rest
        # Several streams' entries in one, as written before each stream had its own (under the key of the spec
        # with those streams: every subset of ours with a descriptor): read, never written.
        self._together = [(kept, folder) for kept in reversed(list(itertools.product((False, True), repeat=len(spec.streams))))
                          if any(kept) and (folder := self.root / spec.with_descriptors(kept).key()).is_dir()]
        with self._writing():
            for folder, meta in zip(self.folders, metas):
                folder.mkdir(parents=True, exist_ok=True)
                if not (folder / "spec.json").exists():
                    with atomic_write(folder / "spec.json") as f:
                        f.write(json.dumps(meta, indent=2).encode())
        for folder in self.folders:
            remove_stale_temporaries(folder, STALE_TEMP_SECONDS)

    @staticmethod
    def _name(video: str | Path) -> str:
        p = Path(video).resolve()
        st = p.stat()
        ident = f"{p}\0{st.st_size}\0{st.st_mtime_ns}"
        return hashlib.sha1(ident.encode()).hexdigest() + ".npy"

    def entry(self, video: str | Path) -> Path:
        """The appearance entry's file of ``video`` (see :meth:`entries`)."""
        return self.dir / self._name(video)

    def entries(self, video: str | Path) -> list[Path]:
        """Each stream's entry file of ``video``, in order."""
        name = self._name(video)
        return [folder / name for folder in self.folders]

    def get(self, video: str | Path) -> np.ndarray | None:
        """Cached features ``(length, D)`` float16 (every stream side by side), or None unless every stream has them.

        A damaged entry (see :func:`decode_entry`, or an array of the wrong shape)
        is a miss too, reported as one warning: ``FILE: damaged cache entry (why);
        extracting again``; the caller's :meth:`put` replaces it.
        """
        parts = self.get_parts(video)
        return join_parts(parts) if all(p is not None for p in parts) else None

    def get_parts(self, video: str | Path) -> list[np.ndarray | None]:
        """Each stream's cached numbers ``(length, width)`` float16, or None where it has none (all None when
        the video cannot be read: extraction reports that)."""
        try:
            files = self.entries(video)
        except OSError:  # the video itself is gone
            return [None] * len(self.folders)
        parts = [self._read(f, None if i == 0 else self.widths[i - 1]) for i, f in enumerate(files)]
        for kept, folder in self._together:
            if all(p is not None for p in parts):
                break
            widths = [w for w, k in zip(self.widths, kept) if k]
            together = self._read(folder / files[0].name, None, quiet=True)
            if together is None or together.shape[1] <= sum(widths):
                continue
            old = iter(split_parts(together, widths))
            found = [next(old), *(next(old) if k else None for k in kept)]
            parts = [p if p is not None else f for p, f in zip(parts, found)]
        return parts

    def _read(self, f: Path, width: int | None, quiet: bool = False) -> np.ndarray | None:
        try:
            data = f.read_bytes()
        except OSError:  # no entry
            return None
        try:
            x = decode_entry(data)
            if x.ndim != 2 or x.shape[0] != self.spec.length or (width is not None and x.shape[1] != width):
                raise DamagedEntry(f"shape {x.shape}, expected ({self.spec.length}, {width or 'D'})")
        except DamagedEntry as e:
            if not quiet:
                log.warning(f"{f}: damaged cache entry ({e}); extracting again")
            return None
        return x

    def put(self, video: str | Path, features: np.ndarray) -> None:
        """Store ``features`` ``(length, D)`` (every stream side by side) as ``video``'s entries, one per stream."""
        self.put_parts(video, split_parts(features, self.widths))

    def put_parts(self, video: str | Path, parts: Sequence[np.ndarray | None]) -> None:
        """Store each stream's numbers ``(length, width)`` (None: leave that stream's entry as it is), each
        atomically: a whole entry or none.

        Raises:
            ActivityError: an entry cannot be written (for example a full disk); no
                partial entry or temporary file is left.
        """
        for f, part in zip(self.entries(video), parts):
            if part is None:
                continue
            data = encode_entry(part)
            with self._writing(f.parent), atomic_write(f, durable=False) as tmp:  # a damaged entry is found by its checksum
                tmp.write(data)


    @contextlib.contextmanager
    def _writing(self, folder: Path | None = None) -> Iterator[None]:
        """Turn an OSError while writing the cache into one :class:`ActivityError` line naming the folder
        (``folder``, else the appearance features')."""
        folder = folder or self.dir
        try:
            yield
        except OSError as e:
            if e.errno in _FULL:
                raise ActivityError(f"{folder}: no space left on device for the feature cache "
                                    "(free some space, or give --cache another folder)") from None
            raise ActivityError(f"{folder}: cannot write the feature cache ({e.strerror or e})") from None


def split_parts(features: np.ndarray, widths: Sequence[int]) -> list[np.ndarray]:
    """Features ``(L, D)`` as their streams' numbers: appearance (the rest), then one ``(L, w)`` per width."""
    cut = features.shape[1] - sum(widths)
    out = [features[:, :cut]]
    for w in widths:
        out.append(features[:, cut : cut + w])
        cut += w
    return out


def join_parts(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Streams' numbers ``(L, w_i)`` side by side as one float16 ``(L, sum w_i)``."""
    if len(parts) == 1:
        return parts[0].astype(np.float16, copy=False)
    return np.concatenate([p.astype(np.float16, copy=False) for p in parts], 1)
