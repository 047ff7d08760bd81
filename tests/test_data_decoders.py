"""Video decoding: every registered decoder, the auto choice and its fallback, bad files and lying containers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import activity
from activity.data.decoders import VideoReader, open_video, read_sampled
from activity.data.decoders import auto as auto_mod
from activity.data.decoders import decord as decord_mod
from activity.data.decoders import opencv as opencv_mod
from activity.data.decoders.opencv import OpenCVReader
from activity.data.sampling import segment_indices
from activity.errors import VideoError
from activity.registry import DECODERS

try:
    from utils import bad_file, make_video, nearest_frame
except ImportError:  # tests/ imported as a package
    from tests.utils import bad_file, make_video, nearest_frame

try:
    decord_mod._import_decord()  # not a bare `import decord`: that would break PNG reading in this process

    HAVE_DECORD = True
except ImportError:  # not on this platform
    HAVE_DECORD = False

BACKENDS = [
    pytest.param("decord", marks=pytest.mark.skipif(not HAVE_DECORD, reason="decord not installed on this platform")),
    "opencv",
]
ALL_BACKENDS = [*BACKENDS, "auto"]

NUM_FRAMES, SIZE, FPS = 12, (64, 48), 8.0  # 1.5 s


@pytest.fixture(scope="module")
def lossless(tmp_path_factory):
    """A lossless FFV1 clip and the frames written into it."""
    return make_video(tmp_path_factory.mktemp("video") / "clip.avi", NUM_FRAMES, SIZE, FPS, lossless=True)


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    """An MPEG-4 clip and the frames written into it."""
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", NUM_FRAMES, SIZE, FPS)


# ---------------------------------------------------------------- the helper itself


def test_helper_frames_are_distinct(lossless):
    _, frames = lossless
    assert frames.shape == (NUM_FRAMES, SIZE[1], SIZE[0], 3) and frames.dtype == np.uint8
    means = frames.reshape(NUM_FRAMES, -1).mean(1)
    assert np.all(np.diff(means) > 5), "each frame should be clearly brighter than the previous"
    assert all(nearest_frame(f, frames) == i for i, f in enumerate(frames))


# ---------------------------------------------------------------- metadata and exact frames


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_metadata(lossless, backend):
    path, _ = lossless
    with open_video(path, backend) as r:
        assert r.frame_count == NUM_FRAMES
        assert r.fps == pytest.approx(FPS, abs=1e-3)
        assert r.size == SIZE
        assert (r.width, r.height) == SIZE
        assert r.duration == pytest.approx(NUM_FRAMES / FPS, abs=1e-3)
        assert r.path == Path(path)
        assert str(path) in repr(r)
        if backend != "auto":
            assert r.decoder == backend


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_all_frames_equal_what_was_written(lossless, backend):
    path, frames = lossless
    with open_video(path, backend) as r:
        got = r.get_frames(range(NUM_FRAMES))
    assert got.dtype == np.uint8
    assert got.shape == frames.shape
    np.testing.assert_array_equal(got, frames)


DECORD_THEN_PNG = """
import sys
import numpy as np
from activity.data.decoders import open_video
with open_video(sys.argv[1], "decord") as r:  # decord loaded first, as by `activity explain --decoder decord`
    r.get_frames([0])
