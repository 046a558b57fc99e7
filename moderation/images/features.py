"""Local features of a picture, kept in the index for verification: ORB keypoints and a colour sketch.

A perceptual hash is a 64-bit summary of the broad light/dark layout, and two different products shot
the same way (the same model in the same pose, a gold and a silver tablet) can share it. Verification
(``verify.py``) needs evidence a hash cannot fake, computed once per indexed image and stored:

- **ORB keypoints** (corners with a binary descriptor, rotation-invariant, found at 8 scales) of the
  picture at :data:`FEATURE_SIDE` px on the long side: their matches are checked for one geometric
  transform, which a copy has and a look-alike does not.
- **A colour sketch**: the picture in CIELAB at :data:`SKETCH_SIDE` px, warped onto the query through that
  transform to compare colour where the two pictures overlap (a blue shirt and a black coat in the same
  pose match geometrically in outline, not in colour).

Serialised as one compact blob (``to_bytes``/``from_bytes``): ~40 bytes per keypoint plus the sketch.
"""

from __future__ import annotations

import functools
import struct
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from moderation.images.hashing import FEATURE_SIDE

#: Keypoints kept per picture (the strongest by ORB's Harris score).
MAX_FEATURES = 300
#: Long side of the colour sketch.
SKETCH_SIDE = 64

_local = threading.local()


def _orb() -> cv2.ORB:
    # One detector per thread: OpenCV objects are not documented as safe to share between threads.
    orb = getattr(_local, "orb", None)
    if orb is None:
        orb = cv2.ORB.create(nfeatures=MAX_FEATURES, fastThreshold=12, edgeThreshold=15, patchSize=31)
        _local.orb = orb
    return orb


@dataclass(frozen=True)
class Features:
    """ORB keypoints (``xy`` in pixels of a ``width`` x ``height`` picture), descriptors and sketch."""

    xy: np.ndarray  # float32 [n, 2]
    desc: np.ndarray  # uint8 [n, 32]
    width: int
    height: int
    sketch: np.ndarray  # uint8 [h, w, 3] CIELAB (OpenCV's 8-bit scaling)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @functools.cached_property
    def background(self) -> tuple[np.ndarray, np.ndarray]:
        """(background Lab colour, foreground mask) of the sketch: its border's median colour and what
        differs from it (computed once per picture; verification asks for it several times)."""
        sketch = self.sketch
        ring = np.concatenate([sketch[0], sketch[-1], sketch[:, 0], sketch[:, -1]]).astype(np.float32)
        bg = np.median(ring, axis=0)
        away = np.abs(sketch.astype(np.float32) - bg)
        return bg, (away[..., 0] > 12) | (np.hypot(away[..., 1], away[..., 2]) > 8)

    @functools.cached_property
    def sketch_rgb(self) -> np.ndarray:
        """The colour sketch in RGB, float32 0..255 (the colour comparison fits brightness in RGB)."""
        return cv2.cvtColor(self.sketch, cv2.COLOR_LAB2RGB).astype(np.float32)

    @functools.cached_property
    def sketch_lab(self) -> np.ndarray:
        """The colour sketch in float CIELAB (L* 0..100), from :attr:`sketch_rgb`."""
        out: np.ndarray = cv2.cvtColor(self.sketch_rgb / 255.0, cv2.COLOR_RGB2Lab)
        return out

    @functools.cached_property
    def foreground_box(self) -> tuple[float, float, float, float]:
        """The foreground (product) box in this picture's pixels, from the colour sketch."""
        fg = self.background[1]
        ys, xs = np.nonzero(fg)
        sh, sw = self.sketch.shape[:2]
        if xs.size < 12:
            return 0.0, 0.0, float(self.width), float(self.height)
        fx, fy = self.width / sw, self.height / sh
        return xs.min() * fx, ys.min() * fy, (xs.max() + 1) * fx, (ys.max() + 1) * fy

    def to_bytes(self) -> bytes:
        n = len(self)
        sh, sw = self.sketch.shape[:2]
        head = struct.pack("<4sHHIHH", b"OF01", self.width, self.height, n, sw, sh)
        xy = np.round(self.xy * 8).astype("<u2").tobytes()  # 1/8 px, a picture is at most 8191 px
        return head + xy + self.desc.tobytes() + self.sketch.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Features:
        magic, width, height, n, sw, sh = struct.unpack_from("<4sHHIHH", data)
        if magic != b"OF01":
            raise ValueError("not a features blob")
        at = struct.calcsize("<4sHHIHH")
        xy = np.frombuffer(data, "<u2", 2 * n, at).reshape(n, 2).astype(np.float32) / 8
        at += 4 * n
        desc = np.frombuffer(data, np.uint8, 32 * n, at).reshape(n, 32)
        at += 32 * n
        sketch = np.frombuffer(data, np.uint8, sh * sw * 3, at).reshape(sh, sw, 3)
        return cls(xy=xy, desc=desc, width=width, height=height, sketch=sketch)


def _sketch(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = SKETCH_SIDE / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB)


def extract_array(rgb: np.ndarray) -> Features:
    """Features of an RGB uint8 array (already at most :data:`FEATURE_SIDE` on its long side)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    keypoints, desc = _orb().detectAndCompute(gray, None)
    if desc is None or not keypoints:
        xy = np.zeros((0, 2), np.float32)
        desc = np.zeros((0, 32), np.uint8)
    else:
        xy = np.asarray(cv2.KeyPoint.convert(keypoints), dtype=np.float32).reshape(-1, 2)
    return Features(xy=xy, desc=desc, width=rgb.shape[1], height=rgb.shape[0], sketch=_sketch(rgb))


def extract(rgb: Image.Image, box: tuple[float, float, float, float] | None = None) -> Features:
    """Features of a decoded picture, or of the ``box`` (fractions of the picture) resampled to full size.

    A box (a collage cell, the photo inside a screenshot) is scaled up to :data:`FEATURE_SIDE` so that
    its keypoints are found at the scale the indexed picture's were.
    """
    return extract_region(np.asarray(rgb.convert("RGB")), box)


def extract_region(arr: np.ndarray, box: tuple[float, float, float, float] | None = None) -> Features:
    """:func:`extract` of an RGB uint8 array (a query keeps its decoded picture as one array, and its
    mirror as a flipped view of it, instead of converting a PIL image for every feature set)."""
    if box is not None:
        h, w = arr.shape[:2]
        x0, y0 = int(box[0] * w), int(box[1] * h)
        x1, y1 = max(x0 + 8, round(box[2] * w)), max(y0 + 8, round(box[3] * h))
        arr = arr[y0:y1, x0:x1]
        s = FEATURE_SIDE / max(arr.shape[:2])
        if s > 1.05 or s < 0.95:  # to the indexed pictures' scale, up or down
            size = (max(8, round(arr.shape[1] * s)), max(8, round(arr.shape[0] * s)))
            how = cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA
            arr = cv2.resize(arr, size, interpolation=how)
    return extract_array(np.ascontiguousarray(arr))


def thumbnail_jpeg(rgb: Image.Image, quality: int = 80) -> bytes:
    """The picture as a small JPEG for the console (stored in the index, served by id)."""
    import io

    buf = io.BytesIO()
    rgb.convert("RGB").save(buf, "JPEG", quality=quality, optimize=False)
    return buf.getvalue()
