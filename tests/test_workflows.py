"""The workflows as a Python user calls them: no CLI, no argparse, result objects back."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from activity import ExtractOptions, load_config, load_model, workflows
from activity.config import Config, FeatureConfig
from activity.data.synthetic import make_order_dataset
from activity.errors import ActivityError, ConfigError

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["growing", "moving_right", "shrinking"]
RECIPE = ["features.image_size=64", "features.num_frames=8", "train.epochs=3", "model.ensemble=1"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Generated clips (3 classes x 5, paired recordings by index) with one file that is not a video."""
    root = tmp_path_factory.mktemp("workflows")
    data = make_order_dataset(root / "data", classes=CLASSES, clips_per_class=5, num_frames=12, size=(64, 48), fps=12.0)
    (data / "growing" / "growing_099.mp4").write_bytes(b"this is not a video")
    return root, data


@pytest.fixture(scope="module")
def trained(collection):
    root, data = collection
    skipped: list[tuple[Path, str]] = []
    opts = ExtractOptions(cache_dir=root / "cache", workers=0, progress=False, on_error=lambda p, r: skipped.append((p, r)))
    report = workflows.train(data, root / "run", load_config(None, RECIPE), opts, group_regex=r"_(\d+)\.")
    return report, opts, skipped


def test_train_returns_the_run_and_writes_what_it_says(trained, collection):
    report, _, skipped = trained
    _, data = collection
    broken = data / "growing" / "growing_099.mp4"
    assert report.classes == CLASSES and report.checkpoint == report.out / "model.pt" and report.checkpoint.is_file()
    assert report.train_clips + report.val_clips == 15 and report.val_clips > 0
    assert list(report.skipped) == [broken] and [p for p, _ in skipped] == [broken]  # reported once, as it was found
    summary = json.loads((report.out / "train_summary.json").read_text())
    assert summary == json.loads(json.dumps(report.metrics))
    assert summary["val_accuracy"] == report.fit.best_val_accuracy and summary["skipped"] == {str(broken): report.skipped[broken]}
    assert summary["validation"]["split"] == "by group"  # and which recordings went to validation
    assert summary["validation"]["groups"] and set(summary["validation"]["groups"]) < {f"{i:03d}" for i in range(5)}
    run = json.loads((report.out / "run.json").read_text())
    assert run == {"data": str(data.resolve()), "val": None, "group_regex": r"_(\d+)\."}
    assert load_config(report.out / "config.yaml").to_dict() == load_config(None, RECIPE).to_dict()


def test_evaluate_metrics_agree_with_the_rows_it_writes(trained, collection, tmp_path):
    report, opts, _ = trained
    _, data = collection
    ev = workflows.evaluate(report.checkpoint, data, tmp_path / "eval", opts)
    rows = list(csv.DictReader(open(tmp_path / "eval" / "predictions.csv")))
    assert ev.processed == len(rows) == 15 and list(ev.skipped) == [data / "growing" / "growing_099.mp4"]
    assert ev.metrics == json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ev.metrics["top1"] == pytest.approx(np.mean([int(r["correct"]) for r in rows]))
    assert {r["true_label"] for r in rows} == set(CLASSES) and set(ev.report) >= set(CLASSES)


def test_predict_gives_the_recognizers_probabilities(trained, collection):
    report, opts, _ = trained
    _, data = collection
    clips = sorted((data / "shrinking").glob("*.mp4"))[:2]
    pr = workflows.predict(report.checkpoint, [*clips, data / "nothing_here.mp4"], opts, top_k=2)
    assert [p.path for p in pr.predictions] == clips and list(pr.skipped) == [data / "nothing_here.mp4"]
    model = load_model(report.checkpoint, opts)
    for p in pr.predictions:
        assert p.labels == [label for label, _ in model.predict(p.path, top_k=2)]
        assert sum(model.probabilities(model.features([p.path]).features[p.path][None])[0]) == pytest.approx(1.0, abs=1e-5)
        assert p.probabilities == pytest.approx([prob for _, prob in model.predict(p.path, top_k=2)])


