"""Text lines in a picture: PP-OCRv4 detection and recognition on ONNX Runtime, tiled for long images.

The models come inside the ``rapidocr-onnxruntime`` wheel (nothing is downloaded at run time); this
module drives them itself instead of through ``rapidocr_onnxruntime.RapidOCR`` so that the settings that
decide the speed are ours: the detector's input size, one intra-op thread per session (a check runs on
one core; the audit already uses every core with its own processes), a sequential session, and
recognition batches sorted by width. The 180-degree direction classifier is not run: promo text on a
product picture is upright (slanted text is fine: each detected quadrilateral is rectified before it is
read).

Long detail-page images (详情页, 750x3000 and taller) are read in tiles along the long side: each tile is
about 4:3, consecutive tiles overlap by :attr:`OcrSettings.tile_overlap` of the width (more than a
promo line is tall), a line cut by a tile's inner edge is left to the neighbour that holds it whole, and
lines found twice in an overlap are merged.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped when the pipeline changes what it reads from a given picture: part of the cache key.
PIPELINE_VERSION = 2


@dataclass(frozen=True)
class OcrSettings:
    """What decides speed and what is read; every field is part of the cache key (``key()``)."""

    #: Detector input: each tile is scaled so that its long side is at most this (multiple of 32).
    #: Recall and CPU of each size on the benchmark: docs/ocr.md, "Tuning".
    det_side: int = 736
    #: Intra-op threads per ONNX Runtime session.
    threads: int = 1
    #: Text crops per recognition run (sorted by width first, so little padding). One at a time was the
    #: fastest on one thread: a batch is padded to its widest crop (docs/ocr.md).
    rec_batch: int = 1
    #: Recognition input is at least this wide. PaddleOCR pads every crop to 320 (6.7 heights); a short
    #: word then costs as much as a long line. Without the padding recognition takes half the time and
    #: reads the promo lines of the benchmark the same (docs/ocr.md).
    rec_min_width: int = 0
    #: Blank added after the widest crop of a batch, in recogniser pixels (48 = one character). The
    #: recogniser was trained on padded crops; without any blank it drops a final 一 (销量第一 → 销量第).
    rec_pad: int = 24
    #: Each detected box is widened by this share of its height on the left and the right before it is
    #: cropped: the detector's boxes hug the glyphs and the first or last character is sometimes cut.
    crop_margin: float = 0.0
    #: Images are decoded with their short side at most this (a 4000x3000 photo is read at 1200x900).
    max_short_side: int = 1200
    #: A tile is at most this many times as long as it is wide.
    tile_aspect: float = 1.34
    #: Overlap of consecutive tiles, as a share of the short side.
    tile_overlap: float = 0.2
    #: Detected boxes lower than this many pixels (at decode scale) are not read: no promo text is that
    #: small, and reading them costs as much as a real line.
    min_line_height: int = 9
    #: DB post-processing: pixel threshold, box score threshold, unclip ratio.
    det_thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6

    def key(self) -> str:
        fields = ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()) if k != "threads")
        return f"ppocrv4/p{PIPELINE_VERSION}/{fields}"


@dataclass(frozen=True)
class OcrLine:
    """One recognised text line: its text, the recogniser's confidence, and its box in image pixels."""

    text: str
    confidence: float
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the decoded image's pixels (see OcrPage)
    quad: tuple[tuple[int, int], ...] = ()  # the detected quadrilateral (slanted text), clockwise

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "quad": [list(p) for p in self.quad],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OcrLine:
        x1, y1, x2, y2 = (int(v) for v in d["box"])
        quad = tuple((int(p[0]), int(p[1])) for p in d.get("quad", ()))
        return cls(d["text"], float(d["confidence"]), (x1, y1, x2, y2), quad)


@dataclass(frozen=True)
class OcrPage:
    """Every line read from one picture, in reading order, with the picture's size in pixels."""

    width: int
    height: int
    lines: tuple[OcrLine, ...]
    scale: float = 1.0  # decoded size / original size (boxes are returned in original pixels)

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "lines": [ln.to_json() for ln in self.lines]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OcrPage:
        return cls(int(d["width"]), int(d["height"]), tuple(OcrLine.from_json(x) for x in d["lines"]))


def _model_dir() -> Path:
    try:
        import rapidocr_onnxruntime
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError(
            "OCR needs the rapidocr-onnxruntime package (pip install rapidocr-onnxruntime)"
        ) from exc
    return Path(rapidocr_onnxruntime.__file__).resolve().parent / "models"