import cv2
img = np.zeros((8, 8, 3), np.uint8)
img[2:5] = 200
ok, buf = cv2.imencode(".png", img)
back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
sys.exit(0 if ok and back is not None and (back == img).all() else 1)
"""


@pytest.mark.skipif(not HAVE_DECORD, reason="decord not installed on this platform")
def test_png_still_reads_after_decord_opened_a_video(lossless):
    """decord's bundled zlib 1.2.3 must not take over OpenCV's PNG decoding (a fresh process: it is load order)."""
    path, _ = lossless
    proc = subprocess.run([sys.executable, "-c", DECORD_THEN_PNG, str(path)], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not HAVE_DECORD, reason="decord not installed on this platform")
def test_decord_and_opencv_agree_exactly(lossless):
    path, _ = lossless
    idx = [11, 0, 5, 5, 3]
    with open_video(path, "decord") as a, open_video(path, "opencv") as b:
        np.testing.assert_array_equal(a.get_frames(idx), b.get_frames(idx))
        np.testing.assert_array_equal(a.get_frames(range(NUM_FRAMES)), b.get_frames(range(NUM_FRAMES)))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_random_order_and_repeated_indices(lossless, backend):
    path, frames = lossless
    idx = [7, 2, 11, 2, 0, 7, 7, 5]
    with open_video(path, backend) as r:
        got = r.get_frames(idx)
        np.testing.assert_array_equal(got, frames[idx])
        # going backwards after reading the end (OpenCV rewinds) and reading again
        np.testing.assert_array_equal(r.get_frames([10]), frames[[10]])
        np.testing.assert_array_equal(r.get_frames([1, 1]), frames[[1, 1]])
        np.testing.assert_array_equal(r.get_frames(np.array([3, 9], dtype=np.int64)), frames[[3, 9]])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_read_sampled_centre(lossless, backend):
    path, frames = lossless
    with open_video(path, backend) as r:
        got, idx = read_sampled(r, 4)
    assert got.shape == (4, SIZE[1], SIZE[0], 3)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, segment_indices(NUM_FRAMES, 4))
    np.testing.assert_array_equal(got, frames[idx])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_read_sampled_more_segments_than_frames(lossless, backend):
    path, frames = lossless
    with open_video(path, backend) as r:
        got, idx = read_sampled(r, 30)
    assert got.shape[0] == 30 and len(idx) == 30
    assert np.all(np.diff(idx) >= 0) and idx.min() == 0 and idx.max() == NUM_FRAMES - 1
    np.testing.assert_array_equal(got, frames[idx])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_read_sampled_random(lossless, backend):
    path, frames = lossless
    with open_video(path, backend) as r:
        got, idx = read_sampled(r, 6, random=True, rng=np.random.default_rng(3))
        got2, idx2 = read_sampled(r, 6, random=True, rng=np.random.default_rng(3))
    assert got.shape[0] == 6
    assert np.all((idx >= 0) & (idx < NUM_FRAMES))
    # one frame from each of 6 segments of 2 frames
    np.testing.assert_array_equal(idx // 2, np.arange(6))
    np.testing.assert_array_equal(got, frames[idx])
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_array_equal(got, got2)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_empty_index_list(lossless, backend):
    path, _ = lossless
    with open_video(path, backend) as r:
        got = r.get_frames([])
    assert got.shape[0] == 0


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_lossy_mp4_frames_identifiable(lossy, backend):
    path, frames = lossy
    with open_video(path, backend) as r:
        assert r.frame_count == NUM_FRAMES and r.size == SIZE
        idx = [0, 6, 11, 3, 3]
        got = r.get_frames(idx)
    assert got.shape == (5, SIZE[1], SIZE[0], 3)
    assert [nearest_frame(f, frames) for f in got] == idx
    # lossy, but close
    assert np.abs(got.astype(int) - frames[idx].astype(int)).mean() < 12


def test_unknown_decoder_is_rejected(lossless):
    with pytest.raises(ValueError, match="unknown decoder .ffmpeg."):
        open_video(lossless[0], "ffmpeg")  # type: ignore[arg-type]


# ---------------------------------------------------------------- auto backend


def test_auto_reads_clips_forward_and_seeks_in_long_videos(lossless, monkeypatch):
    with open_video(lossless[0], "auto") as r:
        assert r.decoder == "opencv"  # a clip: reading forward is less work than seeking
    monkeypatch.setattr(auto_mod, "SEQUENTIAL_MAX_FRAMES", NUM_FRAMES - 1)  # now it counts as long
    with open_video(lossless[0], "auto") as r:
        assert r.decoder == ("decord" if HAVE_DECORD else "opencv")
        np.testing.assert_array_equal(r.get_frames([4, 1]), lossless[1][[4, 1]])


def test_auto_reads_forward_for_a_caller_that_reads_every_frame(lossless, monkeypatch):
    """A timeline reads nearly every frame in order: forward reading whatever the length (and flat memory)."""
    monkeypatch.setattr(auto_mod, "SEQUENTIAL_MAX_FRAMES", 0)
    with open_video(lossless[0], "auto", sequential=True) as r:
        assert r.decoder == "opencv"
        np.testing.assert_array_equal(r.get_frames([0, 1, 2]), lossless[1][:3])


@pytest.fixture
def seek_first(monkeypatch):
    """Make every video long enough for auto to try decord first, and its samples far enough apart to seek."""
    monkeypatch.setattr(auto_mod, "SEQUENTIAL_MAX_FRAMES", 0)
    monkeypatch.setattr(auto_mod, "seeking_pays", lambda indices, interval: True)


def test_auto_falls_back_when_decord_cannot_open(lossless, monkeypatch, seek_first):
    path, frames = lossless

    def refuse(self, p, num_threads=0):
        raise VideoError(str(p), "decord cannot open it (test)")

    monkeypatch.setattr(decord_mod.DecordReader, "__init__", refuse)
    with open_video(path, "auto") as r:
        assert r.decoder == "opencv"
        assert r.frame_count == NUM_FRAMES
        np.testing.assert_array_equal(r.get_frames([4, 1]), frames[[4, 1]])


@pytest.mark.skipif(not HAVE_DECORD, reason="decord not installed on this platform")
def test_auto_falls_back_when_decord_fails_while_decoding(lossless, monkeypatch, seek_first):
    path, frames = lossless

    def fail(self, indices):
        raise VideoError(str(self.path), "decord failed to decode (size must exactly match)")

    monkeypatch.setattr(decord_mod.DecordReader, "get_frames", fail)
    with open_video(path, "auto") as r:
        assert r.decoder == "decord"
        got, idx = read_sampled(r, 5)
        assert r.decoder == "opencv"
    np.testing.assert_array_equal(idx, segment_indices(NUM_FRAMES, 5))
    np.testing.assert_array_equal(got, frames[idx])


# ---------------------------------------------------------------- the registry, and each decoder by name

REGISTRY_AFTER_ONE_DECODER = """
from activity.data.decoders.opencv import OpenCVReader  # one decoder module, not the package's names
from activity.registry import DECODERS
print(",".join(DECODERS.names()))
"""


def test_every_decoder_is_registered_once_any_decoder_is_importable():
    assert DECODERS.names() == ["auto", "decord", "opencv"]
    proc = subprocess.run([sys.executable, "-c", REGISTRY_AFTER_ONE_DECODER], capture_output=True, text=True,
                          check=False, cwd=Path(activity.__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["auto,decord,opencv"]


@pytest.mark.parametrize("name", DECODERS.names())
def test_each_registered_decoder_opens_a_generated_clip(lossy, name):
    if name == "decord" and not HAVE_DECORD:
        pytest.skip("decord not installed on this platform")
    path, frames = lossy
    with open_video(path, name) as r:
        assert isinstance(r, VideoReader) and r.decoder in DECODERS.names() and r.frame_count == NUM_FRAMES
        got, idx = read_sampled(r, 4)
    assert [nearest_frame(f, frames) for f in got] == list(idx)


@pytest.mark.skipif(not HAVE_DECORD, reason="decord not installed on this platform")
def test_the_decord_module_loads_the_decord_package_not_itself():
    package = decord_mod._import_decord()
    assert package is not decord_mod and package.__name__ == "decord"
    assert Path(package.__file__).parent.name == "decord" and "activity" not in Path(package.__file__).parts
    assert callable(package.VideoReader) and callable(package.cpu)


def test_without_decord_its_name_says_so_and_auto_reads_with_opencv(lossless, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "decord", None)  # as where no wheel exists: `import decord` fails
    with pytest.raises(ImportError):
        decord_mod._import_decord()
    with pytest.raises(VideoError, match="decord is not installed"):
        open_video(lossless[0], "decord")
    monkeypatch.setattr(auto_mod, "SEQUENTIAL_MAX_FRAMES", 0)  # long: auto would seek with decord
    with open_video(lossless[0], "auto") as r:
        assert r.decoder == "opencv"
        np.testing.assert_array_equal(r.get_frames([4, 1]), lossless[1][[4, 1]])


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A lossless clip one frame longer than ``auto`` reads forward (tiny frames: quick to write and read)."""
    return make_video(tmp_path_factory.mktemp("video") / "long.avi", auto_mod.SEQUENTIAL_MAX_FRAMES + 1, (32, 24), 25.0,
                      lossless=True)


