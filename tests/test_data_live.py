"""Live sources: a file read frame by frame, and sources that cannot open, named in one line."""

from __future__ import annotations

import numpy as np
import pytest

from activity.data.live import open_source
from activity.errors import VideoError

try:
    from utils import bad_file, make_video
except ImportError:  # tests/ imported as a package
    from tests.utils import bad_file, make_video

NUM_FRAMES, SIZE, FPS = 12, (64, 48), 8.0


@pytest.fixture(scope="module")
def lossless(tmp_path_factory):
    """A lossless FFV1 clip and the frames written into it."""
    return make_video(tmp_path_factory.mktemp("live") / "clip.avi", NUM_FRAMES, SIZE, FPS, lossless=True)


def test_live_source_reads_a_file_frame_by_frame(lossless):
    path, frames = lossless
    with open_source(path) as src:
        assert src.is_file and src.fps == pytest.approx(FPS)
        got = []
        while (frame := src.read()) is not None:
            got.append(frame)
        assert src.read() is None  # and stays ended
    np.testing.assert_array_equal(np.stack(got), frames)


@pytest.mark.parametrize(
    "kind, reason",
    [("missing", "no such file"), ("directory", "directory"), ("zero_bytes", "empty"), ("text_as_avi", "cannot open the video")],
)
def test_live_file_source_that_cannot_open_says_why_in_one_line(tmp_path, kind, reason):
    path = bad_file(kind, tmp_path)
    with pytest.raises(VideoError) as ei:
        open_source(path)
    assert ei.value.path == str(path) and reason in ei.value.reason and "\n" not in str(ei.value)


@pytest.mark.parametrize(
    "source, message",
    [(99, "99: cannot open the camera"), ("rtsp://127.0.0.1:9/none", "rtsp://127.0.0.1:9/none: cannot open the stream")],
)
def test_live_camera_or_stream_that_cannot_open_is_named(source, message):
    with pytest.raises(VideoError) as ei:
        open_source(source)
    assert str(ei.value) == message
