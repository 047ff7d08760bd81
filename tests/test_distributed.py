"""``torchrun --nproc-per-node 2 -m activity ...`` on CPUs (gloo) gives what one process gives.

One collection of generated clips goes through the pipeline twice, once in
this process and once under torchrun with two processes: extraction (killed
when one rank dies, then run again: the cache must end up holding the
single-process entries, up to float16 rounding), training on the temporal-order task (full-batch
steps without dropout, so two processes with averaged gradients take the
same steps as one), a resumed training run, evaluation (the same report
files) and cross-validation. The helpers of :mod:`activity.distributed` that
need no process group are tested directly.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from activity.cli import main
from activity.config import FeatureConfig
from activity.data.collection import load_dataset
from activity.data.synthetic import make_order_dataset
from activity.distributed import DistInfo, ParallelTraining, launched_world_size
from activity.features.cache import FeatureCache
from activity.features.spec import FeatureSpec

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["features.image_size=64", "features.num_frames=8"]
SPEC = FeatureSpec.from_config(FeatureConfig(image_size=64, num_frames=8))
# Full-batch steps and no dropout: the mean of two ranks' half-batch gradients is the full-batch gradient.
TRAIN = [*FEATURES, "train.epochs=30", "train.batch_size=1000", "train.lr=3e-3", "train.patience=0",
         "model.dropout=0", "model.input_dropout=0", "model.ensemble=1", "--group-regex", r"_(\d+)\.", "--val-fraction", "0.25"]

# Rank 1 dies for good right after writing its 10th video's cache entries; torchrun then stops rank 0 wherever it is.
_RANK_1_DIES = """
import os, sys
import activity.features.extract as f
real, written = f.FeatureCache.put_parts, []
def put_parts(self, video, parts):
    real(self, video, parts)
    written.append(video)
    if os.environ["RANK"] == "1" and len(written) == 10:
        os._exit(3)
f.FeatureCache.put_parts = put_parts
from activity.cli import main
sys.exit(main(sys.argv[1:]))
"""


def torchrun(*args: object, script: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc-per-node 2 -m activity ARGS`` (or SCRIPT ARGS), 1 thread each."""
    target = [str(script)] if script else ["-m", "activity"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *target, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def entries(cache: Path) -> dict[str, np.ndarray | bytes]:
    """Cache files by path relative to the cache root (feature files loaded; a killed write's temporary file
    and the backbone's ONNX export, which is no feature entry, left out)."""
    return {str(p.relative_to(cache)): (np.load(p) if p.suffix == ".npy" else p.read_bytes())
            for p in sorted(cache.rglob("*")) if p.is_file() and not p.name.startswith(".tmp-") and p.suffix != ".onnx"}


def assert_same_cache(a: Path, b: Path) -> None:
    """The same files; features equal up to float16 rounding.

    The backbone runs on frames of several clips batched together, and which
    clips share a batch (and so the convolution's arithmetic) depends on the
    shard and on what was already cached: a value can land one float16 step
    (2**-10 relative) away. A wrong clip or frame is off by far more.
    """
    ea, eb = entries(a), entries(b)
    assert sorted(ea) == sorted(eb)
    for name, x in ea.items():
        if isinstance(x, np.ndarray):
            np.testing.assert_allclose(x.astype(np.float32), eb[name].astype(np.float32), rtol=2**-9, atol=1e-5, err_msg=name)
        else:
            assert x == eb[name], name


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    """The model after the last epoch (``model.pt`` holds the best epoch's, which a rounding tie can move)."""
    return {f"{stream}.{k}": v for stream in ("appearance", "motion")  # the default recipe: one model per stream
            for k, v in torch.load(run / stream / "train_state.pt", weights_only=True)["model"].items()}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_torch_thread, cli):
    """Clips (each collection with an unreadable file), and the training clips extracted by one process and by two.

    The two-process extraction is killed when rank 1 dies, then run again.
    """
    root = tmp_path_factory.mktemp("dist")
    train = make_order_dataset(root / "train", clips_per_class=16, num_frames=12, size=(64, 48), ext=".avi")
    (train / "growing" / "growing_900.avi").write_bytes(b"not a video")
    test = make_order_dataset(root / "test", clips_per_class=8, num_frames=12, size=(64, 48), seed=1, ext=".avi")
    (test / "shrinking" / "shrinking_900.avi").write_bytes(b"not a video")
    (test / "jumping").mkdir()
    shutil.copy(test / "growing" / "growing_000.avi", test / "jumping" / "jumping_000.avi")  # not a trained class

    single = cli(["extract", "--data", train, "--cache", root / "c1", "--quiet", *FEATURES])
    script = root / "rank_1_dies.py"
    script.write_text(_RANK_1_DIES)
    died = torchrun("extract", "--data", train, "--cache", root / "c2", "--quiet", *FEATURES, script=script)
    left = {p: p.stat().st_mtime_ns for p in (root / "c2").rglob("*.npy") if not p.name.startswith(".tmp-")}
    rerun = torchrun("extract", "--data", train, "--cache", root / "c2", "--quiet", *FEATURES)
    return {"root": root, "train": train, "test": test, "single": single, "died": died, "left": left, "rerun": rerun}


