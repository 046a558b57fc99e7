"""Robustness and speed benchmark of copied-image detection (moderation.images); see docs/images.md.

Robustness: real photographs (scikit-image's and scikit-learn's sample photos, matplotlib's sample
photo and the photos found under the Rust docs when present), plus the four quadrants of every photo of
at least 400 px as extra distinct images, are indexed. Each original photo is then edited twelve ways
and looked up; recall per edit counts lookups whose source is among the matches. False matches: every
original, quadrant and edited variant is looked up against every indexed image of a *different*
source photo (quadrants share their parent's source), and the rate is matched pairs / all such pairs.
The same queries are run with plain ``imagehash.phash`` of the whole picture and a linear scan, at the
same threshold, for comparison.

Speed: hashing 1000x1000 JPEGs on one core (BLAS pinned to one thread), and index queries at the sizes
given by ``--sizes`` (random hashes plus planted near-duplicates) against a linear numpy scan.

Needs scikit-image and scikit-learn (benchmark only): ``pip install scikit-image scikit-learn``.
Run: ``python scripts/bench_images.py --sizes 1000000,10000000``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import io
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moderation.images.hashing import INDEXED_VIEWS, hash_image, hash_pil
from moderation.images.index import HashIndex
from moderation.images.matcher import (
    COPY_DISTANCE,
    PROBE_RADIUS,
    WINDOW_PROBE_RADIUS,
    find_matches,
    query_arrays,
)

Edit = Callable[[Image.Image, random.Random], Image.Image]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

# ------------------------------------------------------------------------------------------- photos


def load_photos() -> dict[str, Image.Image]:
    """Real photographs available offline, by name; quadrants of large ones as ``name#qN``."""
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    photos: dict[str, Image.Image] = {}
    # Natural photos only: the synthetic ones (colorwheel, logo, checkerboard, text, horse silhouette)
    # are not product-photo-like, and cat() is the same picture as chelsea().
    for name in (
        "astronaut",
        "camera",
        "chelsea",
        "coffee",
        "coins",
        "clock",
        "hubble_deep_field",
        "immunohistochemistry",
        "moon",
        "retina",
        "rocket",
        "brick",
        "grass",
        "gravel",
        "cell",
    ):
        photos[name] = Image.fromarray(getattr(data, name)()).convert("RGB")
    left, _right, _disp = data.stereo_motorcycle()  # the right view is a near-duplicate: left only
    photos["motorcycle"] = Image.fromarray(left).convert("RGB")
    samples = load_sample_images()
    for fn, arr in zip(samples.filenames, samples.images, strict=True):
        photos[Path(fn).stem] = Image.fromarray(arr).convert("RGB")
    extra = [
        Path(sys.prefix) / "lib/python3.11/site-packages/matplotlib/mpl-data/sample_data/grace_hopper.jpg"
    ]
    extra += sorted(
        Path("/root/.rustup/toolchains").glob("stable-*/share/doc/rust/html/embedded-book/assets/f3.jpg")
    )
    # (verify.jpeg beside f3.jpg is the same board photo with labels added: a near-duplicate, left out.)
    for p in extra[:2]:
        if p.exists():
            photos[p.stem] = Image.open(p).convert("RGB")
    for name in list(photos):
        im = photos[name]
        if min(im.size) >= 400:
            w, h = im.width // 2, im.height // 2
            for i, (x, y) in enumerate(((0, 0), (w, 0), (0, h), (w, h))):
                photos[f"{name}#q{i}"] = im.crop((x, y, x + w, y + h))
    return photos


def source(name: str) -> str:
    return name.split("#")[0]


# -------------------------------------------------------------------------------------------- edits


def _reencode(im: Image.Image, quality: int = 90) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def resize(f: float) -> Edit:
    return lambda im, rng: _reencode(im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS))


def jpeg30(im: Image.Image, rng: random.Random) -> Image.Image:
    return _reencode(im, 30)


