"""Contact sheets: text that fits its place; scripts/sample_frames.py draws what the model sees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from activity.config import Config
from activity.data.synthetic import write_video
from activity.inference.visualize import CAPTION_SCALE, PAD, caption_layout, contact_sheet, text_width, wrap_text

try:
    from utils import make_frames
except ImportError:  # tests/ imported as a package
    from tests.utils import make_frames

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sample_frames.py"


def _script():
    """scripts/sample_frames.py imported as a module by its path."""
    module_spec = importlib.util.spec_from_file_location("sample_frames", SCRIPT)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def tile_columns(sheet: np.ndarray) -> np.ndarray:
    """Per column of the first row of tiles, whether a tile covers it (gaps between tiles are white)."""
    filled = (sheet < 255).any(axis=2)
    rows = np.flatnonzero(filled.sum(axis=1) > sheet.shape[1] // 2)  # rows through the tiles
    return filled[rows[len(rows) // 2]]


def runs(mask: np.ndarray) -> int:
    """Stretches of True in ``mask``."""
    m = mask.astype(np.int8)
    return int((np.diff(np.concatenate([[0], m])) == 1).sum())


# ---------------------------------------------------------------- text that fits


def test_text_wraps_to_its_width_and_a_caption_too_wide_for_any_font_widens_its_tile():
    title = "a_rather_long_file_name.mp4: predicted dribbling (0.81), occlusion importance"
    lines = wrap_text(title, 200, 0.5)
    assert len(lines) > 1 and all(text_width(line, 0.5) <= 200 for line in lines)
    assert " ".join(lines).replace(" ", "") == title.replace(" ", "")  # nothing lost
    assert wrap_text("0.42s  +0.123", 500, CAPTION_SCALE) == ["0.42s  +0.123"]  # fits: as it was

    scale, lines, width = caption_layout(["0.42s  +0.123"], 68)
    assert width == 68 and lines == [["0.42s", "+0.123"]] and scale == CAPTION_SCALE  # wrapped, not shrunk
    scale, lines, width = caption_layout(["#123456789"], 30)
    assert width == text_width("#123456789", scale) + 4 > 30 and lines == [["#123456789"]]

    frames = np.full((3, 40, 10, 3), 128, np.uint8)  # 30-pixel tiles
    sheet = contact_sheet(frames, ["#123456789"] * 3, title="t")
    assert sheet.shape[1] == 3 * (width + PAD) + PAD  # the tiles grew to their captions
    middle = (sheet[24 + PAD + 60] < 255).any(axis=1)  # a row through the frames, under the 24-pixel title
    assert runs(middle) == 3 and middle.sum() == 3 * 30  # the frames keep their width, centred in the wider tiles
    first = np.flatnonzero(middle)[0]
    assert first - PAD == (width - 30) // 2


# ---------------------------------------------------------------- scripts/sample_frames.py


@pytest.fixture(scope="module")
def dark_clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A lossless clip as dark as ARID's (mean pixel about 10 of 255)."""
    frames = (make_frames(20, (64, 48)) * 0.08).astype(np.uint8)
    path = tmp_path_factory.mktemp("dark") / "dark.avi"
    write_video(path, frames, 12.0)
    return path, frames


def test_sample_frames_draws_the_brightened_crops_the_backbone_gets_as_many_as_the_config_says(dark_clip, tmp_path, capsys):
    video, frames = dark_clip
    main = _script().main
    assert main([str(video), "--out", str(tmp_path / "seen.png"), "features.num_frames=8", "features.image_size=64"]) == 0
    assert main([str(video), "--out", str(tmp_path / "raw.png"), "features.num_frames=8", "--raw"]) == 0
    assert "wrote" in capsys.readouterr().out
    seen, raw = (cv2.imread(str(tmp_path / f"{n}.png"))[:, :, ::-1] for n in ("seen", "raw"))
    for sheet in (seen, raw):
        assert runs(tile_columns(sheet)) == 8  # features.num_frames=8: eight tiles
    assert seen.shape[1] == 8 * (120 + PAD) + PAD  # square crops, 120-pixel tiles
    assert raw.shape[1] == 8 * (160 + PAD) + PAD  # 64x48 frames as decoded

    def tile_mean(sheet):
        filled = (sheet < 255).any(axis=2)
        rows = filled.sum(axis=1) > sheet.shape[1] // 2
        return float(sheet[rows][:, tile_columns(sheet)].mean())

    assert tile_mean(raw) == pytest.approx(frames.mean(), abs=3)
    assert tile_mean(seen) > 60 and tile_mean(seen) > 4 * tile_mean(raw)  # features.enhance: dark brightens it


def test_sample_frames_takes_its_frame_count_from_the_config_or_num_frames(dark_clip, tmp_path):
    video, _ = dark_clip
    main = _script().main
    assert main([str(video), "--out", str(tmp_path / "default.png"), "--raw"]) == 0
    default = cv2.imread(str(tmp_path / "default.png"))
    n = Config().features.num_frames
    assert n == 16 and runs(tile_columns(default)) == 8  # 16 frames: two rows of eight
    assert default.shape[1] == 8 * (160 + PAD) + PAD and default.shape[0] > 2 * 120
    config = tmp_path / "c.yaml"
    config.write_text("features:\n  num_frames: 4\n")
    assert main([str(video), "--out", str(tmp_path / "c.png"), "--config", str(config)]) == 0
    assert runs(tile_columns(cv2.imread(str(tmp_path / "c.png")))) == 4
    assert main([str(video), "--out", str(tmp_path / "n.png"), "--config", str(config), "--num-frames", "3"]) == 0
    assert runs(tile_columns(cv2.imread(str(tmp_path / "n.png")))) == 3


def test_sample_frames_reports_a_bad_override_in_one_line(dark_clip, tmp_path, capsys):
    video, _ = dark_clip
    assert _script().main([str(video), "--out", str(tmp_path / "x.png"), "features.num_frames=0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "features.num_frames" in err and err.count("\n") == 1
