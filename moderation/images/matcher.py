"""Copy policy: retrieve near-duplicates by hash, verify them, and turn copies into findings.

Two stages. **Retrieval**: a query image makes every lookup of its plan (``hashing.QUERY_PLAN`` and the
collage cells of ``hashing.TILE_PLAN``) in one vectorised ``HashIndex.probe`` call, within the wide
:data:`RETRIEVE_DISTANCE`; each candidate's distance is the smallest over all (query view, stored slot)
pairs, and the :data:`CANDIDATES` nearest go on. **Verification** (``verify.py``): local features with
a geometric check, and colour, against the candidate's features stored at index time; the query's own
features are computed once (and for its mirror, and for the view that found a candidate - a collage
cell, the photo in a screenshot - only when needed). A candidate is a copy when the calibrated
probability reaches ``verify.COPY_PROBABILITY``; the match carries the reason and the matched region in
both pictures. Images indexed without features (``HashIndex.add`` with hashes only) fall back to the
hash rule: a copy when within :data:`COPY_DISTANCE` bits.

Not every copy counts against a listing: the same seller re-using a photo on another listing, the same
listing re-checked, or a listing of an allow-listed brand (authorised resellers use the brand's official
pictures) are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from moderation.images.features import Features, extract, extract_region, thumbnail_jpeg
from moderation.images.hashing import (
    FEATURE_SIDE,
    INDEXED_VIEWS,
    PRIMARY_VIEWS,
    ImageError,
    ImageHashes,
    gray_thumbnail,
    hash_gray,
    hash_to_hex,
    load_image,
    rgb_thumbnail,
)
from moderation.images.index import HashIndex
from moderation.images.sources import ImageSources
from moderation.images.verify import COPY_PROBABILITY, MIN_MATCHES, OTHER_COLOUR, Verification, verify
from moderation.schema import Finding, ImageMatchInfo, ImageResult, Listing

log = logging.getLogger(__name__)

#: Hash-only rule for candidates without stored features: a copy within this many bits (of 64).
COPY_DISTANCE = 12
#: Retrieval radius: candidates up to this many bits from some query view go on to verification.
RETRIEVE_DISTANCE = 22
#: At most this many candidates (nearest first) are verified per query image.
CANDIDATES = 6
#: At most this many query regions get their own features per query (the nearest candidates' first).
MAX_REGIONS = 2
#: Long side of a second decode a query region is verified from; at FEATURE_SIDE (the default) regions
#: come from the first decode. 640 found 1 more of 174 collage copies and 1 more of 174 screenshots on
#: the benchmark, for ~8 ms more CPU per such query (a second decode and a larger resample).
REGION_SIDE = FEATURE_SIDE
#: Further views of a candidate are verified until one gives at least this probability (a photo in a
#: screenshot may pass weakly on the whole picture and clearly on the photo's own region).
SURE_PROBABILITY = 0.98
#: Beyond the nearest CANDIDATES, the next SKETCH_POOL by hash can be ranked by colour-sketch likeness
#: and the SKETCH_EXTRA most alike verified too. Off (0): on the benchmark 18/2 raised big-watermark
#: recall from 0.80 to 0.85 but added a never-indexed look-alike with a match (6 of 150 instead of 5)
#: and ~2.5 ms of CPU per query (docs/images.md).
SKETCH_POOL = 0
SKETCH_EXTRA = 2
#: The other orientation (mirrored when the nearest view was not, and the reverse) is verified too when
#: its nearest view is at most this many bits further than the nearest view ...
OTHER_ORIENTATION_BITS = 2
#: ... and only for candidates at most this far (a far candidate's orientation is no evidence either way).
OTHER_ORIENTATION_MAX = 14
#: A candidate beyond OTHER_ORIENTATION_MAX is verified first as the query is (unmirrored) unless its
#: mirrored views are more than this many bits nearer. At that distance which orientation comes nearer
#: is mostly chance (a mirrored copy comes near in its mirrored views and stays far in the others;
#: docs/images.md has the benchmark's distances), and a mirrored pass of the query costs a full ORB pass.
FAR_ORIENTATION_BITS = 8
#: A candidate beyond OTHER_ORIENTATION_MAX gets the query region's features only when the whole picture
#: gave at least this many descriptor matches: a copy inside a collage cell or a screenshot still shares
#: some features with the whole picture (its keypoints are found at half the scale), a far look-alike
#: mostly none, and a region costs an ORB pass of its own.
FAR_REGION_MATCHES = MIN_MATCHES

#: Multi-index probe radius per 16-bit substring for the whole-picture, product, centre, detail and
#: collage-cell views (exact up to 4r + 3 bits, see ``HashIndex.search``) ...
PROBE_RADIUS = 1
#: ... and for the many crop windows (``hashing.CROP_GRID``, ``wideNN``).
WINDOW_PROBE_RADIUS = 0

RULE_ID = "image.copied"
FAMILY = "copied_image"
#: Using another seller's product photo makes buyers take the goods for that seller's goods or think the
#: two are connected: a confusion act under Anti-Unfair-Competition Law art. 6 (item 4, the catch-all
#: for acts "足以引人误认为是他人商品或者与他人存在特定联系"). Copyright in the photo may also be
#: infringed, but the platform cannot know who owns it; confusion is what the listing itself shows.
LAW = "反不正当竞争法第六条"


@dataclass
class Match:
    """One indexed image a query image was compared with: retrieval distance and verification evidence."""

    row: int
    id: str
    distance: int
    view: str  # the query view that came nearest, e.g. "full_m" (mirrored) or "t2" (a collage cell)
    slot: str  # the stored view it came near
    hash: str  # the stored hash of that slot, hex
    listing_id: str | None
    seller_id: str | None
    path: str | None
    brand: str | None = None
    verification: Verification | None = None  # None: no stored features, decided by the hash rule
    other_distance: int = 64  # nearest distance over the views of the other orientation (mirrored or not)

    @property
    def is_copy(self) -> bool:
        if self.verification is None:
            return self.distance <= COPY_DISTANCE
        return self.verification.probability >= COPY_PROBABILITY

    @property
    def score(self) -> float:
        if self.verification is None:
            return 1.0 if self.distance <= COPY_DISTANCE else 0.0
        return self.verification.probability

    @property
    def reason(self) -> str | None:
        if self.verification is None:
            return ("mirrored" if self.view.endswith("_m") else "same photo") if self.is_copy else None
        return self.verification.reason

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "distance": self.distance}
        if self.path is not None:
            out["image"] = self.path
        out["hash"] = self.hash
        out["view"] = self.view
        if self.listing_id is not None:
            out["listing_id"] = self.listing_id
        if self.seller_id is not None:
            out["seller_id"] = self.seller_id
        out["score"] = round(self.score, 4)
        if self.reason:
            out["reason"] = self.reason
        if self.verification is not None:
            v = self.verification.to_dict()
            for key in ("region", "match_region"):
                if key in v:
                    out[key] = v[key]
            out["verification"] = {
                k: v[k] for k in v if k not in ("score", "reason", "region", "match_region")
            }
        else:
            out["verification"] = None
        return out


def query_arrays(hashes: ImageHashes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The lookups of one image: (view names, hashes, slot of each, probe radius of each).

    Every (view, slot) pair of the plan, mirrors and collage cells included, with duplicate
    (hash, slot) pairs dropped.
    """
    names: list[str] = []
    values: list[int] = []
    slots: list[int] = []
    radii: list[int] = []
    seen: set[tuple[int, int]] = set()
    plan = hashes.query()
    for slot_pos, slot in enumerate(INDEXED_VIEWS):
        for view, h in plan[slot]:
            if (h, slot_pos) in seen:
                continue
            seen.add((h, slot_pos))
            names.append(view)
            values.append(h)
            slots.append(slot_pos)
            radii.append(PROBE_RADIUS if view.removesuffix("_m") in PRIMARY_VIEWS else WINDOW_PROBE_RADIUS)
    return names, np.array(values, dtype=np.uint64), np.array(slots), np.array(radii)


