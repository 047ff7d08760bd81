"""Pictures of what the model sees: contact sheets of sampled frames.

Text is drawn with OpenCV's Hershey simplex font and measured with
``cv2.getTextSize`` before it is drawn, so that it fits where it goes: a title
or note wraps onto more lines; a caption wraps at its spaces, then takes a
smaller font, and only when even that is too wide for its tile (frames shown
very narrow) does the tile grow wider than its frame.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CAPTION_SCALE = 0.4
"""Font scale of the captions under the tiles (and of notes); they may shrink down to :data:`SMALLEST_CAPTION_SCALE`."""
SMALLEST_CAPTION_SCALE = 0.3
TITLE_SCALE = 0.5
PAD = 4
"""Pixels between tiles and around the sheet."""


def text_width(text: str, scale: float) -> int:
    """Width in pixels of ``text`` drawn with ``cv2.putText`` (Hershey simplex, thickness 1) at ``scale``."""
    import cv2

    return int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0])


def _break_word(word: str, width: int, scale: float) -> list[str]:
    pieces = [""]
    for ch in word:
        if pieces[-1] and text_width(pieces[-1] + ch, scale) > width:
            pieces.append(ch)
        else:
            pieces[-1] += ch
    return pieces


def wrap_text(text: str, width: int, scale: float, *, break_words: bool = True) -> list[str]:
    """``text`` as lines at most ``width`` pixels wide at font ``scale``.

    Text that fits stays one line, spacing and all; otherwise it is broken at
    spaces, and a word wider than ``width`` on its own is broken between
    characters (unless ``break_words`` is false, when it stays whole and too wide).
    """
    if text_width(text, scale) <= width:
        return [text]
    lines: list[str] = []
    for word in text.split():
        for piece in _break_word(word, width, scale) if break_words else [word]:
            if lines and text_width(f"{lines[-1]} {piece}", scale) <= width:
                lines[-1] += " " + piece
            else:
                lines.append(piece)
    return lines or [""]


def caption_layout(captions: Sequence[str], tile_width: int) -> tuple[float, list[list[str]], int]:
    """How captions fit under tiles ``tile_width`` pixels wide.

    The largest font scale from :data:`CAPTION_SCALE` down to
    :data:`SMALLEST_CAPTION_SCALE` at which every caption, wrapped at its
    spaces, fits the tile (2 pixels of margin each side); when none does, the
    smallest, with the tile widened to the widest line.

    Returns:
        ``(scale, lines of each caption, tile width)``.
    """
    room = tile_width - 4
    for scale in (CAPTION_SCALE, 0.35, SMALLEST_CAPTION_SCALE):
        lines = [wrap_text(str(c), room, scale, break_words=False) for c in captions]
        widest = max((text_width(line, scale) for ls in lines for line in ls), default=0)
        if widest <= room:
            return scale, lines, tile_width
    return scale, lines, widest + 4


def text_band(width: int, text: str, *, scale: float = CAPTION_SCALE, color: tuple[int, int, int] = (90, 90, 90)) -> np.ndarray:
    """A white uint8 RGB band ``width`` pixels wide holding ``text``, wrapped to fit.

    One line is 20 pixels tall at the default scale, and each further line adds 14.
    """
    import cv2

    lines = wrap_text(text, width - 2 * PAD, scale)
    line_h = round(35 * scale)
    band = np.full((6 + line_h * len(lines), width, 3), 255, np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(band, line, (PAD, line_h + line_h * k), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return band


def legend_band(width: int, items: Sequence[tuple[tuple[int, int, int], str]], *, scale: float = CAPTION_SCALE) -> np.ndarray:
    """A white uint8 RGB band ``width`` pixels wide with a colour swatch before each text (``(RGB, text)``),
    side by side, an item that does not fit going on to the next line."""
    import cv2

    line_h, swatch = round(35 * scale), 14
    rows: list[list[tuple[tuple[int, int, int], str, int]]] = [[]]
    x = PAD
    for colour, text in items:
        w = swatch + 4 + text_width(text, scale)
        if rows[-1] and x + w > width - PAD:
            rows.append([])
            x = PAD
        rows[-1].append((colour, text, x))
        x += w + 3 * PAD
    band = np.full((6 + line_h * len(rows), width, 3), 255, np.uint8)
    for k, row in enumerate(rows):
        base = line_h + line_h * k
        for colour, text, x in row:
            cv2.rectangle(band, (x, base - 9), (x + swatch - 1, base - 2), colour, -1)
            cv2.putText(band, text, (x + swatch + 4, base), cv2.FONT_HERSHEY_SIMPLEX, scale, (90, 90, 90), 1, cv2.LINE_AA)
    return band


def contact_sheet(
    frames: np.ndarray,
    captions: Sequence[str] | None = None,
    *,
    columns: int = 8,
    tile_height: int = 120,
    title: str | None = None,
) -> np.ndarray:
    """Tile frames into one image with a caption under each.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``.
        captions: one short text per frame (e.g. its index and time); see
            :func:`caption_layout` for how a caption too wide for its tile is fitted.
        columns: tiles per row.
        tile_height: height of each tile in pixels (width keeps the aspect ratio).
        title: text above the tiles, wrapped to the sheet's width.

    Returns:
        uint8 RGB image ``(H', W', 3)``.
    """
    import cv2

    t, h, w = frames.shape[:3]
    tw = max(1, round(w * tile_height / h))
    scale, lines, cell = caption_layout(captions, tw) if captions is not None else (CAPTION_SCALE, [], tw)
    line_h = round(35 * scale)  # 14 pixels at 0.4
    cap_h = 4 + line_h * max((len(ls) for ls in lines), default=1)
    cols = max(1, min(columns, t))
    rows = -(-t // cols)
    width = cols * (cell + PAD) + PAD
    head = text_band(width, title, scale=TITLE_SCALE, color=(0, 0, 0)) if title else np.zeros((0, width, 3), np.uint8)
    grid = np.full((rows * (tile_height + cap_h + PAD) + PAD, width, 3), 255, np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        y, x = PAD + r * (tile_height + cap_h + PAD), PAD + c * (cell + PAD)
        left = x + (cell - tw) // 2
        grid[y : y + tile_height, left : left + tw] = cv2.resize(f, (tw, tile_height), interpolation=cv2.INTER_AREA)
        for k, line in enumerate(lines[i] if lines else []):
            cv2.putText(grid, line, (x + 2, y + tile_height + line_h - 1 + line_h * k), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([head, grid])
