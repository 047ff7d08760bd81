#!/usr/bin/env python3
"""Turn a downloaded UCF101 and its official split files into train.csv and test.csv for `activity`.

    python datasets/ucf101.py --videos UCF-101/ --splits ucfTrainTestlist/ --split 1 --out data/ucf101-split1

--videos holds the class folders (UCF-101/<Class>/v_<Class>_g<group>_c<clip>.avi), --splits
classInd.txt, trainlist0N.txt and testlist0N.txt. Writes OUT/train.csv and OUT/test.csv
(path,label,group; absolute paths; group = the _gNN_ number, as the official splits use it).
Listed clips missing on disk are counted and left out. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activity.data.official import OfficialSplit, prepare_split


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help="folder of class folders (UCF-101/)")
    p.add_argument("--splits", type=Path, required=True, help="folder of the official split files (ucfTrainTestlist/)")
    p.add_argument("--split", type=int, required=True, help="official split: 1, 2 or 3")
    p.add_argument("--out", type=Path, required=True, help="folder for train.csv and test.csv")
    args = p.parse_args(argv)
    return prepare_split(lambda: OfficialSplit.from_ucf101(args.videos, args.splits, args.split), args.out)


if __name__ == "__main__":
    sys.exit(main())
