"""OCR of listing images (moderation/ocr): reading, boxes, tiles, cache, noise, and every entry point.

Pictures are rendered here, small, with an installed CJK font (skipped without one); the models come
inside the rapidocr-onnxruntime wheel. One engine is shared by the whole module (loading takes ~1 s).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from moderation.checker import Checker
from moderation.images.sources import ImageSources
from moderation.ocr.cache import OcrCache
from moderation.ocr.engine import OcrEngine, OcrLine, tiles
from moderation.ocr.noise import keep_lines, repair
from moderation.ocr.stage import OcrStage
from moderation.rules.engine import RulesEngine
from moderation.schema import Listing

pytest.importorskip("rapidocr_onnxruntime")


def _cjk_font() -> tuple[str, int] | None:
    """(file, face index) of a simplified-Chinese font: Noto Sans CJK SC when installed."""
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh-cn", "file", "index", "family"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return None
    fonts = []
    for row in out.splitlines():
        parts = row.split(":")
        if len(parts) >= 3:
            index = parts[2].split("=")[-1]
            fonts.append((parts[0].strip(), int(index) if index.isdigit() else 0, parts[1]))
    fonts.sort(
        key=lambda f: (not ("Noto Sans CJK SC" in f[2] and "Bold" in f[0]), "Noto Sans CJK SC" not in f[2], f)
    )
    return (fonts[0][0], fonts[0][1]) if fonts else None


FONT = _cjk_font()
needs_font = pytest.mark.skipif(FONT is None, reason="no CJK font installed (apt-get install fonts-noto-cjk)")


def _font(size: int) -> ImageFont.FreeTypeFont:
    assert FONT is not None
    return ImageFont.truetype(FONT[0], size, index=FONT[1])


def render(
    lines: list[tuple[str, int, int, int]],
    size: tuple[int, int] = (480, 320),
    bg=(255, 255, 255),
    angle: float = 0.0,
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """A picture with ``(text, x, y, px)`` lines; returns it and each line's drawn box."""
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    boxes = []
    for text, x, y, px in lines:
        f = _font(px)
        d.text((x, y), text, font=f, fill=(200, 20, 30))
        boxes.append(tuple(int(v) for v in d.textbbox((x, y), text, font=f)))
    if angle:
        im = im.rotate(angle, expand=False, fillcolor=bg)
    return im, boxes  # type: ignore[return-value]


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def data_uri(im: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(im)).decode()


