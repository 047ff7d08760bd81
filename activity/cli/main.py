"""The ``activity`` command line: a thin layer over the package.

Commands: ``backbones``, ``extract``, ``train``, ``evaluate``, ``predict``, ``cv``, ``check``, ``explain``, ``export``, ``demo``.
Problems with the input are printed as one ``error:`` line (exit code 1, no
traceback); a video that cannot be read is reported as ``skipped PATH: reason``
and every other video is still processed. Exit codes: 0 when at least one
video was processed; 1 on an input error, when nothing could be processed, or
(with ``--strict``) when anything was skipped; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from activity.errors import ActivityError

if TYPE_CHECKING:
    from activity.features.extract import ExtractOptions

# ---------------------------------------------------------------- shared helpers

def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return n


def _positive(text: str) -> int:
    n = _workers(text)
    if n == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _device(text: str) -> str:
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no CUDA GPU is available here; use cpu")
    return text


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder (default: $ACTIVITY_CACHE or ~/.cache/activity)")
    p.add_argument("--workers", type=_workers, default=None,
                   help="loader processes: on the CPU each decodes and encodes clips on one thread (default: one per core); "
                        "on a GPU they decode while it encodes (default: all cores but one); 0: all in this process")
    p.add_argument("--device", type=_device, default="cpu", help="device for the backbone, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--compile", choices=["auto", "yes", "no"], default="auto",
                   help="torch.compile the backbone when the CPU workers encode (auto: from 4,000 frames to encode)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit with code 1 if any video was skipped")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults, see configs/default.yaml)")
    p.add_argument("--backbone", default=None, help="frame encoder (see `activity backbones`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=30 model.hidden_size=128")


def _config(args: argparse.Namespace):
    from activity.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.backbone:
        cfg.set("features.backbone", args.backbone, source="--backbone")
    if isinstance(getattr(args, "temporal", None), str):
        cfg.set("model.temporal", args.temporal, source="--temporal")
    if getattr(args, "val_fraction", None) is not None:
        cfg.set("train.val_fraction", args.val_fraction, source="--val-fraction")
    return cfg


def _temporal_list(text: str) -> list[str]:
    from activity.evaluation.cv import model_names

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or any(t not in model_names() for t in names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(model_names())}; got {text!r}")
    return list(dict.fromkeys(names))


def _skip(path: Path, reason: str) -> None:
    print(f"skipped {path}: {reason}", file=sys.stderr)


def _finish(args: argparse.Namespace, processed: int, skipped: dict) -> int:
    """Print the closing summary line (on rank 0 only under torchrun) and choose the exit code.

    0 when at least one video was processed; 1 when none was, or, with
    ``--strict``, when any was skipped. Under torchrun every rank passes the
    totals over all ranks, so all ranks exit with the same code.
    """
    reasons: dict[str, int] = {}
    for r in skipped.values():
        key = r.split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    why = "; ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    if args.dist.is_main:
        print(f"{processed} processed, {len(skipped)} skipped" + (f" ({why})" if why else ""), file=sys.stderr)
    if processed == 0 or (getattr(args, "strict", False) and skipped):
        return 1
    return 0


def _options(args: argparse.Namespace, *, progress: bool = True) -> ExtractOptions:
    """The extraction options of a command's ``--cache``, ``--workers``, ``--device``, ``--compile`` and ``--quiet``."""
    from activity.features.extract import ExtractOptions

    return ExtractOptions(
        cache_dir=getattr(args, "cache", None), workers=getattr(args, "workers", None), device=getattr(args, "device", "cpu"),
        compile_backbone={"auto": None, "yes": True, "no": False}[getattr(args, "compile", "auto")],
        progress=progress and not getattr(args, "quiet", False), on_error=_skip, dist=args.dist,
    )


# ---------------------------------------------------------------- commands

