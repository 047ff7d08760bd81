#!/usr/bin/env python3
"""Turn a downloaded UCF101 and its official split files into train.csv and test.csv for `activity`.

    python datasets/ucf101.py --videos UCF-101/ --splits ucfTrainTestlist/ --split 1 --out data/ucf101-split1

--videos holds the class folders (UCF-101/<Class>/v_<Class>_g<group>_c<clip>.avi), --splits
classInd.txt, trainlist0N.txt and testlist0N.txt. Writes OUT/train.csv and OUT/test.csv
(path,label,group; absolute paths; group = the _gNN_ number, as the official splits use it).
Listed clips missing on disk are counted and left out. Nothing is downloaded.
"""

from __future__ import annotations

import sys

from activity.data.official import OfficialSplit, numbered_split_main


def main(argv: list[str] | None = None) -> int:
    return numbered_split_main(argv, __doc__, OfficialSplit.from_ucf101, videos="UCF-101/", splits="ucfTrainTestlist/")


if __name__ == "__main__":
    sys.exit(main())
