"""Benchmark of the OCR stage (moderation/ocr): recall of violating promo lines, false alarms, speed.

Renders promo text onto real product photos (a folder given with --photos; never copied anywhere but
a scratch folder) and onto long detail-page layouts, then runs the OCR stage and the rule packs on each
picture as the text of field ``image:0`` of a neutral listing:

- **recall**: share of rendered violating lines (全网最低价, 国家级, 治疗糖尿病, 第一品牌, ... alone or
  inside longer promo copy) with a finding whose box overlaps the line;
- **false alarms**: share of lawful pictures (only lawful look-alikes such as 最高承重150kg,
  本品不能代替药物, 新品首发 rendered, plus whatever the photo shows) with any finding in their text;
- **speed**: decode + OCR per 750x1000 picture on one core (the process pinned to one CPU, one ONNX
  thread), p50/p90 of wall and CPU time; the same-run baseline is rapidocr-onnxruntime's own pipeline
  with its default settings (detector limit 736 on the short side, direction classifier, recognition
  batches padded to 320) on the same pictures, also on one thread;
- **cached re-check**: a whole check of a listing whose picture was read before (file read, SHA-256,
  cache hit, rules), from the in-process LRU and from the SQLite file alone;
- **audit**: ``moderation audit --ocr`` subprocesses on catalogues of distinct pictures, images/s and
  the peak RSS of the whole process tree at two sizes (flat memory), then a second audit of the same
  catalogue into a new folder with the warm cache.

Every phrase is first checked as typed text: a violating line must get a finding and a lawful one none
(lines that do not are reported and left out), so the figures measure reading, not the rules.

    .venv/bin/python scripts/bench_ocr.py --photos ../shared/images/photos
    .venv/bin/python scripts/bench_ocr.py --photos ../shared/images/photos --images 60 --long 6 --skip-audit
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VIOLATING = [
    "全网最低价",
    "国家级",
    "治疗糖尿病",
    "第一品牌",
    "销量第一",
    "史上最低价",
    "顶级品质",
    "根治失眠",
    "100%有效",
    "降血压",
    "抗癌",
    "最好的选择",
    "全网销量冠军",
    "国家级产品",
    "质量最好",
    "永不褪色",
    "月销10万件",
    "最佳效果",
    "包治百病",
    "行业第一品牌",
]
LAWFUL = [
    "最高承重150kg",
    "本品不能代替药物",
    "新品首发",
    "第一次使用请先清洗",
    "最近上新",
    "唯一的缺点是太好看",
    "限时优惠",
    "满199包邮",
    "买一送一",
    "保温12小时",
    "304不锈钢内胆",
    "大容量 便携",
    "最大容量1.5L",
    "第一步 打开盖子",
    "最低温度-20℃",
    "新款上市",
    "好评如潮",
    "官方正品",
    "厂家直销",
    "七天无理由退换",
    "食品级材质",
    "加厚防摔",
    "送礼佳品",
    "适合办公室",
    "清仓特价",
    "承重最高200斤",
    "本品不是药品",
]
FILLERS = ["限时抢购", "品质保证", "匠心打造", "今日特惠", "官方直营", "放心选购", "爆款热卖"]
SPEC_LINES = [
    "材质：304不锈钢",
    "容量：500ml",
    "产地：浙江永康",
    "重量：约350g",
    "颜色：象牙白",
    "尺寸：7.5×7.5×22cm",
    "保温时长：约12小时",
    "适用人群：成人",
    "包装清单：杯身×1 杯盖×1",
]
PALETTE_DARK = [(200, 20, 30), (20, 20, 20), (30, 60, 160), (120, 20, 120), (0, 110, 60), (190, 80, 0)]
PALETTE_LIGHT = [(255, 255, 255), (255, 230, 60), (255, 245, 200), (200, 255, 255)]
BANNERS = [
    ((210, 20, 30), (255, 255, 255)),
    ((255, 215, 0), (180, 0, 0)),
    ((20, 20, 20), (255, 215, 0)),
    ((30, 90, 200), (255, 255, 255)),
    ((255, 255, 255), (200, 20, 30)),
]


# -- fonts and rendering ----------------------------------------------------------------------------


def cjk_fonts() -> list[tuple[str, int, str]]:
    """(file, face index, name) of every installed font with simplified Chinese glyphs (one face per family)."""
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh-cn", "file", "index", "family"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return []
    fonts: dict[str, tuple[str, int, str]] = {}
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) < 3:
            continue
        path, family = parts[0], parts[1].split(",")[0].strip()
        try:
            index = int(parts[2].split("=")[-1])
        except ValueError:
            index = 0
        if any(x in family for x in ("Mono", "Sharp", " TW", " HK", " JP", " KR", " TC")):
            continue
        style = "Bold" if "Bold" in path else ""
        fonts.setdefault(f"{family} {style}".strip(), (path, index, f"{family} {style}".strip()))
    return sorted(fonts.values(), key=lambda f: f[2])


@dataclass
class Line:
    text: str
    violating: bool
    box: tuple[int, int, int, int]
    font: str
    size: int
    angle: float
    style: str


@dataclass
class Sample:
    name: str
    kind: str  # "single" | "long" | "plain"
    image: Image.Image
    lines: list[Line] = field(default_factory=list)

    @property
    def lawful(self) -> bool:
        return not any(ln.violating for ln in self.lines)


def _font(spec: tuple[str, int, str], size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(spec[0], size, index=spec[1])


def cover(photo: Image.Image, w: int, h: int) -> Image.Image:
    s = max(w / photo.width, h / photo.height)
    im = photo.resize(
        (max(w, round(photo.width * s)), max(h, round(photo.height * s))), Image.Resampling.LANCZOS
    )
    x, y = (im.width - w) // 2, (im.height - h) // 2
    return im.crop((x, y, x + w, y + h))


def draw_line(
    canvas: Image.Image,
    text: str,
    font: tuple[str, int, str],
    size: int,
    x: int,
    y: int,
    rng: random.Random,
    angle: float = 0.0,
    style: str | None = None,
    avoid: list[tuple[int, int, int, int]] | None = None,
) -> tuple[tuple[int, int, int, int], str] | None:
    """Draw ``text`` at (x, y) and return its box in canvas pixels and the style used.

    With ``avoid``, the line is moved (random tries) until it keeps clear of those boxes; None when
    there is no room."""
    f = _font(font, size)
    left, top, right, bottom = f.getbbox(text)
    tw, th = right - left, bottom - top
    pad = max(6, size // 4)
    style = style or rng.choice(["plain", "plain", "stroke", "banner"])
    for attempt in range(40):
        if attempt:
            x = rng.randint(0, max(1, canvas.width - tw - 2 * pad))
            y = rng.randint(0, max(1, canvas.height - th - 2 * pad))
        layer = Image.new("RGBA", (tw + 2 * pad, th + 2 * pad), (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        region = canvas.crop(
            (x, y, min(canvas.width, x + tw + 2 * pad), min(canvas.height, y + th + 2 * pad))
        )
        lum = float(np.asarray(region.convert("L")).mean()) if region.width and region.height else 128.0
        if style == "banner":
            bg, fg = rng.choice(BANNERS)
            d.rounded_rectangle((0, 0, layer.width - 1, layer.height - 1), radius=pad, fill=(*bg, 235))
            d.text((pad - left, pad - top), text, font=f, fill=(*fg, 255))
        elif style == "stroke":
            fg = rng.choice(PALETTE_DARK if lum > 110 else PALETTE_LIGHT)
            sc = (255, 255, 255) if lum > 110 else (0, 0, 0)
            d.text(
                (pad - left, pad - top),
                text,
                font=f,
                fill=(*fg, 255),
                stroke_width=max(1, size // 18),
                stroke_fill=(*sc, 255),
            )
        else:
            fg = rng.choice(PALETTE_DARK if lum > 128 else PALETTE_LIGHT)
            d.text((pad - left, pad - top), text, font=f, fill=(*fg, 255))
        if angle:
            layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        px = max(0, min(x, canvas.width - layer.width))
        py = max(0, min(y, canvas.height - layer.height))
        alpha = np.asarray(layer)[:, :, 3]
        ys, xs = np.nonzero(alpha > 40)
        box = (px + int(xs.min()), py + int(ys.min()), px + int(xs.max()) + 1, py + int(ys.max()) + 1)
        grown = (box[0] - 8, box[1] - 8, box[2] + 8, box[3] + 8)
        if avoid and any(_overlap(grown, b) > 0 for b in avoid):
            continue
        canvas.paste(layer, (px, py), layer)
        return box, style
    return None


def promo_text(phrase: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return phrase
    if r < 0.7:
        return f"{phrase} {rng.choice(FILLERS)}"
    return f"{rng.choice(FILLERS)} {phrase}"


def single_sample(
    i: int,
    photo: Image.Image,
    fonts: list,
    rng: random.Random,
    violating: bool,
    vio_lines: list[str],
    law_lines: list[str],
) -> Sample:
    im = cover(photo.convert("RGB"), 750, 1000)
    n_vio = rng.choice([1, 1, 2]) if violating else 0
    n_law = rng.choice([0, 1, 2]) if violating else rng.choice([1, 2, 3])
    texts = [(rng.choice(vio_lines), True) for _ in range(n_vio)] + [
        (rng.choice(law_lines), False) for _ in range(n_law)
    ]
    rng.shuffle(texts)
    sample = Sample(f"single-{i:04d}", "single", im)
    placed: list[tuple[int, int, int, int]] = []
    for text, vio in texts:
        font = rng.choice(fonts)
        size = rng.choice([28, 34, 40, 48, 56, 64, 72])
        angle = rng.uniform(4, 15) * rng.choice([-1, 1]) if rng.random() < 0.3 else 0.0
        drawn = draw_line(
            im, text, font, size, rng.randint(0, 300), rng.randint(0, 900), rng, angle, avoid=placed
        )
        if drawn is None:
            continue
        box, style = drawn
        placed.append(box)
        sample.lines.append(Line(text, vio, box, font[2], size, round(angle, 1), style))
    return sample


def long_sample(
    i: int,
    photos: list[Image.Image],
    fonts: list,
    rng: random.Random,
    vio_lines: list[str],
    law_lines: list[str],
    violating: bool,
) -> Sample:
    """A 750-wide detail page: photo blocks, banners of promo copy, a spec table, 3000-4500 px tall."""
    height = rng.choice([3000, 3600, 4200])
    im = Image.new("RGB", (750, height), (255, 255, 255))
    sample = Sample(f"long-{i:03d}", "long", im)
    y = 0
    n_vio_left = rng.choice([1, 2, 3]) if violating else 0
    while y < height - 300:
        kind = rng.choice(["photo", "banner", "banner", "spec"])
        if kind == "photo":
            h = min(rng.choice([600, 750, 900]), height - y)
            im.paste(cover(rng.choice(photos).convert("RGB"), 750, h), (0, y))
            if rng.random() < 0.5:  # a caption on the photo
                vio = n_vio_left > 0 and rng.random() < 0.5
                text = rng.choice(vio_lines) if vio else rng.choice(law_lines)
                n_vio_left -= vio
                font, size = rng.choice(fonts), rng.choice([36, 44, 56])
                box, style = draw_line(
                    im, text, font, size, rng.randint(20, 200), y + rng.randint(20, max(21, h - 120)), rng
                )  # type: ignore[misc]
                sample.lines.append(Line(text, vio, box, font[2], size, 0.0, style))
            y += h
        elif kind == "banner":
            h = rng.choice([260, 320, 400])
            bg = rng.choice([(250, 240, 230), (30, 30, 30), (200, 20, 30), (245, 245, 245), (255, 220, 120)])
            ImageDraw.Draw(im).rectangle((0, y, 749, y + h), fill=bg)
            yy = y + 30
            while yy < y + h - 80:
                vio = n_vio_left > 0 and rng.random() < 0.5
                text = rng.choice(vio_lines) if vio else rng.choice(law_lines)
                n_vio_left -= vio
                font, size = rng.choice(fonts), rng.choice([40, 48, 60, 72])
                box, style = draw_line(im, text, font, size, rng.randint(20, 150), yy, rng, style="plain")  # type: ignore[misc]
                sample.lines.append(Line(text, vio, box, font[2], size, 0.0, style))
                yy = box[3] + 30
            y += h
        else:
            rows = rng.sample(SPEC_LINES, rng.randint(3, 6))
            font, size = rng.choice(fonts), rng.choice([24, 26, 28])
            yy = y + 20
            for row in rows:
                box, style = draw_line(im, row, font, size, 60, yy, rng, style="plain")  # type: ignore[misc]
                sample.lines.append(Line(row, False, box, font[2], size, 0.0, style))
                yy = box[3] + 18
            y = yy + 20
    while n_vio_left > 0:  # make sure a violating page has its violating lines
        vio_text = rng.choice(vio_lines)
        font, size = rng.choice(fonts), 56
        box, style = draw_line(
            im,
            vio_text,
            font,
            size,
            40,
            rng.randint(100, height - 200),
            rng,  # type: ignore[misc]
            style="banner",
        )
        sample.lines = [ln for ln in sample.lines if _overlap(ln.box, box) < 0.1]
        sample.lines.append(Line(vio_text, True, box, font[2], size, 0.0, style))
        n_vio_left -= 1
    return sample


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over the smaller box."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# -- evaluation -------------------------------------------------------------------------------------


def text_ground_truth(engine, phrases: list[str], violating: bool) -> tuple[list[str], list[str]]:
    """Phrases whose typed form the rules judge as labelled, and those they do not."""
    from moderation.schema import Listing

    good, bad = [], []
    for p in phrases:
        fired = bool(
            [f for f in engine.find(Listing(id="t", title="商品", description=p)) if f.field == "description"]
        )
        (good if fired == violating else bad).append(p)
    return good, bad


def evaluate(samples: list[Sample], payloads: list[bytes], read, rules_engine, label: str) -> dict:
    """Run ``read(bytes) -> OcrPage`` on every sample; recall, false alarms and timings."""
    from moderation.ocr.noise import keep_lines
    from moderation.ocr.stage import ImageText, attach_boxes
    from moderation.schema import Listing

    walls, cpus = [], []
    vio_total = vio_found = 0
    lawful_total = lawful_flagged = 0
    per_style: dict[str, list[int]] = {}
    per_font: dict[str, list[int]] = {}
    misses: list[str] = []
    alarms: list[str] = []
    stray = 0
    for sample, data in zip(samples, payloads, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        page = read(data)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        text = ImageText(0, sample.name, keep_lines(page.lines), page.width, page.height)
        listing = Listing(id=sample.name, title="商品")
        det = rules_engine.detect(listing, extra_fields={"image:0": text.text} if text.text else {})
        findings = [f for f in attach_boxes(list(det.findings), [text]) if f.field == "image:0"]
        for ln in sample.lines:
            if not ln.violating:
                continue
            hit = any(f.box and _overlap(tuple(f.box), ln.box) >= 0.3 for f in findings)
            vio_total += 1
            vio_found += hit
            slant = "slanted" if ln.angle else "upright"
            for key, store in ((f"{ln.style}/{slant}", per_style), (ln.font, per_font)):
                store.setdefault(key, [0, 0])
                store[key][0] += hit
                store[key][1] += 1
            if not hit and len(misses) < 25:
                read_near = [x.text for x in page.lines if _overlap(x.box, ln.box) >= 0.3]
                misses.append(
                    f"{sample.name}: {ln.text!r} ({ln.font} {ln.size}px {ln.angle}° {ln.style}) read as {read_near}"
                )
        for f in findings:
            if f.box and not any(
                ln.violating and _overlap(tuple(f.box), ln.box) >= 0.3 for ln in sample.lines
            ):
                stray += 1
                if len(alarms) < 25 and not sample.lawful:
                    alarms.append(
                        f"{sample.name} (violating picture), off its violating lines: {f.text!r} {f.rule} "
                        f"in {text.text!r}"
                    )
        if sample.lawful:
            lawful_total += 1
            if findings:
                lawful_flagged += 1
                if len(alarms) < 25:
                    alarms.append(f"{sample.name}: {[(f.text, f.rule) for f in findings]} in {text.text!r}")
    return {
        "label": label,
        "pictures": len(samples),
        "violating_lines": vio_total,
        "recall": round(vio_found / vio_total, 4) if vio_total else None,
        "lawful_pictures": lawful_total,
        "false_alarm_rate": round(lawful_flagged / lawful_total, 4) if lawful_total else None,
        "lawful_flagged": lawful_flagged,
        "findings_off_violating_lines": stray,
        "wall_p50_ms": round(1000 * statistics.median(walls), 1) if walls else None,
        "wall_p90_ms": round(1000 * float(np.percentile(walls, 90)), 1) if walls else None,
        "cpu_p50_ms": round(1000 * statistics.median(cpus), 1) if cpus else None,
        "cpu_p90_ms": round(1000 * float(np.percentile(cpus, 90)), 1) if cpus else None,
        "recall_by_style": {k: f"{v[0]}/{v[1]}" for k, v in sorted(per_style.items())},
        "recall_by_font": {k: f"{v[0]}/{v[1]}" for k, v in sorted(per_font.items())},
        "misses": misses,
        "false_alarms": alarms,
    }


def baseline_reader():
    """rapidocr-onnxruntime's own pipeline with its default settings, one ONNX thread."""
    from rapidocr_onnxruntime import RapidOCR

    from moderation.ocr.engine import OcrLine, OcrPage
    from moderation.ocr.stage import decode

    ocr = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def read(data: bytes):
        rgb, _ = decode(data, 10**6)
        res, _ = ocr(np.ascontiguousarray(rgb[:, :, ::-1]))
        lines = []
        for quad, text, conf in res or []:
            q = np.asarray(quad)
            lines.append(
                OcrLine(
                    text,
                    float(conf),
                    (int(q[:, 0].min()), int(q[:, 1].min()), int(q[:, 0].max()), int(q[:, 1].max())),
                )
            )
        return OcrPage(rgb.shape[1], rgb.shape[0], tuple(lines))

    return read


