"""The motion stream: flow pairs, the flow descriptor, extraction with it, and two-stream models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from activity.config import FeatureConfig, load_config
from activity.errors import ConfigError
from activity.features.extract import ExtractOptions, extract
from activity.features.motion import MotionSpec, flow_histograms, flow_pairs, motion_features
from activity.features.spec import FeatureSpec

SPEC = MotionSpec()


def test_flow_pairs_run_forward_in_time_and_stay_inside_the_video():
    first, second = flow_pairs(np.array([0, 5, 8, 9]), frame_count=10, gap=3)
    assert first.tolist() == [0, 5, 5, 6] and second.tolist() == [3, 8, 8, 9]  # near the end: the earlier frame first
    assert (second - first == 3).all()
    assert flow_pairs(np.array([0]), frame_count=1, gap=3) == (np.array([0]), np.array([0]))  # one frame: no motion


def test_gap_is_in_seconds():
    assert (SPEC.partner_gap(30.0), SPEC.partner_gap(12.0), SPEC.partner_gap(0.0)) == (3, 1, 3)


def _field(h=48, w=60, dx=0.0, dy=0.0):
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_a_moving_region_fills_its_cell_and_direction_and_camera_motion_cancels():
    flow = _field()
    flow[:16, 40:, 0] = 4.0  # the top-right cell moves right by 4 px
    d = flow_histograms(flow, SPEC)
    cells = d[: 9 * SPEC.bins].reshape(9, SPEC.bins)
    assert d.shape == (SPEC.dim,) and SPEC.dim == 80
    right = SPEC.bins // 2  # angle 0 (dx > 0) falls in the middle bin of [-pi, pi)
    assert cells[2, right] == pytest.approx(4.0, rel=0.02) and cells.sum() == pytest.approx(cells[2, right])
    shares = d[9 * SPEC.bins :]
    assert shares.sum() == pytest.approx(1.0) and shares[0] == pytest.approx(1 - 1 / 9, abs=0.02)  # 8 still cells
    np.testing.assert_allclose(flow_histograms(_field(dx=3.0, dy=-2.0), SPEC), flow_histograms(_field(), SPEC))


def test_opposite_motions_give_mirrored_descriptors():
    """A bar moving right and the same clip reversed: the direction bins swap, the magnitudes stay."""
    from activity.data.synthetic import order_clip

    frames = order_clip("moving_right", num_frames=12)
    right = motion_features(frames[:-2], frames[2:], SPEC)
    left = motion_features(frames[2:], frames[:-2], SPEC)
    r, l = right[:, : 9 * SPEC.bins].reshape(-1, 9, SPEC.bins).sum((0, 1)), left[:, : 9 * SPEC.bins].reshape(-1, 9, SPEC.bins).sum((0, 1))
    assert r[SPEC.bins // 2] > 3 * r[0] and l[0] > 3 * l[SPEC.bins // 2]  # right vs left, ...
    np.testing.assert_allclose(right[:, 9 * SPEC.bins :].sum(0), left[:, 9 * SPEC.bins :].sum(0), atol=0.15)  # ... same speeds


def test_motion_changes_the_cache_key_and_leaves_the_old_one_alone():
    plain = FeatureSpec.from_config(FeatureConfig(streams=["appearance"]))
    moving = FeatureSpec.from_config(FeatureConfig())  # the default has the motion stream
    assert plain.key() == "efficientnet_lite0-793f7a9a9b9b"  # what caches written before the motion stream use
    assert moving.key() == "efficientnet_lite0-16356b43f47b"  # pinned: a changed key silently drops every cache
    assert moving.key() != plain.key() and (plain.descriptor_dim, moving.descriptor_dim) == (0, SPEC.dim)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from utils import make_video

    root = tmp_path_factory.mktemp("motion")
    return [make_video(root / f"c{i}.mp4", num_frames=20, size=(64, 48), seed=i)[0] for i in range(3)]


@pytest.mark.parametrize("workers", [0, 2])
def test_extraction_appends_the_motion_stream_to_the_same_appearance_features(clips, workers, tmp_path):
    from test_features_extract import Factory

    plain = FeatureSpec.from_config(FeatureConfig(image_size=32, num_frames=4, enhance="none", streams=["appearance"]))
    moving = FeatureSpec.from_config(FeatureConfig(image_size=32, num_frames=4, enhance="none", streams=["appearance", "motion"]))
    a = extract(clips, plain, None, Factory(), ExtractOptions(workers=workers, progress=False))
    b = extract(clips, moving, None, Factory(), ExtractOptions(workers=workers, progress=False))
    for c in clips:
        d = a.features[c].shape[1]
        assert b.features[c].shape == (4, d + SPEC.dim) and b.features[c].dtype == np.float16
        np.testing.assert_array_equal(b.features[c][:, :d], a.features[c])
        assert np.abs(b.features[c][:, d:]).sum() > 0  # the bar moves


def test_a_two_stream_run_trains_saves_and_predicts(tmp_path, cli):
    from activity.data.synthetic import make_order_dataset
    from activity.inference.recognizer import load_model
    from activity.temporal.checkpoint import load_checkpoint
    from activity.temporal.models import Fusion

    data = make_order_dataset(tmp_path / "data", classes=["moving_left", "moving_right"], clips_per_class=6,
                              num_frames=12, size=(64, 48))
    recipe = ["features.motion=true", "features.image_size=64", "features.num_frames=8", "train.epochs=4", "model.ensemble=1"]
    result = cli(["train", "--data", data, "--out", tmp_path / "run", "--cache", tmp_path / "cache", "--quiet",
                  "--group-regex", r"_(\d+)\.", *recipe])
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    weights = summary["selection"]["fusion_weights"]
    members = ["appearance", "motion", "appearance_lr", "motion_lr"]  # each stream's BiLSTM and pooled regression
    assert list(weights) == members and sum(weights.values()) == pytest.approx(1.0)
    assert summary["selection"]["candidates"] == 5  # the two streams' representatives in steps of 0.25
    weighed = summary["selection"]["weighed"]  # per stream, its BiLSTM or its regression: the lower log-loss
    loss = summary["selection"]["out_of_fold_log_loss"]
    assert [s for s in weighed] == [min((s, f"{s}_lr"), key=lambda m: (loss[m], m.endswith("_lr"))) for s in ("appearance", "motion")]
    assert all(w == 0 for m, w in weights.items() if m not in weighed)
    # chosen on every training clip, each predicted by models that never saw its recording
    n = summary["train_clips"] + summary["val_clips"]  # every labelled clip, held out by its recording
    assert summary["selection"]["chosen_on"] == f"out-of-fold predictions of {n} labelled clips, 5 folds by group"
    alone = summary["selection"]["out_of_fold_accuracy"]
    assert list(alone) == members
    assert summary["selection"]["out_of_fold_mix"]["accuracy"] >= max(alone[m] for m in weighed)  # never below one alone
    mixed = ", ".join(f"{m} {w:g}" for m, w in weights.items() if w > 0)
    assert f"fusion of {mixed} (chosen on out-of-fold predictions of {n}" in result.out
    assert (tmp_path / "run" / "fusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # how the weights were chosen
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert isinstance(ckpt.model, Fusion) and ckpt.model.weight_of() == weights
    assert ckpt.metrics["selection"]["fusion_weights"] == weights
    model = load_model(tmp_path / "run" / "model.pt", cache_dir=tmp_path / "cache", workers=0)
    clip = sorted((data / "moving_left").glob("*.mp4"))[0]
    (label, p), _ = model.predict(clip, top_k=2)
    assert label in ("moving_left", "moving_right") and 0.5 <= p <= 1.0
    # The timeline and explain compute the motion stream too (tests/test_inference_{timeline,explain}.py check its values).
    r = cli(["predict", tmp_path / "run" / "model.pt", clip, "--timeline", "--json", "--quiet"])
    assert r.code == 0 and json.loads(r.out)["timelines"][0]["windows"][0]["labels"][0] in ("moving_left", "moving_right"), r.err
    r = cli(["explain", tmp_path / "run" / "model.pt", clip, "--out", tmp_path / "x.png"])
    assert r.code == 0 and (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG", r.err


def test_each_member_cv_names_trains_alone_and_is_used_as_it_is(tmp_path, cli):
    """What ``cv`` reports as ``lstm:motion`` or ``lstm:appearance_lr`` is a ``--temporal`` choice of ``train``."""
    from activity.data.synthetic import make_order_dataset
    from activity.inference.recognizer import load_model
    from activity.temporal.checkpoint import load_checkpoint

    data = make_order_dataset(tmp_path / "data", classes=["moving_left", "moving_right"], clips_per_class=6,
                              num_frames=12, size=(64, 48))
    recipe = ["features.motion=true", "features.image_size=64", "features.num_frames=8", "train.epochs=4", "model.ensemble=1"]
    clip = sorted((data / "moving_right").glob("*.mp4"))[0]
    for member in ("motion", "appearance_lr"):
        run = tmp_path / member
        result = cli(["train", "--data", data, "--out", run, "--cache", tmp_path / "cache", "--quiet",
                      "--temporal", f"lstm:{member}", *recipe])
        assert result.code == 0, result.err
        assert f", {member} alone (model.members)" in result.out
        summary = json.loads((run / "train_summary.json").read_text())
        assert summary["selection"]["fusion_weights"] == {member: 1.0}  # no folds: nothing to weigh
        assert not (run / "fusion.png").exists()
        ckpt = load_checkpoint(run / "model.pt")
        assert ckpt.model.names == (member,) and ckpt.config.model.members == [member]
        assert ckpt.model.columns[member] == ((1280, 1280 + SPEC.dim) if member == "motion" else (0, 1280))
        model = load_model(run / "model.pt", cache_dir=tmp_path / "cache", workers=0)
        (label, p), _ = model.predict(clip, top_k=2)
        assert label in ("moving_left", "moving_right") and 0.5 <= p <= 1.0
        r = cli(["evaluate", run / "model.pt", "--data", data, "--out", tmp_path / f"eval_{member}", "--quiet"])
        assert r.code == 0, r.err
        r = cli(["explain", run / "model.pt", clip, "--out", tmp_path / f"{member}.png"])
        assert r.code == 0 and (tmp_path / f"{member}.png").read_bytes()[:4] == b"\x89PNG", r.err
        assert ("by attention" in r.out) == (member == "motion")  # a regression pools uniformly: occlusion, said so
        assert member == "motion" or "a logistic regression on pooled statistics weighs every frame equally" in r.err
    # cv names them with --members, and takes one as --temporal as train does
    r = cli(["cv", "--data", data, "--folds", "2", "--temporal", "lstm", "--temporal", "lstm:motion", "--members", "--json",
             "--cache", tmp_path / "cache", "--quiet", *recipe])
    assert r.code == 0, r.err
    names = [m["name"] for m in json.loads(r.out)["results"]]
    # the fusion's members after it; lstm:motion is the model trained alone (named), not also the fusion's member
    assert names == ["lstm", "lstm:appearance", "lstm:appearance_lr", "lstm:motion_lr", "lstm:motion"], names
    assert all(len(m["per_fold"]) == 2 for m in json.loads(r.out)["results"])
    wrong = cli(["train", "--data", data, "--out", tmp_path / "wrong", "--cache", tmp_path / "cache", "--quiet",
                 "--temporal", "lstm:pose", *recipe])
    assert wrong.code != 0 and len(wrong.err.strip().splitlines()) == 1
    assert "model.members: 'pose' is no member of a fusion over the streams appearance, motion" in wrong.err
    assert not (tmp_path / "wrong" / "model.pt").exists()


def test_fusion_members_keeps_the_named_ones_in_order():
    from activity.temporal.models import build_temporal_model

    cfg = load_config(None, ["model.ensemble=1", "model.projection=4", "model.hidden_size=4", "model.temporal=lstm:motion_lr"])
    assert cfg.model.temporal == "lstm" and cfg.model.members == ["motion_lr"]
    cfg.model.members = ["motion_lr", "appearance"]
    model = build_temporal_model(cfg.model, 16 + SPEC.dim, 3, [("appearance", 16), ("motion", SPEC.dim)]).eval()
    assert model.names == ("appearance", "motion_lr") and model.columns["motion_lr"] == (16, 16 + SPEC.dim)
    cfg.model.pooled_members, cfg.model.members = False, []
    model = build_temporal_model(cfg.model, 16 + SPEC.dim, 3, [("appearance", 16), ("motion", SPEC.dim)])
    assert model.names == ("appearance", "motion")
    with pytest.raises(ConfigError, match="only a fusion's members can be named so"):
        load_config(None, ["model.temporal=mean:motion"])


def test_fusion_mixes_its_members_log_probabilities():
    from activity.temporal.models import build_temporal_model

    cfg = load_config(None, ["model.ensemble=1", "model.projection=4", "model.hidden_size=4"])
    model = build_temporal_model(cfg.model, 16 + SPEC.dim, 3, [("appearance", 16), ("motion", SPEC.dim)]).eval()
    assert model.names == ("appearance", "motion", "appearance_lr", "motion_lr")
    assert model.columns["motion_lr"] == model.columns["motion"] == (16, 16 + SPEC.dim)
    x = torch.randn(2, 5, 16 + SPEC.dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        parts = [model.member(n)(x[..., slice(*model.columns[n])])[0].log_softmax(1) for n in model.names]
        for w in ((0.0, 1.0, 0.0, 0.0), (0.3, 0.2, 0.25, 0.25), (1.0, 0.0, 0.0, 0.0)):
            model.weights.copy_(torch.tensor(w))
            torch.testing.assert_close(model(x)[0], sum(wi * p for wi, p in zip(w, parts)))


def test_a_two_stream_checkpoint_of_the_old_format_loads_as_a_fusion_of_its_two_models(tmp_path):
    """Written before features.streams and pooled members: ``features.motion: true``, an appearance ``weight``."""
    from activity.temporal.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint
    from activity.temporal.models import build_temporal_model

    cfg = load_config(None, ["model.ensemble=1", "model.projection=4", "model.hidden_size=4", "model.pooled_members=false"])
    model = build_temporal_model(cfg.model, 1280 + SPEC.dim, 2, [("appearance", 1280), ("motion", SPEC.dim)]).eval()
    state = {k: v for k, v in model.state_dict().items() if k != "weights"}
    state["weight"] = torch.tensor(0.75)
    config = cfg.to_dict()
    config["features"] = {k: v for k, v in config["features"].items() if k != "streams"} | {"motion": True}
    del config["model"]["pooled_members"]
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "classes": ["a", "b"], "config": config,
                "feature_dim": 1280 + SPEC.dim, "metrics": {}, "state_dict": state}, tmp_path / "old.pt")
    ckpt = load_checkpoint(tmp_path / "old.pt")
    assert ckpt.config.features.streams == ["appearance", "motion"] and not ckpt.config.model.pooled_members
    assert ckpt.model.names == ("appearance", "motion") and ckpt.model.weight_of() == {"appearance": 0.75, "motion": 0.25}
    x = torch.randn(1, 4, 1280 + SPEC.dim)
    model.weights.copy_(torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(ckpt.model(x)[0], model(x)[0])


def test_the_throughput_benchmark_times_extraction_with_each_set_of_streams(clips, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_throughput.py"
    spec = importlib.util.spec_from_file_location("benchmark_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    folder = tmp_path / "clips" / "a"
    folder.mkdir(parents=True)
    for c in clips:
        (folder / c.name).symlink_to(c)
    (tmp_path / "clips" / "b").mkdir()
    (tmp_path / "clips" / "b" / "x.mp4").symlink_to(clips[0])
    from activity.features.pose import pose_available

    assert bench.main(["--stream-cost", str(tmp_path / "clips"), "--workers", "0", "--num-frames", "4",
                       "--json-file", str(tmp_path / "cost.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("$ python scripts/benchmark_throughput.py --stream-cost") and "appearance + motion s" in out
    row = json.loads((tmp_path / "cost.json").read_text())["stream_cost"][str(tmp_path / "clips")]
    sets = ["appearance", "appearance+motion"] + (["appearance+pose", "appearance+motion+pose"] if pose_available() else [])
    assert row["clips"] == 4 and [k for k in row if k != "clips"] == sets
    alone, moving = row["appearance"]["seconds"][0], row["appearance+motion"]["seconds"][0]
    assert row["appearance+motion"]["ratio"] == pytest.approx(moving / alone) and row["appearance"]["ratio"] == 1
