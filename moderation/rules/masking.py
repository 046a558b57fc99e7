"""Mask contact ids (phone numbers, WeChat/QQ ids, links) before they are shown or logged.

An off-platform finding quotes the seller's phone number or WeChat id; the review console, the logs and
any exported report must not spread it further (PLATFORM_RULES.md: "the contact id (masked in the
console)"; a phone number in public text is personal data). Two entry points:

- ``mask_contacts(text)`` finds contact ids in any text on its own (folding it first, so ①③⑧ 1234 5678,
  一三八…, "v信: abc123" are found) and masks them in the *original* text, keeping its length and layout;
  use it on listing text and log lines.
- ``mask_finding(finding)`` masks the quoted span of a finding of the off-platform family (its ``text``
  and the quotation inside ``message``/``suggestion``); other findings are returned unchanged.

Masking keeps a short prefix and suffix so a reviewer can still tell two numbers apart (138****5678);
everything in between becomes ``*``. Characters that carry no information (spaces, separators) are kept,
so the masked text still lines up with the finding's ``start``/``end``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from moderation.text.normalise import normalise

#: The family whose quoted text is a contact id.
CONTACT_FAMILY = "off_platform_diversion"
MASK = "*"

_DIGIT = "0-9零〇一二三四五六七八九两幺壹贰叁肆伍陆柒捌玖"
_PATTERNS = tuple(
    re.compile(p)
    for p in (
        # mobile numbers: ASCII digits (folded from circled/full-width), Chinese numerals, o/l look-alikes
        r"(?<![0-9])(?:\+?86)?1[3-9][0-9](?:-?[0-9]{4}){2}(?![0-9])",
        rf"(?<![{_DIGIT}])[一幺壹][三四五六七八九叁肆伍陆柒捌玖][{_DIGIT}]{{9}}(?![{_DIGIT}])",
        r"(?<![0-9a-z])[1l][3-9](?=[0-9]{0,8}[ol])[0-9ol]{9}(?![0-9a-z])",
        # landlines after a phone keyword
        r"(?<=电话|座机|热线)[:：]?0[1-9][0-9]{1,2}-?[1-9][0-9]{6,7}(?![0-9])",
        r"(?<=tel)[:：]?0[1-9][0-9]{1,2}-?[1-9][0-9]{6,7}(?![0-9])",
        # messenger ids after a WeChat/QQ keyword (the keyword itself stays readable)
        r"(?:(?<![a-z0-9])(?:v信|vx|wx|weixin|wechat|qq号?|q群|qq群|\+v)|微信号?|微号|薇信|威信|维信|徽信|微心|加v|加微|加薇"
        r"|扣扣号?|企鹅号|扣群|群号)(?:号码|号|是|为|id|:|：){0,3}(?P<id>[a-z][a-z0-9-]{5,19}|[1-9][0-9]{4,10})(?![a-z0-9])",
        # links
        r"https?:?//?[a-z0-9][a-z0-9/_%?=&+-]{3,}",
        r"(?<![a-z])www[a-z0-9-]{2,}(?:com|cn|net|org|cc|vip|top|xyz|shop|club|info|me|tv|io)(?:cn)?(?![a-z])",
    )
)


def mask_value(value: str, keep: int = 3) -> str:
    """Mask the significant characters of one contact id, keeping ``keep`` at the start and up to four at
    the end (fewer for short ids); separators and spaces stay where they are."""
    significant = [i for i, ch in enumerate(value) if ch.isalnum()]
    n = len(significant)
    if n <= 2:
        return "".join(MASK if ch.isalnum() else ch for ch in value)
    head = min(keep, max(1, n // 3))
    tail = min(4, max(1, n // 4)) if n >= 8 else 1
    hidden = set(significant[head : n - tail])
    return "".join(MASK if i in hidden else ch for i, ch in enumerate(value))


def contact_spans(text: str) -> list[tuple[int, int]]:
    """Spans (in ``text``) of the contact ids found in it, merged and sorted."""
    if not text:
        return []
    norm = normalise(text)
    folded = norm.text
    spans: list[tuple[int, int]] = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(folded):
            lo, hi = m.span("id") if "id" in pattern.groupindex else m.span()
            if hi > lo:
                spans.append(norm.original_span(lo, hi))
    return _merge(spans)


def mask_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with each span replaced by its masked form (same length)."""
    out = []
    pos = 0
    for lo, hi in _merge(spans):
        lo, hi = max(lo, pos), min(hi, len(text))
        if hi <= lo:
            continue
        out.append(text[pos:lo])
        out.append(mask_value(text[lo:hi]))
        pos = hi
    out.append(text[pos:])
    return "".join(out)


def mask_contacts(text: str) -> str:
    """Every contact id in ``text`` masked; the rest of the text unchanged (for logs and listings)."""
    spans = contact_spans(text)
    return mask_spans(text, spans) if spans else text


def mask_finding(finding: Any) -> Any:
    """A copy of an off-platform finding (pydantic ``Finding`` or its dict form) whose quoted contact id is
    masked in ``text``, ``message`` and ``suggestion``; any other finding is returned unchanged."""
    get = finding.get if isinstance(finding, dict) else lambda k, d=None: getattr(finding, k, d)
    if get("family") != CONTACT_FAMILY:
        return finding
    quoted = get("text") or ""
    masked = mask_contacts(quoted)
    if masked == quoted:  # the rule matched an invitation or keyword only: mask it whole to be safe
        masked = mask_value(quoted) if any(ch.isdigit() for ch in quoted) else quoted
    update = {"text": masked}
    for key in ("message", "suggestion"):
        value = get(key)
        if value:
            update[key] = value.replace(quoted, masked) if quoted else value
    if isinstance(finding, dict):
        return {**finding, **update}
    return finding.model_copy(update=update)


def mask_result(result: Any) -> Any:
    """A check result (dict or model with ``findings``) whose off-platform findings are masked."""
    if isinstance(result, dict):
        findings = result.get("findings") or []
        return {**result, "findings": [mask_finding(f) for f in findings]}
    findings = getattr(result, "findings", None) or []
    return result.model_copy(update={"findings": [mask_finding(f) for f in findings]})


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
