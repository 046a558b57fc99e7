"""Perceptual hashes of product photos that survive the edits sellers make to stolen pictures.

One image gives a small, fixed set of 64-bit DCT hashes (imagehash's pHash recipe), each taken from a
different *view* of the picture:

``full``     the whole picture after trimming flat borders. Re-encoding, resizing, brightness, grayscale
             and small overlays change few bits of a DCT hash; trimming makes pad-to-square and plain
             borders vanish before hashing, so they change none.
``center``   the central part of the trimmed picture. A crop of the original keeps most of its centre, so
             the centre view of an original and the full view of a crop line up far better than the two
             full views do.
``content``  the largest block of "busy" rows and columns (the photo inside a screenshot or a frame with
             a status bar, captions, buttons). Falls back to ``full`` when no frame is found.
``detail``   the ``full`` view hashed one octave up the spectrum: DCT frequencies 3-10 instead of pHash's
             0-7 (:data:`DETAIL_BAND`). pHash keeps only the broad light/dark layout; a low-texture photo
             (a brick wall, gravel, fabric) has almost none, so a semi-transparent watermark over 15% of
             it - itself a large, smooth, bright blob, i.e. low-frequency energy - rewrites half of its
             bits. The texture's layout lives in the band above, where the overlay adds much less.

The index stores three views per image (``INDEXED_VIEWS``: ``full``, ``center`` and ``detail``); a query
probes each stored slot with several views of its own (``QUERY_PLAN``: centred windows of 92-96% against
``full``, a 3x3 grid of shifted 84-92% windows against ``center`` for crops at an unknown place, the
whole picture and the framed photo against ``detail``) and every one of them mirrored, so a horizontal
flip is matched without storing anything more. All windows of an image are hashed at once as matrix
products (resampling and DCT folded into one matrix per window side), and a mirror's hash comes from the
same coefficients with odd horizontal frequencies negated.

Decoding is the expensive part, so JPEGs are decoded at reduced size and luma only (PIL draft mode) and
everything is hashed from a small grayscale thumbnail. Anything that cannot be hashed raises :class:`ImageError` with a
stable ``code``; callers turn it into a per-image error instead of failing the whole listing.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Bumped whenever a change to the recipe changes hash values: stored hashes of another version are not
#: comparable, so the index records the version and refuses to mix them.
#: v3 added the ``detail`` slot (three hashes per image); v4 the ``product`` slot (four) and decodes in
#: colour; indexes of another version are refused: re-index.
HASH_VERSION = "dct64-product-v4"

#: Refuse images above this many pixels before decoding them (a decompression bomb, or a scan that no
#: product photo needs). 8k x 8k is well above any marketplace upload limit.
MAX_PIXELS = 64_000_000

#: Refuse files above this size before opening them: decoding time grows with the file.
MAX_FILE_BYTES = 50 * 1024 * 1024

#: Side of the grayscale working thumbnail. Every hash is taken from a 32x32 resample of a view, so more
#: resolution only costs time; 256 leaves enough for the trim and frame detection to be precise.
WORK_SIDE = 256

#: The views stored in the index for every image, in slot order (the on-disk layout).
INDEXED_VIEWS: tuple[str, ...] = ("full", "product", "center", "detail")

#: Long side of the colour thumbnail the local features (``features.py``) and the stored thumbnail are
#: taken from; the hashes use a grayscale :data:`WORK_SIDE` thumbnail of it.
FEATURE_SIDE = 320

#: First DCT frequency (of 32) of the ``detail`` views: an 8x8 block like pHash's, frequencies 3-10 in
#: both axes (1.5-5 cycles per picture). Chosen on the benchmark (docs/images.md) among first
#: frequencies 2, 3, 4, 6 and 8: 2 still carries much of the overlay's energy (brick under the watermark
#: 16 bits away, as with pHash); from 4 up, resizing to 30% moves the hash more (cell 14-18 bits).
DETAIL_BAND = 3

#: Fraction of each side kept by the indexed ``center`` view.
CENTER_FRACTION = 0.8

#: Off-centre windows a query also probes the ``center`` slot with, as (fraction of each side kept,
#: shifts of the window centre as fractions of the side). A crop keeping s of each side at an unknown
#: place holds the stored 80% centre as a window of 0.8/s of its own side, shifted by up to (1 - s) / 2
#: / s: crops of 10-25% of the area need 84-92% windows shifted by up to ~6%. The pHash of a window
#: survives a shift or scale error of ~2-3% of its side, so a 3x3 grid per size is enough.
CROP_GRID: tuple[tuple[float, tuple[float, ...]], ...] = (
    (0.84, (-0.03, 0.0, 0.03)),
    (0.88, (-0.04, 0.0, 0.04)),
    (0.92, (-0.05, 0.0, 0.05)),
)


def _grid_names() -> tuple[str, ...]:
    names = []
    for frac, shifts in CROP_GRID:
        for dy in shifts:
            for dx in shifts:
                names.append(f"c{round(frac * 100)}{round(dx * 100):+d}{round(dy * 100):+d}")
    return tuple(names)


#: For each indexed slot, the query views compared with it. A view ``*_m`` of each is also probed (the
#: mirrored picture). ``wideNN`` are centred windows keeping NN% of each side; ``cNN+x+y`` are the
#: windows of :data:`CROP_GRID` (NN% of each side, centre shifted by x% and y%); ``content_detail`` is
#: the ``content`` box hashed like ``detail``.
QUERY_PLAN: dict[str, tuple[str, ...]] = {
    "full": ("full", "content", "wide96", "wide92", "product"),
    "product": ("product", "content_product", "full"),
    "center": ("center", "content_center", *_grid_names()),
    "detail": ("detail", "content_detail"),
}

#: Collage cells (``views.tile_boxes``: 4 quadrants, 2 columns, 2 rows): ``tN`` is cell N trimmed,
#: ``tNp`` the product region inside it. Probed without mirrors (a mirrored collage is rare).
TILES = 8
TILE_PLAN: dict[str, tuple[str, ...]] = {
    "full": tuple(f"t{i}" for i in range(TILES)),
    "product": tuple(f"t{i}p" for i in range(TILES)),
}

#: Query views that are the whole picture or its plain centre. The matcher probes the index with these
#: at a wider per-substring radius than the many crop windows (``matcher.PROBE_RADIUS``).
PRIMARY_VIEWS = frozenset(
    {"full", "content", "product", "content_product", "center", "content_center", "detail", "content_detail"}
    | {f"t{i}" for i in range(TILES)}
    | {f"t{i}p" for i in range(TILES)}
)

_DCT_N = 32
#: Side the views are resampled from (the working thumbnail is block-averaged down to about this).
_VIEW_SIDE = 128
_HASH_SIDE = 8


class ImageError(Exception):
    """An image that could not be hashed; ``code`` is stable and goes into results as ``error.code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ImageHashes:
    """The 64-bit hashes of one image, by view name (see the module docstring)."""

    views: dict[str, int]
    width: int
    height: int
    version: str = HASH_VERSION
    #: view name (without ``_m``) -> its (left, top, right, bottom) box as fractions of the picture
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    def indexed(self) -> tuple[int, ...]:
        """The hashes stored in the index, in slot order."""
        return tuple(self.views[name] for name in INDEXED_VIEWS)

    def query(self) -> dict[str, list[tuple[str, int]]]:
        """Slot name -> the (view, hash) pairs a query probes that slot with, mirrors included."""
        out = {
            slot: [(v, self.views[v]) for name in names for v in (name, name + "_m")]
            for slot, names in QUERY_PLAN.items()
        }
        for slot, names in TILE_PLAN.items():
            out[slot].extend((name, self.views[name]) for name in names if name in self.views)
        return out


