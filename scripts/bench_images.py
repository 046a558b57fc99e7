"""Copied-image detection on real product photos (moderation.images), next to a plain pHash baseline.

Photos: a folder of real product photographs with a ``photos.csv`` (file, catalogue, kind, product, ...),
such as ``../shared/images`` (324 photos from seven shop catalogues; never copied into this repository).

Split: for about 70% of the product keys (chosen by a hash of the key) the first photo is indexed as the
"seller original"; every other photo - other views and colour variants of indexed products, and all
photos of the other products - is **never indexed** and serves as a look-alike negative.

Queries: every indexed photo edited 13 ways (``EDITS``: mild, hard, crop/rotate) plus a 2x2 collage
with three never-indexed photos, each re-encoded as a JPEG and decoded from bytes like an upload; and
every never-indexed photo as it is. Reported per edit: recall (the source is among the copies found);
false matches per (query, indexed photo) pair (a copy found that is not the query's source); the share
of never-indexed look-alikes with any copy found. The same queries are run in the same process with
``imagehash.phash`` of the whole picture and a linear scan at <= 10 bits (the baseline).

Speed (one core, BLAS and OpenCV pinned to one thread): index build rate of the real photos through the
same code as ``moderation images index`` (decode, hashes, features, thumbnail, insert); per-query time
(decode + hashes + retrieval + verification); retrieval at ``--sizes`` (random rows plus the real ones),
and retrieval + verification with every query's candidates verified at that size.

    .venv/bin/python scripts/bench_images.py ../shared/images --sizes 1000000
    .venv/bin/python scripts/bench_images.py ../shared/images --fit    # refit verify.WEIGHTS (printed)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import csv
import hashlib
import io
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moderation.images import verify as verify_module
from moderation.images.hashing import INDEXED_VIEWS, load_image
from moderation.images.index import HashIndex
from moderation.images.matcher import (
    CANDIDATES,
    RETRIEVE_DISTANCE,
    Query,
    find_matches,
    index_entry,
    query_arrays,
    retrieve,
    verify_match,
)

cv2.setNumThreads(1)

Edit = Callable[[Image.Image, random.Random], Image.Image]
FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
)
BASELINE_BITS = 10

# -------------------------------------------------------------------------------------------- edits


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for f in FONTS:
        if Path(f).exists():
            return ImageFont.truetype(f, max(6, size))
    return ImageFont.load_default(size=max(6, size))


def _jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def reencode(im: Image.Image, rng: random.Random) -> Image.Image:
    return Image.open(io.BytesIO(_jpeg(im, rng.choice((35, 50, 65))))).convert("RGB")


def resize(im: Image.Image, rng: random.Random) -> Image.Image:
    f = rng.choice((0.4, 0.5, 0.7))
    return im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)


def brightness(im: Image.Image, rng: random.Random) -> Image.Image:
    im = ImageEnhance.Brightness(im).enhance(rng.choice((0.8, 1.2, 1.3)))
    return ImageEnhance.Contrast(im).enhance(rng.choice((0.9, 1.1)))


def corner_watermark(im: Image.Image, rng: random.Random) -> Image.Image:
    """A shop name with a logo disc in a random corner, ~30% of the width."""
    w, h = im.size
    size = max(10, round(0.05 * w))
    text = rng.choice(("优品小店 旗舰", "@HAPPY SHOP", "正品保证 官方"))
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    tw = d.textlength(text, font=_font(size)) + size * 1.4
    x = round(0.03 * w) if rng.random() < 0.5 else round(w - tw - 0.03 * w)
    y = round(0.03 * h) if rng.random() < 0.5 else round(h - 1.4 * size - 0.03 * h)
    colour = rng.choice(((230, 30, 30, 230), (40, 40, 40, 200), (255, 140, 0, 230)))
    d.ellipse((x, y, x + size * 1.1, y + size * 1.1), fill=colour)
    d.text((x + size * 1.4, y), text, font=_font(size), fill=colour)
    return Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")


def pad_border(im: Image.Image, rng: random.Random) -> Image.Image:
    """Pad to a square (white), then a thin coloured frame: the usual marketplace main image."""
    side = max(im.size)
    im = ImageOps.pad(im, (side, side), color=(255, 255, 255))
    frame = rng.choice(((255, 255, 255), (230, 230, 230), (200, 30, 30)))
    return ImageOps.expand(im, border=max(4, round(0.03 * side)), fill=frame)


def mirror(im: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(im)


def crop(area: float) -> Edit:
    def edit(im: Image.Image, rng: random.Random) -> Image.Image:
        s = area**0.5
        w, h = round(im.width * s), round(im.height * s)
        x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
        return im.crop((x, y, x + w, y + h))

    return edit


def banner(im: Image.Image, rng: random.Random) -> Image.Image:
    """A promotional strip (12-16% of the height) along the top or bottom, over the photo or added."""
    w, h = im.size
    bh = round(h * rng.uniform(0.12, 0.16))
    colour = rng.choice(((220, 20, 40), (250, 120, 0), (20, 20, 20), (255, 215, 0)))
    ink = (255, 255, 255) if colour != (255, 215, 0) else (200, 0, 0)
    top = rng.random() < 0.5
    if rng.random() < 0.5:  # added to the picture
        canvas = Image.new("RGB", (w, h + bh), colour)
        canvas.paste(im, (0, bh if top else 0))
        y0 = 0 if top else h
    else:  # over the photo
        canvas = im.copy()
        y0 = 0 if top else h - bh
        ImageDraw.Draw(canvas).rectangle((0, y0, w, y0 + bh), fill=colour)
    d = ImageDraw.Draw(canvas)
    d.text((round(0.04 * w), y0 + bh * 0.15), "限时特价 ¥99 包邮", font=_font(round(bh * 0.6)), fill=ink)
    return canvas


def big_watermark(im: Image.Image, rng: random.Random) -> Image.Image:
    """Semi-transparent text across the middle of the picture, tilted."""
    w, h = im.size
    layer = Image.new("RGBA", (w * 2, h * 2), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    text = rng.choice(("盗图必究 SAMPLE", "样品 SAMPLE 样品", "COPYRIGHT 店铺"))
    size = round(0.12 * w)
    d.text(
        (w * 0.5, h * 0.85),
        text,
        font=_font(size),
        fill=(255, 255, 255, 120),
        stroke_width=max(1, size // 25),
        stroke_fill=(0, 0, 0, 120),
    )
    layer = layer.rotate(rng.uniform(-30, 30), resample=Image.BICUBIC, center=(w, h)).crop(
        (w // 2, h // 2, w // 2 + w, h // 2 + h)
    )
    return Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")


def screenshot(im: Image.Image, rng: random.Random) -> Image.Image:
    """A phone screenshot of a product page: status bar, title bar, the photo, price, buttons."""
    cw = 720
    s = cw / im.width
    photo = im.resize((cw, round(im.height * s)), Image.LANCZOS)
    if photo.height > 900:
        photo = photo.resize((round(cw * 900 / photo.height), 900), Image.LANCZOS)
    page = rng.choice(((255, 255, 255), (245, 245, 245)))
    top, title, below, nav = 60, 90, 330, 110
    ch = top + title + photo.height + below + nav
    canvas = Image.new("RGB", (cw, ch), page)
    d = ImageDraw.Draw(canvas)
    bar = rng.choice(((0, 0, 0), page))
    d.rectangle((0, 0, cw, top), fill=bar)
    ink = (255, 255, 255) if bar == (0, 0, 0) else (0, 0, 0)
    d.text((24, 12), "12:30", fill=ink, font=_font(30))
    d.text((cw - 180, 12), "5G 88%", fill=ink, font=_font(30))
    d.text((24, top + 22), "<  商品详情      分享", fill=(30, 30, 30), font=_font(38))
    canvas.paste(photo, ((cw - photo.width) // 2, top + title))
    y = top + title + photo.height + 20
    d.text((24, y), "¥ 199.00", fill=(230, 40, 40), font=_font(56))
    d.text((24, y + 90), "新款 正品 包邮 已售2万+", fill=(60, 60, 60), font=_font(34))
    d.text((24, y + 150), "七天无理由退换", fill=(120, 120, 120), font=_font(28))
    d.rectangle((0, ch - nav, cw, ch), fill=(250, 250, 250))
    d.rectangle((cw // 2, ch - nav + 15, cw - 20, ch - 15), fill=(255, 80, 0))
    d.text((cw // 2 + 60, ch - nav + 30), "立即购买", fill=(255, 255, 255), font=_font(40))
    return canvas


def rotate3(im: Image.Image, rng: random.Random) -> Image.Image:
    return im.rotate(rng.choice((-3, 3)), resample=Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))


def collage(im: Image.Image, others: list[Image.Image], rng: random.Random) -> Image.Image:
    """A 2x2 collage (800 px, white gutters) with the photo in a random cell and three others."""
    cell, gutter = 392, 8
    canvas = Image.new("RGB", (2 * cell + 3 * gutter, 2 * cell + 3 * gutter), (255, 255, 255))
    tiles = [im, *others[:3]]
    order = list(range(4))
    rng.shuffle(order)
    for k, pos in enumerate(order):
        x, y = gutter + (pos % 2) * (cell + gutter), gutter + (pos // 2) * (cell + gutter)
        canvas.paste(ImageOps.pad(tiles[k].convert("RGB"), (cell, cell), color=(255, 255, 255)), (x, y))
    return canvas


MILD: dict[str, Edit] = {
    "reencode": reencode,
    "resize": resize,
    "brightness": brightness,
    "corner_watermark": corner_watermark,
    "pad_border": pad_border,
}
HARD: dict[str, Edit] = {
    "mirror": mirror,
    "crop10": crop(0.90),
    "banner": banner,
    "big_watermark": big_watermark,
    "screenshot": screenshot,
}
GEOMETRY: dict[str, Edit] = {"crop25": crop(0.75), "rotate3": rotate3}
GROUPS = {"mild": list(MILD), "hard": list(HARD), "crop/rotate": list(GEOMETRY), "collage": ["collage"]}
EDITS: dict[str, Edit] = {**MILD, **HARD, **GEOMETRY}

# --------------------------------------------------------------------------------------------- data


@dataclass
class Photo:
    name: str
    path: Path
    catalogue: str
    product: str


def load_set(folder: Path) -> tuple[list[Photo], list[Photo]]:
    """(indexed originals, never-indexed look-alikes): see the module docstring."""
    rows = list(csv.DictReader((folder / "photos.csv").open(encoding="utf-8")))
    by_product: dict[str, list[Photo]] = defaultdict(list)
    for r in rows:
        by_product[r["product"]].append(
            Photo(r["file"], folder / "photos" / r["file"], r["catalogue"], r["product"])
        )
    indexed, negatives = [], []
    for key in sorted(by_product):
        photos = sorted(by_product[key], key=lambda p: p.name)
        if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10 < 7:
            indexed.append(photos[0])
            negatives.extend(photos[1:])
        else:
            negatives.extend(photos)
    return indexed, negatives


@dataclass
class QueryCase:
    edit: str
    source: str | None  # the indexed photo it was made from (None: a never-indexed look-alike)
    data: bytes
    product: str


def make_queries(indexed: list[Photo], negatives: list[Photo], seed: int) -> list[QueryCase]:
    rng = random.Random(seed)
    full = {p.name: Image.open(p.path).convert("RGB") for p in [*indexed, *negatives]}
    cases = []
    for p in indexed:
        im = full[p.name]
        for name, fn in EDITS.items():
            cases.append(QueryCase(name, p.name, _jpeg(fn(im, rng)), p.product))
        others = [full[o.name] for o in rng.sample(negatives, 3)]
        cases.append(QueryCase("collage", p.name, _jpeg(collage(im, others, rng)), p.product))
    for p in negatives:
        cases.append(QueryCase("look-alike", None, _jpeg(full[p.name]), p.product))
    return cases


# ----------------------------------------------------------------------------------------- evaluate


def build_index(indexed: list[Photo]) -> tuple[HashIndex, float, float]:
    """The index of the originals, through the same steps as ``images index``: (index, wall s, CPU s)."""
    index = HashIndex.open(None)
    t, c = time.perf_counter(), time.process_time()
    items = []
    for p in indexed:
        hashes, media = index_entry(load_image(p.path))
        items.append((p.name, hashes, p.name, p.catalogue + ":" + p.name, str(p.path), None, media))
    index.add_many(items)
    return index, time.perf_counter() - t, time.process_time() - c


def evaluate(
    index: HashIndex, indexed: list[Photo], cases: list[QueryCase], collect: list | None = None
) -> dict:
    plain = {p.name: imagehash.phash(Image.open(p.path)) for p in indexed}
    names = list(plain)
    plain_arr = np.array([int(str(plain[n]), 16) for n in names], dtype=np.uint64)
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    misses: dict[str, list[str]] = defaultdict(list)
    times: list[float] = []
    cpu: list[float] = []
    for case in cases:
        t, c = time.perf_counter(), time.process_time()
        query = Query.load(case.data)
        matches = find_matches(index, query, explain=collect is not None)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if collect is not None:
            for m in matches:
                if m.verification is not None:
                    collect.append((case, m))
            matches = [m for m in matches if m.is_copy]
        found = {m.id for m in matches}
        qp = int(str(imagehash.phash(Image.open(io.BytesIO(case.data)))), 16)
        d = np.bitwise_count(plain_arr ^ np.uint64(qp))
        base_found = {names[i] for i in np.flatnonzero(d <= BASELINE_BITS)}
        s = stats[case.edit]
        s["queries"] += 1
        s["pairs"] += len(indexed)
        for tag, got in (("", found), ("base_", base_found)):
            wrong = got - {case.source}
            s[tag + "false_pairs"] += len(wrong)
            s[tag + "any_false"] += bool(wrong)
            if case.source is not None:
                s[tag + "hits"] += case.source in got
        if case.source is not None and case.source not in found:
            misses[case.edit].append(case.source)
    return {"stats": stats, "misses": misses, "times": times, "cpu": cpu}


def report(result: dict) -> None:
    stats = result["stats"]
    print(f"\n{'edit':<18} {'queries':>7} {'recall':>7} {'pHash':>7} {'false/pair':>11} {'pHash':>9}")
    group_of = {e: g for g, es in GROUPS.items() for e in es}
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for edit, s in stats.items():
        g = group_of.get(edit, edit)
        for k, v in s.items():
            groups[g][k] += v
            groups["all"][k] += v
        if edit == "look-alike":
            continue
        print(
            f"{edit:<18} {s['queries']:7d} {s['hits'] / s['queries']:7.3f} {s['base_hits'] / s['queries']:7.3f} "
            f"{s['false_pairs'] / s['pairs']:11.5f} {s['base_false_pairs'] / s['pairs']:9.5f}"
        )
    print()
    for g in (*GROUPS, "look-alike", "all"):
        s = groups[g]
        if not s:
            continue
        recall = (
            f"{s['hits'] / s['queries']:7.3f} {s['base_hits'] / s['queries']:7.3f}"
            if g != "look-alike"
            else " " * 15
        )
        line = f"{'[' + g + ']':<18} {s['queries']:7d} {recall} {s['false_pairs'] / s['pairs']:11.5f} {s['base_false_pairs'] / s['pairs']:9.5f}"
        if g == "look-alike":
            line += (
                f"   with any match: {s['any_false'] / s['queries']:.3f} ({s['any_false']} of {s['queries']}); "
                f"pHash {s['base_any_false'] / s['queries']:.3f} ({s['base_any_false']})"
            )
        print(line)
    for edit, names in result["misses"].items():
        print(f"  missed {edit}: {', '.join(sorted(names))}")
    t = np.array(result["times"]) * 1000
    c = np.array(result["cpu"]) * 1000
    print(
        f"\nper query (decode from JPEG bytes, hashes, retrieval, verification; small index): "
        f"p50 {np.percentile(t, 50):.1f} ms, p99 {np.percentile(t, 99):.1f} ms wall; CPU p99 {np.percentile(c, 99):.1f} ms"
    )


def fit(collected: list, indexed: list[Photo]) -> None:
    """Fit verify.WEIGHTS by logistic regression on half the products, report on the other half."""
    keys = sorted(verify_module.WEIGHTS)
    keys.remove("bias")
    xs, ys, half = [], [], []
    # Pairs whose colour check was skipped because their geometry could not make a copy with any colour
    # (verify.could_be_copy) have no colour or tone measured: left out of the fit (pairs with too few
    # inliers to try, colour and tone at their defaults, stay in as before).
    skipped = [
        (c, m)
        for c, m in collected
        if not m.verification.colour_checked and m.verification.inliers >= verify_module.MIN_MATCHES
    ]
    print(
        f"fit: {len(skipped)} of {len(collected)} pairs left out (colour check skipped by the geometry bound)"
    )
    skip_ids = {id(m) for _, m in skipped}
    for case, m in collected:
        if id(m) in skip_ids:
            continue
        ev = m.verification.evidence()
        xs.append([ev[k] for k in keys])
        ys.append(1.0 if m.id == case.source else 0.0)
        half.append(int(hashlib.sha1(case.product.encode()).hexdigest(), 16) % 2)
    x = np.array(xs)
    y = np.array(ys)
    half = np.array(half)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9

    def train(mask: np.ndarray) -> np.ndarray:
        z = np.c_[np.ones(mask.sum()), (x[mask] - mu) / sd]
        w = np.zeros(z.shape[1])
        for _ in range(50):  # Newton steps with a little L2
            p = 1 / (1 + np.exp(-z @ w))
            g = z.T @ (p - y[mask]) + 0.1 * w
            h = z.T @ (z * (p * (1 - p))[:, None]) + 0.1 * np.eye(z.shape[1])
            w -= np.linalg.solve(h, g)
        return w

    for tr in (0, 1):
        w = train(half == tr)
        te = half != tr
        z = np.c_[np.ones(te.sum()), (x[te] - mu) / sd]
        p = 1 / (1 + np.exp(-z @ w))
        pred = p >= 0.5
        print(
            f"fit on half {tr}, test on the other: {int(y[te].sum())} positives, {int((1 - y[te]).sum())} negatives; "
            f"recall {pred[y[te] == 1].mean():.3f}, false positives {int(pred[y[te] == 0].sum())}"
        )
    w = train(np.ones(len(y), bool))
    # Back to unstandardised weights.
    raw = {k: float(w[i + 1] / sd[i]) for i, k in enumerate(keys)}
    raw["bias"] = float(w[0] - sum(w[i + 1] * mu[i] / sd[i] for i in range(len(keys))))
    print("WEIGHTS = {" + ", ".join(f'"{k}": {v:.3f}' for k, v in raw.items()) + "}")
    # Calibration: predicted vs observed in probability bins, all pairs.
    z = np.c_[np.ones(len(y)), (x - mu) / sd]
    p = 1 / (1 + np.exp(-z @ w))
    for lo, hi in ((0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.01)):
        sel = (p >= lo) & (p < hi)
        if sel.any():
            print(
                f"  p in [{lo}, {min(hi, 1)}): {int(sel.sum())} pairs, mean p {p[sel].mean():.3f}, observed {y[sel].mean():.3f}"
            )


# -------------------------------------------------------------------------------------------- speed


def build_speed(indexed: list[Photo]) -> None:
    """``images index`` on the photo files into a file store (one core), images per second."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.csv"
        with manifest.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "listing_id", "seller_id", "brand"])
            for i in range(3):  # three rounds of the photos, distinct ids
                for p in indexed:
                    w.writerow([str(p.path.resolve()), f"L{i}-{p.name}", f"S{i}", ""])
        from click.testing import CliRunner

        from moderation.images.cli import images

        t, c = time.perf_counter(), time.process_time()
        res = CliRunner().invoke(
            images, ["index", "--manifest", str(manifest), "--db", str(Path(tmp) / "db"), "--quiet"]
        )
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        n = 3 * len(indexed)
        assert res.exit_code == 0, res.output
        size = sum(f.stat().st_size for f in (Path(tmp) / "db").iterdir())
    print(
        f"\nindex build (moderation images index --manifest, file store, {n} photos): {n / dt:.0f} images/s wall, "
        f"{n / cpu:.0f} per CPU-second; store {size / n / 1024:.1f} KiB/image (features + thumbnail + hashes)"
    )


