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
4. **Colour and tone** (:func:`compare`): the candidate's colour sketch warped onto the query's through
   the transform; brightness and contrast undone by a photometric gain/offset fit, then each pixel of
   the candidate's product compared with its 3x3 neighbourhood in the query. The share of the product
   that differs (a gold and a silver tablet, another lens colour, another print on the same ball), the
   median chroma difference and the lightness correlation. A pair that lines up as a copy would but
   differs in colour is ``same shot, other colour``, never a copy.

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
    differs: float = 1.0  # share of the candidate's product that differs from the query (compare())
    colour_checked: bool = False  # compare() ran (colour, tone and differs are measured, not defaults)
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
            "differs": round(self.differs, 3),
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


def could_be_copy(v: Verification) -> bool:
    """Whether the pair's geometry reaches a copy with the most favourable colour and tone.

    The score is linear in tone (-1..1) and the colour difference (0..60) before the logistic, so the
    better end of each bounds it from above; below :data:`COPY_PROBABILITY` no colour check can change
    the verdict (not a copy, and not ``same shot, other colour`` either: that name needs the pair to
    score as a copy with no colour difference).
    """
    best = {"colour": 0.0 if WEIGHTS["colour"] <= 0 else 60.0, "tone": 1.0 if WEIGHTS["tone"] >= 0 else -1.0}
    return score({**v.evidence(), **best}) >= COPY_PROBABILITY


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
    out: np.ndarray = pts @ m[:, :2].T + m[:, 2]
    return out


def foreground_box(c: Features) -> tuple[float, float, float, float]:
    """The candidate's foreground (product) box in its feature-picture pixels, from its colour sketch."""
    return c.foreground_box


#: Brightness and contrast edits the colour comparison undoes first: the query is taken to be
#: ``clip(a * candidate + b)`` in RGB (what PIL's or any editor's brightness and contrast do, clipping
#: included), with ``a`` from this grid and ``b`` a whole number in this range, chosen by consensus
#: (:func:`_photometric_fit`).
FIT_GAINS = np.arange(0.70, 1.46, 0.05, dtype=np.float32)
FIT_OFFSETS = (-50.0, 50.0)
#: Pixels of the candidate's product sampled for that fit.
FIT_SAMPLES = 256
#: When the best fit leaves the pair looking like another colour, up to this many fits are tried in all
#: (the runners-up by consensus, gains at least FIT_GAIN_APART apart), and the one under which the
#: pictures agree best is kept.
FIT_TRIES = 3
FIT_GAIN_APART = 0.15
FIT_RUNNER_UP = 0.9
#: A pixel differs when, after the fit, the query is further than this from every candidate pixel of
#: its 3x3 neighbourhood (misregistration of a pixel and resampling blur do not count): in lightness
#: (CIELAB L*) ...
DIFF_LIGHTNESS = 10.0
#: ... or in chroma (a*b* distance).
DIFF_CHROMA = 10.0
#: Above this share of the candidate's product differing (solid regions only: thin text strokes are
#: opened away; full-width strips along the query's edges - banners, bars - are left out) the pair is
#: not a copy whatever the geometry: the same shot with a part in another colour (a gold and a silver
#: tablet, a lens, a ball's print). docs/images.md (Verification) has the benchmark's distributions.
DIFFERS_LIMIT = 0.15
#: A query is grayscale when 95% of its pixels over the candidate's product have chroma under this ...
GRAY_CHROMA = 5.0
#: ... and the candidate's product is colourful when a quarter of it has chroma above this. A grayscale
#: copy of a colourful photo keeps its lightness (the luma of its colours); another colourway of the
#: same render does not (a white-and-black ball against a blue-and-lavender one needs a strong contrast
#: stretch to line up): such a pair is a copy only with gain and offset within these bounds.
CHROMATIC = 15.0
GRAY_GAIN = (0.85, 1.2)
GRAY_OFFSET = 15.0

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_K3 = np.ones((3, 3), np.uint8)
_K2 = np.ones((2, 2), np.uint8)


@dataclass
class ColourCheck:
    """The candidate's colour sketch compared with the query's where they overlap (see :func:`compare`)."""

    colour: float = 99.0  # median chroma difference over the candidate's product, after the fit
    tone: float = 0.0  # lightness correlation over the overlap
    differs: float = 1.0  # share of the candidate's product that differs after the fit
    gain: float = 1.0
    offset: float = 0.0
    gray: bool = False  # a grayscale query against a colourful candidate
    other_colour: bool = False  # the verdict: the same shot in another colour, not a copy


