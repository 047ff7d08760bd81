#!/usr/bin/env python3
"""Draw the frames the model would see for a video as a contact sheet.

    python scripts/sample_frames.py VIDEO --out sheet.png [--num-frames 16] [--train] [--decoder auto]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from activity.data.video import open_video, read_sampled
from activity.errors import ActivityError
from activity.inference.visualize import contact_sheet
from activity.registry import DECODERS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", type=Path)
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--num-frames", type=int, default=16, help="frames to sample (default 16)")
    p.add_argument("--train", action="store_true", help="random position in each segment, as in training (default: centres)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decoder", choices=DECODERS.names(), default="auto")
    args = p.parse_args(argv)
    try:
        if args.num_frames < 1:
            raise ActivityError(f"--num-frames must be at least 1, got {args.num_frames}")
        with open_video(args.video, args.decoder) as reader:
            frames, idx = read_sampled(reader, args.num_frames, random=args.train, rng=np.random.default_rng(args.seed))
            fps, n, decoder = reader.fps, reader.frame_count, reader.decoder
        captions = [f"#{i}  {i / fps:.2f}s" if fps > 0 else f"#{i}" for i in idx]
        title = f"{args.video.name}: {n} frames, {fps:.1f} fps, {args.num_frames} sampled ({'train' if args.train else 'test'}), {decoder}"
        sheet = contact_sheet(frames, captions, title=title)
        import cv2

        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.out), sheet[:, :, ::-1]):
            raise ActivityError(f"{args.out}: cannot write the image")
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(frames)} frames: {', '.join(map(str, idx))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