def cmd_backbones(args: argparse.Namespace) -> int:
    from activity.evaluation.reports import format_table
    from activity.features.backbones import DEFAULT_BACKBONE, get_spec, list_backbones

    rows = []
    for name in list_backbones():
        s = get_spec(name)
        rows.append([name + (" (default)" if name == DEFAULT_BACKBONE else ""), str(s.feature_dim), f"{s.preprocess.crop_size}px",
                     "yes" if s.weights_available() else "no", s.source])
    print(format_table(rows, ["backbone", "features", "input", "offline", "weights"]))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from activity import workflows

    opts = _options(args)
    r = workflows.extract(args.data, _config(args), opts)
    rate = f", {r.frames / r.seconds:.1f} frames/s" if r.extracted else ""
    procs = f" by {args.dist.world_size} processes" if args.dist.enabled else ""
    if opts.is_main:
        print(f"{r.videos} videos with features: {r.extracted} extracted{procs}, {r.cached} from the cache "
              f"({r.frames} frames in {r.seconds:.1f} s{rate})")
    return _finish(args, r.videos, r.skipped)


def cmd_train(args: argparse.Namespace) -> int:
    from activity import workflows

    opts = _options(args)
    if args.resume is not None:
        if args.data or args.out or args.val or args.config or args.overrides or args.backbone or args.temporal:
            raise ActivityError("--resume continues a run with its own data and config; pass no other data or config options")
        r = workflows.resume(args.resume, opts)
    else:
        if args.data is None or args.out is None:
            raise ActivityError("train needs --data and --out (or --resume RUN_DIR)")
        r = workflows.train(args.data, args.out, _config(args), opts, val=args.val, group_regex=args.group_regex)
    if opts.is_main:
        val = ""
        if r.fit.best_val_accuracy is not None:
            at = (f"ensemble of {len(r.fit.members)}, members' best epochs {', '.join(map(str, r.fit.best_epoch))}"
                  if r.fit.members else f"at epoch {r.fit.best_epoch}")
            val = f", best validation accuracy {r.fit.best_val_accuracy:.3f} ({at})"
        print(f"saved {r.checkpoint}{val}")
    return _finish(args, r.train_clips + r.val_clips, r.skipped)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from activity import workflows
    from activity.evaluation.reports import format_table

    r = workflows.evaluate(args.checkpoint, args.data, args.out, _options(args))
    if r.metrics is not None and r.report is not None:  # rank 0 (or one process): the report
        rows = [[c, f"{r.report[c]['precision']:.3f}", f"{r.report[c]['recall']:.3f}", f"{r.report[c]['f1-score']:.3f}",
                 str(int(r.report[c]['support']))] for c in r.classes]
        print(format_table(rows, ["class", "precision", "recall", "f1", "clips"]))
        m = r.metrics
        top5 = f"  top-5 {m['top5']:.3f}" if "top5" in m else ""
        print(f"\ntop-1 {m['top1']:.3f}{top5}  mean class accuracy {m['mean_class_accuracy']:.3f}  "
              f"({m['num_videos']} videos, {m['skipped']} skipped) -> {args.out}")
    return _finish(args, r.processed, r.skipped)


def cmd_predict(args: argparse.Namespace) -> int:
    from activity import workflows
    from activity.evaluation.reports import format_table
    from activity.inference.recognizer import load_model

    if args.top_k < 1:
        raise ActivityError(f"--top-k must be at least 1, got {args.top_k}")
    if bool(args.source) == bool(args.videos):
        raise ActivityError("give either video files/folders or --source, not both or neither")
    opts = _options(args)
    model = load_model(args.checkpoint, opts)
    if args.source:
        return _predict_stream(model, args)
    if args.timeline:
        paths, empty = workflows.video_files(args.videos)
        for p, reason in empty.items():
            _skip(p, reason)
        return _predict_timeline(model, paths, args, empty)
    r = workflows.predict(model, args.videos, opts, top_k=args.top_k, results_dir=args.results_dir,
                          results_format=args.results_format)
    if r.written is not None:
        print(f"wrote {r.written}", file=sys.stderr)
    if args.json:
        out = {"predictions": [p.as_dict() for p in r.predictions], "skipped": {str(p): why for p, why in r.skipped.items()}}
        print(json.dumps(out, indent=2))
    elif not args.results_dir or len(r.predictions) <= 20:
        rows = []
        for p in r.predictions:
            for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), 1):
                rows.append([str(p.path) if rank == 1 else "", str(rank), label, f"{prob:.3f}"])
        if rows:
            print(format_table(rows, ["video", "rank", "label", "probability"]))
    return _finish(args, len(r.predictions), r.skipped)