def test_auto_reads_a_short_clip_with_opencv_and_seeks_with_decord_in_a_long_one(lossless, long_clip):
    """Not patched: the real threshold, on a clip of 12 frames and one of SEQUENTIAL_MAX_FRAMES + 1."""
    with open_video(lossless[0], "auto") as r:
        assert r.decoder == "opencv"
    if not HAVE_DECORD:
        pytest.skip("decord not installed on this platform")
    path, frames = long_clip
    with open_video(path, "auto") as r:
        assert r.decoder == "decord" and r.frame_count == len(frames) == auto_mod.SEQUENTIAL_MAX_FRAMES + 1
        idx = [0, 500, len(frames) - 1]
        np.testing.assert_array_equal(r.get_frames(idx), frames[idx])


def _long_mp4(path, gop: int):
    """An MPEG-4 video of SEQUENTIAL_MAX_FRAMES + 100 tiny frames with a keyframe every ``gop`` frames."""
    import cv2

    n = auto_mod.SEQUENTIAL_MAX_FRAMES + 100
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 24), [cv2.VIDEOWRITER_PROP_GOP_SIZE, gop])
    texture = np.random.default_rng(0).integers(0, 255, (24, 64, 3), dtype=np.uint8)
    for i in range(n):  # a texture sliding by a pixel a frame: no scene cut for the encoder to start a keyframe at
        w.write(np.ascontiguousarray(np.roll(texture, i, axis=1)[:, :32]))
    w.release()
    return path