class OcrEngine:
    """Detector and recogniser sessions, built on first use (thread-safe) and reused.

    ``read(rgb)`` takes an RGB ``uint8`` array and returns an :class:`OcrPage` in its pixels. ONNX
    Runtime sessions may be run from several threads at once.
    """

    def __init__(self, settings: OcrSettings | None = None) -> None:
        self.settings = settings or OcrSettings()
        self._lock = threading.Lock()
        self._det: Any = None
        self._rec: Any = None
        self._post: Any = None
        self._decode: Any = None

    def _load(self) -> None:
        if self._rec is not None:
            return
        with self._lock:
            if self._rec is not None:
                return
            import onnxruntime as ort
            from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess
            from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

            s = self.settings
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = s.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            models = _model_dir()
            providers = ["CPUExecutionProvider"]
            det = ort.InferenceSession(str(models / "ch_PP-OCRv4_det_infer.onnx"), opts, providers=providers)
            rec = ort.InferenceSession(str(models / "ch_PP-OCRv4_rec_infer.onnx"), opts, providers=providers)
            chars = rec.get_modelmeta().custom_metadata_map["character"].splitlines()
            self._post = DBPostProcess(
                thresh=s.det_thresh,
                box_thresh=s.box_thresh,
                max_candidates=1000,
                unclip_ratio=s.unclip_ratio,
                score_mode="fast",
                use_dilation=True,
            )
            self._decode = CTCLabelDecode(character=chars)
            self._det = det
            self._rec = rec

    def warm_up(self) -> None:
        self._load()

    # -- the pipeline ------------------------------------------------------------------------------

    def read(self, rgb: np.ndarray) -> OcrPage:
        """Every text line of an RGB picture, in reading order (top to bottom, left to right)."""
        self._load()
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("expected an RGB image array (H, W, 3)")
        h, w = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the PaddleOCR models were trained on BGR
        quads: list[np.ndarray] = []
        for x0, y0, x1, y1, inner in tiles(w, h, self.settings.tile_aspect, self.settings.tile_overlap):
            tile = bgr[y0:y1, x0:x1]
            for q in self._detect(tile):
                q = q + np.array([x0, y0], dtype=np.float32)
                if _cut_by(q, (x0, y0, x1, y1), inner):
                    continue  # cut by an inner edge: the neighbouring tile holds this line whole
                quads.append(q)
        quads = _dedupe_quads(quads)
        quads = [q for q in quads if _quad_height(q) >= self.settings.min_line_height]
        quads.sort(key=lambda q: (float(q[:, 1].min()), float(q[:, 0].min())))
        quads = _reading_order(quads)
        margin = self.settings.crop_margin
        crops = [_crop(bgr, _widen(q, margin, w, h) if margin else q) for q in quads]
        texts = self._recognise(crops)
        lines = []
        for q, (text, conf) in zip(quads, texts, strict=True):
            text = text.strip()
            if not text:
                continue
            xs, ys = q[:, 0], q[:, 1]
            box = (
                int(max(0, xs.min())),
                int(max(0, ys.min())),
                int(min(w, math.ceil(xs.max()))),
                int(min(h, math.ceil(ys.max()))),
            )
            quad = tuple((round(float(x)), round(float(y))) for x, y in q)
            lines.append(OcrLine(text, float(conf), box, quad))
        return OcrPage(w, h, tuple(lines))

    def _detect(self, bgr: np.ndarray) -> list[np.ndarray]:
        import cv2

        h, w = bgr.shape[:2]
        side = self.settings.det_side
        ratio = min(1.0, side / max(h, w))
        rh = max(32, round(h * ratio / 32) * 32)
        rw = max(32, round(w * ratio / 32) * 32)
        small = cv2.resize(bgr, (rw, rh), interpolation=cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR)
        x = (small.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)[None]
        pred = self._det.run(None, {self._det.get_inputs()[0].name: x})[0]
        boxes, _scores = self._post(pred, (h, w))
        out = []
        for box in boxes:
            q = _order_clockwise(np.asarray(box, dtype=np.float32))
            q[:, 0] = np.clip(q[:, 0], 0, w - 1)
            q[:, 1] = np.clip(q[:, 1], 0, h - 1)
            if np.linalg.norm(q[0] - q[1]) <= 3 or np.linalg.norm(q[0] - q[3]) <= 3:
                continue
            out.append(q)
        return out

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        import cv2

        if not crops:
            return []
        img_h = 48
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops]
        order = np.argsort(ratios)
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        batch = max(1, self.settings.rec_batch)
        name = self._rec.get_inputs()[0].name
        for b in range(0, len(crops), batch):
            idx = order[b : b + batch]
            max_ratio = max(ratios[i] for i in idx)
            width = max(
                self.settings.rec_min_width,
                math.ceil((img_h * max_ratio + self.settings.rec_pad) / 8) * 8,
                16,
            )
            arr = np.zeros((len(idx), 3, img_h, width), dtype=np.float32)
            for j, i in enumerate(idx):
                c = crops[i]
                rw = min(width, math.ceil(img_h * ratios[i]))
                resized = cv2.resize(c, (max(1, rw), img_h)).astype(np.float32)
                arr[j, :, :, :rw] = (resized * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)
            preds = self._rec.run(None, {name: arr})[0]
            for j, (text, conf) in enumerate(self._decode(preds)):
                out[int(idx[j])] = (text, float(conf))
        return out