def retrieve(
    index: HashIndex,
    hashes: ImageHashes,
    max_distance: int = RETRIEVE_DISTANCE,
    limit: int | None = CANDIDATES,
) -> list[Match]:
    """Stage one: indexed images within ``max_distance`` of any query view, nearest first (then by id)."""
    names, values, slots, radii = query_arrays(hashes)
    _, rows, _ = index.probe(values, slots, radii, max_distance)
    if rows.size == 0:
        return []
    rows = np.unique(rows)
    stored = index.hashes_of_rows(rows)  # [C, slots]
    # Every candidate against every (query view, slot) pair of the plan: [C, queries].
    dist = np.bitwise_count(stored[:, slots] ^ values[None, :])
    best = dist.argmin(axis=1)
    best_d = dist[np.arange(rows.size), best]
    mirrored = np.array([n.endswith("_m") for n in names])
    best_mirrored = np.where(mirrored[None, :], dist, 64).min(axis=1)
    best_plain = np.where(mirrored[None, :], 64, dist).min(axis=1)
    keep = np.flatnonzero(best_d <= max_distance)
    keep = keep[np.lexsort((rows[keep], best_d[keep]))]
    if limit is not None:
        keep = keep[: limit * 2]  # a few spare for rows deleted meanwhile
    scored = [
        (
            int(rows[i]),
            int(best_d[i]),
            names[best[i]],
            int(slots[best[i]]),
            int(stored[i, slots[best[i]]]),
            int(best_plain[i] if mirrored[best[i]] else best_mirrored[i]),
        )
        for i in keep.tolist()
    ]
    meta = index.metadata(r for r, *_ in scored)
    out = [
        Match(
            row=row,
            id=meta[row]["id"],
            distance=d,
            view=view,
            slot=INDEXED_VIEWS[slot],
            hash=hash_to_hex(h),
            listing_id=meta[row]["listing_id"],
            seller_id=meta[row]["seller_id"],
            path=meta[row]["path"],
            brand=meta[row].get("brand"),
            other_distance=other,
        )
        for row, d, view, slot, h, other in scored
        if row in meta
    ]
    out.sort(key=lambda m: (m.distance, m.id))
    return out[:limit] if limit is not None else out