@pytest.mark.parametrize("gop, want", [(12, "decord"), (250, "opencv")])
def test_auto_seeks_in_a_long_video_only_where_the_samples_lie_further_apart_than_its_keyframes(tmp_path, gop, want):
    """16 samples of 1,100 frames lie 69 apart: with a keyframe every 12 frames seeking decodes less, with one
    every 250 (x264's default) each seek decodes up to 249 frames and reading forward decodes less."""
    if not HAVE_DECORD:
        pytest.skip("decord not installed on this platform")
    from activity.data.decoders.decord import DecordReader
    from activity.data.sampling import segment_indices

    path = _long_mp4(tmp_path / f"gop{gop}.mp4", gop)
    with DecordReader(path) as d:
        assert 0.8 * gop <= d.keyframe_interval() <= gop  # the writer kept the interval asked for (1,100 / 5 keyframes = 220)
    with open_video(path, "opencv") as r:
        idx = segment_indices(r.frame_count, 16)
        want_frames = r.get_frames(idx)
    with open_video(path, "auto") as r:
        got = r.get_frames(idx)
        assert r.decoder == want
    np.testing.assert_array_equal(got, want_frames)


def test_seeking_pays_compares_the_sample_spacing_with_the_keyframe_interval():
    assert auto_mod.seeking_pays([50, 150, 250, 350], 12.0)  # 88 frames apart, keyframes every 12
    assert not auto_mod.seeking_pays([50, 150, 250, 350], 250.0)
    assert not auto_mod.seeking_pays([], 1.0)


def test_auto_help_names_the_threshold():
    assert f"{auto_mod.SEQUENTIAL_MAX_FRAMES:,} frames" in auto_mod.AUTO_HELP and "\n" not in auto_mod.AUTO_HELP


