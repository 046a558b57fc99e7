"""Lawful wording (rules/lawful_wording.yaml): every set's examples, and what it may and may not change in
a verdict: only a score-alone review of text the lists account for, never a rule finding."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from moderation.checker import Checker
from moderation.rules.lawful import LawfulWording, lawful_wording
from moderation.schema import Listing
from moderation.verdict import decide

WORDING = lawful_wording()
CASES = [
    (s.id, kind, ex["text"], ex["category"])
    for s in WORDING.sets
    for kind in ("lawful", "not_lawful")
    for ex in s.examples.get(kind, [])
]


def test_every_set_cites_sources_and_has_both_kinds_of_example():
    assert WORDING.sets
    for s in WORDING.sets:
        assert s.sources and s.explain
        assert s.examples.get("lawful") and s.examples.get("not_lawful"), s.id


@pytest.mark.parametrize(("set_id", "kind", "text", "category"), CASES)
def test_examples(set_id, kind, text, category):
    found = WORDING.recognise(text, category)
    if kind == "lawful":
        assert found is not None and set_id in found.sets, (text, found)
        assert found.share >= WORDING.min_share
    else:
        assert found is None, (text, found)


def test_category_scoping_and_share():
    # Cosmetic wording is lawful on cosmetics only; a warning anywhere.
    assert WORDING.recognise("补水保湿", "cosmetics") is not None
    assert WORDING.recognise("补水保湿", "food") is None
    assert WORDING.recognise("吸烟有害健康", "general") is not None
    # A permitted claim inside other text does not make the text lawful wording.
    assert WORDING.recognise("补水保湿，三天年轻十岁，医生都在用", "cosmetics") is None
    assert WORDING.recognise("", "cosmetics") is None
    assert WORDING.recognise("！！！", "cosmetics") is None


def test_unknown_vocabulary_and_missing_sources_are_refused(tmp_path: Path):
    bad = {
        "sources": {"A": {"title": "t"}},
        "sets": [{"id": "x", "explain": "e", "sources": ["B"], "patterns": ["a"]}],
    }
    path = tmp_path / "lawful_wording.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="sources"):
        LawfulWording.load(path)
    bad["sets"][0]["sources"] = ["A"]
    bad["sets"][0]["patterns"] = ["{nope}"]
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown vocabulary"):
        LawfulWording.load(path)
    assert LawfulWording.load(tmp_path / "missing.yaml").recognise("吸烟有害健康", "tobacco") is None


def test_decide_never_lets_lawful_wording_lower_a_rule_verdict(engine):
    policy = engine.policy
    assert decide([], policy, 0.99) == ("review", 0.99)
    verdict, risk = decide([], policy, 0.99, lawful_wording=True)
    assert verdict == "pass" and risk == 0.99  # the risk still carries the score
    finding = Checker(engine).check(Listing(id="f", title="全网最低价 销量第一 保温杯")).findings
    assert finding
    assert decide(finding, policy, 0.99, lawful_wording=True)[0] != "pass"


def test_checker_does_not_act_on_a_score_for_lawful_wording(engine):
    checker = Checker(engine)
    policy = engine.policy
    try:
        engine.policy = replace(policy, classifier_review_threshold=0.0)
        warning = checker.check(Listing(id="w", title="酒後請勿駕駛，飲酒過量有害健康", category="alcohol"))
        assert warning.verdict == "pass" and not warning.findings
        assert warning.classifier is not None and warning.classifier.lawful_wording is not None
        assert warning.classifier.lawful_wording.sets == ["mandatory_warnings"]
        assert "lawful_wording" in warning.to_json_dict()["classifier"]
        # The same score on other text still sends it to review.
        other = checker.check(Listing(id="o", title="纯棉T恤 男款 夏季短袖", category="apparel"))
        assert other.verdict == "review" and other.classifier is not None
        assert other.classifier.lawful_wording is None
        # A rule finding is untouched by lawful wording around it.
        loud = checker.check(Listing(id="l", title="补水保湿，治疗湿疹", category="cosmetics"))
        assert loud.findings and loud.verdict != "pass"
        assert loud.classifier is not None and loud.classifier.lawful_wording is None
    finally:
        engine.policy = policy
