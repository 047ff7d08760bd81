"""Export: the ONNX and TorchScript files compute the same logits as the package's own model.

A small checkpoint is built in-process (random temporal weights, feature
statistics from real backbone features, 64 px crops, 4 frames), exported in
both formats, and run with onnxruntime and ``torch.jit.load`` on random input
and on a real generated clip.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from activity.config import Config
from activity.data.sampling import segment_indices
from activity.data.synthetic import order_clip, write_video
from activity.errors import ActivityError
from activity.features.backbones import create_backbone
from activity.features.extract import ExtractOptions, extract
from activity.features.spec import FeatureSpec
from activity.inference.export import ExportModel, export_model, preprocess_for_export
from activity.registry import EXPORT_FORMATS
from activity.temporal.checkpoint import load_checkpoint
from activity.temporal.train import predict_features

ort = pytest.importorskip("onnxruntime", reason="ONNX tests need onnxruntime")
pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")

CLASSES = ["a", "b", "c"]
T, S, D = 4, 64, 1280
ATOL = 1e-4

# One intra-op thread: with two on a busy 2-core machine a loaded TorchScript module ran ~100x slower.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backbone(one_torch_thread):
    return create_backbone()


def _clip(label: str, spec: FeatureSpec, seed: int = 0) -> torch.Tensor:
    """A generated clip, sampled at segment centres and preprocessed: ``(T, 3, S, S)``."""
    frames = order_clip(label, num_frames=24, seed=seed)
    return preprocess_for_export(frames[segment_indices(len(frames), spec.num_frames)], spec)


def _config(temporal: str) -> Config:
    cfg = Config()
    cfg.features.streams = ["appearance"]  # one stream: these features are synthetic
    cfg.model.pooled_members = False  # the BiLSTM alone (tests/test_features_motion.py trains a fusion)
    cfg.apply_overrides([
        f"features.image_size={S}", f"features.num_frames={T}", f"model.temporal={temporal}",
        "model.hidden_size=8", "model.projection=8",
    ])
    return cfg


@pytest.fixture(scope="module", params=["lstm", "mean", "lstm-ensemble"])
def exported(request, backbone, tmp_path_factory, random_checkpoint):
    """A checkpoint of the given temporal kind (single model, or an ensemble of 2), exported to ONNX and TorchScript."""
    temporal = request.param.split("-")[0]
    cfg = _config(temporal)
    cfg.model.ensemble = 2 if request.param.endswith("ensemble") else 1
    spec = FeatureSpec.from_config(cfg.features)
    # Feature statistics of real clips and of random frames like the inputs below, so standardised features stay
    # O(1) for both. The floor on std bounds how much standardisation magnifies float32 noise (ONNX Runtime's and
    # PyTorch's convolutions differ by ~1e-5 in the features); a trained checkpoint clamps it at 1e-3 instead.
    frames = torch.cat([_clip(label, spec, seed) for label in ("moving_right", "growing") for seed in (1, 2)]
                       + [torch.randn(8, 3, S, S, generator=torch.Generator().manual_seed(2))])
    with torch.no_grad():
        feats = backbone(frames)

    def prepare(member):
        member.norm.set_stats(feats.mean(0), feats.std(0).clamp_min(0.05))
        member.head.weight.mul_(5.0)  # logits far apart, so that a wrong graph cannot match by accident

    d = tmp_path_factory.mktemp(f"export-{request.param}")
    random_checkpoint(cfg, CLASSES, D, seed=0, prepare=prepare, path=d / "model.pt")
    onnx_path = export_model(d / "model.pt", "onnx", d / "model.onnx")
    ts_path = export_model(d / "model.pt", "torchscript", d / "model.ts", batch_size=2)
    loaded = load_checkpoint(d / "model.pt")
    return {
        "temporal": temporal, "dir": d, "spec": spec, "ckpt": loaded, "onnx": onnx_path, "ts": ts_path,
        "model": ExportModel.from_checkpoint(loaded, backbone),
        "session": _session(onnx_path),
    }


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _inputs(spec: FeatureSpec) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "random B=2": torch.randn(2, T, 3, S, S, generator=g),
        "clip B=1": _clip("moving_left", spec, seed=3)[None],
        "clips B=2": torch.stack([_clip("shrinking", spec, seed=4), _clip("moving_right", spec, seed=5)]),
    }


def _reference(model: ExportModel, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def test_onnx_matches_pytorch(exported):
    sess = exported["session"]
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "frames" and out.name == "logits"
    assert inp.shape[1:] == [T, 3, S, S] and isinstance(inp.shape[0], str)  # dynamic batch
    for name, x in _inputs(exported["spec"]).items():
        got = sess.run(None, {"frames": x.numpy()})[0]
        ref = _reference(exported["model"], x)
        assert got.shape == (len(x), len(CLASSES)), name
        assert np.abs(got - ref).max() < ATOL, name
        assert ref.std() > 0.1, name  # the logits say something


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_pytorch(exported):
    ts = torch.jit.load(str(exported["ts"]))
    for name, x in _inputs(exported["spec"]).items():
        with torch.no_grad():
            got = ts(x).numpy()
        ref = _reference(exported["model"], x)
        assert got.shape == (len(x), len(CLASSES)), name
        assert np.abs(got - ref).max() < ATOL, name


def test_export_model_is_the_package_model(exported, backbone):
    """ExportModel == backbone features, then the checkpoint's temporal model; and the package's own path."""
    ckpt, spec, model = exported["ckpt"], exported["spec"], exported["model"]
    x = _inputs(spec)["clips B=2"]
    with torch.no_grad():
        feats = backbone(x.flatten(0, 1)).reshape(2, T, D)
        ref, _ = ckpt.model(feats)
    torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-5)

    # End to end through the package's extraction (decode, sample, preprocess, backbone; features cached as
    # float16) and prediction code, against the exported ONNX graph on the same decoded frames.
    from activity.data.decoders import open_video, read_sampled

    video = write_video(exported["dir"] / "clip.avi", order_clip("growing", num_frames=24, seed=7))  # lossless
    res = extract([video], spec, None, lambda: backbone, ExtractOptions(decoder="opencv", workers=0, progress=False))
    probs, _ = predict_features(ckpt.model, torch.from_numpy(res.features[video][None]).float(), T)
    with open_video(video, "opencv") as reader:
        frames, _ = read_sampled(reader, T)
    logits = exported["session"].run(None, {"frames": preprocess_for_export(frames, ckpt)[None].numpy()})[0]
    onnx_probs = torch.from_numpy(logits).softmax(1)
    torch.testing.assert_close(onnx_probs, probs, rtol=0, atol=5e-3)  # float16 cache vs float32 graph
    assert onnx_probs.argmax() == probs.argmax()


def test_sidecar_describes_the_input(exported):
    spec = exported["spec"]
    for fmt in ("onnx", "ts"):
        meta = json.loads(exported[fmt].with_name(exported[fmt].name + ".json").read_text())
        assert meta["format"] == "activity-export"
        assert meta["model_format"] == {"onnx": "onnx", "ts": "torchscript"}[fmt]
        assert meta["classes"] == CLASSES
        assert meta["input"]["shape"] == ["batch", T, 3, S, S]
        assert meta["output"]["shape"] == ["batch", len(CLASSES)]
        assert meta["sampling"]["num_frames"] == T
        pre = meta["preprocessing"]
        assert pre["resize_short_side"] == spec.preprocess.resize_size == 73
        assert pre["crop_size"] == S
        assert pre["mean"] == list(spec.preprocess.mean) and pre["std"] == list(spec.preprocess.std)
        assert pre["interpolation"] == spec.preprocess.interpolation == "bicubic"
        assert "motion" not in meta and "motion_input" not in meta  # appearance only: the sidecar as before
    assert not [p for p in exported["dir"].iterdir() if p.name.startswith(".tmp-")]


def test_preprocess_for_export_is_the_backbone_preprocessing(exported):
    frames = order_clip("moving_right", num_frames=T, seed=9)
    spec = exported["spec"]
    got = preprocess_for_export(frames, spec)
    assert got.shape == (T, 3, S, S) and got.dtype == torch.float32
    torch.testing.assert_close(got, spec.preprocess(frames), rtol=0, atol=0)
    torch.testing.assert_close(preprocess_for_export(frames, exported["ckpt"]), got, rtol=0, atol=0)


def _script():
    """scripts/run_exported.py imported as a module by its path."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "run_exported.py"
    module_spec = importlib.util.spec_from_file_location("run_exported", script)
    run_exported = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(run_exported)
    return run_exported


