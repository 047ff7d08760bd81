#!/usr/bin/env python3
"""Draw the frames the model sees for a video as a contact sheet.

    python scripts/sample_frames.py VIDEO --out sheet.png [--config FILE] [key=value ...]
                                    [--num-frames N] [--train] [--raw] [--decoder auto]

The frames are those feature extraction takes (``features.num_frames * features.views``
segment centres) and the test-time pick of them (the centre view of each of
``features.num_frames`` segments; ``--train``: a random view per segment, as training
picks them, which with ``views: 1`` are the same frames). Each is drawn as the backbone gets
it: after the config's ``features.enhance`` brightening and ``features.frame_fit``, resized
and centre-cropped to the backbone's input (``features.image_size``) by the package's own
code (``FeatureSpec.crop``), before normalisation. ``--raw`` draws the decoded frames
untouched. The config is the built-in default, or ``--config FILE``, with ``key=value``
overrides as for ``activity``; ``--num-frames`` overrides ``features.num_frames``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from activity.config import load_config
from activity.data.sampling import jittered_segment_indices, segment_indices
from activity.data.decoders import open_video, read_sampled
from activity.errors import ActivityError
from activity.features.spec import FeatureSpec
from activity.inference.visualize import contact_sheet


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", type=Path)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. features.num_frames=8")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults)")
    p.add_argument("--num-frames", type=int, default=None, help="frames to sample (default: the config's features.num_frames)")
    p.add_argument("--train", action="store_true", help="a random view per segment, as in training (default: centres)")
    p.add_argument("--raw", action="store_true", help="the decoded frames, without the model's brightening, fitting and crop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decoder", default=None, help="video decoder (default: the config's features.decoder)")
    return p.parse_intermixed_args(argv)


def feature_spec(args: argparse.Namespace) -> tuple[FeatureSpec, str]:
    """The frame settings of the config and overrides (``--num-frames`` last), and the decoder to use."""
    cfg = load_config(args.config, args.overrides)
    if args.num_frames is not None:
        cfg.set("features.num_frames", args.num_frames, source="--num-frames")
    if args.decoder is not None:
        cfg.set("features.decoder", args.decoder, source="--decoder")
    return FeatureSpec.from_config(cfg.features), cfg.features.decoder


def sample(reader, spec: FeatureSpec, train: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``num_frames`` decoded frames and their indices: of the ``num_frames * views`` that extraction
    caches, the centre view of each segment (``train``: a random one, as training picks them)."""
    dense, idx = read_sampled(reader, spec.length)
    keep = jittered_segment_indices(spec.length, spec.num_frames, 1, rng)[0] if train else segment_indices(spec.length, spec.num_frames)
    return dense[keep], idx[keep]


def model_view(spec: FeatureSpec, frames: np.ndarray) -> np.ndarray:
    """The frames as the backbone gets them before normalisation, uint8 RGB ``(T, S, S, 3)``."""
    return np.ascontiguousarray(spec.crop(frames).permute(0, 2, 3, 1).numpy())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec, decoder = feature_spec(args)
        with open_video(args.video, decoder) as reader:
            frames, idx = sample(reader, spec, args.train, np.random.default_rng(args.seed))
            fps, n, decoder = reader.fps, reader.frame_count, reader.decoder
        shown = frames if args.raw else model_view(spec, frames)
        seen = "decoded frames, raw" if args.raw else (
            f"as the backbone sees them: enhance {spec.enhance}, fit {spec.frame_fit}, {spec.preprocess.crop_size}px")
        captions = [f"#{i}  {i / fps:.2f}s" if fps > 0 else f"#{i}" for i in idx]
        title = (f"{args.video.name}: {n} frames, {fps:.1f} fps, {len(idx)} sampled ({'train' if args.train else 'test'}), "
                 f"{decoder}; {seen}")
        sheet = contact_sheet(shown, captions, title=title)
        import cv2

        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.out), sheet[:, :, ::-1]):
            raise ActivityError(f"{args.out}: cannot write the image")
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(idx)} frames: {', '.join(map(str, idx))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