def _dct_matrix(n: int) -> np.ndarray:
    # Unnormalised DCT-II, as scipy.fftpack.dct computes it; the median threshold ignores the scale.
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT_ALL = _dct_matrix(_DCT_N)
_DCT = _DCT_ALL[:_HASH_SIDE]  # the 8 lowest frequencies: pHash
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def dct_hash(pixels32: np.ndarray) -> int:
    """pHash of a 32x32 grayscale array: the 8x8 lowest DCT frequencies thresholded at their median.

    Bit-for-bit the recipe of ``imagehash.phash`` (tested), computed as two small matrix products; bit 63
    is the DC term, row-major like imagehash. :func:`hash_gray` uses the same DCT through
    :func:`window_lows` (a triangle-filter resample instead of PIL's Lanczos, hence ``HASH_VERSION`` v2).
    """
    low = _DCT @ pixels32 @ _DCT.T
    bits = (low > np.median(low)).ravel()
    return int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits])) if bits.any() else 0


def _resample_matrices(n_in: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """[V, 32, n_in] weights that resample pixels ``starts[v]..stops[v]`` (fractional) of a line to 32.

    An antialiased triangle filter (PIL's BILINEAR reduce): its support widens with the reduction, so
    every input pixel counts. As matrices, a window's 8x8 DCT is ``(D @ Ry) @ pixels @ (D @ Rx).T``, and
    a window may start and end between pixels.
    """
    scale = (stops - starts) / _DCT_N  # [V]
    support = np.maximum(scale, 1.0)[:, None, None]
    centres = starts[:, None] + (np.arange(_DCT_N) + 0.5)[None, :] * scale[:, None]  # [V, 32]
    x = np.arange(n_in) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs(x[None, None, :] - centres[:, :, None]) / support)
    total = w.sum(axis=2, keepdims=True)
    total[total == 0] = 1.0
    out: np.ndarray = w / total
    return out


