"""Engine behaviour that rule packs rely on, tested on small packs written here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from moderation.paths import rules_dir
from moderation.rules.engine import RulesEngine
from moderation.rules.pack import RulePackError
from moderation.schema import Listing

_PACK = """
family: testfam
law: 广告法第十七条
severity: high
categories: [food, general]
rules:
  - id: testfam.cure
    terms: [治疗, 治愈]
    requires:
      sentence: '(糖尿病|高血压|便秘)'
    exempt:
      before: '(不能|无法|不可)$'
    message: "“{text}”是疾病治疗用语。"
    suggestion: "删除“{text}”。"
    examples: {fire: [治疗便秘], pass: [不能治疗便秘]}
  - id: testfam.special
    severity: medium
    categories: [cosmetics]
    terms: [美白]
    exempt:
      attributes: '国妆特字'
    message: "“{text}”需要特证。"
    examples:
      fire: [{text: 美白精华, category: cosmetics}]
      pass: [{text: 美白精华, category: cosmetics, attributes: {注册证号: 国妆特字G2023}}]
  - id: testfam.percent
    severity: medium
    patterns: ['\\d+(\\.\\d+)?%的(用户|顾客|人)']
    anchors: ['%的']
    exempt:
      sentence: '(来源|据.{1,12}统计)'
    message: "“{text}”数据未注明来源。"
    examples: {fire: [98%的用户选择], pass: [98%的用户选择（数据来源：2024年问卷）]}
  - id: testfam.warning
    severity: low
    categories: [food]
    absent: [本品不能代替药物]
    message: "缺少“本品不能代替药物”提示。"
    examples:
      fire: [{text: 蛋白粉, category: food}]
      pass: [{text: 蛋白粉。本品不能代替药物, category: food}]
