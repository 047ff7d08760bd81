#!/usr/bin/env python3
"""Same as `activity predict`: see `activity predict --help`."""

import sys

from activity.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
