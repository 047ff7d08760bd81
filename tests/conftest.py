"""Shared fixtures: the real clips in ../shared/data, the CLI run in-process (``cli``), a run trained on
generated clips (``trained_run``) and checkpoints of random models (``random_checkpoint``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from utils import CliResult, run_cli
    from utils import random_checkpoint as make_random_checkpoint
except ImportError:  # tests/ imported as a package
    from tests.utils import CliResult, run_cli
    from tests.utils import random_checkpoint as make_random_checkpoint

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$ACTIVITY_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("ACTIVITY_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real clips; the test is skipped where they are absent."""
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real clips not found at {d} (set ACTIVITY_SHARED_DATA)")
    return d


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread is far faster than two contending for 2 cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's feature cache from a test."""
    monkeypatch.setenv("ACTIVITY_CACHE", str(tmp_path_factory.mktemp("default-cache")))


# ---------------------------------------------------------------- the CLI in this process


@pytest.fixture(scope="session")
def cli() -> Callable[[Sequence[object]], CliResult]:
    """``cli(argv)`` runs ``activity.cli.main(argv)`` in this process: ``(code, out, err)`` (see :func:`utils.run_cli`)."""
    return run_cli


# ---------------------------------------------------------------- a trained run on generated clips


ORDER_CLASSES = ("growing", "moving_right", "shrinking")
FAST = ("features.image_size=64", "features.num_frames=8", "train.epochs=3")


@dataclass(frozen=True)
class TrainedRun:
    """``activity train`` run on a generated collection."""

    root: Path  # holds data/, cache/ and run/
    data: Path  # folder-per-class collection
    cache: Path  # feature cache the run filled
    run: Path  # the run folder
    ckpt: Path  # run/model.pt
    train: CliResult  # what the train command printed


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, cli) -> Callable[..., TrainedRun]:
    """``trained_run(**recipe)``: a collection of generated clips and a run trained on it, once per session per recipe.

    Keyword arguments (all optional): ``classes``, ``clips_per_class``,
    ``num_frames``, ``size`` and ``fps`` of the generated clips
    (:func:`activity.data.synthetic.make_order_dataset`); ``broken``: files
    named ``CLASS/NAME`` written with bytes that are not a video; ``options``:
    further ``train`` arguments (default: 64 px, 8 frames, 3 epochs). Test
    files asking for the same recipe share the run: they must not change it
    (write under ``tmp_path``; put back what they add to ``data``).
    """
    from activity.data.synthetic import make_order_dataset

    runs: dict[tuple, TrainedRun] = {}

    def make(*, classes: Sequence[str] = ORDER_CLASSES, clips_per_class: int = 5, num_frames: int = 12,
             size: tuple[int, int] = (64, 48), fps: float = 12.0, broken: Sequence[str] = (),
             options: Sequence[str] = FAST) -> TrainedRun:
        key = (tuple(classes), clips_per_class, num_frames, tuple(size), fps, tuple(broken), tuple(options))
        if key not in runs:
            root = tmp_path_factory.mktemp("trained")
            data = make_order_dataset(root / "data", classes=list(classes), clips_per_class=clips_per_class,
                                      num_frames=num_frames, size=size, fps=fps)
            for name in broken:
                (data / name).write_bytes(b"this is not a video")
            cache, run = root / "cache", root / "run"
            result = cli(["train", "--data", data, "--out", run, "--cache", cache, "--quiet", *options])
            assert result.code == 0, result.err
            runs[key] = TrainedRun(root, data, cache, run, run / "model.pt", result)
        return runs[key]

    return make


# ---------------------------------------------------------------- checkpoints of random models


@pytest.fixture(scope="session")
def random_checkpoint() -> Callable[..., object]:
    """``random_checkpoint(config, classes, feature_dim, ...)``: a checkpoint of an untrained model (see
    :func:`utils.random_checkpoint`)."""
    return make_random_checkpoint
