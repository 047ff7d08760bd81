"""Every CLI command end to end on generated clips, and bad input as one clear line."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from activity.cli import main
from activity.config import ModelConfig

CLASSES = ["growing", "moving_right", "shrinking"]
FAST = ["features.image_size=64", "features.num_frames=8", "train.epochs=3"]


@pytest.fixture(scope="module")
def workspace(trained_run):
    """A small collection with one broken file, a cache, and a trained run (shared: tests write under tmp_path)."""
    t = trained_run(classes=CLASSES, broken=["growing/broken.mp4"], options=FAST)
    return {"data": t.data, "cache": t.cache, "run": t.run}


def test_train_writes_a_complete_run(workspace, capsys):
    run = workspace["run"]
    assert {p.name for p in run.iterdir()} >= {"model.pt", "config.yaml", "metrics.csv", "train_summary.json"}
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    n = ModelConfig().ensemble  # the default model: two streams, each an ensemble: a folder and 3 epochs per member
    streams = ("appearance", "motion")
    assert [(r["stream"], r["member"], r["epoch"]) for r in rows] == [
        (s, str(m), str(e)) for s in streams for m in range(n) for e in (1, 2, 3)]
    assert all((run / s / f"member{m}" / "metrics.csv").exists() for s in streams for m in range(n))
    ckpt = torch.load(run / "model.pt", weights_only=True)
    assert ckpt["classes"] == CLASSES
    assert ckpt["config"]["features"]["image_size"] == 64
    assert ckpt["config"]["features"]["backbone"] == "efficientnet_lite0"
    pre = ckpt["features"]["preprocess"]
    assert (pre["crop_size"], tuple(pre["mean"])) == (64, (0.5, 0.5, 0.5))  # the resolved preprocessing travels along
    import warnings

    from activity.temporal.checkpoint import load_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unchanged preprocessing must not warn
        assert load_checkpoint(run / "model.pt").classes == CLASSES
    summary = json.loads((run / "train_summary.json").read_text())
    broken = str(workspace["data"] / "growing" / "broken.mp4")
    assert list(summary["skipped"]) == [broken]
    assert summary["train_clips"] + summary["val_clips"] == 15  # every good clip kept


def test_second_extract_reads_everything_from_the_cache(workspace, capsys):
    args = ["extract", "--data", str(workspace["data"]), "--cache", str(workspace["cache"]), "--quiet", *FAST[:2]]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "15 videos with features: 0 extracted, 15 from the cache" in out
    assert "skipped" in err and "broken.mp4" in err


def test_compiled_extract_matches_the_cache_and_prints_nothing_extra(workspace, capsys, tmp_path):
    args = ["extract", "--data", str(workspace["data"]), "--quiet", "--workers", "2", *FAST[:2]]
    assert main([*args, "--cache", str(tmp_path / "c"), "--runtime", "compiled"]) == 0
    out, err = capsys.readouterr()
    assert "15 videos with features: 15 extracted" in out
    assert [line for line in err.splitlines() if not line.startswith("skipped ")] == ["15 processed, 1 skipped (1 not a readable video)"]
    # the same features as the eager run that filled the workspace's cache, to float16 rounding
    from activity.config import FeatureConfig
    from activity.features.cache import FeatureCache
    from activity.features.spec import FeatureSpec

    spec = FeatureSpec.from_config(FeatureConfig(image_size=64, num_frames=8))
    eager, compiled = FeatureCache(workspace["cache"], spec), FeatureCache(tmp_path / "c", spec)
    clip = sorted(p for p in (workspace["data"] / "growing").glob("*.mp4") if p.name != "broken.mp4")[0]
    assert float(abs(eager.get(clip).astype("float32") - compiled.get(clip).astype("float32")).max()) < 1e-2


def test_compile_that_fails_is_one_note_and_the_extraction_goes_on(workspace, capsys, monkeypatch, tmp_path):
    def no_compiler(*a, **k):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    args = ["extract", "--data", str(workspace["data"]), "--cache", str(tmp_path / "c"), "--quiet", "--workers", "2",
            "--runtime", "compiled", *FAST[:2]]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "15 videos with features: 15 extracted" in out
    assert [line for line in err.splitlines() if line.startswith("note:")] == [
        "note: torch.compile unavailable, encoding without it (RuntimeError: no C++ compiler found)"]


def test_compiling_says_so_before_and_after(workspace, capsys, monkeypatch, tmp_path):
    from activity.features.encoder import FrameEncoder

    monkeypatch.setattr(FrameEncoder, "compile", lambda self, length, threads=1: None)  # compiled at once
    args = ["extract", "--data", str(workspace["data"]), "--workers", "2", "--runtime", "compiled", *FAST[:2]]
    assert main([*args, "--cache", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err.splitlines()
    start = next(i for i, l in enumerate(err) if l.startswith("compiling the backbone with torch.compile for "))
    assert "(about 20 s the first time" in err[start] and re.fullmatch(r"compiled in \d+\.\d s", err[start + 1])
    assert main([*args, "--cache", str(tmp_path / "d"), "--quiet"]) == 0
    assert "compil" not in capsys.readouterr().err  # --quiet: no progress, no phase lines


def test_evaluate_writes_reports(workspace, capsys, tmp_path):
    out_dir = tmp_path / "eval"
    code = main(["evaluate", str(workspace["run"] / "model.pt"), "--data", str(workspace["data"]), "--out", str(out_dir),
                 "--cache", str(workspace["cache"]), "--quiet"])
    assert code == 0
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["num_videos"] == 15 and metrics["skipped"] == 1
    assert "top5" not in metrics  # only 3 classes
    # one row per readable clip, labelled by its folder
    preds = list(csv.DictReader(open(out_dir / "predictions.csv")))
    assert list(preds[0]) == ["path", "true_label", "predicted_label", "probability", "correct",
                              *(f"prob_{c}" for c in CLASSES)]
    assert all(p["probability"] == "%.4f" % float(p["prob_" + p["predicted_label"]]) for p in preds)
    clips = sorted(p for p in workspace["data"].rglob("*.mp4") if p.name != "broken.mp4")
    assert sorted(p["path"] for p in preds) == [str(c) for c in clips]
    assert all(p["true_label"] == Path(p["path"]).parent.name and p["predicted_label"] in CLASSES for p in preds)
    correct = {p["path"]: p["predicted_label"] == p["true_label"] for p in preds}
    assert all(p["correct"] == str(int(correct[p["path"]])) for p in preds)
    # the metrics are those of the rows
    assert metrics["top1"] == pytest.approx(sum(correct.values()) / 15)
    per_class = [sum(correct[p["path"]] for p in preds if p["true_label"] == c) / 5 for c in CLASSES]
    assert metrics["mean_class_accuracy"] == pytest.approx(sum(per_class) / 3)
    rows = list(csv.DictReader(open(out_dir / "per_class.csv")))
    assert [(r["class"], r["support"]) for r in rows] == [(c, "5") for c in CLASSES]
    assert [float(r["accuracy"]) for r in rows] == pytest.approx(per_class, abs=1e-4)
    confusion = list(csv.reader(open(out_dir / "confusion_matrix.csv")))
    assert confusion[0] == ["true \\ predicted", *CLASSES]
    assert [[int(n) for n in r[1:]] for r in confusion[1:]] == [
        [sum(p["true_label"] == t and p["predicted_label"] == q for p in preds) for q in CLASSES] for t in CLASSES]
    assert (out_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a row's probability is what the Python API gives for the same clip
    from activity import load_model

    row = next(p for p in preds if p["path"] == str(clips[0]))
    [(label, prob)] = load_model(workspace["run"] / "model.pt", cache_dir=workspace["cache"]).predict(clips[0], top_k=1)
    assert (row["predicted_label"], float(row["probability"])) == (label, pytest.approx(prob, abs=1e-4))
    out, _ = capsys.readouterr()
    assert f"top-1 {metrics['top1']:.3f}  mean class accuracy {metrics['mean_class_accuracy']:.3f}" in out


def test_predict_table_and_json(workspace, capsys):
    clip = workspace["data"] / "shrinking" / "shrinking_000.mp4"
    ckpt = str(workspace["run"] / "model.pt")
    assert main(["predict", ckpt, str(clip), "--top-k", "2", "--cache", str(workspace["cache"]), "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert "shrinking_000.mp4" in out and "probability" in out
    assert main(["predict", ckpt, str(clip), "--json", "--top-k", "5", "--cache", str(workspace["cache"])]) == 0
    result = json.loads(capsys.readouterr().out)
    top = result["predictions"][0]["top_k"]
    assert len(top) == 3  # capped at the number of classes
    assert abs(sum(t["probability"] for t in top) - 1.0) < 1e-4
    assert {t["label"] for t in top} == set(CLASSES)


def test_predict_skips_bad_files_and_keeps_the_rest(workspace, capsys, tmp_path):
    good = workspace["data"] / "growing" / "growing_001.mp4"
    bad = workspace["data"] / "growing" / "broken.mp4"
    missing = tmp_path / "nope.mp4"
    code = main(["predict", str(workspace["run"] / "model.pt"), str(bad), str(good), str(missing), "--json",
                 "--cache", str(workspace["cache"]), "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert [p["path"] for p in result["predictions"]] == [str(good)]
    assert set(result["skipped"]) == {str(bad), str(missing)}
    assert f"skipped {missing}: no such file" in captured.err
    assert "1 processed, 2 skipped" in captured.err


def test_predict_only_bad_files_exits_nonzero(workspace, capsys):
    bad = workspace["data"] / "growing" / "broken.mp4"
    assert main(["predict", str(workspace["run"] / "model.pt"), str(bad), "--cache", str(workspace["cache"])]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no table of nothing
    lines = err.splitlines()
    assert [l for l in lines if l.startswith("skipped ")] == [f"skipped {bad}: not a readable video (OpenCV cannot open it)"]
    assert lines[-1] == "0 processed, 1 skipped (1 not a readable video)" and "Traceback" not in err


def test_backbones_lists_offline_default(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("efficientnet_lite0"))
    assert "1280" in line and "yes" in line
    assert "resnet50" in out and "2048" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "{root}/missing", "--out", "{root}/r"], "missing: no such file or directory"),
        (["train", "--data", "{data}", "--out", "{root}/r", "--backbone", "vgg99"], "features.backbone='vgg99' is not allowed: unknown backbone"),
        (["train", "--data", "{data}", "--out", "{root}/r", "model.hidden_size=-4"], "model.hidden_size=-4 is out of range"),
        (["train", "--data", "{data}", "--out", "{root}/r", "model.temporal=gru"], "model.temporal='gru' is not allowed"),
        (["train", "--data", "{data}", "--out", "{root}/r", "train.epochz=3"], "unknown key 'train.epochz'"),
        (["train", "--data", "{data}", "--out", "{root}/r", "--config", "{root}/none.yaml"], "config file not found"),
        (["train", "--data", "{empty}", "--out", "{root}/r"], "no class folders"),
        (["train", "--data", "{emptyclass}", "--out", "{root}/r"], "class 'b' has no video files"),
        (["evaluate", "{data}/growing/growing_000.mp4", "--data", "{data}", "--out", "{root}/e"], "not an activity checkpoint"),
        (["predict", "{root}/absent.pt", "x.mp4"], "checkpoint not found"),
        (["extract", "--data", "{badonly}", "--quiet"], "no readable video"),
        (["train", "--data", "{oneclass}", "--out", "{root}/r"], "clips of at least 2 classes are needed to train a classifier; found 'growing' ("),
        (["cv", "--data", "{oneclass}"], "clips of at least 2 classes are needed"),
    ],
)
def test_bad_input_is_one_clear_line(workspace, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "emptyclass" / "a").mkdir(parents=True)
    (tmp_path / "emptyclass" / "b").mkdir(parents=True)
    (tmp_path / "emptyclass" / "a" / "x.mp4").write_bytes(b"x")
    (tmp_path / "badonly" / "a").mkdir(parents=True)
    (tmp_path / "badonly" / "a" / "x.mp4").write_bytes(b"not a video")
    shutil.copytree(workspace["data"] / "growing", tmp_path / "oneclass" / "growing")
    fill = {"root": tmp_path, "data": workspace["data"], "empty": tmp_path / "empty", "emptyclass": tmp_path / "emptyclass",
            "badonly": tmp_path / "badonly", "oneclass": tmp_path / "oneclass"}
    argv = [a.format(**fill) for a in argv] + ["--cache", str(workspace["cache"])]
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    error_lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err


def test_console_command_exits_cleanly_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "activity", "predict", str(tmp_path / "none.pt"), "v.mp4"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'none.pt'}: checkpoint not found"


def test_evaluate_skips_labels_the_model_does_not_know(workspace, tmp_path, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text(f"{workspace['data'] / 'growing' / 'growing_000.mp4'} growing\n"
                   f"{workspace['data'] / 'moving_right' / 'moving_right_000.mp4'} jumping\n")
    code = main(["evaluate", str(workspace["run"] / "model.pt"), "--data", str(lst), "--out", str(tmp_path / "e"),
                 "--cache", str(workspace["cache"]), "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "label 'jumping' is not one of the model's classes" in err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["num_videos"] == 1 and metrics["skipped"] == 1


def test_evaluate_on_labels_the_model_does_not_know_at_all_is_one_line(workspace, tmp_path, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{workspace['data'] / 'growing' / f'growing_00{i}.mp4'} {label}\n"
                           for i, label in enumerate(["jumping", "jumping", "sitting"])))
    code = main(["evaluate", str(workspace["run"] / "model.pt"), "--data", str(lst), "--out", str(tmp_path / "e"),
                 "--cache", str(workspace["cache"])])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {lst}: none of its labels (jumping, sitting) is one of the model's classes "
                   "(growing, moving_right, shrinking)"]
    assert not (tmp_path / "e").exists()


def test_cv_compares_models_on_the_same_folds(workspace, tmp_path, capsys):
    out = tmp_path / "cv.json"
    models = [a for name in ("lstm", "mean", "pooled_lr", "middle_lr") for a in ("--temporal", name)]
    argv = ["cv", "--data", str(workspace["data"]), "--folds", "3", *models, "--group-regex", r"_(\d+)\.|broken",
            "--results-dir", str(tmp_path), "--cache", str(workspace["cache"]), "--quiet", *FAST]
    code = main(argv)
    assert code == 0
    printed = capsys.readouterr().out
    assert "per-fold top-1" in printed and printed.count("±") == 8
    result = json.loads(out.read_text())
    assert main([*argv, "--json"]) == 0  # the same results on stdout, nothing else
    as_json = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["top1"]) for r in as_json["results"]] == [(r["name"], r["top1"]) for r in result["results"]]
    assert result["split"].startswith("3-fold by group") and result["clips"] == 15
    assert [r["name"] for r in result["results"]] == ["lstm", "mean", "pooled_lr", "middle_lr"]
    for r in result["results"]:
        assert len(r["per_fold"]) == 3
        assert sum(f["num_videos"] for f in r["per_fold"]) == 15  # every clip tested exactly once
        per_fold = [f["top1"] for f in r["per_fold"]]
        for f in r["per_fold"]:  # a share of the fold's clips
            assert f["top1"] * f["num_videos"] == pytest.approx(round(f["top1"] * f["num_videos"]), abs=1e-6)
        assert r["top1"] == pytest.approx(float(np.mean(per_fold))) and r["top1_std"] == pytest.approx(float(np.std(per_fold)))
        row = next(l for l in printed.splitlines() if l.startswith(r["name"] + " "))
        assert f"{100 * r['top1']:.1f} ± {100 * r['top1_std']:.1f}" in row  # the table prints the JSON's numbers
    # the same test clips in every model's folds
    sizes = {tuple(f["num_videos"] for f in r["per_fold"]) for r in result["results"]}
    assert len(sizes) == 1


@pytest.mark.parametrize("temporal, message", [
    (["gru"], "argument --temporal: invalid choice: 'gru' (choose from lstm, mean, pooled_lr, middle_lr)"),
    (["lstm,mean"], "'lstm,mean': --temporal names one model; give it once per model"),
    (["mean", "mean"], "--temporal names a model twice")])
def test_cv_rejects_unknown_models(workspace, capsys, temporal, message):
    with pytest.raises(SystemExit) as e:
        main(["cv", "--data", str(workspace["data"]), *[a for t in temporal for a in ("--temporal", t)]])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [("--workers", "-1", "must be a whole number >= 0"), ("--device", "gpu", "is not a device")])
def test_bad_workers_or_device_is_a_usage_error(workspace, capsys, flag, value, message):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(workspace["run"] / "model.pt"), "x.mp4", flag, value])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_train_counts_validation_clips_with_unknown_labels_as_skipped(workspace, tmp_path, capsys):
    val = tmp_path / "val.txt"
    val.write_text(f"{workspace['data'] / 'growing' / 'growing_000.mp4'} growing\n"
                   f"{workspace['data'] / 'shrinking' / 'shrinking_000.mp4'} jumping\n")
    argv = ["train", "--data", str(workspace["data"]), "--val", str(val), "--out", str(tmp_path / "r"),
            "--cache", str(workspace["cache"]), "--quiet", *FAST]
    assert main(argv) == 0
    assert main([*argv, "--strict"]) == 1
    out, err = capsys.readouterr()
    assert "label 'jumping' is not one of the training classes" in err and "2 skipped" in err
    # one usable validation clip: said, not hidden behind "accuracy 1.000"
    assert "warning: validation on only 1 clip (1 of 3 classes): its accuracy, which picks the best epoch, is" in err
    # the streams' weight is not chosen on that one clip but on every training clip, out of fold
    assert "(chosen on out-of-fold predictions of 16 labelled clips, 5 folds stratified: accuracy" in out


def test_explain_command_writes_the_png_and_names_the_most_important_frame(trained_run, cli, tmp_path):
    run = trained_run()
    clip = sorted((run.data / "growing").glob("*.mp4"))[0]
    result = cli(["explain", run.ckpt, clip, "--out", tmp_path / "why.png", "--method", "occlusion", "--json"])
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert payload["method"] == "occlusion" and len(payload["frames"]) == 8  # features.num_frames=8
    top = max(payload["frames"], key=lambda f: f["importance"])
    assert f"most important frame #{top['index']}" not in result.out  # --json prints JSON only
    assert payload["label"] == payload["predicted"] in ("growing", "moving_right", "shrinking")


def test_export_command_writes_the_model_and_its_description(trained_run, cli, tmp_path):
    run = trained_run()
    result = cli(["export", run.ckpt, "--format", "torchscript", "--out", tmp_path / "model.ts"])
    assert result.code == 0, result.err
    assert result.out == f"wrote {tmp_path / 'model.ts'} and {tmp_path / 'model.ts'}.json (classes, input shape, sampling, preprocessing)\n"
    meta = json.loads((tmp_path / "model.ts.json").read_text())
    assert meta["classes"] == ["growing", "moving_right", "shrinking"]
    import zipfile

    assert zipfile.is_zipfile(tmp_path / "model.ts")  # TorchScript's archive (loading it is test_inference_export's)


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "{missing}", "--out", "{root}/r"], "{missing}: no such file or directory"),
    (["train", "--data", "{root}", "--out", "{root}/r", "--config", "{missing}"], "{missing}: config file not found"),
    (["evaluate", "{missing}", "--data", "{root}", "--out", "{root}/e"], "{missing}: checkpoint not found"),
    (["predict", "{missing}", "x.mp4"], "{missing}: checkpoint not found"),
    (["cv", "--data", "{missing}"], "{missing}: no such file or directory"),
    (["explain", "{root}", "{missing}", "--out", "{root}/x.png"], "{missing}: no such file or directory"),
])
def test_a_missing_path_is_reported_before_torch_is_imported(tmp_path, argv, message):
    fill = {"root": tmp_path, "missing": tmp_path / "nope"}
    code = ("import sys\nfrom activity.cli import main\nrc = main(sys.argv[1:])\n"
            "print(rc, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, *[a.format(**fill) for a in argv]], capture_output=True, text=True)
    assert proc.stdout.split() == ["1", "False"], proc.stderr
    assert proc.stderr == f"error: {message.format(**fill)}\n"


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x"], "train needs --data and --out (or --resume RUN_DIR)"),
    (["predict", "model.pt"], "give either video files/folders or --source, not both or neither"),
    (["predict", "model.pt", "a.mp4", "--overlay", "o.mp4"], "--overlay applies only with --timeline"),
    (["predict", "model.pt", "a.mp4", "b.mp4", "--timeline", "--overlay", "o.mp4"], "--overlay needs exactly one video"),
    # every predict option in a mode where it would be ignored is refused, never dropped without a word
    (["predict", "model.pt", "a.mp4", "--stride", "2"], "--stride applies only with --timeline"),
    (["predict", "model.pt", "a.mp4", "--smooth", "3"], "--smooth applies only with --timeline"),
    (["predict", "model.pt", "a.mp4", "--threshold", "0.5"], "--threshold applies only with --timeline"),
    (["predict", "model.pt", "a.mp4", "--window", "3"], "--window applies only with --timeline or --source"),
    (["predict", "model.pt", "--source", "0", "--stride", "2"], "--stride applies only with --timeline"),
    (["predict", "model.pt", "a.mp4", "--timeline", "--rate", "2"], "--rate applies only with --source"),
    (["predict", "model.pt", "a.mp4", "--max-seconds", "2"], "--max-seconds applies only with --source"),
    (["predict", "model.pt", "--source", "0", "--results-dir", "out"], "--results-dir applies only with files or --timeline"),
    (["predict", "model.pt", "--source", "0", "--timeline"], "--timeline reads video files; --source is live: give one of them"),
    (["predict", "model.pt", "a.mp4", "--results-format", "json"],
     "--results-format says how --results-dir is written; give --results-dir too"),
    (["predict", "model.pt", "a.mp4", "--results-dir", "d", "--results-format", "xml"],
     "argument --results-format: invalid choice: 'xml' (choose from csv, json)"),
    (["predict", "model.pt", "a.mp4", "--top-k", "0"], "argument --top-k: must be at least 1"),
    (["cv", "--data", "x", "--folds", "0"], "argument --folds: must be at least 1"),
])
def test_usage_errors_exit_2_with_the_command_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"usage: activity {argv[0]}") and err.endswith(f"error: {message}\n")


def test_a_run_folder_without_a_model_is_named_as_such(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["predict", str(tmp_path / "run"), "x.mp4"]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'run'}: a folder without model.pt; pass a checkpoint file or a finished run folder\n"


def test_an_interrupt_closes_the_progress_bars_before_saying_so(monkeypatch, capsys):
    from tqdm import tqdm

    import activity.cli.commands as commands

    def interrupted(args):
        bar = tqdm(total=10, desc="working", disable=False)
        bar.update(3)
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_backbones", interrupted)
    assert main(["backbones"]) == 130
    before, _, after = capsys.readouterr().err.partition("interrupted\n")
    assert "working:  30%" in before and after == ""  # the bar is not drawn again below the message


def test_every_option_and_argument_of_every_command_says_what_it_is():
    import argparse

    from activity.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, p in sub.choices.items() for action in p._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


def test_a_baseline_cv_compares_can_be_trained_evaluated_predicted_and_exported(workspace, tmp_path, capsys):
    """What cv may find best (pooled_lr) is a --temporal choice of train, saved as a checkpoint the other commands take."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from activity.inference.export import ExportModel
    from activity.temporal.checkpoint import load_checkpoint
    from activity.temporal.models import PooledLogistic

    run, common = tmp_path / "lr", ["--cache", str(workspace["cache"]), "--quiet"]
    assert main(["train", "--data", str(workspace["data"]), "--out", str(run), "--temporal", "pooled_lr", *common, *FAST]) == 0
    out = capsys.readouterr().out
    summary = json.loads((run / "train_summary.json").read_text())
    assert f"logistic regression with C {summary['selection']['C']:g}" in out and summary["epochs_run"] == 0
    ckpt = load_checkpoint(run / "model.pt")
    assert isinstance(ckpt.model, PooledLogistic) and ckpt.config.model.temporal == "pooled_lr"
    assert main(["evaluate", str(run / "model.pt"), "--data", str(workspace["data"]), "--out", str(tmp_path / "e"), *common]) == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["top1"] > 0.5  # it learnt something
    capsys.readouterr()
    clip = sorted((workspace["data"] / "growing").glob("growing_0*.mp4"))[0]
    assert main(["predict", str(run / "model.pt"), str(clip), "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["top_k"][0]["label"] in CLASSES
    assert main(["export", str(run / "model.pt"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    session, g = ort.InferenceSession(str(tmp_path / "m.onnx")), torch.Generator().manual_seed(0)
    feed = {i.name: torch.rand(2, *i.shape[1:], generator=g) for i in session.get_inputs()}  # frames, and motion
    with torch.no_grad():
        want = ExportModel.from_checkpoint(ckpt)(*feed.values()).numpy()
    got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
    assert list(feed) == ["frames", "motion"] and want.std() > 0.01
    np.testing.assert_allclose(got, want, atol=1e-3)
