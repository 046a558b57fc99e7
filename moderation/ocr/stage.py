"""The OCR stage of a check: read a listing's pictures, check their text with the rule packs, box findings.

For image ``N`` of a listing (in ``listing.images`` order) the kept lines (``noise.keep_lines``) are
joined with line breaks into the text of field ``image:N`` and checked by
``RulesEngine.detect(listing, extra_fields={"image:N": text})`` in the listing's context (category,
attributes), like any other field. A finding's ``start``/``end`` index that text; the finding gets the
``box`` ``[x1, y1, x2, y2]`` (original image pixels) of the line(s) its span covers. The image's entry
in ``CheckResult.images`` gets an ``ocr`` object with the text and its lines, so offsets and boxes can be
shown (docs/ocr.md).

Which pictures may be read is the image module's rule (``moderation/images/sources.py``): ``data:``
URIs, files under the configured root (``MODERATION_IMAGE_ROOT``), any local path only for operator
tools; remote URLs are refused. A picture that cannot be read gets an ``ocr.error``, never fails the
listing.
"""

from __future__ import annotations

import io
import logging
import math
import time
import warnings
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moderation.images.hashing import ImageError
from moderation.images.sources import ImageSources
from moderation.ocr.cache import OcrCache, content_key
from moderation.ocr.engine import OcrEngine, OcrLine, OcrPage, OcrSettings
from moderation.ocr.noise import keep_lines
from moderation.schema import CheckResult, Finding, ImageResult, Listing

log = logging.getLogger(__name__)

#: Files above this are refused before reading (the same limit as the copied-image check).
MAX_FILE_BYTES = 50 * 1024 * 1024
#: Pictures above this many pixels are refused before decoding (decompression bombs).
MAX_PIXELS = 64_000_000
#: Pictures read per listing at most (the rest get ``ocr.error`` ``too_many_images``).
MAX_IMAGES = 20


@dataclass
class ImageText:
    """What was read from one picture of a listing: the kept lines and their text as one field."""

    index: int
    image: str
    lines: list[OcrLine] = field(default_factory=list)
    width: int = 0
    height: int = 0
    error: dict[str, str] | None = None
    cached: bool = False
    seconds: float = 0.0
    text: str = ""
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.set_lines(self.lines)

    def set_lines(self, lines: list[OcrLine]) -> None:
        self.lines = list(lines)
        self.starts = []
        pos = 0
        for ln in self.lines:
            self.starts.append(pos)
            pos += len(ln.text) + 1
        self.text = "\n".join(ln.text for ln in self.lines)

    @property
    def field(self) -> str:
        return f"image:{self.index}"

    def line_at(self, offset: int) -> int:
        return max(0, bisect_right(self.starts, offset) - 1)

    def box_for(self, start: int, end: int) -> list[int] | None:
        """The union of the boxes of the lines the span ``[start, end)`` touches."""
        if not self.lines:
            return None
        first = self.line_at(start)
        last = self.line_at(max(start, end - 1))
        boxes = [self.lines[i].box for i in range(first, last + 1)]
        return [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        ]

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return {
            "text": self.text,
            "cached": self.cached,
            "width": self.width,
            "height": self.height,
            "lines": [
                {"text": ln.text, "start": s, "confidence": round(ln.confidence, 4), "box": list(ln.box)}
                for ln, s in zip(self.lines, self.starts, strict=True)
            ],
        }


class OcrStage:
    """Reads pictures (cached by content), keeps the real text lines, and checks them with the rules.

    Thread-safe: the ONNX sessions and the cache may be shared by a server's worker threads.
    """

    def __init__(
        self,
        *,
        sources: ImageSources | None = None,
        cache: OcrCache | None = None,
        engine: OcrEngine | None = None,
        settings: OcrSettings | None = None,
        max_images: int = MAX_IMAGES,
    ) -> None:
        self.sources = sources if sources is not None else ImageSources.from_env()
        self.cache = cache if cache is not None else OcrCache.from_env()
        self.engine = engine if engine is not None else OcrEngine(settings)
        self.max_images = max_images
        self._settings_key = self.engine.settings.key()

    # -- reading pictures --------------------------------------------------------------------------

    def _bytes(self, ref: str) -> bytes:
        return read_ref(self.sources, ref)

    def read_bytes(self, data: bytes) -> tuple[OcrPage, bool]:
        """The page of a picture given as bytes, and whether it came from the cache."""
        key = content_key(data, self._settings_key)
        page = self.cache.get(key)
        if page is not None:
            return page, True
        rgb, scale = decode(data, self.engine.settings.max_short_side)
        page = self.engine.read(rgb)
        if scale != 1.0:
            page = _rescale(page, scale)
        self.cache.put(key, page)
        return page, False

    def read(self, ref: str) -> tuple[OcrPage, bool]:
        """The page of a listing's image reference (path, ``file:`` or ``data:`` URI); ImageError else."""
        return self.read_bytes(self._bytes(ref))

    def read_listing(self, listing: Listing) -> list[ImageText]:
        """One ImageText per image of the listing, in order; errors per image, never an exception."""
        out = []
        for i, ref in enumerate(listing.images):
            shown = self.sources.describe(ref)
            if i >= self.max_images:
                out.append(
                    ImageText(
                        i,
                        shown,
                        error={
                            "code": "too_many_images",
                            "message": f"only the first {self.max_images} images are read",
                        },
                    )
                )
                continue
            t0 = time.perf_counter()
            try:
                page, cached = self.read(ref)
            except ImageError as exc:
                out.append(ImageText(i, shown, error=exc.to_dict()))
                continue
            except Exception as exc:  # one broken picture must not fail the listing
                log.exception("OCR of image %d of %s failed", i, listing.id)
                out.append(
                    ImageText(
                        i, shown, error={"code": "ocr_failed", "message": f"{type(exc).__name__}: {exc}"}
                    )
                )
                continue
            out.append(
                ImageText(
                    i,
                    shown,
                    keep_lines(page.lines),
                    page.width,
                    page.height,
                    cached=cached,
                    seconds=time.perf_counter() - t0,
                )
            )
        return out

    # -- checking ----------------------------------------------------------------------------------

    def detect(
        self, rules: Any, listing: Listing, texts: list[ImageText] | None = None, **kwargs: Any
    ) -> tuple[Any, list[ImageText]]:
        """``rules.detect`` over the listing plus its images' text; image findings get their ``box``.

        Returns the engine's Detection (findings of every field, in field order) and the ImageTexts.
        ``kwargs`` go to ``detect`` (``budget_s``, ``explain``).
        """
        if texts is None:
            texts = self.read_listing(listing)
        fields = {t.field: t.text for t in texts if t.text}
        detection = rules.detect(listing, extra_fields=fields, **kwargs)
        detection.findings = attach_boxes(list(detection.findings), texts)
        return detection, texts


