"""The verification shortcuts (work skipped because it cannot change a verdict, or is hash noise) keep
the verdicts; and a query's mirrored and region features are those of the edited picture itself."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from PIL import Image, ImageOps

from moderation.images import matcher
from moderation.images import verify as verify_module
from moderation.images.features import extract
from moderation.images.index import HashIndex
from moderation.images.matcher import Match, Query, find_matches, index_entry, verify_match
from moderation.images.verify import (
    COPY_PROBABILITY,
    MIN_MATCHES,
    WEIGHTS,
    Verification,
    could_be_copy,
    score,
)

try:
    from images_fixtures import packshot, photo, reencode
except ImportError:  # tests/ is a package in this run
    from tests.images_fixtures import packshot, photo, reencode


def collage(tiles: list[Image.Image]) -> Image.Image:
    cell, gutter = 392, 8
    canvas = Image.new("RGB", (2 * cell + 3 * gutter, 2 * cell + 3 * gutter), (255, 255, 255))
    for k, tile in enumerate(tiles[:4]):
        x, y = gutter + (k % 2) * (cell + gutter), gutter + (k // 2) * (cell + gutter)
        canvas.paste(ImageOps.pad(tile, (cell, cell), color=(255, 255, 255)), (x, y))
    return canvas


def no_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every view tried and every colour check run, as before the shortcuts."""
    monkeypatch.setattr(matcher, "FAR_ORIENTATION_BITS", -64)  # the nearest view's orientation first
    monkeypatch.setattr(matcher, "FAR_REGION_MATCHES", 0)
    monkeypatch.setattr(verify_module, "could_be_copy", lambda v: True)


def test_colour_bound_is_an_upper_bound_of_the_score() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        v = Verification(inliers=int(rng.integers(0, 400)), matches=0, spread=float(rng.random()))
        v.matches = v.inliers + int(rng.integers(0, 400))
        base = v.evidence()
        best = max(
            score({**base, "colour": c, "tone": t})
            for c, t in itertools.product((0.0, 5.0, 30.0, 60.0), (-1.0, 0.0, 0.5, 1.0))
        )
        if not could_be_copy(v):
            assert best < COPY_PROBABILITY
    # A clean copy's geometry passes; a handful of scattered inliers does not.
    assert could_be_copy(Verification(inliers=120, matches=130, spread=0.9))
    assert not could_be_copy(Verification(inliers=7, matches=60, spread=0.2))
    assert WEIGHTS["colour"] <= 0 <= WEIGHTS["tone"]  # the bound's better ends, as the model stands
    assert math.isfinite(score(Verification().evidence()))


def test_colour_check_is_skipped_only_when_it_cannot_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = verify_module.compare

    def counting(q, c, m):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(q, c, m)

    monkeypatch.setattr(verify_module, "compare", counting)
    stored = extract(packshot(5))
    copy = verify_module.verify(extract(reencode(packshot(5), 50)), stored)
    assert copy.probability >= COPY_PROBABILITY and calls  # a copy is always colour-checked
    assert copy.colour_checked
    calls.clear()
    # Another product shot the same way lines up by chance in a dozen keypoints of 39 matches: enough
    # to try a transform, far too few at that ratio for a copy whatever the colour.
    other = verify_module.verify(extract(packshot(11)), stored)
    assert other.inliers >= MIN_MATCHES and not could_be_copy(other)
    assert not calls and not other.colour_checked
    assert other.probability < COPY_PROBABILITY and other.reason is None


def test_far_candidate_is_verified_unmirrored_unless_the_mirror_is_clearly_nearer() -> None:
    stored = extract(packshot(9))

    def candidate(distance: int, other: int) -> Match:
        return Match(
            row=0, id="x", distance=distance, view="full_m", slot="full", hash="0",
            listing_id=None, seller_id=None, path=None, other_distance=other,
        )  # fmt: skip

    query = Query.from_image(packshot(8))
    verify_match(stored, query, candidate(18, 22))
    assert not any(mirrored for mirrored, _ in query._features)  # no mirror pass for a far hash's chance
    for distance, other in ((18, 40), (6, 22)):  # the mirror clearly nearer; a near candidate
        query = Query.from_image(packshot(8))
        verify_match(stored, query, candidate(distance, other))
        assert (True, None) in query._features


def test_query_mirror_and_region_features_are_those_of_the_edited_picture() -> None:
    im = reencode(photo(4, (400, 300)), 80)
    query = Query.from_image(im)
    box = (0.1, 0.2, 0.6, 0.9)
    im = query.rgb  # the decoded picture at the working size
    flipped = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for mirrored, b in itertools.product((False, True), (None, box)):
        got = query.features(mirrored, b)
        src = flipped if mirrored else im
        fb = (1 - b[2], b[1], 1 - b[0], b[3]) if (b is not None and mirrored) else b
        want = extract(src, fb)
        assert np.array_equal(got.xy, want.xy) and np.array_equal(got.desc, want.desc)
        assert np.array_equal(got.sketch, want.sketch) and (got.width, got.height) == (
            want.width,
            want.height,
        )


def test_shortcuts_keep_the_verdicts_on_a_small_built_set(monkeypatch: pytest.MonkeyPatch) -> None:
    idx = HashIndex.open()
    originals = {}
    for seed in range(1, 9):
        for name, im in ((f"p{seed}", packshot(seed)), (f"f{seed}", photo(seed, (400, 400)))):
            originals[name] = im
            hashes, media = index_entry(im)
            idx.add(name, hashes, seller_id=f"S{seed}", media=media)
    queries = [
        reencode(originals["p2"], 40),
        ImageOps.mirror(originals["f3"]),
        originals["p4"].crop((40, 40, 440, 440)),
        reencode(collage([photo(31), originals["f5"], packshot(32), photo(33)]), 80),
        reencode(collage([originals["p6"], photo(34), photo(35), packshot(36)]), 80),
        packshot(40),  # never indexed
        photo(41, (400, 400)),  # never indexed
    ]

    def run() -> tuple[list[dict[str, bool]], int, int]:
        verdicts, features, far = [], 0, 0
        for im in queries:
            q = Query.from_image(im)
            found = find_matches(idx, q, explain=True)
            verdicts.append({m.id: m.is_copy for m in found})
            features += len(q._features)
            far += sum(m.distance > matcher.OTHER_ORIENTATION_MAX for m in found)
        return verdicts, features, far

    fast, fast_features, far = run()
    assert far > 0  # the set has far candidates for the shortcuts to act on
    with monkeypatch.context() as mp:
        no_shortcuts(mp)
        full, full_features, _ = run()
    assert fast == full
    assert fast_features <= full_features
    assert [sorted(k for k, v in d.items() if v) for d in fast[:5]] == [
        ["p2"],
        ["f3"],
        ["p4"],
        ["f5"],
        ["p6"],
    ]
    assert not any(fast[5].values()) and not any(fast[6].values())