@pytest.fixture(scope="module")
def trained(ws, cli):
    """The same training run in one process (cache c1) and in two (cache c2)."""
    root = ws["root"]
    single = cli(["train", "--data", ws["train"], "--out", root / "run1", "--cache", root / "c1", "--quiet", *TRAIN])
    dist = torchrun("train", "--data", ws["train"], "--out", root / "run2", "--cache", root / "c2", "--quiet", *TRAIN)
    assert single[0] == 0, single[2]
    assert dist.returncode == 0, dist.stderr
    return {"run1": root / "run1", "run2": root / "run2", "single": single, "dist": dist}


# ---------------------------------------------------------------- extract


def test_distributed_cache_equals_the_single_process_cache(ws):
    code, _, err = ws["single"]
    assert code == 0, err
    rerun = ws["rerun"]
    assert rerun.returncode == 0, rerun.stderr
    assert_same_cache(ws["root"] / "c1", ws["root"] / "c2")
    assert len(entries(ws["root"] / "c2")) == 2 * (64 + 1)  # per stream one file per readable video, and spec.json
    # Both ranks ran the backbone with onnxruntime, as the single process did: they decided for the whole job.
    assert [p.name for p in (ws["root"] / "c1" / "onnx").glob("*.onnx")] == [p.name for p in (ws["root"] / "c2" / "onnx").glob("*.onnx")]
    assert len(list((ws["root"] / "c2" / "onnx").glob("*.onnx"))) == 1
    # One summary over both ranks, and the unreadable file reported once, by the rank that found it.
    assert rerun.stdout.count("videos with features") == 1
    skips = [l for l in rerun.stderr.splitlines() if l.startswith("skipped ")]
    assert len(skips) == 1 and "growing_900.avi: not a readable video" in skips[0]
    assert rerun.stderr.count("64 processed, 1 skipped (1 not a readable video)") == 1


def test_rerun_after_a_rank_died_extracts_only_what_was_missing(ws):
    assert ws["died"].returncode != 0
    left = ws["left"]
    cache = FeatureCache(ws["root"] / "c2", SPEC)
    mine = {cache.entry(p) for p in DistInfo(rank=1, world_size=2).shard(load_dataset(ws["train"]).paths)}
    assert len(mine & set(left)) == 10  # what rank 1 wrote before it died is whole and kept
    whole = [p for p in left if p.parent == cache.folders[-1]]  # a video's motion entry is written after its appearance
    assert 10 <= len(whole) < 64
    assert f"64 videos with features: {64 - len(whole)} extracted by 2 processes, {len(whole)} from the cache" in ws["rerun"].stdout
    assert all(p.stat().st_mtime_ns == t for p, t in left.items())  # finished entries were not written again


# ---------------------------------------------------------------- train


