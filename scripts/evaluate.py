#!/usr/bin/env python3
"""Evaluate a checkpoint: ``activity evaluate``'s arguments (see ``activity evaluate --help``), as a call of
:func:`activity.workflows.evaluate` (a template for calling it from your own code)."""

import sys

from activity import workflows
from activity.cli import output
from activity.cli.commands import options_from_args
from activity.cli.parser import build_parser
from activity.errors import ActivityError

if __name__ == "__main__":
    args = build_parser().parse_args(["evaluate", *sys.argv[1:]])
    try:
        report = workflows.evaluate(args.checkpoint, args.data, args.out, options_from_args(args))
    except ActivityError as e:
        sys.exit(f"error: {e}")
    output.print_evaluation(report)
