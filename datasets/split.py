#!/usr/bin/env python3
"""Split a labelled collection into train.csv and test.csv (stratified; by group when known).

    python datasets/split.py DATA --out DIR [--test-fraction 0.2] [--group-regex RE] [--seed 0]

DATA is anything `activity` reads (class folder, list file, CSV). The CSVs hold
absolute paths, labels and groups, so `activity train --data DIR/train.csv` and
`activity evaluate ... --data DIR/test.csv` use an honest held-out test set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activity.data.collection import load_dataset
from activity.data.splits import split_train_val
from activity.errors import ActivityError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--group-regex", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        ds = load_dataset(args.data, group_regex=args.group_regex)
        train, test = split_train_val(ds, args.test_fraction, seed=args.seed)
    except ActivityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, idx in (("train", train), ("test", test)):
        written = ds.subset(idx).to_csv(args.out / f"{name}.csv")
        print(f"{written}: {len(idx)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