@pytest.fixture
def small_checkpoint(tmp_path, random_checkpoint):
    random_checkpoint(_config("mean"), CLASSES, D, path=tmp_path / "model.pt")
    return tmp_path / "model.pt"


def _run_onnx(path, x: torch.Tensor) -> np.ndarray:
    return _session(path).run(None, {"frames": x.numpy()})[0]


def _run_torchscript(path, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.jit.load(str(path))(x).numpy()


RUNNERS = {"onnx": _run_onnx, "torchscript": _run_torchscript}
"""How each export format's file is run outside the package; a format without a runner here fails the test below."""


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", EXPORT_FORMATS.names())
def test_every_registered_format_exports_a_graph_that_computes_the_models_logits(fmt, small_checkpoint, backbone, tmp_path):
    assert fmt in RUNNERS, f"no runner for the export format {fmt!r}"
    out = export_model(small_checkpoint, fmt, tmp_path / f"m.{fmt}")
    assert json.loads((tmp_path / f"m.{fmt}.json").read_text())["model_format"] == fmt
    x = torch.randn(3, T, 3, S, S, generator=torch.Generator().manual_seed(0))
    ref = _reference(ExportModel.from_checkpoint(load_checkpoint(small_checkpoint), backbone), x)
    got = RUNNERS[fmt](out, x)
    assert got.shape == (3, len(CLASSES)) and np.abs(got - ref).max() < ATOL


def test_bad_format_is_one_line(small_checkpoint, tmp_path):
    with pytest.raises(ActivityError, match="unknown export format 'tflite'; choose from onnx, torchscript") as e:
        export_model(small_checkpoint, "tflite", tmp_path / "m.tflite")
    assert "\n" not in str(e.value) and not (tmp_path / "m.tflite").exists()


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(ActivityError, match="checkpoint not found"):
        export_model(tmp_path / "nope.pt", "onnx", tmp_path / "m.onnx")


def test_unwritable_out_path_is_one_line(small_checkpoint, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ActivityError, match="cannot create its folder") as e:
        export_model(small_checkpoint, "torchscript", blocker / "sub" / "m.ts")
    assert "\n" not in str(e.value)
    with pytest.raises(ActivityError, match="is a folder"):
        export_model(small_checkpoint, "onnx", tmp_path)
    with pytest.raises(ActivityError, match="batch_size"):
        export_model(small_checkpoint, "onnx", tmp_path / "m.onnx", batch_size=0)


def test_missing_onnx_exporter_is_one_line(small_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ActivityError, match="needs the packages onnx and onnxscript"):
        export_model(small_checkpoint, "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("enhance, fit", [("none", "crop"), ("dark", "crop"), ("gamma", "pad"), ("clahe", "stretch")])
def test_run_exported_script_preprocesses_like_the_package(small_checkpoint, tmp_path, enhance, fit):
    """scripts/run_exported.py (no activity import) follows the sidecar, frame adjustments included."""
    from activity.inference.export import export_metadata
    from activity.temporal.checkpoint import load_checkpoint

    run_exported = _script()

    ckpt = load_checkpoint(small_checkpoint)
    ckpt.config.apply_overrides([f"features.enhance={enhance}", f"features.frame_fit={fit}"])
    pre = export_metadata(ckpt, "onnx")["preprocessing"]
    assert (pre["enhance"], pre["frame_fit"]) == (enhance, fit)
    frames = (order_clip("growing", num_frames=2, seed=3)[:, :, 8:40] // 4).astype(np.uint8)  # dark, portrait
    want = preprocess_for_export(frames, ckpt).numpy()
    got = np.stack([run_exported.preprocess(f, pre) for f in frames])
    assert got.shape == want.shape
    # the script re-implements torchvision's antialiased resize in NumPy: equal up to rounding of a few pixels
    assert np.abs(got - want).mean() < 0.01 and np.abs(got - want).max() < 0.1
    from activity.data.sampling import segment_indices

    for count, n in [(1, 16), (5, 16), (16, 16), (17, 16), (250, 16), (1000, 7)]:  # the package's frames, too
        np.testing.assert_array_equal(run_exported.centre_indices(count, n), segment_indices(count, n))


# ---------------------------------------------------------------- two streams: appearance and motion

MOTION_RECIPE = ("features.motion=true", "features.image_size=64", "features.num_frames=8", "train.epochs=3",
                 "model.ensemble=1")


@pytest.fixture(scope="module")
def two_stream(trained_run, tmp_path_factory):
    """A two-stream model trained on generated clips, exported to ONNX and TorchScript, and a dark lossless clip."""
    run = trained_run(options=MOTION_RECIPE)
    d = tmp_path_factory.mktemp("export-motion")
    ckpt = load_checkpoint(run.ckpt)
    dark = order_clip("growing", num_frames=24, size=(64, 48), seed=7) // 5  # features.enhance=dark brightens it
    clip = write_video(d / "clip.avi", dark.astype(np.uint8))  # lossless
    return {
        "run": run, "dir": d, "ckpt": ckpt, "clip": clip, "spec": FeatureSpec.from_config(ckpt.config.features),
        "onnx": export_model(run.ckpt, "onnx", d / "model.onnx"),
        "ts": export_model(run.ckpt, "torchscript", d / "model.ts", batch_size=2),
    }


def _motion_inputs(spec: FeatureSpec, clip) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip's frames ``(1, T, 3, S, S)`` and motion descriptors ``(1, T, 80)``, as extraction computes them."""
    from activity.data.decoders import open_video
    from activity.features.motion import motion_features, read_with_pairs

    with open_video(clip, "opencv") as reader:
        frames, first, second = read_with_pairs(reader, spec.num_frames, spec)
    motion = spec.describe(frames, first, second)
    return preprocess_for_export(frames, spec)[None], torch.from_numpy(motion)[None]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_two_stream_export_matches_pytorch(two_stream, backbone):
    """Both formats take (frames, motion) and give the probabilities of the checkpoint's Fusion model on the
    backbone features with the motion descriptors after them."""
    from activity.temporal.models import Fusion

    ckpt, spec = two_stream["ckpt"], two_stream["spec"]
    assert isinstance(ckpt.model, Fusion) and spec.descriptor_dim == 80
    frames, motion = _motion_inputs(spec, two_stream["clip"])
    g = torch.Generator().manual_seed(3)
    rand = (torch.randn(2, 8, 3, S, S, generator=g), torch.rand(2, 8, 80, generator=g) * 2)
    sess, ts = _session(two_stream["onnx"]), torch.jit.load(str(two_stream["ts"]))
    assert [(i.name, i.shape[1:]) for i in sess.get_inputs()] == [("frames", [8, 3, S, S]), ("motion", [8, 80])]
    for name, (x, m) in {"clip B=1": (frames, motion), "random B=2": rand}.items():
        with torch.no_grad():
            feats = backbone(x.flatten(0, 1)).reshape(len(x), 8, -1)
            ref = ckpt.model(torch.cat([feats, m], -1))[0].softmax(1).numpy()
            got_ts = ts(x, m).softmax(1).numpy()
        got_onnx = torch.from_numpy(sess.run(None, {"frames": x.numpy(), "motion": m.numpy()})[0]).softmax(1).numpy()
        assert got_onnx.shape == got_ts.shape == (len(x), len(ckpt.classes)), name
        assert np.abs(got_onnx - ref).max() < ATOL and np.abs(got_ts - ref).max() < ATOL, name
    with torch.no_grad():  # the motion input is used: other descriptors, other probabilities
        moved = ckpt.model(torch.cat([feats, m.flip(1)], -1))[0].softmax(1).numpy()
    assert np.abs(moved - ref).max() > 1e-3


def test_two_stream_sidecar_describes_the_motion_input(two_stream):
    for fmt in ("onnx", "ts"):
        meta = json.loads(two_stream[fmt].with_name(two_stream[fmt].name + ".json").read_text())
        assert meta["input"]["name"] == "frames" and meta["input"]["shape"] == ["batch", 8, 3, S, S]
        assert meta["motion_input"] == {**meta["motion_input"], "name": "motion", "shape": ["batch", 8, 80], "dtype": "float32"}
        mo = meta["motion"]
        assert (mo["gap_seconds"], mo["size"], mo["grid"], mo["bins"], mo["dim"]) == (0.1, 128, 3, 8, 80)
        assert mo["enhance_before_flow"] is True and mo["enhance"] == meta["preprocessing"]["enhance"] == two_stream["spec"].enhance
        assert mo["pair"].startswith("forward in time")


def test_run_exported_script_matches_predict_with_motion(two_stream, capsys):
    """The script (OpenCV and NumPy only) gives activity's own prediction of the clip."""
    import activity

    run_exported = _script()
    classes, p = run_exported.probabilities(str(two_stream["onnx"]), str(two_stream["clip"]))
    model = activity.load_model(two_stream["run"].ckpt, cache_dir=two_stream["dir"] / "cache", workers=0)
    want = model.predict(two_stream["clip"], top_k=len(classes))
    got = sorted(zip(classes, p.tolist()), key=lambda lp: -lp[1])
    assert got[0][0] == want[0][0]
    ref = dict(want)
    assert max(abs(q - ref[label]) for label, q in got) < 5e-3  # float16 cache vs float32 graph
    # the motion input itself is the one extraction cached (float16) for the clip: same pairs, enhance and flow
    clip = str(two_stream["clip"])
    count, fps = run_exported.count_frames(clip)
    meta = json.loads(two_stream["onnx"].with_name("model.onnx.json").read_text())
    motion = run_exported.motion_input(clip, meta, count, fps, run_exported.centre_indices(count, 8))[0]
    cached = model.features([two_stream["clip"]]).features[two_stream["clip"]][:, -80:].astype(np.float32)
    np.testing.assert_allclose(motion, cached, rtol=2e-3, atol=1e-3)
    assert np.abs(motion[:, :72]).max() > 0.1  # something moved
    run_exported.main([str(two_stream["onnx"]), clip, "--top-k", "1"])
    assert capsys.readouterr().out.split()[0] == want[0][0]


def test_run_exported_motion_descriptor_is_the_package_one():
    """The script's pairs, enhance and descriptor are activity.features.motion's, exactly."""
    from activity.features.motion import MotionSpec, flow_pairs, motion_features
    from activity.inference.export import motion_metadata
    from activity.transforms.adjust import adjust_frames

    run_exported, spec = _script(), MotionSpec()
    mo = motion_metadata(spec, "none", 4)["motion"]
    for fps in (0.0, 4.0, 12.0, 25.0, 29.97, 60.0):
        assert run_exported.partner_gap(mo["gap_seconds"], fps) == spec.partner_gap(fps)
    for count, gap in [(1, 3), (5, 3), (12, 1), (24, 3), (250, 6)]:
        idx = segment_indices(count, 8)
        for got, want in zip(run_exported.flow_pairs(idx, count, gap), flow_pairs(idx, count, gap)):
            np.testing.assert_array_equal(got, want)
    for size, label in [((64, 48), "moving_right"), ((50, 90), "growing"), ((200, 130), "shrinking")]:
        clip = order_clip(label, num_frames=8, size=size, seed=4)
        first, second = clip[[0, 2, 4, 5]], clip[[2, 4, 6, 7]]
        want = motion_features(first, second, spec)
        got = run_exported.motion_features(first, second, mo)
        assert got.dtype == np.float32 and got.shape == want.shape == (4, 80)
        np.testing.assert_array_equal(got, want)
        assert np.abs(want[:, :72]).max() > 0.1  # something moved
    dark = (order_clip("growing", num_frames=4, seed=5) // 5).astype(np.uint8)
    for enhance in ("none", "dark", "gamma", "clahe"):
        got = np.stack([run_exported.adjust(f, {"enhance": enhance}) for f in dark])
        np.testing.assert_array_equal(got, adjust_frames(dark, enhance=enhance))
