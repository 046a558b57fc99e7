"""The audit report's table of every flagged listing (paged, filterable, CSV export), sellers ranked by
rate with a minimum count, and the reason a listing with no rule finding was flagged (issue 17)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from browser_support import ARGS, CHROMIUM

from moderation.audit.batch import LISTINGS_SCHEMA
from moderation.audit.report import MIN_SELLER_LISTINGS, aggregate, flagged_listings, render_html


def _listing(
    i: int, seller: str, verdict: str, risk: float, rules: list[str], **kw: object
) -> dict[str, object]:
    row: dict[str, object] = {name: None for name in LISTINGS_SCHEMA.names}
    row.update(
        batch=0,
        source="cat.jsonl",
        line=i,
        id=f"sku-{i:03d}",
        seller_id=seller,
        category="general",
        title=f"商品 {i}",
        verdict=verdict,
        risk=risk,
        n_findings=len(rules),
        families=[],
        rules=rules,
        n_images=0,
        image_errors=0,
        copied_images=0,
    )
    if rules:
        row["families"] = ["absolute_claims"]
        row["max_severity"] = "critical"
    row.update(kw)
    return row


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    rows = []
    # s-big: 40 listings, 10 flagged (25 %); s-bad: 5 listings, 4 flagged (80 %); s-one: 1 of 1 (too few)
    for i in range(40):
        rows.append(
            _listing(
                i,
                "s-big",
                "review" if i < 10 else "pass",
                0.5 if i < 10 else 0.1,
                ["absolute.best"] if i < 10 else [],
            )
        )
    for i in range(40, 45):
        rows.append(
            _listing(
                i,
                "s-bad",
                "block" if i < 44 else "pass",
                0.97 if i < 44 else 0.05,
                ["absolute.best"] if i < 44 else [],
            )
        )
    spans = [{"field": "title", "start": 0, "end": 2, "text": "神药", "weight": 0.42}]
    rows.append(
        _listing(
            45,
            "s-one",
            "review",
            0.88,
            [],
            classifier_score=0.88,
            classifier_explanation=json.dumps(spans, ensure_ascii=False),
            title="加我微信 abc12345 神药",
        )
    )
    (tmp_path / "listings").mkdir()
    pq.write_table(
        pa.Table.from_pylist(rows, schema=LISTINGS_SCHEMA), tmp_path / "listings" / "part-000000.parquet"
    )
    return tmp_path


def test_sellers_by_rate_with_a_minimum_count(audit_dir: Path) -> None:
    s = aggregate(audit_dir)
    ranked = [(r["seller_id"], r["rate"]) for r in s["sellers_by_rate"]]
    assert ranked == [("s-bad", 0.8), ("s-big", 0.25)]  # s-one has 1 listing < MIN_SELLER_LISTINGS
    assert s["seller_min_listings"] == MIN_SELLER_LISTINGS
    assert s["top_sellers"][0]["seller_id"] == "s-big"  # by count it would lead


def test_flagged_csv_and_table_hold_every_flagged_listing(audit_dir: Path) -> None:
    rows, total = flagged_listings(audit_dir, {"absolute_claims": "绝对化用语"})
    assert total == len(rows) == 15
    assert [r["risk"] for r in rows] == sorted((r["risk"] for r in rows), reverse=True)
    no_rule = next(r for r in rows if not r["rules"])
    assert "神药" in no_rule["reason"] and "0.42" in no_rule["reason"] and "0.88" in no_rule["reason"]
    assert "abc12345" not in no_rule["title"]  # contact ids masked in anything a manager reads
    with (audit_dir / "flagged.csv").open(encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 15 and table[0]["id"] == "sku-000"  # input order
    assert {r["verdict"] for r in table} == {"review", "block"}
    page = render_html(aggregate(audit_dir), flagged=(rows, total))
    assert "所有需处理的商品（15）" in page and "flagged.csv" in page
    assert "违规率最高的卖家（至少 5 个商品）" in page and "80.0%" in page
    assert page.count("<tr><td class='nw'>sku-") == 15  # first page as plain HTML (50 rows max)


@pytest.mark.slow
def test_report_table_filters_pages_and_exports_in_a_browser(audit_dir: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    rows = [_listing(i, f"s-{i % 7}", "review", (i % 100) / 100, ["absolute.best"]) for i in range(100, 220)]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=LISTINGS_SCHEMA), audit_dir / "listings" / "part-000001.parquet"
    )
    flagged = flagged_listings(audit_dir, {})
    (audit_dir / "report.html").write_text(
        render_html(aggregate(audit_dir), flagged=flagged), encoding="utf-8"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, accept_downloads=True)
        page.goto((audit_dir / "report.html").as_uri())
        expect(page.locator("#flagged-info")).to_contain_text("共 135 条 · 第 1 / 3 页")
        page.click("#f-next")
        expect(page.locator("#flagged-info")).to_contain_text("第 2 / 3 页")
        page.fill("#f-q", "sku-045")
        expect(page.locator("#flagged-body tr")).to_have_count(1)
        expect(page.locator("#flagged-body")).to_contain_text("神药")
        page.fill("#f-q", "")
        page.check("#f-norule")
        expect(page.locator("#flagged-info")).to_contain_text("共 1 条")
        page.uncheck("#f-norule")
        page.select_option("#f-verdict", "block")
        expect(page.locator("#flagged-info")).to_contain_text("共 4 条")
        with page.expect_download() as dl:
            page.click("#f-csv")
        text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
        assert len(text.strip().splitlines()) == 5  # header + the 4 filtered rows
        browser.close()
