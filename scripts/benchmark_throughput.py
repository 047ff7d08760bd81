#!/usr/bin/env python3
"""Feature-extraction throughput: the backbone's own rate, the real pipeline, a naive loop, decoding alone.

    python scripts/benchmark_throughput.py [--backbone efficientnet_lite0 --backbone mobilenet_v3_large]
        [--batch-size 32] [--workers N] [--threads N] [--device cpu] [--precision float32] [--json-file out.json]
    python scripts/benchmark_throughput.py --stream-cost ../shared/data/basketball \\
        --stream-cost ../shared/data/vioperu/labels.csv [--repeats 3]   # what each stream costs

Measured on the same clips, backbone and batch size, in one run, frames per second:

* backbone runtimes: forward passes on frames already decoded and preprocessed, each the way
  ``extract`` can run it: eager PyTorch in one process with all of torch's threads, and on the CPU
  one single-threaded process per core running at once (the sum of their rates) with eager
  PyTorch, with ``torch.compile`` (compiled before they fork, as ``extract --runtime compiled``; the
  compile time is printed) and with ONNX Runtime (``extract --runtime onnxruntime``: the model it
  caches, exported once; the export time is printed) and, on the CPU, ONNX Runtime on the int8 copy
  (``features.precision=int8``: quantised once; the time is printed). A precision's limit is its fastest
  runtime measured in the run;
* pipeline: ``activity extract`` end to end (``activity.features.extract``, fresh feature cache,
  the runtime ``--runtime`` names: by default what ``extract`` picks, with the ONNX export already
  cached as it is after a first run), appearance features only (``features.streams=[appearance]``;
  ``--stream-cost`` measures what the motion and pose streams add), in float32 and (on the CPU) int8,
  against two limits: the backbone alone, and the backbone plus decoding the sampled frames on the
  same cores (cores / (cores / forward fps + 1 / one-thread decode fps): what is left once every frame
  is decoded too);
* naive: the popular CNN-LSTM repos' loop: OpenCV reads every frame in order, each frame
  preprocessed on its own, one clip per forward pass, the network as published (no inference
  rewrite);
* decode: decoding only the sampled frames on one thread, per decoder (no backbone).

Two clip sets, reported apart and together: ``real``, the real clips in ../shared/data
($ACTIVITY_SHARED_DATA): UCF101 samples (MPEG-4), the Kinetics sample and the first ARID clips
(H.264); and ``long``, generated videos of --long-seconds each (what decoding only the sampled
frames is for). A backbone whose weights cannot be had offline is timed with random weights
(same speed).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from activity.config import FeatureConfig
from activity.data.sampling import segment_indices
from activity.data.decoders import open_video
from activity.errors import ActivityError
from activity.evaluation.reports import format_table
from activity.features.backbones import Backbone, create_backbone, get_spec
from activity.features.cache import FeatureCache, default_cache_dir
from activity.features.extract import ExtractOptions, default_workers, extract
from activity.features.runtime import RUNTIMES
from activity.features.spec import FeatureSpec
from activity.io import write_json


def backbone_or_random(name: str, optimize: bool = True) -> Backbone:
    """The backbone with its weights, or (for speed only) randomly initialised when they cannot be had offline."""
    try:
        return create_backbone(name, optimize=optimize)
    except ActivityError:
        import torchvision.models as tvm

        spec = get_spec(name)
        head = "fc" if name.startswith("resnet") else "classifier"
        return Backbone(spec, getattr(tvm, name)(weights=None), head, optimize=optimize)


def clip_sets(args: argparse.Namespace, workdir: Path) -> dict[str, list[Path]]:
    from activity.data.synthetic import order_clip, write_video

    shared = Path(os.environ.get("ACTIVITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    real: list[Path] = []
    real += sorted((shared / "ucf101-samples").rglob("*.avi"))
    real += sorted((shared / "kinetics-samples").rglob("*.mp4"))
    real += sorted((shared / "arid6" / "train").rglob("*.mp4"))[: args.arid_clips]
    long = []
    for i in range(args.long_videos):
        frames = np.concatenate([order_clip("moving_right", num_frames=50, size=(320, 240), seed=i * 100 + k)
                                 for k in range(int(args.long_seconds / 2))])
        long.append(write_video(workdir / f"long_{i}.mp4", frames, fps=25.0))
    return {name: paths for name, paths in (("real", real), ("long", long)) if paths}


def time_backbone(backbone: Backbone, spec: FeatureSpec, batch: int, device: torch.device, seconds: float = 4.0) -> float:
    """Forward passes alone on a preprocessed channels-last batch: frames/s of the median pass,
    over at least 6 passes and ``seconds`` (a shared machine's outliers either way do not count)."""
    from activity.features.encoder import FrameEncoder

    enc = FrameEncoder(backbone, spec, device, batch_size=batch)
    x = torch.randn(batch, 3, spec.preprocess.crop_size, spec.preprocess.crop_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    times: list[float] = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=enc.dtype, enabled=enc.dtype is not None):
        enc.backbone(x)  # warm-up
        while len(times) < 6 or sum(times) < seconds:
            _sync(device)
            t0 = time.perf_counter()
            enc.backbone(x)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


def time_backbone_processes(backbone: Backbone, spec: FeatureSpec, batch: int, processes: int, seconds: float = 4.0,
                            compiled: bool = False) -> tuple[float, float | None]:
    """CPU: ``processes`` single-threaded processes running forward passes at once for about
    ``seconds``: (the sum of their rates, seconds spent compiling or None). ``compiled``: through
    ``torch.compile``, compiled before they fork, as ``extract`` does."""
    from activity.features.encoder import FrameEncoder

    enc = FrameEncoder(backbone, spec, "cpu", batch_size=batch)
    compile_s = None
    if compiled:
        t0 = time.perf_counter()
        if (why := enc.compile(batch, threads=1)) is not None:
            print(f"note: torch.compile unavailable ({why})", file=sys.stderr)
        else:
            compile_s = time.perf_counter() - t0
    def forward(x: torch.Tensor) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=enc.dtype, enabled=enc.dtype is not None):
            enc.backbone(x.contiguous(memory_format=torch.channels_last))

    return forward_processes(forward, batch, spec.preprocess.crop_size, processes, seconds), compile_s