"""


@pytest.fixture(scope="module")
def test_engine(tmp_path_factory: pytest.TempPathFactory) -> RulesEngine:
    base = tmp_path_factory.mktemp("rules")
    (base / "packs").mkdir()
    (base / "packs" / "testfam.yaml").write_text(_PACK, encoding="utf-8")
    shutil.copytree(rules_dir() / "lexicons", base / "lexicons")
    return RulesEngine.load(base)


def _find(engine: RulesEngine, title: str, **kw: object) -> list[tuple[str, str]]:
    listing = Listing(id="t", title=title, **kw)  # type: ignore[arg-type]
    return [(f.rule, f.text) for f in engine.find(listing)]


def test_requires_and_exempt_contexts(test_engine: RulesEngine) -> None:
    assert _find(test_engine, "喝了能治疗便秘") == [("testfam.cure", "治疗")]
    assert _find(test_engine, "本品不能治疗便秘") == []
    assert _find(test_engine, "治疗仪配件") == []  # no disease in the sentence


def test_category_and_attribute_conditions(test_engine: RulesEngine) -> None:
    assert _find(test_engine, "美白精华", category="cosmetics") == [("testfam.special", "美白")]
    assert (
        _find(test_engine, "美白精华", category="cosmetics", attributes={"注册证号": "国妆特字G2023"}) == []
    )
    assert _find(test_engine, "美白精华", category="apparel") == []


def test_patterns_run_around_anchors(test_engine: RulesEngine) -> None:
    assert _find(test_engine, "超过98.5%的用户都说好") == [("testfam.percent", "98.5%的用户")]
    assert _find(test_engine, "98%的用户选择，据2024年平台统计") == []


def test_absent_rule_fires_once_per_listing(test_engine: RulesEngine) -> None:
    listing = Listing(id="t", title="蛋白粉", description="每日一勺", category="food")
    findings = test_engine.find(listing)
    assert [f.rule for f in findings] == ["testfam.warning"]
    assert findings[0].action == "pass"  # low severity is advice
    assert (findings[0].start, findings[0].end) == (4, 4)


def test_spans_point_into_the_original_text_with_evasions(engine: RulesEngine) -> None:
    title = "🔥新款 zuì 佳 口感 咖啡豆 ＮＯ．１ 國家級"
    listing = Listing(id="t", title=title)
    spans = {f.text for f in engine.find(listing)}
    assert spans == {"zuì 佳", "ＮＯ．１", "國家級"}
    for f in engine.find(listing):
        assert title[f.start : f.end] == f.text


def test_findings_in_attributes_and_description(engine: RulesEngine) -> None:
    listing = Listing(
        id="t", title="保温杯", description="这款杯子是全网最好的", attributes={"卖点": "销量第一"}
    )
    found = {(f.field, f.family) for f in engine.find(listing)}
    assert found == {("description", "absolute_claims"), ("attributes.卖点", "absolute_claims")}
    for f in engine.find(listing):
        source = listing.description if f.field == "description" else listing.attributes["卖点"]
        assert source[f.start : f.end] == f.text


def test_claims_split_between_title_and_description(engine: RulesEngine) -> None:
    listing = Listing(id="t", title="保温杯 全网最", description="低价 快来抢")
    split = [f for f in engine.find(listing) if f.field == "title"]
    assert split and all(listing.title[f.start : f.end] == f.text for f in split)
    assert any(f.text.endswith("全网最") for f in split)


def test_pinyin_for_one_character_of_a_term(engine: RulesEngine) -> None:
    assert [t for _, t in _find(engine, "zui佳口感 咖啡豆")] == ["zui佳"]
    assert _find(engine, "Zuider Zee 明信片") == []


def test_a_latin_edged_term_is_a_word_of_its_own(engine: RulesEngine) -> None:
    # 装b inside 改装blox, 0元游 inside 1000元游 are not the terms; with the original spaces they are
    assert _find(engine, "老款宝马5系改装blox 垫片法兰") == []
    assert all(t != "0元游" for _, t in _find(engine, "1000元游三亚 跟团"))
    assert [t for _, t in _find(engine, "这波操作太装b了 T恤")] == ["装b"]
    assert _find(engine, "TOP 1 best seller 蓝牙音箱")


def test_a_two_character_term_has_no_initial_only_spelling(engine: RulesEngine) -> None:
    from moderation.rules.engine import _pinyin_variants

    assert "wei一" in _pinyin_variants("唯一") and "w一" not in _pinyin_variants("唯一")
    assert "x血糖" in _pinyin_variants("降血糖") or "降x糖" in _pinyin_variants("降血糖")
    # one letter beside one character is a model number or slang, not a spelled claim
    assert _find(engine, "W-71喷枪密封圈配件") == []
    assert _find(engine, "A3素描本 8开") == []


def test_brand_and_model_names_are_not_absolute_claims(engine: RulesEngine) -> None:
    plain = Listing(id="t", title="第一坊 酿造酱油 500ml")
    named = Listing(id="t", title="第一坊 酿造酱油 500ml", brand="第一坊")
    by_model = Listing(id="t", title="NO.1 经典款 口红", attributes={"色号": "NO.1"}, category="cosmetics")
    assert not [f for f in engine.find(named) if f.family == "absolute_claims"]
    assert not [f for f in engine.find(by_model) if f.family == "absolute_claims"]
    assert engine.find(
        Listing(id="t", title="销量第一 酱油", brand="第一坊")
    )  # the brand exempts only itself
    del plain


def test_colon_does_not_end_the_context_window(engine: RulesEngine) -> None:
    from moderation.rules.context import TextWindows

    windows = TextWindows("色号：no1，很好看")
    assert windows.clause(3, 6) == (0, 6)


def test_mandatory_statements_and_names_never_fire(engine: RulesEngine) -> None:
    assert _find(engine, "最高人民法院公报同款封面笔记本") == []


def test_latin_terms_respect_word_boundaries(engine: RulesEngine) -> None:
    assert [text for _, text in _find(engine, "No.1 蓝牙耳机")] == ["No.1"]
    assert _find(engine, "TOP 10 热门话题") == []


def test_one_megabyte_listing_is_checked(engine: RulesEngine) -> None:
    description = ("优质面料，舒适透气，第一次穿就很合身。" * 55_000)[:1_000_000] + "全网最好"
    listing = Listing(id="big", title="连衣裙", description=description)
    findings = engine.find(listing)  # its speed is measured by scripts/bench_rules.py, not asserted here
    assert len(findings) == 1 and findings[0].text.endswith("最好")
    assert findings[0].end == len(description)


def test_bad_packs_fail_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    bad = tmp_path / "packs" / "bad.yaml"
    bad.write_text(
        "family: bad\nlaw: 广告法第九条\nseverity: high\nrules:\n  - id: bad.regex\n    patterns: ['(']\n"
        "    anchors: [x]\n    message: m\n    examples: {fire: [x], pass: [y]}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        RulePackError, match=r"bad\.yaml:5: rule bad\.regex: .*not a valid regular expression"
    ):
        RulesEngine.load(tmp_path)
    bad.write_text("family: bad\nrules: [\n", encoding="utf-8")
    with pytest.raises(RulePackError, match=r"bad\.yaml:\d+: not valid YAML"):
        RulesEngine.load(tmp_path)
    bad.write_text(
        "family: bad\nlaw: 广告法第九条\nseverity: high\nrules:\n  - id: bad.typo\n    terms: [x]\n"
        "    mesage: m\n    examples: {fire: [x], pass: [y]}\n",
        encoding="utf-8",
    )
    with pytest.raises(RulePackError, match=r"unknown keys \['mesage'\]"):
        RulesEngine.load(tmp_path)
