"""The ``activity`` command line: parses arguments (:mod:`activity.cli.parser`), runs one command
(:mod:`activity.cli.commands`, each a call of :mod:`activity.workflows` and some printing) and turns
errors into exit codes.

Commands: ``backbones``, ``extract``, ``train``, ``evaluate``, ``predict``, ``cv``, ``check``, ``explain``, ``export``, ``serve``, ``demo``.
Problems with the input are printed as one ``error:`` line (exit code 1, no
traceback); a video that cannot be read is reported as ``skipped PATH: reason``
and every other video is still processed. Exit codes: 0 when at least one
video was processed; 1 on an input error, when nothing could be processed, or
(with ``--strict``) when anything was skipped; 2 on a usage error; 130 when interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from activity.cli.parser import build_parser, check_paths, usage_problem
from activity.errors import ActivityError

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


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (why := usage_problem(args)) is not None:
        _command_parser(parser, args.command).error(why)  # usage and the reason on stderr, exit code 2
    pkg = logging.getLogger("activity")
    if not any(isinstance(h, _NoteHandler) for h in pkg.handlers):
        pkg.addHandler(_NoteHandler(logging.INFO))
        pkg.setLevel(logging.INFO)
        pkg.propagate = False
    try:
        check_paths(args)  # before torch is imported: a typo is reported at once
        return _run(args)
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _close_progress_bars()  # drawn once more now, above the message, not after it
        print(f"interrupted{_how_to_resume(args)}", file=sys.stderr)
        return 130


def _how_to_resume(args: argparse.Namespace) -> str:
    """``; to continue: activity train --resume RUN`` after an interrupted ``train`` that saved an epoch, else ``""``."""
    import shlex

    run = (args.resume or args.out) if args.command == "train" else None
    if run is None or not Path(run).is_dir():
        return ""
    from activity.temporal.train import STATE_FILE

    if not next(Path(run).rglob(STATE_FILE), None):
        return ""
    return f"; to continue: activity train --resume {shlex.quote(str(run))}"


def _close_progress_bars() -> None:
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", [])):
        bar.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