# -- audit ------------------------------------------------------------------------------------------


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            ppid = int(parts[1])
            rss[int(d)] = int(parts[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_audit(catalogue: Path, out: Path, cache: Path, workers: int) -> dict:
    cmd = [
        str(REPO / ".venv" / "bin" / "moderation"),
        "audit",
        str(catalogue),
        "--out",
        str(out),
        "--ocr",
        "--ocr-cache",
        str(cache),
        "--no-classifier",
        "--workers",
        str(workers),
        "--quiet",
        "--batch-size",
        "20",
    ]
    import resource

    peak = 0
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            stop.wait(0.2)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    _stdout, stderr = proc.communicate()
    stop.set()
    th.join()
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (
        cpu1.ru_stime - cpu0.ru_stime
    )  # the whole tree, start-up included
    if proc.returncode != 0:
        raise RuntimeError(f"audit failed: {stderr[-2000:]}")
    from moderation.audit.checkpoint import Manifest

    m = Manifest(out)
    try:
        runs = m.get("ocr_runs") or []
    finally:
        m.close()
    last = runs[-1] if runs else {}
    return {
        "images": last.get("images"),
        "cached": last.get("cached"),
        "images_per_s": last.get("images_per_s"),
        "run_seconds": last.get("seconds"),
        "end_to_end_s": round(seconds, 1),
        "cpu_s": round(cpu, 1),
        "images_per_cpu_s": round((last.get("images") or 0) / cpu, 3) if cpu > 0 else None,
        "load_avg": round(os.getloadavg()[0], 1),
        "peak_tree_rss_mb": round(peak / 1024),
        "line": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


def calibrate() -> dict:
    """How busy the machine is: a 10M-iteration Python loop's wall and CPU time on this core."""
    t, c = time.perf_counter(), time.process_time()
    x = 0
    for i in range(10_000_000):
        x += i
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "loop_wall_s": round(wall, 3),
        "loop_cpu_s": round(cpu, 3),
        "cpu_share": round(cpu / wall, 2),
        "load_avg": round(os.getloadavg()[0], 1),
    }


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--photos",
        type=Path,
        default=REPO.parent / "shared" / "images" / "photos",
        help="folder of real product photos (read only)",
    )
    ap.add_argument("--images", type=int, default=200, help="750x1000 pictures (half violating, half lawful)")
    ap.add_argument("--plain", type=int, default=40, help="photos without rendered text (false-alarm floor)")
    ap.add_argument("--long", type=int, default=20, help="long detail pages (750 wide, 3000-4200 tall)")
    ap.add_argument(
        "--baseline", type=int, default=60, help="pictures also read with rapidocr's defaults (0: skip)"
    )
    ap.add_argument("--audit-sizes", default="100,300", help="audit catalogue sizes in pictures ('' to skip)")
    ap.add_argument("--workers", type=int, default=2, help="audit workers")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--keep", type=Path, default=None, help="keep the rendered pictures in this folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    ap.add_argument("--det-side", type=int, default=None, help="detector input size (default: OcrSettings)")
    ap.add_argument("--rec-batch", type=int, default=None, help="recognition batch (default: OcrSettings)")
    ap.add_argument("--rec-min-width", type=int, default=None, help="recognition min width (PaddleOCR: 320)")
    args = ap.parse_args()

    if not args.photos.is_dir():
        sys.exit(f"no photo folder at {args.photos} (give --photos DIR)")
    fonts = cjk_fonts()
    if not fonts:
        sys.exit("no CJK font found (apt-get install -y fonts-noto-cjk)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from moderation.images.sources import ImageSources
    from moderation.ocr.cache import OcrCache
    from moderation.ocr.engine import OcrSettings
    from moderation.ocr.stage import OcrStage
    from moderation.rules.engine import RulesEngine
    from moderation.schema import Listing

    rng = random.Random(args.seed)
    engine = RulesEngine.load()
    vio_phr, vio_bad = text_ground_truth(engine, VIOLATING, True)
    law_phr, law_bad = text_ground_truth(engine, LAWFUL, False)
    vio_lines, vio_bad2 = text_ground_truth(
        engine, sorted({promo_text(p, rng) for p in vio_phr for _ in range(3)}), True
    )
    law_lines = law_phr
    print(f"fonts: {', '.join(f[2] for f in fonts)}")
    print(
        f"phrases: {len(vio_lines)} violating lines from {len(vio_phr)} phrases, {len(law_lines)} lawful; "
        f"left out (typed text not judged as labelled): {vio_bad + vio_bad2 + law_bad}"
    )

    photo_paths = sorted(
        p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
    )
    photos = [Image.open(p).convert("RGB") for p in photo_paths]
    scratch = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    try:
        t0 = time.perf_counter()
        singles = [
            single_sample(
                i,
                photos[i % len(photos)],
                fonts,
                rng,
                violating=i % 2 == 0,
                vio_lines=vio_lines,
                law_lines=law_lines,
            )
            for i in range(args.images)
        ]
        plain = [
            Sample(f"plain-{i:03d}", "plain", cover(photos[(7 * i + 3) % len(photos)], 750, 1000))
            for i in range(args.plain)
        ]
        longs = [
            long_sample(i, photos, fonts, rng, vio_lines, law_lines, violating=i % 2 == 0)
            for i in range(args.long)
        ]
        print(
            f"rendered {len(singles)} + {len(plain)} plain 750x1000 pictures and {len(longs)} long pages "
            f"in {time.perf_counter() - t0:.1f} s (scratch {scratch})"
        )
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for s in singles[:20] + longs[:4]:
                s.image.save(args.keep / f"{s.name}.jpg", quality=90)
        pay_single = [jpeg_bytes(s.image) for s in singles]
        pay_plain = [jpeg_bytes(s.image) for s in plain]
        pay_long = [jpeg_bytes(s.image) for s in longs]

        tuned = {
            k: v
            for k, v in (
                ("det_side", args.det_side),
                ("rec_batch", args.rec_batch),
                ("rec_min_width", args.rec_min_width),
            )
            if v is not None
        }
        settings = OcrSettings(threads=1, **tuned)
        stage = OcrStage(
            sources=ImageSources(any_path=True), cache=OcrCache(None, memory_items=0), settings=settings
        )
        stage.engine.warm_up()
        stage.read_bytes(pay_single[0])  # first run of each session allocates

        def read_uncached(data: bytes):
            return stage.read_bytes(data)[0]

        results = {
            "settings": settings.key(),
            "fonts": [f[2] for f in fonts],
            "calibration_before": calibrate(),
        }
        print(f"machine before: {results['calibration_before']}")
        results["single"] = evaluate(singles, pay_single, read_uncached, engine, "tuned, 750x1000")
        results["plain"] = evaluate(
            plain, pay_plain, read_uncached, engine, "tuned, photos without rendered text"
        )
        results["long"] = evaluate(longs, pay_long, read_uncached, engine, "tuned, long detail pages")
        if args.baseline:
            n = min(args.baseline, len(singles))
            base = baseline_reader()
            base(pay_single[0])
            results["baseline"] = evaluate(
                singles[:n], pay_single[:n], base, engine, f"rapidocr defaults (1 thread), first {n} 750x1000"
            )
            results["tuned_same_subset"] = evaluate(
                singles[:n], pay_single[:n], read_uncached, engine, f"tuned, same first {n} 750x1000"
            )
        results["calibration_after"] = calibrate()
        print(
            f"machine after: {results['calibration_after']} (cpu_share: the share of a core this process got)"
        )
        for key in ("single", "plain", "long", "baseline", "tuned_same_subset"):
            if key in results:
                r = results[key]
                print(
                    f"\n[{r['label']}] pictures {r['pictures']}: recall {r['recall']} of {r['violating_lines']} "
                    f"violating lines; false alarms {r['lawful_flagged']}/{r['lawful_pictures']} lawful pictures "
                    f"({r['false_alarm_rate']}); findings off violating lines {r['findings_off_violating_lines']}; "
                    f"wall p50 {r['wall_p50_ms']} ms p90 {r['wall_p90_ms']} ms; cpu p50 {r['cpu_p50_ms']} ms "
                    f"p90 {r['cpu_p90_ms']} ms"
                )
                if r["recall_by_style"]:
                    print(f"  recall by style: {r['recall_by_style']}")
                    print(f"  recall by font: {r['recall_by_font']}")
                for m in r["misses"][:10]:
                    print(f"  miss: {m}")
                for a in r["false_alarms"][:10]:
                    print(f"  alarm: {a}")

        # cached re-check: whole check of a listing whose picture was read before
        files = scratch / "pics"
        files.mkdir()
        for s, data in zip(singles[:50], pay_single[:50], strict=True):
            (files / f"{s.name}.jpg").write_bytes(data)
        cache_path = scratch / "cache.sqlite"
        warm = OcrStage(sources=ImageSources(any_path=True), cache=OcrCache(cache_path), engine=stage.engine)
        listings = [
            Listing(id=s.name, title="保温杯", images=[str(files / f"{s.name}.jpg")]) for s in singles[:50]
        ]
        for li in listings:
            warm.detect(engine, li)
        times_mem = []
        for _ in range(5):
            for li in listings:
                t = time.perf_counter()
                warm.detect(engine, li)
                times_mem.append(time.perf_counter() - t)
        disk = OcrStage(
            sources=ImageSources(any_path=True),
            cache=OcrCache(cache_path, memory_items=0),
            engine=stage.engine,
        )
        times_disk = []
        for _ in range(5):
            for li in listings:
                t = time.perf_counter()
                disk.detect(engine, li)
                times_disk.append(time.perf_counter() - t)
        times_text = []
        plain_listing = [Listing(id=li.id, title=li.title) for li in listings]
        for _ in range(5):
            for li in plain_listing:
                t = time.perf_counter()
                engine.detect(li)
                times_text.append(time.perf_counter() - t)
        results["cached"] = {
            "recheck_memory_p50_ms": round(1000 * statistics.median(times_mem), 3),
            "recheck_memory_p99_ms": round(1000 * float(np.percentile(times_mem, 99)), 3),
            "recheck_sqlite_p50_ms": round(1000 * statistics.median(times_disk), 3),
            "recheck_sqlite_p99_ms": round(1000 * float(np.percentile(times_disk, 99)), 3),
            "same_listing_text_only_p50_ms": round(1000 * statistics.median(times_text), 3),
        }
        print(f"\n[cached re-check, 50 listings x 5, one picture each] {results['cached']}")

        sizes = [int(x) for x in args.audit_sizes.split(",") if x.strip()]
        if sizes:
            if not args.no_pin and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            audits = []
            for size in sizes:
                folder = scratch / f"audit-{size}"
                folder.mkdir()
                cat = folder / "catalogue.jsonl"
                arng = random.Random(size)
                with cat.open("w", encoding="utf-8") as fh:
                    for i in range(size):
                        s = single_sample(
                            10_000 + i,
                            photos[arng.randrange(len(photos))],
                            fonts,
                            arng,
                            violating=i % 2 == 0,
                            vio_lines=vio_lines,
                            law_lines=law_lines,
                        )
                        path = folder / f"p{i:05d}.jpg"
                        s.image.save(path, quality=90)
                        fh.write(
                            json.dumps(
                                {"id": f"a{size}-{i}", "title": "保温杯", "images": [str(path)]},
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                first = run_audit(cat, folder / "out", folder / "cache.sqlite", args.workers)
                again = run_audit(cat, folder / "out-again", folder / "cache.sqlite", args.workers)
                audits.append({"pictures": size, "first": first, "re_audit_warm_cache": again})
                print(
                    f"\n[audit --ocr, {size} distinct pictures, {args.workers} workers] first: {first}\n"
                    f"  re-audit into a new folder with the warm cache: {again}"
                )
            results["audit"] = audits
        if args.json:
            args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