# ---------------------------------------------------------------- files that are not videos


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "no such file"),
        ("directory", "directory"),
        ("zero_bytes", "empty"),
        ("random_bytes", None),
        ("text_as_avi", None),
    ],
)
def test_bad_files_raise_video_error_naming_the_file(tmp_path, backend, kind, reason):
    path = bad_file(kind, tmp_path)
    with pytest.raises(VideoError) as ei:
        with open_video(path, backend) as r:
            r.get_frames([0])
    err = ei.value
    assert str(path) in str(err)
    assert err.path == str(path)
    assert "\n" not in str(err)
    if reason is not None:
        assert reason in err.reason


# ---------------------------------------------------------------- containers that over-report their length


def _lying_reader(path: Path, reported: int) -> OpenCVReader:
    r = OpenCVReader(path)
    assert r.frame_count == NUM_FRAMES
    r.frame_count = reported  # what a broken container header would claim
    return r


def test_over_reported_length_never_returns_past_last_frame(lossless):
    path, frames = lossless
    r = _lying_reader(path, 30)
    idx = [25, 3, 11, 12, 29]
    got = r.get_frames(idx)
    assert got.shape == (5, SIZE[1], SIZE[0], 3)
    # every returned frame is a real one; indices past the end get the last decoded frame
    np.testing.assert_array_equal(got[[1, 2]], frames[[3, 11]])
    for k in (0, 3, 4):
        np.testing.assert_array_equal(got[k], frames[NUM_FRAMES - 1])
    assert r.frame_count <= NUM_FRAMES


def test_over_reported_length_read_sampled_stays_in_range(lossless):
    path, frames = lossless
    r = _lying_reader(path, 20)
    got, idx = read_sampled(r, 4)
    assert r.frame_count <= NUM_FRAMES
    assert np.all(idx < r.frame_count)
    assert len(idx) == 4 and np.all(np.diff(idx) >= 0)
    np.testing.assert_array_equal(got, frames[idx])  # the frames are the ones reported


def test_over_reported_length_resamples_over_true_length(lossless):
    path, frames = lossless
    r = _lying_reader(path, 20)
    got, idx = read_sampled(r, 4)
    assert r.frame_count == NUM_FRAMES
    np.testing.assert_array_equal(idx, segment_indices(NUM_FRAMES, 4))
    np.testing.assert_array_equal(got, frames[idx])


def test_badly_over_reported_length_still_decodes(lossless):
    path, frames = lossless
    r = _lying_reader(path, 100)  # centre of the first of 4 segments is frame 12: past the end
    got, idx = read_sampled(r, 4)
    assert r.frame_count == NUM_FRAMES
    np.testing.assert_array_equal(idx, segment_indices(NUM_FRAMES, 4))
    np.testing.assert_array_equal(got, frames[idx])


# ---------------------------------------------------------------- every frame in order


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("clip", ["lossless", "lossy"])
def test_iter_frames_yields_each_frame_once_as_read_sampled_decodes_it(request, clip, backend):
    path, written = request.getfixturevalue(clip)
    with open_video(path, backend, sequential=True) as r:
        got = list(r.iter_frames(chunk=5))
    assert [i for i, _ in got] == list(range(NUM_FRAMES))
    every = np.stack([f for _, f in got])
    assert every.shape == (NUM_FRAMES, SIZE[1], SIZE[0], 3) and every.dtype == np.uint8
    with open_video(path, backend) as r:
        sampled, idx = read_sampled(r, 5)
    np.testing.assert_array_equal(every[idx], sampled)
    if clip == "lossless":
        np.testing.assert_array_equal(every, written)


def test_iter_frames_starts_from_the_first_frame_after_random_access(lossless):
    path, frames = lossless
    with OpenCVReader(path) as r:
        r.get_frames([7])
        got = [f for _, f in r.iter_frames()]
    np.testing.assert_array_equal(np.stack(got), frames)


