"""Long videos (timeline), live sources, batch result files and the Python API, on generated videos."""

from __future__ import annotations

import csv
import json
import os
import time

import cv2
import numpy as np
import pytest

from activity.cli import main
from activity.data.sampling import segment_indices
from activity.data.synthetic import order_clip, write_video
from activity.data.decoders import open_video
from activity.features.motion import flow_pairs
from activity.errors import ConfigError
from activity.inference.timeline import (
    Segment,
    Timeline,
    Window,
    _draw_label,
    merge_segments,
    write_overlay,
)
from activity.registry import RESULT_FORMATS, TIMELINE_FORMATS

try:
    from utils import TWO_STREAM
except ImportError:  # tests/ imported as a package
    from tests.utils import TWO_STREAM

CLASSES = ["growing", "moving_right"]
FPS = 12.0
CLIP = 24  # frames: a 2 s action
OPTS = ["features.image_size=96", "features.num_frames=8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_run):
    root = tmp_path_factory.mktemp("timeline")
    run = trained_run(classes=CLASSES, clips_per_class=12, num_frames=CLIP, size=(96, 72), fps=FPS,
                      options=[*OPTS, "train.epochs=30", "--group-regex", r"_(\d+)\."])
    # A long video whose action changes at known times: growing 0-6 s, moving_right 6-12 s, growing 12-18 s.
    plan = ["growing"] * 3 + ["moving_right"] * 3 + ["growing"] * 3
    frames = np.concatenate([order_clip(c, num_frames=CLIP, size=(96, 72), seed=1000 + i) for i, c in enumerate(plan)])
    long_video = write_video(root / "long.mp4", frames, FPS)
    return {"root": root, "ckpt": run.ckpt, "cache": run.cache, "long": long_video, "data": run.data, "frames": len(frames)}


def test_timeline_segments_fall_within_one_stride_of_the_truth(trained, capsys):
    stride = 1.0
    code = main(["predict", str(trained["ckpt"]), str(trained["long"]), "--timeline", "--window", "2", "--stride", str(stride),
                 "--json", "--cache", str(trained["cache"]), "--quiet"])
    assert code == 0
    tl = json.loads(capsys.readouterr().out)["timelines"][0]
    assert tl["duration"] == pytest.approx(18.0, abs=0.2)
    assert len(tl["windows"]) == 17  # starts 0, 1, ..., 16
    assert all(w["end"] - w["start"] == pytest.approx(2.0) for w in tl["windows"])
    labels = [s["label"] for s in tl["segments"]]
    assert labels == ["growing", "moving_right", "growing"], tl["segments"]
    boundaries = [tl["segments"][0]["end"], tl["segments"][1]["end"]]
    assert boundaries[0] == pytest.approx(6.0, abs=stride)
    assert boundaries[1] == pytest.approx(12.0, abs=stride)
    assert tl["segments"][0]["start"] == 0.0 and tl["segments"][-1]["end"] == tl["duration"]
    # --results-format json with --timeline writes the same timeline as VIDEO.json (it is not ignored)
    out = trained["root"] / "timeline-json"
    assert main(["predict", str(trained["ckpt"]), str(trained["long"]), "--timeline", "--window", "2", "--stride", str(stride),
                 "--results-dir", str(out), "--results-format", "json", "--cache", str(trained["cache"]), "--quiet"]) == 0
    assert [p.name for p in out.iterdir()] == ["long.json"] and json.loads((out / "long.json").read_text()) == tl


def test_timeline_csv_and_overlay(trained, tmp_path):
    overlay = tmp_path / "overlay.mp4"
    code = main(["predict", str(trained["ckpt"]), str(trained["long"]), "--timeline", "--results-dir", str(tmp_path),
                 "--overlay", str(overlay), "--cache", str(trained["cache"]), "--quiet"])
    assert code == 0
    windows = list(csv.DictReader(open(tmp_path / "long.windows.csv")))
    segments = list(csv.DictReader(open(tmp_path / "long.segments.csv")))
    assert len(windows) == 17 and windows[0]["label_1"] in CLASSES
    assert [s["label"] for s in segments] == ["growing", "moving_right", "growing"]
    cap = cv2.VideoCapture(str(overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == trained["frames"]
    ok, frame = cap.read()
    assert ok and frame[:20, :60].mean() < 60  # the label box is drawn in the corner


def test_merge_segments_threshold_and_smoothing():
    windows = [Window(float(i), float(i) + 2, [], []) for i in range(6)]
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.45, 0.55], [0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    raw = merge_segments(windows, probs, ["a", "b"], duration=7.0, stride=1.0)
    assert [s.label for s in raw] == ["a", "b", "a", "b"]
    assert raw[0].start == 0.0 and raw[-1].end == 7.0 and raw[0].end == pytest.approx(2.5)
    gaps = merge_segments(windows, probs, ["a", "b"], duration=7.0, stride=1.0, threshold=0.6)
    assert [s.label for s in gaps] == ["a", "a", "b"]  # the unsure window belongs to no segment
    smooth = merge_segments(windows, probs, ["a", "b"], duration=7.0, stride=1.0, smooth=3)
    assert [s.label for s in smooth] == ["a", "b"]


def test_batch_results_files(trained, tmp_path, capsys):
    folder = trained["data"] / "growing"
    (folder / "zz_broken.mp4").write_bytes(b"nope")
    try:
        for fmt in ("csv", "json"):
            out = tmp_path / fmt
            code = main(["predict", str(trained["ckpt"]), str(folder), "--results-dir", str(out), "--results-format", fmt,
                         "--top-k", "2", "--cache", str(trained["cache"]), "--quiet"])
            assert code == 0
        rows = list(csv.DictReader(open(tmp_path / "csv" / "predictions.csv")))
        assert len(rows) == 12 and set(rows[0]) == {"path", "label_1", "probability_1", "label_2", "probability_2"}
        skipped = list(csv.DictReader(open(tmp_path / "csv" / "skipped.csv")))
        assert [r["path"] for r in skipped] == [str(folder / "zz_broken.mp4")] and skipped[0]["reason"]
        data = json.loads((tmp_path / "json" / "predictions.json").read_text())
        assert len(data["predictions"]) == 12 and list(data["skipped"]) == [str(folder / "zz_broken.mp4")]
    finally:
        (folder / "zz_broken.mp4").unlink()


def test_live_source_from_a_file_at_real_rate(trained, capsys):
    short = write_video(trained["root"] / "short.mp4", order_clip("moving_right", num_frames=36, size=(96, 72), seed=7), FPS)
    window = 2.0  # the default: the last 24 frames
    t0 = time.perf_counter()
    code = main(["predict", str(trained["ckpt"]), "--source", str(short), "--rate", "2", "--json", "--cache", str(trained["cache"])])
    elapsed = time.perf_counter() - t0
    assert code == 0
    captured = capsys.readouterr()
    lines = [json.loads(l) for l in captured.out.splitlines()]
    # However slow the machine: a prediction while playing, and a last one on the final frames.
    assert len(lines) >= 2
    assert all(l["label"] in CLASSES and 0.5 <= l["probability"] <= 1 for l in lines)  # the top one of 2 classes
    assert all(a["time"] < b["time"] for a, b in zip(lines, lines[1:]))
    assert lines[-1]["time"] == pytest.approx(35 / FPS, abs=0.01)
    assert "36 frames read" in captured.err
    assert all(0 <= a["dropped"] <= b["dropped"] < 36 for a, b in zip(lines, lines[1:]))  # slow predictions drop frames
    # The last prediction is the model's answer on the last window of frames, as the Python API gives it.
    from activity import load_model

    model = load_model(trained["ckpt"], cache_dir=False)
    with open_video(short, "opencv") as r:
        frames = np.stack([f for _, f in r.iter_frames()])[-round(window * FPS):]
    idx = segment_indices(len(frames), 8)
    first, second = flow_pairs(idx, len(frames), model.spec.partner_gap(FPS))  # the default has motion
    p = model.probabilities(model.encode_clip(frames[idx], frames[first], frames[second])[None])[0]
    assert (lines[-1]["label"], lines[-1]["probability"]) == (CLASSES[int(p.argmax())], pytest.approx(float(p.max()), abs=1e-4))
    assert elapsed >= 2.5  # a 3 s file is played at its real rate, not as fast as it decodes
    assert all(l["top_k"] == [{"label": l["label"], "probability": l["probability"]}] for l in lines)  # one label by default
    # --top-k with --source: each prediction's k labels, most probable first (not ignored)
    assert main(["predict", str(trained["ckpt"]), "--source", str(short), "--rate", "2", "--top-k", "2", "--json",
                 "--cache", str(trained["cache"])]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert lines and all(l["top_k"][0]["label"] == l["label"] and len(l["top_k"]) == 2 for l in lines)
    assert all(l["top_k"][0]["probability"] >= l["top_k"][1]["probability"] for l in lines)


def test_python_api(trained):
    from activity import load_model

    model = load_model(trained["ckpt"], cache_dir=trained["cache"])
    top = model.predict(trained["data"] / "moving_right" / "moving_right_000.mp4", top_k=2)
    assert [l for l, _ in top] == ["moving_right", "growing"] and sum(p for _, p in top) == pytest.approx(1.0, abs=1e-5)
    clips = [trained["data"] / c / f"{c}_000.mp4" for c in ("growing", "moving_right")]
    many, one = model.predict(clips, top_k=2), [model.predict(c, top_k=2) for c in clips]  # a list gives a list, in order
    assert [[l for l, _ in p] for p in many] == [[l for l, _ in p] for p in one]
    assert [p for x in many for _, p in x] == pytest.approx([p for x in one for _, p in x], abs=1e-5)
    assert load_model(trained["ckpt"].parent, cache_dir=trained["cache"]).predict(clips[1], top_k=2) == top  # the run folder
    tl = model.timeline(trained["long"], window=2.0, stride=2.0)
    assert len(tl.windows) == 9 and tl.stride == pytest.approx(2.0)
    assert tl.label_at(7.0).label == "moving_right"


def test_source_and_videos_are_exclusive(trained, capsys):
    with pytest.raises(SystemExit) as e:  # a usage error
        main(["predict", str(trained["ckpt"]), str(trained["long"]), "--source", "0"])
    assert e.value.code == 2
    assert "either video files/folders or --source" in capsys.readouterr().err


def test_window_longer_than_the_video_reports_its_real_duration(trained):
    from activity import load_model

    model = load_model(trained["ckpt"], cache_dir=trained["cache"])
    clip = trained["data"] / "growing" / "growing_000.mp4"  # 24 frames at 12 fps: 2 s
    tl = model.timeline(clip, window=100.0, stride=1.0)
    assert tl.duration == pytest.approx(2.0) and tl.stride == 1.0 and len(tl.windows) == 1
    assert tl.segments[0].end == pytest.approx(2.0)


def test_timeline_csvs_of_same_named_videos_do_not_overwrite(trained, tmp_path):
    for d in ("a", "b"):
        (tmp_path / "in" / d).mkdir(parents=True)
        (tmp_path / "in" / d / "clip.mp4").write_bytes(trained["long"].read_bytes())
    assert main(["predict", str(trained["ckpt"]), str(tmp_path / "in"), "--timeline", "--results-dir", str(tmp_path / "out"),
                 "--cache", str(trained["cache"]), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "clip-2.segments.csv", "clip-2.windows.csv", "clip.segments.csv", "clip.windows.csv"]



def test_window_shorter_than_the_frames_it_needs_is_widened(trained):
    from activity import load_model

    model = load_model(trained["ckpt"], cache_dir=trained["cache"])
    tl = model.timeline(trained["long"], window=0.001, stride=1.0)  # 8 frames at 12 fps need 0.667 s
    assert tl.window == pytest.approx(8 / FPS)
    assert all(w.end - w.start == pytest.approx(8 / FPS, abs=1e-3) for w in tl.windows)
    assert len(tl.windows) == pytest.approx(18, abs=1)


def test_backbone_lives_on_the_recognizers_device(trained):
    """Timeline, live sources and explain all encode through it: --device must reach them."""
    from activity import load_model

    model = load_model(trained["ckpt"], cache_dir=False, device="meta")  # no GPU here; "meta" is a real second device
    assert next(model._get_encoder().backbone.parameters()).device.type == "meta"


# ---------------------------------------------------------------- every results format, on the trained model


def _read_csv(path) -> list[dict]:
    return list(csv.DictReader(open(path)))


READERS = {"csv": _read_csv, "json": lambda path: json.loads(open(path).read())}
"""How each results format's files are read back; a format without a reader here fails the test below."""


@pytest.fixture(scope="module")
def short_results(trained):
    """Predictions of two clips (and one unreadable file) and the timeline of one 2 s clip, in 1 s windows."""
    from activity import load_model

    model = load_model(trained["ckpt"], cache_dir=trained["cache"])
    clip = trained["data"] / "moving_right" / "moving_right_000.mp4"
    preds, failed = model.predict_many([clip, trained["data"] / "growing" / "growing_000.mp4", trained["root"] / "nope.mp4"],
                                       top_k=2)
    return preds, failed, model.timeline(clip, window=1.0, stride=0.5, top_k=2)


def test_timelines_are_written_in_every_results_format():
    assert TIMELINE_FORMATS.names() == RESULT_FORMATS.names() == ["csv", "json"]


@pytest.mark.parametrize("fmt", RESULT_FORMATS.names())
def test_every_results_format_holds_the_predictions_and_the_timeline(short_results, fmt, tmp_path):
    from activity.inference.recognizer import write_predictions

    assert fmt in READERS, f"no reader for the results format {fmt!r}"
    preds, failed, tl = short_results
    assert len(preds) == 2 and len(failed) == 1 and len(tl.windows) > 1
    read = READERS[fmt]
    written = write_predictions(preds, failed, tmp_path / "out", fmt)
    assert written.parent == tmp_path / "out" and written.stem == "predictions"
    got = read(written)
    rows = got if fmt == "csv" else [{"path": p["path"], **{f"{k}_{i}": str(e[k]) for i, e in enumerate(p["top_k"], 1)
                                                          for k in ("label", "probability")}} for p in got["predictions"]]
    assert [(r["path"], r["label_1"], r["label_2"]) for r in rows] == [(str(p.path), *p.labels) for p in preds]
    assert [float(r["probability_1"]) for r in rows] == pytest.approx([p.probabilities[0] for p in preds], abs=1e-4)
    skipped = read(tmp_path / "out" / "skipped.csv") if fmt == "csv" else got["skipped"]
    assert ([r["path"] for r in skipped] if fmt == "csv" else list(skipped)) == [str(p) for p in failed]

    files = tl.write(tmp_path / "tl", "clip", fmt)
    assert all(f.parent == tmp_path / "tl" and f.name.startswith("clip.") for f in files)
    assert sorted(p.name for p in (tmp_path / "tl").iterdir()) == sorted(f.name for f in files)  # nothing else
    if fmt == "csv":
        windows, segments = (read(f) for f in files)
    else:
        (only,) = files
        data = read(only)
        assert data == json.loads(json.dumps(tl.as_dict()))  # the whole timeline: path, duration, window, stride, ...
        windows, segments = data["windows"], data["segments"]
    assert [float(w["start"]) for w in windows] == pytest.approx([w.start for w in tl.windows], abs=1e-3)
    assert [s["label"] for s in segments] == [s.label for s in tl.segments]


def test_unknown_results_format_is_one_line_and_writes_nothing(tmp_path):
    from activity.inference.recognizer import write_predictions

    for write in (lambda fmt: write_predictions([], {}, tmp_path / "out", fmt),
                  lambda fmt: _plan_timeline(tmp_path / "v.mp4", 2.0).write(tmp_path / "out", None, fmt)):
        with pytest.raises(ConfigError) as e:
            write("parquet")
        assert str(e.value).startswith("unknown ") and str(e.value).endswith("format 'parquet'; choose from csv, json")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- result files and the overlay, without a model


class _Unformattable(float):
    """A probability that fails when written out, as a full disk or a bug would midway through a file."""

    def __format__(self, spec: str) -> str:
        raise OSError("no space left on device")


def _no_space(fd: int) -> None:
    raise OSError("no space left on device")


def _plan_timeline(path, duration: float) -> Timeline:
    return Timeline(str(path), duration, 2.0, 1.0, [Window(0.0, 2.0, ["growing"], [0.9])],
                    [Segment(0.0, 1.0, "growing", 0.9), Segment(1.0, duration, "moving_right", 0.8)])


def test_overlay_keeps_every_frame_and_the_rate_and_labels_each_by_its_segment(tmp_path):
    frames = order_clip("growing", num_frames=30, size=(320, 240), seed=3)
    video = write_video(tmp_path / "in.mp4", frames, FPS)
    out = write_overlay(_plan_timeline(video, 30 / FPS), video, tmp_path / "out" / "overlay.mp4")
    assert sorted(p.name for p in out.parent.iterdir()) == ["overlay.mp4"]
    with open_video(out, "opencv") as r:
        assert (r.frame_count, r.size) == (30, (320, 240)) and r.fps == pytest.approx(FPS)
        got = np.stack([f for _, f in r.iter_frames()]).astype(np.int16)
    drawn = {}
    for text in ("growing 0.90", "moving_right 0.80"):  # the corner each label draws, on a plain frame
        corner = np.full((240, 320, 3), 128, np.uint8)
        _draw_label(corner, text, 0.5)
        drawn[text] = corner[:40, :200].astype(np.int16)
    nearest = [min(drawn, key=lambda t: np.abs(g[:40, :200] - drawn[t]).mean()) for g in got]
    assert nearest == ["growing 0.90"] * 12 + ["moving_right 0.80"] * 18  # the change at 1 s = frame 12


def test_overlay_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import activity.inference.timeline as timeline_mod

    video = write_video(tmp_path / "in.mp4", order_clip("growing", num_frames=20, size=(96, 72), seed=3), FPS)
    (tmp_path / "out").mkdir()
    old = tmp_path / "out" / "overlay.mp4"
    old.write_bytes(b"old overlay")
    calls = []
    real = timeline_mod._draw_label

    def fail_on_the_tenth(frame, text, scale):
        calls.append(text)
        if len(calls) == 10:
            raise OSError("no space left on device")
        real(frame, text, scale)

    monkeypatch.setattr(timeline_mod, "_draw_label", fail_on_the_tenth)
    with pytest.raises(OSError, match="no space"):
        write_overlay(_plan_timeline(video, 20 / FPS), video, old)
    assert [p.name for p in old.parent.iterdir()] == ["overlay.mp4"] and old.read_bytes() == b"old overlay"


def test_overlay_of_a_missing_video_names_it(tmp_path):
    from activity.errors import VideoError

    with pytest.raises(VideoError, match="no such file"):
        write_overlay(_plan_timeline(tmp_path / "gone.mp4", 2.0), tmp_path / "gone.mp4", tmp_path / "overlay.mp4")
    assert list(tmp_path.iterdir()) == []


def test_timeline_csv_failing_midway_leaves_no_partial_file(tmp_path):
    tl = _plan_timeline(tmp_path / "long.mp4", 3.0)
    tl.segments.append(Segment(3.0, 4.0, "growing", _Unformattable(0.5)))  # the third row of segments.csv
    with pytest.raises(OSError, match="no space"):
        tl.write(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["long.windows.csv"]  # whole; no segments, no .tmp-*
    assert len(list(csv.DictReader(open(tmp_path / "out" / "long.windows.csv")))) == 1


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_prediction_files_failing_midway_keep_the_old_files(tmp_path, fmt, monkeypatch):
    from pathlib import Path

    import activity.io
    from activity.inference.recognizer import Prediction, write_predictions

    preds = [Prediction(Path(f"{i}.mp4"), ["growing", "moving_right"], [0.7, 0.3]) for i in range(3)]
    first = write_predictions(preds, {Path("bad.mp4"): "no decodable frames"}, tmp_path, fmt)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == ({"predictions.csv", "skipped.csv"} if fmt == "csv" else {"predictions.json"}) and first.name in before
    if fmt == "csv":
        preds[1] = Prediction(Path("1.mp4"), ["growing"], [_Unformattable(0.6)])
    else:  # JSON is formatted before it is written: fail on the way to disk instead
        monkeypatch.setattr(activity.io.os, "fsync", _no_space)
    with pytest.raises(OSError, match="no space"):
        write_predictions(preds[:2], {}, tmp_path, fmt)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ---------------------------------------------------------------- a two-stream model (features.motion)


@pytest.fixture(scope="module")
def two_stream(trained_run):
    """A tiny two-stream (appearance + motion) run and its recognizer (see ``utils.TWO_STREAM``)."""
    from activity import load_model

    run = trained_run(**TWO_STREAM)

    return run, load_model(run.ckpt, cache_dir=False, workers=0)


def test_timeline_of_a_two_stream_model_is_what_predict_gives_on_one_window(two_stream):
    from activity.inference.timeline import _frame_features

    run, model = two_stream
    clip = run.data / "moving_left" / "moving_left_000.mp4"  # 12 frames at 12 fps: one 1 s window of 8 steps
    with open_video(clip, "opencv") as reader:
        feats = np.stack([f.numpy() for _, f in _frame_features(model, reader, 1.0 / 8, {})])
    cached = model.features([clip]).features[clip]  # extraction: appearance then motion, float16
    assert feats.shape == cached.shape == (8, model.checkpoint.feature_dim) and model.spec.descriptor_dim == 80
    np.testing.assert_allclose(feats, cached.astype(np.float32), rtol=0, atol=1e-2)
    tl = model.timeline(clip, window=1.0, stride=1.0, top_k=2)
    assert len(tl.windows) == 1 and (tl.windows[0].start, tl.windows[0].end) == (0.0, 1.0)  # a window, not the fallback
    top = dict(model.predict(clip, top_k=2))
    win = tl.windows[0]
    assert win.labels[0] == max(top, key=top.get)
    assert win.probabilities == pytest.approx([top[l] for l in win.labels], abs=1e-4)  # as the live test


def test_live_source_of_a_two_stream_model_pairs_each_frame_with_a_later_buffered_one(two_stream, capsys):
    run, model = two_stream
    short = write_video(run.root / "short.mp4", order_clip("moving_left", num_frames=24, size=(64, 48), seed=7), FPS)
    code = main(["predict", str(run.ckpt), "--source", str(short), "--window", "1", "--rate", "4", "--json"])
    assert code == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert lines and all(l["label"] in model.classes and 0.5 <= l["probability"] <= 1 for l in lines)
    assert lines[-1]["time"] == pytest.approx(23 / FPS, abs=0.01)
    with open_video(short, "opencv") as r:
        frames = np.stack([f for _, f in r.iter_frames()])[-round(FPS):]  # the buffer: the last second
    idx = segment_indices(len(frames), 8)
    first, second = flow_pairs(idx, len(frames), model.spec.partner_gap(FPS))
    p = model.probabilities(model.encode_clip(frames[idx], frames[first], frames[second])[None])[0]
    assert (lines[-1]["label"], lines[-1]["probability"]) == (model.classes[int(p.argmax())], pytest.approx(float(p.max()), abs=1e-4))


@pytest.mark.parametrize("step_frames", [1, 2, 4])
def test_timeline_flow_pairs_are_extractions_and_decoding_never_goes_back(two_stream, step_frames, monkeypatch):
    """At 30 fps a partner is 3 frames on: past the next chunk's first frames, and at the end before them;
    all are decoded reading forward, each step's flow from the frames extraction would pair."""
    from activity.data.decoders.opencv import OpenCVReader
    from activity.features.motion import flow_pairs
    from activity.inference.timeline import _frame_features

    run, model = two_stream
    fps = 30.0
    video = write_video(run.root / f"steps{step_frames}.mp4", order_clip("moving_left", num_frames=40, size=(64, 48), seed=3), fps)
    with open_video(video, "opencv") as r:
        frames = np.stack([f for _, f in r.iter_frames()])
    rewinds = []
    monkeypatch.setattr(OpenCVReader, "_rewind", lambda self, real=OpenCVReader._rewind: (rewinds.append(1), real(self)))
    with open_video(video, "opencv") as reader:
        got = list(_frame_features(model, reader, step_frames / fps, {}, chunk=3))
    idx = np.minimum(((np.arange(len(got)) + 0.5) * (step_frames / fps) * fps).astype(np.int64), len(frames) - 1)
    first, second = flow_pairs(idx, len(frames), model.spec.partner_gap(fps))
    want = model.encode_clip(frames[idx], frames[first], frames[second]).numpy()
    assert len(got) == 40 // step_frames and rewinds == []
    np.testing.assert_allclose(np.stack([f.numpy() for _, f in got]), want, rtol=0, atol=1e-4)  # other batch sizes


def test_a_timeline_of_one_window_says_1_window(trained, capsys):
    clip = trained["data"] / "growing" / "growing_000.mp4"  # 2 s: one window of 100 s covers it
    code = main(["predict", str(trained["ckpt"]), str(clip), "--timeline", "--window", "100",
                 "--cache", str(trained["cache"]), "--quiet"])
    assert code == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith(f"{clip}: 2.0 s, 1 window of "), header


class _ZeroEncoder:
    """A backbone stand-in for :func:`~activity.features.extract.encode_steps`: two zeros a frame."""

    device = __import__("torch").device("cpu")
    int8 = False  # float32 features (features.precision)

    def __call__(self, frames):
        import torch

        return torch.zeros(len(frames), 2)


class _FakeRecognizer:
    """What a timeline needs of a model, with the real decoding and work split but no backbone."""

    def __init__(self, motion=False, **options):
        from activity.config import FeatureConfig
        from activity.features.extract import ExtractOptions
        from activity.features.spec import FeatureSpec

        self.spec = FeatureSpec.from_config(FeatureConfig(image_size=32, num_frames=8, streams=["appearance", "motion"] if motion else ["appearance"]))
        self.options = ExtractOptions(progress=False, cache_dir=False, runtime="eager", **options)  # no backbone to export

    def encode_steps(self, path, step, **kwargs):
        from activity.features.steps import encode_steps

        return encode_steps(path, self.spec, step, _ZeroEncoder(), self.options, **kwargs)


@pytest.mark.parametrize("frames,step", [(61, 1 / 12), (61, 7 / 12), (100, 3 / 12), (100, 7 / 12), (40, 0.3)])
def test_timeline_progress_bar_ends_at_100_percent(tmp_path, monkeypatch, frames, step):
    """Counted in sampled frames, the bar's total is the work done: neither 99% nor 101% at the end."""
    import io

    import activity.progress
    from activity.inference.timeline import _frame_features

    bars = []

    class Terminal(io.StringIO):
        def isatty(self) -> bool:  # drawn as on a terminal, though the test's stderr is none
            return True

    real = activity.progress.progress_bar
    monkeypatch.setattr(activity.progress, "progress_bar", lambda **kw: bars.append(real(**kw, file=Terminal())) or bars[-1])
    video = write_video(tmp_path / "clip.mp4", order_clip("growing", num_frames=frames, size=(32, 24), seed=3), FPS)
    recognizer = _FakeRecognizer(workers=0)
    with open_video(video, "opencv", sequential=True) as reader:
        n = sum(1 for _ in _frame_features(recognizer, reader, step, {}, progress=True))
    (bar,) = bars
    assert bar.n == bar.total == n
    last = bar.fp.getvalue().split("\r")[-1]
    assert "100%" in last and f"{n * step:.1f}/{n * step:.1f} s" in last, last


# ---------------------------------------------------------------- parallel encoding (loader workers, as extraction)


def _timeline_numbers(tl: Timeline) -> tuple[list, np.ndarray, list]:
    """A timeline's windows (times, labels), their probabilities, and its segments (probabilities rounded)."""
    windows = [(w.start, w.end, w.labels) for w in tl.windows]
    segments = [(s.start, s.end, s.label, round(s.probability, 4)) for s in tl.segments]
    return windows, np.array([w.probabilities for w in tl.windows]), segments


def _same_timeline_with_workers(ckpt, video, monkeypatch) -> Timeline:
    """The timeline of ``video`` with 2 loader workers and in this process; asserts they agree."""
    import activity.data.decoders.opencv as opencv_mod
    import activity.features.steps as steps_mod
    from activity import load_model

    monkeypatch.setattr(steps_mod, "STEP_CHUNK", 12)  # several items for a video of seconds (not a multiple of 16)
    # Each worker takes every other item and seeks over the other's (here from 5 frames ahead, not 300).
    monkeypatch.setattr(steps_mod, "STEP_RUN", 1)
    monkeypatch.setattr(opencv_mod, "SEEK_MIN_GAP", 5)
    seeks = ckpt.parent / f"seeks-{video.stem}.txt"
    real_seek = opencv_mod.OpenCVReader.seek

    def logged(self, index):
        real_seek(self, index)
        with open(seeks, "a") as f:  # from the loader workers too
            f.write(f"{os.getpid()} {index} {self._pos == index}\n")

    monkeypatch.setattr(opencv_mod.OpenCVReader, "seek", logged)
    got = {}
    for workers in (0, 2):
        seeks.unlink(missing_ok=True)
        model = load_model(ckpt, cache_dir=False, workers=workers)
        got[workers] = model.timeline(video, window=2.0, stride=0.5, top_k=2)
    jumps = [line.split() for line in seeks.read_text().splitlines() if line.endswith("True")]
    assert len({pid for pid, _, _ in jumps}) == 2 and os.getpid() not in {int(pid) for pid, _, _ in jumps}  # both workers jumped
    (w0, p0, s0), (w2, p2, s2) = _timeline_numbers(got[0]), _timeline_numbers(got[2])
    assert w2 == w0 and s2 == s0 and len(w0) > 10
    np.testing.assert_allclose(p2, p0, rtol=0, atol=1e-5)
    return got[2]


def test_parallel_timeline_of_a_two_stream_model_is_the_in_process_one(trained, monkeypatch):
    tl = _same_timeline_with_workers(trained["ckpt"], trained["long"], monkeypatch)  # the default model: motion on
    assert [s.label for s in tl.segments] == ["growing", "moving_right", "growing"]


APPEARANCE_ONLY: dict = dict(TWO_STREAM, options=tuple(o.replace("features.motion=true", "features.motion=false")
                                                         for o in TWO_STREAM["options"]))


def test_parallel_timeline_of_an_appearance_only_model_is_the_in_process_one(trained_run, monkeypatch):
    run = trained_run(**APPEARANCE_ONLY)
    plan = ["moving_left", "moving_right", "moving_left"] * 2
    frames = np.concatenate([order_clip(c, num_frames=24, size=(64, 48), seed=50 + i) for i, c in enumerate(plan)])
    video = write_video(run.root / "long.mp4", frames, FPS)
    from activity import load_model

    assert load_model(run.ckpt, cache_dir=False).spec.descriptors == []
    _same_timeline_with_workers(run.ckpt, video, monkeypatch)


def test_timeline_never_holds_more_than_a_batch_of_frames(trained, monkeypatch):
    """Frames alive at once are bounded by the decode batch, not the video: a 2-minute video holds a handful."""
    import weakref

    import activity.features.steps as steps_mod
    from activity import load_model
    from activity.data.decoders.opencv import OpenCVReader

    video = write_video(trained["root"] / "two_minutes.mp4", np.concatenate(
        [order_clip(c, num_frames=CLIP, size=(96, 72), seed=i) for i, c in enumerate(CLASSES * 30)]), FPS)
    alive: dict[int, int] = {}  # id -> frames of each array get_frames returned that is still referenced
    most = []
    real = OpenCVReader.get_frames

    def recorded(self, indices):
        frames = real(self, indices)
        alive[id(frames)] = len(frames)
        weakref.finalize(frames, alive.pop, id(frames), None)
        most.append(sum(alive.values()))
        return frames

    monkeypatch.setattr(OpenCVReader, "get_frames", recorded)
    monkeypatch.setattr(steps_mod, "STEP_CHUNK", 64)
    model = load_model(trained["ckpt"], cache_dir=False, workers=0)  # in this process, where the hook sees it
    tl = model.timeline(video, window=2.0, stride=1.0)
    assert len(tl.windows) == 119 and len(most) > 20
    # A batch of 16 steps and its flow pairs, and the frames of the next batch it decoded ahead: 2 x 48.
    assert max(most) <= 2 * 3 * steps_mod.STEP_BATCH < CLIP * 60
