#!/usr/bin/env python3
"""Same as `activity evaluate`: see `activity evaluate --help`."""

import sys

from activity.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
