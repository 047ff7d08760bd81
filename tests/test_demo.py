"""The demo: what it shows of the held-out predictions."""

from __future__ import annotations

import re
from pathlib import Path

from activity.cli import output
from activity.cli.demo import run_demo
from activity.inference.recognizer import Prediction

FAST = ["features.image_size=64", "features.num_frames=8", "train.epochs=3"]


def _pred(label: str, i: int, predicted: str, prob: float) -> Prediction:
    return Prediction(Path("test") / label / f"{label}_{i:03d}.mp4", [predicted], [prob])


def _label(p: Path) -> str:
    return p.parent.name


def test_held_out_shows_one_clip_per_class_and_the_mean_confidence(capsys):
    preds = [_pred("left", 0, "left", 0.9), _pred("left", 1, "right", 0.6),
             _pred("right", 0, "right", 0.8), _pred("up", 0, "up", 0.5)]
    output.print_held_out(preds, _label, shown=4)
    out = capsys.readouterr().out
    rows = out.splitlines()[2:6]
    assert [r.split()[:3] for r in rows[:3]] == [["left_000.mp4", "left", "left"], ["right_000.mp4", "right", "right"],
                                                 ["up_000.mp4", "up", "up"]]
    assert rows[3].split()[:4] == ["left_001.mp4", "left", "right", "0.600"]  # fewer classes than shown: one more
    assert "mean confidence 0.700 over 4 clips held out (3 predicted correctly)" in out


def test_one_per_class_takes_each_class_before_a_second_of_any():
    preds = [_pred("a", 0, "a", 0.9), _pred("a", 1, "a", 0.9), _pred("b", 0, "b", 0.9), _pred("c", 0, "c", 0.9)]
    assert [(_label(p.path), p.path.name) for p in output.one_per_class(preds, _label, 2)] == \
        [("a", "a_000.mp4"), ("b", "b_000.mp4")]


def test_demo_shows_a_held_out_clip_of_every_class_and_the_mean_confidence(tmp_path, capsys, one_torch_thread):
    assert run_demo(tmp_path / "demo", quiet=True, clips_per_class=3, test_clips_per_class=2, overrides=FAST) == 0
    out = capsys.readouterr().out
    assert "--top-k 1" in out and "--top-k 3" not in out
    table = out[out.index("clip  "):].splitlines()[2:]
    rows = [r.split() for r in table[: table.index("")]]
    assert len(rows) == 4
    assert sorted(r[1] for r in rows) == ["growing", "moving_left", "moving_right", "shrinking"]
    assert all(r[0].startswith(r[1]) for r in rows)
    m = re.search(r"mean confidence (\d\.\d{3}) over 8 clips held out \((\d) predicted correctly\)", out)
    assert m, out
    # It learned: the order of the frames tells these classes apart, and the shown rows agree with the count.
    assert int(m.group(2)) >= 6 and sum(r[1] == r[2] for r in rows) >= int(m.group(2)) - 4
    top1 = re.search(r"held-out top-1: BiLSTM (\d+)%, frame-averaging baseline (\d+)%", out)
    assert top1 and int(top1.group(1)) >= 75 and int(top1.group(1)) > int(top1.group(2)), out
