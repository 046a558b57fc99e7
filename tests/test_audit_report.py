"""The audit report (summary.json, a self-contained report.html with Chinese labels and copied-image
clusters) and the diff of two audits (a rule change, a catalogue change)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from _audit_data import GOOD, write_jsonl
from click.testing import CliRunner
from PIL import Image

from moderation.audit import AuditOptions, run_audit
from moderation.audit.cli import audit
from moderation.images.hashing import hash_image
from moderation.images.index import HashIndex
from moderation.paths import rules_dir

pytestmark = pytest.mark.slow  # whole audits


def _opts(inp: Path, out: Path, **kw: object) -> AuditOptions:
    base: dict[str, object] = {"workers": 1, "classifier": False, "progress": False, "batch_size": 6}
    base.update(kw)
    return AuditOptions(input=inp, out=out, **base)  # type: ignore[arg-type]


def _photo(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(12, 12, 3), dtype=np.uint8)
    Image.fromarray(small).resize((320, 320), Image.Resampling.BICUBIC).save(path)
    return path


def _image_db(tmp: Path) -> tuple[Path, Path, Path]:
    """An index holding one seller's original photo; returns (db, re-encoded copy, unrelated photo)."""
    original = _photo(tmp / "original.png", 1)
    db = tmp / "imgdb"
    with HashIndex.open(db) as idx:
        idx.add_many(
            [("shop-a/original.png", hash_image(original).indexed(), "orig-001", "s-orig", str(original))]
        )
    copy = tmp / "copy.jpg"
    Image.open(original).resize((300, 300)).convert("RGB").save(copy, quality=70)
    return db, copy, _photo(tmp / "own.png", 99)


def test_report_and_summary(tmp_path: Path) -> None:
    db, copy, own = _image_db(tmp_path)
    rows = [dict(r) for r in GOOD]
    rows[4]["images"] = [str(copy)]  # s-04 copies s-orig's photo
    rows[14]["images"] = [str(copy), str(own)]  # and so does s-10
    rows[10]["images"] = [str(own)]
    inp = write_jsonl(tmp_path / "cat.jsonl", rows)
    out = tmp_path / "out"
    run_audit(_opts(inp, out, image_db=str(db)))
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    t = s["totals"]
    assert t["listings"] == len(rows) + 5 and t["errors"] == 4 and t["copied_images"] == 2
    assert s["verdicts"]["block"] >= 2 and s["verdicts"]["review"] >= 5
    assert sum(s["verdicts"].values()) == t["checked"]
    fams = {r["family"]: r for r in s["by_family"]}
    assert fams["absolute_claims"]["name"] == "绝对化用语"
    assert fams["copied_image"]["findings"] == 2
    assert any(r["law"] == "广告法第九条第三项" for r in s["by_law"])
    assert {r["severity"] for r in s["by_severity"]} == {"low", "medium", "high", "critical"}
    assert sum(s["risk_histogram"]["counts"]) == t["checked"]
    cats = {r["category"]: r for r in s["by_category"]}
    assert cats["cosmetics"]["name"] == "化妆品" and cats["cosmetics"]["flagged"] == 1
    assert s["top_sellers"][0]["flagged"] >= s["top_sellers"][-1]["flagged"]
    assert s["top_listings"][0]["risk"] >= s["top_listings"][-1]["risk"]
    (cluster,) = s["image_clusters"]
    assert cluster["image"] == "shop-a/original.png" and cluster["copies"] == 2
    assert cluster["sellers"] == ["s-04", "s-10"] and cluster["original_seller"] == "s-orig"
    assert {e["line"] for e in s["error_examples"]} == {19, 20, 21, 22}

    page = (out / "report.html").read_text(encoding="utf-8")
    for label in (
        "商品广告合规审计报告",
        "按违规类型",
        "按法律条款",
        "按严重程度",
        "按类目",
        "违规率最高的卖家",
        "需处理商品最多的卖家",
        "命中最多的规则",
        "风险分布",
        "所有需处理的商品",
        "疑似盗用图片",
        "无法检查的行",
        "绝对化用语",
        "<svg",
    ):
        assert label in page, label
    # self-contained: no scripts, stylesheets or images fetched from anywhere; the one inline script
    # (paging and filtering the flagged listings) has no src
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script src" not in page and "fetch(" not in page
    assert (out / "flagged.csv").exists()


def test_diff_after_a_rule_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inp = write_jsonl(tmp_path / "cat.jsonl")
    old = tmp_path / "old"
    run_audit(_opts(inp, old))
    # the rule change: the price-claims pack is withdrawn
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir(), rules)
    (rules / "packs" / "price_claims.yaml").unlink()
    monkeypatch.setenv("MODERATION_RULES_DIR", str(rules))
    new = tmp_path / "new"
    run_audit(_opts(inp, new))
    res = CliRunner().invoke(audit, ["diff", str(old), str(new)])
    assert res.exit_code == 0, res.output
    d = json.loads((new / "diff.json").read_text(encoding="utf-8"))
    assert d["findings"]["added"] == 0 and d["findings"]["removed"] > 0
    assert {r["family"] for r in d["by_rule"]} == {"price_claims"}
    assert d["by_rule"][0]["name"] == "价格比较与价格欺诈"
    assert all(r["rule"].startswith("price.") for r in d["removed_samples"])
    # sku-016 (原价999现价99, 最后一天) was held only for price claims
    changes = {c["id"]: (c["old_verdict"], c["new_verdict"]) for c in d["verdict_changes"]}
    assert changes["sku-016"] == ("review", "pass")
    assert d["verdict_transitions"]["review→pass"] == len(
        [c for c in changes.values() if c == ("review", "pass")]
    )
    page = (new / "diff.html").read_text(encoding="utf-8")
    assert "两次审计对比" in page and "price." in page


def test_diff_after_a_catalogue_change(tmp_path: Path) -> None:
    old_in = write_jsonl(tmp_path / "v1.jsonl", bad=False)
    rows = [dict(r) for r in GOOD]
    rows[0] = {**rows[0], "title": "304不锈钢保温杯 保温12小时"}  # the seller fixed the title
    rows[4] = {**rows[4], "description": "全网最好的书桌，销量第一"}  # and this one got worse
    rows.append({"id": "sku-new", "title": "新上架 顶级蚕丝被", "category": "general", "seller_id": "s-20"})
    new_in = write_jsonl(tmp_path / "v2.jsonl", rows, bad=False)
    old, new = tmp_path / "a", tmp_path / "b"
    run_audit(_opts(old_in, old))
    res = CliRunner().invoke(
        audit,
        [str(new_in), "--out", str(new), "--no-classifier", "--workers", "1", "--quiet", "--diff", str(old)],
    )
    assert res.exit_code == 0, res.output
    d = json.loads((new / "diff.json").read_text(encoding="utf-8"))
    changes = {c["id"]: (c["old_verdict"], c["new_verdict"]) for c in d["verdict_changes"]}
    assert changes["sku-001"] == ("block", "pass")
    assert changes["sku-005"] == ("pass", "block")
    assert changes["sku-new"] == (None, "block")
    assert d["listings"]["only_in_new"] == 1 and d["listings"]["only_in_old"] == 0
    added_ids = {r["id"] for r in d["added_samples"]}
    removed_ids = {r["id"] for r in d["removed_samples"]}
    assert added_ids == {"sku-005", "sku-new"} and removed_ids == {"sku-001"}
