"""Required literals of a regular expression: a cheap test that it cannot match, derived from its parse.

Many rule expressions start with a class or a long alternation (``[^，。]{0,8}``, ``{@brands}``) that
Python's ``re`` has to try at every position of a window, while every match must contain one of a few
short literals (the comma between two brands, the verb of a disparaging claim). ``Prefilter`` finds
those literals in the expression's parse tree once, when rules are loaded, and then answers "can it
match in ``text[lo:hi]``?" with one fast literal search per required set. It only ever says *no* when no
match is possible, so running the expression only where it says *maybe* gives exactly the same matches.

Soundness: a set is *required* when every match of the expression in ``text[lo:hi]`` (searched with
``pos``/``endpos``, as the engine does) implies that ``text[lo:hi]`` contains one of its strings. A
literal, a small character class and a concatenation of such items have a finite set of possible
texts (*exact*); a concatenation requires each exact run of items it contains (and what each item
requires); an alternation requires the union of what each branch requires; a repeat with a minimum of
one requires what its body requires; a lookahead requires what its body requires (it may read past the
match, but not past ``endpos``); lookbehinds, negative lookarounds, anchors and optional parts require
nothing (a lookbehind may read before ``pos``). Back-references, case-insensitive or
verbose groups, and anything not understood give no prefilter at all.
"""

from __future__ import annotations

import re
from functools import lru_cache
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

#: An exact set (every text a piece can match) larger than this is not tracked.
_MAX_EXACT = 64
#: Nor is one with a string longer than this.
_MAX_LEN = 16
#: A required alternation of the branches' sets may be this large.
_MAX_UNION = 256
#: At most this many required sets are tested per expression (the longest literals first).
_MAX_SETS = 3

_EMPTY = frozenset([""])


class _Unsupported(Exception):
    pass


def _useful(s: frozenset[str] | None) -> bool:
    return s is not None and bool(s) and "" not in s


def charset(items: list[tuple[Any, Any]], limit: int = _MAX_EXACT) -> frozenset[str] | None:
    """The characters a class (the items of an ``IN`` node) can match; None for an open class
    (negated, ``\\d``, ``\\w``…) or one of more than ``limit`` characters."""
    chars: list[str] = []
    for op, av in items:
        if op is _c.LITERAL:
            chars.append(chr(av))
        elif op is _c.RANGE:
            lo, hi = av
            if hi - lo + 1 > limit:
                return None
            chars.extend(chr(c) for c in range(lo, hi + 1))
        else:  # NEGATE, CATEGORY (\d, \w…)
            return None
        if len(chars) > limit:
            return None
    return frozenset(chars)


