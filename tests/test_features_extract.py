"""Feature extraction and the on-disk feature cache, with a tiny fake backbone (no real CNN)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from activity.config import FeatureConfig
from activity.data.decoders import open_video, read_sampled
from activity.errors import ActivityError
from activity.features.cache import FeatureCache, default_cache_dir
from activity.features.extract import ExtractOptions, extract, require_features
from activity.features.spec import FeatureSpec

try:
    from utils import make_video
except ImportError:  # tests/ imported as a package
    from tests.utils import make_video

DIM = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeBackbone(nn.Module):
    """(N, 3, H, W) -> (N, 8): mean over pixels, then a fixed positive linear map."""

    feature_dim = DIM

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, DIM)
        with torch.no_grad():
            self.fc.weight.copy_(torch.arange(1, 3 * DIM + 1, dtype=torch.float32).reshape(DIM, 3) / 10)
            self.fc.bias.copy_(torch.linspace(-1, 1, DIM))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == 3
        self.calls += 1
        return self.fc(x.mean(dim=(2, 3)))


class Factory:
    """Counts how often the backbone is built."""

    def __init__(self) -> None:
        self.built = 0

    def __call__(self) -> FakeBackbone:
        self.built += 1
        return FakeBackbone()


def no_backbone() -> nn.Module:
    raise AssertionError("the backbone must not be built when everything is cached")


def spec_for(**kw) -> FeatureSpec:
    kw.setdefault("image_size", 32)
    kw.setdefault("num_frames", 4)
    kw.setdefault("enhance", "none")  # the clips below start dark: keep their pixels as they are
    kw.setdefault("streams", ["appearance"])  # the appearance features alone (tests/test_features_motion.py has the stream)
    return FeatureSpec.from_config(FeatureConfig(**kw))


def run(paths, spec, cache, factory=None, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return extract(paths, spec, cache, factory or Factory(), ExtractOptions(**kw))


@pytest.fixture
def videos(tmp_path):
    """Three small lossless clips of 16 frames, getting brighter over time."""
    return [make_video(tmp_path / "v" / f"clip{i}.avi", 16, (48, 40), lossless=True, seed=i)[0] for i in range(3)]


# ---------------------------------------------------------------- spec and key


def test_spec_from_config():
    spec = spec_for(num_frames=4, views=3)
    assert spec.backbone == "efficientnet_lite0"
    assert (spec.num_frames, spec.views) == (4, 3)
    assert spec.length == 12
    assert spec.preprocess.crop_size == 32
    assert spec.preprocess.resize_size >= 32
    assert spec.key().startswith("efficientnet_lite0-")
    assert spec.key() == spec_for(num_frames=4, views=3).key()  # stable


@pytest.mark.parametrize(
    "change",
    [{"num_frames": 8}, {"image_size": 64}, {"views": 3}, {"backbone": "efficientnet_lite1"},
     {"frame_fit": "pad"}, {"frame_fit": "stretch"}, {"enhance": "dark"}, {"enhance": "gamma"}, {"enhance": "clahe"},
     {"precision": "bfloat16"}, {"precision": "float16"}, {"streams": ["appearance", "motion"]}],
    ids=lambda c: "=".join(map(str, next(iter(c.items())))),
)
def test_key_changes_with_what_changes_the_features(change):
    assert spec_for(**change).key() != spec_for().key()


def test_neutral_frame_options_keep_the_key_of_entries_written_before_them():
    import dataclasses
    import hashlib

    spec = spec_for()
    before = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("frame_fit", "enhance", "precision", "streams")}
    assert spec.key() == f"{spec.backbone}-{hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]}"


def _portrait_with_red_ends() -> np.ndarray:
    """A tall grey frame whose top and bottom 10 rows are red: what a centre crop throws away."""
    frames = np.full((2, 120, 40, 3), 128, dtype=np.uint8)
    frames[:, :10] = frames[:, -10:] = (255, 0, 0)
    return frames


def test_prepare_pad_and_stretch_keep_the_ends_of_a_portrait_frame():
    frames = _portrait_with_red_ends()
    red = lambda x: int(((x[:, 0] > 0.5) & (x[:, 1] < -0.5)).sum())  # normalised channels: red high, green low
    crop, pad, stretch = (spec_for(frame_fit=f).prepare(frames) for f in ("crop", "pad", "stretch"))
    assert crop.shape == pad.shape == stretch.shape == (2, 3, 32, 32)
    assert red(crop) == 0
    assert red(pad) > 0 and red(stretch) > red(pad)
    # padding is the backbone's mean colour: zero after normalisation
    assert torch.allclose(pad[:, :, 16, 1], torch.zeros(2, 3), atol=0.02)


def test_prepare_enhance_brightens_dark_frames():
    dark = np.random.default_rng(0).integers(0, 25, size=(2, 48, 64, 3), dtype=np.uint8)
    plain, gamma, clahe = (spec_for(enhance=e).prepare(dark) for e in ("none", "gamma", "clahe"))
    assert plain.mean() < -0.8 and gamma.mean() > plain.mean() + 0.5 and clahe.mean() > plain.mean()


def test_cache_dirs_are_separate_per_spec(tmp_path):
    a = FeatureCache(tmp_path, spec_for())
    b = FeatureCache(tmp_path, spec_for(image_size=64))
    assert a.dir != b.dir and a.dir.parent == b.dir.parent == tmp_path
    meta = json.loads((a.dir / "spec.json").read_text())
    assert meta["num_frames"] == 4 and meta["views"] == 1 and meta["preprocess"]["crop_size"] == 32


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTIVITY_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ACTIVITY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "activity"


# ---------------------------------------------------------------- extract and cache


def test_miss_then_hit(tmp_path, videos):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "cache", spec)
    factory = Factory()
    first = run(videos, spec, cache, factory)
    assert factory.built == 1
    assert first.extracted == 3 and not first.failed
    assert first.frames == 3 * spec.length
    assert set(first.features) == set(videos)
    for v in videos:
        f = first.features[v]
        assert f.shape == (spec.length, DIM) and f.dtype == np.float16
        assert cache.entry(v).is_file()
        np.testing.assert_array_equal(cache.get(v), f)

    second = run(videos, spec, FeatureCache(tmp_path / "cache", spec), no_backbone)
    assert second.extracted == 0 and second.frames == 0 and not second.failed
    assert set(second.features) == set(videos)
    for v in videos:
        np.testing.assert_array_equal(second.features[v], first.features[v])


def test_features_are_those_of_the_sampled_frames_in_order(tmp_path, videos):
    spec = spec_for(num_frames=4, views=2)  # 8 segments, centre of each
    res = run(videos[:1], spec, None)
    feats = res.features[videos[0]].astype(np.float32)
    # the clip gets brighter frame by frame and the fake backbone is increasing in brightness
    assert np.all(np.diff(feats[:, 0]) > 0)
    with open_video(videos[0], "opencv") as r:
        frames, idx = read_sampled(r, spec.length)
    np.testing.assert_array_equal(idx, [1, 3, 5, 7, 9, 11, 13, 15])
    expected = FakeBackbone()(spec.preprocess(frames)).detach().numpy()
    np.testing.assert_allclose(feats, expected, rtol=2e-3, atol=2e-3)


def test_small_batches_give_the_same_features(tmp_path, videos):
    spec = spec_for()
    big = run(videos, spec, None, batch_size=64)
    small = run(videos, spec, None, batch_size=3)  # several flushes, clips split over chunks
    assert small.extracted == 3
    for v in videos:
        np.testing.assert_array_equal(big.features[v], small.features[v])


def test_without_a_cache_nothing_is_written(tmp_path, videos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    res = run(videos, spec_for(), None)
    assert res.extracted == 3
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_duplicate_paths_are_extracted_once(tmp_path, videos):
    res = run([videos[0], videos[0], videos[1]], spec_for(), FeatureCache(tmp_path / "c", spec_for()))
    assert res.extracted == 2 and len(res.features) == 2


def test_partial_cache_extracts_only_the_missing(tmp_path, videos):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    run(videos[:2], spec, cache)
    res = run(videos, spec, cache)
    assert res.extracted == 1 and len(res.features) == 3


@pytest.mark.parametrize("change", [{"num_frames": 8}, {"image_size": 48}, {"views": 2}], ids=lambda c: next(iter(c)))
def test_another_spec_misses(tmp_path, videos, change):
    spec = spec_for()
    run(videos, spec, FeatureCache(tmp_path / "c", spec))
    other = spec_for(**change)
    res = run(videos, other, FeatureCache(tmp_path / "c", other))
    assert res.extracted == 3
    assert all(f.shape == (other.length, DIM) for f in res.features.values())
    # the first spec's entries are still there
    assert run(videos, spec, FeatureCache(tmp_path / "c", spec), no_backbone).extracted == 0


def test_touching_the_video_invalidates(tmp_path, videos):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    run(videos, spec, cache)
    old_entry = cache.entry(videos[1])
    st = videos[1].stat()
    os.utime(videos[1], ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert cache.entry(videos[1]) != old_entry
    assert cache.get(videos[1]) is None
    res = run(videos, spec, cache)
    assert res.extracted == 1 and videos[1] in res.features


def test_editing_the_video_gives_new_features(tmp_path, videos):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    old = run(videos[:1], spec, cache).features[videos[0]]
    st = videos[0].stat()
    make_video(videos[0], 30, (48, 40), lossless=True, seed=9)  # another clip under the same name
    os.utime(videos[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    res = run(videos[:1], spec, cache)
    assert res.extracted == 1
    assert not np.array_equal(res.features[videos[0]], old)


def _corrupt(kind: str, entry: Path, good: np.ndarray) -> None:
    if kind == "garbage":
        entry.write_bytes(b"definitely not numpy" * 10)
    elif kind == "truncated":
        data = entry.read_bytes()
        entry.write_bytes(data[: len(data) - 16])
    elif kind == "truncated_header":
        entry.write_bytes(entry.read_bytes()[:30])
    elif kind == "wrong_shape":
        np.save(entry, good[:-1])
    elif kind == "wrong_ndim":
        np.save(entry, good.ravel())
    elif kind == "empty":
        entry.write_bytes(b"")
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "truncated",
        "truncated_header",
        "wrong_shape",
        "wrong_ndim",
        "empty",
    ],
)
def test_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path, videos, kind):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    good = run(videos[:2], spec, cache).features[videos[0]]
    entry = cache.entry(videos[0])
    _corrupt(kind, entry, good)
    assert cache.get(videos[0]) is None
    res = run(videos[:2], spec, cache)
    assert res.extracted == 1 and not res.failed
    np.testing.assert_array_equal(res.features[videos[0]], good)
    np.testing.assert_array_equal(cache.get(videos[0]), good)  # written again


def test_no_temporary_files_are_left(tmp_path, videos):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    run(videos, spec, cache)
    names = sorted(p.name for p in cache.dir.iterdir())
    assert not [n for n in names if n.startswith(".tmp-")]
    assert len([n for n in names if n.endswith(".npy")]) == 3 and "spec.json" in names


# ---------------------------------------------------------------- failures


@pytest.fixture
def bad_videos(tmp_path):
    missing = tmp_path / "bad" / "missing.mp4"
    text = tmp_path / "bad" / "notes.avi"
    text.parent.mkdir(parents=True)
    text.write_text("not a video\n" * 40)
    empty = tmp_path / "bad" / "empty.mp4"
    empty.write_bytes(b"")
    return [missing, text, empty]


@pytest.mark.parametrize("decoder", ["auto", "opencv"])
def test_failed_videos_are_reported_without_losing_the_others(tmp_path, videos, bad_videos, decoder):
    spec = spec_for()
    cache = FeatureCache(tmp_path / "c", spec)
    seen = []
    paths = [videos[0], bad_videos[0], videos[1], bad_videos[1], bad_videos[2], videos[2]]
    res = run(paths, spec, cache, decoder=decoder, batch_size=5, on_error=lambda p, r: seen.append((p, r)))
    assert set(res.failed) == set(bad_videos)
    assert set(res.features) == set(videos)
    assert res.extracted == 3
    assert "no such file" in res.failed[bad_videos[0]]
    assert "empty" in res.failed[bad_videos[2]]
    assert all(isinstance(r, str) and r and "\n" not in r for r in res.failed.values())
    assert sorted(seen) == sorted(res.failed.items())
    for v in videos:
        assert res.features[v].shape == (spec.length, DIM)
    # the good ones are cached, the bad ones are tried again and fail again
    again = run(paths, spec, cache)
    assert again.extracted == 0 and set(again.failed) == set(bad_videos)


def test_a_decoder_crash_is_reported_as_a_failure(tmp_path, videos, monkeypatch):
    import activity.features.extract as features_mod

    real = features_mod.read_sampled

    def flaky(reader, n, **kw):
        if reader.path.name == "clip1.avi":
            raise RuntimeError("decoder exploded\nwith a second line")
        return real(reader, n, **kw)

    monkeypatch.setattr(features_mod, "read_sampled", flaky)
    res = run(videos, spec_for(), None)
    assert set(res.failed) == {videos[1]}
    assert "RuntimeError" in res.failed[videos[1]] and "\n" not in res.failed[videos[1]]
    assert set(res.features) == {videos[0], videos[2]}


def test_require_features(tmp_path, bad_videos):
    res = run(bad_videos, spec_for(), None)
    assert not res.features and len(res.failed) == 3
    with pytest.raises(ActivityError, match="no readable video in the test set") as ei:
        require_features(res, "the test set")
    assert "missing.mp4" in str(ei.value)


def test_loader_workers(tmp_path, videos):
    """The default path on the CPU: workers decode and encode, this process only collects."""
    spec = spec_for()
    inline = run(videos, spec, None, workers=0)
    backbone = FakeBackbone()
    workers = run(videos, spec, None, factory=lambda: backbone, workers=2)
    assert workers.extracted == 3
    assert backbone.calls == 0  # every forward pass ran in a worker, on its own copy
    for v in videos:
        np.testing.assert_array_equal(inline.features[v], workers.features[v])
    assert run(videos[:1], spec, None, factory=lambda: backbone, workers=2).extracted == 1
    assert backbone.calls == 1  # one clip: no worker to start, encoded here


def test_compiled_backbone_in_the_workers_gives_the_eager_features(videos, monkeypatch):
    import activity.features.runtime as runtime

    spec = spec_for()
    eager = run(videos, spec, None, workers=0)
    compiled = run(videos, spec, None, workers=2, runtime="compiled")
    assert compiled.runtime == "compiled" and not compiled.notes
    for v in videos:
        np.testing.assert_allclose(compiled.features[v].astype(np.float32), eager.features[v].astype(np.float32), rtol=2e-3, atol=2e-3)
    assert run(videos, spec, None, workers=2).runtime == "eager"  # auto: a few frames do not pay for compiling
    monkeypatch.setattr(runtime, "COMPILE_MIN_FRAMES", 3 * spec.length)
    assert run(videos, spec, None, workers=2).runtime == "compiled"  # auto: enough frames
    inline = run(videos, spec, None, workers=0)
    assert inline.runtime == "eager" and not inline.notes  # auto compiles only where the CPU workers encode, silently
    asked = run(videos, spec, None, workers=0, runtime="compiled")
    assert asked.runtime == "eager" and asked.notes == [
        "torch.compile is used only where CPU workers encode (here: no loader workers, or a single clip); encoding without it"]


def test_a_backbone_that_cannot_be_compiled_runs_eagerly_with_a_note(videos, monkeypatch, caplog):
    def no_compiler(*a, **k):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    spec = spec_for()
    res = run(videos, spec, None, workers=2, runtime="compiled")
    assert res.runtime == "eager" and res.extracted == 3
    assert res.notes == ["torch.compile unavailable, encoding without it (RuntimeError: no C++ compiler found)"]
    np.testing.assert_array_equal(res.features[videos[0]], run(videos, spec, None, workers=0).features[videos[0]])


def test_default_workers_share_the_cores_among_local_processes(monkeypatch):
    from activity.features.extract import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert (default_workers("cpu"), default_workers("cuda")) == (8, 7)  # CPU: one per core; GPU: one core for the GPU process
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun, two processes on this node
    assert (default_workers("cpu"), default_workers("cuda")) == (4, 3)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert (default_workers("cpu"), default_workers("cuda")) == (16, 16)


_SLOW_EXTRACT = """
import sys, time
import activity.features.backbones as b
real = b.Backbone.forward
def slow(self, x):
    time.sleep(0.5)
    return real(self, x)
