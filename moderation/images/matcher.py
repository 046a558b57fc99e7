"""Copy policy: which near-duplicate images count as a copied product photo, and the findings they give.

A query image makes every lookup of its plan (see ``hashing.QUERY_PLAN``: each view and its mirror
against the slot it lines up with) in one vectorised ``HashIndex.probe`` call; each candidate row is
then verified with *all* (query view, stored slot) pairs of the plan, and its distance is the smallest
of them. A candidate is a copy when that distance is at most :data:`COPY_DISTANCE` (of 64 bits).

Why 12: on the benchmark (docs/images.md, ``scripts/bench_images.py``; 20 real photos, 88 indexed
images) the source of a resized, re-encoded, brightened, grayscale, padded, mirrored or screenshot copy
was within 0-6 bits, crops, watermarks and 3 degree rotations mostly within 12, while about 0.05% of
pairs of unrelated images came within 12. The ``detail`` slot (hashing.py) brought the watermarked
texture photos (brick; hubble_deep_field with another edit seed) back within 12 without adding a false
match. Misses left: the texture photos brick and gravel under a 3 degree rotation, and one 10% crop.

Not every near-duplicate is a copy: the same seller re-using a photo on another listing, the same
listing re-checked, or a listing of an allow-listed brand (authorised resellers use the brand's official
pictures) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moderation.images.hashing import (
    INDEXED_VIEWS,
    PRIMARY_VIEWS,
    ImageError,
    ImageHashes,
    hash_image,
    hash_to_hex,
)
from moderation.images.index import HashIndex
from moderation.schema import Finding, ImageMatchInfo, ImageResult, Listing

#: Largest Hamming distance (of 64) between a query view and a stored slot that counts as a copy.
COPY_DISTANCE = 12

#: Multi-index probe radius per 16-bit substring for the whole-picture, centre and detail views (exact
#: up to 4r + 3 bits, see ``HashIndex.search``) ...
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


@dataclass(frozen=True)
class Match:
    """One indexed image that a query image is a near-duplicate of."""

    row: int
    id: str
    distance: int
    view: str  # the query view that matched best, e.g. "full_m" (a mirrored copy)
    slot: str  # the stored view it matched
    hash: str  # the stored hash of that slot, hex
    listing_id: str | None
    seller_id: str | None
    path: str | None

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
        return out


def query_arrays(hashes: ImageHashes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The lookups of one image: (view names, hashes, slot of each, probe radius of each).

    Every (view, slot) pair of the plan, mirrors included, with duplicate (hash, slot) pairs dropped.
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


def find_matches(index: HashIndex, hashes: ImageHashes, max_distance: int = COPY_DISTANCE) -> list[Match]:
    """All indexed images within ``max_distance`` of any query view, best first (then by id)."""
    names, values, slots, radii = query_arrays(hashes)
    _, rows, _ = index.probe(values, slots, radii, max_distance)
    if rows.size == 0:
        return []
    rows = np.unique(rows)
    stored = index.hashes_of_rows(rows)  # [C, slots]
    # Verify every candidate with every (query view, slot) pair of the plan: [C, queries].
    dist = np.bitwise_count(stored[:, slots] ^ values[None, :])
    best = dist.argmin(axis=1)
    best_d = dist[np.arange(rows.size), best]
    keep = np.flatnonzero(best_d <= max_distance)
    scored = [
        (int(rows[i]), int(best_d[i]), names[best[i]], int(slots[best[i]]), int(stored[i, slots[best[i]]]))
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
        )
        for row, d, view, slot, h in scored
        if row in meta
    ]
    out.sort(key=lambda m: (m.distance, m.id))
    return out


def is_copy(match: Match, listing_id: str | None, seller_id: str | None, brand_allowed: bool) -> bool:
    """Whether a near-duplicate counts against the querying listing (see the module docstring)."""
    if brand_allowed:
        return False
    if listing_id is not None and match.listing_id == listing_id:
        return False
    return not (seller_id is not None and match.seller_id == seller_id)


class ImageChecker:
    """The image part of a listing check: hash each image, look it up, report copies.

    ``ImageChecker.open(db)`` reads the index a ``moderation images index --db DB`` run built. A missing
    DB is an empty index (nothing is a copy) rather than an error, so text checks work before any image
    has been indexed, and the checker never creates files as a side effect.
    """

    def __init__(
        self,
        index: HashIndex,
        allowed_brands: Iterable[str] = (),
        max_distance: int = COPY_DISTANCE,
    ) -> None:
        self.index = index
        self.allowed_brands = frozenset(b.strip().casefold() for b in allowed_brands if b.strip())
        self.max_distance = max_distance

    @classmethod
    def open(cls, db_path: str | os.PathLike[str], allowed_brands: Iterable[str] = ()) -> ImageChecker:
        path = Path(db_path)
        index = HashIndex.open(path if (path / "meta.sqlite").exists() else None)
        return cls(index, allowed_brands=allowed_brands)

    def close(self) -> None:
        self.index.close()

    def check_image(self, ref: str) -> list[Match]:
        """Near-duplicates of one image (any seller); raises ImageError for an unusable image."""
        return find_matches(self.index, hash_image(ref), self.max_distance)

    def check_listing(self, listing: Listing) -> tuple[list[ImageResult], list[Finding]]:
        """One ImageResult per image of the listing (in order) and a finding per copied image."""
        results: list[ImageResult] = []
        findings: list[Finding] = []
        brand_allowed = bool(listing.brand) and listing.brand.strip().casefold() in self.allowed_brands
        for ref in listing.images:
            try:
                matches = self.check_image(ref)
            except ImageError as exc:
                results.append(ImageResult(image=ref, error=exc.to_dict()))
                continue
            copies = [m for m in matches if is_copy(m, listing.id, listing.seller_id, brand_allowed)]
            if not copies:
                results.append(ImageResult(image=ref))
                continue
            best = copies[0]
            results.append(
                ImageResult(
                    image=ref,
                    match=ImageMatchInfo(
                        id=best.id,
                        image=best.path,
                        distance=best.distance,
                        hash=best.hash,
                        listing_id=best.listing_id,
                        seller_id=best.seller_id,
                        view=best.view,
                    ),
                )
            )
            findings.append(_finding(ref, best))
        return results, findings


def _finding(ref: str, m: Match) -> Finding:
    listing = m.listing_id or "未知商品"
    seller = m.seller_id or "未知卖家"
    how = "（镜像翻转后）" if m.view.endswith("_m") else ""
    message = (
        f"图片{how}与商品 {listing}（卖家 {seller}）的图片 {m.id} 高度相似，汉明距离 {m.distance}/64，"
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