@dataclass
class Query:
    """A decoded query image: its hashes, and its local features computed when first needed.

    A region of the query (a collage cell, the photo in a screenshot) is verified from the same decode,
    or from a second one at :data:`REGION_SIDE` when that is set larger (made only when a region is
    needed).
    """

    rgb: Image.Image
    hashes: ImageHashes
    source: Any = None  # what to decode again at a higher resolution (a path, bytes or a PIL image)
    _features: dict[tuple[bool, tuple[float, ...] | None], Features] = field(default_factory=dict)
    _hires: Image.Image | None = None
    _pixels: dict[int, np.ndarray] = field(default_factory=dict)  # id(picture) -> its RGB array

    @classmethod
    def from_image(cls, rgb: Image.Image) -> Query:
        small = rgb.convert("RGB")
        if max(small.size) > FEATURE_SIDE:
            small = rgb_thumbnail(small, FEATURE_SIDE)
        return cls(rgb=small, hashes=hash_gray(gray_thumbnail(small)), source=rgb)

    @classmethod
    def load(cls, ref: str | os.PathLike[str] | bytes) -> Query:
        rgb = load_image(ref)
        return cls(rgb=rgb, hashes=hash_gray(gray_thumbnail(rgb)), source=ref)

    def _region_image(self) -> Image.Image:
        if max(self.rgb.size) >= REGION_SIDE:
            return self.rgb
        if self._hires is None:
            src = self.source
            try:
                if isinstance(src, Image.Image):
                    self._hires = rgb_thumbnail(src, REGION_SIDE)
                elif src is not None:
                    self._hires = load_image(src, REGION_SIDE)
            except ImageError:  # decoded once already; if not again, the working size will do
                self._hires = None
            if self._hires is None:
                self._hires = self.rgb
        return self._hires

    @property
    def regions(self) -> int:
        """How many region (non-whole) feature sets this query has computed."""
        return sum(1 for _, box in self._features if box is not None)

    def features(
        self, mirrored: bool = False, box: tuple[float, float, float, float] | None = None
    ) -> Features:
        key = (mirrored, box)
        if key not in self._features:
            base = self._region_image() if box is not None else self.rgb
            arr = self._pixels.get(id(base))
            if arr is None:  # converted once per picture, not once per feature set
                arr = self._pixels[id(base)] = np.asarray(base.convert("RGB"))
            if mirrored:  # the same pixels as the mirrored picture, without a copy
                arr = arr[:, ::-1]
                if box is not None:
                    box = (1 - box[2], box[1], 1 - box[0], box[3])
            self._features[key] = extract_region(arr, box)
        return self._features[key]


