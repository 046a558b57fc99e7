"""Judgement: the stage between candidates and findings.

The scan finds candidates (a rule and a span). Judgement decides, for each, whether it is a claim about
this product, brand or seller — SAMR's 2023 guideline asks exactly that — and keeps the reason either way:
a kept claim carries what it modifies; a dropped one carries the named judgement that exempted it
(``usage_tip``, ``spec_limit``, ``self_comparison``…, with the sentence a reviewer reads), so that
``moderation check --explain`` can show why a lawful 最 passed. Requirements that do not hold and word
boundaries that do not match mean there was no candidate at all, so they leave no trace.

Order is by cost: phrase and attribute checks, then the grammar and jieba only for what survives.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple

from moderation.rules.budget import CheckBudgetExceeded
from moderation.rules.context import (
    AnyFrame,
    ListingContext,
    Surroundings,
    TextWindows,
    context_matches,
    covered_by_phrase,
)
from moderation.rules.grammar import SuperlativeGrammar
from moderation.rules.pack import Rule
from moderation.schema import SEVERITY_RANK, VERDICT_RANK
from moderation.text.normalise import NormalisedText
from moderation.text.tokenise import TextBoundaries, Tokeniser

#: How often (in candidates) the CPU budget is looked at.
_BUDGET_EVERY = 64

_REASONS_ZH = {
    "mandatory_statement": "法定提示语或专有名称中的用语，不是宣称。",
    "proper_name": "商品的品牌、型号或名称的一部分（执法指南第五条：名称、型号、商标）。",
    "ordinary_word": "日常时间用语（最近、最后、最新款），不是最高级宣称。",
    "spec_limit": "规格参数的上限或下限（如最高承重150kg），不是最高级宣称。",
    "pain_point": "描述顾客的困扰或抱怨，不是对商品的评价。",
    "discourse": "只是行文中的强调（最重要的是、最大的优点），不是对商品的最高级评价。",
    "advice": "给顾客的选购建议（选择最适合你的尺码），不是对商品的宣称。",
    "own_feature": "比较的是这件商品自身的各个部分（最吸引人的地方是领口），不是与其他商品比较。",
    "delegated": "由专门规则判断。",
    "context": "上下文表明不是对商品的宣称。",
}


class Claim(NamedTuple):
    """A kept candidate: a claim about the listing, with what the grammar found it modifies."""

    rule: Rule
    start: int
    end: int
    modifies: str = ""
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Exemption:
    """A candidate that judgement let pass, and why (folded span)."""

    rule: Rule
    start: int
    end: int
    reason: str
    explain: str


class Candidate(NamedTuple):
    rule: Rule
    start: int
    end: int


def explain_reason(reason: str, explain: str = "") -> str:
    return explain or _REASONS_ZH.get(reason, _REASONS_ZH["context"])


class Judge:
    """Judges candidates of one text; stateless apart from the tokeniser and grammars it shares."""

    def __init__(
        self, tokeniser: Tokeniser, superlative: SuperlativeGrammar | None, names_families: frozenset[str]
    ):
        self.tokeniser = tokeniser
        self.superlative = superlative
        self.names_families = names_families
        #: Per rule (by id): its exemption frames as one test (None: they cannot be joined).
        self._frames: dict[int, AnyFrame | None] = {}

    def judge(
        self,
        norm: NormalisedText,
        windows: TextWindows,
        candidates: list[Candidate],
        exempt_spans: list[tuple[int, int]],
        ctx: ListingContext,
        *,
        deadline: float | None = None,
        explain: bool = False,
    ) -> tuple[list[Claim], list[Exemption]]:
        kept: list[Claim] = []
        dropped: list[Exemption] = []
        bounds: TextBoundaries | None = None
        text = norm.text
        exempt_spans = sorted(exempt_spans)
        exempt_starts = [lo for lo, _ in exempt_spans]
        exempt_reach = list(accumulate((hi for _, hi in exempt_spans), max))

        def exempt(rule: Rule, start: int, end: int, reason: str, why: str = "") -> None:
            if explain:
                dropped.append(Exemption(rule, start, end, reason, explain_reason(reason, why)))

        for i, (rule, start, end) in enumerate(candidates):
            if deadline is not None and i % _BUDGET_EVERY == 0 and time.thread_time() > deadline:
                raise CheckBudgetExceeded("the listing used up its CPU budget")
            j = bisect_right(exempt_starts, start) - 1  # phrases starting at or before the candidate
            if j >= 0 and exempt_reach[j] >= end and _covered(exempt_spans, j, start, end):
                exempt(rule, start, end, "mandatory_statement")
                continue
            if (
                ctx.names
                and rule.family in self.names_families
                and covered_by_phrase(text, start, end, ctx.names)
            ):
                exempt(rule, start, end, "proper_name")
                continue
            if not rule.requires.is_empty() and not context_matches(
                rule.requires, windows, start, end, ctx, any_of=False
            ):
                continue
            if rule.obfuscated and not split_in_original(norm, start, end):
                continue
            if bounds is None:
                bounds = self.tokeniser.boundaries(text)
            modifies, action = "", None
            if rule.grammar == "superlative" and self.superlative is not None:
                result = self.superlative.analyse(text, start, bounds, windows.clause(start, end))
                if result is None:
                    continue
                start, end = result.start, result.end
                if not result.is_claim:
                    exempt(rule, start, end, result.reason)
                    continue
                modifies, action = result.modifies, result.action
            if rule.exempt:
                around = Surroundings(windows, start, end, ctx)
                try:
                    frames = self._frames[id(rule)]
                except KeyError:
                    frames = self._frames[id(rule)] = AnyFrame.of(rule.exempt)
                frame = None
                if frames is None or frames.may_hold(windows, start, end, around):
                    for c in rule.exempt:  # the first that holds names the reason
                        if context_matches(c, windows, start, end, ctx, any_of=True, around=around):
                            frame = c
                            break
                if frame is not None:
                    exempt(rule, start, end, frame.reason, frame.explain)
                    continue
            if rule.grammar is None and not _boundary_ok(rule, start, end, norm, bounds):
                continue
            kept.append(Claim(rule, start, end, modifies, action))
        return kept, dropped


def split_in_original(norm: NormalisedText, start: int, end: int) -> bool:
    """True when folding removed symbols from inside the match: the seller broke the word up on purpose.

    Why: a brand written 古*驰 or 古-驰 folds back to the brand, so the ordinary brand rules see it;
    that it was broken up is itself the counterfeit signal (genuine sellers write their brand whole).
    A symbol (anything but a letter, digit or space) between two kept characters counts; spaces count
    only when every gap of a word of four or more characters has one (N I K E), since two words that
    happen to meet at a space (李 宁波) or a spaced model number (d j i3r) are not an evasion.
    """
    lo, hi = norm.original_span(start, end)
    inner = norm.original[lo:hi]
    # A brand is written the same way again and again: short spans are answered from a cache.
    return _split_inner_cached(inner) if len(inner) <= 64 else _split_inner(inner)


def _split_inner(inner: str) -> bool:
    """``split_in_original`` for the original text of a match."""
    # Latin marks are written with their own symbols (h&m, levi's, dr.martens, coca-cola); Chinese never are.
    native = "" if any("\u4e00" <= ch <= "\u9fff" for ch in inner) else _LATIN_NAME_SYMBOLS
    if any(not (ch.isalnum() or ch.isspace() or ch in native) for ch in inner):
        return True
    kept = [ch for ch in inner if not ch.isspace()]
    return len(kept) >= 4 and len(inner) >= 2 * len(kept) - 1


_split_inner_cached = lru_cache(maxsize=4096)(_split_inner)
_LATIN_NAME_SYMBOLS = "&'’＇.-+!·"


def _covered(spans: list[tuple[int, int]], j: int, start: int, end: int) -> bool:
    """Some span among ``spans[:j + 1]`` (sorted, all starting at or before ``start``) reaches ``end``.
    Mandatory phrases rarely nest, so the walk back is short."""
    while j >= 0:
        lo, hi = spans[j]
        if hi >= end:
            return True
        if start - lo > 64:  # no phrase is that long
            return False
        j -= 1
    return False


def _is_ascii_word(text: str) -> bool:
    return text.isascii() and any(ch.isalnum() for ch in text)


def _boundary_ok(rule: Rule, start: int, end: int, norm: NormalisedText, bounds: TextBoundaries) -> bool:
    """Word boundaries: jieba's for Chinese, Latin word edges in the original text for Latin words."""
    if rule.boundary == "none":
        return True
    piece = norm.text[start:end]
    if _is_ascii_word(piece):
        # Latin words: judge boundaries in the original text, where spaces still exist
        # ("best" in "the best choice" but not in "bestow").
        o_start, o_end = norm.original_span(start, end)
        before = norm.original[o_start - 1] if o_start > 0 else ""
        after = norm.original[o_end] if o_end < len(norm.original) else ""
        clash_before = before.isascii() and before.isalnum() and piece[0].isalnum()
        clash_after = after.isascii() and after.isalnum() and piece[-1].isalnum()
        return {
            "start": not clash_before,
            "end": not clash_after,
        }.get(rule.boundary, not clash_before and not clash_after)
    if rule.boundary == "start":
        return bounds.is_boundary(start) or _spaced(norm, start, end, before=True)
    if rule.boundary == "end":
        return bounds.is_boundary(end) or _spaced(norm, start, end, before=False)
    return (bounds.is_boundary(start) or _spaced(norm, start, end, before=True)) and (
        bounds.is_boundary(end) or _spaced(norm, start, end, before=False)
    )


