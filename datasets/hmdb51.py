#!/usr/bin/env python3
"""Turn a downloaded HMDB51 and its official split files into train.csv and test.csv for `activity`.

    python datasets/hmdb51.py --videos hmdb51_org/ --splits testTrainMulti_7030_splits/ --split 1 --out data/hmdb51-split1

--videos holds the class folders (hmdb51_org/<class>/<clip>.avi), --splits the files
<class>_test_split<N>.txt (lines '<clip> <flag>': 1 train, 2 test, 0 unused). Writes
OUT/train.csv and OUT/test.csv (path,label,group; absolute paths; group = the source video
named at the start of each clip name, see activity.data.official.hmdb51_group). Listed clips
missing on disk are counted and left out. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activity.data.official import OfficialSplit, prepare_split


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help="folder of class folders (hmdb51_org/)")
    p.add_argument("--splits", type=Path, required=True, help="folder of the official split files (testTrainMulti_7030_splits/)")
    p.add_argument("--split", type=int, required=True, help="official split: 1, 2 or 3")
    p.add_argument("--out", type=Path, required=True, help="folder for train.csv and test.csv")
    args = p.parse_args(argv)
    return prepare_split(lambda: OfficialSplit.from_hmdb51(args.videos, args.splits, args.split), args.out)


if __name__ == "__main__":
    sys.exit(main())
