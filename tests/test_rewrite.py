"""moderation/rules/rewrite.py: every fixable span rewritten to fit its context, then checked again
(issue 17). The fire examples of every rule with a ``rewrite`` key must come out clean of that rule."""

from __future__ import annotations

import pytest

from moderation.rules.engine import RulesEngine
from moderation.rules.rewrite import rewrite_listing


@pytest.mark.parametrize(
    ("title", "fixed"),
    [
        ("全网最好 青花瓷花瓶", "青花瓷花瓶"),  # the vase is not told to write 最高承重150kg
        (
            "最好用的国产剃须刀 男士电动",
            "好用的国产剃须刀 男士电动",
        ),  # the marker goes, what it modifies stays
        ("最受欢迎的款式 现货速发", "受欢迎的款式 现货速发"),
        (
            "这款是最佳的保温杯 304不锈钢",
            "这款是保温杯 304不锈钢",
        ),  # a lone 佳 cannot stand: dropped with its 的
        ("口感最佳的进口巧克力", "口感佳的进口巧克力"),
        (
            "【全网最低价】304不锈钢保温杯 销量第一",
            "304不锈钢保温杯",
        ),  # overlapping rules fixed once, brackets go
        ("国家级工艺 手工茶具", "工艺 手工茶具"),
    ],
)
def test_rewrites_fit_the_context(engine: RulesEngine, title: str, fixed: str) -> None:
    rw = rewrite_listing(engine, {"id": "x", "title": title})
    assert rw.listing["title"] == fixed
    assert rw.clean and rw.verdict == "pass"


def test_edits_are_in_original_offsets_with_a_preview(engine: RulesEngine) -> None:
    title = "这是你能买到的最好的保温杯，销量第一"
    rw = rewrite_listing(engine, {"id": "x", "title": title, "description": "纯棉面料，最好手洗"})
    assert [(e.text, e.replacement) for e in rw.edits] == [("最好的", ""), ("销量第一", "")]
    for e in rw.edits:
        assert title[e.start : e.end] == e.text
    data = rw.to_json()
    assert data["edits"][0]["preview"] == "这是你能买到的保温杯"
    assert data["listing"]["description"] == "纯棉面料，最好手洗"  # a usage tip is not touched
    assert data["fields"] == {"title": "这是你能买到的保温杯"}


def test_what_cannot_be_rewritten_is_reported(engine: RulesEngine) -> None:
    rw = rewrite_listing(engine, {"id": "x", "title": "首创专利技术 自清洁马桶"})
    assert rw.listing["title"] == "专利技术 自清洁马桶"
    assert not rw.clean and [r["rule"] for r in rw.remaining] == ["patent.no_number"]


def test_a_field_that_is_only_the_claim_is_left_to_the_seller(engine: RulesEngine) -> None:
    rw = rewrite_listing(engine, {"id": "x", "title": "全网最低价"})
    assert rw.listing["title"] == "全网最低价" and not rw.clean


def test_lawful_text_is_untouched(engine: RulesEngine) -> None:
    rw = rewrite_listing(
        engine, {"id": "x", "title": "最高承重150kg 加厚折叠凳", "description": "第一次使用请先清洗"}
    )
    assert rw.edits == [] and rw.fields == {} and rw.clean


def test_every_rewritable_rule_fixes_its_own_fire_examples(engine: RulesEngine) -> None:
    failures = []
    for rule in engine.rules:
        if rule.rewrite is None:
            continue
        for ex in rule.fire:
            listing = {
                "id": "x",
                "title": ex.text if ex.field == "title" else "商品",
                "category": ex.category,
                "attributes": ex.attributes,
            }
            if ex.field == "description":
                listing["description"] = ex.text
            rw = rewrite_listing(engine, listing)
            left = [r["text"] for r in rw.remaining if r["rule"] == rule.id]
            if left or not rw.edits:
                failures.append(f"{rule.id}: {ex.text} → {rw.listing.get(ex.field)} (left {left})")
    assert not failures, "\n".join(failures)