def overlap(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small else 0.0


class CountingEngine(OcrEngine):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def read(self, rgb):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().read(rgb)


@pytest.fixture(scope="module")
def ocr_engine() -> CountingEngine:
    e = CountingEngine()
    e.warm_up()
    return e


@pytest.fixture
def stage(ocr_engine: CountingEngine, tmp_path: Path) -> OcrStage:
    return OcrStage(
        sources=ImageSources(any_path=True), cache=OcrCache(tmp_path / "ocr.sqlite"), engine=ocr_engine
    )


# -- pure parts ---------------------------------------------------------------------------------------


def test_tiles_cover_long_pictures_with_overlap() -> None:
    assert tiles(750, 1000, 1.34, 0.2) == [(0, 0, 750, 1000, (False, False, False, False))]
    t = tiles(750, 3000, 1.34, 0.2)
    assert len(t) >= 3 and t[0][1] == 0 and t[-1][3] == 3000
    for a, b in itertools.pairwise(t):
        assert b[1] < a[3] and a[3] - b[1] >= 0.2 * 750 - 1  # consecutive tiles overlap by a promo line
    assert t[0][4] == (False, True, False, False) and t[-1][4] == (True, False, False, False)
    wide = tiles(3000, 750, 1.34, 0.2)
    assert len(wide) >= 3 and wide[-1][2] == 3000 and wide[0][4] == (False, False, False, True)


def line(text: str, conf: float = 0.99, y: int = 0) -> OcrLine:
    return OcrLine(text, conf, (0, y, 100, y + 30))


def test_noise_filter_drops_unsure_single_and_watermark_lines() -> None:
    kept = keep_lines(
        [
            line("全网最低价", 0.98),
            line("国家级", 0.5),  # unsure
            line("最", 0.99),  # a single character says nothing
            line("1", 0.99),
            line("Bcst", 0.85),  # Latin-only needs more confidence
            line("NO.1", 0.97),  # ... and is kept when sure (NO.1 is a ranking claim)
            line("SAMPLE", 0.99, 100),
            line("sample", 0.99, 200),
            line("SAMPLE", 0.98, 300),  # tiled watermark
            line("新品首发", 0.99, 400),
            line("新品首发", 0.99, 500),
            line("新品首发", 0.99, 600),  # Chinese repeats stay
        ]
    )
    assert [ln.text for ln in kept] == ["全网最低价", "NO.1", "新品首发", "新品首发", "新品首发"]


def test_dash_read_for_yi_is_repaired_without_moving_offsets() -> None:
    assert repair("销量第-") == "销量第一"
    assert repair("行业第—品牌") == "行业第一品牌"
    assert repair("最低温度-20℃") == "最低温度-20℃"  # a minus before a number stays
    assert repair("A-B") == "A-B"
    assert [ln.text for ln in keep_lines([line("销量第-", 0.95)])] == ["销量第一"]


# -- reading pictures ---------------------------------------------------------------------------------


@needs_font
def test_reads_promo_lines_with_their_boxes(stage: OcrStage) -> None:
    im, boxes = render([("全网最低价", 30, 40, 48), ("最高承重150kg", 30, 170, 40)])
    page, cached = stage.read_bytes(png(im))
    assert not cached and (page.width, page.height) == (480, 320)
    texts = [ln.text for ln in page.lines]
    assert "全网最低价" in texts and "最高承重150kg" in texts
    for text, box in zip(["全网最低价", "最高承重150kg"], boxes, strict=True):
        got = next(ln for ln in page.lines if ln.text == text)
        assert overlap(got.box, box) > 0.6 and got.confidence > 0.9


@needs_font
def test_violation_in_picture_is_a_finding_with_its_box_and_lookalikes_are_not(
    stage: OcrStage, engine: RulesEngine
) -> None:
    im, boxes = render(
        [
            ("限时抢购 全网最低价", 20, 30, 40),
            ("最高承重150kg", 20, 130, 40),
            ("本品不能代替药物", 20, 230, 36),
        ]
    )
    listing = Listing(id="sku-1", title="保温杯", images=[data_uri(im)])
    detection, texts = stage.detect(engine, listing)
    image_findings = [f for f in detection.findings if f.field == "image:0"]
    assert image_findings and {f.text for f in image_findings} >= {"全网最低价"}
    for f in image_findings:
        assert texts[0].text[f.start : f.end] == f.text  # offsets index the image's text field
        assert f.box is not None and overlap(f.box, boxes[0]) > 0.5  # the box is the offending line's
    assert not [f for f in detection.findings if f.field != "image:0"]

    lawful, _ = render(
        [("最高承重150kg", 20, 40, 44), ("本品不能代替药物", 20, 140, 40), ("新品首发", 20, 240, 44)]
    )
    detection, texts = stage.detect(engine, Listing(id="sku-2", title="保温杯", images=[data_uri(lawful)]))
    assert "新品首发" in texts[0].text
    assert detection.findings == []


@needs_font
def test_tiled_watermark_letters_raise_no_alarm(stage: OcrStage, engine: RulesEngine) -> None:
    im, _ = render([("最高承重150kg", 30, 130, 40)], size=(480, 400))
    d = ImageDraw.Draw(im)
    for x, y in [(20, 20), (260, 20), (20, 300), (260, 300), (140, 220)]:
        d.text((x, y), "BEST SHOP", font=_font(28), fill=(170, 170, 170))
    page, _ = stage.read_bytes(png(im))
    raw = "\n".join(ln.text for ln in page.lines)
    assert raw.count("BEST SHOP") >= 3  # read, and as text it would be a claim (absolute.english) ...
    assert engine.find(Listing(id="w", title="杯", description=raw))
    detection, texts = stage.detect(engine, Listing(id="w", title="杯", images=[data_uri(im)]))
    assert texts[0].text == "最高承重150kg" and detection.findings == []  # ... but it is a watermark


@needs_font
def test_slanted_text_is_read(stage: OcrStage, engine: RulesEngine) -> None:
    im, _ = render([("国家级工艺", 120, 130, 48)], angle=10)
    detection, _ = stage.detect(engine, Listing(id="s", title="茶杯", images=[data_uri(im)]))
    assert any(f.field == "image:0" and "国家级" in f.text for f in detection.findings)


@needs_font
def test_long_detail_page_is_read_in_tiles_once_per_line(stage: OcrStage, engine: RulesEngine) -> None:
    w, h = 600, 2400
    t = tiles(w, h, stage.engine.settings.tile_aspect, stage.engine.settings.tile_overlap)
    assert len(t) >= 3
    cut = t[0][3]  # the first tile's bottom edge: a line drawn across it must be found once, whole
    im, boxes = render(
        [("第一品牌 匠心打造", 30, 200, 44), ("治疗糖尿病", 30, cut - 25, 44), ("新品首发", 30, h - 200, 44)],
        size=(w, h),
    )
    listing = Listing(id="long", title="茶叶", category="food", images=[data_uri(im)])
    detection, texts = stage.detect(engine, listing)
    assert texts[0].text.count("治疗糖尿病") == 1
    hits = [f for f in detection.findings if f.field == "image:0"]
    assert any("第一品牌" in f.text for f in hits) and any("糖尿病" in f.text for f in hits)
    diabetes = next(f for f in hits if "糖尿病" in f.text)
    assert overlap(diabetes.box, boxes[1]) > 0.5


# -- cache ---------------------------------------------------------------------------------------------


@needs_font
def test_same_picture_is_never_read_twice(
    ocr_engine: CountingEngine, engine: RulesEngine, tmp_path: Path
) -> None:
    im, _ = render([("史上最低价", 30, 60, 48)])
    path = tmp_path / "a.png"
    path.write_bytes(png(im))
    copy = tmp_path / "renamed-copy.png"
    copy.write_bytes(path.read_bytes())
    cache_file = tmp_path / "cache.sqlite"
    stage = OcrStage(sources=ImageSources(any_path=True), cache=OcrCache(cache_file), engine=ocr_engine)
    before = ocr_engine.calls
    first, texts = stage.detect(engine, Listing(id="1", title="杯", images=[str(path)]))
    assert ocr_engine.calls == before + 1 and not texts[0].cached
    again, texts = stage.detect(
        engine, Listing(id="2", title="杯", images=[str(copy)])
    )  # same bytes, new name
    assert ocr_engine.calls == before + 1 and texts[0].cached
    assert [f.model_dump() for f in again.findings] == [f.model_dump() for f in first.findings]
    # a new process (fresh stage, nothing in memory) finds it on disk
    fresh = OcrStage(
        sources=ImageSources(any_path=True), cache=OcrCache(cache_file, memory_items=0), engine=ocr_engine
    )
    t0 = time.perf_counter()
    _, texts = fresh.detect(engine, Listing(id="3", title="杯", images=[str(path)]))
    assert texts[0].cached and ocr_engine.calls == before + 1
    assert time.perf_counter() - t0 < 0.25  # ~0.5 ms measured (docs/ocr.md); generous for a busy CI


# -- where pictures may come from --------------------------------------------------------------------


@needs_font
def test_image_sources_rules_apply_and_errors_do_not_fail_the_listing(
    ocr_engine: CountingEngine, engine: RulesEngine, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    im, _ = render([("全网最低价", 30, 60, 48)])
    (root / "ok.png").write_bytes(png(im))
    outside = tmp_path / "outside.png"
    outside.write_bytes(png(im))
    stage = OcrStage(sources=ImageSources(root), cache=OcrCache(None), engine=ocr_engine)
    listing = Listing(
        id="x",
        title="保温杯",
        images=[
            "ok.png",
            str(outside),
            "https://example.com/a.jpg",
            "../outside.png",
            "data:image/png;base64,////",
        ],
    )
    detection, texts = stage.detect(engine, listing)
    assert [t.error["code"] if t.error else None for t in texts] == [
        None,
        "path_not_allowed",
        "remote_not_supported",
        "path_not_allowed",
        "unreadable_image",
    ]
    assert {f.field for f in detection.findings} == {"image:0"}


# -- entry points -------------------------------------------------------------------------------------


@needs_font
def test_checker_option_and_default_off(
    ocr_engine: CountingEngine, engine: RulesEngine, tmp_path: Path
) -> None:
    im, _ = render([("国家级 全网最低价", 30, 60, 44)])
    path = tmp_path / "p.png"
    path.write_bytes(png(im))
    checker = Checker(engine, classifier=False, local_image_paths=True)
    checker._ocr_stage = OcrStage(
        sources=ImageSources(any_path=True), cache=OcrCache(None), engine=ocr_engine
    )
    listing = {"id": "sku-9", "title": "保温杯", "images": [str(path)]}
    calls = ocr_engine.calls
    off = checker.check(listing)
    assert (
        off.verdict == "pass" and off.findings == [] and ocr_engine.calls == calls
    )  # the text path is untouched
    on = checker.check(listing, ocr=True)
    assert on.verdict == "block"
    assert {f.field for f in on.findings} == {"image:0"} and all(f.box for f in on.findings)
    data = on.to_json_dict()
    assert data["findings"][0]["box"] == on.findings[0].box
    ocr = data["images"][0]["ocr"]
    assert "全网最低价" in ocr["text"] and ocr["lines"][0]["box"]
    assert "box" not in checker.check({"id": "t", "title": "全网最低价"}).to_json_dict()["findings"][0]


@needs_font
def test_api_check_reads_images_when_asked(
    ocr_engine: CountingEngine, db_url: str, rules_checker: Checker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moderation.api import create_app
    from moderation.api.settings import Settings

    monkeypatch.setattr(
        rules_checker,
        "_ocr_stage",
        OcrStage(sources=ImageSources.from_env(), cache=OcrCache(None), engine=ocr_engine),
    )
    from fastapi.testclient import TestClient

    app = create_app(db_url, rules_checker, settings=Settings.from_env(password_hashing="cheap"))
    accounts = app.state.accounts
    user = accounts.create_user("svc", "service", "correct horse battery")
    token = accounts.create_token(user.id, "t")
    im, _ = render([("销量第一", 30, 60, 48)])
    body = {"id": "sku-api", "title": "保温杯", "images": [data_uri(im)]}
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {token}"}
        plain = client.post("/v1/check", json=body, headers=h).json()
        assert plain["verdict"] == "pass" and plain["findings"] == []
        read = client.post("/v1/check", json={**body, "ocr": True}, headers=h)
        assert read.status_code == 200, read.text
        data = read.json()
        assert (
            data["verdict"] != "pass"
            and data["findings"][0]["field"] == "image:0"
            and data["findings"][0]["box"]
        )
        assert "销量第一" in data["images"][0]["ocr"]["text"]
        # queued: the console shows the picture with the finding's box outlined next to the findings
        lead = accounts.create_user("lead1", "lead", "correct horse battery")
        queued = client.post(
            "/v1/check",
            json={**body, "ocr": True, "enqueue": True},
            headers={"Authorization": f"Bearer {accounts.create_token(lead.id, 't')}"},
        ).json()
        item_id = queued["queue"]["item_id"]
        pic = client.get(f"/v1/items/{item_id}/images/0", headers=h)
        assert pic.status_code == 200 and pic.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(pic.content)).size == (480, 320)
        assert client.get(f"/v1/items/{item_id}/images/1", headers=h).status_code == 404
        assert client.get(f"/v1/items/{item_id}/images/0").status_code == 401
        login = client.get("/review/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        client.post(
            "/review/login",
            data={"username": "lead1", "password": "correct horse battery", "csrf_token": csrf},
            follow_redirects=False,
        )
        page = client.get(f"/review/items/{item_id}").text
        box = data["findings"][0]["box"]
        assert f'src="/v1/items/{item_id}/images/0"' in page and "图片中的文字" in page
        assert f'x="{box[0]}" y="{box[1]}" width="{box[2] - box[0]}"' in page
    app.state.queue.close()


@pytest.fixture(name="db_url")
def _db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@needs_font
def test_audit_with_ocr_boxes_findings_and_reuses_the_cache(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from moderation.audit import AuditOptions, run_audit

    pics = []
    for i, text in enumerate(["全网最低价", "最高承重150kg", "国家级工艺"]):
        im, _ = render([(text, 30, 60, 48)])
        p = tmp_path / f"p{i}.png"
        p.write_bytes(png(im))
        pics.append(p)
    cat = tmp_path / "cat.jsonl"
    rows = [
        {"id": "a", "title": "保温杯", "images": [str(pics[0])]},
        {"id": "b", "title": "保温杯", "images": [str(pics[1]), str(tmp_path / "missing.png")]},
        {"id": "c", "title": "保温杯", "images": [str(pics[2]), str(pics[0])]},
        {"id": "d", "title": "保温杯"},
    ]
    cat.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    cache = tmp_path / "ocr.sqlite"

    def audit(out: str, **extra: Any) -> Any:
        return run_audit(
            AuditOptions(
                input=cat,
                out=tmp_path / out,
                workers=1,
                classifier=False,
                progress=False,
                ocr=True,
                ocr_cache=str(cache),
                batch_size=2,
                **extra,
            )
        )

    res = audit("out")
    assert res.extra["ocr"]["images"] == 4  # of 5: the missing file is an error row, not a read picture
    f = pq.read_table(tmp_path / "out" / "findings").to_pylist()
    img = [r for r in f if r["field"].startswith("image:")]
    assert {(r["id"], r["field"]) for r in img} >= {("a", "image:0"), ("c", "image:0"), ("c", "image:1")}
    assert all(r["box"] and len(r["box"]) == 4 for r in img) and not [r for r in img if r["id"] == "b"]
    images = pq.read_table(tmp_path / "out" / "images").to_pylist()
    assert {r["ocr_error"] for r in images} == {None, "not_found"}
    assert any("最高承重150kg" in (r["ocr_text"] or "") for r in images)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["ocr"]["findings"] == len(img) and summary["ocr"]["runs"][0]["images_per_s"] > 0
    assert "图片中的文字" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    # a re-audit into a new folder reads nothing again
    again = audit("again")
    assert again.extra["ocr"]["cached"] == again.extra["ocr"]["images"] == 4
    # --enqueue: the queued result keeps the boxes and the text read, for the console
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    queued = audit("queued", enqueue=True, database_url=url)
    assert queued.enqueued == 2  # a and c
    db = create_engine(url)
    with db.connect() as conn:
        results = [
            (json.loads(r) if isinstance(r, str) else r)["check"]
            for r in conn.execute(text("SELECT result FROM signals")).scalars()
        ]
    db.dispose()
    boxed = [f for r in results for f in r["findings"] if f["field"].startswith("image:")]
    assert boxed and all(len(f["box"]) == 4 for f in boxed)
    ocr = [im["ocr"] for r in results for im in r["images"]]
    assert all(o["width"] == 480 and o["height"] == 320 and o["text"] for o in ocr)
    # a checkpoint made without OCR is not continued with it
    from moderation.audit import AuditError

    run_audit(AuditOptions(input=cat, out=tmp_path / "plain", workers=1, classifier=False, progress=False))
    with pytest.raises(AuditError, match="ocr"):
        run_audit(
            AuditOptions(
                input=cat,
                out=tmp_path / "plain",
                workers=1,
                classifier=False,
                progress=False,
                ocr=True,
                ocr_cache=str(cache),
            )
        )


@needs_font
def test_cli_check_ocr_is_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from moderation.cli import main

    monkeypatch.setenv("MODERATION_OCR_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.delenv("MODERATION_OCR", raising=False)
    im, _ = render([("全网最低价", 30, 60, 48)])
    pic = tmp_path / "p.png"
    pic.write_bytes(png(im))
    listings = tmp_path / "in.jsonl"
    listings.write_text(
        json.dumps({"id": "1", "title": "保温杯", "images": [str(pic)]}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    off = runner.invoke(main, ["check", "--input", str(listings), "--no-classifier"])
    assert off.exit_code == 0 and json.loads(off.output)["findings"] == []
    on = runner.invoke(main, ["check", "--input", str(listings), "--no-classifier", "--ocr"])
    result = json.loads(on.output)
    assert result["findings"] and result["findings"][0]["field"] == "image:0" and result["findings"][0]["box"]
    human = runner.invoke(main, ["check", "保温杯", "--image", str(pic), "--ocr", "--no-classifier"])
    assert human.exit_code == 0 and "image:0" in human.output and "框 [" in human.output
