"""The surroundings of a candidate match: clause, sentence, neighbouring text, listing attributes.

SAMR's 2023 guideline judges an absolute term by what it points at (a usage tip, a standard grade, the
seller's own range, a service attitude). Those judgements are expressed in rule packs as regular
expressions over the clause or sentence around the match; this module computes those windows once per
text and evaluates a rule's ``exempt`` and ``requires`` contexts against them.
"""

from __future__ import annotations

import re
from bisect import bisect_left

import numpy as np

from moderation.rules.pack import Context
from moderation.text.normalise import CLAUSE_PUNCT, SENTENCE_PUNCT, fold_term

#: How far before/after a match the ``before``/``after`` expressions look (folded characters).
NEIGHBOUR_CHARS = 16
#: A clause or sentence window reaches at most this far on each side of the match. Real clauses are far
#: shorter; a text with no punctuation at all would otherwise make every candidate search all of it.
CLAUSE_REACH = 64
SENTENCE_REACH = 160


def _marks() -> np.ndarray:
    """Per code point: 1 for a clause mark, 2 more for a sentence mark (each one is a clause mark)."""
    marks = np.zeros(0x110000, dtype=np.uint8)
    marks[[ord(c) for c in CLAUSE_PUNCT]] = 1
    marks[[ord(c) for c in SENTENCE_PUNCT]] |= 3
    return marks


_MARKS = _marks()
assert set(CLAUSE_PUNCT) >= set(SENTENCE_PUNCT)
#: The same for the Basic Multilingual Plane only (64 KB, which stays in the CPU's caches where the whole
#: table does not): every mark is in it and U+FFFF is none, so a code point clipped to U+FFFF reads right.
_BMP_MARKS = _MARKS[:0x10000].copy()
assert not _BMP_MARKS[0xFFFF] and all(ord(c) < 0xFFFF for c in CLAUSE_PUNCT)


def _marks_of(text: str) -> np.ndarray:
    """The mark of each character of ``text`` (as ``_MARKS`` has it)."""
    cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    return _BMP_MARKS[np.minimum(cps, 0xFFFF)]


class TextWindows:
    """Clause and sentence boundaries of one folded text, computed on first use."""

    def __init__(self, text: str, clause: list[int] | None = None, sentence: list[int] | None = None) -> None:
        """``clause`` and ``sentence``: the positions of the text's clause and sentence marks when they
        are known already (``marks_of_many``)."""
        self.text = text
        self._marks: np.ndarray | None = None
        self._clause = clause
        self._sentence = sentence
        self._clauses: dict[tuple[int, int], tuple[int, int]] = {}

    def _marks_of_text(self) -> np.ndarray:
        if self._marks is None:
            self._marks = _marks_of(self.text)
        return self._marks

    @staticmethod
    def _window(bounds: list[int], start: int, end: int, length: int) -> tuple[int, int]:
        i = bisect_left(bounds, start)
        lo = bounds[i - 1] + 1 if i > 0 else 0
        # A punctuation character inside the match itself does not end the window.
        n = len(bounds)
        while i < n and bounds[i] < end:
            i += 1
        return lo, bounds[i] if i < n else length

    def clause_bounds(self) -> list[int]:
        """Positions of the clause punctuation, in order."""
        if self._clause is None:
            self._clause = self._marks_of_text().nonzero()[0].tolist()
        return self._clause

    def sentence_bounds(self) -> list[int]:
        """Positions of the sentence punctuation, in order."""
        if self._sentence is None:
            self._sentence = (self._marks_of_text() & 2).nonzero()[0].tolist()
        return self._sentence

    def clause(self, start: int, end: int) -> tuple[int, int]:
        key = (start, end)
        cached = self._clauses.get(key)
        if cached is not None:
            return cached
        lo, hi = self._window(self.clause_bounds(), start, end, len(self.text))
        cached = self._clauses[key] = (max(lo, start - CLAUSE_REACH), min(hi, end + CLAUSE_REACH))
        return cached

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        lo, hi = self._window(self.sentence_bounds(), start, end, len(self.text))
        return max(lo, start - SENTENCE_REACH), min(hi, end + SENTENCE_REACH)


