"""The rules engine: fold text, scan for candidate terms, judge each candidate in context.

Pipeline per text field:
1. ``normalise`` folds evasions and keeps the offset map to the original text;
2. one Aho-Corasick pass over the folded text finds every rule term and pattern anchor at once;
3. only around those candidates: patterns are run in the clause, jieba decides word boundaries
   (第一 inside 第一次 is not a ranking), and the rule's exemption and requirement contexts are checked;
4. surviving matches become findings with spans into the original text.
Most listings have no candidate at all and cost a single linear scan.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import ahocorasick_rs
import numpy as np

from moderation.paths import lexicon_path, rules_dir
from moderation.rules.context import ListingContext, TextWindows, context_matches, covered_by_phrase
from moderation.rules.pack import Pack, Rule, load_packs
from moderation.rules.policy import Policy, load_policy
from moderation.schema import Finding, Listing
from moderation.text.normalise import NormalisedText, fold_term, normalise
from moderation.text.tokenise import TextBoundaries, Tokeniser

_TERM = 0
_ANCHOR = 1
_EXEMPT = 2
#: Characters on each side of the title/description seam searched for split claims.
_SPLIT_WINDOW = 12
#: Patterns run over at most this many folded characters on each side of an anchor hit (within its
#: clause); a match must overlap the anchor. Claims are short, and this keeps long clauses cheap.
_PATTERN_REACH = 24


@lru_cache(maxsize=1)
def _pinyin_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    with lexicon_path("pinyin.tsv").open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            char, _, readings = line.rstrip("\n").partition("\t")
            if char and readings:
                table[char] = tuple(readings.split(" "))
    return table


def _pinyin_variants(term: str) -> set[str]:
    """The term with one character spelled in pinyin or its initial (降血糖 → jiang血糖, 包过 → b过).

    Sellers spell one character of a trigger word in Latin letters; officials treat that as the word.
    Only terms of two or more characters that all have a reading in the pinyin lexicon get variants, so
    a variant always keeps at least one Chinese character and still has to pass the word-boundary check.
    """
    table = _pinyin_table()
    if len(term) < 2 or not all(ch in table for ch in term):
        return set()
    variants: set[str] = set()
    for i, ch in enumerate(term):
        for reading in table.get(ch, ()):
            variants.add(term[:i] + reading + term[i + 1 :])
            variants.add(term[:i] + reading[0] + term[i + 1 :])
    return variants


def _is_ascii_word(text: str) -> bool:
    return text.isascii() and any(ch.isalnum() for ch in text)


def _load_phrases(path: Path) -> tuple[str, ...]:
    phrases: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                phrases.append(fold_term(line))
    return tuple(p for p in phrases if p)


class _CategoryScanner:
    """One multi-pattern scan over folded text: every occurrence of every key, overlaps included.

    Backed by the Rust aho-corasick crate (ahocorasick_rs), about 7x faster than pyahocorasick here;
    offsets are Python string (code point) indices.
    """

    def __init__(self, keys: list[str], payloads: list[tuple[tuple[Rule | None, int, int], ...]]) -> None:
        self.payloads = payloads
        self._ac = ahocorasick_rs.AhoCorasick(
            keys, implementation=ahocorasick_rs.Implementation.ContiguousNFA
        )

    def scan(self, text: str) -> list[tuple[int, int, int]]:
        return self._ac.find_matches_as_indexes(text, overlapping=True)


class _Match(NamedTuple):
    """A candidate: a rule and a span of the folded text (a tuple: cheap to make by the thousand)."""

    rule: Rule
    start: int
    end: int


class RulesEngine:
    """Matches every loaded rule pack against listings. Thread-safe after construction."""

    def __init__(self, packs: list[Pack], policy: Policy, global_exempt: tuple[str, ...] = ()) -> None:
        self.packs = packs
        self.policy = policy
        self.rules: tuple[Rule, ...] = tuple(r for p in packs for r in p.rules)
        self.global_exempt = global_exempt
        keys: dict[str, list[tuple[int, int]]] = {}
        for idx, rule in enumerate(self.rules):
            for term in rule.terms:
                keys.setdefault(term, []).append((idx, _TERM))
            for anchor in rule.anchors:
                keys.setdefault(anchor, []).append((idx, _ANCHOR))
        for key, entries in list(keys.items()):
            for variant in _pinyin_variants(key):
                keys.setdefault(variant, []).extend(e for e in entries if e[1] == _TERM)
        self._keys = {k: tuple(dict.fromkeys(v)) for k, v in keys.items() if v}
        self._seam_bigrams = frozenset(k[i : i + 2] for k in self._keys for i in range(len(k) - 1))
        #: One automaton per listing category, holding only the rules that apply there, built on first
        #: use: a general listing never pays for the tobacco pack's selling words.
        self._automata: dict[str, _CategoryScanner | None] = {}
        self._absent_rules = tuple(r for r in self.rules if r.absent)
        words = {t for r in self.rules for t in (*r.terms, *r.anchors)}
        self.tokeniser = Tokeniser(words)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: str | Path | None = None) -> RulesEngine:
        """Load and validate ``packs/``, ``policy.yaml`` and the global exemptions of a rules folder."""
        base = Path(directory) if directory is not None else rules_dir()
        packs = load_packs(base / "packs")
        policy = load_policy(base / "policy.yaml")
        exempt_path = base / "lexicons" / "global_exempt.txt"
        if not exempt_path.exists():
            exempt_path = lexicon_path("global_exempt.txt")
        return cls(packs, policy, _load_phrases(exempt_path))

    # -- matching -------------------------------------------------------------------------------

    def _automaton_for(self, category: str) -> _CategoryScanner | None:
        scanner = self._automata.get(category, False)
        if scanner is not False:
            return scanner  # type: ignore[return-value]
        with self._lock:
            if category in self._automata:
                return self._automata[category]
            keys: list[str] = []
            payloads: list[tuple[tuple[Rule | None, int, int], ...]] = []
            positions: dict[str, int] = {}
            for key, entries in self._keys.items():
                mine = tuple(
                    (self.rules[idx], kind, idx) for idx, kind in entries if self.rules[idx].applies_to(category)
                )
                if mine:
                    positions[key] = len(keys)
                    keys.append(key)
                    payloads.append(mine)
            # Global exemptions are found in the same pass (a phrase may also be a term's key).
            for phrase in self.global_exempt:
                exempt = ((None, _EXEMPT, -1),)
                if phrase in positions:
                    payloads[positions[phrase]] += exempt
                else:
                    positions[phrase] = len(keys)
                    keys.append(phrase)
                    payloads.append(exempt)
            result = _CategoryScanner(keys, payloads) if keys else None
            self._automata[category] = result
            return result

    def _candidates(
        self, norm: NormalisedText, category: str, windows: TextWindows
    ) -> tuple[list[_Match], list[tuple[int, int]]]:
        """Every candidate match, and the spans of global exemption phrases, in one scan."""
        text = norm.text
        automaton = self._automaton_for(category)
        if automaton is None or not text:
            return [], []
        matches: list[_Match] = []
        exempt_spans: list[tuple[int, int]] = []
        seen: set[tuple[int, int, int]] = set()
        windows_done: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
        payloads = automaton.payloads
        for key_idx, start, end in automaton.scan(text):
            for rule, kind, rule_idx in payloads[key_idx]:
                if kind == _TERM:
                    token = (rule_idx, start, end)
                    if token not in seen:
                        seen.add(token)
                        matches.append(_Match(rule, start, end))
                    continue
                if kind == _EXEMPT:
                    exempt_spans.append((start, end))
                    continue
                c_lo, c_hi = windows.clause(start, end)
                lo, hi = max(c_lo, start - _PATTERN_REACH), min(c_hi, end + _PATTERN_REACH)
                spans = windows_done.get((rule_idx, lo, hi))
                if spans is None:  # several anchors often share one window: run the patterns once
                    spans = [m.span() for p in rule.patterns for m in p.finditer(text, lo, hi)]
                    windows_done[(rule_idx, lo, hi)] = spans
                for m_start, m_end in spans:
                    if m_end > m_start and m_start < end and m_end > start:
                        token = (rule_idx, m_start, m_end)
                        if token not in seen:
                            seen.add(token)
                            matches.append(_Match(rule, m_start, m_end))
        return matches, exempt_spans

    def _boundary_ok(self, m: _Match, norm: NormalisedText, bounds: TextBoundaries) -> bool:
        piece = norm.text[m.start : m.end]
        if _is_ascii_word(piece):
            # Latin words: judge boundaries in the original text, where spaces still exist
            # ("best" in "the best choice" but not in "bestow").
            o_start, o_end = norm.original_span(m.start, m.end)
            before = norm.original[o_start - 1] if o_start > 0 else ""
            after = norm.original[o_end] if o_end < len(norm.original) else ""
            first, last = piece[0], piece[-1]
            clash_before = before.isascii() and before.isalnum() and first.isalnum()
            clash_after = after.isascii() and after.isalnum() and last.isalnum()
            if m.rule.boundary == "none":
                return True
            if m.rule.boundary == "start":
                return not clash_before
            if m.rule.boundary == "end":
                return not clash_after
            return not clash_before and not clash_after
        if m.rule.boundary == "none":
            return True
        if m.rule.boundary == "start":
            return bounds.is_boundary(m.start)
        if m.rule.boundary == "end":
            return bounds.is_boundary(m.end)
        return bounds.is_boundary(m.start) and bounds.is_boundary(m.end)

    def _judge(self, norm: NormalisedText, listing: ListingContext) -> list[_Match]:
        """Candidates that survive boundaries, global exemptions, requirements and exemptions."""
        windows = TextWindows(norm.text)
        candidates, exempt_spans = self._candidates(norm, listing.category, windows)
        if not candidates:
            return []
        bounds: TextBoundaries | None = None
        kept: list[_Match] = []
        # Cheapest checks first; jieba runs only for candidates that survive their contexts.
        for m in candidates:
            rule = m.rule
            if any(lo <= m.start and m.end <= hi for lo, hi in exempt_spans):
                continue
            if (
                listing.names
                and rule.family in self.policy.names_exempt_families
                and covered_by_phrase(norm.text, m.start, m.end, listing.names)
            ):
                continue
            if not rule.requires.is_empty() and not context_matches(
                rule.requires, windows, m.start, m.end, listing, any_of=False
            ):
                continue
            if not rule.exempt.is_empty() and context_matches(
                rule.exempt, windows, m.start, m.end, listing, any_of=True
            ):
                continue
            if bounds is None:
                bounds = self.tokeniser.boundaries(norm.text)
            if not self._boundary_ok(m, norm, bounds):
                continue
            kept.append(m)
        return _resolve_overlaps(kept)

    def _split_findings(
        self, title: NormalisedText, description: NormalisedText, ctx: ListingContext
    ) -> list[Finding]:
        """Claims split across the end of the title and the start of the description (全网最 | 低价).

        Reported on the title, from where the claim starts to the end of the title; the message quotes
        the whole claim. Works on the already folded fields, so it costs one short scan.
        """
        if not title.text or not description.text:
            return []
        if title.text[-1] + description.text[0] not in self._seam_bigrams:
            return []  # no term or anchor has these two characters side by side: nothing can straddle
        tail = title.text[-_SPLIT_WINDOW:]
        head = description.text[:_SPLIT_WINDOW]
        cut = len(title.text) - len(tail)
        shift = len(title.original)
        head_end = int(description.ends[len(head) - 1])
        joined = NormalisedText(
            original=title.original + description.original[:head_end],
            text=tail + head,
            starts=np.concatenate([title.starts[cut:], description.starts[: len(head)] + shift]),
            ends=np.concatenate([title.ends[cut:], description.ends[: len(head)] + shift]),
        )
        out: list[Finding] = []
        for m in self._judge(joined, ctx):
            if not m.start < len(tail) < m.end:
                continue
            finding = self._finding(m, joined, "title")
            start = finding.start
            out.append(finding.model_copy(update={"end": shift, "text": title.original[start:shift]}))
        return out

    def _finding(self, m: _Match, norm: NormalisedText, field: str, offset: int = 0) -> Finding:
        start, end = norm.original_span(m.start, m.end)
        return self._make_finding(m.rule, field, start - offset, end - offset, norm.original[start:end])

    def _make_finding(self, rule: Rule, field: str, start: int, end: int, original: str) -> Finding:
        # model_construct: every value comes from a validated rule pack; skipping re-validation of
        # each finding is a measurable share of the per-listing cost.
        return Finding.model_construct(
            rule=rule.id,
            family=rule.family,
            law=rule.law,
            severity=rule.severity,
            field=field,
            start=start,
            end=end,
            text=original,
            message=rule.message.replace("{text}", original),
            suggestion=rule.suggestion.replace("{text}", original) if rule.suggestion else None,
            action=self.policy.action_for(rule),
        )

    def _absent_findings(self, listing: Listing, ctx: ListingContext) -> list[Finding]:
        out: list[Finding] = []
        for rule in self._absent_rules:
            if not rule.applies_to(listing.category):
                continue
            if any(phrase in ctx.listing for phrase in rule.absent):
                continue
            if not rule.requires.is_empty():
                windows = TextWindows(ctx.listing)
                if not context_matches(rule.requires, windows, 0, 0, ctx, any_of=False):
                    continue
            field = "description" if listing.description else "title"
            pos = len(listing.description if field == "description" else listing.title)
            out.append(self._make_finding(rule, field, pos, pos, ""))
        return out

    def listing_context(self, listing: Listing, folded: dict[str, NormalisedText] | None = None) -> ListingContext:
        """The listing-wide context; pass the fields already folded to avoid folding them twice."""
        raw_names = [listing.brand or ""]
        raw_names += [v for k, v in listing.attributes.items() if k in self.policy.name_attributes]
        names = tuple(n for n in (fold_term(r) for r in raw_names if r) if len(n) >= 2)
        ctx = ListingContext(listing.category, listing.attributes, listing.text(), names)
        if folded is not None:
            ctx.__dict__["listing"] = "\n".join(n.text for n in folded.values())  # fills the cached property
        return ctx

    def find(self, listing: Listing) -> list[Finding]:
        """All findings for a listing, in field order then position.

        Title and description are folded and scanned as one text joined by a line break (a sentence
        boundary, so no claim or context crosses it); that halves the fixed cost per listing.
        """
        title, description = listing.title, listing.description
        folded: dict[str, NormalisedText] = {}
        joined: NormalisedText | None = None
        if title and description:
            joined = normalise(f"{title}\n{description}")
            cut = len(title) + 1
            folded["title"] = joined.part(0, len(title))
            folded["description"] = joined.part(cut, cut + len(description))
        elif title:
            folded["title"] = normalise(title)
        elif description:
            folded["description"] = normalise(description)
        for name, value in listing.attributes.items():
            if value:
                folded[f"attributes.{name}"] = normalise(value)
        ctx = self.listing_context(listing, folded)
        findings: list[Finding] = []
        if joined is not None:
            cut = len(title) + 1
            for m in self._judge(joined, ctx):
                if int(joined.starts[m.start]) < cut:
                    findings.append(self._finding(m, joined, "title"))
                else:
                    findings.append(self._finding(m, joined, "description", offset=cut))
        for field, norm in folded.items():
            if joined is None or field.startswith("attributes."):
                findings.extend(self._finding(m, norm, field) for m in self._judge(norm, ctx))
        if joined is not None:
            findings.extend(self._split_findings(folded["title"], folded["description"], ctx))
        findings.extend(self._absent_findings(listing, ctx))
        order = {name: i for i, name in enumerate(folded)}
        findings.sort(key=lambda f: order.get(f.field, len(order)))  # stable: field order, then position
        return findings

def _resolve_overlaps(matches: list[_Match]) -> list[_Match]:
    """Within one family, overlapping matches describe one claim: keep the most severe, then longest.

    Different families keep their own findings for the same words (全网最低价 is both an absolute
    claim and a price claim, under different articles).
    """
    order = {"critical": 3, "high": 2, "medium": 1, "low": 0}
    ranked = sorted(
        matches, key=lambda m: (-order[m.rule.severity], -(m.end - m.start), m.start, m.rule.id)
    )
    kept: list[_Match] = []
    for m in ranked:
        if any(
            k.rule.family == m.rule.family and k.start < m.end and m.start < k.end for k in kept
        ):
            continue
        kept.append(m)
    kept.sort(key=lambda m: (m.start, m.end, m.rule.id))
    return kept
