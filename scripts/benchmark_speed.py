#!/usr/bin/env python3
"""Training speed, cold prediction and memory on long videos: issue 4's other targets, in one table.

    python scripts/benchmark_speed.py [--clips 10000] [--repeats 3] [--minutes 60] [--timeline] [--json-file out.json]

* timeline windows: the default temporal model over 320 windows of cached features, one at a time
  and in the timeline's batches (ms per window);
* train: one epoch of one member of the default temporal model (its appearance BiLSTM) over --clips
  generated cached clips of 16 x (1280 + 80) float16 features (and the whole ``fit`` call, statistics included);
* cold predict: ``activity predict CHECKPOINT clip`` in a fresh process with a fresh feature cache,
  from process start to answer, on a 10 s clip (the Kinetics sample in ../shared/data, else a
  generated one); best and median of --repeats runs, after one run that warms the disk cache;
* memory: peak RSS (``/usr/bin/time -v``'s "Maximum resident set size", the largest process) of
  ``activity extract`` and ``activity predict`` on a generated --minutes video, and with
  --timeline of ``activity predict --timeline`` (slow: every frame window through the backbone);
* with --timeline also throughput: frames/s of the timeline over the generated video (its sampled frames, one
  each ``window / num_frames`` s, encoded with their flow pairs) against ``extract`` of the same video cut into
  2 s clips (16 frames each), both in this process with the default workers and runtime, timed from the
  call to the result (so start-up and model loading are left out of both).

The checkpoint is the default config's model with random weights: what is timed does not depend on
what it learned.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_width(cfg) -> int:
    """Numbers a step of the default features: EfficientNet-Lite0's 1280, then the other streams' (motion by default)."""
    from activity.features.streams import descriptors_of

    return 1280 + sum(d.dim for d in descriptors_of(cfg.features.streams))


def make_checkpoint(path: Path, num_classes: int = 5) -> Path:
    from activity.config import Config
    from activity.features.streams import stream_widths
    from activity.temporal.checkpoint import Checkpoint, save_checkpoint
    from activity.temporal.models import build_temporal_model

    cfg = Config()
    dim = default_width(cfg)
    model = build_temporal_model(cfg.model, dim, num_classes, stream_widths(cfg.features.streams, dim))
    save_checkpoint(path, Checkpoint(model, [f"class_{i}" for i in range(num_classes)], cfg, dim))
    return path


def time_training(clips: int) -> dict:
    import torch

    from activity.config import Config
    from activity.temporal.train import fit

    cfg = Config()
    cfg.train.epochs, cfg.train.patience = 1, 0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(clips, cfg.features.num_frames, default_width(cfg), generator=g).half()
    y = torch.randint(0, 10, (clips,), generator=g)
    t0 = time.perf_counter()
    result = fit(cfg, x, y, 10, progress=False)
    return {"clips": clips, "epoch_s": result.history[0]["seconds"], "fit_s": time.perf_counter() - t0,
            "torch_threads": torch.get_num_threads()}


def time_window_batches(ckpt: Path, windows: int = 320) -> dict:
    """The temporal model over timeline windows ``(1, T, D)`` one at a time, and ``WINDOW_BATCH`` at a time
    as the timeline runs them: ms per window each way (median of 3 passes, in this process)."""
    import torch

    from activity import load_model
    from activity.inference.timeline import WINDOW_BATCH

    model = load_model(ckpt, cache_dir=False)
    x = torch.randn(windows, model.spec.num_frames, model.checkpoint.feature_dim, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, size in (("single_ms", 1), ("batched_ms", WINDOW_BATCH)):
        model.probabilities(x[:size])  # warm-up
        passes = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(0, windows, size):
                model.probabilities(x[i : i + size])
            passes.append((time.perf_counter() - t0) / windows * 1000)
        out[name] = statistics.median(passes)
    return {**out, "batch": WINDOW_BATCH, "windows": windows}


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


def cut_clips(video: Path, out: Path, seconds: float = 2.0) -> list[Path]:
    """``video`` cut into consecutive clips of ``seconds`` (the last, shorter one dropped)."""
    import numpy as np

    from activity.data.synthetic import write_video
    from activity.data.decoders import open_video

    out.mkdir(parents=True, exist_ok=True)
    clips, frames = [], []
    with open_video(video, "opencv", sequential=True) as reader:
        per = max(1, round(seconds * reader.fps))
        for _, f in reader.iter_frames():
            frames.append(f)
            if len(frames) == per:
                clips.append(write_video(out / f"clip_{len(clips):05d}.mp4", np.stack(frames), reader.fps))
                frames = []
    return clips


def time_timeline_vs_extract(ckpt: Path, video: Path, work: Path, runtime: str = "auto") -> dict:
    """Frames/s of ``extract`` (2 s clips of ``video``) and of the timeline over ``video``, in this process."""
    from activity.features.extract import ExtractOptions
    from activity.inference.recognizer import load_model

    clips = cut_clips(video, work / "clips")
    model = load_model(ckpt, ExtractOptions(cache_dir=False, progress=False, runtime=runtime))
    t0 = time.perf_counter()
    result = model.extractor(clips, progress=False)
    extract = {"frames": result.frames, "seconds": time.perf_counter() - t0, "runtime": result.runtime,
               "clips": len(clips)}
    t0 = time.perf_counter()
    tl = model.timeline(video)
    steps = int(tl.duration / (tl.window / model.spec.num_frames) + 1e-6)
    timeline = {"frames": steps, "seconds": time.perf_counter() - t0, "windows": len(tl.windows)}
    for d in (extract, timeline):
        d["fps"] = d["frames"] / d["seconds"]
    return {"extract": extract, "timeline": timeline, "ratio": timeline["fps"] / extract["fps"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=10000, help="generated cached clips for the training epoch")
    p.add_argument("--repeats", type=int, default=3, help="timed cold predictions")
    p.add_argument("--minutes", type=float, default=60.0, help="length of the generated long video (0: skip memory)")
    p.add_argument("--timeline", action="store_true", help="also the peak memory of a timeline over the long video")
    p.add_argument("--json-file", type=Path, default=None, metavar="FILE")
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

        w = out["timeline_windows"] = time_window_batches(ckpt)
        rows.append(["timeline: the temporal model per window, one at a time", f"{w['single_ms']:.2f} ms",
                     f"{w['batched_ms']:.2f} ms in batches of {w['batch']} (as the timeline runs it)", ""])

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
            if args.timeline:
                th = out["throughput"] = time_timeline_vs_extract(ckpt, video, work)
                e, t = th["extract"], th["timeline"]
                rows.append([f"extract, {e['clips']} 2 s clips of the {label}", f"{e['fps']:.1f} frames/s",
                             f"{e['frames']:,} frames in {e['seconds']:.1f} s" + f", {e['runtime']}", ""])
                rows.append([f"timeline over the {label}", f"{t['fps']:.1f} frames/s",
                             f"{t['frames']:,} frames in {t['seconds']:.1f} s; {th['ratio']:.2f}x extract's",
                             ">= 0.8x extract's"])
            for name, cmd in jobs.items():
                mb, wall = peak_rss(cmd)
                mem[name] = {"peak_rss_mb": mb, "wall_s": wall}
                rows.append([f"peak RSS, {name} on a {label}", f"{mb / 1024:.2f} GB", f"{wall:.0f} s wall", "< 2 GB"])

    from activity.evaluation.reports import format_table
    from activity.io import write_json

    print(command)
    print(f"{os.cpu_count()} CPUs, {out['train']['torch_threads']} torch threads")
    print(format_table(rows, ["measure", "value", "detail", "target"]))
    if args.json_file:
        write_json(args.json_file, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