def test_distributed_training_takes_the_single_process_steps(trained):
    run1, run2 = trained["run1"], trained["run2"]
    assert sorted(p.name for p in run1.iterdir()) == sorted(p.name for p in run2.iterdir())  # rank 1 wrote nothing extra
    assert {"model.pt", "metrics.csv", "appearance", "motion", "config.yaml"} <= {p.name for p in run2.iterdir()}
    assert (run2 / "motion" / "train_state.pt").exists()
    rows1, rows2 = (list(csv.DictReader(open(r / "metrics.csv"))) for r in (run1, run2))
    assert len(rows1) == len(rows2) == 2 * 30  # 30 epochs per stream
    for a, b in zip(rows1, rows2):
        assert (a["epoch"], a["lr"]) == (b["epoch"], b["lr"])  # the same schedule
        assert abs(float(a["val_accuracy"]) - float(b["val_accuracy"])) <= 1 / 16  # at most one of 16 clips apart
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-3
        assert abs(float(a["val_loss"]) - float(b["val_loss"])) < 1e-3
    summary = torch.load(run2 / "model.pt", weights_only=True)["metrics"]
    assert (summary["train_clips"], summary["val_clips"]) == (48, 16)
    w1, w2 = last_weights(run1), last_weights(run2)
    for k, v in w1.items():
        # Rounding only; without averaged gradients (each rank fitting its half) the weights differ by about 0.05.
        assert (v.float() - w2[k].float()).abs().max() < 5e-3, k
    err = trained["dist"].stderr
    assert err.count("training lstm on 48 clips, 4 classes in 2 processes; validating on 16: ") == 1
    assert err.count("\nskipped ") + err.startswith("skipped ") == 1 and err.count("64 processed, 1 skipped") == 1
    assert trained["dist"].stdout.count("saved ") == 1


def test_distributed_model_reaches_the_single_process_accuracy(ws, trained, tmp_path, cli):
    top1 = {}
    for run in ("run1", "run2"):
        code, _, err = cli(["evaluate", trained[run] / "model.pt", "--data", ws["test"], "--out", tmp_path / run,
                                  "--cache", ws["root"] / "c1", "--quiet"])
        assert code == 0, err
        top1[run] = json.loads((tmp_path / run / "metrics.json").read_text())["top1"]
    assert top1["run2"] == pytest.approx(top1["run1"], abs=2 / 32)  # at most two of 32 held-out clips apart
    assert min(top1.values()) >= 0.75, top1  # frame order learnt: a model blind to it cannot pass 0.5