def read_ref(sources: ImageSources, ref: str) -> bytes:
    """The bytes of a listing's image reference, under the source rules; ImageError when refused."""
    opened = sources.open(ref)
    if isinstance(opened, bytes):
        data = opened
    else:
        path = Path(opened)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageError("not_found", f"no such image file: {ref}") from None
        except OSError as exc:
            raise ImageError("unreadable_image", f"cannot read {ref}: {exc.strerror}") from None
        if not path.is_file():
            raise ImageError("not_found", f"not a file: {ref}")
        if size > MAX_FILE_BYTES:
            raise ImageError("image_too_large", f"{ref} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError("unreadable_image", f"cannot read {ref}: {exc.strerror}") from None
    if not data:
        raise ImageError("unreadable_image", "empty image data")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError("image_too_large", f"image data is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
    return data


def attach_boxes(findings: list[Finding], texts: list[ImageText]) -> list[Finding]:
    """Each finding on an ``image:N`` field with the box of the line(s) its span covers."""
    by_field = {t.field: t for t in texts}
    out = []
    for f in findings:
        t = by_field.get(f.field)
        if t is not None:
            box = t.box_for(f.start, f.end)
            if box is not None:
                f = f.model_copy(update={"box": box})
        out.append(f)
    return out


def annotate(result: CheckResult, texts: list[ImageText], n_images: int) -> None:
    """Put each image's ``ocr`` object on its entry of ``result.images`` (creating entries as needed)."""
    if not texts:
        return
    if len(result.images) != n_images:  # no copied-image check ran: one entry per image, in order
        if result.images:
            log.warning("image results do not line up with the listing's images; OCR results appended")
        result.images = (
            [*result.images, *(ImageResult(image=t.image) for t in texts)]
            if result.images
            else [ImageResult(image=t.image) for t in texts]
        )
        offset = len(result.images) - len(texts)
    else:
        offset = 0
    for t in texts:
        result.images[offset + t.index].ocr = t.to_json()


def decode(data: bytes, max_short_side: int) -> tuple[np.ndarray, float]:
    """RGB pixels of a picture (EXIF-rotated, first frame, transparency on white), its short side at
    most ``max_short_side``; and the scale from the original. Raises ImageError for what is not one."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                im: Image.Image = opened
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageError("image_too_large", f"{w}x{h} pixels; the limit is {MAX_PIXELS}")
                if w < 8 or h < 8:
                    raise ImageError("image_too_small", f"{w}x{h}; need at least 8x8")
                if getattr(im, "is_animated", False):
                    im.seek(0)
                scale = min(1.0, max_short_side / min(w, h))
                if im.format == "JPEG" and scale < 1:
                    im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
                    rgba = im.convert("RGBA")
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, rgba)
                rgb = im.convert("RGB")
                # EXIF rotation may have swapped the sides; scale against the upright picture
                ow, oh = (w, h) if (rgb.width >= rgb.height) == (w >= h) else (h, w)
                target = min(1.0, max_short_side / min(ow, oh))
                tw, th = max(1, round(ow * target)), max(1, round(oh * target))
                if rgb.size != (tw, th):
                    rgb = rgb.resize(
                        (tw, th), Image.Resampling.LANCZOS if target < 1 else Image.Resampling.BICUBIC
                    )
                return np.asarray(rgb), target
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("image_too_large", str(exc)) from None
    except UnidentifiedImageError:
        raise ImageError("unreadable_image", "not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageError("unreadable_image", f"broken or truncated image: {exc}") from None
    except MemoryError:
        raise ImageError("image_too_large", "needs more memory than available to decode") from None


def _rescale(page: OcrPage, scale: float) -> OcrPage:
    inv = 1.0 / scale

    def s(v: int) -> int:
        return round(v * inv)

    lines = tuple(
        OcrLine(
            ln.text,
            ln.confidence,
            (s(ln.box[0]), s(ln.box[1]), s(ln.box[2]), s(ln.box[3])),
            tuple((s(x), s(y)) for x, y in ln.quad),
        )
        for ln in page.lines
    )
    return OcrPage(s(page.width), s(page.height), lines)


def preview_jpeg(sources: ImageSources, ref: str, short_side: int = 480, quality: int = 85) -> bytes:
    """A JPEG of a listing image for the console (its short side at most ``short_side``), read under the
    same source rules as a check; ImageError when it cannot be read. Boxes drawn over it use the
    original pixel coordinates in an SVG viewBox, so the preview's scale does not matter."""
    from PIL import Image

    data = read_ref(sources, ref)
    rgb, _ = decode(data, short_side)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
