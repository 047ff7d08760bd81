"""The ``activity`` argument parser: one sub-command per workflow, choices read from the registries."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from activity.cli import commands as cmd
from activity.errors import ActivityError
from activity.data.decoders.auto import AUTO_HELP
from activity.features.runtime import RUNTIMES, runtime_help


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
    if text == "cpu":  # the default: no torch import just to parse the command line
        return text
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no CUDA GPU is available here; use cpu")
    return text


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder (default: $ACTIVITY_CACHE, else $XDG_CACHE_HOME/activity, else ~/.cache/activity)")
    p.add_argument("--workers", type=_workers, default=None,
                   help="loader processes: on the CPU each decodes and encodes clips on one thread (default: one per core); "
                        "on a GPU they decode while it encodes (default: all cores but one); 0: all in this process")
    p.add_argument("--device", type=_device, default="cpu", help="device for the backbone, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto", help=runtime_help())
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit with code 1 if any video was skipped")


def _add_outputs(p: argparse.ArgumentParser, files: str) -> None:
    """``--json`` (the results as JSON on stdout instead of a table) and ``--results-dir DIR`` (also written as ``files``
    there): the same two options, meaning the same, wherever a command has results to print and keep."""
    p.add_argument("--json", action="store_true", help="print the results as JSON to stdout instead of a table")
    p.add_argument("--results-dir", type=Path, default=None, metavar="DIR", help=f"also write the results into DIR: {files}")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults, see configs/default.yaml)")
    p.add_argument("--backbone", default=None, help="frame encoder (see `activity backbones`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=30 model.hidden_size=128")


def _registered(kind: str) -> Callable[[str], str]:
    """An argparse ``type`` that checks a name against a registry only when the option is given
    (listing a registry imports its providers: torch for the temporal models)."""
    def check(text: str) -> str:
        from activity import registry

        reg = getattr(registry, kind)
        if text not in reg:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(reg.names())})")
        return text

    return check


def _temporal_choice(text: str) -> str:
    """A registered temporal model, or ``lstm:<member>`` (checked against the streams once the config is read)."""
    if "," in text:
        raise argparse.ArgumentTypeError(f"{text!r}: --temporal names one model; give it once per model "
                                         "(--temporal lstm --temporal pooled_lr)")
    if text.startswith("lstm:") and text[len("lstm:"):].strip():
        return text
    return _registered("TEMPORAL_MODELS")(text)


def usage_problem(args: argparse.Namespace) -> str | None:
    """What makes this command line unusable as a whole (exit code 2), checked before any work; None if nothing."""
    if args.command == "train":
        if args.resume is not None and (args.data or args.out or args.val or args.config or args.overrides or args.backbone
                                        or args.temporal):
            return "--resume continues a run with its own data and config; pass no other data or config options"
        if args.resume is None and (args.data is None or args.out is None):
            return "train needs --data and --out (or --resume RUN_DIR)"
    if args.command == "predict":
        return _predict_problem(args)
    if args.command == "cv" and args.temporal is not None and len(set(args.temporal)) != len(args.temporal):
        return "--temporal names a model twice"
    return None


#: predict's options that belong to one mode, with their defaults (None in the parser, so that giving one
#: outside its mode is refused instead of ignored).
PREDICT_MODES = {
    "--timeline": {"stride": 1.0, "threshold": 0.0, "smooth": 1, "overlay": None},
    "--source": {"rate": 1.0, "max_seconds": None},
    "files or --timeline": {"results_dir": None, "results_format": "csv"},
    "--timeline or --source": {"window": 2.0},
}


def _predict_problem(args: argparse.Namespace) -> str | None:
    """predict's three modes (files, ``--timeline``, ``--source``): each option only where it means something;
    the defaults of the options given nowhere are filled in."""
    if bool(args.source) == bool(args.videos):
        return "give either video files/folders or --source, not both or neither"
    if args.source and args.timeline:
        return "--timeline reads video files; --source is live: give one of them"
    mode = "--source" if args.source else "--timeline" if args.timeline else "files"
    for where, options in PREDICT_MODES.items():
        for name, default in options.items():
            given = getattr(args, name) is not None
            if given and mode not in where.split(" or "):
                flag = "--" + name.replace("_", "-")
                return f"{flag} applies only with {where}"
            if not given:
                setattr(args, name, default)
    if args.results_format != "csv" and args.results_dir is None:
        return "--results-format says how --results-dir is written; give --results-dir too"
    if args.overlay and len(args.videos) != 1:
        return "--overlay needs exactly one video"
    if args.top_k is None:
        args.top_k = 1 if args.source else 5
    return None


def check_paths(args: argparse.Namespace) -> None:
    """The files and folders the command names exist (checked before torch is imported, so that a typo
    is reported at once); videos to predict are not: a missing one is skipped and reported like a bad one.

    Raises:
        ActivityError: the first missing one.
    """
    for name in ("data", "val", "resume", "reports"):
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


CHECKPOINT_HELP = "a trained model: RUN_DIR/model.pt, or the run folder itself"


def build_parser() -> argparse.ArgumentParser:
    from activity import __version__

    parser = argparse.ArgumentParser(prog="activity", description="Recognise human actions in video with a frozen CNN and a bidirectional LSTM.")
    parser.add_argument("--version", action="version", version=f"activity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_backbones, _add_extract, _add_train, _add_evaluate, _add_predict, _add_cv, _add_check, _add_export, _add_explain,
                _add_serve, _add_demo):
        add(sub)
    return parser


def _command(sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int],
             **kwargs: str) -> argparse.ArgumentParser:
    """The sub-command ``name`` (``help``, ``description``), run by ``func``."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(func=func)
    return p


