#!/usr/bin/env python3
"""Train a temporal model: ``activity train``'s arguments (see ``activity train --help``), as a call of
:func:`activity.workflows.train` (a template for calling it from your own code)."""

import sys

from activity import workflows
from activity.cli import output
from activity.cli.commands import config_from_args, options_from_args
from activity.cli.parser import build_parser
from activity.errors import ActivityError

if __name__ == "__main__":
    args = build_parser().parse_args(["train", *sys.argv[1:]])
    try:
        if args.data is None or args.out is None:
            raise ActivityError("train.py needs --data and --out (to resume, use `activity train --resume`)")
        report = workflows.train(args.data, args.out, config_from_args(args), options_from_args(args),
                                 val=args.val, group_regex=args.group_regex)
    except ActivityError as e:
        sys.exit(f"error: {e}")
    output.print_train(report)
