"""ONNX Runtime as the CPU backbone runtime: same features as torch, the exported model cached and
reused, and a fallback to torch (with one note) where exporting fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activity.features.backbones import create_backbone
from activity.features.cache import FeatureCache

try:
    from test_features_extract import run, spec_for
    from utils import make_video
except ImportError:  # tests/ imported as a package
    from tests.test_features_extract import run, spec_for
    from tests.utils import make_video

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lite0():
    """The real efficientnet_lite0 (built once: each extraction gets a copy)."""
    return create_backbone("efficientnet_lite0")


@pytest.fixture
def clips(tmp_path):
    return [make_video(tmp_path / "v" / f"clip{i}.avi", 16, (48, 40), lossless=True, seed=i)[0] for i in range(3)]


def extract_with(runtime, clips, root, lite0, **kw):
    spec = spec_for(image_size=64)
    return run(clips, spec, FeatureCache(root, spec), lambda: __import__("copy").deepcopy(lite0), runtime=runtime, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_onnxruntime_features_match_torch(tmp_path, clips, lite0, workers):
    want = extract_with("eager", clips, tmp_path / "a", lite0, workers=workers)
    got = extract_with("onnxruntime", clips, tmp_path / "b", lite0, workers=workers)
    assert (want.runtime, got.runtime) == ("eager", "onnxruntime")
    assert got.notes == [] and not got.failed
    for p in clips:
        a, b = want.features[p].astype(np.float32), got.features[p].astype(np.float32)
        assert b.shape == a.shape == (4, 1280) and np.abs(a).max() > 0.1
        np.testing.assert_allclose(b, a, rtol=2**-9, atol=1e-3)
    assert len(list((tmp_path / "b" / "onnx").glob("*.onnx"))) == 1


def test_the_exported_model_is_cached_and_reused(tmp_path, clips, lite0, monkeypatch):
    first = extract_with("onnxruntime", clips[:2], tmp_path / "c", lite0)
    (model,) = (tmp_path / "c" / "onnx").glob("*.onnx")
    mtime = model.stat().st_mtime_ns

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = extract_with("onnxruntime", clips[2:], tmp_path / "c", lite0)
    assert (first.runtime, again.runtime) == ("onnxruntime", "onnxruntime") and again.notes == []
    assert model.stat().st_mtime_ns == mtime
    assert [m.name for m in (tmp_path / "c" / "onnx").iterdir()] == [model.name]  # no temporaries left


def test_a_failed_export_falls_back_to_torch_with_one_note(tmp_path, clips, lite0, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("exporter says no\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", broken)
    res = extract_with("onnxruntime", clips, tmp_path / "d", lite0)
    assert res.runtime == "eager" and len(res.features) == 3 and not res.failed
    assert len(res.notes) == 1 and "exporter says no" in res.notes[0] and "torch" in res.notes[0]
    assert not list((tmp_path / "d" / "onnx").glob("*"))  # nothing half-written left behind
    want = extract_with("eager", clips, tmp_path / "e", lite0)
    for p in clips:
        np.testing.assert_array_equal(res.features[p], want.features[p])


def test_unknown_runtime_is_refused(tmp_path, clips, lite0):
    from activity.errors import ActivityError

    with pytest.raises(ActivityError, match="unknown backbone runtime"):
        extract_with("tensorrt", clips, tmp_path / "f", lite0)


def test_cli_runtime_flag_reaches_the_options(tmp_path):
    from activity.cli.commands import options_from_args
    from activity.cli.parser import build_parser

    parser = build_parser()
    assert options_from_args(parser.parse_args(["extract", "--data", str(tmp_path)])).runtime == "auto"
    args = parser.parse_args(["extract", "--data", str(tmp_path), "--runtime", "onnxruntime"])
    assert options_from_args(args).runtime == "onnxruntime"
    with pytest.raises(SystemExit):
        parser.parse_args(["extract", "--data", str(tmp_path), "--runtime", "tensorrt"])


def test_extract_help_shows_one_runtime_option_with_the_thresholds_the_code_uses(capsys):
    import activity.features.runtime as runtime
    from activity.cli.parser import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["extract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--runtime {auto,eager,compiled,onnxruntime}" in text and "--compile" not in text
    for n in (runtime.ONNX_MIN_FRAMES, runtime.ONNX_CACHED_MIN_FRAMES, runtime.COMPILE_MIN_FRAMES):
        assert f" {n:,} " in text or f"({n:,} " in text or f" {n:,} frames" in text


def only_the_export(root):
    """Empty the feature cache at ``root`` but keep its ONNX exports (the next extraction encodes every clip)."""
    import shutil

    for d in root.iterdir():
        if d.name != "onnx":
            shutil.rmtree(d)
    return root


def test_auto_exports_only_where_it_pays_then_reuses_the_export(tmp_path, clips, lite0, monkeypatch):
    import activity.features.runtime as runtime

    monkeypatch.setattr(runtime, "ONNX_CACHED_MIN_FRAMES", 4)  # the rule's two thresholds, scaled to 4-frame clips
    monkeypatch.setattr(runtime, "ONNX_MIN_FRAMES", 12)
    root = tmp_path / "g"
    few = extract_with("auto", clips[:2], root, lite0)  # 8 frames, nothing cached
    assert few.runtime == "eager" and not (root / "onnx").exists() and few.notes == []
    many = extract_with("auto", clips, only_the_export(root), lite0)  # 12 frames: exported
    assert many.runtime == "onnxruntime" and many.notes == [] and len(list((root / "onnx").glob("*.onnx"))) == 1
    again = extract_with("auto", clips[:1], only_the_export(root), lite0)  # 4 frames: the cached export
    assert again.runtime == "onnxruntime" and again.extracted == 1
    np.testing.assert_array_equal(again.features[clips[0]], many.features[clips[0]])
    monkeypatch.setattr(runtime, "ONNX_CACHED_MIN_FRAMES", 8)
    tiny = extract_with("auto", clips[:1], only_the_export(root), lite0)  # too few even for a session
    assert tiny.runtime == "eager" and tiny.extracted == 1


def test_auto_stays_on_torch_where_onnxruntime_does_not_apply(tmp_path, clips, lite0, monkeypatch):
    import activity.features.runtime as runtime
    from activity.features.encoder import FrameEncoder

    monkeypatch.setattr(runtime, "ONNX_MIN_FRAMES", 1)
    eager = extract_with("eager", clips, tmp_path / "i", lite0)  # named: never exported, however many frames
    assert eager.runtime == "eager" and eager.notes == [] and not (tmp_path / "i" / "onnx").exists()
    monkeypatch.setattr(FrameEncoder, "onnxruntime_applies", lambda self: False)  # e.g. onnxruntime not installed
    res = extract_with("auto", clips, tmp_path / "j", lite0)
    assert res.runtime == "eager" and res.notes == [] and not (tmp_path / "j" / "onnx").exists()


def test_no_folder_is_made_for_an_export_that_will_not_happen(clips, lite0, monkeypatch):
    import activity.features.runtime as runtime
    from activity.features.extract import ExtractOptions, extract

    monkeypatch.setattr(runtime, "_temporary_root", None)
    spec = spec_for(image_size=64)
    for name in ("auto", "eager"):  # auto: 12 frames are too few to export; eager: never
        res = extract(clips, spec, None, lambda: __import__("copy").deepcopy(lite0),
                      ExtractOptions(workers=0, progress=False, runtime=name))
        assert res.runtime == "eager" and runtime._temporary_root is None


def test_without_a_cache_the_export_goes_to_a_temporary_folder_never_home(tmp_path, clips, lite0, monkeypatch):
    import tempfile

    from activity.features.extract import ExtractOptions, Extractor
    from activity.features.runtime import export_root

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ACTIVITY_CACHE", str(tmp_path / "default-cache"))
    from activity.config import FeatureConfig

    ex = Extractor(FeatureConfig(image_size=64, num_frames=4, enhance="none", streams=["appearance"]), ExtractOptions(cache_dir=False, workers=0, progress=False, runtime="onnxruntime"),
                   backbone_factory=lambda: __import__("copy").deepcopy(lite0))
    res = ex(clips)
    assert res.runtime == "onnxruntime" and len(res.features) == 3 and not res.notes
    assert not (tmp_path / "home").exists() and not (tmp_path / "default-cache").exists()
    temporary = export_root(None)
    assert temporary.is_relative_to(tempfile.gettempdir()) and len(list((temporary / "onnx").glob("*.onnx"))) == 1


def test_a_damaged_cached_export_is_exported_again(tmp_path, clips, lite0):
    first = extract_with("onnxruntime", clips[:2], tmp_path / "k", lite0)
    (model,) = (tmp_path / "k" / "onnx").glob("*.onnx")
    model.write_bytes(b"not an onnx model")
    again = extract_with("onnxruntime", clips[2:], tmp_path / "k", lite0)
    assert again.runtime == "onnxruntime" and again.notes == [] and model.stat().st_size > 10**6
    assert first.runtime == "onnxruntime"


def test_auto_remembers_a_failed_export_and_does_not_pay_for_it_again(tmp_path, clips, lite0, monkeypatch):
    import activity.features.runtime as runtime

    monkeypatch.setattr(runtime, "ONNX_MIN_FRAMES", 4)
    monkeypatch.setattr(runtime, "ONNX_CACHED_MIN_FRAMES", 4)
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(torch.onnx, "export", broken)
    import activity.features.onnx as onnx_mod

    hashed = []
    real_key = onnx_mod.model_key
    monkeypatch.setattr(onnx_mod, "model_key", lambda *a: hashed.append(1) or real_key(*a))
    root = tmp_path / "l"
    first = extract_with("auto", clips[:1], root, lite0)
    assert len(hashed) == 1  # cached? failed before? export, remember: the weights hashed once for all four
    again = extract_with("auto", clips[1:], root, lite0)
    assert (first.runtime, again.runtime) == ("eager", "eager") and first.notes == again.notes == []
    assert len(calls) == 1  # tried once
    (marker,) = (tmp_path / "l" / "onnx").glob("*.failed")
    assert "exporter says no" in marker.read_text() and torch.__version__ in marker.read_text()
    versions, _, why = marker.read_text().partition("\n")
    marker.write_text(f"torch 0.0 onnxruntime 0.0\n{why}")  # another torch: worth trying again
    extract_with("auto", clips[1:], only_the_export(root), lite0)
    assert len(calls) == 2 and marker.read_text().startswith(versions)
    calls.pop()
    asked = extract_with("onnxruntime", clips[2:], only_the_export(root), lite0)  # by name: tried, said
    assert len(calls) == 2 and asked.runtime == "eager" and "exporter says no" in asked.notes[0]
    monkeypatch.undo()
    fixed = extract_with("onnxruntime", clips[2:], only_the_export(root), lite0)
    assert fixed.runtime == "onnxruntime" and not list((tmp_path / "l" / "onnx").glob("*.failed"))


def test_the_export_and_the_extraction_are_named_before_they_start(tmp_path, clips, lite0, caplog):
    with caplog.at_level("INFO", logger="activity"):
        extract_with("onnxruntime", clips[:2], tmp_path / "e", lite0, progress=True)
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "extracting efficientnet_lite0 features of 2 videos"
    assert said[1] == f"exporting the backbone for ONNX Runtime, once (kept in {tmp_path / 'e' / 'onnx'})"
    assert said[2].startswith("exported in ")
    caplog.clear()
    with caplog.at_level("INFO", logger="activity"):
        extract_with("onnxruntime", clips, tmp_path / "e", lite0, progress=True)  # the export is cached now
    assert [r.getMessage() for r in caplog.records] == ["extracting efficientnet_lite0 features of 1 video, 2 from the cache"]
