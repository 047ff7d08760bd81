#!/usr/bin/env python3
"""Accuracy benchmark: the default recipe against the baselines, on the same cached features and folds.

    python scripts/benchmark_accuracy.py DATA [DATA ...] [--folds 5] [--group-regex RE] [--json-file FILE]
                                         [--config FILE] [key=value ...]

For each DATA (class folder, list file or CSV), in one run: the recipe (the
default config, or --config and overrides) and the baselines: the ``mean``
temporal model, ``pooled_lr`` (logistic regression on the mean and std over
time of the frame features and of their differences) and ``middle_lr``
(logistic regression on the middle frame); for a fusion (the default: streams appearance and motion),
also each of its members alone (``lstm:appearance``, ``lstm:motion``, ``lstm:appearance_lr``, ...: each
stream's BiLSTM and pooled logistic regression). Folds are stratified by class and,
with --group-regex, never split a recording group. Prints the command, then a
table per DATA (mean ± std over folds of top-1 and mean class accuracy, and
per-fold top-1, and top-1 and mean class accuracy pooled over every fold's test clips); --json-file writes everything, per-fold metrics included.

    python scripts/benchmark_accuracy.py ../shared/data/basketball --folds 5
    python scripts/benchmark_accuracy.py ../shared/data/arid6/train --folds 5 --group-regex '_(\\d+)_'
    python scripts/benchmark_accuracy.py ../shared/data/vioperu/labels.csv --leave-one-group-out   # scene shift
    python scripts/benchmark_accuracy.py --merge vioperu.json arid6.json basketball.json   # one table of several runs

With --merge, no benchmark runs: the JSON files of earlier runs become one table, a row per model and a
column per collection (top-1 / mean class accuracy pooled over every fold's test clips).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from activity.config import load_config
from activity.evaluation.reports import format_table
from activity.errors import ActivityError
from activity.features.extract import ExtractOptions
from activity.io import write_json
from activity.workflows import cv

BASELINES = ["mean", "pooled_lr", "middle_lr"]


def merged_table(paths: list[Path]) -> str:
    """One table of earlier runs' JSON (``--json-file``): a row per model, a column per collection, each cell the
    pooled top-1 / mean class accuracy in %."""
    columns, cells, order = [], {}, []
    for path in paths:
        for d in json.loads(Path(path).read_text())["datasets"]:
            path = Path(d["data"])
            name = path.parent.name if path.suffix or path.name in ("train", "test") else path.name
            name += f"/{path.name}" if path.name in ("train", "test") else ""
            columns.append(f"{name}, {d['split'].split(' (')[0]}")
            for r in d["results"]:
                order += [] if r["name"] in order else [r["name"]]
                cells[r["name"], columns[-1]] = f"{100 * r['pooled_top1']:.1f} / {100 * r['pooled_mean_class_accuracy']:.1f}"
    rows = [[m, *(cells.get((m, c), "") for c in columns)] for m in order]
    return format_table(rows, ["model (pooled top-1 / mca %)", *columns])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("items", nargs="*", metavar="DATA | key=value", help="collections to benchmark, then config overrides")
    p.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                   help="instead: one table of earlier runs' --json-file files")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--group-regex", default=None, help="regex over file names giving the recording group")
    p.add_argument("--leave-one-group-out", action="store_true",
                   help="one fold per group (e.g. VioPeru's camera sites), tested on that group: the scene-shift test")
    p.add_argument("--config", type=Path, default=None, help="YAML recipe (default: the built-in defaults)")
    p.add_argument("--json-file", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_intermixed_args(argv)
    command = "python scripts/benchmark_accuracy.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.merge:
        print(f"$ {command}")
        print(merged_table(args.merge))
        return 0
    data = [i for i in args.items if "=" not in i]
    overrides = [i for i in args.items if "=" in i]
    if not data:
        p.error("give at least one DATA")
    try:
        cfg = load_config(args.config, overrides)
        names = [cfg.model.temporal, *BASELINES]
        reports = []
        for d in data:
            print(f"benchmarking {d}", file=sys.stderr)
            opts = ExtractOptions(cache_dir=args.cache, workers=args.workers, progress=not args.quiet,
                                  on_error=lambda path, why: print(f"skipped {path}: {why}", file=sys.stderr))
            reports.append(cv(d, cfg, names, opts, folds=args.folds, group_regex=args.group_regex,
                              leave_one_group_out=args.leave_one_group_out, streams=True))
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"$ {command}")
    print(f"recipe: {cfg.model.temporal} ({args.config or 'default config'}{', ' + ' '.join(overrides) if overrides else ''}); "
          f"baselines: {', '.join(BASELINES)}")
    for r in reports:
        print()
        print(r.table())
    if args.json_file:
        payload = {"command": command, "recipe": cfg.to_dict(), "datasets": [r.to_dict() for r in reports]}
        write_json(args.json_file, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