def _sub_view_box(query: Query, view: str) -> tuple[float, float, float, float] | None:
    """The query region a sub-picture view covers (a collage cell, a screenshot's photo), if much smaller."""
    base = view.removesuffix("_m")
    if base.startswith("t") or base.startswith("content") or base == "product":
        box = query.hashes.boxes.get(base.removesuffix("_detail").replace("content_center", "content"))
        if box is not None and (box[2] - box[0]) * (box[3] - box[1]) < 0.7:
            return box
    return None


def _to_whole(v: Verification, mirrored: bool, box: tuple[float, float, float, float] | None) -> None:
    """Map a verification's query region from the (mirrored, boxed) features' frame to the whole query."""
    if v.query_box is None:
        return
    x0, y0, x1, y1 = v.query_box
    if box is not None:
        bx0, by0, bx1, by1 = (1 - box[2], box[1], 1 - box[0], box[3]) if mirrored else box
        bw, bh = bx1 - bx0, by1 - by0
        x0, y0, x1, y1 = bx0 + x0 * bw, by0 + y0 * bh, bx0 + x1 * bw, by0 + y1 * bh
        v.fills = (x1 - x0) * (y1 - y0)
        if v.reason not in (None, OTHER_COLOUR) and v.fills < 0.5 and v.shown >= 0.8:
            v.reason = "inside a collage or screenshot"
    if mirrored:
        x0, x1 = 1 - x1, 1 - x0
    v.query_box = (x0, y0, x1, y1)


def verify_match(index_features: Features, query: Query, m: Match) -> Verification:
    """Stage two for one candidate: the best evidence over the query's orientations and sub-views."""
    mirrored_first = m.view.endswith("_m")
    if m.distance > OTHER_ORIENTATION_MAX:
        # A far candidate: the query as it is, unless the mirror is clearly nearer.
        mirrored_first = mirrored_first and m.other_distance > m.distance + FAR_ORIENTATION_BITS
    elif (
        m.other_distance <= m.distance + OTHER_ORIENTATION_BITS
        and (not mirrored_first, None) in query._features
        and (mirrored_first, None) not in query._features
    ):
        # The hash barely prefers one orientation (a look-alike, or a symmetric picture): start with the
        # orientation whose features this query has already computed.
        mirrored_first = not mirrored_first
    tries: list[tuple[bool, tuple[float, float, float, float] | None]] = [(mirrored_first, None)]
    box = _sub_view_box(query, m.view)
    if box is None:  # the photo inside a screenshot-like frame, when the query has one
        box = _sub_view_box(query, "content")
    if box is not None:
        tries.append((mirrored_first, box))
    if m.distance <= OTHER_ORIENTATION_MAX and m.other_distance <= m.distance + OTHER_ORIENTATION_BITS:
        tries.append((not mirrored_first, None))
    far = m.distance > OTHER_ORIENTATION_MAX
    best: Verification | None = None
    for mirrored, b in tries:
        if b is not None and (mirrored, b) not in query._features and query.regions >= MAX_REGIONS:
            continue  # this query has had its share of region features
        if b is not None and far and best is not None and best.matches < FAR_REGION_MATCHES:
            continue  # a far candidate that shares next to no features with the whole picture
        if mirrored != mirrored_first and b is None and best is not None and best.matches >= 2 * MIN_MATCHES:
            continue  # the first orientation has matches to judge by: a mirror of it would have few
        v = verify(query.features(mirrored, b), index_features, mirrored=mirrored)
        v.extra["view"] = (mirrored, b)
        _to_whole(v, mirrored, b)
        if v.reason == OTHER_COLOUR:
            # One view lines up as a copy would and differs in colour: the same shot of another colour
            # variant. A smaller view (a region that leaves out the differing part, the tablet's back or
            # bezel) does not overrule it.
            return v
        if best is None or v.probability > best.probability:
            best = v
        if best.probability >= SURE_PROBABILITY:
            break
    assert best is not None
    return best


