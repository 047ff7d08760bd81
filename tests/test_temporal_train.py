"""Training: view selection, and resuming an interrupted run to the same end as an uninterrupted one."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import activity.temporal.train as train_mod
from activity.config import Config
from activity.data.sampling import segment_indices
from activity.errors import ActivityError
from activity.temporal.train import STATE_FILE, fit, select_views

try:
    from utils import slowed_activity
except ImportError:  # tests/ imported as a package
    from tests.utils import slowed_activity

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=48, length=8, dim=16, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, length, dim, generator=g) + y[:, None, None].float()
    return x, y


def _cfg(epochs=6) -> Config:
    cfg = Config()
    cfg.features.streams = ["appearance"]  # one stream: these features are synthetic
    cfg.model.pooled_members = False  # the BiLSTM alone (tests/test_features_motion.py trains a fusion)
    cfg.features.num_frames = 4
    cfg.features.views = 2
    cfg.model.hidden_size = 8
    cfg.model.projection = 8
    cfg.train.epochs = epochs
    cfg.train.batch_size = 8
    cfg.train.patience = 0
    cfg.model.ensemble = 1
    return cfg


def test_select_views_centres_and_random_segments():
    x = torch.arange(8.0).reshape(1, 8, 1)  # dense sequence, 4 segments of 2
    assert select_views(x, 4, random=False).flatten().tolist() == [1.0, 3.0, 5.0, 7.0]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        picked = select_views(x, 4, random=True, generator=g).flatten()
        assert all(2 * i <= v <= 2 * i + 1 for i, v in enumerate(picked.tolist()))



@pytest.mark.parametrize("length, num_frames", [(8, 4), (32, 8), (13, 5), (3, 6)])
def test_select_views_centres_are_segment_indices(length, num_frames):
    x = torch.arange(float(length)).reshape(1, length, 1).expand(3, -1, 2)
    picked = select_views(x, num_frames, random=False)
    assert picked.shape == (3, num_frames, 2)
    expected = segment_indices(length, num_frames).tolist()
    assert all(picked[b, :, d].long().tolist() == expected for b in range(3) for d in range(2))


def test_select_views_random_follows_the_sampling_rule_and_the_generator():
    length, num_frames, b = 40, 8, 300
    x = torch.arange(float(length)).reshape(1, length, 1).expand(b, -1, 1)
    picked = select_views(x, num_frames, random=True, generator=torch.Generator().manual_seed(1))[..., 0].long()
    assert torch.equal(picked // 5, torch.arange(num_frames).expand(b, -1))  # inside its segment, per clip
    assert set((picked % 5).flatten().tolist()) == set(range(5))  # anywhere inside it
    again = select_views(x, num_frames, random=True, generator=torch.Generator().manual_seed(1))[..., 0].long()
    other = select_views(x, num_frames, random=True, generator=torch.Generator().manual_seed(2))[..., 0].long()
    assert torch.equal(picked, again) and not torch.equal(picked, other)
    torch.manual_seed(5)
    a = select_views(x, num_frames, random=True)
    torch.manual_seed(5)
    assert torch.equal(a, select_views(x, num_frames, random=True))  # no generator: torch's global seed decides

def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch):
    x, y = _data()
    xv, yv = _data(12, seed=1)
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_dir.mkdir(), cut_dir.mkdir()
    full = fit(_cfg(), x, y, 3, xv, yv, out_dir=full_dir, progress=False)

    calls = {"n": 0}
    real_epoch = train_mod.train_one_epoch

    def dies_in_epoch_4(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the process dies during epoch 4
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_one_epoch", dies_in_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(), x, y, 3, xv, yv, out_dir=cut_dir, progress=False)
    monkeypatch.setattr(train_mod, "train_one_epoch", real_epoch)
    assert len(list(csv.DictReader(open(cut_dir / "metrics.csv")))) == 3

    resumed = fit(_cfg(), x, y, 3, xv, yv, out_dir=cut_dir, progress=False, resume=True)
    assert resumed.best_epoch == full.best_epoch
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]
    assert strip(resumed.history) == strip(full.history)
    rows = list(csv.DictReader(open(cut_dir / "metrics.csv")))
    assert [r["epoch"] for r in rows] == [str(i) for i in range(1, 7)]


def test_resume_refuses_a_changed_config(tmp_path):
    x, y = _data()
    fit(_cfg(epochs=2), x, y, 3, out_dir=tmp_path, progress=False)
    cfg = _cfg(epochs=2)
    cfg.train.lr = 0.5
    with pytest.raises(ActivityError, match="differ from the interrupted run"):
        fit(cfg, x, y, 3, out_dir=tmp_path, progress=False, resume=True)


def test_resume_refuses_other_clips_of_the_same_number(tmp_path):
    x, y = _data()
    fit(_cfg(epochs=2), x, y, 3, out_dir=tmp_path, progress=False)
    other, _ = _data(seed=1)  # as many clips, other features
    with pytest.raises(ActivityError, match="differ from the interrupted run"):
        fit(_cfg(epochs=2), other, y, 3, out_dir=tmp_path, progress=False, resume=True)
    with pytest.raises(ActivityError, match="differ from the interrupted run"):  # the same clips, relabelled
        fit(_cfg(epochs=2), x, y.roll(1), 3, out_dir=tmp_path, progress=False, resume=True)


def test_resume_without_state_is_a_clear_error(tmp_path):
    x, y = _data()
    with pytest.raises(ActivityError, match="nothing to resume"):
        fit(_cfg(), x, y, 3, out_dir=tmp_path, progress=False, resume=True)


def test_ensemble_members_are_the_single_runs_of_successive_seeds(tmp_path):
    from activity.temporal.models import Ensemble

    x, y = _data()
    xv, yv = _data(12, seed=1)
    cfg = _cfg(epochs=3)
    cfg.model.ensemble = 2
    cfg.train.seed = 5
    ens = fit(cfg, x, y, 3, xv, yv, out_dir=tmp_path, progress=False)
    assert isinstance(ens.model, Ensemble) and len(ens.members) == 2 and len(ens.best_epoch) == 2
    for i, seed in enumerate((5, 6)):
        single_cfg = _cfg(epochs=3)
        single_cfg.train.seed = seed
        single = fit(single_cfg, x, y, 3, xv, yv, progress=False)
        for k, v in single.model.state_dict().items():
            assert torch.equal(v, ens.model.members[i].state_dict()[k]), (i, k)
        assert (tmp_path / f"member{i}" / STATE_FILE).exists()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [(r["member"], r["epoch"]) for r in rows] == [(m, e) for m in ("0", "1") for e in ("1", "2", "3")]
    probs = ens.model(select_views(xv, 4, random=False))[0].softmax(1)
    assert ens.best_val_accuracy == pytest.approx((probs.argmax(1) == yv).float().mean().item())


def test_ensemble_resumes_member_by_member(tmp_path, monkeypatch):
    x, y = _data()
    cfg = _cfg(epochs=3)
    cfg.model.ensemble = 2
    full = fit(cfg, x, y, 3, out_dir=tmp_path / "full", progress=False)
    calls = {"n": 0}
    real_epoch = train_mod.train_one_epoch

    def dies_in_member_1(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # member 0 ran 3 epochs; die in member 1's second
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_one_epoch", dies_in_member_1)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, x, y, 3, out_dir=tmp_path / "cut", progress=False)
    monkeypatch.setattr(train_mod, "train_one_epoch", real_epoch)
    resumed = fit(cfg, x, y, 3, out_dir=tmp_path / "cut", progress=False, resume=True)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    with pytest.raises(ActivityError, match="nothing to resume"):
        fit(cfg, x, y, 3, out_dir=tmp_path / "never", progress=False, resume=True)


def test_killed_cli_run_resumes_to_the_same_model(tmp_path, trained_run, cli):
    train = ["features.image_size=48", "features.num_frames=4", "train.epochs=8", "train.patience=0", "model.hidden_size=8",
             "model.projection=8", "model.ensemble=1", "--val-fraction", "0.5"]
    full = trained_run(classes=["growing", "shrinking"], clips_per_class=4, num_frames=8, size=(48, 48), options=train)
    data, cache = full.data, tmp_path / "cache"
    shutil.copytree(full.cache, cache)  # the extraction is not what is tested; the shared cache stays as it was
    opts = ["--cache", str(cache), "--quiet", *train]

    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (0.4, 1.5):  # should the run end before the signal lands (a loaded machine): again, slower
        shutil.rmtree(run, ignore_errors=True)
        proc = subprocess.Popen([sys.executable, "-c", slowed_activity("activity.temporal.train", "train_one_epoch", delay),
                                 "train", "--data", str(data), "--out", str(run), *opts], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                # as a shell starts it: Ctrl-C not ignored, whatever this test process inherited
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            metrics = run / "appearance" / "metrics.csv"  # the default has two streams: appearance trains first
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 4:  # header + 3 epochs
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=120)
        if code != 0:
            break
    assert code == 130
    assert proc.stderr.read().splitlines()[-1] == f"interrupted; to continue: activity train --resume {run}"
    assert not (run / "model.pt").exists()
    assert (run / "appearance" / STATE_FILE).exists() and not (run / "motion").exists()
    logged = len((run / "appearance" / "metrics.csv").read_text().splitlines()) - 1

    resumed = cli(["train", "--resume", run, "--cache", cache])
    assert resumed.code == 0
    (at,) = [int(m[1]) for line in resumed.err.splitlines() if (m := re.fullmatch(r"train appearance: resuming at epoch (\d+) of 8", line))]
    assert at in (logged, logged + 1)  # after the last epoch whose state was saved (Ctrl-C may cut the save after the row)
    a = torch.load(full.ckpt, weights_only=True)
    b = torch.load(run / "model.pt", weights_only=True)
    assert a["metrics"]["best_epoch"] == b["metrics"]["best_epoch"]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert len(list(csv.DictReader(open(run / "metrics.csv")))) == 2 * 8  # both streams


@pytest.mark.parametrize("extra", [["--data", "x"], ["--config", "c.yaml"], ["train.epochs=2"]])
def test_resume_rejects_other_options(tmp_path, cli, extra):
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "config.yaml").write_text("{}")
    result = cli(["train", "--resume", tmp_path, *extra])
    assert result.code == 2 and result.out == ""  # a usage error
    assert result.err.endswith("activity train: error: --resume continues a run with its own data and config; "
                               "pass no other data or config options\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "run.json"]  # nothing started


@pytest.mark.parametrize("record", ["{}", "not json", '{"val": null}'])
def test_resume_from_a_damaged_run_record_is_one_clear_error(tmp_path, cli, record):
    (tmp_path / "run.json").write_text(record)
    (tmp_path / "config.yaml").write_text("{}")
    result = cli(["train", "--resume", tmp_path, "--quiet"])
    assert result.code == 1 and result.out == ""
    assert result.err.startswith(f"error: {tmp_path / 'run.json'}: not a run record (") and result.err.count("\n") == 1


def test_each_progress_bar_names_its_model_and_ends_saying_why():
    import io

    from activity.temporal.train import _EpochBar, _TrainState

    out = io.StringIO()
    bar = _EpochBar("train appearance 2/5", 0, 60, progress=True, file=out)
    state = _TrainState()
    for epoch in range(1, 5):
        state.epoch, state.best_epoch = epoch, min(epoch, 2)
        bar.update({"train_loss": 0.5, "train_accuracy": 0.5, "val_accuracy": 0.5}, state, has_val=True)
    state.stopped = True
    bar.close(state)
    last = out.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("train appearance 2/5: 100%") and " 4/4 " in last
    assert last.endswith("stopped early at epoch 4 (best 2)]")


def _scene_data(seed=0, groups=10, per_group=6, classes=3, dim=16):
    """Appearance that names the class only within a recording (each films its classes its own way), and a
    weaker motion signal that names it everywhere: what carries over to new scenes is the motion."""
    from activity.features.motion import MotionSpec

    g = torch.Generator().manual_seed(seed)
    m = MotionSpec().dim
    n = groups * per_group
    y = torch.arange(n) % classes
    group = torch.arange(n) // per_group
    look = torch.randn(groups, classes, dim, generator=g) * 3  # how recording r films class c
    appearance = look[group, y][:, None, :] + 0.3 * torch.randn(n, 8, dim, generator=g)
    motion = torch.randn(classes, m, generator=g)[y][:, None, :] + 1.5 * torch.randn(n, 8, m, generator=g)
    return torch.cat([appearance, motion], dim=-1), y, np.array([f"r{int(r)}" for r in group])


def test_fusion_weights_are_chosen_on_out_of_fold_predictions_by_group():
    from activity.temporal.train import choose_fusion_weights, fusion_folds

    x, y, groups = _scene_data()
    cfg = _cfg(epochs=15)
    cfg.features.streams = ["appearance", "motion"]
    cfg.model.pooled_members = True
    cfg.train.fusion_folds = 5
    result = fit(cfg, x, y, 3, progress=False, groups=groups)
    sel = result.selection
    assert sel["chosen_on"] == "out-of-fold predictions of 60 labelled clips, 5 folds by group"
    alone = sel["out_of_fold_accuracy"]
    assert list(alone) == ["appearance", "motion", "appearance_lr", "motion_lr"]
    assert min(alone["motion"], alone["motion_lr"]) > max(alone["appearance"], alone["appearance_lr"]) + 0.2  # new recordings
    w = sel["fusion_weights"]
    assert w["appearance"] + w["appearance_lr"] <= 0.25 and result.model.weight_of() == w
    assert sel["candidates"] == 5 and len(sel["weighed"]) == 2 and sum(w[m] for m in sel["weighed"]) == 1
    assert sel["out_of_fold_mix"]["accuracy"] >= max(alone[m] for m in sel["weighed"])  # never below one alone
    assert set(sel["pooled_C"]) == {"appearance", "motion"}
    stratified = choose_fusion_weights(result.model, cfg, 3, None, None, fusion_folds(cfg, x, y, None, None, None, None),
                                       sel["pooled_C"])  # no groups known
    assert stratified["chosen_on"] == "out-of-fold predictions of 60 labelled clips, 5 folds stratified"


def test_fusion_weights_without_folds_fall_back_to_validation_then_equal_weights():
    from activity.temporal.train import choose_fusion_weights, fusion_folds

    x, y, groups = _scene_data(groups=2, per_group=6)
    cfg = _cfg(epochs=2)
    cfg.features.streams = ["appearance", "motion"]
    result = fit(cfg, x[6:], y[6:], 3, x[:6], y[:6], progress=False, groups=groups[6:], val_groups=groups[:6])
    # one recording for training, one for validation: together two groups, each predicted by a model of the other
    assert result.selection["chosen_on"] == "out-of-fold predictions of 12 labelled clips, 2 folds by group"
    assert result.selection["candidates"] == 5 and result.model.names == ("appearance", "motion")
    unnamed = choose_fusion_weights(result.model, cfg, 3, x[:6], y[:6],  # a --val without groups: one more group
                                    fusion_folds(cfg, x[6:], y[6:], groups[6:], x[:6], y[:6], None), {})
    assert unnamed["chosen_on"] == "out-of-fold predictions of 12 labelled clips, 2 folds by group"
    cfg.train.fusion_folds = 0
    assert fusion_folds(cfg, x, y, groups, None, None, None) is None
    sel = choose_fusion_weights(result.model, cfg, 3, x[:6], y[:6], None, {})
    assert sel["chosen_on"] == "6 validation clips" and "out_of_fold_accuracy" not in sel
    assert set(sel["validation_member_accuracy"]) == {"appearance", "motion"}
    assert choose_fusion_weights(result.model, cfg, 3, None, None, None, {}) == {  # without scores: the BiLSTMs
        "fusion_weights": {"appearance": 0.5, "motion": 0.5}, "chosen_on": "no validation clips: equal weights",
        "candidates": 5}
