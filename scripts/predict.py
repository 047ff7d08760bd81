#!/usr/bin/env python3
"""Classify video files: ``activity predict``'s arguments for files and folders (see ``activity predict
--help``; timelines and live sources are ``activity predict``'s), as a call of :func:`activity.workflows.predict`
(a template for calling it from your own code)."""

import sys

from activity import workflows
from activity.cli import output
from activity.cli.commands import options_from_args
from activity.cli.parser import build_parser
from activity.errors import ActivityError

if __name__ == "__main__":
    args = build_parser().parse_args(["predict", *sys.argv[1:]])
    try:
        if args.timeline or args.source or not args.videos:
            raise ActivityError("predict.py classifies video files; use `activity predict` for --timeline and --source")
        report = workflows.predict(args.checkpoint, args.videos, options_from_args(args), top_k=args.top_k,
                                   results_dir=args.results_dir, results_format=args.results_format)
    except ActivityError as e:
        sys.exit(f"error: {e}")
    output.print_predictions(report)
    if report.written is not None:
        print(f"wrote {report.written}", file=sys.stderr)
