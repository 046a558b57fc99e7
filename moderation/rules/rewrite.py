"""Rewrite a listing so that every fixable span is gone, then check it again.

A rule says how its span can be fixed with the pack key ``rewrite`` (docs/rule-packs.md):

- ``drop``: delete the span, with a scope word just before it (全网, 全国, 史上, 行业…) and a 的 just
  after it that would be left dangling (全网最好的保温杯 → 保温杯);
- ``keep_modified``: delete the claim's marker (the rule's anchor, else 最) and keep what it modifies
  (最受欢迎的款式 → 受欢迎的款式, 最好用的剃须刀 → 好用的剃须刀); when only one character would be left
  and nothing follows it to modify (最佳的选择, 全网最好 花瓶) the span is dropped instead;
- ``{replace: 短语}``: put the phrase in its place (``{text}``/``{modifies}`` as in messages).

``rewrite_listing`` works in rounds: it computes one edit per fixable finding (overlapping edits of
different rules — 全网最低价 is a superlative and a price claim — become one), applies them field by
field, and checks the new text with the rules; whatever a round leaves or produces that is fixable is
fixed in the next (at most ``MAX_ROUNDS``). The answer carries the first round's edits in the
*original* offsets (what the listing editor applies one at a time), the rewritten fields and listing,
and what still fires (``remaining``), so the rewrite is either ``clean`` or says what is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from moderation.rules.engine import RulesEngine
from moderation.rules.pack import Rule
from moderation.schema import Finding, Listing, ListingError, parse_listing
from moderation.text.normalise import fold_term, normalise
from moderation.verdict import decide

MAX_ROUNDS = 3
#: Words that only widen a claim's scope; dropped with the claim right after them.
SCOPE_WORDS = tuple(
    sorted(
        (
            "全网",
            "全国",
            "全球",
            "全世界",
            "世界",
            "全市",
            "全省",
            "全城",
            "全行业",
            "行业",
            "业内",
            "业界",
            "史上",
            "同类产品中",
            "同类中",
            "同类",
            "国内",
            "中国",
            "亚洲",
            "宇宙",
            "全场",
            "全店",
            "天下",
        ),
        key=len,
        reverse=True,
    )
)
#: Markers of a superlative when the rule names no anchor.
DEFAULT_MARKERS = ("最",)
_OPENING, _CLOSING = "【[(（「《“", "】])）」》”"
_CLAUSE_PUNCT = "，、,；;：:"
_CJK = re.compile(r"[\u4e00-\u9fff]")
#: Words after which a one-character head cannot stand alone (这是最佳的选择 → 这是选择, not 这是佳的选择).
_PARTICLES = "是的为了得在把被给用让很更也都就还又"


@dataclass(frozen=True)
class Edit:
    """Replace ``field[start:end]`` (original offsets) by ``replacement``; ``rules`` it fixes."""

    field: str
    start: int
    end: int
    text: str
    replacement: str
    rules: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "replacement": self.replacement,
            "rules": list(self.rules),
        }


@dataclass
class Rewrite:
    """The rewritten listing and what is left."""

    listing: dict[str, Any]
    fields: dict[str, str]
    edits: list[Edit]
    remaining: list[dict[str, Any]]
    verdict: str
    rounds: int
    previews: dict[int, str] = field(default_factory=dict)
    #: The field's whole text with only that edit applied (what the editor puts in the field).
    alone: dict[int, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.remaining

    @property
    def changed(self) -> bool:
        return bool(self.edits)

    def to_json(self) -> dict[str, Any]:
        """The ``rewrite`` field of a check result."""
        return {
            "clean": self.clean,
            "verdict": self.verdict,
            "rounds": self.rounds,
            "fields": self.fields,
            "listing": self.listing,
            "edits": [
                {**e.to_json(), "preview": self.previews.get(i, ""), "after": self.alone.get(i, "")}
                for i, e in enumerate(self.edits)
            ],
            "remaining": self.remaining,
        }


def _engine_of(checker_or_engine: Any) -> RulesEngine:
    return checker_or_engine if isinstance(checker_or_engine, RulesEngine) else checker_or_engine.engine


def _fill(template: str, text: str, modifies: str) -> str:
    return template.replace("{text}", text).replace("{modifies}", modifies or text)


def _scope_start(text: str, start: int) -> int:
    """``start`` moved left over one scope word (and the spaces between it and the claim)."""
    pos = start
    while pos > 0 and text[pos - 1] == " ":
        pos -= 1
    for word in SCOPE_WORDS:
        if text.startswith(word, pos - len(word)) and pos - len(word) >= 0:
            return pos - len(word)
    return start


def _marker_end(rule: Rule, span: str) -> int:
    """Original characters of ``span`` that are the claim's marker (最, the rule's anchor), or 0."""
    norm = normalise(span)
    folded = norm.text
    markers = sorted(
        {*(a for a in rule.anchors if a), *(fold_term(m) for m in DEFAULT_MARKERS)}, key=len, reverse=True
    )
    for marker in markers:
        if marker and folded.startswith(marker) and len(folded) > len(marker):
            return norm.original_span(0, len(marker))[1]
    return 0


def edit_for(rule: Rule, finding: Finding | dict[str, Any], text: str) -> Edit | None:
    """The edit that fixes one finding in its field's ``text``, or None when its rule has no rewrite
    or the span is empty (an ``absent`` rule: something is missing, not wrong)."""

    def get(key: str) -> Any:
        return finding.get(key) if isinstance(finding, dict) else getattr(finding, key)

    if rule.rewrite is None:
        return None
    start, end = int(get("start")), int(get("end"))
    if not 0 <= start < end <= len(text):
        return None
    kind, phrase = rule.rewrite
    span = text[start:end]
    if kind == "replace":
        modifies = span[_marker_end(rule, span) :] if _marker_end(rule, span) else span
        return Edit(get("field"), start, end, span, _fill(phrase, span, modifies), (rule.id,))
    lo = _scope_start(text, start)
    j = end  # the next character that is not a space
    while j < len(text) and text[j] == " ":
        j += 1
    nxt = text[j] if j < len(text) else ""
    if kind == "keep_modified":
        cut = _marker_end(rule, span)
        rest = span[cut:].strip() if cut else ""
        prev = text[lo - 1] if lo > 0 else ""
        modifies_next = j == end and bool(_CJK.match(nxt)) and nxt != "的"
        after_noun = bool(_CJK.match(prev)) and prev not in _PARTICLES
        if rest and (modifies_next or len(rest) >= 2 or after_noun):
            # 最好用 → 好用, 最受欢迎的 → 受欢迎的, 口感最佳的 → 口感佳的, 孩子最爱的 → 孩子爱的
            return Edit(get("field"), lo, end, text[lo:end], rest, (rule.id,))
    hi = end
    if (
        nxt == "的"
        and j + 1 < len(text)
        and not text[j + 1].isspace()
        and text[j + 1] not in _CLAUSE_PUNCT + "。！？"
    ):
        hi = j + 1  # 最佳的选择 → 选择: the 的 would dangle
    return Edit(get("field"), lo, hi, text[lo:hi], "", (rule.id,))


def _merge(edits: list[Edit], texts: dict[str, str]) -> list[Edit]:
    """Overlapping edits of one field become one over the union of their ranges, with the replacement
    of the widest (ties: the shortest replacement) and any text only the others covered kept, so
    全网最低价 (a superlative inside a price claim) is fixed once."""
    out: list[Edit] = []
    for e in sorted(edits, key=lambda e: (e.field, e.start, -e.end)):
        if out and out[-1].field == e.field and e.start < out[-1].end:
            a = out[-1]
            widest = max((a, e), key=lambda x: (x.end - x.start, -len(x.replacement)))
            lo, hi = min(a.start, e.start), max(a.end, e.end)
            text = texts[e.field]
            replacement = text[lo : widest.start] + widest.replacement + text[widest.end : hi]
            out[-1] = Edit(a.field, lo, hi, text[lo:hi], replacement, tuple(dict.fromkeys(a.rules + e.rules)))
            continue
        out.append(e)
    return out


def apply_edits(text: str, edits: list[Edit]) -> str:
    """``text`` with the edits of one field applied (right to left), tidying what a deletion leaves:
    doubled spaces or clause punctuation, a field that starts with punctuation, empty brackets."""
    for e in sorted(edits, key=lambda e: e.start, reverse=True):
        lo, hi = e.start, e.end
        if not e.replacement:
            before = text[lo - 1] if lo > 0 else ""
            after = text[hi] if hi < len(text) else ""
            if before and before in _OPENING and after and _CLOSING[_OPENING.index(before)] == after:
                lo, hi = lo - 1, hi + 1  # 【全网最低价】 → nothing
                before = text[lo - 1] if lo > 0 else ""
                after = text[hi] if hi < len(text) else ""
            space_left = after == " " and (not before or before in " " + _CLAUSE_PUNCT + _OPENING)
            punct_left = (
                bool(after)
                and after in _CLAUSE_PUNCT
                and (not before or before in _CLAUSE_PUNCT + "。！？!?\n" + _OPENING)
            )
            if space_left or punct_left:  # 【】, a doubled space or comma, or a field starting with either
                hi += 1
            elif before == " " and (not after or after in " \n" + _CLAUSE_PUNCT + "。！？!?" + _CLOSING):
                lo -= 1
        text = text[:lo] + e.replacement + text[hi:]
    return text.strip(" ，、,")


def _sentence(text: str, pos: int) -> str:
    """The clause around ``pos``, for a one-line preview of an edit."""
    stops = "，。！？；;!?\n"
    lo = max((text.rfind(c, 0, pos) for c in stops), default=-1) + 1
    his = [i for i in (text.find(c, pos) for c in stops) if i >= 0]
    hi = min(his) if his else len(text)
    return text[lo:hi].strip()


def _listing_dict(listing: Listing | dict[str, Any]) -> dict[str, Any]:
    if isinstance(listing, Listing):
        return listing.model_dump(exclude_none=True)
    return dict(listing)


def _with_fields(base: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    out = dict(base)
    attributes = dict(out.get("attributes") or {})
    for name, value in fields.items():
        if name.startswith("attributes."):
            attributes[name.removeprefix("attributes.")] = value
        else:
            out[name] = value
    if attributes:
        out["attributes"] = attributes
    return out


def _edits(engine: RulesEngine, findings: list[Finding], texts: dict[str, str]) -> list[Edit]:
    rules = engine.rules_by_id
    edits = []
    for f in findings:
        rule = rules.get(f.rule)
        text = texts.get(f.field)
        if rule is None or text is None:
            continue
        e = edit_for(rule, f, text)
        if e is not None:
            edits.append(e)
    return _merge(edits, texts)


def _summary(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "family": f.family,
        "law": f.law,
        "severity": f.severity,
        "field": f.field,
        "start": f.start,
        "end": f.end,
        "text": f.text,
        "message": f.message,
        "suggestion": f.suggestion,
    }


def rewrite_listing(checker_or_engine: Any, listing: Listing | dict[str, Any], result: Any = None) -> Rewrite:
    """Rewrite every fixable span of ``listing`` and check the result again (rules only).

    ``result`` (the listing's check result) saves the first detection; only its rule findings are
    used (image findings have no text to rewrite)."""
    engine = _engine_of(checker_or_engine)
    parsed = listing if isinstance(listing, Listing) else parse_listing(listing)
    base = _listing_dict(listing)
    texts = dict(parsed.text_fields())
    if result is not None:
        findings = [f for f in result.findings if f.field in texts]
    else:
        findings = engine.detect(parsed).findings
    first = _edits(engine, findings, texts)
    previews: dict[int, str] = {}
    alone: dict[int, str] = {}
    for i, e in enumerate(first):
        after = apply_edits(texts[e.field], [e])
        alone[i] = after
        previews[i] = _sentence(after, min(e.start, len(after)))
    current = dict(texts)
    edits = first
    rounds = 0
    while edits and rounds < MAX_ROUNDS:
        rounds += 1
        by_field: dict[str, list[Edit]] = {}
        for e in edits:
            by_field.setdefault(e.field, []).append(e)
        applied = False
        for name, es in by_field.items():
            new_text = apply_edits(current[name], es)
            if len(new_text.strip()) < 2:  # the claim was the whole field: leave it to the seller
                continue
            current[name] = new_text
            applied = True
        if not applied:
            break
        try:
            parsed = parse_listing(_with_fields(base, current))
        except ListingError:  # nothing left to check (the whole text was the claim)
            findings = []
            break
        findings = engine.detect(parsed).findings
        edits = _edits(engine, findings, current)
    verdict, _ = decide(findings, engine.policy, None)
    changed = {name: value for name, value in current.items() if value != texts.get(name)}
    return Rewrite(
        listing=_with_fields(base, current),
        fields=changed,
        edits=first,
        remaining=[_summary(f) for f in findings],
        verdict=verdict,
        rounds=rounds,
        previews=previews,
        alone=alone,
    )
