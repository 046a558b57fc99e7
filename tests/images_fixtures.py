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


def packshot(seed: int, size: tuple[int, int] = (480, 480)) -> Image.Image:
    """A product on a white background (an ellipse of a photo-like field), like a shop's packshot."""
    canvas = Image.new("RGB", size, (255, 255, 255))
    item = photo(seed, (size[0] * 3 // 5, size[1] * 3 // 5))
    mask = Image.new("L", item.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, item.width - 1, item.height - 1), fill=255)
    canvas.paste(item, (size[0] // 5, size[1] // 5), mask)
    return canvas


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


def texture(seed: int, size: tuple[int, int] = (320, 320)) -> Image.Image:
    """A low-texture picture (like a brick wall or fabric): fine structure, no broad light/dark layout.

    Random DCT components of 2.5-5 cycles per side and none below, plus noise: pHash (0-3.5 cycles)
    sees little of it, the ``detail`` view (1.5-5 cycles) sees all of it.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    k = np.arange(11)

    def basis(n: int) -> np.ndarray:  # DCT-II basis functions of frequencies k (k/2 cycles per side)
        return np.cos(np.pi * k[:, None] * (2 * np.arange(n)[None, :] + 1) / (2 * n))

    coef = rng.normal(0, 1, (11, 11))
    coef[np.maximum.outer(k, k) < 5] = 0
    arr = basis(h).T @ coef @ basis(w)
    arr = 120 + arr / arr.std() * 25 + rng.normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")


def banner(im: Image.Image, top: float) -> Image.Image:
    """A semi-transparent white box with dark strokes (a shop's text watermark) over 15% of the area."""
    w, h = im.size
    bw = round(0.6 * w)
    bh = round(0.15 * w * h / bw)
    x0, y0 = round(0.2 * w), round(top * h)
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle((x0, y0, x0 + bw, y0 + bh), fill=(255, 255, 255, 110))
    for i in range(6):  # letters, without depending on a font file
        lx = x0 + round((i + 0.2) * bw / 6)
        draw.rectangle((lx, y0 + bh // 5, lx + bw // 14, y0 + 4 * bh // 5), fill=(0, 0, 0, 160))
    return Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")