b.Backbone.forward = slow
from activity.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_extract_killed_midway_resumes_without_corrupt_entries_or_repeated_work(tmp_path, cli):
    import os
    import signal
    import subprocess
    import sys
    import time

    from activity.config import FeatureConfig
    from activity.data.synthetic import make_order_dataset
    from activity.features.spec import FeatureSpec

    data = make_order_dataset(tmp_path / "data", classes=["growing", "shrinking"], clips_per_class=24, num_frames=8, size=(32, 32))
    cache = tmp_path / "cache"
    opts = ["--data", str(data), "--cache", str(cache), "--quiet", "features.image_size=32", "features.num_frames=4"]
    spec = FeatureSpec.from_config(FeatureConfig(image_size=32, num_frames=4))
    folders = FeatureCache(cache, spec).folders
    entries = folders[-1]  # the motion stream's: a video's last entry to be written
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_EXTRACT, "extract", *opts], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if entries.exists() and len(list(entries.glob("*.npy"))) >= 16:  # the first batch of 16 clips is written
            break
        time.sleep(0.02)
    assert proc.poll() is None, "extraction finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name for p in entries.glob("*.npy")}
    assert 0 < len(done) < 48
    for p in (p for folder in folders for p in folder.glob("*.npy")):
        assert np.load(p).shape[0] == 4  # every visible entry is whole

    assert _run_extract(cli, opts) == (48 - len(done), len(done))  # only what was missing
    assert _run_extract(cli, opts) == (0, 48)  # and then nothing is left to do
    assert len(list(entries.glob("*.npy"))) == 48