def crop(area: float) -> Edit:
    """Keep ``area`` of the picture (same aspect) at a random position."""

    def edit(im: Image.Image, rng: random.Random) -> Image.Image:
        s = area**0.5
        w, h = round(im.width * s), round(im.height * s)
        x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
        return _reencode(im.crop((x, y, x + w, y + h)))

    return edit


def rotate3(im: Image.Image, rng: random.Random) -> Image.Image:
    return _reencode(im.rotate(3, resample=Image.BICUBIC, expand=True, fillcolor=(255, 255, 255)))


def flip(im: Image.Image, rng: random.Random) -> Image.Image:
    return _reencode(ImageOps.mirror(im))


def pad_square(im: Image.Image, rng: random.Random) -> Image.Image:
    """A 4% white border, then padded to a square (the usual marketplace main-image format)."""
    im = ImageOps.expand(im, border=max(4, round(0.04 * max(im.size))), fill=(255, 255, 255))
    side = max(im.size)
    return _reencode(ImageOps.pad(im, (side, side), color=(255, 255, 255)))


def bright30(im: Image.Image, rng: random.Random) -> Image.Image:
    return _reencode(ImageEnhance.Brightness(im).enhance(1.3))


def gray(im: Image.Image, rng: random.Random) -> Image.Image:
    return _reencode(im.convert("L"))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT, size) if Path(FONT).exists() else ImageFont.load_default(size=size)


