#!/usr/bin/env python3
"""Sample frames and cache backbone features: ``activity extract``'s arguments (see ``activity extract
--help``), as a call of :func:`activity.workflows.extract` (a template for calling it from your own code)."""

import sys

from activity import workflows
from activity.cli.commands import config_from_args, options_from_args
from activity.cli.parser import build_parser
from activity.errors import ActivityError

if __name__ == "__main__":
    args = build_parser().parse_args(["extract", *sys.argv[1:]])
    try:
        r = workflows.extract(args.data, config_from_args(args), options_from_args(args))
    except ActivityError as e:
        sys.exit(f"error: {e}")
    print(f"{r.videos} videos with features: {r.extracted} extracted, {r.cached} from the cache "
          f"({r.frames} frames in {r.seconds:.1f} s), {len(r.skipped)} skipped")
