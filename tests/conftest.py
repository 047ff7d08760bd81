"""Shared fixtures: generated clip collections and the real clips in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