def _spaced(norm: NormalisedText, start: int, end: int, *, before: bool) -> bool:
    """Whether the seller typed a space right before (or after) the span: a word boundary that folding
    removed and jieba never sees (数学班 保提分 folds to 数学班保提分, which jieba cuts 班保|提分)."""
    o_start, o_end = norm.original_span(start, end)
    original = norm.original
    if before:
        return o_start > 0 and original[o_start - 1].isspace()
    return o_end < len(original) and original[o_end].isspace()


def resolve_overlaps(claims: list[Claim], action_of: Callable[[Claim], str]) -> list[Claim]:
    """Within one family, overlapping claims describe one claim: keep the strongest, then the longest.

    Different families keep their own findings for the same words (全网最低价 is both an absolute claim
    and a price claim, under different articles). A sweep over the kept intervals of each family (which
    never overlap each other) makes this n log n in the number of claims; comparing every claim with
    every kept one was quadratic, and a hostile listing can carry tens of thousands of claims.
    """
    if len(claims) <= 1:
        return list(claims)  # nothing to resolve (what the sweep gives for one claim)
    ranked = sorted(
        claims,
        key=lambda c: (
            -SEVERITY_RANK[c.rule.severity],
            -VERDICT_RANK[action_of(c)],
            -(c.end - c.start),
            c.start,
            c.rule.id,
        ),
    )
    kept_by_family: dict[str, list[tuple[int, int]]] = {}
    kept: list[Claim] = []
    for c in ranked:
        spans = kept_by_family.setdefault(c.rule.family, [])
        i = bisect_left(spans, (c.start, c.end))
        if i > 0 and spans[i - 1][1] > c.start:
            continue
        if i < len(spans) and spans[i][0] < c.end:
            continue
        insort(spans, (c.start, c.end))
        kept.append(c)
    kept.sort(key=lambda c: (c.start, c.end, c.rule.id))
    return kept
