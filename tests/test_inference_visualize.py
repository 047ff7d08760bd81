"""Contact sheets: text that fits its place; explanations drawn as strips; scripts/sample_frames.py draws what the model sees."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

import activity.inference.visualize
from activity.config import Config
from activity.data.sampling import segment_indices
from activity.data.synthetic import write_video
from activity.errors import ActivityError
from activity.inference.explain import Explanation
from activity.inference.visualize import (
    CAPTION_SCALE,
    PAD,
    caption_layout,
    contact_sheet,
    draw_explanation,
    text_width,
    wrap_text,
    write_png,
)

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


# ---------------------------------------------------------------- explanations

T, VIDEO_FRAMES, FPS, SIZE = 6, 12, 12.0, (64, 48)  # 64x48 frames: a 120 px tile is 160 px wide


def make_explanation(importance=(0.123, -0.05, 0.3, 0.01, -0.2, 0.07), *, size=SIZE, method="occlusion",
                     target: str | None = None) -> Explanation:
    """An explanation of ``T`` synthetic frames of a two-class model that predicts ``a`` (0.7); drawing needs no model."""
    indices = segment_indices(VIDEO_FRAMES, T).astype(np.int64)
    probs = np.array([0.7, 0.3], np.float32)
    label = target or "a"
    return Explanation(
        path=Path("clip.mp4"), frames=make_frames(T, size), indices=indices, times=indices / FPS, fps=FPS,
        classes=["a", "b"], probabilities=probs, label=label, probability=float(probs[["a", "b"].index(label)]),
        importance=np.asarray(importance, np.float64), method=method, features=np.zeros((T, 4), np.float32),
        target_given=target is not None,
    )


def _drawn(monkeypatch, expl: Explanation, **kwargs) -> tuple[np.ndarray, dict, list]:
    """``draw_explanation(expl)``, what it handed to ``contact_sheet`` and every ``cv2.putText`` call
    ``(text, x, scale)``."""
    seen, texts = {}, []
    sheet, put = activity.inference.visualize.contact_sheet, cv2.putText

    def spy_sheet(tiles, captions, **kw):
        seen.update(tiles=tiles, captions=list(captions))
        return sheet(tiles, captions, **kw)

    def spy_put(img, text, org, font, scale, *args, **kw):
        texts.append((text, org[0], scale, img.shape[1]))
        return put(img, text, org, font, scale, *args, **kw)

    monkeypatch.setattr(activity.inference.visualize, "contact_sheet", spy_sheet)
    monkeypatch.setattr(cv2, "putText", spy_put)
    return draw_explanation(expl, **kwargs), seen, texts


def test_strip_png_has_one_tile_per_frame(tmp_path):
    expl = make_explanation()
    out = write_png(draw_explanation(expl), tmp_path / "sub" / "strip.png")
    img = cv2.imread(str(out))
    assert img is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tile_w = round(SIZE[0] * 120 / SIZE[1])
    assert tile_w == 160
    assert img.shape[1] == T * (tile_w + 4) + 4  # six 160-px tiles, 4-px gaps, in one row
    np.testing.assert_array_equal(img[:, :, ::-1], draw_explanation(expl))
    # The same geometry as a contact sheet of the frames with bars under them (tiles 120 + 8 px tall),
    # then the bars' legend (one 20-px line).
    sheet = contact_sheet(np.zeros((T, 128, tile_w, 3), np.uint8), [""] * T, tile_height=128, title="t")
    assert img.shape[:2] == (sheet.shape[0] + 20, sheet.shape[1])

    wrapped = draw_explanation(expl, columns=4)
    assert wrapped.shape[1] == 4 * (tile_w + 4) + 4 and wrapped.shape[0] > img.shape[0]
    assert wrapped.dtype == np.uint8 and wrapped.shape[2] == 3


def test_occlusion_strip_has_a_legend_and_a_targets_title_names_the_prediction(monkeypatch):
    expl = make_explanation()
    img, _, texts = _drawn(monkeypatch, expl)
    title = texts[0][0]
    assert title == f"clip.mp4: predicted {expl.label} ({expl.probability:.2f}), occlusion importance"
    assert [t for t, *_ in texts[-2:]] == [f"supports {expl.label}", f"speaks against {expl.label}"]
    legend = img[-20:]  # the last band: a swatch of each bar colour before its words
    for colour in (activity.inference.visualize._POS, activity.inference.visualize._NEG):
        assert (legend == colour).all(axis=2).sum() >= 14 * 6
    _, _, texts = _drawn(monkeypatch, make_explanation(target="b"))
    title = " ".join(t for t, *_ in texts[:2])  # the title may wrap onto a second line
    assert "target b (0.30)" in title and f"predicted {expl.label} ({expl.probability:.2f})" in title


def test_tiny_occlusion_importances_read_their_size_not_zero(monkeypatch):
    """A confident model's occlusion drops are tiny; bars are relative to the largest, so labels must not read 0.000."""
    expl = make_explanation(importance=[2e-5, -1e-5, 0.0, 3e-6, -0.0, -5e-6])
    _, seen, _ = _drawn(monkeypatch, expl)
    values = [c.split()[-1] for c in seen["captions"]]
    assert values == ["+2.0e-05", "-1.0e-05", "0", "+3.0e-06", "0", "-5.0e-06"]
    tw = seen["tiles"].shape[2]
    bar = seen["tiles"][:, 120 + 4]  # the middle row of each frame's bar
    lengths = [int(np.any(row != 235, axis=1).sum()) for row in bar]
    assert lengths == [tw, tw // 2, 0, round(0.15 * tw), 0, tw // 4]  # as long as the numbers say, relative to the largest

    big = dataclasses.replace(expl, importance=np.array([0.412, -0.05, 0.01, 0.0099, 1e-7, -0.3]))
    _, seen, _ = _drawn(monkeypatch, big)
    assert [c.split()[-1] for c in seen["captions"]] == ["+0.412", "-0.050", "+0.010", "+9.9e-03", "+1.0e-07", "-0.300"]
    att = dataclasses.replace(expl, method="attention", importance=np.array([0.5, 0.3, 0.1996, 4e-4, 0, 0]))
    _, seen, _ = _drawn(monkeypatch, att)
    assert [c.split()[-1] for c in seen["captions"]] == ["0.500", "0.300", "0.200", "4.0e-04", "0", "0"]


def test_captions_of_a_small_portrait_clip_stay_inside_their_tiles(monkeypatch):
    """70x124 frames (as the basketball crops) give 68-pixel tiles: too narrow for "0.42s  +0.123" on one line."""
    expl = make_explanation(size=(70, 124))
    img, seen, texts = _drawn(monkeypatch, expl)
    assert seen["tiles"].shape[1:3] == (128, 68)
    wide = (img < 255).any(axis=2)
    # The bottom row of the bars: the last row inked across all six tiles. (Not "over half the picture's width":
    # OpenCV 5 draws text anti-aliased over more pixels, and a two-line caption row crosses half the width.)
    last_tile_row = np.flatnonzero(wide.sum(axis=1) >= T * 68).max()
    tiles = wide[last_tile_row]  # the tiles' columns; the gaps between them are white
    assert tiles.sum() == T * 68 and not tiles.all()
    assert last_tile_row >= 128 and not wide[last_tile_row + 1 :].all(axis=1).any()  # below it: captions, not tiles
    swatch = (img == activity.inference.visualize._POS).all(axis=2).any(axis=1)
    legend_top = np.flatnonzero(swatch[last_tile_row + 1 :]).min() + last_tile_row + 1 - 5  # the bars' legend
    ink = (img[last_tile_row + 1 : legend_top] < 128).any(axis=2).any(axis=0)  # columns the captions draw in
    assert ink.any()
    assert not (ink & ~tiles).any(), f"caption ink in columns between tiles: {np.flatnonzero(ink & ~tiles)[:10]}"
    for text, x, scale, width in texts:  # the title too: nothing runs off the picture
        assert x + cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width, text


def test_note_adds_a_line_and_unwritable_output_is_an_error(tmp_path):
    expl = make_explanation()
    plain = draw_explanation(expl)
    expl.note = "a note"
    assert draw_explanation(expl).shape[0] > plain.shape[0]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ActivityError, match="strip.png"):
        write_png(plain, blocker / "strip.png")  # parent is a file


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
