#!/usr/bin/env python3
"""Same as `activity extract`: see `activity extract --help`."""

import sys

from activity.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
