"""The ``activity`` commands: each turns its arguments into a config and
:class:`~activity.features.extract.ExtractOptions`, calls a workflow and prints the result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from activity.cli import output
from activity.errors import ActivityError

if TYPE_CHECKING:
    from activity.config import Config
    from activity.features.extract import ExtractOptions


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``--config``, the ``key=value`` overrides, ``--backbone``, ``--temporal`` and ``--val-fraction``."""
    from activity.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.backbone:
        cfg.set("features.backbone", args.backbone, source="--backbone")
    if isinstance(getattr(args, "temporal", None), str):
        cfg.set("model.temporal", args.temporal, source="--temporal")
    if getattr(args, "val_fraction", None) is not None:
        cfg.set("train.val_fraction", args.val_fraction, source="--val-fraction")
    return cfg


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
    if getattr(args, "dist", None) is None or args.dist.is_main:
        print(f"{processed} processed, {len(skipped)} skipped" + (f" ({why})" if why else ""), file=sys.stderr)
    if processed == 0 or (getattr(args, "strict", False) and skipped):
        return 1
    return 0


def options_from_args(args: argparse.Namespace, *, progress: bool = True) -> ExtractOptions:
    """The extraction options of a command's ``--cache``, ``--workers``, ``--device``, ``--runtime`` and ``--quiet``."""
    from activity.features.extract import ExtractOptions

    return ExtractOptions(
        cache_dir=getattr(args, "cache", None), workers=getattr(args, "workers", None), device=getattr(args, "device", "cpu"),
        runtime=getattr(args, "runtime", "auto"),
        progress=progress and not getattr(args, "quiet", False), on_error=_skip, dist=getattr(args, "dist", None),
    )


def cmd_backbones(args: argparse.Namespace) -> int:
    from activity.evaluation.reports import format_table
    from activity.features.backbones import DEFAULT_BACKBONE, get_spec, list_backbones

    if getattr(args, "timm", None) is not None:
        return _timm_backbones(args.timm)
    rows = []
    for name in list_backbones():
        s = get_spec(name)
        rows.append([name + (" (default)" if name == DEFAULT_BACKBONE else ""), str(s.feature_dim), f"{s.preprocess.crop_size}px",
                     "yes" if s.weights_available() else "no", s.source])
    print(format_table(rows, ["backbone", "features", "input", "offline", "weights"]))
    print("and timm:NAME, any pretrained timm model (pip install 'activity[timm]'; list them with "
          "activity backbones --timm PATTERN)")
    return 0


def _timm_backbones(pattern: str) -> int:
    """``activity backbones --timm PATTERN``: the matching pretrained timm models, one a line."""
    from activity.evaluation.reports import format_table
    from activity.features.backbones import timm_backbones

    rows = [[name, "?" if dim is None else str(dim), f"{size}px", "yes" if here else "no", source]
            for name, dim, size, here, source in timm_backbones(pattern)]
    if not rows:
        raise ActivityError(f"no pretrained timm model matches {pattern!r} (patterns are fnmatch-style, e.g. 'convnext*')")
    print(format_table(rows, ["backbone", "features", "input", "offline", "weights"]))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from activity import workflows

    opts = options_from_args(args)
    r = workflows.extract(args.data, config_from_args(args), opts)
    rate = f", {r.frames / r.seconds:.1f} frames/s" if r.extracted else ""
    procs = f" by {args.dist.world_size} processes" if args.dist.enabled else ""
    if opts.is_main:
        print(f"{r.videos} videos with features: {r.extracted} extracted{procs}, {r.cached} from the cache "
              f"({r.frames} frames in {r.seconds:.1f} s{rate})")
    return _finish(args, r.videos, r.skipped)


def usage_problem(args: argparse.Namespace) -> str | None:
    """What makes this command line unusable as a whole (exit code 2), checked before any work; None if nothing."""
    if args.command == "train":
        if args.resume is not None and (args.data or args.out or args.val or args.config or args.overrides or args.backbone
                                        or args.temporal):
            return "--resume continues a run with its own data and config; pass no other data or config options"
        if args.resume is None and (args.data is None or args.out is None):
            return "train needs --data and --out (or --resume RUN_DIR)"
    if args.command == "predict":
        if bool(args.source) == bool(args.videos):
            return "give either video files/folders or --source, not both or neither"
        if args.overlay and (not args.timeline or len(args.videos) != 1):
            return "--overlay needs --timeline and exactly one video"
    return None


def check_paths(args: argparse.Namespace) -> None:
    """The files and folders the command names exist (checked before torch is imported, so that a typo
    is reported at once); videos to predict are not: a missing one is skipped and reported like a bad one.

    Raises:
        ActivityError: the first missing one.
    """
    for name in ("data", "val", "resume"):
        value = getattr(args, name, None)
        if value is not None and not Path(value).exists():
            raise ActivityError(f"{value}: no such file or directory")
    config = getattr(args, "config", None)
    if config is not None and not Path(config).is_file():
        raise ActivityError(f"{config}: config file not found")
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is not None and not Path(checkpoint).exists():
        raise ActivityError(f"{checkpoint}: checkpoint not found")
    video = getattr(args, "video", None)
    if video is not None and not Path(video).exists():
        raise ActivityError(f"{video}: no such file or directory")


def cmd_train(args: argparse.Namespace) -> int:
    from activity import workflows

    opts = options_from_args(args)
    if args.resume is not None:
        r = workflows.resume(args.resume, opts)
    else:
        r = workflows.train(args.data, args.out, config_from_args(args), opts, val=args.val, group_regex=args.group_regex)
    if opts.is_main:
        output.print_train(r)
    return _finish(args, r.train_clips + r.val_clips, r.skipped)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from activity import workflows

    r = workflows.evaluate(args.checkpoint, args.data, args.out, options_from_args(args))
    output.print_evaluation(r)
    return _finish(args, r.processed, r.skipped)


def cmd_predict(args: argparse.Namespace) -> int:
    from activity import workflows
    from activity.inference.recognizer import load_model

    opts = options_from_args(args)
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
        output.print_predictions(r)
    return _finish(args, len(r.predictions), r.skipped)


def _predict_timeline(model, paths: list[Path], args: argparse.Namespace, empty: dict[Path, str]) -> int:
    from activity.errors import VideoError
    from activity.inference.timeline import write_overlay

    if args.overlay and len(paths) != 1:
        raise ActivityError(f"--overlay takes exactly one video; {', '.join(map(str, args.videos))} holds {len(paths)}")
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
            output.print_timeline(p, tl)
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

    cfg = config_from_args(args)
    opts = options_from_args(args)
    if args.dist.enabled:
        # Under torchrun the ranks share the extraction into the cache; the cross-validation itself
        # runs on rank 0, which then finds every entry in the cache.
        r = workflows.extract(args.data, cfg, opts)
        args.dist.leave()
        if not args.dist.is_main:
            return _finish(args, r.videos, r.skipped)
        opts = opts.replace(dist=None, on_error=None)  # rank 0 reported the skipped videos already
    if args.temporal is None:
        from activity.evaluation.cv import model_names

        args.temporal = model_names()
    print(f"cross-validating {', '.join(args.temporal)} on {args.data}", file=sys.stderr)
    report = workflows.cv(args.data, cfg, args.temporal, opts, folds=args.folds, group_regex=args.group_regex,
                          leave_one_group_out=args.leave_one_group_out)
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
    for line in (expl.note, expl.caveat):  # the caveat: attention weights do not depend on --target
        if line:
            print(f"note: {line}", file=sys.stderr)
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