def _add_backbones(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "backbones", cmd.cmd_backbones, help="list the frame encoders",
                       description="List the registered backbones, or with --timm the pretrained timm models usable as timm:NAME.")
    p.add_argument("--timm", metavar="PATTERN", default=None,
                   help="list the pretrained timm models matching PATTERN (timm.list_models(PATTERN, pretrained=True)), "
                        "e.g. 'convnext*'; needs the extra activity[timm]")


def _add_extract(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "extract", cmd.cmd_extract, help="extract and cache backbone features", description="Extract backbone features for a collection of videos into the cache.")
    p.add_argument("--data", required=True, help="class folder, list file, CSV, a folder of videos or one video")
    _add_config(p)
    _add_common(p)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "train", cmd.cmd_train, help="train a temporal model", description="Train a temporal model on cached features; writes RUN_DIR/model.pt, config.yaml, metrics.csv.")
    p.add_argument("--data", help="class folder, list file or CSV")
    p.add_argument("--out", type=Path, help="run folder")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted run from its last completed epoch")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val", help="validation collection (default: a split of --data)")
    g.add_argument("--val-fraction", type=float, default=None, help="validation share of --data (split by group when known)")
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group, e.g. '_g(\\d+)_'")
    p.add_argument("--temporal", type=_temporal_choice, default=None,
                   help="temporal model: lstm (bidirectional LSTM, the default), mean (average of frame features, then linear), "
                        "pooled_lr or middle_lr (the logistic regressions cv compares), or one member of the lstm's fusion "
                        "alone as cv --members names it: lstm:motion, lstm:appearance_lr, ...")
    _add_config(p)
    _add_common(p)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "evaluate", cmd.cmd_evaluate, help="evaluate a checkpoint on labelled videos", description="Evaluate a checkpoint; writes metrics.json, per_class.csv, confusion_matrix.csv/.png and predictions.csv.")
    p.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("--data", required=True, help="class folder, list file or CSV")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    _add_common(p)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "predict", cmd.cmd_predict, help="classify video files, long videos or a live source",
                       description="Top-k actions for each video (files or folders); --timeline for what happens when in long "
                                   "videos; --source for a camera or stream.")
    p.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("videos", nargs="*", help="video files or folders of videos")
    p.add_argument("--top-k", type=_positive, default=None,
                   help="labels per video, per timeline window or per live prediction, most probable first "
                        "(default 5; 1 with --source)")
    _add_outputs(p, "predictions.csv and skipped.csv (or predictions.json); with --timeline, VIDEO.windows.csv and "
                    "VIDEO.segments.csv (or VIDEO.json)")
    p.add_argument("--results-format", type=_registered("RESULT_FORMATS"), default=None,
                   help="how --results-dir is written: csv (default) or json")
    g = p.add_argument_group("long videos")
    g.add_argument("--timeline", action="store_true", help="sliding-window predictions and merged segments")
    g.add_argument("--window", type=float, default=None, help="window length in seconds (default 2; also used by --source)")
    g.add_argument("--stride", type=float, default=None, help="seconds between windows (default 1)")
    g.add_argument("--threshold", type=float, default=None, help="minimum probability for a window to join a segment (default 0)")
    g.add_argument("--smooth", type=int, default=None, help="average this many neighbouring windows before merging (default 1)")
    g.add_argument("--overlay", type=Path, default=None, metavar="FILE", help="write the video with the current label drawn on it to FILE")
    g = p.add_argument_group("live sources")
    g.add_argument("--source", default=None, help="camera index, stream URL, or a file played at its real rate")
    g.add_argument("--rate", type=float, default=None, help="predictions per second (default 1)")
    g.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds (default: when the source ends)")
    _add_common(p)


