#!/usr/bin/env python3
"""Feature-extraction throughput: the backbone's own rate, the real pipeline, a naive loop, decoding alone.

    python scripts/benchmark_throughput.py [--backbone efficientnet_lite0] [--batch-size 32] [--json out.json]

Measured on the same clips, backbone and batch size, in one run:

* backbone_fps: forward passes on frames already decoded and preprocessed (the limit);
* pipeline_fps: ``activity extract`` end to end (fresh cache), frames per second;
* naive_fps: the popular CNN-LSTM repos' loop: OpenCV reads every frame in order,
  preprocessing frame by frame, one clip per forward pass;
* decode_fps: decoding only the sampled frames, per backend.

Clips: the real ones in ../shared/data/ucf101-samples (or $ACTIVITY_SHARED_DATA), when present,
and generated long videos (--long-seconds each).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from activity.backbones import Backbone, create_backbone, get_spec
from activity.config import FeatureConfig
from activity.errors import ActivityError
from activity.features import FeatureCache, FeatureSpec, extract
from activity.sampling import segment_indices
from activity.video import open_video


def backbone_or_random(name: str) -> Backbone:
    """The backbone with its weights, or (for speed only) randomly initialised when they cannot be had offline."""
    try:
        return create_backbone(name)
    except ActivityError:
        import torchvision.models as tvm

        spec = get_spec(name)
        head = "fc" if name.startswith("resnet") else "classifier"
        print(f"note: {name} weights unavailable offline; timing a randomly initialised copy (same speed)", file=sys.stderr)
        return Backbone(spec, getattr(tvm, name)(weights=None), head)


def clips(args: argparse.Namespace, workdir: Path) -> list[Path]:
    from activity.synthetic import order_clip, write_video

    found: list[Path] = []
    shared = Path(os.environ.get("ACTIVITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if (shared / "ucf101-samples").is_dir():
        found += sorted((shared / "ucf101-samples").rglob("*.avi"))
    for i in range(args.long_videos):
        frames = np.concatenate([order_clip("moving_right", num_frames=50, size=(320, 240), seed=i * 100 + k)
                                 for k in range(int(args.long_seconds / 2))])
        found.append(write_video(workdir / f"long_{i}.mp4", frames, fps=25.0))
    return found


def time_backbone(backbone: Backbone, spec: FeatureSpec, batch: int, repeats: int = 5) -> float:
    x = torch.randn(batch, 3, spec.preprocess.crop_size, spec.preprocess.crop_size)
    with torch.inference_mode():
        backbone(x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            backbone(x)
    return batch * repeats / (time.perf_counter() - t0)


def time_pipeline(paths: list[Path], spec: FeatureSpec, backbone: Backbone, batch: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        result = extract(paths, spec, FeatureCache(cache, spec), lambda: backbone, batch_size=batch, workers=workers, progress=False)
        return result.frames / (time.perf_counter() - t0)


def time_naive(paths: list[Path], spec: FeatureSpec, backbone: Backbone) -> float:
    import cv2

    frames_done = 0
    t0 = time.perf_counter()
    for p in paths:
        cap = cv2.VideoCapture(str(p))
        frames = []
        while True:  # every frame, in order
            ok, f = cap.read()
            if not ok:
                break
            frames.append(spec.preprocess(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)[None])[0])  # frame by frame
        cap.release()
        idx = segment_indices(len(frames), spec.num_frames)
        with torch.inference_mode():
            backbone(torch.stack([frames[i] for i in idx]))  # one clip per forward pass
        frames_done += len(idx)
    return frames_done / (time.perf_counter() - t0)


def time_decode(paths: list[Path], spec: FeatureSpec, backend: str, passes: int = 3) -> float | None:
    """Open each clip and decode its sampled frames; one warm-up pass (file cache), then ``passes`` timed ones."""
    def one_pass() -> int:
        n = 0
        for p in paths:
            with open_video(p, backend) as r:  # type: ignore[arg-type]
                n += len(r.get_frames(segment_indices(r.num_frames, spec.length)))
        return n

    try:
        one_pass()
        t0 = time.perf_counter()
        n = sum(one_pass() for _ in range(passes))
    except (ActivityError, ImportError):
        return None
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", action="append", default=None, help="repeatable (default: efficientnet_lite0 and mobilenet_v3_large)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-frames", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--long-videos", type=int, default=2)
    p.add_argument("--long-seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--decode-only", action="store_true", help="only the decode-only rates (no backbone)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.backbone or ["efficientnet_lite0", "mobilenet_v3_large"]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as work:
        paths = clips(args, Path(work))
        if args.decode_only:
            spec = FeatureSpec.from_config(FeatureConfig(num_frames=args.num_frames))
            rates = {b: time_decode(paths, spec, b) for b in ("auto", "decord", "opencv")}
            print(f"$ python scripts/benchmark_throughput.py {shlex.join(sys.argv[1:])}")
            print(f"{len(paths)} clips, {args.num_frames} sampled frames each: decode-only frames/s: "
                  + ", ".join(f"{b} {v:.0f}" if v else f"{b} n/a" for b, v in rates.items()))
            if args.json:
                args.json.write_text(json.dumps({"clips": [str(x) for x in paths], "decode_fps": rates}, indent=2) + "\n")
            return 0
        for name in names:
            spec = FeatureSpec.from_config(FeatureConfig(backbone=name, num_frames=args.num_frames))
            backbone = backbone_or_random(name)
            r = {
                "backbone_fps": time_backbone(backbone, spec, args.batch_size),
                "pipeline_fps": time_pipeline(paths, spec, backbone, args.batch_size, args.workers),
                "naive_fps": time_naive(paths, spec, backbone),
                "decode_fps": {b: time_decode(paths, spec, b) for b in ("decord", "opencv")},
            }
            results[name] = r
            dec = ", ".join(f"{b} {v:.0f}" if v else f"{b} n/a" for b, v in r["decode_fps"].items())
            rows.append([name, f"{r['backbone_fps']:.1f}", f"{r['pipeline_fps']:.1f}", f"{r['pipeline_fps'] / r['backbone_fps']:.2f}",
                         f"{r['naive_fps']:.1f}", f"{r['pipeline_fps'] / r['naive_fps']:.1f}", dec])
    from activity.evaluate import format_table

    print(f"$ python scripts/benchmark_throughput.py {shlex.join(sys.argv[1:])}")
    print(f"{len(paths)} clips, {args.num_frames} frames each, batch {args.batch_size}, {torch.get_num_threads()} torch threads, "
          f"{args.workers} decode worker(s), {os.cpu_count()} CPUs")
    print(format_table(rows, ["backbone", "backbone fps", "pipeline fps", "÷ backbone", "naive fps", "× naive", "decode fps (sampled frames)"]))
    if args.json:
        args.json.write_text(json.dumps({"clips": [str(x) for x in paths], "batch_size": args.batch_size, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