def forward_processes(forward: Callable[[torch.Tensor], object], batch: int, size: int, processes: int,
                      seconds: float) -> float:
    """``processes`` forked single-threaded processes calling ``forward`` on random float frames
    ``(batch, 3, size, size)`` at once for about ``seconds`` (after one warm-up call): the sum of their rates."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    start, rates = ctx.Barrier(processes), ctx.Queue()

    def one() -> None:
        torch.set_num_threads(1)
        x = torch.randn(batch, 3, size, size)
        forward(x)  # warm-up (an onnxruntime session is made here, in the child)
        start.wait()
        t0, n = time.perf_counter(), 0
        while n < 6 or time.perf_counter() - t0 < seconds:
            forward(x)
            n += 1
        rates.put(batch * n / (time.perf_counter() - t0))

    procs = [ctx.Process(target=one) for _ in range(processes)]
    for pr in procs:
        pr.start()
    total = sum(rates.get(timeout=600) for _ in procs)  # a child that died raises queue.Empty, not a hang
    for pr in procs:
        pr.join()
    return total


def time_onnx_processes(backbone: Backbone, spec: FeatureSpec, batch: int, processes: int,
                        seconds: float = 4.0) -> tuple[float | None, float | None]:
    """CPU: as :func:`time_backbone_processes`, with the backbone run by onnxruntime, one thread per process
    (the ONNX model ``extract --runtime onnxruntime`` caches under the default cache root, exported if absent):
    (the sum of their rates, seconds spent exporting (int8: and quantising) and checking, or None where it was
    cached); rate None, with a note, where onnxruntime cannot run it."""
    from activity.features.encoder import FrameEncoder
    from activity.features.quantize import int8_path

    enc = FrameEncoder(backbone, spec, "cpu", batch_size=batch)
    model = enc.onnx_path(default_cache_dir())
    cached = (int8_path(model) if enc.int8 else model).exists()
    t0 = time.perf_counter()
    try:
        why = enc.use_onnxruntime(default_cache_dir())
    except ActivityError as e:  # int8 that cannot be made here
        why = str(e)
    if why is not None:
        print(f"note: {why}", file=sys.stderr)
        return None, None
    export_s = None if cached else time.perf_counter() - t0
    return forward_processes(enc.backbone, batch, spec.preprocess.crop_size, processes, seconds), export_s


def time_pipeline(paths: list[Path], spec: FeatureSpec, backbone: Backbone, args: argparse.Namespace
                  ) -> tuple[int, float, str]:
    """``extract`` into a fresh feature cache (the ONNX export, if any, from the default cache root, as
    after a first run): (frames encoded, seconds, the runtime it ran)."""
    with tempfile.TemporaryDirectory() as cache:
        exports = default_cache_dir() / "onnx"  # the exports live under the cache root: this run's sees the default's
        if exports.is_dir():
            (Path(cache) / "onnx").symlink_to(exports, target_is_directory=True)
        t0 = time.perf_counter()
        opts = ExtractOptions(batch_size=args.batch_size, workers=args.workers, device=args.device, progress=False,
                              runtime=args.runtime, cache_dir=default_cache_dir())
        result = extract(paths, spec, FeatureCache(cache, spec), lambda: backbone, opts)
        dt = time.perf_counter() - t0
    if result.failed:
        print(f"note: {len(result.failed)} clips failed: {next(iter(result.failed.values()))}", file=sys.stderr)
    return result.frames, dt, result.runtime


def time_naive(paths: list[Path], spec: FeatureSpec, backbone: Backbone, device: torch.device) -> tuple[int, float]:
    """Every frame read and preprocessed one by one, then one forward pass per clip: (frames encoded, seconds)."""
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
            backbone(torch.stack([frames[i] for i in idx]).to(device)).cpu()  # one clip per forward pass
        frames_done += len(idx)
    return frames_done, time.perf_counter() - t0


def time_decode(paths: list[Path], spec: FeatureSpec, decoder: str, passes: int = 3) -> float | None:
    """Open each clip and decode its sampled frames on one thread, as a loader worker does; one
    warm-up pass (file cache), then ``passes`` timed ones."""
    from activity.data.decoders import set_decode_threads

    def one_pass() -> int:
        n = 0
        for p in paths:
            with open_video(p, decoder) as r:  # type: ignore[arg-type]
                n += len(r.get_frames(segment_indices(r.frame_count, spec.length)))
        return n

    set_decode_threads(1)
    try:
        one_pass()
        t0 = time.perf_counter()
        n = sum(one_pass() for _ in range(passes))
    except (ActivityError, ImportError):
        return None
    finally:
        set_decode_threads(0)
    return n / (time.perf_counter() - t0)


#: The stream sets --stream-cost times, each against appearance alone (pose where MediaPipe is installed).
STREAM_SETS = (("appearance",), ("appearance", "motion"), ("appearance", "pose"), ("appearance", "motion", "pose"))


def stream_cost(collections: list[str], args: argparse.Namespace) -> tuple[list[list[str]], list[str], dict]:
    """Extraction of each collection into a fresh cache with each of :data:`STREAM_SETS` (``--repeats`` times
    each, alternating, median seconds): what each stream costs. Rows and headers for the table, and the JSON."""
    from activity.data.collection import load_dataset
    from activity.features.extract import Extractor
    from activity.features.pose import pose_available

    sets = [s for s in STREAM_SETS if "pose" not in s or pose_available()]
    rows, out = [], {}
    for data in collections:
        paths = load_dataset(data).paths
        seconds: dict[tuple, list[float]] = {s: [] for s in sets}
        for _ in range(args.repeats):
            for streams in sets:
                cfg = FeatureConfig(backbone=(args.backbone or ["efficientnet_lite0"])[0], num_frames=args.num_frames,
                                    streams=list(streams))
                with tempfile.TemporaryDirectory() as cache:
                    opts = ExtractOptions(cache_dir=cache, batch_size=args.batch_size, workers=args.workers, device=args.device,
                                          progress=False, runtime=args.runtime)
                    t0 = time.perf_counter()
                    Extractor(cfg, opts)(paths)
                    seconds[streams].append(time.perf_counter() - t0)
        median = {s: float(np.median(v)) for s, v in seconds.items()}
        base = median[sets[0]]
        out[data] = {"clips": len(paths), **{"+".join(s): {"seconds": v, "ratio": median[s] / base} for s, v in seconds.items()}}
        rows.append([data, str(len(paths)), *(f"{median[s]:.1f} ({median[s] / base:.2f}x)" for s in sets)])
    return rows, ["collection", "clips", *(" + ".join(s) + " s" for s in sets)], out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def time_backbone_all(name: str, sets: dict[str, list[Path]], decode: dict, device: torch.device,
                      args: argparse.Namespace) -> dict:
    """One backbone: its forward rate in each runtime (and int8 on the CPU), then ``extract`` end to end on each clip
    set in each precision, against its two limits, and the naive loop."""
    cores = os.cpu_count() or 1
    cpu = device.type == "cpu"
    spec = _spec(name, args.precision, args)
    backbone = backbone_or_random(name)
    plain = None if args.no_naive else backbone_or_random(name, optimize=False).to(device)
    runtimes: dict[str, float | None] = {"eager, 1 process": time_backbone(backbone, spec, args.batch_size, device)}
    costs: dict[str, str] = {}  # runtime -> its one-off cost, as printed
    r: dict = {"runtimes": runtimes, "costs": costs, "compile_s": None, "export_s": None, "precisions": {}}
    if cpu and cores > 1:
        runtimes[f"eager, {cores} one-thread processes"], _ = time_backbone_processes(backbone, spec, args.batch_size, cores)
    if cpu and not args.no_compiled:
        key = f"compiled, {cores} one-thread processes"
        runtimes[key], r["compile_s"] = time_backbone_processes(copy.deepcopy(backbone), spec, args.batch_size, cores,
                                                                compiled=True)
        if r["compile_s"] is None:
            runtimes[key] = None  # could not compile: that rate is eager's
        else:
            costs[key] = f"compiled in {r['compile_s']:.1f} s"
    precisions = [args.precision]
    if cpu and args.precision == "float32":
        key = f"onnxruntime, {cores} one-thread processes"
        runtimes[key], r["export_s"] = time_onnx_processes(backbone, spec, args.batch_size, cores)
        costs[key] = f"exported and checked in {r['export_s']:.1f} s" if r["export_s"] else "export cached"
        if not args.no_int8:
            precisions.append("int8")
    if cpu and "int8" in (args.precision, *precisions):
        key = f"onnxruntime int8, {cores} one-thread processes"
        runtimes[key], made_s = time_onnx_processes(backbone, _spec(name, "int8", args), args.batch_size, cores)
        costs[key] = f"quantised and checked in {made_s:.1f} s" if made_s else "quantised copy cached"
    # each precision's limit: its fastest runtime measured here (extract can run any of them)
    r["limit_runtime"] = {}
    for precision in precisions:
        fitting = [k for k, v in runtimes.items() if v and ("int8" in k) == (precision == "int8")]
        r["limit_runtime"][precision] = max(fitting, key=lambda k: runtimes[k])  # type: ignore[arg-type,return-value]
    # the network as published (no batch-norm folding), same threads and batch
    r["published_fps_threads"] = time_backbone(plain, spec, args.batch_size, device) if plain is not None else None
    for precision in precisions:
        limit = runtimes[r["limit_runtime"][precision]]
        per, tot = {}, {"pipeline": [0, 0.0], "naive": [0, 0.0], "decode_s": 0.0}
        decoded = all(decode[k].get("auto") for k in sets)  # the auto decoder's rate is known for every set
        for set_name, paths in sets.items():
            n_pipe, t_pipe, ran = time_pipeline(paths, _spec(name, precision, args), backbone, args)
            n_naive, t_naive = time_naive(paths, spec, plain, device) if plain is not None and precision == args.precision else (0, 0.0)
            dec = decode[set_name].get("auto")
            per[set_name] = {"clips": len(paths), "frames": n_pipe, "pipeline_fps": n_pipe / t_pipe, "pipeline_runtime": ran,
                             "naive_fps": n_naive / t_naive if t_naive else None, "decode_fps": decode[set_name],
                             "limit_fps": limit, "limit_decode_fps": _with_decode(limit, dec, cores if cpu else 0)}
            for key, n, t in (("pipeline", n_pipe, t_pipe), ("naive", n_naive, t_naive)):
                tot[key][0] += n
                tot[key][1] += t
            tot["decode_s"] += n_pipe / dec if dec else 0.0
        n_all = tot["pipeline"][0]
        dec_all = n_all / tot["decode_s"] if decoded and tot["decode_s"] else None
        per["all"] = {"frames": n_all, "pipeline_fps": n_all / tot["pipeline"][1], "pipeline_runtime": "",
                      "naive_fps": tot["naive"][0] / tot["naive"][1] if tot["naive"][1] else None,
                      "limit_fps": limit, "limit_decode_fps": _with_decode(limit, dec_all, cores if cpu else 0)}
        r["precisions"][precision] = per
    # the keys earlier versions of this JSON had (the run's own precision)
    first = r["precisions"][args.precision]
    r["sets"] = {k: v for k, v in first.items() if k != "all"}
    r["backbone_fps"], r["pipeline_fps"], r["naive_fps"] = first["all"]["limit_fps"], first["all"]["pipeline_fps"], first["all"]["naive_fps"]
    return r


def _spec(name: str, precision: str, args: argparse.Namespace) -> FeatureSpec:
    """Appearance only, as the backbone limit and the naive loop are (--stream-cost times the other streams)."""
    return FeatureSpec.from_config(FeatureConfig(backbone=name, num_frames=args.num_frames, precision=precision,
                                                 streams=["appearance"]))


def _with_decode(forward_fps: float | None, decode_fps: float | None, cores: int) -> float | None:
    """The rate when every sampled frame is decoded (one thread, ``decode_fps``) and encoded (``forward_fps`` over
    all ``cores``) on the same cores: ``cores / (cores / forward + 1 / decode)``; on a GPU (``cores`` 0), the
    slower of the two."""
    if not forward_fps or not decode_fps:
        return None
    if cores == 0:
        return min(forward_fps, decode_fps)
    return cores / (cores / forward_fps + 1 / decode_fps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", action="append", default=None, help="repeatable (default: efficientnet_lite0 and mobilenet_v3_large)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-frames", type=int, default=16)
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: activity's default for the device)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice, one per core)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="float32", choices=["float32", "int8", "bfloat16", "float16"],
                   help="the backbone's precision (features.precision); on the CPU, float32 runs are also timed in int8")
    p.add_argument("--no-int8", action="store_true", help="on the CPU in float32, skip the int8 rows")
    p.add_argument("--arid-clips", type=int, default=20, help="ARID clips in the real set")
    p.add_argument("--long-videos", type=int, default=16)
    p.add_argument("--long-seconds", type=float, default=60.0)
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop (slow on long videos)")
    p.add_argument("--decode-only", action="store_true", help="only the decode-only rates (no backbone)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="the pipeline's backbone runtime (activity extract --runtime; default auto, as extract picks); "
                        "the limit is the fastest measured either way")
    p.add_argument("--no-compiled", action="store_true", help="skip timing the compiled backbone (it compiles: 5 to 20 s)")
    p.add_argument("--stream-cost", action="append", default=None, metavar="DATA",
                   help="instead: time extracting this collection (repeatable) with each set of streams "
                        "(appearance alone, + motion, + pose, all three; pose where MediaPipe is installed)")
    p.add_argument("--repeats", type=int, default=1, help="--stream-cost: runs of each (median)")
    p.add_argument("--json-file", type=Path, default=None, metavar="FILE")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    workers = default_workers(device) if args.workers is None else args.workers
    names = args.backbone or ["efficientnet_lite0", "mobilenet_v3_large"]
    command = f"$ python scripts/benchmark_throughput.py {shlex.join(sys.argv[1:] if argv is None else argv)}"
    if args.stream_cost:
        rows, headers, res = stream_cost(args.stream_cost, args)
        print(command)
        print(f"{os.cpu_count()} CPUs, {workers} loader worker(s), device {device}, {args.num_frames} frames per clip; "
              f"extract into a fresh cache, median of {args.repeats} run(s) each (and ÷ appearance alone)")
        print(format_table(rows, headers))
        if args.json_file:
            write_json(args.json_file, {"command": command, "stream_cost": res})
        return 0
    rows, runtime_rows, out = [], [], {"command": command, "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                                     "workers": workers, "device": str(device), "processor": platform.processor(),
                                                     "torch": torch.__version__},
                     "batch_size": args.batch_size, "num_frames": args.num_frames, "results": {}}
    with tempfile.TemporaryDirectory() as work:
        sets = clip_sets(args, Path(work))
        if not sets:
            print("error: no clips (../shared/data absent and --long-videos 0)", file=sys.stderr)
            return 1
        out["clips"] = {k: [str(x) for x in v] for k, v in sets.items()}
        spec0 = FeatureSpec.from_config(FeatureConfig(num_frames=args.num_frames, streams=["appearance"]))
        decode = {k: {b: time_decode(v, spec0, b) for b in ("decord", "opencv", "auto")} for k, v in sets.items()}
        out["decode_fps"] = decode
        if not args.decode_only:
            for name in names:
                out["results"][name] = r = time_backbone_all(name, sets, decode, device, args)
                for k, v in r["runtimes"].items():
                    runtime_rows.append([name, k, _fmt(v), "limit" if k in r["limit_runtime"].values() else "",
                                         r["costs"].get(k, "")])
                if r["published_fps_threads"]:
                    runtime_rows.append([name, "eager as published (no batch-norm folding), 1 process",
                                         _fmt(r["published_fps_threads"]), "", ""])
                for precision, per in r["precisions"].items():
                    for set_name, v in per.items():
                        pipe, naive = v["pipeline_fps"], v["naive_fps"]
                        rows.append([name, precision, set_name, str(v["frames"]), v["pipeline_runtime"], _fmt(pipe),
                                     _fmt(v["limit_fps"]), f"{pipe / v['limit_fps']:.2f}",
                                     _fmt(v["limit_decode_fps"]), f"{pipe / v['limit_decode_fps']:.2f}" if v["limit_decode_fps"] else "n/a",
                                     _fmt(naive), f"{pipe / naive:.1f}" if naive else "n/a"])
    print(command)
    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, {workers} loader worker(s), device {device}, "
          f"batch {args.batch_size}, {args.num_frames} frames per clip, torch {torch.__version__}")
    print(", ".join(f"{k}: {len(v)} clips" for k, v in sets.items()))
    print("decode only, sampled frames/s, one thread: " + "; ".join(f"{k}: " + ", ".join(f"{b} {_fmt(x)}" for b, x in d.items())
                                                       for k, d in decode.items()))
    if runtime_rows:
        print(f"backbone alone, frames/s (preprocessed frames, batch {args.batch_size}):")
        print(format_table(runtime_rows, ["backbone", "runtime", "frames/s", "", "one-off cost"]))
    if rows:
        print("extract end to end, frames/s (fresh feature cache):")
        print("limits: the backbone alone (the fastest runtime of that precision), and the backbone plus decoding "
              "the sampled frames (auto decoder, one thread) sharing the cores: cores / (cores / forward fps + 1 / decode fps)")
        print(format_table(rows, ["backbone", "precision", "clips", "frames", "pipeline runtime", "pipeline fps", "forward limit",
                                  "÷", "forward+decode limit", "÷", "naive fps", "× naive"]))
    if args.json_file:
        write_json(args.json_file, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