def scale_speed(index: HashIndex, cases: list[QueryCase], n: int, seed: int) -> None:
    """Retrieval and retrieval + verification with ``n`` random rows added to the real index."""
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    big = HashIndex.open(None)
    real = index.hashes_of_rows(np.arange(index.main_rows + 10_000)[: len(index)])
    hashes = rng.integers(
        0, np.iinfo(np.uint64).max, size=(n, len(INDEXED_VIEWS)), dtype=np.uint64, endpoint=True
    )
    big.add_arrays(hashes, metadata=False)
    build = time.perf_counter() - t
    print(
        f"\nindex of {n:,} random images + the {len(real)} real ones: built in {build:.1f} s, {big.index_bytes() / n:.1f} bytes/image"
    )
    queries = [Query.load(c.data) for c in cases[:: max(1, len(cases) // 400)]]
    # Retrieval at this size: every lookup of the real queries' plans against the big index.
    ret, ret_cpu = [], []
    for q in queries:
        _names, values, slots, radii = query_arrays(q.hashes)
        t, c = time.perf_counter(), time.process_time()
        big.probe(values, slots, radii, RETRIEVE_DISTANCE)
        ret.append(time.perf_counter() - t)
        ret_cpu.append(time.process_time() - c)
    # Retrieval + verification: the big probe plus the real index's candidates, each verified, with
    # the candidate list padded to CANDIDATES with the nearest other indexed photos (the worst case:
    # every query verifies the full candidate list, features read from the store).
    both, both_cpu, verified = [], [], []
    for q in queries:
        _names, values, slots, radii = query_arrays(q.hashes)
        t, c = time.perf_counter(), time.process_time()
        big.probe(values, slots, radii, RETRIEVE_DISTANCE)
        cands = retrieve(index, q.hashes, 64, CANDIDATES)
        blobs = index.features_of([m.id for m in cands])
        from moderation.images.features import Features

        for m in cands:
            m.verification = verify_match(Features.from_bytes(blobs[m.id]), q, m)
        both.append(time.perf_counter() - t)
        both_cpu.append(time.process_time() - c)
        verified.append(len(cands))
    p = lambda xs, k: 1000 * float(np.percentile(xs, k))  # noqa: E731
    print(
        f"  retrieval ({len(queries)} real queries, {values.size}-ish lookups each): p50 {p(ret, 50):.2f} ms, "
        f"p99 {p(ret, 99):.2f} ms wall, CPU p99 {p(ret_cpu, 99):.2f} ms (bar 5 ms)"
    )
    print(
        f"  retrieval + verification of {min(verified)}-{max(verified)} candidates (query features included, "
        f"decode and hashing not): p50 {p(both, 50):.1f} ms, p99 {p(both, 99):.1f} ms wall, CPU p99 {p(both_cpu, 99):.1f} ms (bar 30 ms)"
    )
    big.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="folder with photos.csv and photos/ (e.g. ../shared/images)")
    ap.add_argument(
        "--sizes", default="1000000", help="index sizes for the speed test, comma-separated ('' skips)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fit", action="store_true", help="fit verify.WEIGHTS on the verified candidates")
    ap.add_argument("--skip-build-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="only the speed parts (no recall run)")
    ap.add_argument("--dump", type=Path, help="write every verified pair's evidence (JSON Lines) here")
    args = ap.parse_args()
    if not (args.folder / "photos.csv").exists():
        sys.exit(f"{args.folder} has no photos.csv")
    indexed, negatives = load_set(args.folder)
    print(
        f"photos: {len(indexed)} indexed originals, {len(negatives)} never-indexed look-alikes; seed {args.seed}"
    )
    cases = make_queries(indexed, negatives, args.seed)
    index, wall, cpu = build_index(indexed)
    print(
        f"queries: {len(cases)}; in-memory index built in {wall:.1f} s ({len(indexed) / cpu:.0f} images per CPU-second)"
    )
    collected: list | None = [] if (args.fit or args.dump) and not args.speed_only else None
    if not args.speed_only:
        report(evaluate(index, indexed, cases, collected))
    if args.dump and collected is not None:
        import json

        with args.dump.open("w", encoding="utf-8") as fh:
            for case, m in collected:
                row = {
                    "edit": case.edit,
                    "source": case.source,
                    "id": m.id,
                    "copy": m.id == case.source,
                    "distance": m.distance,
                    "view": m.view,
                    **m.verification.evidence(),
                    "inliers": m.verification.inliers,
                    "matches": m.verification.matches,
                    "reason": m.verification.reason,
                    "fills": m.verification.fills,
                    "differs": m.verification.differs,
                    "shown": m.verification.shown,
                    "colour_checked": m.verification.colour_checked,
                }
                fh.write(json.dumps(row) + "\n")
    if collected is not None:
        fit(collected, indexed)
    if not args.skip_build_speed:
        build_speed(indexed)
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        scale_speed(index, cases, size, args.seed)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