def marks_of_many(texts: list[str]) -> list[tuple[list[int], list[int]]]:
    """For each text, the positions of its clause marks and of its sentence marks (what
    ``TextWindows.clause_bounds`` and ``sentence`` find), from one look-up over the texts joined."""
    if not texts:
        return []
    marks = _marks_of("\n".join(texts))
    clause = marks.nonzero()[0]
    sentence = clause[(marks[clause] & 2).nonzero()[0]]
    bounds: list[int] = []
    pos = 0
    for text in texts:
        bounds += (pos, pos + len(text))
        pos += len(text) + 1
    # Each mark's position in its own text (minus where that text starts in the joined one), for all
    # marks at once; each text then takes a slice of the lists.
    starts = np.array(bounds[::2], dtype=np.int64)
    c_rel = (clause - starts[starts.searchsorted(clause, "right") - 1]).tolist()
    s_rel = (sentence - starts[starts.searchsorted(sentence, "right") - 1]).tolist()
    c_cuts = clause.searchsorted(bounds).tolist()
    s_cuts = sentence.searchsorted(bounds).tolist()
    return [
        (c_rel[c_cuts[k] : c_cuts[k + 1]], s_rel[s_cuts[k] : s_cuts[k + 1]])
        for k in range(0, 2 * len(texts), 2)
    ]


def covered_by_phrase(text: str, start: int, end: int, phrases: tuple[str, ...]) -> bool:
    """True when some occurrence of one of ``phrases`` covers ``text[start:end]`` entirely."""
    for phrase in phrases:
        n = len(phrase)
        if n < end - start:
            continue
        idx = text.find(phrase, max(0, end - n), start + n)
        while idx != -1 and idx <= start:
            if idx + n >= end:
                return True
            idx = text.find(phrase, idx + 1, start + n)
    return False


class ListingContext:
    """What a rule may look at beyond the field it matched in (folded text, computed on first use)."""

    def __init__(
        self,
        category: str,
        attributes: dict[str, str] | None = None,
        listing_text: str = "",
        names: tuple[str, ...] = (),
        folded_listing: str | None = None,
    ) -> None:
        self.category = category
        self._attributes = attributes or {}
        self._listing_text = listing_text
        self.names = names  # brand and name-like attribute values, folded
        self._searched: dict[tuple[int, re.Pattern[str]], bool] = {}
        #: The folded texts, made on first use (``folded_listing``: the caller folded it already).
        self._attributes_folded: str | None = None
        self._listing_folded = folded_listing

    def holds(self, pattern: re.Pattern[str], scope: str) -> bool:
        """Whether ``pattern`` occurs in the listing's attributes or whole text, asked once per listing:
        many candidates share the same listing-wide condition."""
        key = (0 if scope == "attributes" else 1, pattern)
        hit = self._searched.get(key)
        if hit is None:
            text = self.attributes if scope == "attributes" else self.listing
            hit = self._searched[key] = pattern.search(text) is not None
        return hit

    @property
    def attributes(self) -> str:
        """The attributes as folded ``key:value`` lines."""
        folded = self._attributes_folded
        if folded is None:
            raw = "\n".join(f"{k}:{v}" for k, v in self._attributes.items())
            folded = self._attributes_folded = fold_term(raw) if raw else ""
        return folded

    @property
    def listing(self) -> str:
        """Every field of the listing, folded, one per line."""
        folded = self._listing_folded
        if folded is None:
            folded = self._listing_folded = fold_term(self._listing_text)
        return folded


class Surroundings:
    """The windows around one candidate, sliced at most once however many contexts look at them."""

    __slots__ = ("_after", "_before", "_clause", "_sentence", "end", "listing", "start", "windows")

    def __init__(self, windows: TextWindows, start: int, end: int, listing: ListingContext) -> None:
        self.windows = windows
        self.start = start
        self.end = end
        self.listing = listing
        self._clause: tuple[int, int, str] | None = None
        self._sentence: str | None = None
        self._before: str | None = None
        self._after: str | None = None

    def before(self) -> str:
        if self._before is None:
            c_lo = self.clause()[0]
            self._before = self.windows.text[max(c_lo, self.start - NEIGHBOUR_CHARS) : self.start]
        return self._before

    def after(self) -> str:
        if self._after is None:
            c_hi = self.clause()[1]
            self._after = self.windows.text[self.end : min(c_hi, self.end + NEIGHBOUR_CHARS)]
        return self._after

    def clause(self) -> tuple[int, int, str]:
        if self._clause is None:
            lo, hi = self.windows.clause(self.start, self.end)
            self._clause = (lo, hi, self.windows.text[lo:hi])
        return self._clause

    def sentence(self) -> str:
        if self._sentence is None:
            lo, hi = self.windows.sentence(self.start, self.end)
            self._sentence = self.windows.text[lo:hi]
        return self._sentence


