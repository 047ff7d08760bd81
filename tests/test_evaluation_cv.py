"""Cross-validation on cached features: same folds for every model, every clip tested once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from activity.config import Config
from activity.errors import ActivityError
from activity.evaluation.cv import _inner_split, build_models, cross_validate
from activity.features.extract import ExtractOptions
from activity.temporal.baselines import LogisticBaseline
from activity.workflows import cv as run_cv

try:
    from utils import make_video
except ImportError:  # tests/ imported as a package
    from tests.utils import make_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(temporal: str) -> Config:
    cfg = Config()
    cfg.features.streams = ["appearance"]  # one stream: these features are synthetic
    cfg.model.pooled_members = False  # the BiLSTM alone (tests/test_features_motion.py trains a fusion)
    cfg.features.num_frames = 4
    cfg.model.temporal = temporal
    cfg.model.hidden_size = cfg.model.projection = 8
    cfg.train.epochs = 2
    return cfg


def test_every_clip_is_tested_once_per_model_on_the_same_folds():
    y = np.arange(24) % 3
    x = torch.randn(24, 4, 16) + torch.from_numpy(y)[:, None, None].float()
    results = cross_validate({"lstm": _cfg("lstm"), "mean": _cfg("mean")}, x, y, ["a", "b", "c"], None, folds=4)
    assert [r.name for r in results] == ["lstm", "mean"]
    for r in results:
        assert len(r.folds) == 4 and sum(f["num_videos"] for f in r.folds) == 24
    assert [f["num_videos"] for f in results[0].folds] == [f["num_videos"] for f in results[1].folds]


def test_streams_of_a_two_stream_recipe_are_scored_alone_on_the_same_folds():
    from activity.features.motion import MotionSpec

    cfg = _cfg("lstm")
    cfg.features.streams = ["appearance", "motion"]
    cfg.model.ensemble, cfg.train.epochs, cfg.train.lr = 1, 40, 0.01
    m = MotionSpec().dim
    y = np.arange(30) % 3
    x = torch.randn(30, 4, 16 + m)
    x[..., 16:] += 3 * torch.from_numpy(y)[:, None, None].float()  # only the motion part tells the classes apart
    results = cross_validate({"lstm": cfg, "mean": _cfg("mean")}, x, y, ["a", "b", "c"], None, folds=3, streams=True)
    by = {r.name: r for r in results}
    assert [r.name for r in results] == ["lstm", "lstm:appearance", "lstm:motion", "mean"]
    assert [f["num_videos"] for f in by["lstm:motion"].folds] == [f["num_videos"] for f in by["lstm"].folds]
    assert by["lstm:motion"].summary()["top1"] > 0.8 > by["lstm:appearance"].summary()["top1"]
    assert all(set(f["selection"]["fusion_weights"]) == {"appearance", "motion"} for f in by["lstm"].folds)
    assert [r.name for r in cross_validate({"lstm": cfg}, x, y, ["a", "b", "c"], None, folds=3)] == ["lstm"]


def test_folds_too_small_for_early_stopping_train_without_it():
    # one clip per class in a fold's training part: no validation split can keep every class
    tr, va = _inner_split(np.array([0, 1, 2]), np.array(["g1", "g2", "g3"]), 0.2, seed=0)
    assert tr.tolist() == [0, 1, 2] and va.size == 0
    y = np.array([0, 0, 0, 1, 1, 2])
    groups = np.array(["g1", "g1", "g2", "g3", "g3", "g1"])  # like ucf101-samples: one big group
    results = cross_validate({"mean": _cfg("mean")}, torch.randn(6, 4, 16), y, ["a", "b", "c"], groups, folds=3)
    assert sum(f["num_videos"] for f in results[0].folds) == 6


def test_baselines_and_trained_models_share_the_folds():
    y = np.arange(30) % 3
    x = torch.randn(30, 4, 16) + 2 * torch.from_numpy(y)[:, None, None].float()
    models = build_models(_cfg("lstm"), ["mean", "pooled_lr", "middle_lr"])
    assert isinstance(models["pooled_lr"], LogisticBaseline) and models["mean"].model.temporal == "mean"
    results = cross_validate(models, x, y, ["a", "b", "c"], None, folds=3)
    sizes = [[f["num_videos"] for f in r.folds] for r in results]
    assert sizes[0] == sizes[1] == sizes[2] and sum(sizes[0]) == 30
    assert results[1].summary()["top1"] > 0.8  # separable by the mean: the baseline must find it
    assert all("C" in f for f in results[1].folds)


def test_unknown_model_name():
    with pytest.raises(ActivityError, match="unknown model 'gru'"):
        build_models(Config(), ["lstm", "gru"])


@pytest.mark.parametrize("fit_fails", [False, True])
def test_threads_are_limited_while_fitting_and_restored_after(monkeypatch, fit_fails):
    """threads=1 holds during every fit (PyTorch and BLAS), and the caller's count comes back, also after a failure."""
    from threadpoolctl import threadpool_info

    seen = []
    real_fit = LogisticBaseline.fit

    def recording_fit(self, *args, **kwargs):
        seen.append((torch.get_num_threads(), {lib["num_threads"] for lib in threadpool_info()}))
        if fit_fails:
            raise RuntimeError("fit failed")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticBaseline, "fit", recording_fit)
    y = np.arange(12) % 2
    args = ({"middle_lr": LogisticBaseline("middle_lr", cs=(1.0,))}, torch.randn(12, 4, 8), y, ["a", "b"], None)
    outer = torch.get_num_threads()  # the module's fixture: 1
    torch.set_num_threads(2)
    try:
        if fit_fails:
            with pytest.raises(RuntimeError, match="fit failed"):
                cross_validate(*args, folds=2, threads=1)
        else:
            cross_validate(*args, folds=2, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(outer)
    assert seen == [(1, {1})] * (1 if fit_fails else 2)  # one fit per fold, each on one thread


def _clips(root, groups_per_class: dict[str, list[int]]) -> None:
    """Tiny generated clips named <class>_<group>_<n>.mp4, like ARID's."""
    seed = 0
    for cls, groups in groups_per_class.items():
        for g in groups:
            for n in range(2):
                seed += 1
                make_video(root / cls / f"{cls}_{g}_{n}.mp4", num_frames=4, size=(32, 24), seed=seed)


def test_run_cv_folds_are_stratified_and_never_split_a_recording(tmp_path):
    data = tmp_path / "data"
    _clips(data, {"a": [1, 2, 3, 4], "b": [5, 6, 7, 8], "c": [9, 10, 11, 12]})
    cfg = _cfg("mean")
    cfg.features.image_size = 32
    report = run_cv(data, cfg, ["mean", "middle_lr"], ExtractOptions(cache_dir=tmp_path / "cache", progress=False), folds=4,
                    group_regex=r"_(\d+)_")
    assert report.split == "4-fold by group (12 groups)" and report.clips == 24
    seen = [p for fold in report.test_folds for p in fold]
    assert sorted(seen) == sorted(str(p) for p in data.rglob("*.mp4"))  # every clip tested once
    group = lambda p: Path(p).name.split("_")[1]
    for i, fold in enumerate(report.test_folds):
        others = {group(p) for j, f in enumerate(report.test_folds) if j != i for p in f}
        assert not {group(p) for p in fold} & others  # a recording sits in one fold only
        assert {Path(p).parent.name for p in fold} == {"a", "b", "c"}  # every class in every fold
    table = report.table()
    assert "mean" in table and "middle_lr" in table and "4-fold by group" in table
    assert json.loads(json.dumps(report.to_dict()))["results"][1]["name"] == "middle_lr"


def test_run_cv_without_groups_is_stratified(tmp_path):
    data = tmp_path / "data"
    _clips(data, {"a": [1, 2, 3], "b": [4, 5, 6]})
    cfg = _cfg("mean")
    cfg.features.image_size = 32
    report = run_cv(data, cfg, ["middle_lr"], ExtractOptions(cache_dir=tmp_path / "cache", progress=False), folds=3)
    assert report.split == "3-fold stratified"
    assert [sorted(Path(p).parent.name for p in f) for f in report.test_folds] == [["a", "a", "b", "b"]] * 3


def test_progress_names_each_fold_and_model(monkeypatch):
    import activity.progress

    seen = []

    class Bar:  # records the cv bar; the training bars inside (desc "train") are let be
        def __init__(self, total=None, enabled=None, desc=None, **kw):
            self.cv = desc == "cv"
            if self.cv:
                seen.append(("total", total, enabled))

        def set_description(self, text):
            seen.append(text)

        def update(self, n):
            if self.cv:
                seen.append(n)

        def close(self):
            if self.cv:
                seen.append("closed")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def __getattr__(self, name):
            return lambda *a, **k: None

    monkeypatch.setattr(activity.progress, "progress_bar", Bar)
    y = np.arange(12) % 2
    cross_validate({"mean": _cfg("mean"), "pooled_lr": LogisticBaseline("pooled_lr")}, torch.randn(12, 4, 8), y, ["a", "b"],
                   None, folds=2, progress=True)
    assert seen == [("total", 4, True), "cv: fold 1/2, mean", 1, "cv: fold 1/2, pooled_lr", 1,
                    "cv: fold 2/2, mean", 1, "cv: fold 2/2, pooled_lr", 1, "closed"]


def test_folds_are_capped_by_the_smallest_class_and_every_test_fold_holds_every_class():
    """A class of 4 clips among classes of 20: 4 folds, not 5 with one test fold lacking it."""
    from activity.data.splits import classes_missing_from_tests, kfold_splits

    targets = np.array([0] * 20 + [1] * 20 + [2] * 4)
    splits = kfold_splits(targets, None, 5)
    assert len(splits) == 4
    assert all(set(targets[te].tolist()) == {0, 1, 2} for _, te in splits)
    assert classes_missing_from_tests(splits, targets) == {}
    one = np.array([0] * 6 + [1])  # one clip of class 1: it can be tested in one fold only
    splits = kfold_splits(one, None, 5)
    assert len(splits) == 2 and list(classes_missing_from_tests(splits, one).values()) == [[1]]


def test_run_cv_warns_which_folds_lack_which_class(tmp_path, caplog):
    data = tmp_path / "data"
    _clips(data, {"a": [1, 2, 3, 4], "b": [5, 6, 7, 8], "c": [9]})  # class c: one recording, so one fold
    cfg = _cfg("mean")
    cfg.features.image_size = 32
    with caplog.at_level("WARNING", logger="activity"):
        report = run_cv(data, cfg, ["middle_lr"], ExtractOptions(cache_dir=tmp_path / "cache", progress=False), folds=4,
                        group_regex=r"_(\d+)_")
    lacking = [k for k, f in enumerate(report.test_folds) if "c" not in {Path(p).parent.name for p in f}]
    assert len(lacking) == 3
    (msg,) = [r.getMessage() for r in caplog.records if "lack a class" in r.getMessage()]
    assert msg.startswith("3 of 4 test folds lack a class (")
    assert all(f"fold {k + 1}: c" in msg for k in lacking)


def test_pooled_metrics_count_every_test_clip_once_across_folds():
    from activity.evaluation.cv import CVResult

    r = CVResult("m")
    eye = np.eye(3)
    r.add({"top1": 1.0, "mean_class_accuracy": 1.0, "seconds": 0}, np.array([0, 0, 0, 0]), eye[[0, 0, 0, 0]])  # 4 of 4
    r.add({"top1": 0.0, "mean_class_accuracy": 0.0, "seconds": 0}, np.array([1, 2]), eye[[2, 1]])  # 0 of 2
    s = r.summary()
    assert s["top1"] == 0.5 and s["pooled_top1"] == pytest.approx(4 / 6)  # folds averaged vs clips counted
    assert s["pooled_mean_class_accuracy"] == pytest.approx((1 + 0 + 0) / 3)


def test_the_accuracy_benchmark_merges_earlier_runs_into_one_table(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_accuracy.py"
    spec = importlib.util.spec_from_file_location("benchmark_accuracy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]

    def run(data, split, scores):
        return {"datasets": [{"data": data, "split": split, "results": [
            {"name": n, "pooled_top1": t, "pooled_mean_class_accuracy": m} for n, (t, m) in scores.items()]}]}

    (tmp_path / "a.json").write_text(json.dumps(run("../shared/data/vioperu/labels.csv", "leave-one-group-out (3 groups: x)",
                                                    {"lstm": (0.57, 0.591), "lstm:motion": (0.577, 0.583)})))
    (tmp_path / "b.json").write_text(json.dumps(run("../shared/data/arid6/train", "leave-one-group-out (11 groups: 1)",
                                                    {"lstm": (0.347, 0.347), "pooled_lr": (0.147, 0.147)})))
    assert bench.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("$ python scripts/benchmark_accuracy.py --merge")
    assert out[1].split("  ")[0] == "model (pooled top-1 / mca %)"
    assert "vioperu, leave-one-group-out" in out[1] and "arid6/train, leave-one-group-out" in out[1]
    rows = {line.split()[0]: line.split()[1:] for line in out[3:]}
    assert rows == {"lstm": ["57.0", "/", "59.1", "34.7", "/", "34.7"], "lstm:motion": ["57.7", "/", "58.3"],
                    "pooled_lr": ["14.7", "/", "14.7"]}
