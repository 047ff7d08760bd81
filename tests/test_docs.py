"""The README's commands for a new user's own clips work as written."""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
import sys
from pathlib import Path

from activity.data.synthetic import make_order_dataset

ROOT = Path(__file__).resolve().parents[1]


def readme_lines(prefix: str) -> list[str]:
    """The README's command lines that start with ``prefix``, without their trailing comments."""
    return [line.split("  #")[0].strip() for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(prefix)]


def test_the_main_readme_shows_how_to_hold_out_a_test_split_and_the_command_works(tmp_path):
    (split,) = [line for line in readme_lines("python datasets/split.py") if " clips/" in line]
    data = make_order_dataset(tmp_path / "clips", classes=("growing", "shrinking"), clips_per_class=5, num_frames=4, size=(32, 24))
    argv = shlex.split(split)[1:]
    argv = [str(data) if a == "clips/" else str(tmp_path / a) if a == "split/" else a for a in argv]
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sides = {name: list(csv.DictReader(open(tmp_path / "split" / f"{name}.csv"))) for name in ("train", "test")}
    assert len(sides["train"]) + len(sides["test"]) == 10 and {r["label"] for r in sides["test"]} == {"growing", "shrinking"}
    assert not {r["path"] for r in sides["train"]} & {r["path"] for r in sides["test"]}
    # and the train and evaluate lines use what it wrote
    assert any(re.search(r"activity train .*--data split/train\.csv", line) for line in readme_lines("activity train"))
    assert any(re.search(r"activity evaluate .*--data split/test\.csv", line) for line in readme_lines("activity evaluate"))