def test_predict_on_an_empty_folder_reports_it(trained, tmp_path):
    report, opts, _ = trained
    (tmp_path / "empty").mkdir()
    pr = workflows.predict(report.checkpoint, [tmp_path / "empty"], opts)
    assert pr.predictions == [] and pr.skipped == {tmp_path / "empty": "is a directory with no video files"}
    with pytest.raises(ActivityError, match="--top-k must be at least 1"):
        workflows.predict(report.checkpoint, [tmp_path / "empty"], opts, top_k=0)


def test_extract_finds_what_train_cached(trained, collection):
    _, opts, _ = trained
    _, data = collection
    r = workflows.extract(data, load_config(None, RECIPE), opts)
    assert (r.videos, r.extracted, r.cached, r.frames) == (15, 0, 15, 0)
    assert list(r.skipped) == [data / "growing" / "growing_099.mp4"]


def test_cv_runs_the_named_models_on_the_cached_features(trained, collection):
    _, opts, _ = trained
    _, data = collection
    report = workflows.cv(data, load_config(None, RECIPE), ["mean", "pooled_lr"], opts, folds=3, group_regex=r"_(\d+)\.")
    assert [r.name for r in report.results] == ["mean", "pooled_lr"] and report.clips == 15
    assert report.split == "3-fold by group (5 groups)" and sorted(p for f in report.test_folds for p in f) == sorted(
        str(p) for p in data.rglob("*.mp4") if p.name != "growing_099.mp4")


def test_a_config_built_in_python_is_checked_before_any_work(collection, tmp_path):
    _, data = collection
    cfg = Config(features=FeatureConfig(backbone="vgg99"))
    with pytest.raises(ConfigError, match="features.backbone='vgg99' is not allowed: unknown backbone"):
        workflows.train(data, tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()


def test_the_extract_script_is_a_call_of_the_workflow(trained, collection):
    _, opts, _ = trained
    root, data = collection
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "extract_features.py"), "--data", str(data),
                           "--cache", str(root / "cache"), "--workers", "0", "--quiet", *RECIPE],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"15 videos with features: 0 extracted, 15 from the cache \(0 frames in \d+\.\d s\), 1 skipped",
                        proc.stdout.strip()), proc.stdout
    assert f"skipped {data / 'growing' / 'growing_099.mp4'}: " in proc.stderr


def test_leave_one_group_out_tests_each_group_on_its_own(trained, collection):
    _, opts, _ = trained
    _, data = collection
    report = workflows.cv(data, load_config(None, RECIPE), ["pooled_lr"], opts, group_regex=r"_(\d+)\.",
                          leave_one_group_out=True)
    group = lambda p: Path(p).stem.split("_")[-1]
    assert report.split == "leave-one-group-out (5 groups: 000, 001, 002, 003, 004)"
    assert [sorted({group(p) for p in fold}) for fold in report.test_folds] == [["000"], ["001"], ["002"], ["003"], ["004"]]
    assert [f["num_videos"] for f in report.results[0].folds] == [3, 3, 3, 3, 3]


def test_a_validation_side_too_small_to_choose_anything_is_warned_about(caplog):
    import torch

    from activity.workflows import _warn_small_validation

    with caplog.at_level("WARNING", logger="activity.workflows"):
        _warn_small_validation(torch.arange(30) % 3, 3)
        assert caplog.records == []
        _warn_small_validation(torch.tensor([0, 0, 1, 1, 2, 2, 0, 1]), 3)  # 8 clips: fewer than 10
        _warn_small_validation(torch.tensor([0] * 12 + [1] * 12), 20)  # 24 clips, 20 classes: fewer than two per class
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["validation on only 8 clips (3 of 3 classes)",
                                                                       "validation on only 24 clips (2 of 20 classes)"]
