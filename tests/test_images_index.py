"""Index: exact multi-index search, add/delete/persist/reload, memory-mapped load; the copy policy."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.images import index as index_module
from moderation.images.hashing import INDEXED_VIEWS, hash_pil
from moderation.images.index import CHUNKS, HashIndex, IndexError_, build_tables, chunks_of
from moderation.images.matcher import ImageChecker, find_matches, index_entry
from moderation.images.sources import ImageSources
from moderation.schema import Listing

try:
    from images_fixtures import banner, edits, photo, reencode, save_jpeg, texture
except ImportError:  # tests/ is a package in this run
    from tests.images_fixtures import banner, edits, photo, reencode, save_jpeg, texture


def random_hashes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(
        0, np.iinfo(np.uint64).max, size=(n, len(INDEXED_VIEWS)), dtype=np.uint64, endpoint=True
    )


def flip_bits(h: int, bits: list[int]) -> int:
    for b in bits:
        h ^= 1 << int(b)
    return h


@pytest.mark.parametrize("radius", [0, 3, 7, 12])
def test_search_equals_linear_scan(radius: int) -> None:
    hashes = random_hashes(30_000)
    idx = HashIndex.open()
    idx.add_arrays(hashes)
    idx.compact()
    rng = np.random.default_rng(1)
    queries = [
        flip_bits(int(hashes[i, 0]), list(rng.choice(64, 2 + i % 11, replace=False))) for i in range(40)
    ]
    got = {(h.query, h.row, h.distance) for h in idx.search(queries, 0, radius)}
    want = {(h.query, h.row, h.distance) for h in idx.linear_search(queries, 0, radius)}
    assert got == want
    planted = {(i, i) for i in range(40) if 2 + i % 11 <= radius}
    assert planted <= {(q, r) for q, r, _ in got}


def test_add_delete_persist_reload(tmp_path) -> None:
    db = tmp_path / "db"
    with HashIndex.open(db) as idx:
        idx.add_arrays(random_hashes(5000), id_prefix="r")
        idx.compact()
        idx.add("a", (1, 2, 5, 11), listing_id="L1", seller_id="S1", path="a.jpg")
        idx.add("b", (0xFFFF, 0xFFFF0000, 1 << 63, 3), listing_id="L2", seller_id="S2")
        assert idx.delete("r10") and not idx.delete("nope")
        assert len(idx) == 5001
    with HashIndex.open(db) as idx:
        assert isinstance(idx._main_hashes, np.memmap)  # loaded memory-mapped
        assert len(idx) == 5001
        assert [(h.row, h.distance) for h in idx.search([3], 0, 2)] == [(idx.rows_of(["a"])[0], 1)]
        assert idx.get("a")["seller_id"] == "S1"
        assert not idx.search([int(x) for x in random_hashes(5000)[10:11, 0]], 0, 0)  # deleted stays gone
        idx.add("a", (1 << 40, 7, 9, 13))  # same id: replaced
        assert not idx.search([3], 0, 2)
        idx.compact()
        assert len(idx) == 5001 and idx.get("r10") is None
        row = idx.rows_of(["b"])[0]
        assert idx.hashes_of_row(row) == (0xFFFF, 0xFFFF0000, 1 << 63, 3)
    with HashIndex.open(db) as idx:
        assert [h.row for h in idx.search([7], 1, 0)] == idx.rows_of(["a"])
        assert idx.index_bytes() / len(idx) < 100 + 4_200_000 / len(idx)  # 96 B + 4 MiB of offsets


def test_auto_compaction_keeps_search_exact(tmp_path) -> None:
    with HashIndex.open(tmp_path / "db") as idx:
        hashes = random_hashes(9000, seed=3)
        for start in range(0, 9000, 3000):
            idx.add_arrays(hashes[start : start + 3000], id_prefix=f"b{start}-")
        assert idx.main_rows > 0  # the delta outgrew its limit and was folded in
        q = [int(h) for h in hashes[::1000, 1]]
        assert {(h.query, h.row) for h in idx.search(q, 1, 4)} == {
            (h.query, h.row) for h in idx.linear_search(q, 1, 4)
        }


def test_other_hash_version_is_refused(tmp_path) -> None:
    HashIndex.open(tmp_path / "db").close()
    with pytest.raises(IndexError_) as info:
        HashIndex.open(tmp_path / "db", version="something-else")
    assert info.value.code == "index_version_mismatch"


def build_db(tmp_path):
    db = tmp_path / "db"
    with HashIndex.open(db) as idx:
        for seed, seller in ((1, "S1"), (2, "S2")):
            hashes, media = index_entry(photo(seed))
            idx.add(
                f"p{seed}.jpg",
                hashes,
                listing_id=f"L{seed}",
                seller_id=seller,
                path=f"/shop/p{seed}.jpg",
                media=media,
            )
    return db


def test_checker_reports_copies_but_not_own_or_allowed(tmp_path) -> None:
    db = build_db(tmp_path)
    copies = [save_jpeg(im, tmp_path / f"{name}.jpg") for name, im in edits(photo(1)).items()]
    other = save_jpeg(photo(9), tmp_path / "other.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    images = [str(p) for p in copies] + [str(other), str(broken), "https://x.test/a.jpg"]
    checker = ImageChecker.open(db, sources=ImageSources(any_path=True))
    listing = Listing(id="L9", title="t", seller_id="S9", images=images)
    results, findings = checker.check_listing(listing)
    assert [r.image for r in results] == images
    assert all(r.match is not None and r.match.id == "p1.jpg" for r in results[: len(copies)])
    assert results[len(copies)].match is None and results[len(copies)].error is None
    assert results[-2].error["code"] == "unreadable_image"
    assert results[-1].error["code"] == "remote_not_supported"
    assert len(findings) == len(copies)
    f = findings[0]
    assert (f.rule, f.family, f.law, f.severity, f.field, f.start, f.end, f.action) == (
        "image.copied",
        "copied_image",
        "反不正当竞争法第六条",
        "high",
        "image",
        0,
        0,
        "review",
    )
    assert f.text == images[0] and "L1" in f.message and "S1" in f.message and f.suggestion

    same_seller = Listing(id="L7", title="t", seller_id="S1", images=images[:2])
    assert checker.check_listing(same_seller)[1] == []
    allowed = ImageChecker.open(db, allowed_brands=["Acme"], sources=ImageSources(any_path=True))
    assert allowed.check_listing(Listing(id="L8", title="t", brand="acme", images=images[:2]))[1] == []
    assert ImageChecker.open(tmp_path / "missing").check_listing(listing)[1] == []


@pytest.mark.parametrize("corner", ["top_left", "bottom_right", "top_right"])
def test_corner_crop_of_a_quarter_is_found(corner: str) -> None:
    idx = HashIndex.open()
    for seed in range(1, 8):
        idx.add(f"p{seed}", hash_pil(photo(seed)).indexed(), seller_id=f"S{seed}")
    im = photo(1)
    w, h = round(im.width * 0.866), round(im.height * 0.866)  # keeps 75% of the area
    x = {"top_left": 0, "bottom_right": im.width - w, "top_right": im.width - w}[corner]
    y = {"top_left": 0, "bottom_right": im.height - h, "top_right": 0}[corner]
    matches = find_matches(idx, hash_pil(reencode(im.crop((x, y, x + w, y + h)), 85)))
    assert [m.id for m in matches] == ["p1"]
    assert matches[0].slot == "center" and matches[0].distance <= 12


@pytest.mark.parametrize("probe", [0, 1, 2, 3])
def test_vectorised_probe_equals_linear_scan_on_random_data(probe: int) -> None:
    hashes = random_hashes(20_000, seed=5)
    idx = HashIndex.open()
    idx.add_arrays(hashes[:18_000])
    idx.compact()
    idx.add_arrays(hashes[18_000:])  # a delta segment, scanned linearly
    idx.delete("17")
    rng = np.random.default_rng(probe)
    rows = rng.choice(20_000, 60, replace=False)
    slots = rng.integers(0, len(INDEXED_VIEWS), 60)
    queries = np.array(
        [
            flip_bits(int(hashes[r, s]), list(rng.choice(64, i % 13, replace=False)))
            for i, (r, s) in enumerate(zip(rows, slots, strict=True))
        ],
        dtype=np.uint64,
    )
    radii = np.full(60, probe)
    radii[::2] = 3  # mixed probe radii in one call
    qi, got_rows, dist = idx.probe(queries, slots, radii, 12)
    got = set(zip(qi.tolist(), got_rows.tolist(), dist.tolist(), strict=True))
    assert len(got) == qi.size  # each (query, row) pair once
    want = {
        (i, h.row, h.distance)
        for i in range(60)
        for h in idx.linear_search(queries[i : i + 1], int(slots[i]), 12)
    }
    exact = {t for t in want if radii[t[0]] == 3 or t[2] <= 4 * probe + 3}
    assert exact <= got <= want
    if probe == 3:
        assert got == want
    assert all(idx.hashes_of_row(r)[slots[q]] ^ int(queries[q]) for q, r, d in got if d)


def test_tables_hold_flat_hash_positions_sorted_by_substring() -> None:
    hashes = random_hashes(3000, seed=9)
    n, slots = hashes.shape
    perm, offsets = build_tables(hashes)
    flat = hashes.reshape(-1)
    for s in range(slots):
        for c in range(CHUNKS):
            positions = perm[s, c].astype(np.int64)
            assert np.all(positions % slots == s)  # each table points at its own slot's hashes
            keys = chunks_of(flat[positions])[:, c]
            assert np.all(np.diff(keys.astype(np.int64)) >= 0)
            # Absolute offsets into the flattened permutations: table (s, c) starts at (s * 4 + c) * n.
            want = (s * CHUNKS + c) * n + np.searchsorted(np.sort(keys), np.arange(65537))
            assert np.array_equal(offsets[s, c].astype(np.int64), want)


def test_probe_plans_are_reused_across_images() -> None:
    idx = HashIndex.open()
    idx.add_arrays(random_hashes(5000, seed=4))
    idx.compact()
    slots = np.array([0, 1, 2, 1], dtype=np.int64)
    radii = np.array([1, 0, 1, 0], dtype=np.int64)
    before = index_module._probe_plan.cache_info()
    for seed in range(3):
        queries = random_hashes(1, seed=100 + seed).reshape(-1)
        queries = np.concatenate([queries, queries[:1]])  # one hash in two slots
        got = idx.probe(queries, slots, radii, 12)
        want = {
            (i, h.row, h.distance)
            for i in range(4)
            for h in idx.search(queries[i : i + 1], int(slots[i]), 12, int(radii[i]))
        }
        assert set(zip(*(a.tolist() for a in got), strict=True)) == want
    after = index_module._probe_plan.cache_info()
    assert after.hits >= before.hits + 2  # the same slots and radii: one plan, built once
    column = random_hashes(5000, seed=4)[:7, 2]  # a strided view of the stored hashes
    qi, rows, dist = idx.probe(column, np.full(7, 2), np.zeros(7, np.int64), 12)
    assert sorted(zip(qi.tolist(), rows.tolist(), dist.tolist(), strict=True)) == [
        (i, i, 0) for i in range(7)
    ]


def test_watermarked_low_texture_picture_is_found() -> None:
    idx = HashIndex.open()
    for seed in range(1, 7):
        idx.add(f"t{seed}", hash_pil(texture(seed)).indexed(), seller_id=f"S{seed}")
        idx.add(f"p{seed}", hash_pil(photo(seed)).indexed(), seller_id=f"P{seed}")
    for seed in range(1, 7):
        for top in (0.1, 0.45, 0.7):
            matches = find_matches(idx, hash_pil(reencode(banner(texture(seed), top), 90)))
            assert [m.id for m in matches] == [f"t{seed}"], (seed, top)


def test_checker_is_shared_between_threads(tmp_path) -> None:
    """The index's SQLite connection is opened in one thread and used from others (a server's pool)."""
    from concurrent.futures import ThreadPoolExecutor

    db = build_db(tmp_path)
    paths = [str(save_jpeg(reencode(photo(1), q), tmp_path / f"c{q}.jpg")) for q in (40, 60, 80)]
    with ThreadPoolExecutor(1) as opener:
        checker = opener.submit(ImageChecker.open, db, (), ImageSources(any_path=True)).result()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(checker.check_image, paths * 4))
    assert all(m and m[0].id == "p1.jpg" for m in answers)
    checker.close()