def test_interrupted_run_resumes_under_torchrun(ws, trained, tmp_path, monkeypatch, cli):
    import activity.temporal.train

    real = activity.temporal.train._save_state

    def save_then_stop(path, state, *args):
        real(path, state, *args)
        if state.epoch == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(activity.temporal.train, "_save_state", save_then_stop)
    run = tmp_path / "run"
    cache = ws["root"] / "c1"
    assert cli(["train", "--data", ws["train"], "--out", run, "--cache", cache, "--quiet", *TRAIN])[0] == 130
    assert not (run / "model.pt").exists()

    resumed = torchrun("train", "--resume", run, "--cache", cache, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    full = list(csv.DictReader(open(trained["run1"] / "metrics.csv")))
    assert len(rows) == 2 * 30  # stopped in the appearance stream's 20th epoch; the motion stream trains after the resumption
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    assert [strip(r) for r in rows[:20]] == [strip(r) for r in full[:20]]  # the interrupted part is kept as it was
    for a, b in zip(rows[20:], full[20:]):  # the rest trained by two processes, from where one left off
        assert a["lr"] == b["lr"] and abs(float(a["val_accuracy"]) - float(b["val_accuracy"])) <= 1 / 16
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-3
    assert (run / "model.pt").exists()
    w1, w2 = last_weights(trained["run1"]), last_weights(run)
    for k, v in w1.items():
        assert (v.float() - w2[k].float()).abs().max() < 5e-3, k


# ---------------------------------------------------------------- evaluate


def test_distributed_evaluation_writes_the_single_process_report(ws, trained, tmp_path, cli):
    model = trained["run1"] / "model.pt"
    # One cache for both, so that the features are the same bits (see assert_same_cache) and the
    # comparison is of what evaluate does with them; the unreadable clip is decoded (and skipped) by both.
    cache = tmp_path / "cache"
    code, out, err = cli(["evaluate", model, "--data", ws["test"], "--out", tmp_path / "one", "--cache", cache, "--quiet"])
    assert code == 0, err
    proc = torchrun("evaluate", model, "--data", ws["test"], "--out", tmp_path / "two", "--cache", cache, "--quiet")
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in ("metrics.json", "predictions.csv", "per_class.csv", "confusion_matrix.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["num_videos"] == 32 and metrics["skipped"] == 2
    assert proc.stdout == out.replace(str(tmp_path / "one"), str(tmp_path / "two"))  # one table, from rank 0
    assert sorted(l for l in proc.stderr.splitlines() if l.startswith("skipped ")) == sorted(
        l for l in err.splitlines() if l.startswith("skipped "))  # each bad file reported once


# ---------------------------------------------------------------- commands that do not share work


def test_cv_shares_the_extraction_and_cross_validates_on_rank_0(ws, tmp_path):
    proc = torchrun("cv", "--data", ws["train"], "--cache", ws["root"] / "c2", "--quiet", "--folds", "2", "--temporal", "mean",
                    "--results-dir", tmp_path, "--group-regex", r"_(\d+)\.", *FEATURES, "train.epochs=2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("per-fold top-1 %") == 1 and proc.stdout.count("\nmean ") == 1  # one table, from rank 0
    assert json.loads((tmp_path / "cv.json").read_text())["clips"] == 64
    assert proc.stderr.count("64 processed, 1 skipped") == 1


def test_single_process_commands_run_on_rank_0_only(ws, trained, monkeypatch, capsys):
    args = ["predict", str(trained["run1"] / "model.pt"), str(ws["test"] / "growing" / "growing_000.avi"), "--json",
            "--cache", str(ws["root"] / "c1"), "--quiet"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(args) == 0
    assert capsys.readouterr() == ("", "")  # rank 1 leaves it to rank 0
    monkeypatch.setenv("RANK", "0")
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["predictions"][0]["path"].endswith("growing_000.avi")
    assert "runs in one process: rank 0 does it" in err
    assert main(["demo", "--out", str(ws["root"] / "demo")]) == 1
    assert "error: demo runs as one process" in capsys.readouterr().err


# ---------------------------------------------------------------- helpers, no process group


def test_shards_are_a_deterministic_partition():
    items = [Path(f"v{i:02d}.mp4") for i in range(11)] + [Path("v03.mp4")]
    shards = [DistInfo(rank=r, world_size=3).shard(items) for r in range(3)]
    assert sorted(p for s in shards for p in s) == sorted(set(items))  # every video once
    assert [len(s) for s in shards] == [4, 4, 3]
    assert DistInfo(rank=1, world_size=3).shard(items[::-1]) == shards[1]  # independent of the input order
    assert DistInfo().shard(items) == items  # one process: unchanged


def test_epoch_orders_split_each_epoch_among_the_ranks():
    ranks = [ParallelTraining(DistInfo(rank=r, world_size=2), seed=0) for r in range(2)]
    for epoch in (1, 2):
        a, b = (p.epoch_order(10, epoch) for p in ranks)
        assert len(a) == len(b) == ranks[0].num_samples(10) == 5
        assert sorted(torch.cat([a, b]).tolist()) == list(range(10))
    assert not torch.equal(ranks[0].epoch_order(10, 1), ranks[0].epoch_order(10, 2))  # reshuffled every epoch
    assert torch.equal(ranks[0].epoch_order(10, 1), ranks[0].epoch_order(10, 1))  # the same on a resumed run
    assert ranks[0].batch_size(32) == 16
    single = ParallelTraining()
    assert single.epoch_order(10, 1) is None and single.batch_size(32) == 32 and single.mean(0.5) == (0.5,)


def test_no_torchrun_means_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched_world_size() == 1
    from activity.distributed import init_from_env

    info = init_from_env("cpu")
    assert (info.enabled, info.is_main, info.backend) == (False, True, None)
    assert info.all_gather("x") == ["x"] and info.gather("x") == ["x"] and info.sum(1, 2) == (1.0, 2.0)
