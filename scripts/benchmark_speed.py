#!/usr/bin/env python3
"""Training speed, cold prediction and memory on long videos: issue 4's other targets, in one table.

    python scripts/benchmark_speed.py [--clips 10000] [--repeats 3] [--minutes 60] [--timeline] [--json out.json]

* train: one epoch of one member of the default temporal model (its appearance BiLSTM) over --clips
  generated cached clips of 16 x (1280 + 80) float16 features (and the whole ``fit`` call, statistics included);
* cold predict: ``activity predict CHECKPOINT clip`` in a fresh process with a fresh feature cache,
  from process start to answer, on a 10 s clip (the Kinetics sample in ../shared/data, else a
  generated one); best and median of --repeats runs, after one run that warms the disk cache;
* memory: peak RSS (``/usr/bin/time -v``'s "Maximum resident set size", the largest process) of
  ``activity extract`` and ``activity predict`` on a generated --minutes video, and with
  --timeline of ``activity predict --timeline`` (slow: every frame window through the backbone).

The checkpoint is the default config's model with random weights: what is timed does not depend on
what it learned.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(path: Path, num_classes: int = 5) -> Path:
    from activity.config import Config
    from activity.features.motion import motion_dim
    from activity.temporal.checkpoint import Checkpoint, save_checkpoint
    from activity.temporal.models import build_temporal_model

    cfg = Config()
    dim = 1280 + motion_dim(cfg.features)  # EfficientNet-Lite0's features, then the motion stream's (on by default)
    model = build_temporal_model(cfg.model, dim, num_classes, motion_dim(cfg.features))
    save_checkpoint(path, Checkpoint(model, [f"class_{i}" for i in range(num_classes)], cfg, dim))
    return path


def time_training(clips: int) -> dict:
    import torch

    from activity.config import Config
    from activity.features.motion import motion_dim
    from activity.temporal.train import fit

    cfg = Config()
    cfg.train.epochs, cfg.train.patience = 1, 0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(clips, cfg.features.num_frames, 1280 + motion_dim(cfg.features), generator=g).half()
    y = torch.randint(0, 10, (clips,), generator=g)
    t0 = time.perf_counter()
    result = fit(cfg, x, y, 10, progress=False)
    return {"clips": clips, "epoch_s": result.history[0]["seconds"], "fit_s": time.perf_counter() - t0,
            "torch_threads": torch.get_num_threads()}


def ten_second_clip(work: Path) -> Path:
    shared = Path(os.environ.get("ACTIVITY_SHARED_DATA", REPO.parent / "shared" / "data"))
    real = shared / "kinetics-samples" / "abseiling_k400.mp4"
    if real.is_file():
        return real
    import numpy as np

    from activity.data.synthetic import order_clip, write_video

    frames = np.concatenate([order_clip("growing", num_frames=50, size=(454, 256), seed=k) for k in range(5)])
    return write_video(work / "ten_seconds.mp4", frames, fps=25.0)


def activity_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "activity", *args]


def time_cold_predict(ckpt: Path, clip: Path, repeats: int, work: Path) -> dict:
    times = []
    for i in range(repeats + 1):
        cache = work / f"cache-{i}"
        t0 = time.perf_counter()
        subprocess.run(activity_cmd("predict", str(ckpt), str(clip), "--cache", str(cache), "--top-k", "1"),
                       check=True, capture_output=True)
        if i:  # the first run only warms the disk cache
            times.append(time.perf_counter() - t0)
    return {"clip": str(clip), "best_s": min(times), "median_s": statistics.median(times), "runs": times}


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a command, from /usr/bin/time -v."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{proc.stderr[-2000:]}")
    kb = next(int(line.split(":")[1]) for line in proc.stderr.splitlines() if "Maximum resident set size" in line)
    return kb / 1024, wall


def long_video(path: Path, minutes: float) -> Path:
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_long_video.py"), "--out", str(path), "--minutes", str(minutes),
                    "--fps", "25"], check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=10000, help="generated cached clips for the training epoch")
    p.add_argument("--repeats", type=int, default=3, help="timed cold predictions")
    p.add_argument("--minutes", type=float, default=60.0, help="length of the generated long video (0: skip memory)")
    p.add_argument("--timeline", action="store_true", help="also the peak memory of a timeline over the long video")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    command = f"$ python scripts/benchmark_speed.py {shlex.join(sys.argv[1:] if argv is None else argv)}"
    out: dict = {"command": command, "cpus": os.cpu_count()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = make_checkpoint(work / "model.pt")

        t = out["train"] = time_training(args.clips)
        rows.append([f"train: one epoch of one model, {t['clips']:,} clips of 16x1360", f"{t['epoch_s']:.1f} s",
                     f"whole fit call {t['fit_s']:.1f} s", "< 10 s"])

        clip = ten_second_clip(work)
        c = out["cold_predict"] = time_cold_predict(ckpt, clip, args.repeats, work)
        rows.append([f"cold predict, 10 s clip ({clip.name})", f"{c['best_s']:.2f} s",
                     f"median {c['median_s']:.2f} s of {len(c['runs'])}", "< 3 s"])

        if args.minutes > 0:
            video = long_video(work / "long.mp4", args.minutes)
            label = f"{args.minutes:g}-min video"
            mem = out["memory"] = {}
            jobs = {"extract": activity_cmd("extract", "--data", str(video), "--cache", str(work / "mem-a"), "--quiet"),
                    "predict": activity_cmd("predict", str(ckpt), str(video), "--cache", str(work / "mem-b"), "--quiet")}
            if args.timeline:
                jobs["predict --timeline"] = activity_cmd("predict", str(ckpt), str(video), "--timeline", "--quiet",
                                                          "--results-dir", str(work / "tl"))
            for name, cmd in jobs.items():
                mb, wall = peak_rss(cmd)
                mem[name] = {"peak_rss_mb": mb, "wall_s": wall}
                rows.append([f"peak RSS, {name} on a {label}", f"{mb / 1024:.2f} GB", f"{wall:.0f} s wall", "< 2 GB"])

    from activity.evaluation.reports import format_table

    print(command)
    print(f"{os.cpu_count()} CPUs, {out['train']['torch_threads']} torch threads")
    print(format_table(rows, ["measure", "value", "detail", "target"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