def _run_extract(cli, opts):
    """``activity extract OPTS``: (videos extracted, videos read from the cache)."""
    result = cli(["extract", *opts])
    assert result.code == 0, result.err
    line = next(l for l in result.out.splitlines() if "videos with features" in l)
    extracted = int(line.split(": ")[1].split(" extracted")[0])
    cached = int(line.split(", ")[1].split(" from")[0])
    return extracted, cached


class ShapeRecorder(FakeBackbone):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return super().forward(x)


def test_the_backbone_sees_full_batches_drawn_across_clips(videos):
    """3 clips x 4 frames in batches of 5: two full passes and one of the 2 frames left, not one ragged pass per clip."""
    spec = spec_for()
    recorder = ShapeRecorder()
    res = run(videos, spec, None, lambda: recorder, batch_size=5)
    assert recorder.batches == [5, 5, 2]
    assert res.frames == 12 and all(f.shape == (4, DIM) for f in res.features.values())


def test_reduced_precision_is_close_and_cached_apart(tmp_path, videos):
    """bfloat16 autocast (for GPUs; it runs on the CPU too) changes the features a little, so it has its own cache key."""
    full, half = spec_for(), spec_for(precision="bfloat16")
    assert full.key() != half.key()
    a = run(videos[:1], full, FeatureCache(tmp_path / "c", full)).features[videos[0]].astype(np.float32)
    b = run(videos[:1], half, FeatureCache(tmp_path / "c", half)).features[videos[0]].astype(np.float32)
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(b, a, rtol=0.03, atol=0.03)
    assert len(list((tmp_path / "c").glob("*/*.npy"))) == 2


