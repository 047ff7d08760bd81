#!/usr/bin/env python3
"""Write a long generated video whose action changes at known times, and the truth as CSV.

    python scripts/make_long_video.py --minutes 60 --out long.mp4 [--segment 6] [--fps 12] [--size 320x240]

The video cycles through the generated classes (growing, moving_right, shrinking, moving_left), one
class per segment of --segment seconds made of 2-second clips; long.truth.csv lists start, end and
label. Frames are written as they are made, so memory stays flat whatever the length.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from activity.data.synthetic import ORDER_CLASSES, order_clip


def main(argv: list[str] | None = None) -> int:
    import cv2

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--segment", type=float, default=6.0, help="seconds per action (a multiple of 2)")
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--size", default="320x240")
    args = p.parse_args(argv)
    w, h = map(int, args.size.split("x"))
    clip_frames = int(round(2 * args.fps))
    clips_per_segment = max(1, round(args.segment / 2))
    segments = int(args.minutes * 60 / (2 * clips_per_segment))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (w, h))
    truth = args.out.with_suffix(".truth.csv")
    with open(truth, "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["start", "end", "label"])
        for s in range(segments):
            label = ORDER_CLASSES[s % len(ORDER_CLASSES)]
            start = s * clips_per_segment * 2.0
            rows.writerow([f"{start:.1f}", f"{start + clips_per_segment * 2.0:.1f}", label])
            for c in range(clips_per_segment):
                for frame in order_clip(label, num_frames=clip_frames, size=(w, h), seed=s * 31 + c):
                    writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    print(f"wrote {args.out} ({segments * clips_per_segment * 2 / 60:.1f} min, {segments} segments) and {truth}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
