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
from typing import Sequence

from activity.errors import ActivityError


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
    from activity.features.backbones import get_spec
    from activity.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.backbone:
        cfg.set("features.backbone", args.backbone, source="--backbone")
    if isinstance(getattr(args, "temporal", None), str):
        cfg.set("model.temporal", args.temporal, source="--temporal")
    if getattr(args, "val_fraction", None) is not None:
        cfg.set("train.val_fraction", args.val_fraction, source="--val-fraction")
    get_spec(cfg.features.backbone)  # unknown backbone: fail before any work
    return cfg


def _temporal_list(text: str) -> list[str]:
    from activity.evaluation.cv import MODEL_NAMES

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in MODEL_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODEL_NAMES)}; got {text!r}")
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
    if _main_rank(args):
        print(f"{processed} processed, {len(skipped)} skipped" + (f" ({why})" if why else ""), file=sys.stderr)
    if processed == 0 or (getattr(args, "strict", False) and skipped):
        return 1
    return 0


def _main_rank(args: argparse.Namespace) -> bool:
    """True where summaries are printed and result files written: rank 0 under torchrun, else always."""
    dist = getattr(args, "dist", None)
    return dist is None or dist.is_main


def _extract(paths, cfg, args, *, progress: bool = True):
    """Features for ``paths`` through the cache, reporting unreadable videos as they are found."""
    from activity.features.backbones import create_backbone
    from activity.features.cache import FeatureCache, default_cache_dir
    from activity.features.extract import extract
    from activity.features.spec import FeatureSpec

    spec = FeatureSpec.from_config(cfg.features)
    cache = FeatureCache(args.cache or default_cache_dir(), spec)
    return extract(
        paths, spec, cache, lambda: create_backbone(spec.backbone),
        decoder=cfg.features.decoder, workers=args.workers, device=args.device,
        progress=progress and not args.quiet and _main_rank(args), on_error=_skip,
        compile_backbone=_compile_choice(args),
    )


def _features(paths, cfg, args, *, read_all: bool = True):
    """:func:`_extract`, with the extraction shared among the ranks under torchrun.

    Each rank extracts its shard (:meth:`~activity.distributed.DistInfo.shard`)
    into the cache; the ranks then exchange what they extracted and which
    videos they skipped. With ``read_all``, this rank then reads everyone
    else's entries from the cache (which must be a folder all ranks see;
    an entry it cannot find there it extracts itself). Without it, the result
    holds this rank's features only; ``failed``, ``extracted`` and ``frames``
    always cover all ranks.
    """
    from activity.features.extract import ExtractResult

    dist = args.dist
    if not dist.enabled:
        return _extract(paths, cfg, args)
    mine = _extract(dist.shard(paths), cfg, args)
    failed: dict = {}
    extracted = frames = 0
    for part_failed, part_extracted, part_frames in dist.all_gather((mine.failed, mine.extracted, mine.frames)):
        failed.update(part_failed)
        extracted += part_extracted
        frames += part_frames
    failed = {p: failed[p] for p in dict.fromkeys(paths) if p in failed}  # in input order, as one process finds them
    res = ExtractResult(dict(mine.features), failed, extracted, frames)
    if read_all:
        rest = _extract([p for p in dict.fromkeys(paths) if p not in failed and p not in mine.features], cfg, args, progress=False)
        if rest.extracted:
            print(f"warning: rank {dist.rank} extracted {rest.extracted} video(s) that other ranks had extracted but it could "
                  "not find in the cache; give all ranks a --cache folder they all see", file=sys.stderr)
        res.features.update(rest.features)
        res.failed.update(rest.failed)
    return res


# ---------------------------------------------------------------- commands