@pytest.mark.parametrize("reported", [20, 8])
@pytest.mark.parametrize("walk", ["forward", "by_get_frames"])
def test_iter_frames_ends_at_the_last_real_frame_whatever_the_container_says(lossless, reported, walk):
    path, frames = lossless
    r = _lying_reader(path, reported)
    if walk == "by_get_frames":  # the generic walk decord uses: only as far as the count it knows
        got = list(VideoReader.iter_frames(r, chunk=5))
        expected = min(reported, NUM_FRAMES)
    else:  # OpenCV reads forward to the end of the stream
        got = list(r.iter_frames())
        expected = NUM_FRAMES
    assert [i for i, _ in got] == list(range(expected))
    np.testing.assert_array_equal(np.stack([f for _, f in got]), frames[:expected])
    assert r.frame_count == expected


def test_no_module_but_the_opencv_decoder_and_live_sources_opens_videos_with_opencv():
    """Every read of a video goes through activity/data/decoders/opencv.py or, for cameras and streams,
    activity/data/live.py (writing with cv2.VideoWriter is allowed)."""
    root = Path(activity.__file__).parent
    offenders = []
    for py in sorted(root.rglob("*.py")):
        if py in (root / "data" / "decoders" / "opencv.py", root / "data" / "live.py"):
            continue
        for node in ast.walk(ast.parse(py.read_text(), str(py))):
            names = [node.attr] if isinstance(node, ast.Attribute) else [node.id] if isinstance(node, ast.Name) else []
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
            if "VideoCapture" in names:
                offenders.append(f"{py.relative_to(root)}:{node.lineno}")
    assert offenders == []


# ---------------------------------------------------------------- real clips (optional)

# HEVC clips on which decord fails while decoding ("size must exactly match"); auto falls back to OpenCV.
DECORD_FAILS = {
    "defense_56.mp4",
    "nothing_2.mp4",
    "nothing_52.mp4",
    "nothing_57.mp4",
    "passing_45.mp4",
    "passing_53.mp4",
    "passing_58.mp4",
    "shooting_4.mp4",
}


def test_shared_basketball_clips_all_decode_with_auto(seek_first, shared_data):
    """With decord tried first (as for long videos), exactly the clips decord fails on fall back to OpenCV."""
    clips = sorted(p for p in (shared_data / "basketball").rglob("*") if p.suffix.lower() == ".mp4")
    assert len(clips) == 283
    fell_back, failed = set(), {}
    for p in clips:
        try:
            with open_video(p, "auto") as r:
                frames, idx = read_sampled(r, 16)
                assert frames.shape == (16, r.height, r.width, 3), p
                assert frames.dtype == np.uint8
                assert np.all((idx >= 0) & (idx < r.frame_count)) and np.all(np.diff(idx) >= 0), p
                assert frames.std() > 0, f"{p}: blank frames"
                if r.decoder != "decord":
                    fell_back.add(p.name)
        except VideoError as e:
            failed[p.name] = str(e)
    assert not failed, failed
    if HAVE_DECORD:
        assert fell_back == DECORD_FAILS
        for name in sorted(DECORD_FAILS)[:2]:  # decord itself really fails on them
            p = next(c for c in clips if c.name == name)
            with pytest.raises(VideoError, match="decord"):
                with open_video(p, "decord") as r:
                    read_sampled(r, 16)


# ---------------------------------------------------------------- seeking far ahead (OpenCV)


def _seek_then_read(path, index, count=3, fps=None):
    with OpenCVReader(path) as r:
        if fps is not None:
            r.fps = fps
        r.seek(index)
        jumped = r._seekable and r._pos == index  # positioned by the seek, not by reading forward
        return r.get_frames(np.arange(index, index + count)), jumped


def _read_forward(path, index, count=3):
    with OpenCVReader(path) as r:
        return r.get_frames(np.arange(index, index + count))


