"""The ``activity`` commands: each turns its arguments into a config and
:class:`~activity.features.extract.ExtractOptions`, calls one function of :mod:`activity.workflows`
and prints the result (:mod:`activity.cli.output`). Nothing else of the package is imported here:
what a command does, a notebook or a server does with the same call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from activity.cli import output

if TYPE_CHECKING:  # imported inside each command: torch loads only once the arguments are checked
    from activity import workflows
    from activity.workflows import Config, ExtractOptions


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``--config``, the ``key=value`` overrides, ``--backbone``, ``--temporal`` and ``--val-fraction``."""
    from activity import workflows

    cfg = workflows.load_config(args.config, args.overrides)
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
    from activity.workflows import ExtractOptions

    return ExtractOptions(
        cache_dir=getattr(args, "cache", None), workers=getattr(args, "workers", None), device=getattr(args, "device", "cpu"),
        runtime=getattr(args, "runtime", "auto"),
        progress=progress and not getattr(args, "quiet", False), on_error=_skip, dist=getattr(args, "dist", None),
    )


def cmd_backbones(args: argparse.Namespace) -> int:
    from activity import workflows

    output.print_backbones(workflows.backbones(args.timm), timm=args.timm is not None)
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

    opts = options_from_args(args)
    if args.source:
        return _predict_live(args, opts)
    model = workflows.load_model(args.checkpoint, opts)
    if args.timeline:
        return _predict_timeline(model, args, opts)
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


def _predict_timeline(model: workflows.ActionRecognizer, args: argparse.Namespace, opts: ExtractOptions) -> int:
    from activity import workflows

    def show(tl: workflows.Timeline, written: list[Path]) -> None:
        for f in written:
            print(f"wrote {f}", file=sys.stderr)
        if not args.json:
            output.print_timeline(Path(tl.path), tl)

    r = workflows.timelines(model, args.videos, opts, window=args.window, stride=args.stride, top_k=args.top_k,
                            threshold=args.threshold, smooth=args.smooth, results_dir=args.results_dir,
                            results_format=args.results_format, overlay=args.overlay, on_timeline=show)
    if args.json:
        print(json.dumps({"timelines": [t.as_dict() for t in r.timelines],
                          "skipped": {str(p): why for p, why in r.skipped.items()}}, indent=2))
    return _finish(args, len(r.timelines), r.skipped)


def _predict_live(args: argparse.Namespace, opts: ExtractOptions) -> int:
    from activity import workflows

    def show(r: workflows.StreamResult) -> None:
        if args.json:
            print(json.dumps(r.as_dict()), flush=True)
            return
        labels = ", ".join(f"{l} {p:.2f}" for l, p in zip(r.labels, r.probabilities))
        print(f"[{r.time:7.2f}s] {labels}  (dropped frames: {r.dropped})", flush=True)

    stats = workflows.live(args.checkpoint, args.source, opts, window=args.window, rate=args.rate,
                           max_seconds=args.max_seconds, top_k=args.top_k, on_result=show)
    print(f"{stats.frames_read} frames read, {stats.inferences} predictions, {stats.frames_dropped} frames dropped", file=sys.stderr)
    return 0 if stats.inferences else 1


def cmd_cv(args: argparse.Namespace) -> int:
    import shlex

    from activity import workflows

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
    names = args.temporal or workflows.cv_model_names()
    print(f"cross-validating {', '.join(names)} on {args.data}", file=sys.stderr)
    report = workflows.cv(args.data, cfg, names, opts, folds=args.folds, group_regex=args.group_regex,
                          leave_one_group_out=args.leave_one_group_out, streams=args.members)
    command = ["activity", *sys.argv[1:]]
    results = {"command": command, **report.to_dict()}
    if args.results_dir is not None:
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        print(f"wrote {workflows.write_json(Path(args.results_dir) / 'cv.json', results)}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"$ {shlex.join(command)}")
        print(report.table())
    return _finish(args, report.clips, report.skipped)


def cmd_check(args: argparse.Namespace) -> int:
    from activity import workflows

    report = workflows.check(args.data, args.val, group_regex=args.group_regex, decoder=args.decoder, progress=not args.quiet)
    output.print_check(report)
    return 1 if report.problems else 0


def cmd_explain(args: argparse.Namespace) -> int:
    import math

    from activity import workflows

    r = workflows.explain(args.checkpoint, args.video, args.out, method=args.method, target=args.target,
                          columns=args.columns, device=args.device)
    expl = r.explanation
    for line in (expl.note, expl.caveat):  # the caveat: attention weights do not depend on --target
        if line:
            print(f"note: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(expl.as_dict(), indent=2))
    else:
        k = expl.top_frame
        when = f"{expl.times[k]:.2f}s" if math.isfinite(expl.times[k]) else "time unknown"
        print(f"{expl.path}: {expl.label} {expl.probability:.3f}; most important frame #{expl.indices[k]} ({when}) "
              f"by {expl.method} -> {r.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from activity import workflows

    out = workflows.export(args.checkpoint, args.format, args.out)
    print(f"wrote {out} and {out}.json (classes, input shape, sampling, preprocessing)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from activity.cli.serve import run_server

    return run_server(args.checkpoint, host=args.host, port=args.port, reports=args.reports, max_concurrent=args.max_concurrent,
                      max_queue=args.max_queue, max_upload_mb=args.max_upload_mb, device=args.device, quiet=args.quiet)


def cmd_demo(args: argparse.Namespace) -> int:
    from activity.cli.demo import run_demo

    return run_demo(Path(args.out), cache=args.cache, quiet=args.quiet)
