"""Pictures of what the model sees: contact sheets of sampled frames."""

from __future__ import annotations

from typing import Sequence

import numpy as np


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
        captions: one short text per frame (e.g. its index and time).
        columns: tiles per row.
        tile_height: height of each tile in pixels (width keeps the aspect ratio).
        title: a line of text above the tiles.

    Returns:
        uint8 RGB image ``(H', W', 3)``.
    """
    import cv2

    t, h, w = frames.shape[:3]
    tw = max(1, round(w * tile_height / h))
    cap_h, pad = 18, 4
    cols = max(1, min(columns, t))
    rows = -(-t // cols)
    top = 24 if title else 0
    sheet = np.full((top + rows * (tile_height + cap_h + pad) + pad, cols * (tw + pad) + pad, 3), 255, np.uint8)
    if title:
        cv2.putText(sheet, title, (pad, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        y, x = top + pad + r * (tile_height + cap_h + pad), pad + c * (tw + pad)
        sheet[y : y + tile_height, x : x + tw] = cv2.resize(f, (tw, tile_height), interpolation=cv2.INTER_AREA)
        if captions is not None:
            cv2.putText(sheet, str(captions[i]), (x + 2, y + tile_height + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet
