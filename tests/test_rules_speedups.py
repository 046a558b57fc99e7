"""Speed-ups of the rules engine must not change a match: literal prefilters, guarded tries, blocks, joined frames."""

from __future__ import annotations

import random
import re

import pytest

from moderation.checker import Checker
from moderation.rules.engine import RulesEngine
from moderation.rules.literals import Prefilter, required_literals
from moderation.rules.pack import trie_regex
from moderation.schema import Listing
from moderation.text.normalise import batch_groups, normalise
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
        bare = re.compile(trie_regex(words, guard_root=False))
        flat = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))
        for _ in range(20):
            text = "".join(rng.choice(alphabet + "xyz") for _ in range(rng.randint(0, 40)))
            want = [m.span() for m in flat.finditer(text)]
            assert [m.span() for m in trie.finditer(text)] == want
            assert [m.span() for m in bare.finditer(text)] == want
    assert "(?=[" in trie_regex([f"{c}x" for c in "abcdefghij"])  # many branches: guarded
    assert "(?=[" not in trie_regex([f"{c}x" for c in "abcdefghij"], guard_root=False)


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


def _equal_norms(a: object, b: object) -> bool:
    from moderation.text.normalise import NormalisedText

    assert isinstance(a, NormalisedText) and isinstance(b, NormalisedText)
    return (
        a.original == b.original
        and a.text == b.text
        and a.starts.tolist() == b.starts.tolist()
        and a.ends.tolist() == b.ends.tolist()
    )


def test_normalise_many_equals_normalise_one_by_one(engine: RulesEngine) -> None:
    """Folding a batch as one text joined by line breaks gives each text what it gets alone: evasion
    spellings and digit joiners at the seams, empty texts, lone surrogates, and texts too long to join."""
    from moderation.text import normalise as module
    from moderation.text.normalise import normalise_many

    rng = random.Random(19)
    pieces = [ex.text for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    pieces += ["zuì jiā", "zui", "jia", "最.", ".5", "3.", "-2", "\ud800", "ＮＯ．１", "", "\n", " ", "醉佳"]
    for _ in range(60):
        texts = [
            "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(0, 30))
        ]
        assert all(map(_equal_norms, normalise_many(texts), map(normalise, texts)))
    texts = [rng.choice(pieces) * 5 for _ in range(200)]
    saved = module.BATCH_CHARS
    module.BATCH_CHARS = 64  # several groups, and texts longer than a group
    try:
        assert all(map(_equal_norms, normalise_many(texts), map(normalise, texts)))
    finally:
        module.BATCH_CHARS = saved


def test_infer_many_equals_infer_one_by_one(engine: RulesEngine) -> None:
    """The category model's batch arithmetic gives each text the same guess, confidence and evidence."""
    assert engine.categories is not None
    texts = [normalise(ex.text).text for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    texts += ["", "电子烟 烟油", "面霜 精华 胶囊", "a", "保健食品 蓝帽子 胶囊 软胶囊"]
    many = engine.categories.infer_many(texts)
    assert many == [engine.categories.infer(t) for t in texts]
    assert sum(g is not None for g in many) > 20


def test_indices_many_equal_each_text_features(engine: RulesEngine) -> None:
    """The batch look-up of the model's features (bigram codes in one numpy pass) gives each text the
    known indices of ``features``, sorted, as the model's ``indices`` does one text at a time."""
    from moderation.rules.category import features

    assert engine.categories is not None and engine.categories.model is not None
    model = engine.categories.model
    texts = [normalise(ex.text).text for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    texts += ["", "\n", "a", "abc", "iphone手机壳\n面霜abcd面霜", "最好最好", "\ud800面霜", "面\n霜"]
    for group in (texts, *(texts[-k:] for k in range(1, 10))):  # one numpy pass, and a few one by one
        flat, lengths = model.indices_many(group)
        assert sum(lengths) == len(flat)
        pos = 0
        for text, n in zip(group, lengths, strict=True):
            assert flat[pos : pos + n].tolist() == model.indices(features(text)), text
            pos += n
    none, none_lengths = model.indices_many([])
    assert len(none) == 0 and none_lengths == []


def test_check_many_folds_the_batch_as_check_does(rules_checker: Checker) -> None:
    """check_many (one folding and inference pass per batch) answers as the engine does for each
    listing folded on its own."""
    engine = rules_checker.engine
    rng = random.Random(23)
    examples = [ex for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    listings = []
    for i in range(300):
        a, b = rng.sample(examples, 2)
        listings.append(
            {
                "id": f"l{i}",
                "title": a.text if i % 5 else "",
                "description": b.text if i % 3 or i % 5 == 0 else "",
                "category": rng.choice([a.category, "general"]),
                "attributes": a.attributes if i % 2 else {},
            }
        )
    many = rules_checker.check_many(listings, batch_size=37)
    single = [rules_checker.finish(x, engine.detect(x), None) for x in map(Listing.model_validate, listings)]
    assert [r.model_dump() for r in many] == [r.model_dump() for r in single]


def test_marks_of_many_equal_each_text_windows(engine: RulesEngine) -> None:
    from moderation.rules.context import TextWindows, marks_of_many

    texts = [*_texts(engine)[:500], "", "\n", "。", "a。b\n", "a😀。b\U0010ffff，\uffff；", "\ud800，"]
    for text, (clause, sentence) in zip(texts, marks_of_many(texts), strict=True):
        windows = TextWindows(text)
        assert clause == windows.clause_bounds()
        windows.sentence(0, 0)
        assert sentence == windows._sentence


def test_batch_groups_join_consecutive_texts_within_the_limit() -> None:
    texts = ["abc", "", "defg", "x" * 11, "hi", "jk", "lmnop"]
    groups = batch_groups(texts, 10)
    # Empty texts and texts longer than the limit are in no group; each group with its line breaks fits.
    assert groups == [[0, 2], [4, 5], [6]]
    for group in groups:
        assert sum(len(texts[i]) + 1 for i in group) - 1 <= 10


def test_collector_paused_for_a_batch_and_never_left_off(rules_checker: Checker) -> None:
    """``check_many`` turns the cyclic collector off for each batch only: it is on again after the
    batch (also when a listing fails), and a collector the caller turned off stays off."""
    import gc

    from moderation.checker import collector_paused

    seen: list[bool] = []
    real_finish = rules_checker.finish

    def spy(listing, detection, score):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        if listing.id == "bad":
            raise RuntimeError("boom")
        return real_finish(listing, detection, score)

    assert gc.isenabled()
    rules_checker.finish = spy  # type: ignore[method-assign]
    try:
        results = rules_checker.check_many(
            [{"id": "ok", "title": "全网最低价 纯棉T恤"}, {"id": "bad", "title": "纯棉T恤"}]
        )
    finally:
        del rules_checker.finish
    assert seen == [False, False]
    assert gc.isenabled()
    assert [r.error.code if r.error else None for r in results] == [None, "internal_error"]
    assert results[0].verdict != "pass"

    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError
    assert gc.isenabled()
