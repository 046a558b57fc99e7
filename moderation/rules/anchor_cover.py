"""Does every match of a rule's expression contain one of the rule's anchors?

The engine searches a rule's expressions only around its anchors (the literal strings the one automaton
scan finds) and keeps a match only where it overlaps an anchor hit; a match that holds none of the
anchors is silently never reported. Pack loading can only check that a pattern *has* anchors, so an
expression that grew a new alternative (老婆喜欢老公用 beside …喝) without a matching anchor loses recall and
no example says so, unless one happens to exercise the new branch.

``uncovered_patterns`` proves coverage from the expression's parse tree, the way
``moderation.rules.literals`` derives required literals: a piece with a small finite set of texts
(*exact*: literals, small classes, alternations and bounded repeats of such) is covered when each of its
texts contains an anchor; a concatenation is covered when one of its pieces is, or one run of exact
pieces is (so an anchor may straddle pieces: 老婆 + (?:很)? + 喜欢); an alternation when every branch is;
a repeat with a minimum of one when its body is. Zero-width pieces (lookarounds, ^, $) contribute no
text: what a lookaround reads is outside the match. Anything else (open classes, back-references) is
unknown, so an expression whose coverage rests on one is reported too: the proof is sound, never
complete, and a report means "no proof", to be fixed by an anchor or a simpler expression.
``missed_texts`` samples texts such an expression matches without an anchor: what ``moderation rules
check`` shows, and what makes a report a real gap.

The windows have the same blind spot at their ends: they stop at clause punctuation, so
``names_any`` tells the engine which expressions spell a comma and need sentence windows, and
``unreachable_texts`` finds expressions that could match only across a sentence mark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

import ahocorasick_rs

from moderation.rules.literals import charset

#: An exact set larger than this is not tracked (lexicon tries are spelled out: thousands of words).
_MAX_EXACT = 100_000
#: Nor is one with a string longer than this.
_MAX_LEN = 48
#: Bounded repeats of an exact body are spelled out up to this many copies.
_MAX_COPIES = 4

_EMPTY = frozenset([""])


@dataclass(frozen=True)
class _Cover:
    exact: frozenset[str] | None  # every text the piece can match, when small
    covered: bool  # every match contains an anchor


_UNKNOWN = _Cover(None, False)


class _Prover:
    def __init__(self, anchors: Iterable[str]) -> None:
        words = sorted(set(anchors))
        self._ac = ahocorasick_rs.AhoCorasick(words) if words else None
        self._seen: dict[str, bool] = {}

    def holds(self, text: str) -> bool:
        """``text`` contains an anchor."""
        got = self._seen.get(text)
        if got is None:
            got = self._ac is not None and bool(self._ac.find_matches_as_indexes(text, overlapping=False))
            self._seen[text] = got
        return got

    def all_hold(self, texts: frozenset[str]) -> bool:
        return bool(texts) and all(self.holds(t) for t in texts)

    def seq(self, items: Iterable[tuple[Any, Any]]) -> _Cover:
        run: frozenset[str] | None = _EMPTY
        whole = True
        covered = False
        for op, av in items:
            piece = self.node(op, av)
            covered = covered or piece.covered
            if piece.exact is not None and run is not None:
                joined = _product(run, piece.exact)
                if joined is not None:
                    run = joined
                    continue
            # The run ends here: judge it, and start a new one from this piece when it is exact.
            if run is not None and run != _EMPTY:
                covered = covered or self.all_hold(run)
            whole = False
            run = piece.exact
        if run is not None and run != _EMPTY:
            covered = covered or self.all_hold(run)
        return _Cover(run if whole else None, covered)

    def node(self, op: Any, av: Any) -> _Cover:
        if op is _c.LITERAL:
            return _Cover(frozenset([chr(av)]), False)
        if op is _c.IN:
            return _Cover(charset(av, 256), False)
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            return _Cover(_EMPTY, False)  # zero width: nothing of the match
        if op is _c.SUBPATTERN:
            return self.seq(av[3].data)
        if op is _c.ATOMIC_GROUP:
            return self.seq(av.data)
        if op is _c.BRANCH:
            branches = [self.seq(alt.data) for alt in av[1]]
            exact: frozenset[str] | None = None
            if all(b.exact is not None for b in branches):
                union = frozenset[str]().union(*(b.exact for b in branches if b.exact is not None))
                exact = union if len(union) <= _MAX_EXACT else None
            covered = all(b.covered or (b.exact is not None and self.all_hold(b.exact)) for b in branches)
            return _Cover(exact, covered)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            body = self.seq(sub.data)
            covered = lo >= 1 and (body.covered or (body.exact is not None and self.all_hold(body.exact)))
            return _Cover(_repeat(body.exact, lo, hi), covered)
        return _UNKNOWN


def _product(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    if a == _EMPTY:
        return b
    if b == _EMPTY:
        return a
    if len(a) * len(b) > _MAX_EXACT:
        return None
    out = frozenset(x + y for x in a for y in b)
    return None if any(len(s) > _MAX_LEN for s in out) else out


def _repeat(exact: frozenset[str] | None, lo: int, hi: int) -> frozenset[str] | None:
    if exact is None or hi == _c.MAXREPEAT or hi > _MAX_COPIES:
        return None
    out: set[str] = set()
    cur = _EMPTY
    for k in range(hi + 1):
        if k >= lo:
            out |= cur
        if k < hi:
            grown = _product(cur, exact)
            if grown is None:
                return None
            cur = grown
    return frozenset(out) if len(out) <= _MAX_EXACT else None


def covered(pattern: re.Pattern[str] | str, anchors: Iterable[str]) -> bool:
    """True when every match of ``pattern`` provably contains one of ``anchors`` (see module doc)."""
    source = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    flags = pattern.flags if isinstance(pattern, re.Pattern) else 0
    if flags & re.IGNORECASE:
        return False  # anchors are matched case-sensitively on folded text: no proof
    try:
        return _Prover(anchors).seq(_p.parse(source, flags).data).covered
    except (RecursionError, re.error):
        return False


def uncovered_patterns(rules: Iterable[Any]) -> list[tuple[str, str]]:
    """(rule id, expression) of every pattern whose matches are not all proven to hold an anchor."""
    return [(rule.id, p.pattern) for rule in rules for p in rule.patterns if not covered(p, rule.anchors)]


def _spelled(pattern: re.Pattern[str], lookarounds: bool) -> tuple[set[str], list[tuple[int, int]]]:
    """The characters ``pattern`` spells as literals or in a class that is not negated (and the ranges
    such classes hold), inside what it can match; with ``lookarounds``, inside its lookarounds too."""
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []

    def seq(items: Iterable[tuple[Any, Any]]) -> None:
        for op, av in items:
            if op is _c.LITERAL:
                chars.add(chr(av))
            elif op is _c.IN:
                if not any(o is _c.NEGATE for o, _ in av):
                    chars.update(chr(a) for o, a in av if o is _c.LITERAL)
                    ranges.extend(a for o, a in av if o is _c.RANGE)
            elif op is _c.SUBPATTERN:
                seq(av[3].data)
            elif op is _c.ATOMIC_GROUP:
                seq(av.data)
            elif op is _c.BRANCH:
                for alt in av[1]:
                    seq(alt.data)
            elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
                if av[1] > 0:
                    seq(av[2].data)
            elif op in (_c.ASSERT, _c.ASSERT_NOT) and lookarounds:
                seq(av[1].data)

    seq(_p.parse(pattern.pattern, pattern.flags).data)
    return chars, ranges


def names_any(pattern: re.Pattern[str], chars: str) -> bool:
    """True when ``pattern`` spells one of ``chars`` as a literal or in a class that is not negated,
    inside what it matches. The engine cuts pattern windows at clause punctuation, so an expression that
    names a comma (预防、治疗作用; 小投资，大财富) needs a window that runs past it. An open class (``[^。]``,
    ``.``) does not count: it allows a comma without asking for one; nor does a lookaround: one that
    names punctuation (``(?=[，。]|$)``) tests where a clause ends, which the clause window already
    gives (``$`` at its end)."""
    try:
        spelled, ranges = _spelled(pattern, lookarounds=False)
    except (RecursionError, re.error):
        return False
    return any(c in spelled or any(lo <= ord(c) <= hi for lo, hi in ranges) for c in chars)


def unfoldable_literals(pattern: re.Pattern[str]) -> set[str]:
    """Characters ``pattern`` spells (as literals or in a class that is not negated, lookarounds
    included) that folded text never holds: an upper-case Latin letter, a space, a symbol folding drops,
    or a character it turns into another one (乾 reads 干, ～ reads ~, 鋼 reads 钢). Such a literal is dead: the
    expression runs on folded text, and only terms and anchors are folded when a pack loads."""
    from moderation.text.normalise import normalise

    if pattern.flags & re.IGNORECASE:
        return set()

    def kept(ch: str) -> bool:
        # between two Chinese characters or two digits (. - ~ survive only there)
        return ch in normalise(f"一{ch}一").text or ch in normalise(f"1{ch}1").text

    return {
        ch
        for ch in _spelled(pattern, lookarounds=True)[0]
        if "A" <= ch <= "Z"
        or (ch.isspace() and ch != "\n")
        or (not (ch.isascii() and ch.isalnum()) and not kept(ch))
    }


# -- counterexamples ---------------------------------------------------------------------------------

#: Stand-ins for open classes (``[^，。]``, ``\w``, ``\d``…), tried in this order.
_FILLERS = ("好", "5", "a", "的", "，")


class _Sampler:
    """Random texts of an expression, each piece chosen at random (repeats near their minimum), so that a
    report of ``uncovered_patterns`` can be shown as a text the rule would miss."""

    def __init__(self, seed: int) -> None:
        import random

        self.rng = random.Random(seed)

    def seq(self, items: Iterable[tuple[Any, Any]]) -> str:
        return "".join(self.node(op, av) for op, av in items)

    def node(self, op: Any, av: Any) -> str:
        rng = self.rng
        if op is _c.LITERAL:
            return chr(av)
        if op is _c.IN:
            chars = charset(av, 256)
            return rng.choice(sorted(chars)) if chars else rng.choice(_FILLERS)
        if op in (_c.ANY, _c.NOT_LITERAL, _c.CATEGORY):
            return rng.choice(_FILLERS)
        if op is _c.SUBPATTERN:
            return self.seq(av[3].data)
        if op is _c.ATOMIC_GROUP:
            return self.seq(av.data)
        if op is _c.BRANCH:
            return self.seq(rng.choice(av[1]).data)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            top = min(hi, lo + 2)
            n = lo if rng.random() < 0.6 else rng.randint(lo, top)
            return "".join(self.seq(sub.data) for _ in range(n))
        return ""  # zero width, back-references: the match check below sorts these out


def _sampled_matches(pattern: re.Pattern[str], tries: int, seed: int) -> Iterator[tuple[str, re.Match[str]]]:
    """Random texts of ``pattern`` (``_Sampler``) with the non-empty match ``pattern`` finds in each."""
    sampler = _Sampler(seed)
    try:
        tree = _p.parse(pattern.pattern, pattern.flags).data
    except (RecursionError, re.error):
        return
    for _ in range(tries):
        text = sampler.seq(tree)
        m = pattern.search(text)
        if m is not None and m.end() > m.start():
            yield text, m


def _shortest(found: set[str]) -> list[str]:
    return sorted(found, key=lambda t: (len(t), t))[:5]


def missed_texts(
    pattern: re.Pattern[str], anchors: Iterable[str], tries: int = 4000, seed: int = 0
) -> list[str]:
    """Texts that ``pattern`` matches with no anchor inside the match (at most five, shortest first):
    what the rule would never report. Empty when sampling finds none (no proof that none exist)."""
    prover = _Prover(anchors)
    return _shortest(
        {m.group() for _, m in _sampled_matches(pattern, tries, seed) if not prover.holds(m.group())}
    )


def unreachable_texts(pattern: re.Pattern[str], marks: str, tries: int = 4000, seed: int = 0) -> list[str]:
    """Texts ``pattern`` matches only across one of ``marks`` (the sentence punctuation that ends every
    pattern window): no piece between the marks holds a match, so the engine would never find one
    (at most five, shortest first)."""
    if not names_any(pattern, marks):
        # The sampler fills open classes with characters that are no marks, so a sampled match holds a
        # mark only where the expression spells one: the same answer, without sampling.
        return []
    cut = re.compile("[" + re.escape(marks) + "]")
    return _shortest(
        {
            m.group()
            for text, m in _sampled_matches(pattern, tries, seed)
            if cut.search(m.group()) and not any(pattern.search(piece) for piece in cut.split(text))
        }
    )