def context_matches(
    ctx: Context,
    windows: TextWindows,
    start: int,
    end: int,
    listing: ListingContext,
    *,
    any_of: bool,
    around: Surroundings | None = None,
) -> bool:
    """Evaluate a context. ``any_of`` (exemptions): one hit suffices. Otherwise (requirements) all must hold.
    ``around`` shares the sliced windows between the contexts judged for one candidate. Either way the
    parts are read in one order (phrases, before, after, clause, sentence, attributes, listing) and the
    answer is known at the first part that decides it."""
    sur = around if around is not None else Surroundings(windows, start, end, listing)
    # Slices, not pos/endpos: a pattern's `^` must match at the window's start.
    if any_of:
        if ctx.phrases and covered_by_phrase(windows.text, start, end, ctx.phrases):
            return True
        if ctx.before is not None and ctx.before.search(sur.before()) is not None:
            return True
        if ctx.after is not None and ctx.after.match(sur.after()) is not None:
            return True
        if ctx.clause is not None and ctx.clause.search(sur.clause()[2]) is not None:
            return True
        if ctx.sentence is not None and ctx.sentence.search(sur.sentence()) is not None:
            return True
        if ctx.attributes is not None and listing.holds(ctx.attributes, "attributes"):
            return True
        return ctx.listing is not None and listing.holds(ctx.listing, "listing")
    if ctx.phrases and not covered_by_phrase(windows.text, start, end, ctx.phrases):
        return False
    if ctx.before is not None and ctx.before.search(sur.before()) is None:
        return False
    if ctx.after is not None and ctx.after.match(sur.after()) is None:
        return False
    if ctx.clause is not None and ctx.clause.search(sur.clause()[2]) is None:
        return False
    if ctx.sentence is not None and ctx.sentence.search(sur.sentence()) is None:
        return False
    if ctx.attributes is not None and not listing.holds(ctx.attributes, "attributes"):
        return False
    return ctx.listing is None or listing.holds(ctx.listing, "listing")


_GROUP_REFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")


def _alternation(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | None:
    """One expression that matches somewhere exactly when one of ``patterns`` does (None when they
    cannot be joined: flags, group references or names that would change meaning in one expression)."""
    if len(patterns) == 1:
        return patterns[0]
    if any(p.flags != re.UNICODE or _GROUP_REFERENCE.search(p.pattern) for p in patterns):
        return None
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns))
    except re.error:
        return None


class AnyFrame:
    """Whether any of several exemption contexts can hold for a candidate, asked with one test per
    window instead of one per context and window: their phrases together, their ``before`` expressions
    as one alternation, and so on (an alternation matches where one of its branches does). Only a
    *yes* needs the contexts one by one, to name the first that holds."""

    __slots__ = ("after", "attributes", "before", "clause", "listing", "phrases", "sentence")

    def __init__(self, contexts: tuple[Context, ...]) -> None:
        self.phrases = tuple(dict.fromkeys(p for c in contexts for p in c.phrases))
        joined: dict[str, re.Pattern[str] | None] = {}
        for scope in ("before", "after", "clause", "sentence"):
            patterns = [getattr(c, scope) for c in contexts if getattr(c, scope) is not None]
            joined[scope] = _alternation(patterns) if patterns else None
            if patterns and joined[scope] is None:
                raise ValueError(f"{scope} expressions cannot be joined")
        self.before, self.after = joined["before"], joined["after"]
        self.clause, self.sentence = joined["clause"], joined["sentence"]
        self.attributes = tuple(c.attributes for c in contexts if c.attributes is not None)
        self.listing = tuple(c.listing for c in contexts if c.listing is not None)

    @classmethod
    def of(cls, contexts: tuple[Context, ...]) -> AnyFrame | None:
        try:
            return cls(contexts)
        except ValueError:
            return None

    def may_hold(self, windows: TextWindows, start: int, end: int, sur: Surroundings) -> bool:
        """False only when none of the contexts holds (what ``context_matches(any_of=True)`` says for
        each of them)."""
        if self.phrases and covered_by_phrase(windows.text, start, end, self.phrases):
            return True
        if self.before is not None and self.before.search(sur.before()) is not None:
            return True
        if self.after is not None and self.after.match(sur.after()) is not None:
            return True
        if self.clause is not None and self.clause.search(sur.clause()[2]) is not None:
            return True
        if self.sentence is not None and self.sentence.search(sur.sentence()) is not None:
            return True
        listing = sur.listing
        if any(listing.holds(p, "attributes") for p in self.attributes):
            return True
        return any(listing.holds(p, "listing") for p in self.listing)
