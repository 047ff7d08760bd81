#!/usr/bin/env python3
"""Decoding the sampled frames: read forward, or seek to the keyframe before each sample? Per container/codec.

    python scripts/benchmark_decode.py [--data ../shared/data] [--max-clips-per-group 20] [--frames 16]
        [--passes 2] [--long-videos 4 --long-seconds 60 --long-gop 0 --long-gop 250] [--json-file out.json]

Clips are grouped by container and codec (``avi/mpeg4``, ``mp4/h264``, ``mp4/hevc``; the JSON keeps each
clip's folder), plus ``long``: generated 320x240 25 fps MPEG-4 videos as ``benchmark_throughput.py`` makes
them (a keyframe every 12 frames), and as many per other ``--long-gop`` (x264's default is 250). Each
clip's ``--frames`` indices (``segment_indices``) are decoded on ONE thread, opening included, by:

* ``opencv-forward``: ``open_video(path, "opencv")``, reading forward, grabbing skipped frames;
* ``opencv-seek``: OpenCV with ``cap.set(CAP_PROP_POS_FRAMES, i)`` before each sample;
* ``decord``: ``open_video(path, "decord")`` (``get_batch``, which seeks);
* ``auto``: ``open_video(path, "auto")``, what extraction uses (OpenCV forward, or decord where it seeks less);
* ``pyav-seek``: where PyAV (``av``) imports (not a dependency): ``container.seek(pts, backward=True,
  any_frame=False)`` onto the keyframe before a sample wherever one lies past the current position,
  then decoding forward to it: it decodes exactly the "ideal seek" count below.

One warm-up pass (its frames compared with ``opencv-forward``'s), then ``--passes`` timed passes; a
clip's time is its fastest pass (the machine may be shared). Rates: sampled frames per second over the
clips every method decoded. Per group also: mean frame count, mean keyframe interval ("GOP": frames /
keyframes, from decord's ``get_key_indices``), mean spacing between samples, and decoded frames per
sampled frame reading forward (last index + 1) and seeking ideally (from the keyframe at or before each
target, or on from the current position when no keyframe lies between); then per group the cheapest
method and what two rules would pick.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2  # before decord (see activity.data.decoders.decord._import_decord)
import numpy as np

from activity.data.decoders import open_video, set_decode_threads
from activity.data.sampling import segment_indices
from activity.evaluation.reports import format_table
from activity.io import write_json

CODECS = {**dict.fromkeys(("fmp4", "xvid", "divx", "dx50", "mp4v"), "mpeg4"), **dict.fromkeys(("avc1", "x264"), "h264"),
          **dict.fromkeys(("hvc1", "hev1", "h265"), "hevc")}  # FOURCC -> codec, where they differ
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}
Method = Callable[[Path, np.ndarray, list[int]], np.ndarray]  # (path, indices, keyframe indices) -> RGB frames


def library(decoder: str) -> Method:
    """``open_video(path, decoder)`` then ``get_frames``: what a loader does today."""
    def read(path: Path, idx: np.ndarray, keys: list[int]) -> np.ndarray:
        with open_video(path, decoder) as r:
            return r.get_frames(idx)
    return read


def opencv_seek(path: Path, idx: np.ndarray, keys: list[int]) -> np.ndarray:
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
    got: dict[int, np.ndarray] = {}
    for i in np.unique(idx):
        if not (cap.set(cv2.CAP_PROP_POS_FRAMES, int(i)) and (frame := cap.read()[1]) is not None):
            raise RuntimeError(f"OpenCV read nothing at frame {i} after seeking")
        got[int(i)] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    cap.release()
    return np.stack([got[int(i)] for i in idx])


def pyav_seek(path: Path, idx: np.ndarray, keys: list[int]) -> np.ndarray:
    """Where a keyframe lies between the current position and the target: ``container.seek`` to the target's
    timestamp (``backward=True, any_frame=False``, so onto that keyframe); then decode on to the target.
    Frames are counted from that keyframe: AVI's packed B-frames get wrong timestamps."""
    import av

    if not keys:
        raise RuntimeError("no keyframe index for this file")
    got: dict[int, np.ndarray] = {}
    k = np.asarray(keys)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        tick = 1.0 / float(stream.average_rate or stream.guessed_rate) / float(stream.time_base)
        frames, pos = container.decode(stream), 0  # pos: index of the next frame out of ``frames``
        for i in np.unique(idx):
            key = int(k[k <= i].max(initial=0))
            if key > pos:
                container.seek((stream.start_time or 0) + int(round(i * tick)), stream=stream, backward=True)
                frames = container.decode(stream)
                frame = next(f for f in frames if f.key_frame)  # leading frames of an open GOP come first
                pos = key + 1
            else:
                frame = next(frames)
                pos += 1
            while pos <= i:
                frame, pos = next(frames), pos + 1
            got[int(i)] = frame.to_ndarray(format="rgb24")
    return np.stack([got[int(i)] for i in idx])


def methods() -> dict[str, Method]:
    found = {"opencv-forward": library("opencv"), "opencv-seek": opencv_seek, "decord": library("decord"),
             "auto": library("auto")}  # what extraction uses: one of the above, by activity.data.decoders.auto's rule
    return {**found, "pyav-seek": pyav_seek} if importlib.util.find_spec("av") else found


