"""Helpers shared by the unit tests (in the spirit of PyTorchVideo's ``temp_encoded_video``).

Import from a test module with::

    from utils import make_video

(pytest puts ``tests/`` on ``sys.path`` for its test modules.)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from activity.data.synthetic import write_video


def make_frames(num_frames: int = 12, size: tuple[int, int] = (64, 48), seed: int = 0) -> np.ndarray:
    """uint8 RGB frames ``(T, H, W, 3)`` in which every frame is easy to tell apart.

    Frame ``i`` has its own overall brightness (evenly spread over [24, 232], so
    frames stay identifiable through a lossy codec by their mean), a per-channel
    tint, a fixed seeded texture (so a decoder that returns a blank or shifted
    image is caught) and a dark vertical bar whose position moves with ``i``.
    """
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    w, h = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(-10, 11, size=(h, w, 3)).astype(np.int16)
    levels = np.linspace(24, 232, num_frames) if num_frames > 1 else np.array([128.0])
    tint = np.array([6, 0, -6], dtype=np.int16)
    bar_w = max(1, w // 16)
    frames = np.empty((num_frames, h, w, 3), dtype=np.uint8)
    for i, level in enumerate(levels):
        img = int(round(level)) + texture + tint
        x = (i * bar_w) % max(1, w - bar_w)
        img[:, x : x + bar_w] -= 20
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def make_video(
    path: str | Path,
    num_frames: int = 12,
    size: tuple[int, int] = (64, 48),
    fps: float = 12.0,
    lossless: bool = False,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """Write a small clip of distinguishable frames and return ``(path, frames)``.

    Args:
        path: where to write. Its suffix picks the codec (``.avi``: lossless
            FFV1, ``.mp4``: MPEG-4). With ``lossless=True`` the suffix is
            changed to ``.avi`` so the decoded frames equal ``frames`` exactly.
        num_frames: frames in the clip.
        size: ``(width, height)``.
        fps: frame rate written into the container.
        lossless: force FFV1 in AVI.
        seed: seed of the texture.

    Returns:
        The path actually written and the uint8 RGB frames ``(T, H, W, 3)``.
    """
    path = Path(path)
    if lossless and path.suffix.lower() != ".avi":
        path = path.with_suffix(".avi")
    frames = make_frames(num_frames, size, seed)
    write_video(path, frames, fps)
    return path, frames


def nearest_frame(frame: np.ndarray, frames: np.ndarray) -> int:
    """Index of the written frame closest (mean absolute difference) to a decoded one."""
    diff = np.abs(frames.astype(np.int16) - frame.astype(np.int16)[None]).mean(axis=(1, 2, 3))
    return int(diff.argmin())


#: ``trained_run(**TWO_STREAM)``: a tiny two-stream run (``features.motion``) on 1 s clips at 12 fps, of two
#: classes that differ only in which way the bar moves; the timeline, live and explain tests share it.
TWO_STREAM: dict = dict(
    classes=("moving_left", "moving_right"), clips_per_class=6, num_frames=12, size=(64, 48),
    options=("features.motion=true", "features.image_size=64", "features.num_frames=8", "train.epochs=4",
             "model.ensemble=1", "--group-regex", r"_(\d+)\."),
)


SUMMARY = re.compile(r"^(\d+) processed, (\d+) skipped(?: \((.+)\))?$")


class CliResult(NamedTuple):
    """What one in-process ``main(argv)`` returned and wrote."""

    code: int
    out: str  # everything written to stdout (fd 1), from Python or below it
    err: str  # everything written to stderr (fd 2): Python, the decoders' C libraries, the loader's worker process

    def skip_lines(self) -> list[str]:
        """The ``skipped PATH: reason`` lines of stderr."""
        return [line for line in self.err.splitlines() if line.startswith("skipped ")]

    def summaries(self) -> list[re.Match]:
        """The ``N processed, M skipped (...)`` lines of stderr, matched."""
        return [m for m in map(SUMMARY.match, self.err.splitlines()) if m]


def run_cli(argv: Sequence[object]) -> CliResult:
    """``main(argv)`` in-process, with stdout and stderr pointed at files as in a shell redirect.

    Captures file descriptors 1 and 2 and gives Python real streams on them
    (``fileno()`` works, as it does for the console command), so the capture
    holds what a user would see, in order. Works inside module- and
    session-scoped fixtures, where ``capsys`` cannot be used.
    """
    from activity.cli import main

    with tempfile.TemporaryFile() as fd_out, tempfile.TemporaryFile() as fd_err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved_fds = os.dup(1), os.dup(2)
        saved_streams = sys.stdout, sys.stderr
        os.dup2(fd_out.fileno(), 1)
        os.dup2(fd_err.fileno(), 2)
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's usage errors (exit code 2) and --help
            code = e.code if isinstance(e.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
        fd_out.seek(0)
        fd_err.seek(0)
        return CliResult(code, fd_out.read().decode("utf-8", "replace"), fd_err.read().decode("utf-8", "replace"))


def random_checkpoint(config, classes: Sequence[str], feature_dim: int, *, seed: int = 0, model=None,
                      prepare: Callable | None = None, noise: float = 0.0, metrics: dict | None = None,
                      path: str | Path | None = None):
    """A :class:`~activity.temporal.checkpoint.Checkpoint` of an untrained temporal model (the ``random_checkpoint`` fixture).

    Args:
        config: the :class:`~activity.config.Config` it was "trained" with; its ``model`` section builds the model.
        classes: class names, one per output.
        feature_dim: size of each frame's feature vector.
        seed: torch's global seed, set before the model is built.
        model: use this model instead of building one.
        prepare: called under ``no_grad`` on the model (on each member of an ensemble), e.g. to set
            feature statistics or scale the head.
        noise: add ``noise * randn`` to every parameter, so that a load that kept the initial weights is caught.
        metrics: the checkpoint's metrics.
        path: where to save it as well (``save_checkpoint``).
    """
    import torch

    from activity.temporal.checkpoint import Checkpoint, save_checkpoint
    from activity.temporal.models import build_temporal_model

    if model is None:
        torch.manual_seed(seed)
        model = build_temporal_model(config.model, feature_dim, len(classes))
    with torch.no_grad():
        if prepare is not None:
            for member in getattr(model, "members", [model]):
                prepare(member)
        for p in model.parameters() if noise else ():
            p.add_(torch.randn_like(p) * noise)
    ckpt = Checkpoint(model.eval(), list(classes), config, feature_dim, dict(metrics or {}))
    if path is not None:
        save_checkpoint(Path(path), ckpt)
    return ckpt


def slowed_activity(module: str, attr: str, seconds: float) -> str:
    """Source for ``python -c``: the ``activity`` command line with each call of ``module.attr`` delayed by
    ``seconds`` (to make two processes overlap, or to kill a run part-way); arguments follow as usual."""
    return f"""
import importlib, runpy, time
m = importlib.import_module({module!r})
real = getattr(m, {attr!r})
def slow(*args, **kwargs):
    time.sleep({seconds})
    return real(*args, **kwargs)
setattr(m, {attr!r}, slow)
runpy.run_module("activity", run_name="__main__", alter_sys=True)
"""


def bad_file(kind: str, tmp: Path) -> Path:
    """A file (or folder, or missing path) under ``tmp`` that no decoder can read, by ``kind``:
    ``missing``, ``directory``, ``zero_bytes``, ``random_bytes`` or ``text_as_avi``."""
    if kind == "missing":
        return tmp / "does_not_exist.mp4"
    if kind == "directory":
        p = tmp / "a_folder.mp4"
        p.mkdir()
        return p
    if kind == "zero_bytes":
        p = tmp / "empty.mp4"
        p.write_bytes(b"")
        return p
    if kind == "random_bytes":
        p = tmp / "noise.mp4"
        p.write_bytes(np.random.default_rng(0).bytes(4096))
        return p
    if kind == "text_as_avi":
        p = tmp / "notes.avi"
        p.write_text("this is a text file, not a video\n" * 50)
        return p
    raise AssertionError(kind)
