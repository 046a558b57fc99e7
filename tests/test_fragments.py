"""Shared expression pieces (rules/lexicons/fragments.yaml): their examples hold, every piece is used,
and a pack that names an unknown piece or a piece that breaks its examples fails to load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from moderation.paths import rules_dir
from moderation.rules.engine import RulesEngine
from moderation.rules.pack import Lexicons, RulePackError, load_fragments
from moderation.schema import Listing

_PACK = (
    "family: neg\nlaw: 广告法第十七条\nseverity: high\nrules:\n  - id: neg.cure\n    patterns: ['治疗失眠']\n"
    "    anchors: [治疗]\n    exempt: {{before: '{before}'}}\n    message: m\n"
    "    examples: {{fire: [不仅能治疗失眠], pass: [不能治疗失眠]}}\n"
)


def _rules(tmp_path: Path, before: str, fragments: str | None) -> Path:
    (tmp_path / "packs").mkdir()
    (tmp_path / "lexicons").mkdir()
    (tmp_path / "packs" / "neg.yaml").write_text(_PACK.format(before=before), encoding="utf-8")
    if fragments is not None:
        (tmp_path / "lexicons" / "fragments.yaml").write_text(fragments, encoding="utf-8")
    return tmp_path


_NEGATOR = (
    "fragments:\n  negator:\n    explain: 否定\n    regex: '不(?![仅但])'\n"
    "    matches: [不能]\n    rejects: [不仅]\n"
)


def test_shipped_fragments_hold_and_are_used() -> None:
    directory = rules_dir() / "lexicons"
    fragments = load_fragments(directory / "fragments.yaml")
    assert {"negator", "claim_negator"} <= set(fragments)
    for fragment in fragments.values():
        assert fragment.check() == [], fragment.name
    spelled = "".join(p.read_text(encoding="utf-8") for p in (rules_dir()).rglob("*.yaml"))
    for name in fragments:
        assert "{=" + name + "}" in spelled, f"fragment {name} is not used by any rule"


def test_claim_negator_reads_conditions_as_claims() -> None:
    lexicons = Lexicons(rules_dir() / "lexicons")
    expr = re.compile(lexicons.expand("{=claim_negator}[^，。]{0,3}$", "test"))
    assert expr.search("本品不能")  # 不能治疗: negated claim
    assert not expr.search("缓解不适")  # 不适 is the condition the claim is about
    assert not expr.search("不仅能")  # an addition, not a negation


def test_a_fragment_in_a_pack_expands(tmp_path: Path) -> None:
    engine = RulesEngine.load(_rules(tmp_path, "{=negator}[^，。]{0,3}$", _NEGATOR))
    assert [f.rule for f in engine.find(Listing(id="1", title="不仅能治疗失眠"))] == ["neg.cure"]
    assert engine.find(Listing(id="2", title="本品不能治疗失眠")) == []


def test_unknown_fragment_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match=r"fragment \{=nope\} is not defined.*known: negator"):
        RulesEngine.load(_rules(tmp_path, "{=nope}$", _NEGATOR))


def test_fragment_that_breaks_its_examples_fails_to_load(tmp_path: Path) -> None:
    broken = _NEGATOR.replace("rejects: [不仅]", "rejects: [不对]")
    with pytest.raises(RulePackError, match=r"should not match the start of '不对'"):
        RulesEngine.load(_rules(tmp_path, "{=negator}$", broken))


def test_fragment_that_does_not_compile_fails_to_load(tmp_path: Path) -> None:
    broken = _NEGATOR.replace("regex: '不(?![仅但])'", "regex: '不(?![仅但]'")
    with pytest.raises(RulePackError, match=r"negator: regex .* is not valid"):
        RulesEngine.load(_rules(tmp_path, "{=negator}$", broken))
