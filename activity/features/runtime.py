"""What runs the backbone: the one setting ``runtime`` (``auto``, ``eager``, ``compiled``, ``onnxruntime``),
chosen here and nowhere else, with the thresholds ``auto`` uses.

* ``eager``: the PyTorch module as it is.
* ``compiled``: ``torch.compile``, compiled once before the loader workers fork (they inherit
  the compiled code); applies only where CPU workers encode.
* ``onnxruntime``: the backbone exported once to ``<cache root>/onnx/`` and checked against
  torch (:mod:`activity.features.onnx`); CPU, float32 (or int8, on its quantised copy).
* ``auto`` (the default): ``onnxruntime`` where it applies (a CPU, float32, onnxruntime
  installed, no export that failed before) for at least :data:`ONNX_MIN_FRAMES` frames to encode
  (:data:`ONNX_CACHED_MIN_FRAMES` once the export is cached); else ``compiled`` where CPU workers
  encode at least :data:`COMPILE_MIN_FRAMES` frames; else ``eager``.

Precision ``int8`` (``features.precision``) runs only on ONNX Runtime, on a quantised copy of the export
(:mod:`activity.features.quantize`): ``auto`` picks ``onnxruntime`` for it whatever the frame count, and
``eager``, ``compiled`` or a place it cannot run (a GPU, onnxruntime missing) is an error, never a silent
float32 run (its features would be cached as int8 ones).

A runtime named explicitly that cannot be used here falls back to ``eager`` with one note saying
why; ``auto`` falls back silently (an ONNX export that failed is remembered, so ``auto`` does not
pay for it again). The export lives under the feature cache's root; with the cache disabled, under a
temporary folder removed when the process exits, never in a folder the user did not name.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from activity.errors import ActivityError

if TYPE_CHECKING:
    from activity.features.encoder import FrameEncoder

log = logging.getLogger(__name__)

#: The runtimes, ``auto`` first (the default).
RUNTIMES = ("auto", "eager", "compiled", "onnxruntime")

# Frames to encode from which ``auto`` compiles the backbone (where CPU workers encode and ONNX Runtime
# does not apply). On 2 cores, compiling EfficientNet-Lite0 takes about 20 s the first time and about 5 s
# once inductor's cache (/tmp/torchinductor_<user>) is warm, and then saves about 3.7 ms a frame end to end
# (283 basketball clips, 4,528 frames: 52.4 s eager, 35.5 s compiled, 55 s compiling cold).
COMPILE_MIN_FRAMES = 4000
# Frames to encode from which ``auto`` exports the backbone for ONNX Runtime when it is not cached yet.
# Exporting and checking EfficientNet-Lite0 takes about 1.5 s on 2 cores; each frame then costs about
# 16 ms instead of 29 ms on a core, so it pays from about 120 frames.
ONNX_MIN_FRAMES = 320
# Frames from which ``auto`` uses a cached export: below, importing onnxruntime and opening a session
# cost more than the faster forward saves (a cold predict of one 16-frame clip: 2.97 s against 2.89 s).
ONNX_CACHED_MIN_FRAMES = 64


def runtime_help() -> str:
    """The ``--runtime`` help text, with the thresholds above."""
    return (f"what runs the backbone: eager (PyTorch), compiled (torch.compile, where CPU workers encode), "
            f"onnxruntime (CPU, float32: exported once to <cache>/onnx/ and checked against PyTorch); "
            f"auto (default): onnxruntime from {ONNX_MIN_FRAMES:,} frames to encode ({ONNX_CACHED_MIN_FRAMES} once "
            f"exported), else compiled from {COMPILE_MIN_FRAMES:,} frames where CPU workers encode, else eager; "
            f"features.precision=int8 always runs on onnxruntime")


def check_runtime(name: str) -> str:
    """``name`` if it is one of :data:`RUNTIMES`.

    Raises:
        ActivityError: it is not; the message lists them.
    """
    if name not in RUNTIMES:
        raise ActivityError(f"unknown backbone runtime {name!r} (choose from {', '.join(RUNTIMES)})")
    return name


_temporary_root: Path | None = None


def export_root(cache_root: Path | None) -> Path:
    """Where ONNX exports are kept: under the feature cache's root, or, with the cache disabled (None), in one
    temporary folder for this process, removed when it exits."""
    global _temporary_root
    if cache_root is not None:
        return Path(cache_root)
    if _temporary_root is None:
        _temporary_root = Path(tempfile.mkdtemp(prefix="activity-onnx-"))
        atexit.register(shutil.rmtree, _temporary_root, ignore_errors=True)
    return _temporary_root


def choose(name: str, encoder: FrameEncoder, *, frames: int, in_workers: bool, cache_root: Path | None) -> str:
    """The runtime to try for ``frames`` frames to encode: ``name`` itself unless it is ``auto``, which picks
    by the rule in this module's docstring.

    Args:
        name: one of :data:`RUNTIMES`.
        encoder: the backbone to run (on its device and precision).
        frames: frames to encode (under torchrun, about the whole job's, so that every rank agrees).
        in_workers: CPU loader workers encode (where ``compiled`` applies).
        cache_root: the feature cache's root (None: disabled); the ONNX export is looked for under
            :func:`export_root` of it, made only where ONNX Runtime could be picked.
    """
    if encoder.int8:
        if check_runtime(name) in ("auto", "onnxruntime"):
            return "onnxruntime"
        raise ActivityError(f"features.precision=int8 runs on ONNX Runtime only (--runtime onnxruntime or auto), "
                            f"not --runtime {name}")
    if check_runtime(name) != "auto":
        return name
    if encoder.onnxruntime_applies() and frames >= ONNX_CACHED_MIN_FRAMES:
        from activity.features.onnx import export_failure

        path = encoder.onnx_path(export_root(cache_root))
        if (frames >= ONNX_MIN_FRAMES or path.exists()) and export_failure(path) is None:
            return "onnxruntime"
    return "compiled" if in_workers and frames >= COMPILE_MIN_FRAMES else "eager"


def prepare(encoder: FrameEncoder, name: str, *, frames: int, in_workers: bool, cache_root: Path | None,
            batch: int, announce: bool = False) -> tuple[str, str | None]:
    """Set ``encoder`` up to run the backbone with runtime ``name`` (``auto``: :func:`choose`).

    Call it before the loader workers fork: they inherit the compiled backbone, or the ONNX
    model's path (each opens its own one-thread session).

    Args:
        encoder: the backbone (switched in place).
        name: one of :data:`RUNTIMES`.
        frames: frames to encode.
        in_workers: CPU loader workers encode.
        cache_root: the feature cache's root (None: the cache is disabled), where the ONNX export is kept.
        batch: frames per call of the backbone in the workers (the compiled code's one shape).
        announce: log a line before and after the slow steps (exporting, compiling).

    Returns:
        ``(runtime, note)``: what runs it now (``eager``, ``compiled`` or ``onnxruntime``), and why a runtime
        named explicitly could not be used (None otherwise; also logged as a warning).

    Raises:
        ActivityError: precision ``int8`` with a runtime other than ``onnxruntime``/``auto``, or where its
            quantised backbone cannot run (a GPU, onnxruntime missing).
    """
    wanted = choose(name, encoder, frames=frames, in_workers=in_workers, cache_root=cache_root)
    if wanted == "eager":
        return "eager", None
    root = export_root(cache_root) if wanted == "onnxruntime" else None
    why = _use_onnxruntime(encoder, root, announce) if root is not None else _compile(encoder, in_workers, frames, batch, announce)
    if why is None:
        return wanted, None
    if name == "auto":  # silently eager; a failed export is remembered so that auto does not try again
        if wanted == "onnxruntime":
            from activity.features.onnx import remember_export_failure

            remember_export_failure(encoder.onnx_path(root), why)  # type: ignore[arg-type]
        log.info(why)
        return "eager", None
    log.warning(why)
    return "eager", why


def _use_onnxruntime(encoder: FrameEncoder, root: Path, announce: bool) -> str | None:
    path = encoder.onnx_path(root)
    if encoder.int8:
        from activity.features.quantize import int8_path

        path = int8_path(path)
    exporting = announce and not path.exists()
    if exporting:
        what = "quantising the backbone to int8" if encoder.int8 else "exporting the backbone for ONNX Runtime"
        log.info(f"{what}, once (kept in {root / 'onnx'})")
    t0 = time.perf_counter()
    why = encoder.use_onnxruntime(root)
    if exporting and why is None:
        log.info(f"exported in {time.perf_counter() - t0:.1f} s")
    return why


def _compile(encoder: FrameEncoder, in_workers: bool, frames: int, batch: int, announce: bool) -> str | None:
    if not in_workers:
        where = "a GPU" if encoder.device.type != "cpu" else "no loader workers, or a single clip"
        return f"torch.compile is used only where CPU workers encode (here: {where}); encoding without it"
    if announce:
        log.info(f"compiling the backbone with torch.compile for {frames:,} frames "
                 "(about 20 s the first time, 5 s once its cache is warm; --runtime eager skips it)")
    t0 = time.perf_counter()
    why = encoder.compile(batch, threads=1)  # before the workers fork: they inherit the compiled code
    if why is not None:
        return f"torch.compile unavailable, encoding without it ({why})"
    if announce:
        log.info(f"compiled in {time.perf_counter() - t0:.1f} s")
    return None
