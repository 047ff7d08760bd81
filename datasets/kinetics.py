#!/usr/bin/env python3
"""Turn downloaded Kinetics clips and their annotation CSVs into train/val/test CSVs for `activity`.

    python datasets/kinetics.py --videos kinetics400/ --csv annotations/train.csv annotations/validate.csv --out data/k400

Each annotation CSV has the header label,youtube_id,time_start,time_end,split (Kinetics-400/600/700;
extra columns are ignored). A row's clip is the file <youtube_id>_<start:06d>_<end:06d>.<ext>
anywhere below --videos, so <videos>/<split>/<label>/<clip>.mp4, <videos>/<split>/<clip>.mp4 and a
flat <videos>/<clip>.mp4 all work. Writes OUT/train.csv, OUT/val.csv, OUT/test.csv for the splits
the CSVs list (path,label,group; absolute paths; group = youtube_id). Listed clips missing on disk
(videos taken down, failed downloads) and rows without a label are counted and left out. Nothing
is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activity.data.official import OfficialSplit, prepare_split


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help="folder the clips were downloaded into")
    p.add_argument("--csv", type=Path, nargs="+", required=True, help="annotation CSV(s): train.csv, validate.csv, test.csv")
    p.add_argument("--out", type=Path, required=True, help="folder for train.csv, val.csv, test.csv")
    args = p.parse_args(argv)
    return prepare_split(lambda: OfficialSplit.from_kinetics(args.videos, args.csv), args.out)


if __name__ == "__main__":
    sys.exit(main())
