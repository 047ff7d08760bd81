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

import sys

from activity.data.official import OfficialSplit, numbered_split_main


def main(argv: list[str] | None = None) -> int:
    return numbered_split_main(argv, __doc__, OfficialSplit.from_hmdb51, videos="hmdb51_org/", splits="testTrainMulti_7030_splits/")


if __name__ == "__main__":
    sys.exit(main())
