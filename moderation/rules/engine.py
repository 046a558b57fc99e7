"""The rules engine: fold text, scan for candidate terms, judge each candidate in context.

Pipeline per text field:
1. ``normalise`` folds evasions and keeps the offset map to the original text;
2. one Aho-Corasick pass over the folded text finds every rule term and pattern anchor at once;
3. only around those candidates: patterns are run in the clause, and judgement
   (``moderation/rules/judge.py``) decides whether each candidate is a claim about the listing — claim
   grammars, named exemption frames, jieba word boundaries (第一 inside 第一次 is not a ranking);
4. surviving claims become findings with spans into the original text.
Most listings have no candidate at all and cost a single linear scan. Every stage is linear (or n log n)
in the text and its candidates, candidates per text are capped (the result says ``truncated``), and an
optional CPU budget ends a hostile listing early.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

import ahocorasick_rs
import numpy as np

from moderation.paths import lexicon_path, models_dir, rules_dir
from moderation.rules.anchor_cover import names_any
from moderation.rules.budget import CheckBudgetExceeded
from moderation.rules.category import CategoryGuess, CategoryInferrer
from moderation.rules.context import ListingContext, TextWindows, context_matches, marks_of_many
from moderation.rules.grammar import SuperlativeGrammar
from moderation.rules.judge import (
    Candidate,
    Claim,
    Exemption,
    Judge,
    resolve_overlaps,
)
from moderation.rules.literals import Prefilter
from moderation.rules.pack import Lexicons, Pack, Rule, load_packs
from moderation.rules.policy import Policy, load_policy
from moderation.schema import Finding, Listing, Severity
from moderation.text.normalise import (
    CLAUSE_PUNCT,
    SENTENCE_PUNCT,
    NormalisedText,
    batch_groups,
    fold_term,
    normalise,
    normalise_many,
)
from moderation.text.tokenise import Tokeniser

__all__ = ["CheckBudgetExceeded", "Detection", "Folded", "RulesEngine"]

_TERM = 0
_ANCHOR = 1
_EXEMPT = 2
#: A term with one character spelled in pinyin (jiang血糖): its Latin part must stand alone, so that p首
#: (匕首) does not fire inside "app首页".
_VARIANT = 3
#: Characters on each side of the title/description seam searched for split claims.
_SPLIT_WINDOW = 12
#: Patterns run over at most this many folded characters on each side of an anchor hit (within its
#: clause); a match must overlap the anchor. Claims are short, and this keeps long clauses cheap.
_PATTERN_REACH = 24
#: Candidates judged per text at most. Real listings have a handful; a hostile one can have a hundred
#: thousand, and the result then says ``truncated`` instead of spending minutes on them.
MAX_CANDIDATES = 10000
#: Scanner hits (terms and pattern anchors) looked at per text at most, for the same reason.
MAX_HITS = 200000
#: Findings reported per field at most (the rest are summarised by ``truncated``).
MAX_FINDINGS_PER_FIELD = 100
_WORK_TITLE = re.compile(r"《([^》]{2,30})》")


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
    """The term with one character spelled in pinyin or its initial (降血糖 → jiang血糖, 降xue糖, 降x糖).

    Sellers spell one character of a trigger word in Latin letters; officials treat that as the word.
    Only terms of two or more characters that all have a reading in the pinyin lexicon get variants, so
    a variant always keeps at least one Chinese character and still has to pass the word-boundary check.
    A two-character term gets no initial-only variant: one letter beside one character is mostly a
    model number, a size or slang (A3 素描本 read as a三, W-71 as w一, C位), so the spellings sellers use
    for those (装b, 牛b) are listed as terms of their own.
    """
    table = _pinyin_table()
    if len(term) < 2 or not all(ch in table for ch in term):
        return set()
    variants: set[str] = set()
    for i, ch in enumerate(term):
        for reading in table.get(ch, ()):
            variants.add(term[:i] + reading + term[i + 1 :])
            if len(term) > 2:
                variants.add(term[:i] + reading[0] + term[i + 1 :])
    return variants


def _load_phrases(path: Path) -> tuple[str, ...]:
    phrases: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                phrases.append(fold_term(line))
    return tuple(p for p in phrases if p)


class _CategoryScanner:
    """One multi-pattern scan over folded text: every occurrence of every key, overlaps included, in
    the order the automaton reports them (by end, the longest first at one end, whatever other keys
    it holds).

    Backed by the Rust aho-corasick crate (ahocorasick_rs), about 7x faster than pyahocorasick here;
    offsets are Python string (code point) indices. Long texts are scanned in chunks (overlapping by the
    longest key) and yielded lazily, so a caller that stops early never materialises millions of hits.
    """

    CHUNK: Final = 65536

    def __init__(self, keys: list[str]) -> None:
        self._longest = max(len(k) for k in keys)
        self._ac = ahocorasick_rs.AhoCorasick(
            keys, implementation=ahocorasick_rs.Implementation.ContiguousNFA
        )

    def scan(self, text: str) -> Iterable[tuple[int, int, int]]:
        if len(text) <= self.CHUNK:
            return self._ac.find_matches_as_indexes(text, overlapping=True)
        return self._scan_chunks(text)

    def _scan_chunks(self, text: str) -> Iterator[tuple[int, int, int]]:
        for lo in range(0, len(text), self.CHUNK):
            core_end = lo + self.CHUNK
            piece = text[lo : core_end + self._longest - 1]
            for key, start, end in self._ac.find_matches_as_indexes(piece, overlapping=True):
                if start + lo < core_end:
                    yield key, start + lo, end + lo


@dataclass
class Detection:
    """What the rules found in one listing: findings, and what a reviewer or a developer may ask next."""

    findings: list[Finding]
    #: Some candidates or findings were not reported because the listing had too many.
    truncated: bool = False
    #: With ``explain=True``: candidates judged not to be claims, each with its reason.
    exempted: list[dict[str, object]] = dataclasses.field(default_factory=list)
    #: The category the rules ran with, and the inference that chose it when the listing said general.
    category: str = "general"
    inferred: CategoryGuess | None = None

    def to_payload(self) -> dict[str, object]:
        """Plain data for another process (the server checks long listings in a child process)."""
        return {
            "findings": [f.model_dump() for f in self.findings],
            "truncated": self.truncated,
            "category": self.category,
            "inferred": self.inferred.as_json() if self.inferred else None,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Detection:
        inferred = data.get("inferred")
        return cls(
            [Finding.model_construct(**f) for f in data["findings"]],
            truncated=bool(data.get("truncated")),
            category=str(data.get("category", "general")),
            inferred=CategoryGuess(inferred["category"], inferred["confidence"], tuple(inferred["evidence"]))
            if inferred
            else None,
        )


class RulesEngine:
    """Matches every loaded rule pack against listings. Thread-safe after construction."""

    def __init__(
        self,
        packs: list[Pack],
        policy: Policy,
        global_exempt: tuple[str, ...] = (),
        lexicons: Lexicons | None = None,
        categories: CategoryInferrer | None = None,
    ) -> None:
        self.packs = packs
        self.policy = policy
        self.rules: tuple[Rule, ...] = tuple(r for p in packs for r in p.rules)
        self.rules_by_id: dict[str, Rule] = {r.id: r for r in self.rules}
        self.global_exempt = global_exempt
        keys: dict[str, list[tuple[int, int]]] = {}
        for idx, rule in enumerate(self.rules):
            for term in rule.terms:
                keys.setdefault(term, []).append((idx, _TERM))
            for anchor in rule.anchors:
                keys.setdefault(anchor, []).append((idx, _ANCHOR))
        for key, entries in list(keys.items()):
            for variant in _pinyin_variants(key):
                keys.setdefault(variant, []).extend((idx, _VARIANT) for idx, kind in entries if kind == _TERM)
        self._keys = {k: tuple(dict.fromkeys(v)) for k, v in keys.items() if v}
        self._seam_bigrams = frozenset(k[i : i + 2] for k in self._keys for i in range(len(k) - 1))
        #: Every key once (terms, anchors, their pinyin spellings, global exemptions), in one automaton
        #: built on first use; what a key means depends on the listing's category (``_payloads_for``).
        self._scan_keys = list(self._keys)
        self._scan_keys += [p for p in dict.fromkeys(global_exempt) if p not in self._keys]
        self._scanner: _CategoryScanner | None = None
        #: A key with a line break could straddle two texts scanned as one (see ``_scan_many``).
        self._keys_span_lines = any("\n" in k for k in self._scan_keys)
        #: Keys that begin or end with a Latin letter or digit: as terms they are words of their own, so
        #: they do not match inside a longer Latin word (装b in 改装blox, top1 in top10).
        self._latin_edged = [_latin_edge(k) for k in self._scan_keys]
        self._payloads: dict[str, list[_Payload | None]] = {}
        #: Every distinct payload once, by the (rule index, kind) entries that made it and its exemption.
        self._shared_payloads: dict[tuple[tuple[tuple[int, int], ...], bool], _Payload] = {}
        self._absent_rules = tuple(r for r in self.rules if r.absent)
        #: Per rule: the literal tests of all its patterns together, then each pattern with its own
        #: (moderation/rules/literals.py; no test: always run). Built when the rule first has an
        #: anchor hit: reading every pattern's parse at load time would double the load time.
        self._pattern_prefilters: list[_RuleTests | None] = [None] * len(self.rules)
        words = {t for r in self.rules if r.grammar is None for t in (*r.terms, *r.anchors)}
        self.tokeniser = Tokeniser(words)
        lexicons = lexicons or Lexicons(rules_dir() / "lexicons")
        grammar = None
        if any(r.grammar == "superlative" for r in self.rules):
            grammar = SuperlativeGrammar(lexicons)
        #: Infers the category of listings that arrive as ``general`` (None: never infer).
        self.categories = categories
        self.judge = Judge(self.tokeniser, grammar, self.policy.names_exempt_families)
        self._lock = threading.Lock()
        self._finding_templates: dict[str, Finding] = {}

    @classmethod
    def load(cls, directory: str | Path | None = None) -> RulesEngine:
        """Load and validate ``packs/``, ``policy.yaml`` and the global exemptions of a rules folder."""
        base = Path(directory) if directory is not None else rules_dir()
        packs = load_packs(base / "packs")
        policy = load_policy(base / "policy.yaml")
        exempt_path = base / "lexicons" / "global_exempt.txt"
        if not exempt_path.exists():
            exempt_path = lexicon_path("global_exempt.txt")
        lexicons = Lexicons(base / "lexicons")
        categories = None
        if (base / "lexicons" / "category_nouns.txt").is_file():
            categories = CategoryInferrer.load(lexicons, models_dir() / "category")
        return cls(packs, policy, _load_phrases(exempt_path), lexicons, categories)

    # -- matching -------------------------------------------------------------------------------

    def _payloads_for(self, category: str) -> list[_Payload | None]:
        """What each scanner key means for the rules of one category (None: nothing), built on first
        use: a general listing never looks at the tobacco pack's selling words."""
        payloads = self._payloads.get(category)
        if payloads is not None:
            return payloads
        with self._lock:
            payloads = self._payloads.get(category)
            if payloads is not None:
                return payloads
            if self._scanner is None:
                self._scanner = _CategoryScanner(self._scan_keys)
            exempt_phrases = set(self.global_exempt)
            applies = [rule.applies_to(category) for rule in self.rules]
            shared = self._shared_payloads
            payloads = []
            for key in self._scan_keys:
                mine = tuple(entry for entry in self._keys.get(key, ()) if applies[entry[0]])
                # Global exemptions are found in the same pass (a phrase may also be a term's key).
                exempt = key in exempt_phrases
                if not mine and not exempt:
                    payloads.append(None)
                    continue
                # A key means the same in most categories: one payload object for all of them, so
                # that each category's table adds a list, not tens of thousands of objects for the
                # garbage collector to walk.
                payload = shared.get((mine, exempt))
                if payload is None:
                    entries = [(self.rules[idx], kind, idx) for idx, kind in mine]
                    payload = shared[(mine, exempt)] = _payload(entries, exempt)
                payloads.append(payload)
            self._payloads[category] = payloads
            return payloads

    def _hits(self, norm: NormalisedText, category: str, scanned: _Scanned | None = None) -> _Hits:
        """One scan: term candidates, pattern-anchor hits per rule, global exemption spans.
        ``scanned``: the scanner's hits in this text, found by a scan of many texts (``_scan_many``)."""
        text = norm.text
        windows = (
            TextWindows(text) if scanned is None else TextWindows(text, scanned.clause, scanned.sentence)
        )
        hits = _Hits(windows, [], {}, [], False)
        if not text or not self._scan_keys:
            return hits
        payloads = self._payloads_for(category)
        found: Iterable[tuple[int, int, int]]
        if scanned is None:
            found, base = cast(_CategoryScanner, self._scanner).scan(text), 0
        else:
            found, base = scanned.hits, scanned.base
        terms, anchors, exempt_spans = hits.terms, hits.anchors, hits.exempt_spans
        latin_edged = self._latin_edged
        # A rule's term (or grammar anchor) occurs at most once per span, so no de-duplication is needed.
        # One automaton holds the keys of every category (one in memory and in the CPU's caches, not
        # one per category); a key that means nothing here is skipped, and does not count as a hit.
        n = 0
        for key_idx, start, end in found:
            payload = payloads[key_idx]
            if payload is None:
                continue
            if n >= MAX_HITS:
                hits = hits._replace(truncated=True)
                break
            n += 1
            if base:
                start -= base
                end -= base
            key_terms, variants, key_anchors, exempt = payload
            if exempt:
                exempt_spans.append((start, end))
            if key_terms and (not latin_edged[key_idx] or _latin_word_free(norm, start, end)):
                for rule in key_terms:
                    terms.append(Candidate(rule, start, end))
            if variants and _latin_edges_free(text, start, end):
                for rule in variants:
                    terms.append(Candidate(rule, start, end))
            for rule_idx in key_anchors:
                spans = anchors.get(rule_idx)
                if spans is None:
                    anchors[rule_idx] = [(start, end)]
                else:
                    spans.append((start, end))
        return hits

    def _candidates(self, norm: NormalisedText, hits: _Hits) -> _Scan:
        """The candidates of one scan: its term hits, and the pattern matches around its anchor hits.

        Each rule's patterns run once over every merged window of its anchors (the clause around each
        anchor, at most _PATTERN_REACH characters each side), and a match counts when it overlaps one of
        its anchors; so the cost is linear in the text however densely anchors occur. A window where
        the literals every pattern match needs are missing (moderation/rules/literals.py) is skipped:
        no pattern could match there.
        """
        text = norm.text
        windows = hits.windows
        matches = list(hits.terms)
        seen: set[tuple[int, int, int]] | None = None
        rules, prefilters = self.rules, self._pattern_prefilters
        # Rules that share anchors (the brand rules all anchor on brand names) share their windows.
        prepared: dict[tuple[tuple[tuple[int, int], ...], bool], list[tuple[int, int]]] = {}
        for rule_idx, spans in hits.anchors.items():
            rule = rules[rule_idx]
            key = tuple(sorted(spans)) if len(spans) > 1 else tuple(spans)
            rule_tests = prefilters[rule_idx]
            if rule_tests is None:
                rule_tests = prefilters[rule_idx] = _rule_tests(rule)
            any_tests, groups = rule_tests
            ends_max: list[int] | None = None
            starts: list[int] = []
            for sentence, pattern_tests in groups:
                merged = prepared.get((key, sentence))
                if merged is None:
                    merged = prepared[(key, sentence)] = _merged_windows(key, windows, sentence)
                for lo, hi in merged:
                    # The literal tests (Prefilter.may_match, inlined: this loop runs for every window).
                    for test in any_tests:
                        if test(text, lo, hi) is None:
                            break
                    else:
                        for pattern, tests in pattern_tests:
                            for test in tests:
                                if test(text, lo, hi) is None:
                                    break
                            else:
                                # Most windows hold no match: one search says so for less than the
                                # iterator costs to build; where it finds one, finditer runs as before.
                                if pattern.search(text, lo, hi) is None:
                                    continue
                                for m in pattern.finditer(text, lo, hi):
                                    m_start, m_end = m.span()
                                    if m_end <= m_start:
                                        continue
                                    # Overlaps an anchor: some anchor starts before m_end, ends after m_start.
                                    if ends_max is None:
                                        starts = [s for s, _ in key]
                                        ends_max = list(accumulate((e for _, e in key), max))
                                    i = bisect_left(starts, m_end) - 1
                                    if i < 0 or ends_max[i] <= m_start:
                                        continue
                                    if seen is None:
                                        seen = {(id(c.rule), c.start, c.end) for c in matches}
                                    token = (id(rule), m_start, m_end)
                                    if token not in seen:
                                        seen.add(token)
                                        matches.append(Candidate(rule, m_start, m_end))
        truncated = hits.truncated
        if len(matches) > MAX_CANDIDATES:
            matches.sort(key=lambda c: c.start)
            del matches[MAX_CANDIDATES:]
            truncated = True
        return _Scan(windows, matches, hits.exempt_spans, truncated)

    def _judge(
        self, norm: NormalisedText, listing: ListingContext, state: _State, scan: _Scan | None = None
    ) -> list[Claim]:
        """Claims that survive judgement, one per family and span (see moderation/rules/judge.py).
        ``scan``: candidates already found (by detect, which may scan before it knows the category)."""
        if scan is None:
            scan = self._scan(norm, listing.category)
        windows, candidates, exempt_spans, truncated = scan
        state.truncated |= truncated
        if not candidates:
            return []
        kept, dropped = self.judge.judge(
            norm, windows, candidates, exempt_spans, listing, deadline=state.deadline, explain=state.explain
        )
        state.exempted.extend((norm, e) for e in dropped)
        return resolve_overlaps(kept, self._action_of)

    def _scan(self, norm: NormalisedText, category: str, scanned: _Scanned | None = None) -> _Scan:
        return self._candidates(norm, self._hits(norm, category, scanned))

    def _scan_many(self, texts: list[str]) -> list[_Scanned | None]:
        """The scanner's hits in each of ``texts`` (folded), from one scan of them joined by line breaks,
        and their clause and sentence marks from one look-up (None for a text left to ``_hits``: empty,
        or in a group of one).

        The automaton then stays in the CPU's caches for a whole batch instead of being evicted by the
        other stages between two listings. No key holds a line break, so no hit straddles two texts,
        and each text gets its own hits in the scanner's order (by end): the hits up to its end. A
        group is at most one scanner chunk long, so a list of a group's hits is never longer than
        what ``scan`` returns for one text of that length."""
        out: list[_Scanned | None] = [None] * len(texts)
        if self._keys_span_lines:
            return out
        if self._scanner is None:
            self._payloads_for("general")  # builds the automaton
        scanner = cast(_CategoryScanner, self._scanner)
        for group in batch_groups(texts, _CategoryScanner.CHUNK):
            _scan_group(scanner, texts, group, out)
        return out

    def _action_of(self, claim: Claim) -> str:
        """The action a claim's finding will carry: the grammar's, else the policy's for its rule."""
        return self._action(claim.rule, claim.action)

    def _action(self, rule: Rule, action: str | None) -> str:
        if action is not None and rule.id not in self.policy.rule_action:
            return action
        return self.policy.action_for(rule)

    def _split_findings(
        self, title: NormalisedText, description: NormalisedText, ctx: ListingContext, state: _State
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
        for m in self._judge(joined, ctx, state):
            if not m.start < len(tail) < m.end:
                continue
            finding = self._finding(m, joined, "title")
            start = finding.start
            out.append(finding.model_copy(update={"end": shift, "text": title.original[start:shift]}))
        return out

    def _finding(self, m: Claim, norm: NormalisedText, field: str, offset: int = 0) -> Finding:
        start, end = norm.original_span(m.start, m.end)
        modifies = ""
        if m.modifies:
            # What the claim modifies, as the seller typed it (the folded word maps back to a span).
            x_start = m.end - len(m.modifies)
            o_start, o_end = norm.original_span(x_start, m.end)
            modifies = norm.original[o_start:o_end]
        return self._make_finding(
            m.rule, field, start - offset, end - offset, norm.original[start:end], modifies, m.action
        )

    def _make_finding(
        self,
        rule: Rule,
        field: str,
        start: int,
        end: int,
        original: str,
        modifies: str = "",
        action: str | None = None,
    ) -> Finding:
        # Every value comes from a validated rule pack, so nothing is validated again: a copy of the
        # rule's own finding (model_construct once per rule) with this match's values, three times
        # cheaper than model_construct for each finding.
        template = self._finding_templates.get(rule.id)
        if template is None:
            template = self._finding_templates[rule.id] = Finding.model_construct(
                rule=rule.id,
                family=rule.family,
                law=rule.law,
                severity=cast(Severity, rule.severity),
                field="",
                start=0,
                end=0,
                text="",
                message="",
                suggestion=None,
                action="review",
            )
        return template.model_copy(
            update={
                "field": field,
                "start": start,
                "end": end,
                "text": original,
                "message": _fill(rule.message, original, modifies),
                "suggestion": _fill(rule.suggestion, original, modifies) if rule.suggestion else None,
                "action": self._action(rule, action),
            }
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

    def listing_context(
        self, listing: Listing, folded: dict[str, NormalisedText] | None = None
    ) -> ListingContext:
        """The listing-wide context; pass the fields already folded to avoid folding them twice."""
        raw_names = [listing.brand or ""]
        raw_names += [v for k, v in listing.attributes.items() if k in self.policy.name_attributes]
        names = [n for n in (fold_term(r) for r in raw_names if r) if len(n) >= 2]
        ctx = ListingContext(
            listing.category,
            listing.attributes,
            listing.text() if folded is None else "",
            (),
            None if folded is None else "\n".join(n.text for n in folded.values()),
        )
        # Titles of works named anywhere in the listing (《最美乡村》) are names too, wherever else the
        # same words appear (a title line without the brackets).
        if "《" in ctx.listing:
            names.extend(t for t in _WORK_TITLE.findall(ctx.listing) if len(t) >= 2)
        ctx.names = tuple(dict.fromkeys(names))
        return ctx

    def _fold(self, listing: Listing, normalised: Iterator[NormalisedText] | None) -> Folded:
        """The listing's fields folded (title and description as one text joined by a line break), from
        ``normalised`` (the folded ``_field_texts``, in order) or by folding them here."""
        norms = normalised if normalised is not None else map(normalise, _field_texts(listing))
        fields: dict[str, NormalisedText] = {}
        joined: NormalisedText | None = None
        title, description = listing.title, listing.description
        if title and description:
            joined = next(norms)
            # joined.part(0, len(title)) and joined.part(len(title) + 1, len(joined.original)): the line
            # break between them is never dropped or replaced, so one search finds both.
            j = int(joined.starts.searchsorted(len(title), "left"))
            text, starts, ends = joined.text, joined.starts, joined.ends
            fields["title"] = NormalisedText(title, text[:j], starts[:j], ends[:j])
            cut = len(title) + 1
            fields["description"] = NormalisedText(
                description, text[j + 1 :], starts[j + 1 :] - cut, ends[j + 1 :] - cut
            )
        elif title:
            fields["title"] = next(norms)
        elif description:
            fields["description"] = next(norms)
        for name, value in listing.attributes.items():
            if value:
                fields[f"attributes.{name}"] = next(norms)
        return Folded(fields, joined)

    def fold_many(self, listings: list[Listing]) -> list[Folded]:
        """What ``detect`` folds and infers first, for many listings at once (``detect(folded_as=…)``):
        one folding pass over all their texts (``normalise_many``) and one pass of the category model
        over the general ones, instead of a dozen small numpy calls per listing for each."""
        texts = [_field_texts(listing) for listing in listings]
        norms = iter(normalise_many([t for group in texts for t in group]))
        out = [self._fold(listing, norms) for listing in listings]
        # The texts detect scans (title and description as one, attributes), scanned together.
        judged = [(f, norm) for f in out for norm in f.judged()]
        for (f, norm), scanned in zip(judged, self._scan_many([n.text for _, n in judged]), strict=True):
            if scanned is not None:
                f.scanned[id(norm)] = scanned
        if self.categories is not None:
            general = [i for i, listing in enumerate(listings) if listing.category == "general"]
            guesses = self.categories.infer_many([_inference_text(out[i].fields) for i in general])
            for i, guess in zip(general, guesses, strict=True):
                out[i].inferred = guess
        return out

    def scoring_category(self, listing: Listing) -> str:
        """The category the risk classifier tags a listing with: its own, or, for a ``general`` one, the
        category ``detect`` infers from its title (or the start of its description). The model was
        trained with the category tag on every text, and titles mostly arrive untagged: scored as
        ``general`` they rank worse than with the tag they were trained with (models/MODEL_CARD.md)."""
        if listing.category != "general" or self.categories is None:
            return listing.category
        fields: dict[str, NormalisedText] = {}
        if listing.title:
            fields["title"] = normalise(listing.title[:_SCORING_TITLE])
        if listing.description and ("title" not in fields or len(fields["title"].text) < _INFER_TITLE):
            fields["description"] = normalise(listing.description[: 4 * _INFER_DESCRIPTION])
        guess = self.categories.infer(_inference_text(fields))
        return guess.category if guess is not None else "general"

    def find(self, listing: Listing) -> list[Finding]:
        """The findings of ``detect`` (tests and examples want only these)."""
        return self.detect(listing).findings

    def detect(
        self,
        listing: Listing,
        *,
        budget_s: float | None = None,
        explain: bool = False,
        extra_fields: dict[str, str] | None = None,
        folded_as: Folded | None = None,
    ) -> Detection:
        """All findings for a listing, in field order then position.

        Title and description are folded and scanned as one text joined by a line break (a sentence
        boundary, so no claim or context crosses it); that halves the fixed cost per listing.
        ``budget_s`` (CPU seconds) raises CheckBudgetExceeded when a listing costs more; ``explain``
        also returns every candidate that judgement let pass, with its reason. ``extra_fields`` are more
        texts of the listing checked like attributes, under their own field names (text read from the
        listing's images: ``image:0``), in the listing's context. ``folded_as``: the listing's fields
        already folded and its category inferred (``fold_many``), as this method would.
        """
        state = _State(
            deadline=time.thread_time() + budget_s if budget_s is not None else None, explain=explain
        )
        if folded_as is None:
            folded_as = self._fold(listing, None)
            if listing.category == "general" and self.categories is not None:
                folded_as.inferred = self.categories.infer(_inference_text(folded_as.fields))
        job = self._begin(listing, folded_as, state, extra_fields)
        scans = [self._scan(norm, job.ctx.category, job.scanned.get(id(norm))) for _, norm in job.texts]
        return self._conclude(job, self._judge_texts(job, scans))

    def detect_many(self, listings: list[Listing], folds: list[Folded]) -> list[Detection | Exception]:
        """``detect(listing, folded_as=fold)`` for each listing of a batch (no budget, no explanation),
        stage by stage over the batch: every listing's scanner hits, then every listing's candidates,
        then judgement, then findings. Each stage's tables, expressions and jieba's dictionary then
        stay in the CPU's caches for the batch instead of being evicted by the other stages between
        two listings. The answers are detect's: the stages of one listing run in the same order on
        the same inputs. A listing whose check raised gets the exception in its place."""
        out: list[Detection | Exception | None] = [None] * len(listings)
        jobs: list[tuple[int, _Job]] = []
        for i, (listing, folded_as) in enumerate(zip(listings, folds, strict=True)):
            try:
                jobs.append((i, self._begin(listing, folded_as, _State(), None)))
            except Exception as exc:
                out[i] = exc
        jobs = self._each(jobs, out, self._hits_of)
        jobs = self._each(jobs, out, self._candidates_of)
        jobs = self._each(jobs, out, self._judged_of)
        for i, job in jobs:
            try:
                out[i] = self._conclude(job, job.claims)
            except Exception as exc:
                out[i] = exc
        return cast("list[Detection | Exception]", out)

    @staticmethod
    def _each(
        jobs: list[tuple[int, _Job]], out: list[Detection | Exception | None], stage: Callable[[_Job], None]
    ) -> list[tuple[int, _Job]]:
        """Run one stage of ``detect_many`` on each job; a job that raises leaves with its exception."""
        kept: list[tuple[int, _Job]] = []
        for i, job in jobs:
            try:
                stage(job)
            except Exception as exc:
                out[i] = exc
                continue
            kept.append((i, job))
        return kept

    def _hits_of(self, job: _Job) -> None:
        category, scanned = job.ctx.category, job.scanned
        job.hits = [self._hits(norm, category, scanned.get(id(norm))) for _, norm in job.texts]

    def _candidates_of(self, job: _Job) -> None:
        job.scans = [
            self._candidates(norm, hits) for (_, norm), hits in zip(job.texts, job.hits, strict=True)
        ]
        job.hits = []

    def _judged_of(self, job: _Job) -> None:
        job.claims = self._judge_texts(job, job.scans)
        job.scans = []

    def _begin(
        self, listing: Listing, folded_as: Folded, state: _State, extra_fields: dict[str, str] | None
    ) -> _Job:
        """What detect works on for one listing: its folded fields, the texts it judges, its context."""
        folded = dict(folded_as.fields)
        joined = folded_as.joined
        for name, value in (extra_fields or {}).items():
            if value:
                folded[name] = normalise(value)
        ctx = self.listing_context(listing, folded)
        # The texts judged: title and description as one, then attributes and extra fields.
        texts = [("", joined)] if joined is not None else []
        texts += [(f, n) for f, n in folded.items() if joined is None or f not in ("title", "description")]
        # A general listing's category is inferred from its title and the start of its description, so
        # that the rules of what it really sells apply (and only theirs are scanned for).
        inferred = folded_as.inferred
        if inferred is not None:
            ctx.category = inferred.category
        return _Job(listing, folded, joined, ctx, texts, inferred, state, folded_as.scanned)

    def _judge_texts(self, job: _Job, scans: list[_Scan]) -> list[list[Claim]]:
        return [
            self._judge(norm, job.ctx, job.state, scan)
            for (_, norm), scan in zip(job.texts, scans, strict=True)
        ]

    def _conclude(self, job: _Job, claims_per_text: list[list[Claim]]) -> Detection:
        """The detection of a job from the claims judged in each of its texts."""
        listing, folded, ctx, state = job.listing, job.folded, job.ctx, job.state
        title = listing.title
        findings: list[Finding] = []
        for (field, norm), claims in zip(job.texts, claims_per_text, strict=True):
            if field:
                findings.extend(self._finding(m, norm, field) for m in claims)
                continue
            cut = len(title) + 1
            for m in claims:
                if int(norm.starts[m.start]) < cut:
                    findings.append(self._finding(m, norm, "title"))
                else:
                    findings.append(self._finding(m, norm, "description", offset=cut))
        if job.joined is not None:
            findings.extend(self._split_findings(folded["title"], folded["description"], ctx, state))
        findings.extend(self._absent_findings(listing, ctx))
        order = {name: i for i, name in enumerate(folded)}
        findings.sort(key=lambda f: order.get(f.field, len(order)))  # stable: field order, then position
        findings, capped = _cap_per_field(findings)
        detection = Detection(
            findings, truncated=state.truncated or capped, category=ctx.category, inferred=job.inferred
        )
        if state.explain:
            detection.exempted = [_exemption_info(norm, e) for norm, e in state.exempted]
        return detection


@dataclass(slots=True)
class _Job:
    """One listing on its way through ``detect``: its inputs, then what each stage made of them."""

    listing: Listing
    folded: dict[str, NormalisedText]
    joined: NormalisedText | None
    ctx: ListingContext
    texts: list[tuple[str, NormalisedText]]
    inferred: CategoryGuess | None
    state: _State
    scanned: dict[int, _Scanned]
    hits: list[_Hits] = dataclasses.field(default_factory=list)
    scans: list[_Scan] = dataclasses.field(default_factory=list)
    claims: list[list[Claim]] = dataclasses.field(default_factory=list)


class _Payload(NamedTuple):
    """What one scanner key means in one category's automaton, split by kind for the hot loop."""

    terms: tuple[Rule, ...]  # rules whose term (or grammar anchor) this key is
    variants: tuple[Rule, ...]  # rules whose term this key spells with one character in pinyin
    anchors: tuple[int, ...]  # rules (by index) whose pattern anchor this key is
    exempt: bool  # a global exemption phrase


def _payload(entries: list[tuple[Rule, int, int]], exempt: bool) -> _Payload:
    terms = tuple(r for r, kind, _ in entries if kind == _TERM or (kind == _ANCHOR and r.grammar is not None))
    variants = tuple(r for r, kind, _ in entries if kind == _VARIANT)
    anchors = tuple(i for r, kind, i in entries if kind == _ANCHOR and r.grammar is None)
    return _Payload(terms, variants, anchors, exempt)


class _Scanned(NamedTuple):
    """One text's part of a scan of several texts joined (``_scan_many``)."""

    hits: list[tuple[int, int, int]]  # the scanner's hits in the text, at offsets in the joined text
    base: int  # where the text starts in the joined text
    clause: list[int]  # its clause marks (``TextWindows.clause_bounds``)
    sentence: list[int]  # and its sentence marks


_hit_end = itemgetter(2)


def _scan_group(
    scanner: _CategoryScanner, texts: list[str], group: list[int], out: list[_Scanned | None]
) -> None:
    """Scan ``texts[i]`` for each ``i`` of a group of two or more as one text joined by line breaks, and
    put each one's hits and marks in ``out[i]`` (``RulesEngine._scan_many``)."""
    if len(group) < 2:
        return
    joined = "\n".join(texts[i] for i in group)
    found = scanner.scan(joined)
    assert isinstance(found, list)
    marks = marks_of_many([texts[i] for i in group])
    pos = lo = 0
    for i, (clause, sentence) in zip(group, marks, strict=True):
        end = pos + len(texts[i])
        hi = bisect_right(found, end, lo, key=_hit_end)
        out[i] = _Scanned(found[lo:hi], pos, clause, sentence)
        pos, lo = end + 1, hi


class _Hits(NamedTuple):
    """What one scan of a text found, before the category decides which pattern rules run."""

    windows: TextWindows
    terms: list[Candidate]
    anchors: dict[int, list[tuple[int, int]]]
    exempt_spans: list[tuple[int, int]]
    truncated: bool


class _Scan(NamedTuple):
    """One text's candidates from the scanner, with the windows they were found in."""

    windows: TextWindows
    candidates: list[Candidate]
    exempt_spans: list[tuple[int, int]]
    truncated: bool


#: Category inference reads the title alone when it has this many folded characters, and otherwise also
#: this many characters of the description.
_INFER_TITLE = 6
_INFER_DESCRIPTION = 64
#: ``scoring_category`` folds at most this much of a title (a title is rarely a tenth of it; the bound
#: keeps a hostile one cheap where the server calls it, on its event loop).
_SCORING_TITLE = 1000


def _inference_text(folded: dict[str, NormalisedText]) -> str:
    """What category inference reads: the title (sellers name the product there), or the start of the
    description when there is no title. Reading more costs more than it tells."""
    title = folded.get("title")
    if title is not None and len(title.text) >= _INFER_TITLE:
        return title.text
    description = folded.get("description")
    parts = [title.text if title else "", description.text[:_INFER_DESCRIPTION] if description else ""]
    return "\n".join(p for p in parts if p)


def _field_texts(listing: Listing) -> list[str]:
    """The texts ``detect`` folds, in order: title and description (one text when both are there),
    then the attribute values."""
    title, description = listing.title, listing.description
    texts = [f"{title}\n{description}"] if title and description else [title or description]
    texts += listing.attributes.values()
    return [t for t in texts if t]


@dataclass
class Folded:
    """A listing's fields folded for ``detect``, and the category inferred for a general listing."""

    fields: dict[str, NormalisedText]
    #: Title and description folded as one text (None unless the listing has both).
    joined: NormalisedText | None
    inferred: CategoryGuess | None = None
    #: The scanner's hits in the texts of ``judged`` (by the id of their folded text, which this
    #: object keeps alive), when they were scanned with other listings' texts.
    scanned: dict[int, _Scanned] = dataclasses.field(default_factory=dict)

    def judged(self) -> list[NormalisedText]:
        """The texts detect scans: title and description as one, then the attributes."""
        joined = self.joined
        texts = [joined] if joined is not None else []
        texts += [n for f, n in self.fields.items() if joined is None or f not in ("title", "description")]
        return texts


@dataclass
class _State:
    """Per-check state threaded through the stages: budget, explanation, truncation."""

    deadline: float | None = None
    explain: bool = False
    truncated: bool = False
    exempted: list[tuple[NormalisedText, Exemption]] = dataclasses.field(default_factory=list)


def _latin_edge(key: str) -> bool:
    """Whether a key begins or ends with a Latin letter or digit (so ``_latin_word_free`` applies)."""
    return bool(key) and (
        (key[0].isascii() and key[0].isalnum()) or (key[-1].isascii() and key[-1].isalnum())
    )


def _glued(text: str, lo: int, hi: int) -> bool:
    """Whether ``text[lo:hi]`` continues a Latin word or number past either end."""
    if lo > 0 and text[lo].isascii() and text[lo - 1].isascii() and text[lo - 1].isalnum():
        return True
    last = text[hi - 1]
    return last.isascii() and hi < len(text) and text[hi].isascii() and text[hi].isalnum()


def _latin_word_free(norm: NormalisedText, start: int, end: int) -> bool:
    """A Latin-edged term is not part of a longer Latin word or number in the original text (folding
    removed the spaces, so ``top 1 best`` must be read where the spaces still are)."""
    return not _glued(norm.original, *norm.original_span(start, end))


def _latin_edges_free(text: str, start: int, end: int) -> bool:
    """A pinyin spelling at either end of ``text[start:end]`` is not glued to more Latin letters or digits."""
    return not _glued(text, start, end)


_Tests = tuple[Callable[[str, int, int], object], ...]
_PatternTests = tuple[tuple[re.Pattern[str], _Tests], ...]
#: (literal tests of all patterns together, (sentence windows?, patterns with their own tests)…)
_RuleTests = tuple[_Tests, tuple[tuple[bool, _PatternTests], ...]]


def _tests(prefilter: Prefilter | None) -> _Tests:
    """A prefilter as its literal searches (each returns None when its literals are missing)."""
    return prefilter.tests if prefilter is not None else ()


#: Clause marks that do not end a sentence: a pattern that names one runs in sentence windows.
_INNER_PUNCT: Final = "".join(c for c in CLAUSE_PUNCT if c not in SENTENCE_PUNCT)


def _rule_tests(rule: Rule) -> _RuleTests:
    """The literal tests of a rule's patterns: all together, then each pattern with its own, grouped by
    their windows: a pattern that names a comma or an enumeration mark runs in windows that reach the
    sentence's ends (in a clause window it could never match); the others in clause windows."""
    clause: list[tuple[re.Pattern[str], _Tests]] = []
    sentence: list[tuple[re.Pattern[str], _Tests]] = []
    for p in rule.patterns:
        (sentence if names_any(p, _INNER_PUNCT) else clause).append((p, _tests(Prefilter.of(p))))
    groups = tuple((s, tuple(g)) for s, g in ((False, clause), (True, sentence)) if g)
    return (_tests(Prefilter.any_of(rule.patterns) if len(rule.patterns) > 1 else None), groups)


def _merged_windows(
    hits: tuple[tuple[int, int], ...], windows: TextWindows, sentence: bool = False
) -> list[tuple[int, int]]:
    """The pattern windows of sorted anchor hits (each hit's clause, or its sentence with ``sentence``,
    at most _PATTERN_REACH characters each side of it), merged where they touch."""
    bounds = windows.sentence_bounds() if sentence else windows.clause_bounds()
    n, length = len(bounds), len(windows.text)
    out: list[tuple[int, int]] = []
    cur_lo, cur_hi = -1, -1
    for start, end in hits:
        # As TextWindows.clause (whose CLAUSE_REACH is wider than _PATTERN_REACH), inlined: the clause
        # runs from after the punctuation before ``start`` to the first one at or after ``end``.
        i = bisect_left(bounds, start)
        lo = bounds[i - 1] + 1 if i > 0 else 0
        j = bisect_left(bounds, end, i)
        hi = bounds[j] if j < n else length
        if lo < start - _PATTERN_REACH:
            lo = start - _PATTERN_REACH
        if hi > end + _PATTERN_REACH:
            hi = end + _PATTERN_REACH
        if lo <= cur_hi:
            if hi > cur_hi:
                cur_hi = hi
            continue
        if cur_hi >= 0:
            out.append((cur_lo, cur_hi))
        cur_lo, cur_hi = lo, hi
    if cur_hi >= 0:
        out.append((cur_lo, cur_hi))
    return out


def _fill(template: str, text: str, modifies: str) -> str:
    return template.replace("{text}", text).replace("{modifies}", modifies or text)


def _cap_per_field(findings: list[Finding]) -> tuple[list[Finding], bool]:
    counts: dict[str, int] = {}
    out: list[Finding] = []
    for f in findings:
        n = counts.get(f.field, 0)
        if n < MAX_FINDINGS_PER_FIELD:
            out.append(f)
        counts[f.field] = n + 1
    return out, len(out) < len(findings)


def _exemption_info(norm: NormalisedText, e: Exemption) -> dict[str, object]:
    start, end = norm.original_span(e.start, e.end)
    return {
        "rule": e.rule.id,
        "text": norm.original[start:end],
        "reason": e.reason,
        "explain": e.explain,
    }