def _add_cv(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "cv", cmd.cmd_cv, help="k-fold cross-validation of temporal models", description="Compare temporal models on the same k folds (stratified; by group when known). Each fold's test clips are never used for training or early stopping.")
    p.add_argument("--data", required=True, help="class folder, list file or CSV")
    p.add_argument("--folds", type=_positive, default=5,
                   help="number of folds (default 5; capped by the number of groups or the smallest class)")
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group")
    p.add_argument("--leave-one-group-out", action="store_true",
                   help="one fold per group, tested on that group (groups from the CSV's group column or --group-regex): "
                        "how the models do on scenes or sources they never saw")
    p.add_argument("--temporal", type=_temporal_choice, action="append", default=None, metavar="MODEL",
                   help="a model to compare, as train's --temporal names it; give it once per model (--temporal lstm "
                        "--temporal pooled_lr): lstm, mean (trained temporal models), pooled_lr (logistic regression on "
                        "mean and std over time of features and their differences), middle_lr (on the middle frame), "
                        "lstm:<member>; default: lstm, mean, pooled_lr and middle_lr")
    p.add_argument("--members", action="store_true",
                   help="also score each member of the lstm's fusion alone (lstm:appearance, lstm:motion, lstm:appearance_lr, "
                        "...) on the same folds, from the same fits")
    _add_outputs(p, "cv.json")
    _add_config(p)
    _add_common(p)


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "check", cmd.cmd_check, help="check a collection for unreadable clips, duplicates and leaks",
                       description="Report unreadable clips, clips per class, identical files (across classes: a label leak) and "
                                   "recordings on both sides of a train/validation split. Exit code 1 when problems are found.")
    p.add_argument("data", help="class folder, list file or CSV")
    p.add_argument("--val", help="validation collection to check against DATA")
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group")
    p.add_argument("--decoder", type=_registered("DECODERS"), default="auto",
                   help=f"video decoder used to probe the clips: auto ({AUTO_HELP}), decord or opencv")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "export", cmd.cmd_export, help="export a checkpoint, backbone included, to ONNX or TorchScript",
                       description="Write the whole model (backbone + temporal model) as one graph: preprocessed frames "
                                   "(B, T, 3, S, S) -> logits (B, C), plus FILE.json describing the input, sampling and preprocessing.")
    p.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("--format", required=True, type=_registered("EXPORT_FORMATS"),
                   help="onnx (runs in ONNX Runtime, see scripts/run_exported.py) or torchscript (torch.jit.load)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="file to write (FILE.json beside it describes the input, sampling and preprocessing)")


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "explain", cmd.cmd_explain, help="show which frames a prediction rests on",
                       description="Draw the frames the model sees with each one's importance (attention weights or occlusion) as a PNG.")
    p.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("video", type=Path, help="the video to explain")
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.add_argument("--method", type=_registered("EXPLAIN_METHODS"), default="attention",
                   help="attention: the model's pooling weights (a model that pools uniformly falls back to occlusion); "
                        "occlusion: drop in probability when a frame's feature is replaced by the clip's mean")
    p.add_argument("--target", default=None,
                   help="class to explain (default: the predicted one); attention weights are the same for every class, "
                        "so with --method attention only the probability shown changes")
    p.add_argument("--columns", type=_positive, default=8, help="frames per row (default: 8)")
    p.add_argument("--json", action="store_true", help="print the explanation (per-frame importances) as JSON to stdout "
                                                          "instead of the summary line")
    p.add_argument("--device", type=_device, default="cpu", help="device for the backbone (default: cpu)")


def _port(text: str) -> int:
    n = _workers(text)
    if not 0 < n < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return n


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of megabytes, got {text!r}")
    return value


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "serve", cmd.cmd_serve, help="a local web page and a JSON API for a trained model",
                       description="Serve a trained model: a page to upload a video and see its top classes and timeline, "
                                   "an evaluation viewer (--reports) and a JSON API (/api/health, /api/model, /api/predict, "
                                   "/api/timeline). Loads the model once; works offline.")
    p.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                                                       "anything else is reachable by others, without authentication)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument("--reports", type=Path, default=None, metavar="DIR",
                   help="a folder written by activity evaluate: adds the evaluation viewer at /reports")
    p.add_argument("--max-concurrent", type=_positive, default=1,
                   help="videos processed at once (default 1: on a CPU one uses every core)")
    p.add_argument("--max-queue", type=_workers, default=4,
                   help="further requests waiting for the model (default 4); beyond that the server answers 503 at once")
    p.add_argument("--max-upload-mb", type=_megabytes, default=500.0, help="largest upload in MB (default 500; larger: 413)")
    p.add_argument("--device", type=_device, default="cpu", help="device for the backbone (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no line per request")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "demo", cmd.cmd_demo, help="run the whole pipeline on generated clips", description="Generate a small labelled collection, then extract, train, evaluate and predict.")
    p.add_argument("--out", default="demo_run", help="folder for the generated clips and the run (default: demo_run)")
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder (default: OUT/cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