def _photometric_fit(c: np.ndarray, q: np.ndarray) -> list[tuple[float, float]]:
    """(gain, offset) pairs with ``q ~ clip(gain * c + offset)`` within 10 levels for the most pixels,
    best first: the best, then the best with a gain :data:`FIT_GAIN_APART` from those before (up to
    :data:`FIT_TRIES`).

    ``c`` and ``q`` are [n, 3] RGB. For each gain of :data:`FIT_GAINS`, every pixel allows an interval
    of offsets (the intersection over its channels; a clipped channel only bounds it on one side); the
    whole offset within :data:`FIT_OFFSETS` covered by most intervals wins, then the gain with most.
    A product of few tones (a black phone on white) can make a wrong gain win by a few pixels: the
    runners-up let :func:`compare` keep the fit under which the pictures agree best.
    """
    if len(c) > FIT_SAMPLES:
        pick = np.linspace(0, len(c) - 1, FIT_SAMPLES).astype(np.intp)
        c, q = c[pick], q[pick]
    lo_off, hi_off = int(FIT_OFFSETS[0]), int(FIT_OFFSETS[1])
    gc = FIT_GAINS[:, None, None] * c[None]  # [gains, n, 3]
    top = q[None] >= 251
    bottom = q[None] <= 4
    lo = np.where(bottom, -np.inf, np.where(top, 241.0 - gc, q[None] - gc - 10)).max(axis=2)
    hi = np.where(top, np.inf, np.where(bottom, 14.0 - gc, q[None] - gc + 10)).min(axis=2)
    lo = np.clip(np.ceil(lo), lo_off, hi_off + 1).astype(np.intp) - lo_off
    hi = np.clip(np.floor(hi), lo_off - 1, hi_off).astype(np.intp) - lo_off + 1
    width = hi_off - lo_off + 2
    rows = np.arange(len(FIT_GAINS))[:, None] * width
    valid = hi > lo
    diff = np.bincount((rows + lo)[valid], minlength=len(FIT_GAINS) * width) - np.bincount(
        (rows + hi)[valid], minlength=len(FIT_GAINS) * width
    )
    cover = np.cumsum(diff.reshape(len(FIT_GAINS), width), axis=1)[:, :-1]
    best_offset = cover.argmax(axis=1)
    best_cover = cover[np.arange(len(FIT_GAINS)), best_offset]
    out: list[tuple[float, float]] = []
    for i in np.argsort(-best_cover, kind="stable").tolist():
        g = float(FIT_GAINS[i])
        if best_cover[i] < FIT_RUNNER_UP * best_cover.max():
            break
        if all(abs(g - g0) >= FIT_GAIN_APART - 1e-6 for g0, _ in out):
            out.append((g, float(best_offset[i] + lo_off)))
            if len(out) == FIT_TRIES:
                break
    return out


def _edge_strips(
    differ: np.ndarray, inside: np.ndarray, share: float = 0.7, limit: float = 0.3
) -> np.ndarray:
    """Mask without the runs of rows/columns along the query's edges where most of the overlap differs:
    a banner strip or a bar (an overlay a seller adds; a colour variant is not a full-width strip)."""
    h, w = inside.shape
    keep = np.ones((h, w), bool)
    for axis in (0, 1):
        n = h if axis == 0 else w
        count = inside.sum(axis=1 - axis)
        bad = (differ & inside).sum(axis=1 - axis) >= share * np.maximum(count, 1)
        for order in (range(n), range(n - 1, -1, -1)):
            run: list[int] = []
            gap = 0
            for i in list(order)[: max(1, int(n * limit))]:
                if count[i] < 4 and not run:
                    continue
                if bad[i] and count[i] >= 4:
                    run.append(i)
                    gap = 0
                elif run and gap == 0:
                    gap = 1  # one row of the strip's blurred edge
                else:
                    break
            if run:
                sl = slice(min(run), max(run) + 1)
                if axis == 0:
                    keep[sl, :] = False
                else:
                    keep[:, sl] = False
    return keep


