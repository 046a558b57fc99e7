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

The index stores two views per image (``INDEXED_VIEWS``: ``full`` and ``center``); a query probes each
stored slot with several views of its own (``QUERY_PLAN``: also centred windows of 84-96% for crops) and
every one of them mirrored, so a horizontal flip is matched without storing anything more.

Decoding is the expensive part, so JPEGs are decoded at reduced size (PIL draft mode) and everything is
hashed from a small grayscale thumbnail. Anything that cannot be hashed raises :class:`ImageError` with a
stable ``code``; callers turn it into a per-image error instead of failing the whole listing.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Bumped whenever a change to the recipe changes hash values: stored hashes of another version are not
#: comparable, so the index records the version and refuses to mix them.
HASH_VERSION = "dct64-trim-v1"

#: Refuse images above this many pixels before decoding them (a decompression bomb, or a scan that no
#: product photo needs). 8k x 8k is well above any marketplace upload limit.
MAX_PIXELS = 64_000_000

#: Refuse files above this size before opening them: decoding time grows with the file.
MAX_FILE_BYTES = 50 * 1024 * 1024

#: Side of the grayscale working thumbnail. Every hash is taken from a 32x32 resample of a view, so more
#: resolution only costs time; 256 leaves enough for the trim and frame detection to be precise.
WORK_SIDE = 256

#: The views stored in the index for every image, in slot order (the on-disk layout).
INDEXED_VIEWS: tuple[str, ...] = ("full", "center")

#: For each indexed slot, the query views compared with it. A view ``*_m`` of each is also probed (the
#: mirrored picture). ``wideNN`` / ``centerNN`` are centred windows keeping NN% of each side: a crop of
#: the original that keeps c of each side lines up with the indexed 80% centre when the query keeps 80/c
#: of its own sides, so a few fractions cover crops of 5-15% per side.
QUERY_PLAN: dict[str, tuple[str, ...]] = {
    "full": ("full", "content", "wide96", "wide92"),
    "center": ("center", "content_center", "center84", "center88"),
}

#: Fraction of each side kept by the indexed ``center`` view.
CENTER_FRACTION = 0.8

_DCT_N = 32
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

    def indexed(self) -> tuple[int, ...]:
        """The hashes stored in the index, in slot order."""
        return tuple(self.views[name] for name in INDEXED_VIEWS)

    def query(self) -> dict[str, list[tuple[str, int]]]:
        """Slot name -> the (view, hash) pairs a query probes that slot with, mirrors included."""
        return {
            slot: [(v, self.views[v]) for name in names for v in (name, name + "_m")]
            for slot, names in QUERY_PLAN.items()
        }


def _dct_matrix(n: int) -> np.ndarray:
    # Unnormalised DCT-II, as scipy.fftpack.dct computes it; the median threshold ignores the scale.
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_matrix(_DCT_N)[:_HASH_SIDE]  # only the 8 lowest frequencies are ever used
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def dct_hash(pixels32: np.ndarray) -> int:
    """pHash of a 32x32 grayscale array: the 8x8 lowest DCT frequencies thresholded at their median.

    Bit-for-bit the recipe of ``imagehash.phash`` (tested), but computed as two small matrix products so
    that the six views of an image cost microseconds; bit 63 is the DC term, row-major like imagehash.
    """
    low = _DCT @ pixels32 @ _DCT.T
    bits = (low > np.median(low)).ravel()
    return int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits])) if bits.any() else 0


def _resample32(gray: Image.Image) -> np.ndarray:
    return np.asarray(gray.resize((_DCT_N, _DCT_N), Image.Resampling.LANCZOS), dtype=np.float64)


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


def load_gray(ref: str | os.PathLike[str], work_side: int = WORK_SIDE) -> Image.Image:
    """Decode an image file into a grayscale thumbnail no larger than ``work_side`` on its long side.

    Handles EXIF orientation, animation (first frame), transparency (composited on white, as shops show
    it), 16-bit and float modes; raises :class:`ImageError` for everything else.
    """
    path = local_path(ref)
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
    try:
        with warnings.catch_warnings():
            # PIL warns (and above twice its own limit raises) for decompression bombs; we check the
            # declared size ourselves before decoding, so turn the warning into the same clear error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        "image_too_large",
                        f"{path} is {width}x{height} pixels; the limit is {MAX_PIXELS} pixels",
                    )
                if width < 8 or height < 8:
                    raise ImageError("image_too_small", f"{path} is {width}x{height}; need at least 8x8")
                if getattr(im, "is_animated", False):
                    im.seek(0)
                if im.format == "JPEG":
                    # Let libjpeg scale by 1/2..1/8 while decoding: most of the cost of a big photo.
                    im.draft("RGB", (work_side, work_side))
                im.load()
                return _to_gray_thumbnail(im, work_side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("image_too_large", f"{path}: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("unreadable_image", f"{path} is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        # Truncated or corrupt data surfaces as any of these, depending on the format plugin.
        raise ImageError("unreadable_image", f"{path} is broken or truncated: {exc}") from None
    except MemoryError:
        raise ImageError("image_too_large", f"{path} needs more memory than available to decode") from None


def _to_gray_thumbnail(im: Image.Image, work_side: int) -> Image.Image:
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
    gray = im.convert("L")
    if max(gray.size) > work_side:
        gray.thumbnail((work_side, work_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return gray


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


def _center(box: tuple[int, int, int, int], fraction: float) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    dx, dy = round(w * (1 - fraction) / 2), round(h * (1 - fraction) / 2)
    return left + dx, top + dy, right - dx, bottom - dy


def hash_gray(gray: Image.Image) -> ImageHashes:
    """All views of a decoded grayscale thumbnail (see :func:`load_gray`)."""
    arr = np.asarray(gray, dtype=np.float64)
    full = trim_box(arr)
    if full[2] - full[0] < 8 or full[3] - full[1] < 8:  # a flat picture: nothing to trim to
        full = (0, 0, gray.width, gray.height)
    trimmed = arr[full[1] : full[3], full[0] : full[2]]
    inner = content_box(trimmed)
    content = (
        full
        if inner is None
        else (full[0] + inner[0], full[1] + inner[1], full[0] + inner[2], full[1] + inner[3])
    )
    boxes = {
        "full": full,
        "center": _center(full, CENTER_FRACTION),
        "content": content,
        "content_center": _center(content, CENTER_FRACTION),
        "wide96": _center(full, 0.96),
        "wide92": _center(full, 0.92),
        "center84": _center(full, 0.84),
        "center88": _center(full, 0.88),
    }
    views: dict[str, int] = {}
    for name, box in boxes.items():
        pixels = _resample32(gray.crop(box))
        views[name] = dct_hash(pixels)
        views[name + "_m"] = dct_hash(pixels[:, ::-1])
    return ImageHashes(views=views, width=gray.width, height=gray.height)


def hash_image(ref: str | os.PathLike[str]) -> ImageHashes:
    """Hash an image file (path or ``file://`` URL); raises :class:`ImageError` with a stable code."""
    return hash_gray(load_gray(ref))


def hash_pil(image: Image.Image, work_side: int = WORK_SIDE) -> ImageHashes:
    """Hash an already-decoded image (benchmarks and tests); same views as :func:`hash_image`."""
    return hash_gray(_to_gray_thumbnail(image, work_side))