def _small_sketch(sketch: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(sketch, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)


def _sketch_distance(mine: np.ndarray, sketch: np.ndarray) -> float:
    return float(np.abs(mine - _small_sketch(sketch)).mean())


def find_matches(
    index: HashIndex,
    query: Query | ImageHashes,
    max_distance: int = RETRIEVE_DISTANCE,
    limit: int | None = CANDIDATES,
    explain: bool = False,
) -> list[Match]:
    """Copies of the query in the index, best first; with ``explain`` every verified candidate.

    Given bare hashes (no pixels to verify with), the hash rule decides for every candidate.
    """
    hashes = query.hashes if isinstance(query, Query) else query
    if not isinstance(query, Query) or limit is None or not SKETCH_POOL:
        candidates = retrieve(index, hashes, max_distance, limit)
        blobs = index.features_of([m.id for m in candidates]) if isinstance(query, Query) else {}
    else:
        # The nearest by hash, plus the few of the next ones whose colour sketch looks most like the
        # query's: an overlay across the middle (a big watermark) moves every hash by 18-30 bits and
        # the source falls behind other white-background shots, but barely changes a 16 px sketch.
        pool = retrieve(index, hashes, max_distance, limit + SKETCH_POOL)
        blobs = index.features_of([m.id for m in pool])
        candidates = pool[:limit]
        rest = [m for m in pool[limit:] if m.id in blobs]
        if rest:
            mine = _small_sketch(query.features().sketch)
            near = sorted(rest, key=lambda m: _sketch_distance(mine, Features.from_bytes(blobs[m.id]).sketch))
            candidates += near[:SKETCH_EXTRA]
    if isinstance(query, Query) and candidates:
        for m in candidates:
            blob = blobs.get(m.id)
            if blob is not None:
                m.verification = verify_match(Features.from_bytes(blob), query, m)
    out = candidates if explain else [m for m in candidates if m.is_copy]
    out.sort(key=lambda m: (-m.score, m.distance, m.id))
    return out


def is_copy(match: Match, listing_id: str | None, seller_id: str | None, brand_allowed: bool) -> bool:
    """Whether a verified near-duplicate counts against the querying listing (see the module docstring)."""
    if brand_allowed or not match.is_copy:
        return False
    if listing_id is not None and match.listing_id == listing_id:
        return False
    return not (seller_id is not None and match.seller_id == seller_id)


def index_entry(rgb: Image.Image) -> tuple[tuple[int, ...], tuple[bytes, bytes]]:
    """What the index keeps for one decoded picture: its hashes, and (features blob, thumbnail JPEG)."""
    hashes = hash_gray(gray_thumbnail(rgb), stored_only=True)
    return hashes.indexed(), (extract(rgb).to_bytes(), thumbnail_jpeg(rgb))


def query_key(rgb: Image.Image) -> str:
    """A stable key for a checked image's stored thumbnail: a digest of its decoded thumbnail."""
    return hashlib.sha256(rgb.tobytes()).hexdigest()[:32]


class ImageChecker:
    """The image part of a listing check: decode each image, retrieve, verify, report copies.

    ``ImageChecker.open(db)`` reads the index a ``moderation images index --db DB`` run built. A missing
    DB is an empty index (nothing is a copy) rather than an error, so text checks work before any image
    has been indexed, and the checker never creates files as a side effect. Which images it may read is
    ``sources`` (``sources.ImageSources``; by default ``MODERATION_IMAGE_ROOT``). Safe to share between
    threads (the index serialises its own state; everything else is per call).
    """

    def __init__(
        self,
        index: HashIndex,
        allowed_brands: Iterable[str] = (),
        sources: ImageSources | None = None,
        keep_thumbnails: bool = True,
    ) -> None:
        self.index = index
        self.allowed_brands = frozenset(b.strip().casefold() for b in allowed_brands if b.strip())
        self.sources = sources if sources is not None else ImageSources.from_env()
        self.keep_thumbnails = keep_thumbnails and index.path is not None

    @classmethod
    def open(
        cls,
        db_path: str | os.PathLike[str],
        allowed_brands: Iterable[str] = (),
        sources: ImageSources | None = None,
    ) -> ImageChecker:
        path = Path(db_path)
        index = HashIndex.open(path if (path / "meta.sqlite").exists() else None)
        return cls(index, allowed_brands=allowed_brands, sources=sources)

    def close(self) -> None:
        self.index.close()

    def load(self, ref: str) -> Query:
        """Decode one listing image under the source policy; errors name the image as the listing did."""
        source = self.sources.open(ref)
        try:
            return Query.load(source)
        except ImageError as exc:
            shown = self.sources.describe(ref)
            raise ImageError(exc.code, exc.message.replace(str(source), shown)) from None

    def check_image(self, ref: str) -> list[Match]:
        """Copies of one image (any seller); raises ImageError for an unusable or refused image."""
        return find_matches(self.index, self.load(ref))

    def check_listing(self, listing: Listing) -> tuple[list[ImageResult], list[Finding]]:
        """One ImageResult per image of the listing (in order) and a finding per copied image."""
        results: list[ImageResult] = []
        findings: list[Finding] = []
        brand_allowed = (
            bool(listing.brand) and (listing.brand or "").strip().casefold() in self.allowed_brands
        )
        for ref in listing.images:
            shown = self.sources.describe(ref)
            try:
                query = self.load(ref)
                matches = find_matches(self.index, query)
            except ImageError as exc:
                results.append(ImageResult(image=shown, error=exc.to_dict()))
                continue
            copies = [m for m in matches if is_copy(m, listing.id, listing.seller_id, brand_allowed)]
            if not copies:
                results.append(ImageResult(image=shown))
                continue
            best = copies[0]
            extra: dict[str, Any] = {"view": best.view, "score": round(best.score, 4)}
            if best.reason:
                extra["reason"] = best.reason
            if best.verification is not None:
                v = best.verification.to_dict()
                extra.update({k: v[k] for k in ("region", "match_region") if k in v})
                extra["inliers"] = best.verification.inliers
            thumb = None
            if self.keep_thumbnails:
                try:
                    thumb = query_key(query.rgb)
                    self.index.put_query_thumbnail(thumb, thumbnail_jpeg(query.rgb))
                except Exception:  # the thumbnail is for display only; never fail a check for it
                    log.exception("could not keep the thumbnail of %s", listing.id)
                    thumb = None
            results.append(
                ImageResult(
                    image=shown,
                    match=ImageMatchInfo(
                        id=best.id,
                        # the indexed file's path for an operator's own tools; a server shows ids only
                        image=best.path if self.sources.any_path else None,
                        distance=best.distance,
                        hash=best.hash,
                        listing_id=best.listing_id,
                        seller_id=best.seller_id,
                        **extra,
                    ),
                    **({"thumb": thumb} if thumb else {}),
                )
            )
            findings.append(_finding(shown, best))
        return results, findings


_REASON_ZH = {
    "same photo": "为同一张图片",
    "cropped": "为裁剪后的同一张图片",
    "mirrored": "为镜像翻转后的同一张图片",
    "inside a collage or screenshot": "出现在拼图或截图之中",
}


def _finding(ref: str, m: Match) -> Finding:
    listing = m.listing_id or "未知商品"
    seller = m.seller_id or "未知卖家"
    how = _REASON_ZH.get(m.reason or "", "高度相似")
    evidence = (
        f"局部特征 {m.verification.inliers} 处几何一致，置信度 {m.score:.2f}"
        if m.verification is not None
        else f"汉明距离 {m.distance}/64"
    )
    message = (
        f"图片与商品 {listing}（卖家 {seller}）的图片 {m.id} {how}（{evidence}），"
        "疑似盗用他人商品图片；擅自使用他人商品图片足以引人误认为是他人商品或与他人存在特定联系，"
        "属于反不正当竞争法第六条第（四）项所列混淆行为，若该图片受著作权保护还可能构成著作权侵权"
    )
    return Finding(
        rule=RULE_ID,
        family=FAMILY,
        law=LAW,
        severity="high",
        field="image",
        start=0,
        end=0,
        text=ref,
        message=message,
        suggestion="请更换为自行拍摄或已获权利人授权的商品图片；如已获授权，请在申诉时提交授权证明",
        action="review",
    )
