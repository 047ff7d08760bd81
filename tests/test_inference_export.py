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
    from activity.data.video import open_video, read_sampled

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
    assert not [p for p in exported["dir"].iterdir() if p.name.startswith(".tmp-")]


def test_preprocess_for_export_is_the_backbone_preprocessing(exported):
    frames = order_clip("moving_right", num_frames=T, seed=9)
    spec = exported["spec"]
    got = preprocess_for_export(frames, spec)
    assert got.shape == (T, 3, S, S) and got.dtype == torch.float32
    torch.testing.assert_close(got, spec.preprocess(frames), rtol=0, atol=0)
    torch.testing.assert_close(preprocess_for_export(frames, exported["ckpt"]), got, rtol=0, atol=0)


@pytest.fixture
def small_checkpoint(tmp_path, random_checkpoint):
    random_checkpoint(_config("mean"), CLASSES, D, path=tmp_path / "model.pt")
    return tmp_path / "model.pt"


def test_bad_format_is_one_line(small_checkpoint, tmp_path):
    with pytest.raises(ActivityError, match="unknown export format 'tflite'; choose from onnx, torchscript"):
        export_model(small_checkpoint, "tflite", tmp_path / "m.tflite")


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
    import importlib.util
    from pathlib import Path

    from activity.inference.export import export_metadata
    from activity.temporal.checkpoint import load_checkpoint

    script = Path(__file__).resolve().parents[1] / "scripts" / "run_exported.py"
    module_spec = importlib.util.spec_from_file_location("run_exported", script)
    run_exported = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(run_exported)

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