def watermark(im: Image.Image, rng: random.Random) -> Image.Image:
    """Semi-transparent outlined text filling a box of 15% of the picture's area at a random place."""
    w = round(im.width * 0.6)
    h = round(0.15 * im.width * im.height / w)
    x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    text, size = "SAMPLE 样品", h
    while size > 6 and (draw.textlength(text, font=_font(size)) > w or size > h * 0.9):
        size -= 1
    draw.text(
        (x, y + (h - size) // 2),
        text,
        fill=(255, 255, 255, 140),
        font=_font(size),
        stroke_width=max(1, size // 20),
        stroke_fill=(0, 0, 0, 140),
    )
    return _reencode(Image.alpha_composite(im.convert("RGBA"), layer))


def screenshot(im: Image.Image, rng: random.Random) -> Image.Image:
    """A phone screenshot of a product page: status bar, title, the photo, price, buttons."""
    w, h = im.size
    m = round(0.03 * w)
    top, title, below, nav = round(0.08 * h), round(0.07 * h), round(0.25 * h), round(0.08 * h)
    cw, ch = w + 2 * m, top + title + h + below + nav
    canvas = Image.new("RGB", (cw, ch), (245, 245, 245))
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, cw, top), fill=(30, 30, 30))
    d.text((m, top // 4), "12:30", fill=(255, 255, 255), font=_font(max(8, top // 2)))
    d.text((cw - 8 * m - 40, top // 4), "4G 88%", fill=(255, 255, 255), font=_font(max(8, top // 2)))
    d.text((m, top + title // 4), "< Details", fill=(0, 0, 0), font=_font(max(8, title // 2)))
    canvas.paste(im, (m, top + title))
    y = top + title + h + m
    d.text((m, y), "¥ 199.00", fill=(230, 40, 40), font=_font(max(8, below // 4)))
    d.text((m, y + below // 2), "Free shipping, 2k sold", fill=(90, 90, 90), font=_font(max(8, below // 6)))
    d.rectangle((0, ch - nav, cw, ch), fill=(255, 255, 255))
    for i in range(4):
        cx = round((i + 0.5) * cw / 4)
        d.ellipse(
            (cx - nav // 4, ch - nav + nav // 6, cx + nav // 4, ch - nav + nav // 6 + nav // 2),
            outline=(120, 120, 120),
            width=2,
        )
    return _reencode(canvas)


EDITS: dict[str, Edit] = {
    "resize50": resize(0.5),
    "resize30": resize(0.3),
    "jpeg30": jpeg30,
    "crop10": crop(0.90),
    "crop25": crop(0.75),
    "rotate3": rotate3,
    "flip": flip,
    "pad_square": pad_square,
    "bright30": bright30,
    "gray": gray,
    "watermark15": watermark,
    "screenshot": screenshot,
}

# ---------------------------------------------------------------------------------------- robustness


def robustness(threshold: int, seed: int) -> None:
    photos = load_photos()
    originals = [n for n in photos if "#" not in n]
    print(
        f"photos: {len(originals)} originals + {len(photos) - len(originals)} quadrants = "
        f"{len(photos)} indexed images; threshold {threshold}/64"
    )
    rng = random.Random(seed)
    index = HashIndex.open(None)
    index.add_many((name, hash_pil(im).indexed(), None, source(name), None) for name, im in photos.items())
    plain = {name: imagehash.phash(im) for name, im in photos.items()}

    queries: list[tuple[str, str, Image.Image]] = [(name, "original", im) for name, im in photos.items()]
    for name in originals:
        queries.extend((name, edit, fn(photos[name], rng)) for edit, fn in EDITS.items())

    hits = {e: [0, 0] for e in EDITS}
    plain_hits = {e: [0, 0] for e in EDITS}
    false_pairs = plain_false = pairs = 0
    dist_true: dict[str, list[int]] = {e: [] for e in EDITS}
    for name, edit, im in queries:
        matches = find_matches(index, hash_pil(im), threshold)
        qp = imagehash.phash(im)
        others = [m for m in photos if source(m) != source(name)]
        pairs += len(others)
        false_pairs += sum(1 for m in matches if source(m.id) != source(name))
        plain_false += sum(1 for m in others if qp - plain[m] <= threshold)
        if edit != "original":
            found = [m.distance for m in matches if m.id == name]
            hits[edit][0] += bool(found)
            hits[edit][1] += 1
            dist_true[edit].append(found[0] if found else -1)
            plain_hits[edit][0] += qp - plain[name] <= threshold
            plain_hits[edit][1] += 1
    print(f"\n{'edit':<12} {'recall':>7} {'pHash':>7}   distances of the source (-1: missed)")
    for e in EDITS:
        r, n = hits[e]
        pr, pn = plain_hits[e]
        print(f"{e:<12} {r / n:7.3f} {pr / pn:7.3f}   {sorted(dist_true[e])}")
    print(
        f"{'false-match':<12} {false_pairs / pairs:7.5f} {plain_false / pairs:7.5f}   "
        f"({false_pairs} and {plain_false} of {pairs} distractor pairs; {len(queries)} queries)"
    )
    index.close()


# -------------------------------------------------------------------------------------------- speed


def hashing_speed(count: int) -> None:
    photos = [im for n, im in load_photos().items() if "#" not in n]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(count):
            im = photos[i % len(photos)].resize((1000, 1000), Image.LANCZOS)
            if i >= len(photos):  # vary the content so no two files are the same
                im = ImageOps.mirror(im) if (i // len(photos)) % 2 else im.rotate(90 * (i // len(photos)))
            p = Path(tmp) / f"{i}.jpg"
            im.save(p, "JPEG", quality=90)
            paths.append(p)
        hash_image(paths[0])
        t, c = time.perf_counter(), time.process_time()
        for p in paths:
            hash_image(p)
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        for p in paths[:50]:
            with Image.open(p) as im:
                imagehash.phash(im)
        dt_plain = (time.perf_counter() - t) / min(50, len(paths))
    print(
        f"\nhashing 1000x1000 JPEGs, one core: {count / dt:.0f} images/s wall clock ({1000 * dt / count:.2f} ms "
        f"each; all views), {count / cpu:.0f} images per CPU-second; plain imagehash.phash of a full "
        f"decode: {1 / dt_plain:.0f} images/s wall clock"
    )


def index_speed(n: int, radius: int, queries: int, seed: int) -> None:
    """Random hashes plus planted near-duplicates; the matcher's own lookups timed against linear scans.

    *one hash*: one lookup (query hash, slot) at a given per-substring probe radius. *one image*: every
    lookup the matcher makes for one image (all its views and mirrors, each slot, each at the matcher's
    probe radius) in one :meth:`HashIndex.probe` call. The linear scans do the same work with numpy
    (XOR + popcount of the whole slot column per query hash).

    Wall-clock and CPU time (``time.process_time``) are both recorded for the index and the scans: on a
    shared machine the wall-clock p99 of a sub-millisecond query is mostly time the process was not
    scheduled, so the speed-up is also given as CPU p50 of the scan over CPU p99 of the index.
    """
    slots_n = len(INDEXED_VIEWS)
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    hashes = rng.integers(0, np.iinfo(np.uint64).max, size=(n, slots_n), dtype=np.uint64, endpoint=True)
    # Plant a near-duplicate of every query at a random distance 0..radius in every slot.
    q = rng.integers(0, np.iinfo(np.uint64).max, size=(queries, slots_n), dtype=np.uint64, endpoint=True)
    planted = rng.choice(n, size=queries, replace=False)
    dist_planted = rng.integers(0, radius + 1, size=queries)
    for i, row in enumerate(planted):
        for s in range(slots_n):
            flips = rng.choice(64, size=dist_planted[i], replace=False)
            hashes[row, s] = q[i, s] ^ np.uint64(sum(1 << int(b) for b in flips))
    index = HashIndex.open(None)
    index.add_arrays(hashes, metadata=False)
    build = time.perf_counter() - t
    p = lambda xs, k: 1000 * float(np.percentile(xs, k))  # noqa: E731
    print(
        f"\nindex of {n:,} images ({slots_n} slots), radius {radius}: built in {build:.1f} s, "
        f"{index.index_bytes() / n:.1f} bytes/image"
    )

    one_slot, one_radius = np.zeros(1, np.int64), np.zeros(1, np.int64)
    one_p99: dict[int, float] = {}
    one_p50: dict[int, float] = {}
    one_cpu_p99: dict[int, float] = {}
    for probe in sorted({WINDOW_PROBE_RADIUS, PROBE_RADIUS, radius // 4}):
        times: list[float] = []
        cpu: list[float] = []
        found = exact_found = 0
        for i in range(queries):
            t, c = time.perf_counter(), time.process_time()
            _, rows, _ = index.probe(q[i, :1], one_slot, one_radius + probe, radius)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            hit = bool((rows == planted[i]).any())
            found += hit
            exact_found += hit or dist_planted[i] > 4 * probe + 3
        one_p99[probe], one_p50[probe], one_cpu_p99[probe] = p(times, 99), p(times, 50), p(cpu, 99)
        print(
            f"  one hash, probe radius {probe}: p50 {p(times, 50):6.3f} ms  p99 {p(times, 99):6.3f} ms  "
            f"(CPU p99 {p(cpu, 99):6.3f} ms)  planted found {found}/{queries} (uniform 0..{radius} random bits; "
            f"exact up to {min(4 * probe + 3, radius)} bits: {exact_found}/{queries} as guaranteed)"
        )

    # One image: the matcher's lookups (view count, slots and probe radii of a real image's plan).
    noise = Image.fromarray(rng.integers(0, 256, size=(96, 128), dtype=np.uint8))  # every view distinct
    _names, _values, slots, radii = query_arrays(hash_pil(noise))
    per_image: list[float] = []
    per_image_cpu: list[float] = []
    found = 0
    for i in range(min(queries, 300)):
        values = rng.integers(0, np.iinfo(np.uint64).max, size=slots.size, dtype=np.uint64, endpoint=True)
        for s in range(slots_n):  # the first lookup of each slot is the planted row's query
            values[np.flatnonzero(slots == s)[0]] = q[i, s]
        t, c = time.perf_counter(), time.process_time()
        _, rows, _ = index.probe(values, slots, radii, radius)
        per_image.append(time.perf_counter() - t)
        per_image_cpu.append(time.process_time() - c)
        found += bool((rows == planted[i]).any())
    print(
        f"  one image   p50 {p(per_image, 50):6.3f} ms  p99 {p(per_image, 99):6.3f} ms  "
        f"(CPU p99 {p(per_image_cpu, 99):6.3f} ms; {slots.size} lookups: {int((radii == PROBE_RADIUS).sum())} at probe radius {PROBE_RADIUS}, "
        f"{int((radii == WINDOW_PROBE_RADIUS).sum())} at {WINDOW_PROBE_RADIUS}; "
        f"planted found {found}/{len(per_image)})"
    )

    column = [np.ascontiguousarray(hashes[:, s]) for s in range(slots_n)]
    linear: list[float] = []
    linear_cpu: list[float] = []
    same = True
    for i in range(min(queries, 30)):
        t, c = time.perf_counter(), time.process_time()
        lin = np.flatnonzero(np.bitwise_count(column[0] ^ q[i, 0]) <= radius)
        linear.append(time.perf_counter() - t)
        linear_cpu.append(time.process_time() - c)
        _, rows, _ = index.probe(q[i, :1], one_slot, one_radius + radius // 4, radius)
        same &= set(lin.tolist()) == set(rows.tolist())
    linear_image: list[float] = []
    linear_image_cpu: list[float] = []
    for _ in range(3 if n > 2_000_000 else 10):
        values = rng.integers(0, np.iinfo(np.uint64).max, size=slots.size, dtype=np.uint64, endpoint=True)
        t, c = time.perf_counter(), time.process_time()
        for v, s in zip(values.tolist(), slots.tolist(), strict=True):
            np.flatnonzero(np.bitwise_count(column[s] ^ np.uint64(v)) <= radius)
        linear_image.append(time.perf_counter() - t)
        linear_image_cpu.append(time.process_time() - c)
    print(
        f"  linear scan one hash  p50 {p(linear, 50):8.3f} ms  p99 {p(linear, 99):8.3f} ms  "
        f"(CPU p50 {p(linear_cpu, 50):8.3f} ms; exact probing, radius {radius // 4}, same answers: {same})"
    )
    print(
        f"  linear scan one image p50 {p(linear_image, 50):8.3f} ms  max {1000 * max(linear_image):8.3f} ms  "
        f"(CPU p50 {p(linear_image_cpu, 50):8.3f} ms; {slots.size} scans)"
    )
    print(
        f"  speed-up, index p99 vs linear p50 (wall clock): one hash (probe radius {PROBE_RADIUS}) "
        f"{p(linear, 50) / one_p99[PROBE_RADIUS]:.1f}x, one image {p(linear_image, 50) / p(per_image, 99):.0f}x; "
        f"index p50 vs linear p50: one hash {p(linear, 50) / one_p50[PROBE_RADIUS]:.0f}x, "
        f"one image {p(linear_image, 50) / p(per_image, 50):.0f}x"
    )
    cpu_image = p(linear_image_cpu, 50) / p(per_image_cpu, 99)
    print(
        f"  speed-up, index CPU p99 vs linear CPU p50: one hash (probe radius {PROBE_RADIUS}) "
        f"{p(linear_cpu, 50) / one_cpu_p99[PROBE_RADIUS]:.1f}x, one image {cpu_image:.0f}x"
    )
    print(
        f"  bars at {n:,}: one image p99 {p(per_image, 99):.3f} ms wall / {p(per_image_cpu, 99):.3f} ms CPU "
        f"(<= {5 if n <= 1_000_000 else 20} ms), speed-up {cpu_image:.0f}x by CPU time (>= 50x), "
        f"{index.index_bytes() / n:.1f} bytes/image (<= 100)"
    )
    index.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000", help="index sizes to time, comma-separated ('' skips)")
    ap.add_argument("--threshold", type=int, default=COPY_DISTANCE)
    ap.add_argument("--radius", type=int, default=COPY_DISTANCE, help="search radius for the speed test")
    ap.add_argument("--hash-count", type=int, default=300, help="JPEGs hashed for the speed test")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-robustness", action="store_true")
    args = ap.parse_args()
    if not args.skip_robustness:
        robustness(args.threshold, args.seed)
    if args.hash_count:
        hashing_speed(args.hash_count)
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        index_speed(size, args.radius, args.queries, args.seed)


if __name__ == "__main__":
    main()
