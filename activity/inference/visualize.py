"""Pictures of what the model sees: contact sheets of sampled frames, and explanations drawn on them.

Text is drawn with OpenCV's Hershey simplex font and measured with
``cv2.getTextSize`` before it is drawn, so that it fits where it goes: a title
or note wraps onto more lines; a caption wraps at its spaces, then takes a
smaller font, and only when even that is too wide for its tile (frames shown
very narrow) does the tile grow wider than its frame.

:func:`draw_explanation` draws an :class:`~activity.inference.explain.Explanation` (per-frame importance)
as such a sheet, with a bar under each frame; :func:`write_png` writes any of these pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from activity.errors import ActivityError

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


# ---------------------------------------------------------------- explanations


class Explained(Protocol):
    """What :func:`draw_explanation` reads of an :class:`~activity.inference.explain.Explanation`; a protocol,
    so that explain.py can draw through this module without this module importing it."""

    path: Path
    frames: np.ndarray
    indices: np.ndarray
    times: np.ndarray
    importance: np.ndarray
    method: str
    label: str
    probability: float
    target_given: bool
    note: str | None

    @property
    def predicted(self) -> str: ...

    @property
    def predicted_probability(self) -> float: ...

    @property
    def caveat(self) -> str | None: ...

    @property
    def top_frame(self) -> int: ...


_POS = (240, 140, 20)  # RGB orange: supports the class
_NEG = (50, 110, 220)  # RGB blue: speaks against it
_TOP = (220, 30, 30)


def _bar_tile(frame: np.ndarray, value: float, scale: float, tile_height: int, bar_height: int, top: bool) -> np.ndarray:
    """The frame at ``tile_height``, with an importance bar of ``bar_height`` under it."""
    import cv2

    h, w = frame.shape[:2]
    tw = max(1, round(w * tile_height / h))
    img = cv2.resize(frame, (tw, tile_height), interpolation=cv2.INTER_AREA)
    if top:
        cv2.rectangle(img, (0, 0), (tw - 1, tile_height - 1), _TOP, 3)
    bar = np.full((bar_height, tw, 3), 235, np.uint8)
    frac = 0.0 if scale <= 0 or not np.isfinite(value) else min(1.0, abs(value) / scale)
    length = int(round(frac * tw))
    if length:
        inset = 2 if bar_height > 4 else 0
        bar[inset : bar_height - inset, :length] = _POS if value >= 0 else _NEG
    return np.concatenate([img, bar])


def format_importance(value: float, signed: bool = True) -> str:
    """A frame's importance as its caption shows it, never reading zero for a value that is not.

    Three decimals from 0.01 up (``+0.412``); below that two significant
    digits in scientific notation (``+2.3e-05``), so that a clip whose
    importances are all tiny (a confident model's occlusion drops) shows their
    real size under the bars, which are drawn relative to the largest. Exactly
    zero is ``0``, NaN ``nan``. ``signed``: a ``+`` on positive values.
    """
    if not np.isfinite(value):
        return "nan" if np.isnan(value) else f"{value:+}"
    if value == 0:
        return "0"
    sign = "+" if signed else ""
    return f"{value:{sign}.3f}" if abs(value) >= 0.01 else f"{value:{sign}.1e}"


def draw_explanation(expl: Explained, *, columns: int = 8, tile_height: int = 120, bar_height: int = 8) -> np.ndarray:
    """The sampled frames in a row (wrapping after ``columns``) with each frame's importance.

    Every tile is the frame, a bar under it whose length is the frame's
    importance relative to the largest absolute importance of the clip (orange:
    supports the class; blue: a negative occlusion importance, i.e. the class
    became more likely without the frame) and a caption with its time (or frame
    index when the frame rate is unknown) and importance (:func:`format_importance`).
    The most important frame has a red border. The title gives the explained class, its
    probability and the method; a note (such as the attention -> occlusion
    fallback) and the caveat of attention weights (:attr:`~activity.inference.explain.Explanation.caveat`)
    go on lines under the tiles. Tiling is :func:`contact_sheet`'s,
    with each tile ``tile_height + bar_height`` pixels tall (captions too wide
    for a narrow tile wrap, shrink, or widen it).

    Returns:
        uint8 RGB image.
    """
    imp = np.asarray(expl.importance, dtype=np.float64)
    finite = np.abs(imp[np.isfinite(imp)])
    scale = float(finite.max()) if finite.size else 0.0
    top = expl.top_frame if scale > 0 else -1
    tiles = np.stack([_bar_tile(f, v, scale, tile_height, bar_height, i == top) for i, (f, v) in enumerate(zip(expl.frames, imp))])
    captions = [
        (f"{t:.2f}s" if np.isfinite(t) else f"#{i}") + "  " + format_importance(v, signed=expl.method == "occlusion")
        for i, t, v in zip(expl.indices, expl.times, imp)
    ]
    if expl.target_given:
        title = (f"{expl.path.name}: target {expl.label} ({expl.probability:.2f}), predicted {expl.predicted} "
                 f"({expl.predicted_probability:.2f}), {expl.method} importance")
    else:
        title = f"{expl.path.name}: predicted {expl.label} ({expl.probability:.2f}), {expl.method} importance"
    sheet = contact_sheet(tiles, captions, columns=columns, tile_height=tile_height + bar_height, title=title)
    if expl.method == "occlusion":  # what the bars' two colours mean
        sheet = np.concatenate([sheet, legend_band(sheet.shape[1], [(_POS, f"supports {expl.label}"),
                                                                     (_NEG, f"speaks against {expl.label}")])])
    for line in (expl.note, expl.caveat):
        if line:
            sheet = np.concatenate([sheet, text_band(sheet.shape[1], f"note: {line}")])
    return sheet


def write_png(image: np.ndarray, out_path: str | Path) -> Path:
    """Write a uint8 RGB image ``(H, W, 3)`` as a PNG, whatever the file's suffix.

    The file is written atomically; missing parent folders are created.

    Raises:
        ActivityError: the image cannot be written there.
    """
    import cv2

    from activity.io import atomic_write

    out = Path(out_path)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:  # pragma: no cover - PNG encoding of a uint8 image does not fail
        raise ActivityError(f"{out}: cannot encode the image as PNG")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as f:
            f.write(buf.tobytes())
    except OSError as e:
        raise ActivityError(f"{out}: cannot write the image ({e.strerror or type(e).__name__})") from None
    return out