def mirror_sign(first: int = 0) -> np.ndarray:
    """Per-column signs that turn a window's 8x8 coefficients (frequencies ``first``..) into its mirror's.

    DCT-II is odd in the horizontal frequency under a left-right mirror: the mirrored window's
    coefficients are the window's with odd columns negated, so mirrors cost no resampling.
    """
    return np.array([1.0 if (first + k) % 2 == 0 else -1.0 for k in range(_HASH_SIDE)])


_MIRROR_SIGN = mirror_sign(0)


def window_lows(
    arr: np.ndarray, boxes: list[tuple[float, float, float, float]], first: int = 0
) -> np.ndarray:
    """DCT frequencies ``first``..``first + 7`` of a 32x32 resample of each (left, top, right, bottom) box.

    Returns [V, 8, 8]. ``first=0`` is pHash's block, ``first=DETAIL_BAND`` the ``detail`` views'.
    """
    h, w = arr.shape
    b = np.asarray(boxes, dtype=np.float64)
    dct = _DCT_ALL[first : first + _HASH_SIDE]
    ry = dct @ _resample_matrices(h, b[:, 1], b[:, 3])  # [V, 8, h]
    rx = dct @ _resample_matrices(w, b[:, 0], b[:, 2])  # [V, 8, w]
    out: np.ndarray = np.matmul(np.matmul(ry, arr), rx.transpose(0, 2, 1))
    return out


def lows_to_hashes(lows: np.ndarray) -> np.ndarray:
    """[V, 8, 8] DCT coefficients -> [V] uint64 hashes (above-median bits, bit 63 the DC term)."""
    flat = lows.reshape(lows.shape[0], -1)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    out: np.ndarray = np.bitwise_or.reduce(np.where(bits, _BIT_WEIGHTS, np.uint64(0)), axis=1)
    return out


def hash_to_hex(value: int) -> str:
    return f"{value:016x}"


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# --------------------------------------------------------------------------------------------- decoding


def local_path(ref: str | os.PathLike[str]) -> Path:
    """The local file an image reference names: a path or a ``file://`` URL.

    http(s) references raise ``remote_not_supported``: checks run without network access, and fetching
    seller-supplied URLs from a moderation worker would be a liability anyway.
    """
    text = os.fspath(ref)
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https"):
        raise ImageError("remote_not_supported", f"remote images are not fetched (no network): {text}")
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise ImageError("unsupported_url", f"unsupported image URL scheme {parsed.scheme!r}: {text}")
    return Path(text)


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError("not_found", f"no such image file: {path}") from None
    except OSError as exc:
        raise ImageError("unreadable_image", f"cannot read {path}: {exc}") from None
    if not path.is_file():
        raise ImageError("not_found", f"not a file: {path}")
    if size == 0:
        raise ImageError("unreadable_image", f"empty file: {path}")
    if size > MAX_FILE_BYTES:
        raise ImageError("image_too_large", f"{path} is {size} bytes; the limit is {MAX_FILE_BYTES}")