def _predict_timeline(model, paths: list[Path], args: argparse.Namespace, empty: dict[Path, str]) -> int:
    from activity.errors import VideoError
    from activity.evaluation.reports import format_table
    from activity.inference.timeline import write_overlay

    if args.overlay and len(paths) != 1:
        raise ActivityError("--overlay takes exactly one video")
    timelines, failed = [], dict(empty)
    stems: dict[str, int] = {}
    for p in paths:
        try:
            tl = model.timeline(p, window=args.window, stride=args.stride, top_k=args.top_k, threshold=args.threshold,
                                smooth=args.smooth, progress=not args.quiet)
        except VideoError as e:
            failed[p] = e.reason
            _skip(p, e.reason)
            continue
        timelines.append(tl)
        if args.results_dir:
            n = stems[p.stem] = stems.get(p.stem, 0) + 1  # same file name in two folders: clip, clip-2, ...
            for f in tl.write_csv(args.results_dir, p.stem if n == 1 else f"{p.stem}-{n}"):
                print(f"wrote {f}", file=sys.stderr)
        if args.overlay:
            print(f"wrote {write_overlay(tl, p, args.overlay, progress=not args.quiet)}", file=sys.stderr)
        if not args.json:
            rows = [[f"{s.start:.1f}", f"{s.end:.1f}", s.label, f"{s.probability:.2f}"] for s in tl.segments]
            print(f"{p}: {tl.duration:.1f} s, {len(tl.windows)} windows of {tl.window:g} s every {tl.stride:g} s")
            print(format_table(rows, ["start", "end", "label", "probability"]) + "\n")
    if args.json:
        print(json.dumps({"timelines": [t.as_dict() for t in timelines], "skipped": {str(p): r for p, r in failed.items()}}, indent=2))
    return _finish(args, len(timelines), failed)


def _predict_stream(model, args: argparse.Namespace) -> int:
    from activity.inference.stream import run_stream

    def show(r) -> None:
        line = {"time": round(r.time, 2), "label": r.label, "probability": round(r.probability, 4), "dropped": r.dropped}
        print(json.dumps(line) if args.json else f"[{r.time:7.2f}s] {r.label:<20} {r.probability:.2f}  (dropped frames: {r.dropped})", flush=True)

    stats = run_stream(model, args.source, window=args.window, rate=args.rate, max_seconds=args.max_seconds, on_result=show)
    print(f"{stats.frames_read} frames read, {stats.inferences} predictions, {stats.frames_dropped} frames dropped", file=sys.stderr)
    return 0 if stats.inferences else 1


def cmd_cv(args: argparse.Namespace) -> int:
    import shlex

    from activity import workflows
    from activity.io import write_json

    cfg = _config(args)
    opts = _options(args)
    if args.dist.enabled:
        # Under torchrun the ranks share the extraction into the cache; the cross-validation itself
        # runs on rank 0, which then finds every entry in the cache.
        r = workflows.extract(args.data, cfg, opts)
        args.dist.leave()
        if not args.dist.is_main:
            return _finish(args, r.videos, r.skipped)
        opts = opts.replace(dist=None, on_error=None)  # rank 0 reported the skipped videos already
    print(f"cross-validating {', '.join(args.temporal)} on {args.data}", file=sys.stderr)
    report = workflows.cv(args.data, cfg, args.temporal, opts, folds=args.folds, group_regex=args.group_regex)
    print(f"$ activity {shlex.join(sys.argv[1:])}")
    print(report.table())
    if args.json:
        write_json(args.json, {"command": ["activity", *sys.argv[1:]], **report.to_dict()})
    return _finish(args, report.clips, report.skipped)


