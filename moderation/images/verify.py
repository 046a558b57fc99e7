"""Second stage: check a retrieved candidate with evidence a hash cannot fake, and say what kind of copy.

For one (query, candidate) pair, with the candidate's stored :class:`~moderation.images.features.Features`:

1. **Descriptor matches**: each query ORB keypoint's two nearest candidate descriptors (Hamming);
   kept when the nearest is clearly nearer than the second (Lowe's ratio test, :data:`RATIO`).
2. **Geometry**: one similarity transform (rotation, uniform scale, translation; a homography
   constrained to what copying does) fitted with RANSAC (``cv2.estimateAffinePartial2D``). A copy -
   re-encoded, resized, cropped, rotated, framed, tiled - has many matches agreeing with one transform;
   a look-alike product has a few scattered ones. Mirrors are checked with the mirrored query's
   keypoints.
3. **Where**: the candidate's outline mapped into the query (the matched region, a box in each picture),
   how much of the candidate is shown (a crop) and how much of the query it fills (a collage cell, the
   photo in a screenshot), and how widely the inliers spread over the candidate (a shared logo alone
   is a small cluster).
4. **Colour and tone**: the candidate's colour sketch warped onto the query's through the transform;
   the chroma difference and the lightness correlation over the candidate's foreground (a black coat
   and a blue shirt on the same model line up in outline, not in colour).

The evidence is combined into a probability that the pair is a copy (:func:`score`, a logistic model
whose weights were fitted on the benchmark, see docs/images.md) with a reason: ``same photo``,
``cropped``, ``mirrored`` or ``inside a collage or screenshot``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from moderation.images.features import Features

#: Lowe's ratio test: the nearest descriptor must be at most this fraction of the second nearest.
RATIO = 0.8
#: Largest Hamming distance (of 256 bits) of a descriptor match.
MAX_DESCRIPTOR_DISTANCE = 80
#: RANSAC reprojection threshold, pixels of the feature pictures (long side 320).
RANSAC_PIXELS = 5.0
#: Fewer matches than this are not tried for a transform.
MIN_MATCHES = 6

#: Logistic model over the evidence (:func:`score`); fitted with ``scripts/bench_images.py --fit``.
WEIGHTS: dict[str, float] = {
    "bias": -11.033,
    "log_inliers": 1.408,
    "inlier_ratio": 4.132,
    "spread": 1.502,
    "colour": -0.105,
    "tone": 2.742,
}
#: A verified pair is a copy from this probability on.
COPY_PROBABILITY = 0.5
#: Above this median chroma difference over the product the pair is not a copy whatever the geometry:
#: the same shot in another colour (a gold and a silver tablet, a shirt in black and in blue) lines up
#: perfectly in lightness. 99% of the benchmark's copies are below it (docs/images.md).
COLOUR_LIMIT = 12.0

REASONS = ("same photo", "cropped", "mirrored", "inside a collage or screenshot")
#: The reason given to a pair that lines up but fails the colour check (not a copy; shown by --explain).
OTHER_COLOUR = "same shot, other colour"


@dataclass
class Verification:
    """Evidence about one (query, candidate) pair and the verdict drawn from it."""

    inliers: int = 0
    matches: int = 0
    mirrored: bool = False
    spread: float = 0.0  # inliers' bounding box over the candidate's foreground box, 0..1
    colour: float = 99.0  # median chroma difference (CIELAB units) over the candidate's foreground
    tone: float = 0.0  # lightness correlation over the overlap, -1..1
    colour_tail: float = 99.0  # 90th percentile chroma difference where lightness agrees
    scale: float = 0.0  # candidate -> query scale
    rotation: float = 0.0  # degrees
    shown: float = 0.0  # share of the candidate visible in the query
    fills: float = 0.0  # share of the query the candidate covers
    query_box: tuple[float, float, float, float] | None = None  # matched region, fractions of the query
    match_box: tuple[float, float, float, float] | None = None  # matched region, fractions of the match
    probability: float = 0.0
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, float]:
        return {
            "log_inliers": math.log1p(self.inliers),
            "inlier_ratio": self.inliers / self.matches if self.matches else 0.0,
            "spread": self.spread,
            "colour": min(self.colour, 60.0),
            "tone": self.tone,
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": round(self.probability, 4),
            "inliers": self.inliers,
            "matches": self.matches,
            "spread": round(float(self.spread), 3),
            "colour": round(min(self.colour, 99.0), 2),
            "tone": round(self.tone, 3),
            "colour_tail": round(min(self.colour_tail, 99.0), 2),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.query_box is not None:
            out["region"] = [round(v, 4) for v in self.query_box]
        if self.match_box is not None:
            out["match_region"] = [round(v, 4) for v in self.match_box]
        if self.inliers:
            out["scale"] = round(self.scale, 3)
            out["rotation"] = round(self.rotation, 1)
            out["mirrored"] = self.mirrored
        return out


def score(evidence: dict[str, float], weights: dict[str, float] | None = None) -> float:
    w = WEIGHTS if weights is None else weights
    z = w["bias"] + sum(w[k] * v for k, v in evidence.items() if k in w)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _matches(q: Features, c: Features) -> tuple[np.ndarray, np.ndarray]:
    """(query index, candidate index) of the descriptor matches that pass the ratio test."""
    if len(q) < 2 or len(c) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    dist, idx = cv2.batchDistance(q.desc, c.desc, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    d0, d1 = dist[:, 0].astype(np.float32), dist[:, 1].astype(np.float32)
    good = (d0 <= MAX_DESCRIPTOR_DISTANCE) & (d0 < RATIO * d1)
    qi = np.flatnonzero(good)
    return qi, idx[qi, 0].astype(np.intp)


def _box_of(points: np.ndarray, w: float, h: float) -> tuple[float, float, float, float]:
    x0, y0 = np.clip(points.min(axis=0), 0, [w, h])
    x1, y1 = np.clip(points.max(axis=0), 0, [w, h])
    return float(x0), float(y0), float(x1), float(y1)


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _corners(w: float, h: float) -> np.ndarray:
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def foreground_box(c: Features) -> tuple[float, float, float, float]:
    """The candidate's foreground (product) box in its feature-picture pixels, from its colour sketch."""
    return c.foreground_box