def cmd_backbones(args: argparse.Namespace) -> int:
    from activity.features.backbones import DEFAULT_BACKBONE, get_spec, list_backbones
    from activity.evaluation.reports import format_table

    rows = []
    for name in list_backbones():
        s = get_spec(name)
        rows.append([name + (" (default)" if name == DEFAULT_BACKBONE else ""), str(s.feature_dim), f"{s.preprocess.crop_size}px",
                     "yes" if s.weights_available() else "no", s.source])
    print(format_table(rows, ["backbone", "features", "input", "offline", "weights"]))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    import time

    from activity.data.collection import load_dataset
    from activity.features.extract import require_features

    cfg = _config(args)
    ds = load_dataset(args.data, require_labels=False)
    t0 = time.perf_counter()
    res = _features(ds.paths, cfg, args, read_all=False)  # under torchrun: this rank's shard, totals over all ranks
    dt = time.perf_counter() - t0
    kept = [p for p in ds.paths if p not in res.failed]  # every other video has features now
    if not kept:
        require_features(res, str(args.data))
    cached = len(kept) - res.extracted
    rate = f", {res.frames / dt:.1f} frames/s" if res.extracted else ""
    procs = f" by {args.dist.world_size} processes" if args.dist.enabled else ""
    if _main_rank(args):
        print(f"{len(kept)} videos with features: {res.extracted} extracted{procs}, {cached} from the cache "
              f"({res.frames} frames in {dt:.1f} s{rate})")
    return _finish(args, len(kept), res.failed)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from activity.temporal.checkpoint import Checkpoint, save_checkpoint
    from activity.config import save_config
    from activity.data.collection import load_dataset
    from activity.data.splits import train_val_datasets
    from activity.features.extract import require_features
    from activity.temporal.train import fit

    if args.resume is not None:
        cfg = _resume_args(args)
    else:
        if args.data is None or args.out is None:
            raise ActivityError("train needs --data and --out (or --resume RUN_DIR)")
        cfg = _config(args)
    out = Path(args.out)
    ds = load_dataset(args.data, group_regex=args.group_regex)
    given_val = load_dataset(args.val, group_regex=args.group_regex) if args.val else None
    train_ds, val_ds, unknown = train_val_datasets(ds, given_val, cfg.train.val_fraction, seed=cfg.train.seed)
    dropped = {s.path: f"label {s.label!r} is not one of the training classes" for s in unknown}
    main_rank = _main_rank(args)  # under torchrun only rank 0 prints and writes
    for path, reason in dropped.items():
        if main_rank:
            _skip(path, reason)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    if args.resume is None and main_rank:
        save_config(cfg, out / "config.yaml")
        run = {"data": str(Path(args.data).resolve()), "val": str(Path(args.val).resolve()) if args.val else None, "group_regex": args.group_regex}
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")

    res = _features(train_ds.paths + (val_ds.paths if val_ds else []), cfg, args)
    require_features(res, str(args.data))
    train_ds, train_x = res.readable(train_ds)
    if train_x is None:
        raise ActivityError(f"{args.data}: no readable training video")
    train_y = torch.from_numpy(train_ds.targets())
    val_x = val_y = None
    if val_ds is not None:
        val_ds, val_x = res.readable(val_ds)
        val_y = torch.from_numpy(val_ds.targets()) if val_x is not None else None
    missing = sorted(set(range(len(ds.classes))) - set(train_y.tolist()))
    if missing and main_rank:
        print(f"warning: no training clip for class(es) {', '.join(ds.classes[i] for i in missing)} "
              "(none readable, or all of them in the validation collection)", file=sys.stderr)
    n_val = 0 if val_x is None else len(val_x)
    procs = f" in {args.dist.world_size} processes" if args.dist.enabled else ""
    if main_rank:
        print(f"training {cfg.model.temporal} on {len(train_x)} clips, validating on {n_val}, {len(ds.classes)} classes{procs}", file=sys.stderr)

    result = fit(cfg, train_x, train_y, len(ds.classes), val_x, val_y, out_dir=out, progress=not args.quiet and main_rank,
                 resume=args.resume is not None, dist=args.dist)
    metrics = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "val_accuracy": result.best_val_accuracy,
        "train_clips": len(train_x),
        "val_clips": n_val,
        "skipped": {str(p): r for p, r in {**dropped, **res.failed}.items()},
    }
    if main_rank:
        save_checkpoint(out / "model.pt", Checkpoint(result.model, list(ds.classes), cfg, int(train_x.shape[-1]), metrics))
        (out / "train_summary.json").write_text(json.dumps(metrics, indent=2) + "\n")
        val = ""
        if result.best_val_accuracy is not None:
            at = (f"ensemble of {len(result.members)}, members' best epochs {', '.join(map(str, result.best_epoch))}"
                  if result.members else f"at epoch {result.best_epoch}")
            val = f", best validation accuracy {result.best_val_accuracy:.3f} ({at})"
        print(f"saved {out / 'model.pt'}{val}")
    return _finish(args, len(train_x) + n_val, {**dropped, **res.failed})


