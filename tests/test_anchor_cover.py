"""Anchor coverage: a pattern match with none of its rule's anchors is never reported, so every shipped
pattern must provably hold an anchor in each match (moderation/rules/anchor_cover.py)."""

from __future__ import annotations

import re

import pytest

from moderation.rules.anchor_cover import covered, missed_texts, uncovered_patterns
from moderation.rules.engine import RulesEngine
from moderation.rules.selftest import anchor_gaps


@pytest.mark.parametrize(
    ("pattern", "anchors", "expected"),
    [
        # one required alternative without its anchor: 肾友福音 would never be reported
        (r"(?:糖友|痛友|肾友)(?:们)?(?:的)?(?:福音|救星)", ["糖友", "痛友"], False),
        (r"(?:糖友|痛友|肾友)(?:们)?(?:的)?(?:福音|救星)", ["糖友", "痛友", "肾友"], True),
        # or every tail alternative anchored instead
        (r"(?:糖友|痛友|肾友)(?:们)?(?:的)?(?:福音|救星)", ["福音", "救星"], True),
        # an anchor may straddle pieces, optional ones included
        (r"老婆(?:很)?喜欢", ["老婆喜欢", "老婆很喜欢"], True),
        (r"老婆(?:很)?喜欢", ["老婆喜欢"], False),
        # a lookbehind reads outside the match: an anchor there does not count
        (r"(?<=老婆)喜欢", ["老婆"], False),
        # repeats: at least once is enough, optional is not
        (r"(?:特效)+药", ["特效"], True),
        (r"(?:特效)?药", ["特效"], False),
        # an open class between two required words: either word anchors it
        (r"治疗[^，。]{0,6}?糖尿病", ["糖尿病"], True),
        (r"治疗[^，。]{0,6}?糖尿病", ["[^，。]"], False),
        # a lexicon spelled as a trie with a guard lookahead still counts word by word
        (r"(?=[北上])(?:北(?:京(?:市)?|海)|上海)", ["北京", "北海", "上海"], True),
        (r"(?=[北上])(?:北(?:京(?:市)?|海)|上海)", ["北京", "上海"], False),
    ],
)
def test_coverage_is_proved_from_the_parse(pattern: str, anchors: list[str], expected: bool) -> None:
    assert covered(pattern, anchors) is expected


def test_missed_texts_are_matches_without_an_anchor() -> None:
    pattern = re.compile(r"(?:糖友|痛友|肾友)(?:们)?(?:的)?(?:福音|救星)")
    missed = missed_texts(pattern, ["糖友", "痛友"])
    assert missed and all(t.startswith("肾友") and pattern.fullmatch(t) for t in missed)
    assert missed_texts(pattern, ["糖友", "痛友", "肾友"]) == []


def test_case_insensitive_patterns_get_no_proof() -> None:
    assert not covered(re.compile("egf", re.IGNORECASE), ["egf"])


def test_every_shipped_pattern_holds_an_anchor_in_each_match() -> None:
    """No sampled text matches a shipped pattern without one of its rule's anchors (``rules check`` says
    the same); patterns still without a proof are listed by ``uncovered_patterns`` for a reader."""
    engine = RulesEngine.load()
    assert anchor_gaps(engine) == []
    assert len(uncovered_patterns(engine.rules)) < 0.1 * sum(len(r.patterns) for r in engine.rules)


def test_no_shipped_expression_spells_what_folded_text_never_holds() -> None:
    """Patterns and context expressions run on folded text (lower case, simplified, no spaces): a literal
    T/CBJ or 乾隆 in them can never match (both were found in shipped packs)."""
    from moderation.rules.anchor_cover import unfoldable_literals

    assert unfoldable_literals(re.compile("执行T/CBJ|乾隆|[~～]")) == {"T", "C", "B", "J", "乾", "～"}
    engine = RulesEngine.load()
    dead = {}
    for rule in engine.rules:
        expressions = list(rule.patterns)
        for ctx in (rule.requires, *rule.exempt):
            parts = (ctx.before, ctx.after, ctx.clause, ctx.sentence, ctx.attributes, ctx.listing)
            expressions += [x for x in parts if x]
        for rx in expressions:
            if found := unfoldable_literals(rx):
                dead[f"{rule.id}: {rx.pattern[:40]}"] = "".join(sorted(found))
    assert dead == {}
