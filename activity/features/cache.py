"""The on-disk feature cache: ``CACHE/<feature key>/<video key>.npy``, one float16 array
``(num_frames * views, D)`` per video.

The feature key (:meth:`~activity.features.spec.FeatureSpec.key`) hashes
everything that changes the features; the video key hashes the file's identity
(absolute path, size, modification time), so an edited file is extracted
again. Writes are atomic (temporary file, then rename), so an interrupted run
leaves no partial entry; the temporary files a killed run left are removed by
the next run once they are :data:`STALE_TEMP_SECONDS` old.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from activity.features.spec import FeatureSpec
from activity.io import atomic_write, remove_stale_temporaries

#: Temporary files not written for this long are a killed run's: every writer renames its own within
#: moments, so a younger one may be another process's, still at work.
STALE_TEMP_SECONDS = 300.0


def default_cache_dir() -> Path:
    """``$ACTIVITY_CACHE``, else ``$XDG_CACHE_HOME/activity``, else ``~/.cache/activity``."""
    if os.environ.get("ACTIVITY_CACHE"):
        return Path(os.environ["ACTIVITY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "activity"


class FeatureCache:
    """Feature files for one :class:`FeatureSpec` under a cache root.

    Opening it removes the temporary files a killed run left in its folder
    (those :data:`STALE_TEMP_SECONDS` old: younger ones may be another process's).
    """

    def __init__(self, root: str | Path, spec: FeatureSpec) -> None:
        self.spec = spec
        self.dir = Path(root) / spec.key()
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
        with atomic_write(f, durable=False) as tmp:  # a damaged entry is read as a miss
            np.save(tmp, features.astype(np.float16, copy=False), allow_pickle=False)