def load_image(ref: str | os.PathLike[str] | bytes, side: int = FEATURE_SIDE) -> Image.Image:
    """Decode an image (a file, or its bytes) into an RGB thumbnail no larger than ``side``.

    Handles EXIF orientation, animation (first frame), transparency (composited on white, as shops show
    it), 16-bit and float modes; raises :class:`ImageError` for everything else. Bytes are named
    ``<bytes>`` in messages.
    """
    if isinstance(ref, bytes | bytearray | memoryview):
        data = bytes(ref)
        name = "<bytes>"
        if not data:
            raise ImageError("unreadable_image", "empty image data")
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(
                "image_too_large", f"image data is {len(data)} bytes; the limit is {MAX_FILE_BYTES}"
            )
        source: Any = io.BytesIO(data)
    else:
        path = local_path(ref)
        _check_size(path)
        name, source = str(path), path
    try:
        with warnings.catch_warnings():
            # PIL warns (and above twice its own limit raises) for decompression bombs; we check the
            # declared size ourselves before decoding, so turn the warning into the same clear error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        "image_too_large",
                        f"{name} is {width}x{height} pixels; the limit is {MAX_PIXELS} pixels",
                    )
                if width < 8 or height < 8:
                    raise ImageError("image_too_small", f"{name} is {width}x{height}; need at least 8x8")
                if getattr(im, "is_animated", False):
                    im.seek(0)
                if im.format == "JPEG":
                    # Let libjpeg decode scaled by 1/2..1/8 (its DCT scaling is an area average): most
                    # of the cost of a big photo. The result is at least ``side`` on each requested side.
                    # (draft keeps both sides at least the requested size: ask for the thumbnail's shape)
                    s = side / max(width, height)
                    im.draft("RGB", (max(1, math.ceil(width * s)), max(1, math.ceil(height * s))))
                im.load()
                return rgb_thumbnail(im, side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("image_too_large", f"{name}: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("unreadable_image", f"{name} is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        # Truncated or corrupt data surfaces as any of these, depending on the format plugin.
        raise ImageError("unreadable_image", f"{name} is broken or truncated: {exc}") from None
    except MemoryError:
        raise ImageError("image_too_large", f"{name} needs more memory than available to decode") from None


def load_gray(ref: str | os.PathLike[str] | bytes, work_side: int = WORK_SIDE) -> Image.Image:
    """Decode an image into the grayscale thumbnail the hashes are taken from (see :func:`load_image`)."""
    return gray_thumbnail(load_image(ref), work_side)


def gray_thumbnail(rgb: Image.Image, work_side: int = WORK_SIDE) -> Image.Image:
    gray = rgb.convert("L")
    if max(gray.size) > work_side:
        import cv2

        s = work_side / max(gray.size)
        size = (max(1, round(gray.width * s)), max(1, round(gray.height * s)))
        how = cv2.INTER_AREA if s < 0.5 else cv2.INTER_LINEAR
        gray = Image.fromarray(cv2.resize(np.asarray(gray), size, interpolation=how))
    return gray


def rgb_thumbnail(im: Image.Image, side: int) -> Image.Image:
    if im.getexif().get(0x0112, 1) != 1:  # EXIF orientation (exif_transpose copies even when upright)
        im = ImageOps.exif_transpose(im) or im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im.convert("F") if im.mode != "F" else im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        im = Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), "L")
    elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    rgb = im.convert("RGB")
    if max(rgb.size) > side:
        import cv2  # an area-average reduce: several times faster than PIL's filters at this size

        s = side / max(rgb.size)
        size = (max(1, round(rgb.width * s)), max(1, round(rgb.height * s)))
        how = cv2.INTER_AREA if s < 0.5 else cv2.INTER_LINEAR
        rgb = Image.fromarray(cv2.resize(np.asarray(rgb), size, interpolation=how))
    return rgb


# ---------------------------------------------------------------------------------------------- views


