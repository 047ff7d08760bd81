"""Atomic file writes: a crash or a kill never leaves a partial file under the final name."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600

#: How :func:`atomic_path` names its temporary files (``.tmp-XXXX<suffix>.tmp``).
TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary file name beside ``path``, renamed over ``path`` when the block ends without error.

    For writers that want a file name rather than a file object (exporters). On an
    exception the temporary file is removed and ``path`` is untouched. The temporary
    name (``.tmp-XXXX<suffix>.tmp``) never matches a glob for the final files' suffix.

    Args:
        path: the final file.
        keep_suffix: end the temporary name with ``path``'s own suffix
            (``.tmp-XXXX<suffix>``), for writers that choose the format by it
            (OpenCV's ``VideoWriter`` cannot open ``.mp4.tmp``). Such a name does
            match a glob for that suffix while the write is in progress.
    """
    path = Path(path)
    suffix = path.suffix if keep_suffix else path.suffix + ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """:func:`atomic_path` with the file open for writing, flushed (and fsynced) before the rename.

    Args:
        path: the final file.
        durable: fsync before the rename, so the content survives a power cut. A
            cache whose damaged entries are only misses can skip it.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())


def remove_stale_temporaries(folder: str | Path, older_than: float) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` (a killed writer's) not
    written for ``older_than`` seconds; returns those removed.

    A younger one may belong to a writer still at work (another process on the same
    folder), which renames it when done: it is left alone. Files another process removes
    first, or that cannot be removed, are skipped.
    """
    now = time.time()
    removed = []
    for p in Path(folder).glob(TEMP_PREFIX + "*"):
        try:
            if now - p.stat().st_mtime > older_than:
                p.unlink()
                removed.append(p)
        except OSError:  # gone already (renamed or removed by another process), or not ours to remove
            continue
    return removed


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    import torch

    with atomic_write(path) as f:
        torch.save(obj, f)


@contextlib.contextmanager
def atomic_text(path: str | Path) -> Iterator[IO[str]]:
    """:func:`atomic_write` as UTF-8 text, line endings written as given (``csv`` writers need ``newline=""``)."""
    with atomic_write(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield text
        text.flush()
        text.detach()  # leave the binary file to atomic_write, which fsyncs and renames it


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_text(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (with a final newline) atomically; returns ``path``."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")
