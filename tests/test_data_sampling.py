"""TSN-style segment sampling."""

from __future__ import annotations

import numpy as np
import pytest

from activity.data.sampling import jittered_segment_indices, segment_indices


@pytest.mark.parametrize(
    "num_frames, num_segments, expected",
    [
        (16, 4, [2, 6, 10, 14]),
        (10, 5, [1, 3, 5, 7, 9]),
        (12, 4, [1, 4, 7, 10]),
        (100, 1, [50]),
        (7, 7, [0, 1, 2, 3, 4, 5, 6]),
        (1, 3, [0, 0, 0]),
        (3, 6, [0, 0, 1, 1, 2, 2]),
        (5, 8, [0, 0, 1, 2, 2, 3, 4, 4]),
    ],
)
def test_centre_mode_known_values(num_frames, num_segments, expected):
    idx = segment_indices(num_frames, num_segments)
    assert idx.dtype == np.int64
    assert idx.shape == (num_segments,)
    assert idx.tolist() == expected


def test_centre_mode_is_deterministic_and_ignores_rng():
    a = segment_indices(50, 8)
    b = segment_indices(50, 8, rng=np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)


def test_centre_mode_picks_segment_centres():
    n, t = 300, 10
    idx = segment_indices(n, t)
    centres = (np.arange(t) + 0.5) * n / t
    assert np.all(np.abs(idx - centres) <= 1)


@pytest.mark.parametrize("num_frames, num_segments", [(3, 8), (1, 5), (7, 16), (2, 3)])
def test_shorter_than_segments_repeats_in_order(num_frames, num_segments):
    for random in (False, True):
        idx = segment_indices(num_frames, num_segments, random=random, rng=np.random.default_rng(0))
        assert len(idx) == num_segments
        assert np.all(np.diff(idx) >= 0)
        assert idx.min() >= 0 and idx.max() <= num_frames - 1
        if not random:
            # centre mode uses every frame, each repeated about num_segments / num_frames times
            assert set(idx.tolist()) == set(range(num_frames))
            counts = np.bincount(idx, minlength=num_frames)
            assert counts.max() - counts.min() <= 1


def test_random_mode_stays_inside_each_segment():
    rng = np.random.default_rng(0)
    n, t = 40, 8  # segments of exactly 5 frames
    for _ in range(200):
        idx = segment_indices(n, t, random=True, rng=rng)
        np.testing.assert_array_equal(idx // 5, np.arange(t))


def test_random_mode_covers_every_frame_of_a_segment():
    rng = np.random.default_rng(1)
    seen = np.concatenate([segment_indices(40, 8, random=True, rng=rng) for _ in range(300)])
    assert set(seen.tolist()) == set(range(40))


def test_random_mode_is_reproducible_with_a_seeded_rng_and_varies_otherwise():
    a = segment_indices(1000, 16, random=True, rng=np.random.default_rng(7))
    b = segment_indices(1000, 16, random=True, rng=np.random.default_rng(7))
    c = segment_indices(1000, 16, random=True, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # without an rng it still works (fresh generator)
    d = segment_indices(1000, 16, random=True)
    assert d.shape == (16,) and np.all(np.diff(d) >= 0)


def test_monotone_and_in_bounds_over_many_shapes():
    rng = np.random.default_rng(2)
    for n in [1, 2, 3, 5, 8, 15, 16, 17, 31, 64, 257, 10_001]:
        for t in [1, 2, 3, 7, 8, 16, 33, 100]:
            for random in (False, True):
                idx = segment_indices(n, t, random=random, rng=rng)
                assert idx.shape == (t,)
                assert np.all(np.diff(idx) >= 0), (n, t, random)
                assert idx.min() >= 0 and idx.max() < n, (n, t, random)
                # one distinct frame per segment: centres are >= 1 frame apart when n >= t;
                # random picks only when segments are whole frames (else neighbours may share one)
                if n >= t and (not random or n % t == 0):
                    assert len(np.unique(idx)) == t, (n, t, random)


@pytest.mark.parametrize(
    "num_frames, num_segments, match",
    [(0, 4, "num_frames"), (-3, 4, "num_frames"), (10, 0, "num_segments"), (10, -1, "num_segments")],
)
def test_errors(num_frames, num_segments, match):
    with pytest.raises(ValueError, match=match):
        segment_indices(num_frames, num_segments)
    with pytest.raises(ValueError, match=match):
        segment_indices(num_frames, num_segments, random=True, rng=np.random.default_rng(0))


# ---------------------------------------------------------------- many clips at once (training on cached features)


def test_jittered_keeps_each_index_in_its_segment_per_clip():
    idx = jittered_segment_indices(40, 8, 500, np.random.default_rng(3))  # segments of exactly 5 steps
    assert idx.shape == (500, 8) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx // 5, np.broadcast_to(np.arange(8), idx.shape))


def test_jittered_covers_each_segment_uniformly_and_clips_differ():
    idx = jittered_segment_indices(40, 8, 4000, np.random.default_rng(4))
    counts = np.bincount((idx % 5).ravel(), minlength=5)  # position inside the segment
    assert counts.min() > 0.9 * idx.size / 5 and counts.max() < 1.1 * idx.size / 5
    assert len({tuple(r) for r in idx[:50]}) > 40  # each clip draws its own positions


def test_jittered_uneven_segments_stay_in_range_and_in_order():
    idx = jittered_segment_indices(13, 5, 1000, np.random.default_rng(5))
    assert idx.min() >= 0 and idx.max() <= 12
    assert np.all(np.diff(idx, axis=1) >= 0)
    seg = 13 / 5
    assert np.all(idx >= np.floor(np.arange(5) * seg)) and np.all(idx < np.arange(1, 6) * seg)


def test_one_jittered_clip_is_the_random_segment_indices():
    a = jittered_segment_indices(100, 7, 1, np.random.default_rng(9))[0]
    b = segment_indices(100, 7, random=True, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


def test_jittered_errors():
    with pytest.raises(ValueError, match="batch"):
        jittered_segment_indices(10, 2, -1)
    with pytest.raises(ValueError, match="num_frames"):
        jittered_segment_indices(0, 2, 3)
    assert jittered_segment_indices(10, 2, 0).shape == (0, 2)