def _colour_and_tone(q: Features, c: Features, m: np.ndarray) -> tuple[float, float, float]:
    """Chroma difference, lightness correlation and chroma-difference tail of the candidate's sketch
    warped onto the query's (see :class:`Verification`)."""
    qs, cs = q.sketch, c.sketch
    sq = qs.shape[1] / q.width
    sc = cs.shape[1] / c.width
    # query-sketch <- query <- candidate <- candidate-sketch
    ms = m.copy()
    ms[:, :2] = m[:, :2] * (sq / sc)
    ms[:, 2] = m[:, 2] * sq
    size = (qs.shape[1], qs.shape[0])
    warped = cv2.warpAffine(cs, ms, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpAffine(np.full(cs.shape[:2], 255, np.uint8), ms, size, flags=cv2.INTER_NEAREST)
    fg_c = c.background[1]
    fg_w = cv2.warpAffine(fg_c.astype(np.uint8), ms, size, flags=cv2.INTER_NEAREST) > 0
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    if inside.sum() < 12:
        return 99.0, 0.0, 99.0
    a = qs[inside].astype(np.float32)
    b = warped[inside].astype(np.float32)
    fg = fg_w[inside]
    la, lb = a[:, 0], b[:, 0]
    la, lb = la - la.mean(), lb - lb.mean()
    denom = float(np.sqrt((la * la).sum() * (lb * lb).sum()))
    tone = float((la * lb).sum() / denom) if denom > 1e-6 else 0.0
    if np.percentile(np.hypot(a[:, 1] - 128, a[:, 2] - 128), 95) < 4:
        return 0.0, tone, 0.0  # a grayscale query: a grayscale copy has no colour to compare
    # A tint of the whole picture shows on the background too: the median chroma shift over the
    # candidate's background pixels is removed (none when the product fills the picture).
    shift = np.median(a[~fg, 1:] - b[~fg, 1:], axis=0) if (~fg).sum() >= 0.2 * len(fg) else np.zeros(2)
    if fg.sum() < 12:
        fg = np.ones(len(b), bool)
    # The median over the product: a banner or a watermark over part of it does not move it, a colour
    # variant (the same shot of a gold and a silver tablet) moves all of it.
    # Brightness and contrast edits scale chroma too (a darker red is a less saturated one): fit one
    # scale of the candidate's chroma onto the query's before comparing (0.6-1.7).
    qa, cb = a[fg, 1:] - 128 - shift, b[fg, 1:] - 128
    denom_ab = float((cb * cb).sum())
    k = float(np.clip((qa * cb).sum() / denom_ab, 0.6, 1.7)) if denom_ab > 1e-6 else 1.0
    chroma = np.hypot(*(qa - k * cb).T)
    # Where the lightness agrees (no overlay there: a banner or watermark changes lightness too), a
    # colour variant still differs in chroma - often in a small part (a tablet's bezel): the 90th
    # percentile of the chroma difference over those pixels. Lightness is matched by a linear fit first
    # (brightness and contrast edits).
    lq, lc = a[fg, 0], b[fg, 0]
    slope, icpt = np.polyfit(lc, lq, 1) if lc.std() > 1 else (1.0, float(lq.mean() - lc.mean()))
    agree = np.abs(lq - (slope * lc + icpt)) < 10
    tail = float(np.percentile(chroma[agree], 90)) if agree.sum() >= 12 else 0.0
    return float(np.median(chroma)), tone, tail


def verify(q: Features, c: Features, mirrored: bool = False) -> Verification:
    """Evidence that ``q`` (the query's features, mirrored or not) contains the candidate ``c``."""
    out = Verification(mirrored=mirrored)
    qi, ci = _matches(q, c)
    out.matches = int(qi.size)
    if qi.size < MIN_MATCHES:
        out.probability = score(out.evidence())
        return out
    src = c.xy[ci].astype(np.float32)
    dst = q.xy[qi].astype(np.float32)
    m, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS, maxIters=1000, confidence=0.995
    )
    if m is None or mask is None:
        out.probability = score(out.evidence())
        return out
    inl = mask.ravel().astype(bool)
    s = float(math.hypot(m[0, 0], m[1, 0]))
    if not 0.08 <= s <= 12:
        out.probability = score(out.evidence())
        return out
    out.inliers = int(inl.sum())
    out.scale = s
    out.rotation = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    pts = src[inl]
    if pts.shape[0]:
        # How much of the candidate's product the inliers cover: a shared logo or a face is a corner of it.
        spread_box = _box_of(pts, c.width, c.height)
        out.spread = min(1.0, _area(spread_box) / max(_area(foreground_box(c)), 0.05 * c.width * c.height))
    m64 = m.astype(np.float64)
    q_box = _box_of(_apply(m64, _corners(c.width, c.height)), q.width, q.height)
    inv = cv2.invertAffineTransform(m64)
    c_box = _box_of(_apply(inv, _corners(q.width, q.height)), c.width, c.height)
    out.fills = _area(q_box) / float(q.width * q.height)
    # How much of the candidate's product is in the query (its white margins do not count).
    fg = foreground_box(c)
    inter = (max(c_box[0], fg[0]), max(c_box[1], fg[1]), min(c_box[2], fg[2]), min(c_box[3], fg[3]))
    out.shown = _area(inter) / max(_area(fg), 1.0)
    out.query_box = (q_box[0] / q.width, q_box[1] / q.height, q_box[2] / q.width, q_box[3] / q.height)
    out.match_box = (c_box[0] / c.width, c_box[1] / c.height, c_box[2] / c.width, c_box[3] / c.height)
    if out.inliers >= MIN_MATCHES:  # (too few to be a copy whatever the colour: skip the warp)
        out.colour, out.tone, out.colour_tail = _colour_and_tone(q, c, m64)
    out.probability = score(out.evidence())
    if out.colour > COLOUR_LIMIT:
        if score({**out.evidence(), "colour": 0.0}) >= COPY_PROBABILITY:
            out.reason = OTHER_COLOUR  # it lines up as a copy would: say why it is not one
        out.probability = min(out.probability, 0.01)
    elif out.fills < 0.5 and out.shown >= 0.8:
        out.reason = "inside a collage or screenshot"
    elif out.shown < 0.85:
        out.reason = "cropped"
    elif mirrored:
        out.reason = "mirrored"
    else:
        out.reason = "same photo"
    if out.probability < COPY_PROBABILITY and out.reason != OTHER_COLOUR:
        out.reason = None  # not a copy: no kind of copy to name
    return out