def trim_box(arr: np.ndarray, tol: float = 10.0, max_fraction: float = 0.45) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom) inside flat borders of one colour.

    A row or column at the edge is border when nearly all its pixels are within ``tol`` of the corner
    colour. Padding to a square, letterboxing and plain frames are removed this way, so they do not move
    the hash; at most ``max_fraction`` of a side is ever trimmed, so a photo with a large flat area keeps
    its shape.
    """
    h, w = arr.shape
    corners = np.array([arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]])
    bg = float(np.median(corners))
    close = np.abs(arr - bg) <= tol
    rows_flat = close.mean(axis=1) >= 0.98
    cols_flat = close.mean(axis=0) >= 0.98

    def run(flags: np.ndarray) -> int:
        nz = np.flatnonzero(~flags)
        return int(nz[0]) if nz.size else flags.size

    limit_h, limit_w = int(h * max_fraction), int(w * max_fraction)
    top = min(run(rows_flat), limit_h)
    bottom = h - min(run(rows_flat[::-1]), limit_h)
    left = min(run(cols_flat), limit_w)
    right = w - min(run(cols_flat[::-1]), limit_w)
    return left, top, right, bottom


def trim_all(arr: np.ndarray, rounds: int = 3) -> tuple[int, int, int, int]:
    """:func:`trim_box` repeated while it shrinks: a coloured frame around white padding goes too."""
    box = (0, 0, arr.shape[1], arr.shape[0])
    for _ in range(rounds):
        sub = arr[box[1] : box[3], box[0] : box[2]]
        inner = trim_box(sub)
        if inner[2] - inner[0] < 8 or inner[3] - inner[1] < 8:  # a flat picture: nothing to trim to
            break
        if inner == (0, 0, sub.shape[1], sub.shape[0]):
            break
        # Step past the blurred seam (JPEG ringing, resampling) so the next round sees the next border.
        m = [2 if t else 0 for t in (inner[0], inner[1], sub.shape[1] - inner[2], sub.shape[0] - inner[3])]
        inner = (inner[0] + m[0], inner[1] + m[1], inner[2] - m[2], inner[3] - m[3])
        if inner[2] - inner[0] < 8 or inner[3] - inner[1] < 8:
            break
        box = (box[0] + inner[0], box[1] + inner[1], box[0] + inner[2], box[1] + inner[3])
    return box


def content_box(arr: np.ndarray, tol: float = 6.0) -> tuple[int, int, int, int] | None:
    """The photo inside a screenshot-like frame, or None when the picture is not framed.

    UI around a photo (title, price, captions, buttons) is mostly the page's flat background colour with
    thin text on it, so in such a row most pixels sit close to that colour; photo rows do not. The page
    colour is the median of the picture's outer ring. The longest run of other rows, then of other
    columns within it, is the photo. Only a clearly smaller box (below 90% of the area and at least 25%
    of it) counts, so plain photos keep one view.
    """
    h, w = arr.shape
    ring = np.concatenate([arr[:2].ravel(), arr[-2:].ravel(), arr[:, :2].ravel(), arr[:, -2:].ravel()])
    page = float(np.median(ring))
    near_page = np.abs(arr - page) <= tol
    r0, r1 = _longest_run(near_page.mean(axis=1) < 0.6, min_gap=max(2, h // 50))
    if r1 - r0 < h * 0.3:
        return None
    c0, c1 = _longest_run(near_page[r0:r1].mean(axis=0) < 0.6, min_gap=max(2, w // 50))
    if c1 - c0 < w * 0.3:
        return None
    area = (r1 - r0) * (c1 - c0)
    if area > 0.9 * h * w or area < 0.25 * h * w:
        return None
    return c0, r0, c1, r1


def _longest_run(flags: np.ndarray, min_gap: int) -> tuple[int, int]:
    """Longest run of True, bridging gaps of False shorter than ``min_gap`` (a flat stripe in a photo)."""
    best = (0, 0)
    start = None
    gap = 0
    for i, flag in enumerate(flags.tolist()):
        if flag:
            if start is None:
                start = i
            gap = 0
            end = i + 1
            if end - start > best[1] - best[0]:
                best = (start, end)
        elif start is not None:
            gap += 1
            if gap >= min_gap:
                start = None
                gap = 0
    return best


_Box = tuple[float, float, float, float]


def _window(box: tuple[int, int, int, int], fraction: float, dx: float = 0.0, dy: float = 0.0) -> _Box:
    """The window keeping ``fraction`` of each side of ``box``, its centre shifted by (dx, dy) sides.

    Fractional pixel edges are kept (the resampling matrices take them); a shifted window may reach a
    little past the box, where the resampling uses only the pixels inside.
    """
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    cx, cy = left + w * (0.5 + dx), top + h * (0.5 + dy)
    return cx - w * fraction / 2, cy - h * fraction / 2, cx + w * fraction / 2, cy + h * fraction / 2


def _sub_box(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return outer[0] + inner[0], outer[1] + inner[1], outer[0] + inner[2], outer[1] + inner[3]


def hash_gray(gray: Image.Image, tiles: bool = True, stored_only: bool = False) -> ImageHashes:
    """All views of a decoded grayscale thumbnail (see :func:`load_gray`).

    ``tiles=False`` leaves out the collage cells (only queries probe them); ``stored_only=True`` computes
    just the :data:`INDEXED_VIEWS` (what indexing needs: no screenshot frame, windows, mirrors or cells).
    """
    from moderation.images.views import product_box, tile_boxes

    arr = np.asarray(gray, dtype=np.float64)
    full = trim_all(arr)
    trimmed = arr[full[1] : full[3], full[0] : full[2]]
    product = _sub_box(full, product_box(trimmed))
    if stored_only:
        return _hash_boxes(
            arr,
            gray,
            {
                "full": _window(full, 1.0),
                "product": _window(product, 1.0),
                "center": _window(full, CENTER_FRACTION),
            },
            {},
            mirrors=False,
        )
    inner = content_box(trimmed)
    content = full if inner is None else _sub_box(full, inner)
    content_arr = arr[content[1] : content[3], content[0] : content[2]]
    content_product = product if content == full else _sub_box(content, product_box(content_arr))
    boxes: dict[str, _Box] = {
        "full": _window(full, 1.0),
        "center": _window(full, CENTER_FRACTION),
        "content": _window(content, 1.0),
        "content_center": _window(content, CENTER_FRACTION),
        "wide96": _window(full, 0.96),
        "wide92": _window(full, 0.92),
        "product": _window(product, 1.0),
        "content_product": _window(content_product, 1.0),
    }
    names = iter(_grid_names())
    for frac, shifts in CROP_GRID:
        for dy in shifts:
            for dx in shifts:
                boxes[next(names)] = _window(full, frac, dx, dy)
    tile_views: dict[str, _Box] = {}
    if tiles:
        for i, cell in enumerate(tile_boxes(arr, full)):
            cell_arr = arr[cell[1] : cell[3], cell[0] : cell[2]]
            tile_views[f"t{i}"] = _window(cell, 1.0)
            tile_views[f"t{i}p"] = _window(_sub_box(cell, product_box(cell_arr, strips=False)), 1.0)
    return _hash_boxes(arr, gray, boxes, tile_views, mirrors=True)


def _hash_boxes(
    arr: np.ndarray, gray: Image.Image, boxes: dict[str, _Box], tile_views: dict[str, _Box], mirrors: bool
) -> ImageHashes:
    """Hash every box (and ``detail``/``content_detail`` one band up; mirrors of all but the cells)."""
    # The windows are resampled to 32x32 anyway: ~128 px of picture is plenty, and a quarter of the work.
    k = max(1, round(max(arr.shape) / _VIEW_SIDE))
    if k > 1:
        h, w = (arr.shape[0] // k) * k, (arr.shape[1] // k) * k
        arr = arr[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))
    views: dict[str, int] = {}
    # The detail views are the same two boxes as full and content, one band up the spectrum.
    detail_boxes = {"detail": boxes["full"]}
    if "content" in boxes:
        detail_boxes["content_detail"] = boxes["content"]
    groups = ((boxes, 0, mirrors), (detail_boxes, DETAIL_BAND, mirrors), (tile_views, 0, False))
    for group, first, mirrored_too in groups:
        if not group:
            continue
        lows = window_lows(arr, [tuple(v / k for v in box) for box in group.values()], first)
        plain = lows_to_hashes(lows).tolist()
        mirrored = lows_to_hashes(lows * mirror_sign(first)).tolist() if mirrored_too else plain
        for name, h, hm in zip(group, plain, mirrored, strict=True):
            views[name] = h
            if mirrored_too:
                views[name + "_m"] = hm
    gw, gh = float(gray.width), float(gray.height)
    fractions = {
        name: (max(0.0, b[0] / gw), max(0.0, b[1] / gh), min(1.0, b[2] / gw), min(1.0, b[3] / gh))
        for name, b in {**boxes, **tile_views}.items()
    }
    fractions["detail"] = fractions["full"]
    if "content" in fractions:
        fractions["content_detail"] = fractions["content"]
    return ImageHashes(views=views, width=gray.width, height=gray.height, boxes=fractions)


def hash_image(ref: str | os.PathLike[str] | bytes) -> ImageHashes:
    """Hash an image file (path or ``file://`` URL) or its bytes; raises :class:`ImageError` with a stable code."""
    return hash_gray(load_gray(ref))


def hash_pil(image: Image.Image, work_side: int = WORK_SIDE) -> ImageHashes:
    """Hash an already-decoded image (benchmarks and tests); same views as :func:`hash_image`."""
    return hash_gray(gray_thumbnail(rgb_thumbnail(image, FEATURE_SIDE), work_side))