def test_seek_far_ahead_gives_the_frames_reading_forward_gives(tmp_path, monkeypatch):
    from activity.data.synthetic import order_clip, write_video

    monkeypatch.setattr(opencv_mod, "SEEK_MIN_GAP", 10)
    # Lossy MPEG-4 in MP4, keyframes every 12 frames: a seek lands on one and decodes forward to the target.
    frames = np.concatenate([order_clip("growing", num_frames=50, size=(64, 48), seed=k) for k in range(4)])
    video = write_video(tmp_path / "long.mp4", frames, fps=25.0)
    for index in (13, 100, 150, 197):
        got, seekable = _seek_then_read(video, index)
        assert seekable, index
        np.testing.assert_array_equal(got, _read_forward(video, index))


def test_seek_that_lands_elsewhere_reads_forward_instead(tmp_path, monkeypatch):
    """A timestamp that does not match the frame's place at the reported rate (as with a variable frame
    rate): the reader goes back and reads forward, and stops seeking in that file."""
    from activity.data.synthetic import order_clip, write_video

    monkeypatch.setattr(opencv_mod, "SEEK_MIN_GAP", 10)
    frames = np.concatenate([order_clip("moving_right", num_frames=50, size=(64, 48), seed=k) for k in range(3)])
    video = write_video(tmp_path / "long.mp4", frames, fps=25.0)
    with OpenCVReader(video) as r:
        r.fps = 24.0  # wrong rate: every timestamp is off
        r.seek(120)
        assert not r._seekable and r._pos == 0
        r.seek(130)  # not tried again
        assert r._pos == 0
    got, jumped = _seek_then_read(video, 120, fps=24.0)
    assert not jumped
    np.testing.assert_array_equal(got, _read_forward(video, 120))


def test_seek_near_the_current_position_does_nothing(lossless, monkeypatch):
    path, _ = lossless
    with OpenCVReader(path) as r:
        r.seek(5)  # closer than SEEK_MIN_GAP: reading forward is cheaper
        assert r._pos == 0 and r._msec0 is None
        np.testing.assert_array_equal(r.get_frames([5, 6]), _read_forward(path, 5, 2))


def test_seek_on_real_clips_matches_reading_forward(shared_data, monkeypatch):
    """Every container and codec in ../shared/data: MPEG-4 in AVI, H.264 and HEVC in MP4."""
    monkeypatch.setattr(opencv_mod, "SEEK_MIN_GAP", 10)
    clips = [*sorted((shared_data / "ucf101-samples").rglob("*.avi"))[:3], *sorted((shared_data / "kinetics-samples").rglob("*.mp4")),
             *sorted((shared_data / "arid6" / "train").rglob("*.mp4"))[:3], *sorted((shared_data / "vioperu").rglob("*.mp4"))[:3],
             *sorted((shared_data / "basketball").rglob("*.mp4"))[:2]]
    checked = 0
    for clip in clips:
        with OpenCVReader(clip) as r:
            n = r.frame_count
        for index in {n // 3, n - 3}:
            if index < 12:
                continue
            got, seekable = _seek_then_read(clip, index)
            assert seekable, clip
            np.testing.assert_array_equal(got, _read_forward(clip, index), err_msg=str(clip))
            checked += 1
    assert checked >= 15


def test_every_description_of_auto_names_the_length_the_code_switches_at():
    """The config's help, configs/default.yaml and the CLI's help say what auto does, with the code's threshold."""
    import dataclasses
    from pathlib import Path

    from activity.config import FeatureConfig
    from activity.data.decoders import AUTO_HELP, SEQUENTIAL_MAX_FRAMES

    said = f"up to {SEQUENTIAL_MAX_FRAMES:,} frames"
    config_help = next(f.metadata["help"] for f in dataclasses.fields(FeatureConfig) if f.name == "decoder")
    yaml = next(l for l in (Path(__file__).parents[1] / "configs" / "default.yaml").read_text().splitlines()
                if l.strip().startswith("decoder:"))
    assert said in AUTO_HELP and said in config_help and said in yaml
