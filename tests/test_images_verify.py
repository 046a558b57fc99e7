"""Product region, collage cells and the verification stage on synthetic product shots (no shared data)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from moderation.images.features import extract
from moderation.images.hashing import gray_thumbnail, hamming, hash_pil
from moderation.images.index import HashIndex
from moderation.images.matcher import Query, find_matches, index_entry
from moderation.images.verify import COPY_PROBABILITY, OTHER_COLOUR, verify
from moderation.images.views import product_box, strip_box, tile_boxes

try:
    from images_fixtures import packshot, photo, reencode
except ImportError:  # tests/ is a package in this run
    from tests.images_fixtures import packshot, photo, reencode


def with_banner(im: Image.Image, bottom: bool = True) -> Image.Image:
    out = im.copy()
    h = round(im.height * 0.14)
    y = im.height - h if bottom else 0
    d = ImageDraw.Draw(out)
    d.rectangle((0, y, im.width, y + h), fill=(220, 20, 40))
    for i in range(8):  # white "text" on the strip
        d.rectangle((20 + i * 40, y + h // 4, 44 + i * 40, y + 3 * h // 4), fill=(255, 255, 255))
    return out


def with_logo(im: Image.Image) -> Image.Image:
    out = im.copy()
    d = ImageDraw.Draw(out)
    d.ellipse((12, 12, 52, 52), fill=(230, 30, 30))
    d.rectangle((60, 22, 150, 42), fill=(40, 40, 40))
    return out


def gray_array(im: Image.Image) -> np.ndarray:
    return np.asarray(gray_thumbnail(im), dtype=np.float64)


def test_product_region_ignores_banners_and_logos_in_the_margin() -> None:
    shot = packshot(3)
    base = product_box(gray_array(shot))
    for edited in (with_banner(shot), with_banner(shot, bottom=False), with_logo(shot)):
        box = product_box(gray_array(edited))
        assert max(abs(a - b) for a, b in zip(box, base, strict=True)) <= 4, (box, base)
        h0, h1 = hash_pil(shot), hash_pil(edited)
        assert hamming(h0.views["product"], h1.views["product"]) <= 6
    # The banner's own rows are cut by the strip detection.
    arr = gray_array(with_banner(shot))
    assert strip_box(arr)[3] <= arr.shape[0] * 0.88


def test_collage_cells_line_up_with_the_tiles() -> None:
    cell, gutter = 200, 8
    canvas = Image.new("RGB", (2 * cell + 3 * gutter, 2 * cell + 3 * gutter), (255, 255, 255))
    for k in range(4):
        x, y = gutter + (k % 2) * (cell + gutter), gutter + (k // 2) * (cell + gutter)
        canvas.paste(photo(20 + k, (cell, cell)), (x, y))
    arr = gray_array(canvas)
    s = arr.shape[1] / canvas.width
    boxes = tile_boxes(arr, (0, 0, arr.shape[1], arr.shape[0]))
    want = [(gutter * s, gutter * s), ((2 * gutter + cell) * s, gutter * s)]
    for (x0, y0, _, _), (wx, wy) in zip(boxes[:2], want, strict=False):
        assert abs(x0 - wx) <= 3 and abs(y0 - wy) <= 3
    cells = hash_pil(canvas).boxes
    assert abs(cells["t1"][0] - (2 * gutter + cell) / canvas.width) <= 0.02 and cells["t1"][3] <= 0.52


def test_verification_separates_copies_from_colour_variants_and_other_shots() -> None:
    original = packshot(5)
    stored = extract(original)
    # Copies: re-encoded, mirrored, cropped, shrunk into a corner of a bigger picture.
    small = Image.new("RGB", (900, 900), (250, 250, 250))
    small.paste(original.resize((400, 400)), (480, 30))
    cases = {
        "same photo": (reencode(original, 40), False),
        "mirrored": (ImageOps.mirror(original), True),
        "cropped": (original.crop((150, 150, 480, 480)), False),
        "inside a collage or screenshot": (small, False),
    }
    for reason, (im, mirrored) in cases.items():
        q = extract(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else im)
        v = verify(q, stored, mirrored=mirrored)
        assert v.probability >= COPY_PROBABILITY and v.reason == reason, (reason, v.to_dict())
        x0, y0, x1, y1 = v.query_box
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    inside = verify(extract(small), stored)
    assert inside.query_box[0] > 0.45 and inside.query_box[3] < 0.55  # the top-right corner
    # The same shot in another colour lines up perfectly, and is not a copy.
    arr = np.asarray(original).astype(np.int16)
    recoloured = Image.fromarray(
        np.where(arr.sum(axis=2, keepdims=True) < 740, arr[..., ::-1], arr).astype(np.uint8)
    )
    v = verify(extract(recoloured), stored)
    assert v.inliers >= 20 and v.probability < COPY_PROBABILITY and v.reason == OTHER_COLOUR
    # Another product shot the same way is not a copy either.
    assert verify(extract(packshot(6)), stored).probability < COPY_PROBABILITY


def test_banner_and_collage_copies_are_found_end_to_end() -> None:
    idx = HashIndex.open()
    for seed in range(1, 7):
        for name, im in ((f"p{seed}", packshot(seed)), (f"f{seed}", photo(seed, (400, 400)))):
            hashes, media = index_entry(im)
            idx.add(name, hashes, seller_id=f"S{seed}", media=media)
    banner = find_matches(idx, Query.from_image(reencode(with_banner(packshot(2)), 70)))
    assert [m.id for m in banner] == ["p2"]
    collage = Image.new("RGB", (816, 816), (255, 255, 255))
    for k, seed in enumerate((11, 12, 4, 13)):
        collage.paste(photo(seed, (400, 400)), (8 + (k % 2) * 408, 8 + (k // 2) * 408))
    found = find_matches(idx, Query.from_image(reencode(collage, 80)))
    assert [m.id for m in found] == ["f4"] and found[0].reason == "inside a collage or screenshot"
    _, y0, x1, _ = found[0].verification.query_box
    assert x1 <= 0.52 and y0 >= 0.48  # the bottom-left cell


def test_sketch_reranking_option_verifies_more_candidates(monkeypatch) -> None:
    from moderation.images import matcher

    idx = HashIndex.open()
    for seed in range(1, 12):
        hashes, media = index_entry(packshot(seed))
        idx.add(f"p{seed}", hashes, seller_id=f"S{seed}", media=media)
    query = Query.from_image(reencode(with_logo(packshot(3)), 70))
    monkeypatch.setattr(matcher, "SKETCH_POOL", 8)
    explained = find_matches(idx, query, limit=2, explain=True)
    assert 2 <= len(explained) <= 2 + matcher.SKETCH_EXTRA
    assert [m.id for m in explained if m.is_copy] == ["p3"]


def test_colour_check_undoes_brightness_and_catches_a_part_in_another_colour() -> None:
    from PIL import ImageEnhance

    from moderation.images.verify import DIFFERS_LIMIT, compare

    original = packshot(7)
    stored = extract(original)
    # Brighter and more contrasted, highlights clipped: the same photo.
    edited = ImageEnhance.Contrast(ImageEnhance.Brightness(original).enhance(1.3)).enhance(1.1)
    v = verify(extract(edited), stored)
    assert v.probability >= COPY_PROBABILITY and v.differs < DIFFERS_LIMIT, v.to_dict()
    # The same shot with a third of the product in another colour (a lens, a tablet's back).
    arr = np.asarray(original).astype(np.int16).copy()
    part = arr[:, 290:]
    arr[:, 290:] = np.where(part.sum(axis=2, keepdims=True) < 740, part[..., ::-1], part)
    variant = extract(Image.fromarray(arr.astype(np.uint8)))
    v = verify(variant, stored)
    assert v.inliers >= 20 and v.probability < COPY_PROBABILITY and v.reason == OTHER_COLOUR, v.to_dict()
    check = compare(variant, stored, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert check.other_colour and check.differs > DIFFERS_LIMIT


def test_a_view_that_fails_the_colour_gate_decides_for_the_candidate(monkeypatch) -> None:
    from moderation.images import matcher
    from moderation.images.verify import Verification

    query = Query.from_image(packshot(8))
    stored = extract(packshot(8))
    m = matcher.Match(
        row=0,
        id="x",
        distance=10,
        view="full",
        slot="full",
        hash="0",
        listing_id=None,
        seller_id=None,
        path=None,
    )
    results = iter(
        [
            Verification(inliers=80, matches=90, probability=0.01, reason=OTHER_COLOUR),
            Verification(inliers=60, matches=70, probability=0.9, reason="same photo"),
        ]
    )
    monkeypatch.setattr(matcher, "_sub_view_box", lambda q, view: (0.1, 0.1, 0.9, 0.9))
    monkeypatch.setattr(matcher, "verify", lambda q, c, mirrored=False: next(results))
    v = matcher.verify_match(stored, query, m)
    assert v.reason == OTHER_COLOUR and v.probability < COPY_PROBABILITY
