"""The pose stream: its descriptor, its install check, extraction with it, and what refuses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activity.config import FeatureConfig, load_config
from activity.errors import ActivityError
from activity.features.cache import FeatureCache
from activity.features.pose import INSTALL_HINT, LANDMARKS, PoseSpec, pose_available
from activity.features.spec import FeatureSpec

SPEC = PoseSpec()
needs_pose = pytest.mark.skipif(not pose_available(), reason="MediaPipe 0.10.21 is not installed (make pose)")


def _landmarks(hips=(0.5, 0.6), shoulders=(0.5, 0.4)) -> np.ndarray:
    """33 landmarks ``(x, y, visibility)`` as shares of the canvas: everything at the hips but the shoulders."""
    marks = np.zeros((LANDMARKS, 3))
    marks[:, :2], marks[:, 2] = hips, 0.9
    marks[[11, 12], :2] = shoulders
    return marks


def test_the_descriptor_is_centred_on_the_hips_scaled_by_the_torso_and_says_where_the_body_is():
    d = SPEC.describe(_landmarks(), (0, 0, 200, 100), (200, 100))
    assert d.shape == (SPEC.dim,) == (103,) and d.dtype == np.float32
    xy = d[: 2 * LANDMARKS].reshape(LANDMARKS, 2)
    np.testing.assert_allclose(xy[11], [0, -1])  # the shoulders one torso above the hips
    np.testing.assert_allclose(xy[0], [0, 0])
    np.testing.assert_allclose(d[2 * LANDMARKS : 3 * LANDMARKS], 0.9, rtol=1e-6)  # visibilities
    np.testing.assert_allclose(d[-4:], [0.5, 0.6, 0.2, 1.0], rtol=1e-6)  # hips at (0.5, 0.6), torso 20 of 100 px, found
    bigger = SPEC.describe(_landmarks(shoulders=(0.5, 0.2)), (0, 0, 200, 100), (200, 100))
    np.testing.assert_allclose(bigger[: 2 * LANDMARKS], d[: 2 * LANDMARKS])  # the same pose, nearer the camera
    assert bigger[-2] == pytest.approx(0.4)


def test_small_frames_are_padded_with_grey_and_described_in_their_own_pixels():
    frame = np.zeros((64, 48, 3), np.uint8)
    canvas, box = SPEC._padded(frame)
    assert canvas.shape == (256, 256, 3) and box == (104, 96, 48, 64)
    assert canvas[0, 0].tolist() == [128, 128, 128] and canvas[96:160, 104:152].max() == 0
    big = np.zeros((300, 400, 3), np.uint8)
    assert SPEC._padded(big)[1] == (0, 0, 400, 300)  # large enough: unchanged
    # hips at the frame's centre on the canvas -> (0.5, 0.5) of the frame, not of the canvas
    centre = ((104 + 24) / 256, (96 + 32) / 256)
    d = SPEC.describe(_landmarks(hips=centre, shoulders=(centre[0], centre[1] - 16 / 256)), box, (256, 256))
    np.testing.assert_allclose(d[-4:], [0.5, 0.5, 0.25, 1.0], rtol=1e-6)


def test_the_stream_is_chosen_in_the_config_and_keys_its_own_cache():
    cfg = load_config(None, ["features.streams=[appearance, motion, pose]"])
    spec = FeatureSpec.from_config(cfg.features)
    default = FeatureSpec.from_config(FeatureConfig())
    assert spec.descriptor_dim == 80 + 103 and spec.key() != default.key()
    assert spec.key() != FeatureSpec.from_config(FeatureConfig(streams=["appearance", "pose"])).key()
    assert spec.partner_gap(30.0) == 3  # motion's flow pairs; pose alone needs none
    assert FeatureSpec.from_config(FeatureConfig(streams=["appearance", "pose"])).partner_gap(30.0) is None


def test_without_mediapipe_the_pose_stream_is_one_line_naming_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe" else real(name, *a))
    with pytest.raises(ActivityError) as e:
        SPEC.compute(np.zeros((1, 32, 32, 3), np.uint8), None, None, "none")
    assert str(e.value).startswith(INSTALL_HINT) and "\n" not in str(e.value)
    assert not pose_available()


def _person_clip(steps: int = 6) -> np.ndarray:
    """A photo of a person (scikit-image's astronaut) sliding right across a wider grey frame ``(T, 240, 400, 3)``."""
    import cv2
    from skimage import data

    person = cv2.resize(data.astronaut(), (200, 200), interpolation=cv2.INTER_AREA)
    frames = np.full((steps, 240, 400, 3), 128, np.uint8)
    for t in range(steps):
        x = 20 * t + 20
        frames[t, 20:220, x : x + 200] = person
    return frames


@needs_pose
def test_blazepose_finds_the_person_and_follows_them_across_the_frame():
    frames = _person_clip()
    d = SPEC.compute(frames, None, None, "none")
    assert d.shape == (6, 103) and (d[:, -1] == 1).all()  # found in every frame
    hips_x = d[:, -4]
    assert (np.diff(hips_x) > 0).all() and hips_x[-1] - hips_x[0] == pytest.approx(100 / 400, abs=0.05)
    nose, shoulders = d[:, 0:2], d[:, 22:24]
    assert (nose[:, 1] < shoulders[:, 1]).all()  # the head above the shoulders, whatever the place
    empty = SPEC.compute(np.full((2, 240, 400, 3), 128, np.uint8), None, None, "none")
    assert not empty.any()  # nobody: zeros and found 0


@needs_pose
def test_extraction_stores_the_pose_after_the_other_streams(tmp_path):
    from activity.features.extract import ExtractOptions, Extractor
    from activity.data.synthetic import write_video

    path = tmp_path / "person.avi"
    write_video(path, _person_clip(8), 8.0)
    cfg = FeatureConfig(image_size=64, num_frames=4, enhance="none", streams=["appearance", "motion", "pose"])
    spec = FeatureSpec.from_config(cfg)
    SPEC.compute(_person_clip(1), None, None, "none")  # BlazePose used here first: workers forked now must still work
    result = Extractor(cfg, ExtractOptions(cache_dir=tmp_path / "cache", workers=1, progress=False, runtime="eager"))([path])
    f = result.features[path]
    assert f.shape == (4, 1280 + 80 + 103)
    pose = f[:, 1280 + 80 :].astype(np.float32)
    assert (pose[:, -1] == 1).all() and (np.diff(pose[:, -4]) > 0).all()  # found, moving right
    assert [p.name for p in FeatureCache(tmp_path / "cache", spec).folders] == [spec.appearance_only().key(), *spec.stream_keys()]
    assert all(len(list(folder.glob("*.npy"))) == 1 for folder in FeatureCache(tmp_path / "cache", spec).folders)
    import sys

    assert "mediapipe" not in sys.modules  # it ran in a spawned helper and in the worker, never in this process


@needs_pose
def test_turning_pose_on_reads_appearance_and_motion_from_a_cache_of_the_earlier_layout(tmp_path, monkeypatch):
    """An ``[appearance, motion]`` cache written before each stream had its folder (both in one entry, under the
    key of that spec): adding pose computes the pose numbers alone."""
    from activity.data.synthetic import write_video
    from activity.features.cache import encode_entry
    from activity.features.extract import ExtractOptions, extract
    from activity.features.motion import MotionSpec

    path = tmp_path / "person.avi"
    write_video(path, _person_clip(8), 8.0)
    old = FeatureSpec.from_config(FeatureConfig(image_size=64, num_frames=4, enhance="none", streams=["appearance", "motion"]))
    options = ExtractOptions(workers=0, progress=False, runtime="eager")
    features = extract([path], old, None, _backbone, options).features[path]
    folder = tmp_path / "cache" / old.key()
    folder.mkdir(parents=True)
    (folder / FeatureCache._name(path)).write_bytes(encode_entry(features))

    def never(*args, **kw):
        raise AssertionError("computed again")

    monkeypatch.setattr(MotionSpec, "compute", never)
    new = FeatureSpec.from_config(FeatureConfig(image_size=64, num_frames=4, enhance="none",
                                                streams=["appearance", "motion", "pose"]))
    result = extract([path], new, FeatureCache(tmp_path / "cache", new), never, options)
    assert result.extracted == 1
    f = result.features[path]
    np.testing.assert_array_equal(f[:, : 1280 + 80], features)
    assert f.shape == (4, 1280 + 80 + 103) and (f[:, -1] == 1).all()  # the pose numbers: a person found


def _backbone():
    from activity.features.backbones import create_backbone

    return create_backbone("efficientnet_lite0")


def test_a_model_with_the_pose_stream_is_not_exported_and_says_why(tmp_path):
    from activity.inference.export import exportable_spec
    from activity.temporal.checkpoint import Checkpoint
    from activity.temporal.models import build_temporal_model

    cfg = load_config(None, ["features.streams=[appearance, pose]", "model.ensemble=1"])
    model = build_temporal_model(cfg.model, 1280 + 103, 2, [("appearance", 1280), ("pose", 103)])
    with pytest.raises(ActivityError, match="with the pose stream cannot be exported: .*activity predict"):
        exportable_spec(Checkpoint(model, ["a", "b"], cfg, 1280 + 103))
    assert torch.is_tensor(model.weights) and model.names == ("appearance", "pose", "appearance_lr", "pose_lr")


# ---------------------------------------------------------------- three streams through every command

try:
    from utils import TWO_STREAM
except ImportError:  # tests/ imported as a package
    from tests.utils import TWO_STREAM

THREE_STREAM = dict(TWO_STREAM, options=tuple(o.replace("features.motion=true", "features.streams=[appearance,motion,pose]")
                                              for o in TWO_STREAM["options"]))


@needs_pose
def test_a_three_stream_model_predicts_draws_timelines_and_explains_from_the_features_it_was_trained_on(trained_run, cli, tmp_path):
    """Generated bars hold nobody, so the pose numbers are zeros with found 0: the plumbing is what is tested here."""
    from activity import load_model
    from activity.data.decoders import open_video
    from activity.inference.timeline import _frame_features

    run = trained_run(**THREE_STREAM)
    model = load_model(run.ckpt, cache_dir=False, workers=0)
    fusion = model.checkpoint.model
    assert fusion.names == ("appearance", "motion", "pose", "appearance_lr", "motion_lr", "pose_lr")
    assert fusion.columns["pose"] == (1280 + 80, 1280 + 80 + 103) and model.checkpoint.feature_dim == 1280 + 80 + 103
    clip = run.data / "moving_left" / "moving_left_000.mp4"  # one 1 s window of 8 steps
    with open_video(clip, "opencv") as reader:
        steps = np.stack([f.numpy() for _, f in _frame_features(model, reader, 1.0 / 8, {})])
    cached = model.features([clip]).features[clip]
    np.testing.assert_allclose(steps, cached.astype(np.float32), rtol=0, atol=1e-2)  # the timeline computes all three
    assert not cached[:, 1280 + 80 :].any()  # nobody in the frame
    top = dict(model.predict(clip, top_k=2))
    window = model.timeline(clip, window=1.0, stride=1.0, top_k=2).windows[0]
    assert window.probabilities == pytest.approx([top[l] for l in window.labels], abs=1e-4)
    r = cli(["predict", run.ckpt, "--source", clip, "--window", "1", "--rate", "4", "--json"])
    assert r.code == 0 and r.out.strip(), r.err
    r = cli(["explain", run.ckpt, clip, "--out", tmp_path / "x.png"])
    assert r.code == 0 and (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG", r.err
    r = cli(["export", run.ckpt, "--format", "onnx", "--out", tmp_path / "m.onnx"])
    assert r.code == 1 and r.err.strip().endswith("use activity predict or the Python API") and "Traceback" not in r.err


@needs_pose
def test_a_script_without_a_main_guard_gets_pose_numbers_and_exits_cleanly(tmp_path):
    """The helper is a fresh interpreter, not multiprocessing's spawn (which would run the script again)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text("import numpy as np\nfrom activity.features.pose import PoseSpec\n"
                      "print(PoseSpec().compute(np.full((2, 64, 64, 3), 128, np.uint8), None, None, 'none').shape)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout == "(2, 103)\n", r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