def _product(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    if len(a) * len(b) > _MAX_EXACT:
        return None
    out = frozenset(x + y for x in a for y in b)
    return None if any(len(s) > _MAX_LEN for s in out) else out


def _best(exact: frozenset[str] | None, reqs: list[frozenset[str]]) -> frozenset[str] | None:
    if _useful(exact):
        return exact
    good = [r for r in reqs if _useful(r)]
    return min(good, key=_rank) if good else None


def _rank(s: frozenset[str]) -> tuple[int, int]:
    return (-min(map(len, s)), len(s))


def _seq(items: list[tuple[Any, Any]]) -> tuple[frozenset[str] | None, list[frozenset[str]]]:
    """(exact, required sets) of a concatenation."""
    run: frozenset[str] = _EMPTY
    whole = True
    reqs: list[frozenset[str]] = []
    for op, av in items:
        exact, req = _node(op, av)
        if exact is not None:
            joined = _product(run, exact)
            if joined is not None:
                run = joined
                continue
            if _useful(run):
                reqs.append(run)
            whole = False
            run = exact
            continue
        if _useful(run):
            reqs.append(run)
        whole = False
        run = _EMPTY
        reqs.extend(req)
    if whole:
        return run, reqs
    if _useful(run):
        reqs.append(run)
    return None, reqs


def _node(op: Any, av: Any) -> tuple[frozenset[str] | None, list[frozenset[str]]]:
    if op is _c.LITERAL:
        return frozenset([chr(av)]), []
    if op is _c.IN:
        return charset(av), []
    if op is _c.ASSERT and av[0] == 1:
        # A lookahead reads past the match, but never past the end of the searched window (``endpos``):
        # what it requires lies in the window too. (Zero width: no exact set.)
        exact, req = _seq(av[1].data)
        return None, ([exact] if exact is not None and _useful(exact) else []) + req
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
        # Zero width; a lookbehind may read before the window, and a negative lookaround requires nothing.
        return _EMPTY, []
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        if add_flags & (re.IGNORECASE | re.VERBOSE) or del_flags:
            raise _Unsupported
        return _seq(sub.data)
    if op is _c.ATOMIC_GROUP:
        return _seq(av.data)
    if op is _c.BRANCH:
        _, alts = av
        exacts: list[frozenset[str] | None] = []
        bests: list[frozenset[str] | None] = []
        for alt in alts:
            exact, req = _seq(alt.data)
            exacts.append(exact)
            bests.append(_best(exact, req))
        known = [e for e in exacts if e is not None]
        if len(known) == len(exacts):
            union = frozenset[str]().union(*known)
            if len(union) <= _MAX_EXACT:
                return union, []
        required = [b for b in bests if b is not None]
        if len(required) == len(bests):
            union = frozenset[str]().union(*required)
            if len(union) <= _MAX_UNION:
                return None, [union]
        return None, []
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        exact, req = _seq(sub.data)
        if exact is not None and hi != _c.MAXREPEAT and hi <= 3:
            out: frozenset[str] | None = frozenset()
            for k in range(lo, hi + 1):
                cur: frozenset[str] | None = _EMPTY
                for _ in range(k):
                    cur = _product(cur, exact) if cur is not None else None
                if cur is None or out is None:
                    out = None
                    break
                out = out | cur
            if out is not None and len(out) <= _MAX_EXACT:
                return out, []
        if lo >= 1:  # the body matched at least once: what it requires, the whole needs
            return None, ([exact] if exact is not None and _useful(exact) else []) + req
        return None, []
    return None, []  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, GROUPREF_EXISTS…: no information


def required_literals(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], ...] | None:
    """Sets of literals such that every match of ``pattern`` contains a string of each set; None when
    nothing is known, or when the expression is itself a set of literals (then it is as fast as any
    test could be)."""
    if not isinstance(pattern.pattern, str) or pattern.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    return _required(pattern.pattern, pattern.flags)


@lru_cache(maxsize=4096)
def _required(source: str, flags: int) -> tuple[tuple[str, ...], ...] | None:
    """``required_literals`` by source: rules share expressions (every brand rule has the brand trie)."""
    try:
        exact, reqs = _seq(_p.parse(source, flags).data)
    except (_Unsupported, RecursionError, re.error):
        return None
    if exact is not None:
        return None
    sets = sorted({r for r in reqs if _useful(r)}, key=_rank)[:_MAX_SETS]
    return tuple(tuple(sorted(s, key=lambda x: (-len(x), x))) for s in sets) or None


def _literal_regex(words: tuple[str, ...]) -> re.Pattern[str]:
    from moderation.rules.pack import trie_regex

    return re.compile(trie_regex(words, guard_root=False))


class Prefilter:
    """``may_match(text, lo, hi)``: False only when ``pattern`` cannot match inside ``text[lo:hi]``."""

    __slots__ = ("tests",)

    def __init__(self, sets: tuple[tuple[str, ...], ...]) -> None:
        #: One search per required set: ``test(text, lo, hi)`` is None when none of its literals is in
        #: ``text[lo:hi]`` (then the expression cannot match there).
        self.tests = tuple(_literal_regex(s).search for s in sets)

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> Prefilter | None:
        sets = required_literals(pattern)
        return cls(sets) if sets else None

    @classmethod
    def any_of(cls, patterns: tuple[re.Pattern[str], ...]) -> Prefilter | None:
        """One test for several expressions: can any of them match? (The union of each one's most
        selective required set; None when one of them has none.)"""
        union: set[str] = set()
        for pattern in patterns:
            sets = required_literals(pattern)
            if not sets:
                return None
            union.update(sets[0])
        return cls((tuple(sorted(union, key=lambda x: (-len(x), x))),)) if union else None

    def may_match(self, text: str, lo: int = 0, hi: int | None = None) -> bool:
        end = len(text) if hi is None else hi
        for test in self.tests:  # noqa: SIM110 (a loop: no generator on this hot path)
            if test(text, lo, end) is None:
                return False
        return True
