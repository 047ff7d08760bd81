"""The `activity` command line: parses arguments, calls :mod:`activity.workflows`, prints."""

from activity.cli.main import main

__all__ = ["main"]