def _resume_args(args: argparse.Namespace):
    """Fill ``args`` and the config from an interrupted run's folder."""
    from activity.config import load_config

    run_dir = Path(args.resume)
    if not (run_dir / "run.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise ActivityError(f"{run_dir}: not a run folder to resume (no run.json and config.yaml)")
    if args.data or args.out or args.val or args.config or args.overrides or args.backbone or args.temporal:
        raise ActivityError("--resume continues a run with its own data and config; pass no other data or config options")
    run = json.loads((run_dir / "run.json").read_text())
    args.data, args.val, args.group_regex, args.out = run["data"], run["val"], run["group_regex"], run_dir
    return load_config(run_dir / "config.yaml")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from activity.temporal.checkpoint import load_checkpoint
    from activity.data.collection import load_dataset
    from activity.evaluation.metrics import compute_metrics
    from activity.evaluation.reports import format_table, write_report
    from activity.features.extract import ExtractResult, require_features
    from activity.inference.recognizer import ActionRecognizer

    dist = args.dist
    ckpt = load_checkpoint(args.checkpoint)
    ds = load_dataset(args.data, group_regex=None)
    skipped = {}
    for s in ds.samples:
        if s.label not in ckpt.classes:
            skipped[s.path] = f"label {s.label!r} is not one of the model's classes"
            if dist.is_main:
                _skip(s.path, skipped[s.path])
    ds = ds.subset([i for i, s in enumerate(ds.samples) if s.path not in skipped])
    ds.classes = list(ckpt.classes)
    if not len(ds):
        raise ActivityError(f"{args.data}: no video with one of the model's classes ({', '.join(ckpt.classes)})")
    model = ActionRecognizer(ckpt, cache_dir=args.cache, device=args.device, workers=args.workers,
                             compile_backbone=_compile_choice(args))
    # Under torchrun each rank scores its shard; rank 0 gathers the probabilities and writes the report.
    mine = dist.shard(ds.paths)
    res = model.features(mine, progress=not args.quiet and dist.is_main, on_error=_skip)
    ok = [p for p in mine if p in res.features]
    probs = model.probabilities(np.stack([res.features[p] for p in ok])) if ok else None
    failed = {p: r for part in dist.all_gather(res.failed) for p, r in part.items()}
    failed = {p: failed[p] for p in dict.fromkeys(ds.paths) if p in failed}  # in input order, as one process finds them
    skipped.update(failed)
    scored = dist.gather((ok, probs))
    if scored is None:  # not rank 0: the report is rank 0's
        return _finish(args, sum(p not in failed for p in ds.paths), skipped)
    by_path = {p: pr for part_ok, part_probs in scored if part_ok for p, pr in zip(part_ok, part_probs)}
    if not by_path:
        require_features(ExtractResult({}, failed), str(args.data))  # no readable video: one clear error
    kept = ds.subset([i for i, s in enumerate(ds.samples) if s.path in by_path])
    probs = np.stack([by_path[p] for p in kept.paths])
    y = kept.targets(ckpt.classes)
    result = compute_metrics(y, probs, ckpt.classes)
    metrics = write_report(args.out, result, ckpt.classes, kept.paths, y, probs, skipped)
    rows = [[c, f"{result['report'][c]['precision']:.3f}", f"{result['report'][c]['recall']:.3f}", f"{result['report'][c]['f1-score']:.3f}", str(int(result['report'][c]['support']))] for c in ckpt.classes]
    print(format_table(rows, ["class", "precision", "recall", "f1", "clips"]))
    top5 = f"  top-5 {metrics['top5']:.3f}" if "top5" in metrics else ""
    print(f"\ntop-1 {metrics['top1']:.3f}{top5}  mean class accuracy {metrics['mean_class_accuracy']:.3f}  "
          f"({metrics['num_videos']} videos, {metrics['skipped']} skipped) -> {args.out}")
    return _finish(args, len(kept), skipped)


def cmd_predict(args: argparse.Namespace) -> int:
    from activity.data.collection import VIDEO_EXTENSIONS
    from activity.evaluation.reports import format_table
    from activity.inference.recognizer import load_model, write_predictions

    if args.top_k < 1:
        raise ActivityError(f"--top-k must be at least 1, got {args.top_k}")
    if bool(args.source) == bool(args.videos):
        raise ActivityError("give either video files/folders or --source, not both or neither")
    model = load_model(args.checkpoint, cache_dir=args.cache, device=args.device, workers=args.workers,
                       compile_backbone=_compile_choice(args))
    if args.source:
        return _predict_stream(model, args)
    paths: list[Path] = []
    empty: dict[Path, str] = {}
    for v in args.videos:
        p = Path(v)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                empty[p] = "is a directory with no video files"
                _skip(p, empty[p])
            paths += found
        else:
            paths.append(p)
    if args.timeline:
        return _predict_timeline(model, paths, args, empty)
    preds, failed = model.predict_many(paths, top_k=args.top_k, progress=not args.quiet and len(paths) > 1, on_error=_skip)
    failed = {**empty, **failed}
    if args.results_dir:
        written = write_predictions(preds, failed, args.results_dir, args.results_format)
        print(f"wrote {written}", file=sys.stderr)
    if args.json:
        out = {"predictions": [p.as_dict() for p in preds], "skipped": {str(p): r for p, r in failed.items()}}
        print(json.dumps(out, indent=2))
    elif not args.results_dir or len(preds) <= 20:
        rows = []
        for p in preds:
            for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), 1):
                rows.append([str(p.path) if rank == 1 else "", str(rank), label, f"{prob:.3f}"])
        if rows:
            print(format_table(rows, ["video", "rank", "label", "probability"]))
    return _finish(args, len(preds), failed)


