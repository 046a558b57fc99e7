"""Speed-ups of the rules engine must not change a match: literal prefilters, guarded tries, blocks, joined frames."""

from __future__ import annotations

import random
import re

import pytest

from moderation.rules.engine import RulesEngine
from moderation.rules.literals import Prefilter, required_literals
from moderation.rules.pack import trie_regex
from moderation.text.normalise import normalise
from moderation.text.tokenise import BLOCK_RE, TextBoundaries


def _expressions(engine: RulesEngine) -> list[re.Pattern[str]]:
    found: dict[str, re.Pattern[str]] = {}
    for rule in engine.rules:
        for pattern in rule.patterns:
            found[pattern.pattern] = pattern
        for ctx in (rule.requires, *rule.exempt):
            for p in (ctx.before, ctx.after, ctx.clause, ctx.sentence, ctx.attributes, ctx.listing):
                if p is not None:
                    found[p.pattern] = p
    return list(found.values())


def _texts(engine: RulesEngine) -> list[str]:
    texts = [normalise(ex.text).text for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    rng = random.Random(3)
    for _ in range(300):  # examples glued together: matches across the seams, punctuation between
        a, b = rng.sample(texts[:2000] or ["x"], 2) if len(texts) > 1 else (texts[0], texts[0])
        texts.append(a + rng.choice(["", "，", "。", " ", "、"]) + b)
    return texts


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("最好", None),  # a literal set is its own best test
        ("[^，]{0,4}(都是|全是)[^，]{0,3}(假货|次品)", [{"假货", "次品"}, {"都是", "全是"}]),
        # A lookbehind requires nothing (it may read before the window); a lookahead what it reads.
        (r"(?<![a-z])(?:ab|cd)[,，](?=x)", [{"ab,", "ab，", "cd,", "cd，"}, {"x"}]),
        (r"(?<![a-z])(?:ab|cd)[,，](?=x).*", [{"ab,", "ab，", "cd,", "cd，"}, {"x"}]),
        (r"京东(?=[^，]{0,6}(?:拼多多|唯品会))", [{"京东"}, {"拼多多", "唯品会"}]),
        (r"(?<=ab)c", None),
        (r"c(?!ab)", None),
        (r"a.*b", [{"a"}, {"b"}]),
        (r"(?i)abc.*", None),  # case-insensitive: no literal is required as written
        (r"(a|.)x", [{"x"}]),
        (r"(ab)?c+", [{"c"}]),
    ],
)
def test_required_literals(pattern: str, expected: list[set[str]] | None) -> None:
    got = required_literals(re.compile(pattern))
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert sorted(map(set, got), key=sorted) == sorted(expected, key=sorted)


def test_prefilter_never_hides_a_match(engine: RulesEngine) -> None:
    """Wherever a rule expression matches (whole text or a window), its prefilter says maybe."""
    texts = _texts(engine)
    rng = random.Random(5)
    checked = 0
    for pattern in _expressions(engine):
        prefilter = Prefilter.of(pattern)
        if prefilter is None:
            continue
        for text in texts:
            lo = rng.randrange(len(text) + 1)
            hi = rng.randrange(lo, len(text) + 1)
            for a, b in ((0, len(text)), (lo, hi)):
                if pattern.search(text, a, b) is not None:
                    checked += 1
                    assert prefilter.may_match(text, a, b), (pattern.pattern[:80], text[a:b])
    assert checked > 100


def test_any_of_prefilter_covers_each_pattern(engine: RulesEngine) -> None:
    texts = _texts(engine)
    for rule in engine.rules:
        if len(rule.patterns) < 2:
            continue
        prefilter = Prefilter.any_of(rule.patterns)
        if prefilter is None:
            continue
        for text in texts:
            if any(p.search(text) for p in rule.patterns):
                assert prefilter.may_match(text), (rule.id, text)


def test_guarded_trie_matches_like_a_longest_first_alternation() -> None:
    rng = random.Random(11)
    alphabet = "abcde北京市海天津-.^]"
    for _ in range(200):
        words = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(30)}
        trie = re.compile(trie_regex(words))
        flat = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))
        for _ in range(20):
            text = "".join(rng.choice(alphabet + "xyz") for _ in range(rng.randint(0, 40)))
            assert [m.span() for m in trie.finditer(text)] == [m.span() for m in flat.finditer(text)]
    assert "(?=[" in trie_regex([f"{c}x" for c in "abcdefghij"])  # many branches: guarded


def test_block_at_equals_listing_every_block(engine: RulesEngine) -> None:
    rng = random.Random(13)
    alphabet = "第一次最好abc12.%-，。 ！的是"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        blocks = [m.span() for m in BLOCK_RE.finditer(text)]
        view = TextBoundaries(engine.tokeniser, text)
        positions = list(range(-1, len(text) + 2))
        rng.shuffle(positions)  # blocks found in any order
        for pos in positions:
            want = next(((s, e) for s, e in blocks if s <= pos < e), None)
            assert view._block_at(pos) == want, (text, pos)


def test_any_frame_says_no_only_when_no_frame_holds(engine: RulesEngine) -> None:
    """The joined exemption test never hides a frame that holds (the judge then names the first)."""
    from moderation.rules.context import AnyFrame, ListingContext, Surroundings, TextWindows, context_matches

    texts = _texts(engine)[:3000]
    rng = random.Random(17)
    held = 0
    for rule in engine.rules:
        if not rule.exempt:
            continue
        frames = AnyFrame.of(rule.exempt)
        assert frames is not None, rule.id
        for text in rng.sample(texts, min(len(texts), 60)):
            if not text:
                continue
            windows = TextWindows(text)
            ctx = ListingContext("general", {"品牌": "授权书"}, text)
            start = rng.randrange(len(text))
            end = min(len(text), start + rng.randint(1, 4))
            around = Surroundings(windows, start, end, ctx)
            holds = any(
                context_matches(c, windows, start, end, ctx, any_of=True, around=around) for c in rule.exempt
            )
            held += holds
            if holds:
                assert frames.may_hold(windows, start, end, around), (rule.id, text, start, end)
    assert held > 50
