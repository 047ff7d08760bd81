#!/usr/bin/env python3
"""The int8 backbone (features.precision=int8) against float32 ONNX Runtime, in one run: forward rate,
agreement of the features on real clips, and what ImageNet's classifier makes of two photographs.

    python scripts/benchmark_int8.py [--backbone efficientnet_lite0] [--frames-per-clip 4] [--json-file FILE]

* forward rate: frames/s of forward passes on preprocessed frames (batch --batch-size), one thread in
  one process, float32 and int8 alternating (--repeats rounds, median), with the sessions ``extract``
  opens (the models cached under the default cache root: exported and quantised there if absent);
* agreement: cosine similarity of each sampled frame's int8 features to its float32 features (``extract``'s
  preprocessing, ``features.enhance`` as configured), per source in ../shared/data ($ACTIVITY_SHARED_DATA),
  and how often the ImageNet classifier's top-1 on the int8 features equals its top-1 on float32's;
* photographs: scikit-image's ``chelsea`` (a cat) and ``coffee`` (an espresso), top-1 class and probability.
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from activity.config import FeatureConfig
from activity.data.decoders import open_video
from activity.data.sampling import segment_indices
from activity.evaluation.reports import format_table
from activity.features.backbones import create_backbone
from activity.features.cache import default_cache_dir
from activity.features.encoder import FrameEncoder
from activity.features.spec import FeatureSpec
from activity.io import write_json

#: The clips per source the agreement is measured on (every n-th of the source's sorted files).
SOURCES = {"ucf101-samples": ("*.avi", 2), "kinetics-samples": ("*.mp4", 1), "arid6": ("*.mp4", 15),
           "vioperu": ("*.mp4", 20), "basketball": ("*.mp4", 20), "workout": ("*.mp4", 8), "gmdcsa-fall": ("*.mp4", 3)}


def encoders(name: str) -> dict[str, FrameEncoder]:
    """float32 and int8 encoders of ``name``, both on ONNX Runtime with the models ``extract`` caches."""
    backbone = create_backbone(name)
    out = {}
    for precision in ("float32", "int8"):
        enc = FrameEncoder(copy.deepcopy(backbone), FeatureSpec.from_config(
            FeatureConfig(backbone=name, precision=precision, streams=["appearance"])))
        if (why := enc.use_onnxruntime(default_cache_dir())) is not None:
            sys.exit(f"error: {why}")
        out[precision] = enc
    out["head"] = backbone.head  # type: ignore[assignment]
    return out


def forward_rates(encs: dict[str, FrameEncoder], batch: int, repeats: int) -> dict[str, float]:
    """One thread: frames/s of each precision's forward pass, alternating, median of ``repeats`` rounds."""
    torch.set_num_threads(1)
    size = encs["float32"].spec.preprocess.crop_size
    x = torch.randn(batch, 3, size, size)
    times: dict[str, list[float]] = {"float32": [], "int8": []}
    for p in times:
        encs[p].backbone(x)  # warm-up: the session is made here
    for _ in range(repeats):
        for p in times:
            t0 = time.perf_counter()
            encs[p].backbone(x)
            times[p].append(time.perf_counter() - t0)
    return {p: batch / float(np.median(t)) for p, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--frames-per-clip", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json-file", type=Path, default=None, metavar="FILE")
    args = p.parse_args(argv)
    command = "$ python scripts/benchmark_int8.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    encs = encoders(args.backbone)
    head = encs.pop("head")
    rates = forward_rates(encs, args.batch_size, args.repeats)
    torch.set_num_threads(os.cpu_count() or 1)

    shared = Path(os.environ.get("ACTIVITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows, out = [], {"command": command, "forward_fps_one_thread": rates, "sources": {}}
    for source, (pattern, every) in SOURCES.items():
        clips = sorted((shared / source).rglob(pattern))[::every]
        if not clips:
            continue
        cos, same = [], []
        for clip in clips:
            with open_video(clip) as r:
                frames = r.get_frames(segment_indices(r.frame_count, args.frames_per_clip))
            a, b = (encs[q].encode_frames(frames) for q in ("float32", "int8"))
            cos.append(torch.nn.functional.cosine_similarity(a, b, dim=1).numpy())
            with torch.inference_mode():
                same.append((head(a).argmax(1) == head(b).argmax(1)).numpy())
        c, s = np.concatenate(cos), np.concatenate(same)
        out["sources"][source] = {"clips": len(clips), "frames": len(c), "cosine_min": float(c.min()),
                                  "cosine_mean": float(c.mean()), "top1_agreement": float(s.mean())}
        rows.append([source, str(len(clips)), str(len(c)), f"{c.min():.4f}", f"{np.percentile(c, 5):.4f}", f"{c.mean():.4f}",
                     f"{100 * s.mean():.0f}%"])
    import skimage.data as skimage_data

    photos = []
    for name in ("chelsea", "coffee"):
        image = getattr(skimage_data, name)()[None]
        for q in ("float32", "int8"):
            with torch.inference_mode():
                prob = head(encs[q].encode_frames(image))[0].softmax(0)
            photos.append([name, q, str(int(prob.argmax())), f"{float(prob.max()):.3f}"])
    out["photos"] = photos

    print(command)
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {args.backbone}, batch {args.batch_size}")
    print(f"forward, one thread, frames/s (median of {args.repeats}, alternating): float32 {rates['float32']:.1f}, "
          f"int8 {rates['int8']:.1f}: {rates['int8'] / rates['float32']:.2f}x")
    print(format_table(rows, ["source", "clips", "frames", "cosine min", "cosine p5", "cosine mean", "same ImageNet top-1"]))
    print(format_table(photos, ["photo", "precision", "ImageNet top-1", "probability"]))
    if args.json_file:
        write_json(args.json_file, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