def _predict_timeline(model, paths: list[Path], args: argparse.Namespace, empty: dict[Path, str]) -> int:
    from activity.evaluation.reports import format_table
    from activity.errors import VideoError
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
    if args.dist.enabled:
        # Under torchrun the ranks share the extraction into the cache; the cross-validation itself
        # runs on rank 0, which then finds every entry in the cache.
        from activity.data.collection import load_dataset

        ds = load_dataset(args.data, group_regex=args.group_regex)
        res = _features(ds.paths, _config(args), args, read_all=False)
        args.dist.leave()
        if not args.dist.is_main:
            return _finish(args, sum(p not in res.failed for p in ds.paths), res.failed)
    import shlex

    from activity.evaluation.cv import run_cv

    cfg = _config(args)
    print(f"cross-validating {', '.join(args.temporal)} on {args.data}", file=sys.stderr)
    report = run_cv(args.data, cfg, args.temporal, folds=args.folds, group_regex=args.group_regex, cache_dir=args.cache,
                    workers=args.workers, device=args.device, progress=not args.quiet, on_error=_skip,
                    compile_backbone=_compile_choice(args))
    print(f"$ activity {shlex.join(sys.argv[1:])}")
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps({"command": ["activity", *sys.argv[1:]], **report.to_dict()}, indent=2) + "\n")
    return _finish(args, report.clips, report.skipped)


def cmd_check(args: argparse.Namespace) -> int:
    from activity.evaluation.check import check_dataset, format_report
    from activity.data.collection import load_dataset

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
    p.add_argument("--temporal", choices=["lstm", "mean"], default=None, help="temporal model (default: lstm)")
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
    p.add_argument("--temporal", type=_temporal_list, default=["lstm", "mean", "pooled_lr", "middle_lr"],
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
    p.add_argument("--decoder", choices=["auto", "decord", "opencv"], default="auto")
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


def _compile_choice(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[args.compile]


class _NoteHandler(logging.Handler):
    """The package's warnings as one ``note:`` line each on stderr (looked up at each record, so
    that captured or redirected stderr gets them)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pkg = logging.getLogger("activity")
    if not any(isinstance(h, _NoteHandler) for h in pkg.handlers):
        pkg.addHandler(_NoteHandler(logging.WARNING))
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