def compare(q: Features, c: Features, m: np.ndarray) -> ColourCheck:
    """Colour and tone of the candidate's sketch warped onto the query's through the transform ``m``.

    Brightness and contrast are undone first (:func:`_photometric_fit`; a grayscale query is compared
    with the candidate's luma), then each pixel of the candidate's product is compared with its 3x3
    neighbourhood in the query (:data:`DIFF_LIGHTNESS`, :data:`DIFF_CHROMA`).
    """
    out = ColourCheck()
    qs, cs = q.sketch, c.sketch
    sq = qs.shape[1] / q.width
    sc = cs.shape[1] / c.width
    # query-sketch <- query <- candidate <- candidate-sketch
    ms = m.copy()
    ms[:, :2] = m[:, :2] * (sq / sc)
    ms[:, 2] = m[:, 2] * sq
    size = (qs.shape[1], qs.shape[0])
    warped = cv2.warpAffine(cs, ms, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    covered = cv2.warpAffine(np.full(cs.shape[:2], 255, np.uint8), ms, size, flags=cv2.INTER_NEAREST)
    fg = cv2.warpAffine(c.background[1].astype(np.uint8), ms, size, flags=cv2.INTER_NEAREST) > 0
    inside: np.ndarray = cv2.erode(covered, _K3) > 0
    if inside.sum() < 12:
        return out
    product = fg & inside
    if product.sum() < 12:
        product = inside
    q_rgb = q.sketch_rgb  # (cached per picture: a query is compared with several candidates)
    c_rgb = cv2.cvtColor(warped, cv2.COLOR_LAB2RGB).astype(np.float32)
    q_chroma = np.hypot(qs[..., 1][product] - 128.0, qs[..., 2][product] - 128.0)
    c_chroma = np.hypot(warped[..., 1][product] - 128.0, warped[..., 2][product] - 128.0)
    gray = float(np.percentile(q_chroma, 95)) < GRAY_CHROMA
    if gray:  # a grayscale query: compare with the candidate's luma
        c_rgb = np.repeat((c_rgb @ _LUMA)[..., None], 3, axis=2)
    q_lab = q.sketch_lab
    colourful = gray and float(np.percentile(c_chroma, 75)) >= CHROMATIC
    best: ColourCheck | None = None
    for gain, offset in _photometric_fit(c_rgb[product], q_rgb[product]):
        check = _difference(q_lab, c_rgb, gain, offset, inside, product)
        check.gray = colourful
        check.other_colour = (
            check.colour > COLOUR_LIMIT
            or check.differs > DIFFERS_LIMIT
            or (colourful and not (GRAY_GAIN[0] <= gain <= GRAY_GAIN[1] and abs(offset) <= GRAY_OFFSET))
        )
        if best is None or (best.other_colour, best.differs) > (check.other_colour, check.differs):
            best = check
        if not best.other_colour:
            break
    return best if best is not None else out


def _difference(
    q_lab: np.ndarray, c_rgb: np.ndarray, gain: float, offset: float, inside: np.ndarray, product: np.ndarray
) -> ColourCheck:
    """Median chroma difference and the share of the product that differs, under one photometric fit."""
    out = ColourCheck(gain=gain, offset=offset)
    pred = np.clip(gain * c_rgb + offset, 0, 255)
    p_lab = cv2.cvtColor(pred / 255.0, cv2.COLOR_RGB2Lab)
    direct = np.hypot(q_lab[..., 1] - p_lab[..., 1], q_lab[..., 2] - p_lab[..., 2])
    out.colour = float(np.median(direct[product]))
    # Lightness correlation over the overlap, after the fit (a brightness edit that clips the highlights
    # no longer lowers it).
    la, lb = q_lab[..., 0][inside], p_lab[..., 0][inside]
    la, lb = la - la.mean(), lb - lb.mean()
    denom = float(np.sqrt((la * la).sum() * (lb * lb).sum()))
    out.tone = float((la * lb).sum() / denom) if denom > 1e-6 else 0.0
    # Tolerant difference: the query pixel against the range of its 3x3 neighbourhood in the prediction.
    lo, hi = cv2.erode(p_lab, _K3), cv2.dilate(p_lab, _K3)
    r = np.maximum(np.maximum(lo - q_lab, q_lab - hi), 0.0)
    differ = ((r[..., 0] > DIFF_LIGHTNESS) | (np.hypot(r[..., 1], r[..., 2]) > DIFF_CHROMA)) & inside
    keep = product & _edge_strips(differ, inside)
    if keep.sum() < 12:
        keep = product
    solid = cv2.morphologyEx(differ.astype(np.uint8), cv2.MORPH_OPEN, _K2) > 0
    out.differs = float((solid & keep).sum() / keep.sum())
    return out


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
    out.extra["transform"] = m64
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
    check = None
    # The colour check can only veto a copy or name a pair that lines up as one; when the geometry
    # falls short even with the best colour and tone (too few inliers, a low inlier ratio, a small
    # cluster), the pair is not a copy whatever the colour: skip the warp.
    if out.inliers >= MIN_MATCHES and could_be_copy(out):
        check = compare(q, c, m64)
        out.colour, out.tone, out.differs = check.colour, check.tone, check.differs
        out.colour_checked = True
        out.extra["photometric"] = (check.gain, check.offset)
    out.probability = score(out.evidence())
    if check is not None and check.other_colour:
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