# -- geometry ---------------------------------------------------------------------------------------


def tiles(w: int, h: int, aspect: float, overlap: float) -> list[tuple[int, int, int, int, tuple[bool, ...]]]:
    """Tiles ``(x0, y0, x1, y1, inner)`` covering a ``w`` x ``h`` picture along its long side.

    ``inner`` says which edges (top, bottom, left, right) are cuts rather than the picture's border.
    A picture no longer than ``aspect`` times its short side is one tile.
    """
    long_, short = max(w, h), min(w, h)
    length = int(short * aspect)
    if long_ <= length * 1.15:
        return [(0, 0, w, h, (False, False, False, False))]
    step = max(1, int(length - short * overlap))
    n = max(1, math.ceil((long_ - length) / step) + 1)
    stride = (long_ - length) / (n - 1) if n > 1 else 0.0
    out: list[tuple[int, int, int, int, tuple[bool, ...]]] = []
    for i in range(n):
        a = round(i * stride)
        b = min(long_, a + length) if i < n - 1 else long_
        first, last = i == 0, i == n - 1
        if h >= w:
            out.append((0, a, w, b, (not first, not last, False, False)))
        else:
            out.append((a, 0, b, h, (False, False, not first, not last)))
    return out


def _cut_by(q: np.ndarray, bounds: tuple[int, int, int, int], inner: tuple[bool, ...]) -> bool:
    """Whether a quad (picture coordinates) touches an edge of its tile that is a cut, not the border."""
    x0, y0, x1, y1 = bounds
    top, bottom, left, right = inner
    margin = 3
    return bool(
        (top and q[:, 1].min() <= y0 + margin)
        or (bottom and q[:, 1].max() >= y1 - 1 - margin)
        or (left and q[:, 0].min() <= x0 + margin)
        or (right and q[:, 0].max() >= x1 - 1 - margin)
    )


def _quad_height(q: np.ndarray) -> float:
    return float(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))


def _order_clockwise(pts: np.ndarray) -> np.ndarray:
    xs = pts[np.argsort(pts[:, 0]), :]
    left, right = xs[:2], xs[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def _crop(bgr: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The quadrilateral rectified to an upright strip (vertical text turned to read across)."""
    import cv2

    w = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))
    h = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    w, h = max(1, w), max(1, h)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
    crop = cv2.warpPerspective(bgr, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if h / w >= 1.5:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def _widen(q: np.ndarray, margin: float, w: int, h: int) -> np.ndarray:
    """The quad stretched along its reading direction by ``margin`` x its height at both ends."""
    height = _quad_height(q)
    top, bottom = q[1] - q[0], q[2] - q[3]
    length = max(1e-6, float(np.linalg.norm(top)))
    d = (top + bottom) / 2
    d = d / max(1e-6, float(np.linalg.norm(d))) * margin * height
    if length < height:  # vertical text: the reading direction is down the quad; leave it
        return q
    out = q.copy()
    out[0] -= d
    out[3] -= d
    out[1] += d
    out[2] += d
    out[:, 0] = np.clip(out[:, 0], 0, w - 1)
    out[:, 1] = np.clip(out[:, 1], 0, h - 1)
    return out


def _rect(q: np.ndarray) -> tuple[float, float, float, float]:
    return float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())


def _dedupe_quads(quads: list[np.ndarray]) -> list[np.ndarray]:
    """Drop a quad mostly covered by a bigger one (the same line found in two overlapping tiles)."""
    rects = [_rect(q) for q in quads]
    areas = [max(1.0, (r[2] - r[0]) * (r[3] - r[1])) for r in rects]
    order = sorted(range(len(quads)), key=lambda i: -areas[i])
    kept: list[int] = []
    for i in order:
        a = rects[i]
        dup = False
        for j in kept:
            b = rects[j]
            ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            if ix * iy >= 0.7 * areas[i]:
                dup = True
                break
        if not dup:
            kept.append(i)
    return [quads[i] for i in sorted(kept)]


def _reading_order(quads: list[np.ndarray]) -> list[np.ndarray]:
    """Top to bottom; boxes on one text row (vertical centres within half a line) left to right."""
    rows: list[list[np.ndarray]] = []
    for q in quads:
        _x0, y0, _x1, y1 = _rect(q)
        cy, hh = (y0 + y1) / 2, (y1 - y0)
        if rows:
            r0 = _rect(rows[-1][0])
            if abs((r0[1] + r0[3]) / 2 - cy) < 0.5 * min(hh, r0[3] - r0[1]):
                rows[-1].append(q)
                continue
        rows.append([q])
    return [q for row in rows for q in sorted(row, key=lambda q: float(q[:, 0].min()))]
