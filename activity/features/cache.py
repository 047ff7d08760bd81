"""The on-disk feature cache: ``CACHE/<feature key>/<video key>.npy``, one float16 array
``(num_frames * views, D)`` per video.

The feature key (:meth:`~activity.features.spec.FeatureSpec.key`) hashes
everything that changes the features; the video key hashes the file's identity
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
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from activity.errors import ActivityError
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
        raise DamagedEntry(f"unreadable header: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
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
        raise DamagedEntry(f"unreadable: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


class FeatureCache:
    """Feature files for one :class:`FeatureSpec` under a cache root.

    Opening it removes the temporary files a killed run left in its folder
    (those :data:`STALE_TEMP_SECONDS` old: younger ones may be another process's).

    Raises:
        ActivityError: the folder cannot be created or written (for example a full disk).
    """

    def __init__(self, root: str | Path, spec: FeatureSpec) -> None:
        self.spec = spec
        self.dir = Path(root) / spec.key()
        with self._writing():
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = self.dir / "spec.json"
            if not meta.exists():
                with atomic_write(meta) as f:
                    f.write(json.dumps(asdict(spec), indent=2).encode())
        remove_stale_temporaries(self.dir, STALE_TEMP_SECONDS)

    def entry(self, video: str | Path) -> Path:
        p = Path(video).resolve()
        st = p.stat()
        ident = f"{p}\0{st.st_size}\0{st.st_mtime_ns}"
        return self.dir / (hashlib.sha1(ident.encode()).hexdigest() + ".npy")

    def get(self, video: str | Path) -> np.ndarray | None:
        """Cached features ``(length, D)`` float16, or None on a miss.

        A damaged entry (see :func:`decode_entry`, or an array of the wrong shape)
        is a miss too, reported as one warning: ``FILE: damaged cache entry (why);
        extracting again``; the caller's :meth:`put` replaces it.
        """
        try:
            f = self.entry(video)
            data = f.read_bytes()
        except OSError:  # no entry, or the video itself is gone (extraction reports that)
            return None
        try:
            x = decode_entry(data)
            if x.ndim != 2 or x.shape[0] != self.spec.length:
                raise DamagedEntry(f"shape {x.shape}, expected ({self.spec.length}, D)")
        except DamagedEntry as e:
            log.warning(f"{f}: damaged cache entry ({e}); extracting again")
            return None
        return x

    def put(self, video: str | Path, features: np.ndarray) -> None:
        """Store ``features`` as the entry of ``video`` (atomically: a whole entry or none).

        Raises:
            ActivityError: the entry cannot be written (for example a full disk); no
                partial entry or temporary file is left.
        """
        f = self.entry(video)
        data = encode_entry(features)
        with self._writing(), atomic_write(f, durable=False) as tmp:  # a damaged entry is found by its checksum
            tmp.write(data)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn an OSError while writing the cache into one :class:`ActivityError` line naming the folder."""
        try:
            yield
        except OSError as e:
            if e.errno in _FULL:
                raise ActivityError(f"{self.dir}: no space left on device for the feature cache "
                                    "(free some space, or give --cache another folder)") from None
            raise ActivityError(f"{self.dir}: cannot write the feature cache ({e.strerror or e})") from None
