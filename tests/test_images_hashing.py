"""Hashing: edits keep hashes close, other pictures do not, bad files give clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fftpack
from PIL import Image

from moderation.images import hashing
from moderation.images.hashing import ImageError, dct_hash, hamming, hash_image, hash_pil

try:
    from images_fixtures import banner, edits, photo, reencode, save_jpeg, texture
except ImportError:  # tests/ is a package in this run
    from tests.images_fixtures import banner, edits, photo, reencode, save_jpeg, texture


def best_distance(query: hashing.ImageHashes, stored: hashing.ImageHashes) -> int:
    plan = query.query()
    return min(
        hamming(h, s)
        for slot, s in zip(hashing.INDEXED_VIEWS, stored.indexed(), strict=True)
        for _, h in plan[slot]
    )


def test_dct_hash_is_the_imagehash_phash_recipe() -> None:
    px = np.asarray(photo(1).convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(px, axis=0), axis=1)[:8, :8]
    expected = int("".join("1" if b else "0" for b in (dct > np.median(dct)).ravel()), 2)
    assert dct_hash(px) == expected


def test_edits_stay_close_and_other_pictures_do_not() -> None:
    original = hash_pil(photo(1))
    for name, edited in edits(photo(1)).items():
        assert best_distance(hash_pil(edited), original) <= 12, name
    for seed in range(2, 8):
        assert best_distance(hash_pil(photo(seed)), original) > 12


def test_padding_is_trimmed_before_hashing() -> None:
    im = photo(3)
    padded = Image.new("RGB", (im.width, im.width), (255, 255, 255))
    padded.paste(im, (0, (im.width - im.height) // 2))
    assert hamming(hash_pil(padded).views["full"], hash_pil(im).views["full"]) <= 4


def test_file_and_file_url_and_exif_orientation(tmp_path) -> None:
    im = photo(4)
    plain = save_jpeg(im, tmp_path / "a.jpg")
    rotated = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers turn it 90 degrees clockwise
    im.rotate(90, expand=True).save(rotated, "JPEG", quality=90, exif=exif)
    a, b = hash_image(plain), hash_image(f"file://{rotated}")
    assert best_distance(b, a) <= 6


def test_animated_gif_uses_first_frame(tmp_path) -> None:
    frames = [photo(5).convert("P"), photo(6).convert("P")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert best_distance(hash_image(path), hash_pil(photo(5))) <= 10


def test_transparent_png_is_hashed_on_white(tmp_path) -> None:
    im = photo(7).convert("RGBA")
    path = tmp_path / "t.png"
    im.save(path)
    assert hash_image(path).views["full"] == hash_pil(photo(7)).views["full"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "unreadable_image"),
        (b"this is not an image at all", "unreadable_image"),
        (None, "not_found"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content: bytes | None, code: str) -> None:
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        hash_image(path)
    assert info.value.code == code
    assert info.value.to_dict() == {"code": code, "message": info.value.message}


def test_truncated_jpeg(tmp_path) -> None:
    full = save_jpeg(photo(8), tmp_path / "full.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(ImageError) as info:
        hash_image(cut)
    assert info.value.code == "unreadable_image"


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(path)
    monkeypatch.setattr(hashing, "MAX_PIXELS", 1_000_000)
    with pytest.raises(ImageError) as info:
        hash_image(path)
    assert info.value.code == "image_too_large"


def test_pil_bomb_warning_becomes_error(tmp_path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (2000, 2000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 4 MP: above PIL's limit, below ours
    with pytest.raises(ImageError) as info:
        hash_image(path)
    assert info.value.code == "image_too_large"


def test_remote_urls_are_not_fetched() -> None:
    with pytest.raises(ImageError) as info:
        hash_image("https://example.com/a.jpg")
    assert info.value.code == "remote_not_supported"


def test_sixteen_bit_and_tiny_images(tmp_path) -> None:
    arr = (np.asarray(photo(9).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert best_distance(hash_image(path), hash_pil(photo(9))) <= 6
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    with pytest.raises(ImageError) as info:
        hash_image(tiny)
    assert info.value.code == "image_too_small"


def test_window_resampling_at_32_pixels_is_the_plain_dct_hash() -> None:
    px = np.asarray(photo(2).convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    lows = hashing.window_lows(px, [(0.0, 0.0, 32.0, 32.0)])
    assert int(hashing.lows_to_hashes(lows)[0]) == dct_hash(px)


@pytest.mark.parametrize("first", [0, hashing.DETAIL_BAND])
def test_mirrored_hash_is_the_hash_of_the_mirrored_window(first: int) -> None:
    arr = np.asarray(photo(3).convert("L"), dtype=np.float64)
    h, w = arr.shape
    box = (0.1 * w, 0.05 * h, 0.85 * w, 0.9 * h)
    mirrored_box = (w - box[2], box[1], w - box[0], box[3])
    lows = hashing.window_lows(arr, [box], first)
    via_sign = int(hashing.lows_to_hashes(lows * hashing.mirror_sign(first))[0])
    direct = hashing.window_lows(arr[:, ::-1].copy(), [mirrored_box], first)
    assert hamming(via_sign, int(hashing.lows_to_hashes(direct)[0])) <= 2  # up to float rounding


def test_detail_band_is_the_dct_block_above_phash() -> None:
    px = np.asarray(photo(2).convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(px, axis=0), axis=1)
    band = slice(hashing.DETAIL_BAND, hashing.DETAIL_BAND + 8)
    lows = hashing.window_lows(px, [(0.0, 0.0, 32.0, 32.0)], hashing.DETAIL_BAND)[0]
    assert np.allclose(lows, dct[band, band])


def test_detail_view_keeps_low_texture_pictures_under_a_watermark() -> None:
    """The brick-wall case: pHash has almost nothing to hold on to, the band above it has the texture."""
    full, detail = [], []
    for seed in range(1, 7):
        original = hash_pil(texture(seed))
        for top in (0.1, 0.45, 0.7):
            marked = hash_pil(reencode(banner(texture(seed), top), 90))
            full.append(hamming(marked.views["full"], original.views["full"]))
            detail.append(hamming(marked.views["detail"], original.views["detail"]))
    assert max(detail) <= 10
    assert np.median(full) >= 12 and np.median(detail) <= 6
    assert any(f > 12 for f in full)  # cases the whole-picture pHash alone would miss


def test_query_plan_views_are_all_hashed() -> None:
    hashes = hash_pil(photo(4))
    for slot, pairs in hashes.query().items():
        assert slot in hashing.INDEXED_VIEWS
        tiles = hashing.TILE_PLAN.get(slot, ())
        assert {v.removesuffix("_m") for v, _ in pairs} == set(hashing.QUERY_PLAN[slot]) | set(tiles)
        assert len(pairs) == 2 * len(hashing.QUERY_PLAN[slot]) + len(tiles)  # cells are not mirrored
        for view, _ in pairs:
            box = hashes.boxes[view.removesuffix("_m")]
            assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
