"""Photo-like test pictures made with PIL and numpy (no scikit-image needed), shared by the image tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps


def photo(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A smooth random colour field with shapes and noise: structure at every scale, like a photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    low = rng.random((6, 8, 3))
    base = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), float)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    arr = np.asarray(im, float) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def save_jpeg(im: Image.Image, path: Path, quality: int = 90) -> Path:
    im.convert("RGB").save(path, "JPEG", quality=quality)
    return path


def reencode(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def edits(im: Image.Image) -> dict[str, Image.Image]:
    """A few of the benchmark's edits, deterministic."""
    w, h = im.size
    side = max(w, h)
    return {
        "resize": im.resize((w // 2, h // 2), Image.LANCZOS),
        "jpeg30": reencode(im, 30),
        "flip": ImageOps.mirror(im),
        "gray": im.convert("L").convert("RGB"),
        "pad": ImageOps.pad(im, (side, side), color=(255, 255, 255)),
        "crop": im.crop((w // 40, h // 40, w - w // 40, h - h // 40)),
    }