def cmd_check(args: argparse.Namespace) -> int:
    from activity.data.collection import load_dataset
    from activity.evaluation.check import check_dataset, format_report

    ds = load_dataset(args.data, group_regex=args.group_regex)
    val = load_dataset(args.val, group_regex=args.group_regex) if args.val else None
    report = check_dataset(ds, val, decoder=args.decoder, progress=not args.quiet)
    print(format_report(report))
    return 1 if report.problems else 0


def cmd_explain(args: argparse.Namespace) -> int:
    import math

    from activity.inference.explain import explain, save_explanation
    from activity.inference.recognizer import load_model

    model = load_model(args.checkpoint, cache_dir=False, device=args.device)
    expl = explain(model, args.video, method=args.method, target=args.target)
    if expl.note:
        print(f"note: {expl.note}", file=sys.stderr)
    out = save_explanation(expl, args.out, columns=args.columns)
    if args.json:
        print(json.dumps(expl.as_dict(), indent=2))
    else:
        k = expl.top_frame
        when = f"{expl.times[k]:.2f}s" if math.isfinite(expl.times[k]) else "time unknown"
        print(f"{expl.path}: {expl.label} {expl.probability:.3f}; most important frame #{expl.indices[k]} ({when}) "
              f"by {expl.method} -> {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from activity.inference.export import export_model

    out = export_model(args.checkpoint, args.format, args.out)
    print(f"wrote {out} and {out}.json (classes, input shape, sampling, preprocessing)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from activity.cli.demo import run_demo

    return run_demo(Path(args.out), cache=args.cache, quiet=args.quiet)


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    from activity import __version__
    from activity.evaluation.cv import model_names
    from activity.registry import DECODERS, TEMPORAL_MODELS

    parser = argparse.ArgumentParser(prog="activity", description="Recognise human actions in video with a frozen CNN and a bidirectional LSTM.")
    parser.add_argument("--version", action="version", version=f"activity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("backbones", help="list the frame encoders", description="List the registered backbones.")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("extract", help="extract and cache backbone features", description="Extract backbone features for a collection of videos into the cache.")
    p.add_argument("--data", required=True, help="class folder, list file, CSV, a folder of videos or one video")
    _add_config(p)
    _add_common(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", help="train a temporal model", description="Train a temporal model on cached features; writes RUN_DIR/model.pt, config.yaml, metrics.csv.")
    p.add_argument("--data", help="class folder, list file or CSV")
    p.add_argument("--out", type=Path, help="run folder")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted run from its last completed epoch")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val", help="validation collection (default: a split of --data)")
    g.add_argument("--val-fraction", type=float, default=None, help="validation share of --data (split by group when known)")
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group, e.g. '_g(\\d+)_'")
    p.add_argument("--temporal", choices=TEMPORAL_MODELS.names(), default=None, help="temporal model (default: lstm)")
    _add_config(p)
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on labelled videos", description="Evaluate a checkpoint; writes metrics.json, per_class.csv, confusion_matrix.csv/.png and predictions.csv.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", required=True, help="class folder, list file or CSV")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify video files, long videos or a live source",
                       description="Top-k actions for each video (files or folders); --timeline for what happens when in long "
                                   "videos; --source for a camera or stream.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("videos", nargs="*", help="video files or folders of videos")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--results-dir", type=Path, default=None, help="write the results there (predictions, or timeline CSVs)")
    p.add_argument("--results-format", choices=["csv", "json"], default="csv", help="file format of --results-dir predictions")
    g = p.add_argument_group("long videos")
    g.add_argument("--timeline", action="store_true", help="sliding-window predictions and merged segments")
    g.add_argument("--window", type=float, default=2.0, help="window length in seconds (default 2; also used by --source)")
    g.add_argument("--stride", type=float, default=1.0, help="seconds between windows (default 1)")
    g.add_argument("--threshold", type=float, default=0.0, help="minimum probability for a window to join a segment")
    g.add_argument("--smooth", type=int, default=1, help="average this many neighbouring windows before merging")
    g.add_argument("--overlay", type=Path, default=None, help="write the video with the current label drawn on it")
    g = p.add_argument_group("live sources")
    g.add_argument("--source", default=None, help="camera index, stream URL, or a file played at its real rate")
    g.add_argument("--rate", type=float, default=1.0, help="predictions per second (default 1)")
    g.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    _add_common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("cv", help="k-fold cross-validation of temporal models", description="Compare temporal models on the same k folds (stratified; by group when known). Each fold's test clips are never used for training or early stopping.")
    p.add_argument("--data", required=True, help="class folder, list file or CSV")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group")
    p.add_argument("--temporal", type=_temporal_list, default=model_names(),
                   help="comma-separated models to compare: lstm, mean (trained temporal models), pooled_lr (logistic regression on "
                        "mean and std over time of features and their differences), middle_lr (on the middle frame); default: all")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    _add_config(p)
    _add_common(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("check", help="check a collection for unreadable clips, duplicates and leaks",
                       description="Report unreadable clips, clips per class, identical files (across classes: a label leak) and "
                                   "recordings on both sides of a train/validation split. Exit code 1 when problems are found.")
    p.add_argument("data", help="class folder, list file or CSV")
    p.add_argument("--val", help="validation collection to check against DATA")
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group")
    p.add_argument("--decoder", choices=DECODERS.names(), default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("export", help="export a checkpoint, backbone included, to ONNX or TorchScript",
                       description="Write the whole model (backbone + temporal model) as one graph: preprocessed frames "
                                   "(B, T, 3, S, S) -> logits (B, C), plus FILE.json describing the input, sampling and preprocessing.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("explain", help="show which frames a prediction rests on",
                       description="Draw the frames the model sees with each one's importance (attention weights or occlusion) as a PNG.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("video", type=Path)
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.add_argument("--method", choices=["attention", "occlusion"], default="attention",
                   help="attention: the model's pooling weights (a model that pools uniformly falls back to occlusion); "
                        "occlusion: drop in probability when a frame's feature is replaced by the clip's mean")
    p.add_argument("--target", default=None, help="class to explain (default: the predicted one)")
    p.add_argument("--columns", type=_positive, default=8, help="frames per row (default: 8)")
    p.add_argument("--json", action="store_true", help="also print the per-frame importances as JSON")
    p.add_argument("--device", type=_device, default="cpu", help="device for the backbone (default: cpu)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("demo", help="run the whole pipeline on generated clips", description="Generate a small labelled collection, then extract, train, evaluate and predict.")
    p.add_argument("--out", default="demo_run", help="folder for the generated clips and the run (default: demo_run)")
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder (default: OUT/cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


# Under torchrun these commands share the work among the processes; the others run on rank 0 only
# (one set of output files), except demo, which refuses.
DISTRIBUTED_COMMANDS = ("extract", "train", "evaluate", "cv")


def _run(args: argparse.Namespace) -> int:
    """Run the command, joining torchrun's process group when it launched several processes."""
    from activity import distributed

    world = distributed.launched_world_size()
    if world > 1 and args.command not in DISTRIBUTED_COMMANDS:
        if args.command == "demo":
            raise ActivityError("demo runs as one process; start it without torchrun")
        if distributed.launched_rank() != 0:
            return 0
        print(f"note: `activity {args.command}` runs in one process: rank 0 does it, the other {world - 1} exit", file=sys.stderr)
        world = 1
    if world == 1:
        args.dist = distributed.DistInfo(device=getattr(args, "device", "cpu"))
        return int(args.func(args) or 0)
    with distributed.session(args.device) as info:
        args.dist, args.device = info, info.device
        return int(args.func(args) or 0)


class _NoteHandler(logging.Handler):
    """The package's messages on stderr: progress (INFO) as they are, warnings as one ``note:`` line
    each (``warning:`` where the record says so); stderr is looked up at each record, so that captured
    or redirected stderr gets them."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = getattr(record, "prefix", "note") if record.levelno >= logging.WARNING else None
        print(f"{prefix}: {record.getMessage()}" if prefix else record.getMessage(), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pkg = logging.getLogger("activity")
    if not any(isinstance(h, _NoteHandler) for h in pkg.handlers):
        pkg.addHandler(_NoteHandler(logging.INFO))
        pkg.setLevel(logging.INFO)
        pkg.propagate = False
    try:
        return _run(args)
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