@pytest.mark.parametrize("kw, key", [
    ({"streams": ["appearance"]}, "efficientnet_lite0-793f7a9a9b9b"),
    ({"streams": ["appearance"], "enhance": "none"}, "efficientnet_lite0-602d2de4934b"),
    ({"streams": ["appearance"], "num_frames": 8, "views": 3, "image_size": 160, "frame_fit": "pad", "backbone": "resnet18"},
     "resnet18-ff5e0a59ca03"),
])
def test_cache_keys_are_those_earlier_versions_wrote(kw, key):
    """Keys computed by the release before the package was split into subpackages: a cache it filled is
    still found (moving a class must not change what the key hashes)."""
    assert FeatureSpec.from_config(FeatureConfig(**kw)).key() == key


@pytest.mark.parametrize("items,workers,run", [(1, 2, 8), (5, 2, 8), (16, 2, 8), (37, 2, 8), (40, 3, 4), (7, 4, 1)])
def test_worker_items_give_each_worker_contiguous_runs_covering_everything_once(items, workers, run):
    from activity.features.steps import worker_items

    parts = worker_items(items, workers, run)
    assert len(parts) == workers and sorted(i for p in parts for i in p) == list(range(items))
    for p in parts:
        assert p == sorted(p)
        runs = np.split(np.array(p), np.flatnonzero(np.diff(p) != 1) + 1) if p else []
        assert all(len(r) <= max(run, -(-items // workers)) for r in runs)
    if items >= workers * run:  # full rounds: every worker gets a share, none more than a run ahead of another
        sizes = [len(p) for p in parts]
        assert min(sizes) > 0 and max(sizes) - min(sizes) <= run
