"""Where the product is in a picture: the region that overlays in the margin do not move, and tiles.

Product photos are mostly shot on a flat background. A seller's copy adds things in the margin - a
shop logo or watermark in a corner, a promotional banner strip along an edge, the status bar, title and
price of an app screenshot - and a box around "everything that is not background" jumps from the
product to the whole picture as soon as one such thing appears. So the product region is found in
three steps, on the small grayscale working thumbnail:

1. **Strips**: bands of rows (or columns) along an edge whose pixels are mostly one colour other than
   the background - a banner, a status or navigation bar - are cut off first (:func:`strip_box`).
2. **Background**: the colour of the picture's outer ring (after the strips). When the ring is not
   mostly one colour the photo has no flat background (a lifestyle shot) and the region is the whole
   picture inside the strips.
3. **Foreground components**: pixels away from the background, closed with a small kernel, split into
   connected components; the region is the box around the largest one, grown by every component at
   least :data:`KEEP_FRACTION` of its size that lies near it (the two shoes of a pair, a lens and its
   frame). Text, a logo or a watermark in the margin is a small or distant component and is left out.

:func:`tile_boxes` splits a picture into the cells of the usual collage layouts (2x2, 1x2, 2x1), each
trimmed of its gutter, so a photo that is one tile of a collage can be looked up by itself.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # left, top, right, bottom (pixels, right/bottom exclusive)

#: Components at least this fraction of the largest one's area belong to the product too.
KEEP_FRACTION = 0.15
#: ... and lie within this fraction of the picture's side of the box grown so far.
NEAR_FRACTION = 0.06
#: A pixel differs from the background when its gray level is further than this from it.
FOREGROUND_TOL = 14.0
#: Strips are looked for in this outer fraction of each side only.
STRIP_MAX_FRACTION = 0.3


def _edge_run(flags: np.ndarray, limit: int, bridge: int) -> int:
    """Length of the run of True at the start of ``flags`` (gaps shorter than ``bridge`` bridged)."""
    end = 0
    gap = 0
    for i, flag in enumerate(flags[:limit].tolist()):
        if flag:
            end = i + 1
            gap = 0
        else:
            gap += 1
            if gap > bridge or end == 0:
                break
    return end


def _edge_cut(arr: np.ndarray, limit: int) -> int:
    """Rows to cut from the top: up to the innermost full-width edge within the first ``limit`` rows.

    A banner or a bar ends where every column steps from its colour to the picture's; a product on a
    flat background makes no such step across the whole width.
    """
    if limit < 2:
        return 0
    top = arr[: limit + 2]
    # A step over two rows: resampling spreads a sharp edge over two.
    steps = (np.abs(top[2:] - top[:-2]) > 24).mean(axis=1)
    edges = np.flatnonzero(steps >= 0.85)
    return int(edges[-1]) + 2 if edges.size else 0


def strip_box(arr: np.ndarray, bg: float | None = None) -> Box:
    """The picture without banner strips and bars along its edges.

    Two signs of a strip along an edge, within :data:`STRIP_MAX_FRACTION` of the side: a full-width
    edge (every column changes colour at the same row: where a banner or bar meets the photo), or a
    run of rows that are mostly one colour other than the background (at least 55% of the pixels within
    12 gray levels of the row's median; short gaps bridged). The larger cut wins. The same for columns.
    """
    h, w = arr.shape
    if bg is None:
        bg = float(np.median(np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])))

    def strips(a: np.ndarray) -> np.ndarray:
        med = np.median(a[:, ::4], axis=1, keepdims=True)  # every 4th pixel: plenty for a row's median
        uniform = (np.abs(a - med) <= 12).mean(axis=1) >= 0.55
        out: np.ndarray = uniform & (np.abs(med[:, 0] - bg) > FOREGROUND_TOL)
        return out

    def cut(a: np.ndarray, flags: np.ndarray) -> int:
        limit = int(a.shape[0] * STRIP_MAX_FRACTION)
        bridge = max(2, a.shape[0] // 40)
        return max(_edge_run(flags, limit, bridge), _edge_cut(a, limit))

    rows, cols = strips(arr), strips(arr.T)
    top = cut(arr, rows)
    bottom = h - cut(arr[::-1], rows[::-1])
    left = cut(arr.T, cols)
    right = w - cut(arr.T[::-1], cols[::-1])
    if bottom - top < h // 3 or right - left < w // 3:
        return 0, 0, w, h
    return left, top, right, bottom


def background(arr: np.ndarray) -> float | None:
    """The flat background's gray level, or None when the picture's outer ring is not mostly one colour."""
    ring = np.concatenate([arr[:2].ravel(), arr[-2:].ravel(), arr[:, :2].ravel(), arr[:, -2:].ravel()])
    bg = float(np.median(ring))
    return bg if (np.abs(ring - bg) <= 10).mean() >= 0.6 else None


def product_box(arr: np.ndarray, strips: bool = True) -> Box:
    """Box of the product (see the module docstring); the whole picture when nothing stands out.

    ``strips=False`` skips step 1 (a collage cell has no banner of its own; it is the costly step).
    """
    bg = background(arr)
    sl, st, sr, sb = strip_box(arr, bg) if strips else (0, 0, arr.shape[1], arr.shape[0])
    inner = arr[st:sb, sl:sr]
    if bg is None:
        bg = background(inner)
    if bg is None:
        return sl, st, sr, sb
    mask: np.ndarray = (np.abs(inner - bg) > FOREGROUND_TOL).astype(np.uint8)
    k = max(3, round(min(inner.shape) / 64)) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return sl, st, sr, sb
    areas = stats[1:, cv2.CC_STAT_AREA]
    boxes = np.c_[
        stats[1:, cv2.CC_STAT_LEFT],
        stats[1:, cv2.CC_STAT_TOP],
        stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH],
        stats[1:, cv2.CC_STAT_TOP] + stats[1:, cv2.CC_STAT_HEIGHT],
    ]
    big = np.flatnonzero(areas >= KEEP_FRACTION * areas.max())
    # Grow from the largest component by the big ones close to it (the other shoe of a pair), not by
    # far ones (a price line or a button under the photo of a screenshot).
    x0, y0, x1, y1 = (int(v) for v in boxes[int(np.argmax(areas))])
    gap = NEAR_FRACTION * max(inner.shape)
    added = True
    while added:
        added = False
        for i in big.tolist():
            bx0, by0, bx1, by1 = boxes[i]
            if bx0 >= x0 and by0 >= y0 and bx1 <= x1 and by1 <= y1:
                continue
            if bx0 - x1 <= gap and x0 - bx1 <= gap and by0 - y1 <= gap and y0 - by1 <= gap:
                x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
                added = True
    if (x1 - x0) * (y1 - y0) < 0.02 * inner.size or x1 - x0 < 8 or y1 - y0 < 8:
        return sl, st, sr, sb
    return sl + x0, st + y0, sl + x1, st + y1


def _trim(arr: np.ndarray, box: Box, tol: float = 10.0) -> Box:
    """``box`` shrunk past rows/columns that are nearly all one flat colour (a collage's gutter)."""
    left, top, right, bottom = box
    sub = arr[top:bottom, left:right]
    if sub.size == 0:
        return box
    corners = np.array([sub[0, 0], sub[0, -1], sub[-1, 0], sub[-1, -1]])
    close = np.abs(sub - float(np.median(corners))) <= tol
    rows = np.flatnonzero(close.mean(axis=1) < 0.98)
    cols = np.flatnonzero(close.mean(axis=0) < 0.98)
    if rows.size < 8 or cols.size < 8:
        return box
    return left + int(cols[0]), top + int(rows[0]), left + int(cols[-1]) + 1, top + int(rows[-1]) + 1


def _split(arr: np.ndarray, lo: int, hi: int, axis: int) -> int:
    """Where to cut between ``lo`` and ``hi`` along ``axis``: the flattest line near the middle."""
    mid = (lo + hi) // 2
    span = max(1, (hi - lo) // 10)
    a, b = mid - span, mid + span + 1
    lines = arr[a:b, :] if axis == 0 else arr[:, a:b].T
    return a + int(np.argmin(lines.std(axis=1)))


def tile_boxes(arr: np.ndarray, box: Box) -> list[Box]:
    """Cells of a 2x2, 1x2 and 2x1 layout of ``box`` (quadrants first), each trimmed of its gutter."""
    left, top, right, bottom = box
    if right - left < 32 or bottom - top < 32:
        return []
    sub = arr[top:bottom, left:right]
    cy = top + _split(sub, 0, bottom - top, 0)
    cx = left + _split(sub, 0, right - left, 1)
    cells = [
        (left, top, cx, cy),
        (cx, top, right, cy),
        (left, cy, cx, bottom),
        (cx, cy, right, bottom),
        (left, top, cx, bottom),
        (cx, top, right, bottom),
        (left, top, right, cy),
        (left, cy, right, bottom),
    ]
    return [_trim(arr, c) for c in cells]
