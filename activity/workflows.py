"""What a user does, as plain functions: extract, train, evaluate, predict, timelines, live sources,
cross-validate, check a collection, explain a prediction, export a model and list the backbones.

Each takes a config (or a checkpoint) and, where it reads videos, an
:class:`~activity.features.extract.ExtractOptions`, and returns a result object;
the ``activity`` command line only parses its arguments, calls one of these and
prints the result (``activity demo`` calls them in turn), so a notebook or a
server gets the same behaviour from the same call. Under torchrun (an
``options.dist`` that is enabled) the ranks share the extraction and only rank
0 writes files.

>>> from activity import workflows
>>> from activity.config import load_config
>>> from activity.features.extract import ExtractOptions
>>> run = workflows.train("clips/", "run/", load_config(), ExtractOptions(workers=0))
>>> report = workflows.evaluate("run/model.pt", "test_clips/", "eval/")
>>> report.metrics["top1"]
0.91

Progress messages go to the ``activity`` logger (INFO), warnings at WARNING;
unreadable videos are reported through ``options.on_error`` and returned in
each result's ``skipped``, and every other video is still processed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from activity.config import Config, load_config, save_config
from activity.data.collection import VIDEO_EXTENSIONS
from activity.errors import ActivityError, VideoError, describe, first_line
from activity.features.extract import (
    ExtractOptions,
    Extractor,
    ExtractResult,
    require_features,
)
from activity.io import write_json

if TYPE_CHECKING:
    from activity.data.collection import VideoDataset
    from activity.evaluation.check import CheckReport
    from activity.evaluation.cv import CVReport
    from activity.inference.explain import Explanation
    from activity.inference.stream import StreamResult, StreamStats  # noqa: F401 - StreamResult: what live passes on_result
    from activity.inference.timeline import Timeline
    from activity.inference.recognizer import ActionRecognizer, Prediction
    from activity.temporal.train import FitResult

log = logging.getLogger(__name__)

#: A video and why it was skipped.
Skipped = dict[Path, str]


def _warn(message: str) -> None:
    log.warning(message, extra={"prefix": "warning"})


def _skip(options: ExtractOptions, skipped: Skipped) -> None:
    """Report each skipped video through ``options.on_error`` (on rank 0 only)."""
    if options.on_error is not None and options.is_main:
        for path, reason in skipped.items():
            options.on_error(path, reason)


def load_model(checkpoint: str | Path, options: ExtractOptions = ExtractOptions()) -> ActionRecognizer:
    """A trained model (``RUN/model.pt`` or the run folder) with its backbone, to call :func:`predict`,
    :func:`timelines` or :func:`live` on many times without loading it again."""
    from activity.inference.recognizer import load_model as load

    return load(checkpoint, options)


def check_config(cfg: Config) -> Config:
    """Fail before any work, with the key named, on a bad value in a config built in Python
    (:meth:`~activity.config.Config.check`)."""
    return cfg.check()


# ---------------------------------------------------------------- extract

@dataclass
class ExtractReport:
    """What :func:`extract` did: videos with features now, how many were computed, and the skipped ones."""

    videos: int
    extracted: int
    cached: int
    frames: int
    seconds: float
    skipped: Skipped = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def extract(data: str | Path, cfg: Config, options: ExtractOptions = ExtractOptions()) -> ExtractReport:
    """Extract and cache backbone features for a collection (labels not needed).

    Args:
        data: class folder, list file, CSV, a folder of videos or one video.
        cfg: the config; only its ``features`` section matters.
        options: how to extract (cache, workers, device, ...).

    Raises:
        ActivityError: the collection is missing or empty, or no video could be read.
    """
    from activity.data.collection import load_dataset

    check_config(cfg)
    ds = load_dataset(data, require_labels=False)
    t0 = time.perf_counter()
    res = Extractor(cfg.features, options)(ds.paths, read_all=False)  # under torchrun: this rank's shard, totals over all
    kept = [p for p in ds.paths if p not in res.failed]  # every other video has features now
    if not kept:
        require_features(res, str(data))
    return ExtractReport(len(kept), res.extracted, len(kept) - res.extracted, res.frames, time.perf_counter() - t0,
                         dict(res.failed), list(res.notes))


# ---------------------------------------------------------------- train

@dataclass
class TrainReport:
    """A finished training run: where its checkpoint is, the fit, and what was left out."""

    out: Path
    checkpoint: Path
    classes: list[str]
    fit: FitResult
    train_clips: int
    val_clips: int
    feature_dim: int
    skipped: Skipped = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=lambda: {"split": "none"})  # splits.describe_validation

    @property
    def metrics(self) -> dict[str, Any]:
        """What ``train_summary.json`` and the checkpoint record."""
        return {"best_epoch": self.fit.best_epoch, "epochs_run": len(self.fit.history),
                "val_accuracy": self.fit.best_val_accuracy, "train_clips": self.train_clips,
                "val_clips": self.val_clips, "validation": self.validation,
                "skipped": {str(p): r for p, r in self.skipped.items()},
                **({"selection": self.fit.selection} if self.fit.selection else {})}


def train(
    data: str | Path,
    out: str | Path,
    cfg: Config,
    options: ExtractOptions = ExtractOptions(),
    *,
    val: str | Path | None = None,
    group_regex: str | None = None,
    resume: bool = False,
) -> TrainReport:
    """Train a temporal model on a collection's cached features; writes ``out/model.pt`` and the run's files.

    Args:
        data: class folder, list file or CSV.
        out: run folder (``model.pt``, ``config.yaml``, ``run.json``, ``metrics.csv``, ``train_summary.json``,
            ``curves.png``, and ``tensorboard/`` where tensorboard is installed: see :mod:`activity.evaluation.curves`).
        cfg: the recipe.
        options: how to extract features.
        val: a validation collection (default: a split of ``data`` by ``cfg.train.val_fraction``,
            by group when known).
        group_regex: regex over file names giving the recording group.
        resume: continue an interrupted run in ``out`` (see :func:`resume`).
    """
    from activity.data.collection import load_dataset
    from activity.data.splits import describe_validation, train_val_datasets

    check_config(cfg)
    out = Path(out)
    ds = load_dataset(data, group_regex=group_regex).require_classes()
    given_val = load_dataset(val, group_regex=group_regex) if val else None
    train_ds, val_ds, unknown = train_val_datasets(ds, given_val, cfg.train.val_fraction, seed=cfg.train.seed)
    dropped = {s.path: f"label {s.label!r} is not one of the training classes" for s in unknown}
    _skip(options, dropped)
    if options.is_main:  # under torchrun only rank 0 writes
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_config(cfg, out / "config.yaml")
            write_json(out / "run.json", {"data": str(Path(data).resolve()), "val": str(Path(val).resolve()) if val else None,
                                          "group_regex": group_regex})
    res = Extractor(cfg.features, options)(train_ds.paths + (val_ds.paths if val_ds else []))
    require_features(res, str(data))
    sides = _training_tensors(res, train_ds, val_ds, str(data))
    report = _fit(cfg, sides, ds.classes, out, options, resume, describe_validation(val_ds, val))
    report.skipped = {**dropped, **res.failed}
    if options.is_main:
        _save_run(report, cfg)
    return report


def _training_tensors(res: ExtractResult, train_ds: VideoDataset, val_ds: VideoDataset | None, what: str) -> tuple:
    """``(train_x (N, L, D), train_y (N,), val_x or None, val_y or None, groups of each side or None)`` of the readable clips."""
    import torch

    train_ds, train_x = res.readable(train_ds)
    if train_x is None:
        raise ActivityError(f"{what}: no readable training video")
    train_y = torch.from_numpy(train_ds.targets())
    val_x = val_y = val_groups = None
    if val_ds is not None:
        val_ds, val_x = res.readable(val_ds)
        val_y = torch.from_numpy(val_ds.targets()) if val_x is not None else None
        val_groups = val_ds.groups() if val_x is not None else None
    return train_x, train_y, val_x, val_y, (train_ds.groups(), val_groups)


#: Fewer validation clips than this (or than two per class) make its accuracy mostly noise.
MIN_VALIDATION_CLIPS = 10


def _warn_small_validation(val_y: Any, num_classes: int) -> None:
    """A warning when the validation side is too small to choose the epoch and the fusion weight."""
    n, covered = len(val_y), len(set(val_y.tolist()))
    if n >= max(MIN_VALIDATION_CLIPS, 2 * num_classes):
        return
    _warn(f"validation on only {n} clip{'s' * (n != 1)} ({covered} of {num_classes} classes): its accuracy, which picks "
          "the best epoch, is mostly noise; pass --val with more clips, or raise train.val_fraction")


def _fit(cfg: Config, sides: tuple, classes: list[str], out: Path, options: ExtractOptions, resume: bool,
         validation: dict[str, Any]) -> TrainReport:
    from activity.data.splits import validation_phrase
    from activity.evaluation.curves import TensorBoardLog
    from activity.temporal.models import POOLED_MODELS
    from activity.temporal.train import fit

    train_x, train_y, val_x, val_y, groups = sides
    missing = sorted(set(range(len(classes))) - set(train_y.tolist()))
    if missing and options.is_main:
        _warn(f"no training clip for class(es) {', '.join(classes[i] for i in missing)} "
              "(none readable, or all of them in the validation collection)")
    n_val = 0 if val_x is None else len(val_x)
    if val_x is not None and options.is_main and cfg.model.temporal not in POOLED_MODELS:  # no epochs to pick
        _warn_small_validation(val_y, len(classes))  # type: ignore[arg-type]
    dist = options.dist
    procs = f" in {dist.world_size} processes" if dist is not None and dist.enabled else ""
    if options.is_main:
        how = f"validating on {n_val}: {validation_phrase(validation)}" if n_val else "no validation"
        log.info(f"training {cfg.model.temporal} on {len(train_x)} clips, {len(classes)} classes{procs}; {how}")
    board = TensorBoardLog.open(out / "tensorboard") if options.is_main else None  # live, epoch by epoch
    try:
        result = fit(cfg, train_x, train_y, len(classes), val_x, val_y, out_dir=out, resume=resume, dist=dist,
                     progress=options.progress and options.is_main, on_epoch=None if board is None else board.write,
                     groups=groups[0], val_groups=groups[1])
    finally:
        if board is not None:
            board.close()
    return TrainReport(out, out / "model.pt", list(classes), result, len(train_x), n_val, int(train_x.shape[-1]),
                       validation=validation)


def _save_run(report: TrainReport, cfg: Config) -> None:
    from activity.temporal.checkpoint import Checkpoint, save_checkpoint

    ckpt = Checkpoint(report.fit.model, report.classes, cfg, report.feature_dim, report.metrics)
    save_checkpoint(report.checkpoint, ckpt)
    write_json(report.out / "train_summary.json", report.metrics)
    _draw_curves(report)


def _draw_curves(report: TrainReport) -> None:
    """``curves.png`` of the whole history (a resumed run's too) and, for a fusion, ``fusion.png`` of how its
    weights were chosen; the model is saved already, so a failure only warns."""
    from activity.evaluation.curves import write_curves, write_fusion

    sel = report.fit.selection
    drawings = [("curves.png", lambda p: write_curves(report.fit.history, p, report.fit.best_epoch), bool(report.fit.history)),
                ("fusion.png", lambda p: write_fusion(sel, p), "out_of_fold_accuracy" in sel
                 or "validation_member_accuracy" in sel)]
    for name, draw, wanted in drawings:  # a logistic baseline has no epochs; a one-stream model no weight
        try:
            if wanted:
                draw(report.out / name)
        except Exception as e:
            _warn(f"could not draw {report.out / name} ({type(e).__name__}: {e})")


def resume(run_dir: str | Path, options: ExtractOptions = ExtractOptions()) -> TrainReport:
    """Continue an interrupted :func:`train` run from its last completed epoch, with its own data and config."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise ActivityError(f"{run_dir}: not a run folder to resume (no run.json and config.yaml)")
    try:
        run = json.loads((run_dir / "run.json").read_text())
        data, val, group_regex = run["data"], run.get("val"), run.get("group_regex")
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ActivityError(f"{run_dir / 'run.json'}: not a run record ({type(e).__name__}: {e})") from None
    return train(data, run_dir, load_config(run_dir / "config.yaml"), options, val=val, group_regex=group_regex, resume=True)


# ---------------------------------------------------------------- evaluate

@dataclass
class EvaluateReport:
    """An evaluation: metrics as written to ``metrics.json`` (None on ranks other than 0), and the skipped videos."""

    out: Path
    classes: list[str]
    processed: int
    metrics: dict[str, Any] | None
    report: dict[str, Any] | None  # per class: precision, recall, f1-score, support
    skipped: Skipped = field(default_factory=dict)


def evaluate(checkpoint: str | Path, data: str | Path, out: str | Path,
             options: ExtractOptions = ExtractOptions()) -> EvaluateReport:
    """Evaluate a checkpoint on a labelled collection; writes metrics.json, per_class.csv,
    confusion_matrix.csv/.png and predictions.csv under ``out``.

    Clips whose label is not one of the model's classes are skipped and reported.
    """
    from activity.data.collection import load_dataset
    from activity.evaluation.metrics import compute_metrics
    from activity.evaluation.reports import write_report
    from activity.inference.recognizer import load_model

    model = load_model(checkpoint, options)
    classes = list(model.classes)
    ds = load_dataset(data, group_regex=None)
    if not any(s.label in classes for s in ds.samples):  # checked before any clip is reported: one line says it all
        unknown = sorted({str(s.label) for s in ds.samples})
        raise ActivityError(f"{data}: none of its labels ({_listed(unknown)}) is one of the model's classes "
                            f"({_listed(classes)})")
    skipped = {s.path: f"label {s.label!r} is not one of the model's classes" for s in ds.samples if s.label not in classes}
    _skip(options, skipped)
    ds = ds.subset([i for i, s in enumerate(ds.samples) if s.path not in skipped])
    ds.classes = classes
    by_path, failed = _score_shards(model, ds.paths, options)
    skipped.update(failed)
    if by_path is None:  # not rank 0: the report is rank 0's
        return EvaluateReport(Path(out), classes, sum(p not in failed for p in ds.paths), None, None, skipped)
    if not by_path:
        require_features(ExtractResult({}, failed), str(data))  # no readable video: one clear error
    kept = ds.subset([i for i, s in enumerate(ds.samples) if s.path in by_path])
    probs = np.stack([by_path[p] for p in kept.paths])
    y = kept.targets(classes)
    result = compute_metrics(y, probs, classes)
    metrics = write_report(out, result, classes, kept.paths, y, probs, skipped)
    return EvaluateReport(Path(out), classes, len(kept), metrics, result["report"], skipped)


def _listed(names: Sequence[str], most: int = 10, sep: str = ", ") -> str:
    """``a, b, c`` or ``a, b, ... and 7 more``."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return sep.join(names[:most]) + more


def _score_shards(model: ActionRecognizer, paths: list[Path], options: ExtractOptions
                  ) -> tuple[dict[Path, np.ndarray] | None, Skipped]:
    """Class probabilities by video, gathered on rank 0 (None elsewhere), and the failures of all ranks in input order.

    Under torchrun each rank scores its shard of ``paths``.
    """
    from activity.distributed import DistInfo

    dist = options.dist or DistInfo()
    mine = dist.shard(paths)
    res = model.features(mine, progress=options.progress and dist.is_main, on_error=options.on_error)
    ok = [p for p in mine if p in res.features]
    probs = model.probabilities(np.stack([res.features[p] for p in ok])) if ok else None
    failed = {p: r for part in dist.all_gather(res.failed) for p, r in part.items()}
    failed = {p: failed[p] for p in dict.fromkeys(paths) if p in failed}  # in input order, as one process finds them
    scored = dist.gather((ok, probs))
    if scored is None:
        return None, failed
    return {p: pr for part_ok, part_probs in scored if part_ok for p, pr in zip(part_ok, part_probs)}, failed


# ---------------------------------------------------------------- predict

@dataclass
class PredictReport:
    """Top-k predictions of each readable video, the skipped ones, and the results file if one was written."""

    predictions: list[Prediction]
    skipped: Skipped = field(default_factory=dict)
    written: Path | None = None


def _check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise ActivityError(f"--top-k must be at least 1, got {top_k}")


def video_files(inputs: Sequence[str | Path]) -> tuple[list[Path], Skipped]:
    """Video files and folders -> the files (a folder's videos, sorted, searched recursively), and the empty folders."""
    paths: list[Path] = []
    empty: Skipped = {}
    for v in inputs:
        p = Path(v)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                empty[p] = "is a directory with no video files"
            paths += found
        else:
            paths.append(p)
    return paths, empty


def predict(
    model: str | Path | ActionRecognizer,
    videos: Sequence[str | Path],
    options: ExtractOptions = ExtractOptions(),
    *,
    top_k: int = 5,
    results_dir: str | Path | None = None,
    results_format: str = "csv",
) -> PredictReport:
    """Top-k actions for each video (files, or folders of them).

    Args:
        model: a checkpoint path, or a loaded :class:`~activity.inference.recognizer.ActionRecognizer`.
        videos: video files or folders of videos.
        options: how to extract features (ignored when ``model`` is already loaded).
        top_k: labels per video.
        results_dir: also write ``predictions.csv``/``skipped.csv`` (or ``predictions.json``) there.
        results_format: ``csv`` or ``json``.
    """
    from activity.inference.recognizer import load_model, write_predictions

    _check_top_k(top_k)
    if isinstance(model, (str, Path)):
        model = load_model(model, options)
    paths, empty = video_files(videos)
    _skip(options, empty)
    preds, failed = model.predict_many(paths, top_k=top_k, progress=options.progress and len(paths) > 1,
                                       on_error=options.on_error)
    report = PredictReport(preds, {**empty, **failed})
    if results_dir is not None:
        report.written = write_predictions(preds, report.skipped, results_dir, results_format)
    return report


# ---------------------------------------------------------------- cv

def cv(
    data: str | Path,
    cfg: Config,
    names: Sequence[str],
    options: ExtractOptions = ExtractOptions(),
    *,
    folds: int = 5,
    group_regex: str | None = None,
    threads: int | None = 1,
    leave_one_group_out: bool = False,
    streams: bool = False,
) -> CVReport:
    """Read a collection, get its features through the cache and cross-validate the named models on the same folds.

    Args:
        data: class folder, list file or CSV.
        cfg: the recipe (features, model, training); ``names`` pick the temporal model or baseline.
        names: models to compare (:func:`activity.evaluation.cv.model_names`).
        options: how to extract features. Under torchrun the ranks share the
            extraction; the cross-validation itself runs on every rank that calls this
            (the CLI lets rank 0 do it).
        folds: number of folds (capped by the number of groups, or without groups by the smallest class);
            a warning names the folds whose test side lacks a class.
        group_regex: regex over file names giving the recording group; folds then never split a group.
        threads: CPU threads while fitting (see :func:`~activity.evaluation.cv.cross_validate`).
        leave_one_group_out: instead of ``folds``, one fold per group, tested on that group
            (:func:`~activity.data.splits.leave_one_group_out`): the scene-shift test.
        streams: also report each stream of a two-stream model alone (see :func:`~activity.evaluation.cv.cross_validate`).
    """
    from activity.data import splits as splitting
    from activity.data.collection import load_dataset
    from activity.evaluation.cv import CVReport, build_models, cross_validate

    check_config(cfg)
    models = build_models(cfg, names)
    ds = load_dataset(data, group_regex=group_regex).require_classes()
    res = Extractor(cfg.features, options)(ds.paths)
    require_features(res, str(data))
    kept, feats = res.readable(ds)
    groups = kept.groups()
    if leave_one_group_out:
        splits = splitting.leave_one_group_out(kept.targets(), groups)
    else:
        splits = splitting.kfold_splits(kept.targets(), groups, folds, seed=cfg.train.seed)
    missing = splitting.classes_missing_from_tests(splits, kept.targets())
    if missing and options.is_main:
        lacks = _listed([f"fold {k + 1}: {', '.join(kept.classes[c] for c in cs)}" for k, cs in missing.items()], 5, "; ")
        advice = "; fewer --folds, or groups holding more classes, avoid it" if groups is not None and not leave_one_group_out else ""
        _warn(f"{len(missing)} of {len(splits)} test folds lack a class ({lacks}): mean class "
              f"accuracy averages different classes in those folds{advice}")
    results = cross_validate(models, feats, kept.targets(), kept.classes, groups, seed=cfg.train.seed, threads=threads,
                             splits=splits, streams=streams, progress=options.progress and options.is_main)
    k = len(splits)  # folds are capped by groups or class sizes
    if leave_one_group_out:
        split = f"leave-one-group-out ({k} groups: {', '.join(sorted(set(groups.tolist())))})"  # type: ignore[union-attr]
    elif groups is not None:
        split = f"{k}-fold by group ({len(set(groups.tolist()))} groups)"
    else:
        split = f"{k}-fold stratified"
    return CVReport(str(data), split, len(kept), list(kept.classes), {str(p): r for p, r in res.failed.items()}, cfg,
                    results, [[str(kept.paths[i]) for i in te] for _, te in splits])


# ---------------------------------------------------------------- timelines

@dataclass
class TimelineReport:
    """Timelines of each readable video, the skipped ones, and every file written (results, overlay)."""

    timelines: list[Timeline]
    skipped: Skipped = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)


def timelines(
    model: str | Path | ActionRecognizer,
    videos: Sequence[str | Path],
    options: ExtractOptions = ExtractOptions(),
    *,
    window: float = 2.0,
    stride: float = 1.0,
    top_k: int = 5,
    threshold: float = 0.0,
    smooth: int = 1,
    results_dir: str | Path | None = None,
    results_format: str = "csv",
    overlay: str | Path | None = None,
    on_timeline: Callable[[Timeline, list[Path]], None] | None = None,
    on_progress: Callable[[Path, int, int], None] | None = None,
) -> TimelineReport:
    """What happens when in each video (files, or folders of them): sliding-window predictions merged into segments.

    Args:
        model: a checkpoint path, or a loaded :class:`~activity.inference.recognizer.ActionRecognizer`.
        videos: video files or folders of videos.
        options: how to extract features (ignored when ``model`` is already loaded); ``progress`` and ``on_error``.
        window: seconds of video each prediction sees.
        stride: seconds between windows.
        top_k: labels kept per window.
        threshold: minimum probability for a window to join a segment.
        smooth: windows averaged before merging.
        results_dir: write each timeline there (``<stem>.windows.csv`` and ``<stem>.segments.csv``, or
            ``<stem>.json``); a file name met twice gets ``-2``, ``-3`` ...
        results_format: a name in :data:`~activity.registry.RESULT_FORMATS` (``csv`` or ``json``).
        overlay: write the one video with the current label drawn on it there.
        on_timeline: called with each timeline and the files written for it, as each is done.
        on_progress: called with ``(video, sampled frames encoded, sampled frames in all)`` as each video is encoded.

    Raises:
        ActivityError: ``overlay`` with other than exactly one video, or a bad parameter.
    """
    from activity.inference.recognizer import load_model
    from activity.inference.timeline import write_overlay

    _check_top_k(top_k)
    paths, empty = video_files(videos)
    if overlay is not None and len(paths) != 1:
        raise ActivityError(f"--overlay takes exactly one video; {', '.join(map(str, videos))} holds {len(paths)}")
    if isinstance(model, (str, Path)):
        model = load_model(model, options)
    _skip(options, empty)
    report = TimelineReport([], dict(empty))
    stems: dict[str, int] = {}
    for p in paths:
        try:
            tl = model.timeline(p, window=window, stride=stride, top_k=top_k, threshold=threshold, smooth=smooth,
                                progress=options.progress,
                                on_progress=None if on_progress is None else lambda done, total: on_progress(p, done, total))
        except VideoError as e:
            report.skipped[p] = e.reason
            _skip(options, {p: e.reason})
            continue
        written: list[Path] = []
        if results_dir is not None:
            n = stems[p.stem] = stems.get(p.stem, 0) + 1  # same file name in two folders: clip, clip-2, ...
            written += tl.write(results_dir, p.stem if n == 1 else f"{p.stem}-{n}", results_format)
        if overlay is not None:
            written.append(write_overlay(tl, p, overlay, progress=options.progress))
        report.timelines.append(tl)
        report.written += written
        if on_timeline is not None:
            on_timeline(tl, written)
    return report


def video_seconds(path: str | Path) -> float:
    """How long a video is, as its container says: seconds (0 where it gives no frame rate).

    Raises:
        VideoError: the file is not a readable video.
    """
    from activity.data.decoders import open_video

    with open_video(path) as reader:
        return reader.frame_count / reader.fps if reader.fps > 0 else 0.0


# ---------------------------------------------------------------- live sources

def live(model: str | Path | ActionRecognizer, source: str, options: ExtractOptions = ExtractOptions(),
         **settings: Any) -> StreamStats:
    """Classify a camera (its index, ``"0"``), a stream URL or a file played at its real rate, until it ends.

    Args:
        model: a checkpoint path, or a loaded recognizer.
        source: what to read.
        options: how to extract features (ignored when ``model`` is already loaded).
        **settings: ``window``, ``rate``, ``max_seconds``, ``top_k`` and ``on_result``, as
            :func:`~activity.inference.stream.run_stream` takes them.
    """
    from activity.inference.stream import run_stream

    if isinstance(model, (str, Path)):
        model = load_model(model, options)
    return run_stream(model, source, **settings)


# ---------------------------------------------------------------- check

def check(data: str | Path, val: str | Path | None = None, *, group_regex: str | None = None, decoder: str = "auto",
          progress: bool = True) -> CheckReport:
    """Look for unreadable clips, identical files (a label leak across classes) and recordings on both sides
    of a train/validation split (:func:`~activity.evaluation.check.check_dataset`); ``report.problems``
    lists what was found."""
    from activity.data.collection import load_dataset
    from activity.evaluation.check import check_dataset

    ds = load_dataset(data, group_regex=group_regex)
    other = load_dataset(val, group_regex=group_regex) if val else None
    return check_dataset(ds, other, decoder=decoder, progress=progress)


# ---------------------------------------------------------------- backbones

@dataclass
class BackboneInfo:
    """One frame encoder as ``activity backbones`` lists it."""

    name: str
    feature_dim: int | None  # None: a timm model that could not be built to tell
    input_size: int
    offline: bool  # its weights are on this machine
    source: str  # where the weights come from
    default: bool = False


def backbones(timm_pattern: str | None = None) -> list[BackboneInfo]:
    """The registered backbones, or with ``timm_pattern`` the pretrained timm models matching it (usable as ``timm:NAME``).

    Raises:
        ActivityError: no timm model matches the pattern (or timm is not installed).
    """
    from activity.features.backbones import DEFAULT_BACKBONE, get_spec, list_backbones, timm_backbones

    if timm_pattern is not None:
        found = [BackboneInfo(n, d, size, here, src) for n, d, size, here, src in timm_backbones(timm_pattern)]
        if not found:
            raise ActivityError(f"no pretrained timm model matches {timm_pattern!r} (patterns are fnmatch-style, e.g. 'convnext*')")
        return found
    out = []
    for name in list_backbones():
        s = get_spec(name)
        out.append(BackboneInfo(name, s.feature_dim, s.preprocess.crop_size, s.weights_available(), s.source,
                                name == DEFAULT_BACKBONE))
    return out


# ---------------------------------------------------------------- explain and export

@dataclass
class ExplainReport:
    """An explanation and the PNG drawn of it."""

    explanation: Explanation
    out: Path


def explain(checkpoint: str | Path, video: str | Path, out: str | Path, *, method: str = "attention",
            target: str | None = None, columns: int = 8, device: str = "cpu") -> ExplainReport:
    """Which of a video's sampled frames the prediction rests on (:mod:`activity.inference.explain`), drawn as a PNG.

    Args:
        checkpoint: the trained model.
        video: the video to explain.
        out: PNG file to write.
        method: a name in :data:`~activity.registry.EXPLAIN_METHODS` (``attention`` or ``occlusion``).
        target: class to explain (default: the predicted one).
        columns: frames per row of the drawing.
        device: where the backbone runs.
    """
    from activity.inference.explain import explain as explain_video
    from activity.inference.explain import save_explanation
    from activity.inference.recognizer import load_model as load

    model = load(checkpoint, cache_dir=False, device=device)
    expl = explain_video(model, video, method=method, target=target)
    return ExplainReport(expl, save_explanation(expl, out, columns=columns))


def export(checkpoint: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the whole model (backbone and temporal model) as one graph in format ``fmt`` (a name in
    :data:`~activity.registry.EXPORT_FORMATS`), with ``out.json`` describing its input; returns ``out``."""
    from activity.inference.export import export_model

    return export_model(checkpoint, fmt, out)


def cv_model_names() -> list[str]:
    """The models :func:`cv` compares when none are named (:func:`activity.evaluation.cv.model_names`)."""
    from activity.evaluation.cv import model_names

    return model_names()


__all__ = ["ActivityError", "ExtractOptions", "ExtractReport", "TrainReport", "EvaluateReport", "PredictReport",
           "TimelineReport", "BackboneInfo", "check_config", "load_config", "load_model", "extract", "train", "resume",
           "evaluate", "predict", "video_files", "video_seconds", "timelines", "live", "check", "backbones", "ExplainReport", "explain", "export",
           "cv", "cv_model_names", "write_json"]
