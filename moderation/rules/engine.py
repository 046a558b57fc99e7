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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ahocorasick

from moderation.paths import lexicon_path, rules_dir
from moderation.rules.context import ListingContext, TextWindows, context_matches, covered_by_phrase
from moderation.rules.pack import Pack, Rule, load_packs
from moderation.rules.policy import Policy, load_policy
from moderation.schema import Finding, Listing
from moderation.text.normalise import NormalisedText, fold_term, normalise
from moderation.text.tokenise import TextBoundaries, Tokeniser

_TERM = 0
_ANCHOR = 1
#: Characters on each side of the title/description seam searched for split claims.
_SPLIT_WINDOW = 12


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


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
    Only all-Chinese terms of two or more characters get variants, so a variant always keeps at least
    one Chinese character and still has to pass the word-boundary check.
    """
    if len(term) < 2 or not all(_is_cjk(ch) for ch in term):
        return set()
    table = _pinyin_table()
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


@dataclass(frozen=True, slots=True)
class _Match:
    rule: Rule
    start: int  # folded offsets
    end: int


class RulesEngine:
    """Matches every loaded rule pack against listings. Thread-safe after construction."""

    def __init__(self, packs: list[Pack], policy: Policy, global_exempt: tuple[str, ...] = ()) -> None:
        self.packs = packs
        self.policy = policy
        self.rules: tuple[Rule, ...] = tuple(r for p in packs for r in p.rules)
        self.global_exempt = global_exempt
        self._automaton = ahocorasick.Automaton()
        keys: dict[str, list[tuple[int, int]]] = {}
        for idx, rule in enumerate(self.rules):
            for term in rule.terms:
                keys.setdefault(term, []).append((idx, _TERM))
            for anchor in rule.anchors:
                keys.setdefault(anchor, []).append((idx, _ANCHOR))
        for key, entries in list(keys.items()):
            for variant in _pinyin_variants(key):
                keys.setdefault(variant, []).extend(e for e in entries if e[1] == _TERM)
        for key, entries in keys.items():
            if entries:
                self._automaton.add_word(key, (key, tuple(dict.fromkeys(entries))))
        if keys:
            self._automaton.make_automaton()
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

    def _candidates(self, norm: NormalisedText, category: str) -> list[_Match]:
        text = norm.text
        matches: list[_Match] = []
        windows: TextWindows | None = None
        seen: set[tuple[str, int, int]] = set()
        for end_idx, (key, entries) in self._automaton.iter(text):
            start, end = end_idx - len(key) + 1, end_idx + 1
            for rule_idx, kind in entries:
                rule = self.rules[rule_idx]
                if not rule.applies_to(category):
                    continue
                if kind == _TERM:
                    spans = [(start, end)]
                else:
                    if windows is None:
                        windows = TextWindows(text)
                    lo, hi = windows.clause(start, end)
                    spans = [
                        (lo + m.start(), lo + m.end())
                        for pattern in rule.patterns
                        for m in pattern.finditer(text[lo:hi])
                        if lo + m.start() < end and lo + m.end() > start and m.end() > m.start()
                    ]
                for span in spans:
                    token = (rule.id, *span)
                    if token not in seen:
                        seen.add(token)
                        matches.append(_Match(rule, *span))
        return matches

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

    def find_in_text(self, text: str, field: str, listing: ListingContext) -> list[Finding]:
        """Findings of every applicable rule in one field's text."""
        norm = normalise(text)
        return [self._finding(m, norm, field) for m in self._judge(norm, listing)]

    def _judge(self, norm: NormalisedText, listing: ListingContext) -> list[_Match]:
        """Candidates that survive boundaries, global exemptions, requirements and exemptions."""
        candidates = self._candidates(norm, listing.category)
        if not candidates:
            return []
        bounds = self.tokeniser.boundaries(norm.text)
        windows = TextWindows(norm.text)
        kept: list[_Match] = []
        for m in candidates:
            rule = m.rule
            if not self._boundary_ok(m, norm, bounds):
                continue
            if covered_by_phrase(norm.text, m.start, m.end, self.global_exempt):
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
            kept.append(m)
        return _resolve_overlaps(kept)

    def _split_findings(self, listing: Listing, ctx: ListingContext) -> list[Finding]:
        """Claims split across the end of the title and the start of the description (全网最 | 低价).

        Reported on the title, from where the claim starts to the end of the title; the message quotes
        the whole claim.
        """
        if not listing.title or not listing.description:
            return []
        tail = listing.title[-_SPLIT_WINDOW:]
        joined = tail + listing.description[:_SPLIT_WINDOW]
        norm = normalise(joined)
        out: list[Finding] = []
        offset = len(listing.title) - len(tail)
        for m in self._judge(norm, ctx):
            start, end = norm.original_span(m.start, m.end)
            if not start < len(tail) < end:
                continue
            finding = self._finding(m, norm, "title")
            out.append(
                finding.model_copy(
                    update={"start": offset + start, "end": len(listing.title), "text": tail[start:]}
                )
            )
        return out

    def _finding(self, m: _Match, norm: NormalisedText, field: str) -> Finding:
        start, end = norm.original_span(m.start, m.end)
        original = norm.original[start:end]
        rule = m.rule
        return Finding(
            rule=rule.id,
            family=rule.family,
            law=rule.law,
            severity=rule.severity,  # type: ignore[arg-type]
            field=field,
            start=start,
            end=end,
            text=original,
            message=rule.message.replace("{text}", original),
            suggestion=rule.suggestion.replace("{text}", original) if rule.suggestion else None,
            action=self.policy.action_for(rule),  # type: ignore[arg-type]
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
            out.append(
                Finding(
                    rule=rule.id,
                    family=rule.family,
                    law=rule.law,
                    severity=rule.severity,  # type: ignore[arg-type]
                    field=field,
                    start=pos,
                    end=pos,
                    text="",
                    message=rule.message.replace("{text}", ""),
                    suggestion=rule.suggestion,
                    action=self.policy.action_for(rule),  # type: ignore[arg-type]
                )
            )
        return out

    def listing_context(self, listing: Listing) -> ListingContext:
        attrs = "\n".join(f"{k}:{v}" for k, v in listing.attributes.items())
        raw_names = [listing.brand or ""]
        raw_names += [v for k, v in listing.attributes.items() if k in self.policy.name_attributes]
        names = tuple(n for n in (fold_term(r) for r in raw_names if r) if len(n) >= 2)
        return ListingContext(
            category=listing.category,
            attributes=fold_term(attrs) if attrs else "",
            listing=fold_term(listing.text()),
            names=names,
        )

    def find(self, listing: Listing) -> list[Finding]:
        """All findings for a listing, in field order then position."""
        ctx = self.listing_context(listing)
        findings: list[Finding] = []
        for field, text in listing.text_fields():
            findings.extend(self.find_in_text(text, field, ctx))
        findings.extend(self._split_findings(listing, ctx))
        findings.extend(self._absent_findings(listing, ctx))
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
