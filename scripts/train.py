#!/usr/bin/env python3
"""Same as `activity train`: see `activity train --help`."""

import sys

from activity.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