def group_of(path: Path) -> tuple[str, int]:
    """``container/codec`` (codec from OpenCV's FOURCC) and the frame count OpenCV reports."""
    cap = cv2.VideoCapture(str(path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin1").strip("\0 ").lower()
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return f"{path.suffix.lower().lstrip('.')}/{CODECS.get(fourcc, fourcc or '?')}", count


def probe(path: Path, frames: int, group: str, count: int) -> dict[str, Any]:
    """The clip's record: keyframe indices (decord's; None where it cannot say), frame count (the
    smaller of OpenCV's and decord's) and the sampled indices every method decodes."""
    keys = None
    try:
        import decord

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        count, keys = min(count, len(vr)), [int(k) for k in vr.get_key_indices()]
    except Exception:  # decord missing or cannot open it: no keyframe statistics, and no pyav-seek
        pass
    return {"path": str(path), "group": group, "frames": count, "keys": keys, "indices": segment_indices(count, frames)}


def decode_cost(indices: np.ndarray, keys: list[int]) -> tuple[int, int]:
    """Frames decoded reading forward, and seeking ideally (jumping only when a keyframe lies between)."""
    forward = int(indices.max()) + 1
    k, pos, seek = np.asarray(keys), 0, 0  # pos: the next frame the decoder would output
    for t in np.unique(indices):
        seek += int(t) - max(int(k[k <= t].max(initial=0)), pos) + 1
        pos = int(t) + 1
    return forward, seek


def find_clips(data: Path, per_group: int, frames: int) -> list[dict[str, Any]]:
    """Real clips under ``data``: at most ``per_group`` per group, taken in turn from each top-level
    folder (each folder's clips in a fixed shuffled order)."""
    folders: dict[str, list[Path]] = {}
    for p in sorted(data.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            folders.setdefault(p.relative_to(data).parts[0], []).append(p)
    for ps in folders.values():
        random.Random(0).shuffle(ps)
    chosen: dict[str, list[dict[str, Any]]] = {}
    for rnd in range(max((len(v) for v in folders.values()), default=0)):  # round robin over folders
        for f, ps in folders.items():
            if rnd < len(ps):
                group, count = group_of(ps[rnd])
                if count > 0 and len(chosen.setdefault(group, [])) < per_group:
                    chosen[group].append({**probe(ps[rnd], frames, group, count), "folder": f})
    return [c for g in chosen.values() for c in g]


def long_clips(n: int, seconds: float, gops: list[int], workdir: Path, frames: int) -> list[dict[str, Any]]:
    """``n`` generated videos per keyframe interval in ``gops``, written as ``write_video`` writes ``.mp4``
    (MPEG-4, ``mp4v``) but with that interval (0: the encoder's default, 12)."""
    from activity.data.synthetic import order_clip

    out = []
    for gop, i in ((g, i) for g in gops for i in range(n)):
        path = workdir / f"long_{gop}_{i}.mp4"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240),
                            [cv2.VIDEOWRITER_PROP_GOP_SIZE, gop] if gop else [])
        for k in range(int(seconds / 2)):
            for f in order_clip("moving_right", num_frames=50, size=(320, 240), seed=i * 100 + k):
                w.write(np.ascontiguousarray(f[:, :, ::-1]))
        w.release()
        group, count = group_of(path)
        out.append({**probe(path, frames, f"long {group}" + (f" gop {gop}" if gop else ""), count), "folder": "generated"})
    return out


def measure(clips: list[dict[str, Any]], fns: dict[str, Method], passes: int) -> None:
    """Per clip and method: fastest of ``passes`` timed passes (after one warm-up) or None where it failed,
    and how its warm-up frames compare with opencv-forward's (identical, max abs difference)."""
    set_decode_threads(1)
    for name, fn in fns.items():
        for c in clips:
            for key in ("seconds", "identical", "max_diff"):
                c.setdefault(key, {})[name] = None
            try:
                frames = fn(Path(c["path"]), c["indices"], c["keys"])  # warm-up
            except Exception as e:  # a decoder that fails on this clip: counted, and the clip left out of the rates
                c.setdefault("errors", {})[name] = f"{type(e).__name__}: {str(e)[:120]}"
                continue
            ref = c.setdefault("_ref", frames)  # opencv-forward's, which runs first
            same = ref.shape == frames.shape
            c["max_diff"][name] = int(np.abs(ref.astype(np.int16) - frames).max()) if same else None
            c["identical"][name] = c["max_diff"][name] == 0
            c["seconds"][name] = min(timed(fn, c) for _ in range(passes))
    for c in clips:
        c.pop("_ref", None)


def timed(fn: Method, clip: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    fn(Path(clip["path"]), clip["indices"], clip["keys"])
    return time.perf_counter() - t0


def summarise(clips: list[dict[str, Any]], names: list[str], frames: int) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for g in dict.fromkeys(c["group"] for c in clips):
        cs = [c for c in clips if c["group"] == g]
        ok = [c for c in cs if all(c["seconds"][m] is not None for m in names)]
        keyed = [c for c in cs if c["keys"]]
        costs = [decode_cost(c["indices"], c["keys"]) for c in keyed]
        samples = frames * len(keyed)
        fps = {m: frames * len(ok) / sum(c["seconds"][m] for c in ok) if ok else None for m in names}
        s: dict[str, Any] = {
            "clips": len(cs), "timed_clips": len(ok), "mean_frames": float(np.mean([c["frames"] for c in cs])),
            "mean_gop": float(np.mean([c["frames"] / len(c["keys"]) for c in keyed])) if keyed else None,
            "forward_decoded_per_sample": sum(f for f, _ in costs) / samples if keyed else None,
            "seek_decoded_per_sample": sum(s for _, s in costs) / samples if keyed else None,
            "fps": fps, "failed": {m: sum(c["seconds"][m] is None for c in cs) for m in names},
            "identical": {m: float(np.mean([bool(c["identical"][m]) for c in cs])) for m in names},
            "max_diff": {m: max((c["max_diff"][m] or 0 for c in cs), default=0) for m in names}}
        s["mean_spacing"] = s["mean_frames"] / frames
        ranked = sorted((m for m in names if fps[m]), key=lambda m: -fps[m])  # type: ignore[operator]
        s["cheapest"] = ranked[0] if ranked else None
        s["margin"] = fps[ranked[0]] / fps[ranked[1]] if len(ranked) > 1 else None  # type: ignore[operator]
        groups[g] = s
    return groups


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get(
        "ACTIVITY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")))
    p.add_argument("--max-clips-per-group", type=int, default=20)
    p.add_argument("--frames", type=int, default=16, help="sampled frames per clip")
    p.add_argument("--passes", type=int, default=2, help="timed passes after the warm-up")
    p.add_argument("--long-videos", type=int, default=4)
    p.add_argument("--long-seconds", type=float, default=60.0)
    p.add_argument("--long-gop", type=int, action="append", default=None, metavar="N",
                   help="keyframe interval of a set of long videos, repeatable; 0: the encoder's (default: 0 and 250)")
    p.add_argument("--json-file", type=Path, default=None, metavar="FILE")
    args = p.parse_args(argv)
    command = f"$ python scripts/benchmark_decode.py {shlex.join(sys.argv[1:] if argv is None else argv)}".rstrip()
    fns = methods()
    names = list(fns)
    with tempfile.TemporaryDirectory() as work:
        clips = find_clips(args.data, args.max_clips_per_group, args.frames) if args.data.is_dir() else []
        clips += long_clips(args.long_videos, args.long_seconds, args.long_gop or [0, 250], Path(work), args.frames)
        if not clips:
            print(f"error: no clips ({args.data} absent and --long-videos 0)", file=sys.stderr)
            return 1
        measure(clips, fns, args.passes)
    groups = summarise(clips, names, args.frames)
    rows = []
    for g, s in groups.items():
        head = [g, f"{s['clips']} ({s['timed_clips']})", _f(s["mean_frames"], 0), _f(s["mean_gop"]), _f(s["mean_spacing"]),
                f"{_f(s['forward_decoded_per_sample'])} / {_f(s['seek_decoded_per_sample'])}"]
        for i, m in enumerate(names):
            fps = s["fps"][m]
            rows.append([*(head if i == 0 else [""] * len(head)), m, _f(fps, 0) if fps else "n/a",
                         _f(1000 / fps, 2) if fps else "n/a", f"{s['identical'][m]:.0%}", str(s["max_diff"][m]),
                         str(s["failed"][m] or "")])
    print(command)
    print(f"{os.cpu_count()} CPUs, one decode thread, {args.frames} sampled frames per clip, fastest of {args.passes} "
          f"timed passes per clip after a warm-up; OpenCV {cv2.__version__}")
    print(format_table(rows, ["group", "clips (timed)", "frames", "GOP", "spacing", "decoded/sample fwd / seek",
                              "method", "sampled fps", "ms/sample", "identical", "max diff", "failed"]))
    for g, s in groups.items():
        fwd, best = s["fps"].get("opencv-forward"), s["cheapest"]
        seek = s["mean_gop"] is not None and s["mean_spacing"] > s["mean_gop"]
        print(f"{g}: cheapest {best} ({_f(s['margin'], 2)}x the next"
              + (f", {s['fps'][best] / fwd:.2f}x opencv-forward" if fwd and best != "opencv-forward" else "")
              + f"); spacing > GOP says {'seek' if seek else 'forward'}; "
              f"> 1000 frames says {'seek' if s['mean_frames'] > 1000 else 'forward'}")
    if args.json_file:
        for c in clips:  # per clip: decoded frames forward and seeking ideally instead of the (long) keyframe list
            c["decoded"] = decode_cost(c["indices"], c["keys"]) if c["keys"] else None
            c["indices"], c["keys"] = [int(i) for i in c["indices"]], None if c["keys"] is None else len(c["keys"])
        write_json(args.json_file, {"command": command, "methods": names, "groups": groups, "clips": clips})
    return 0


if __name__ == "__main__":
    sys.exit(main())
