"""States, outcomes, reason codes, and the replay that rebuilds an item's state from its events.

The event log is the source of truth; the item row is a projection written in the same transaction.
``replay`` is what the tests (and ``moderation db verify``) compare the projection against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from moderation.schema import SEVERITIES

PENDING, CLAIMED, ESCALATED, DECIDED, SUPERSEDED = "pending", "claimed", "escalated", "decided", "superseded"
OPEN_STATES = (PENDING, CLAIMED, ESCALATED)
STATES = (*OPEN_STATES, DECIDED, SUPERSEDED)

OUTCOME_LABELS = {"approved": "通过", "rejected": "驳回", "changes_requested": "要求修改"}

#: Reason codes, in the order of the console's 1–9 keys.
REASON_CODES: dict[str, str] = {
    "absolute_claim": "绝对化用语",
    "false_claim": "虚假或夸大宣传",
    "medical_claim": "疾病治疗功效",
    "guaranteed_return": "承诺收益或保本",
    "fake_price": "虚构价格或销量",
    "endorsement": "违规代言或推荐",
    "copied_image": "图片盗用",
    "missing_license": "缺少资质或批文",
    "other": "其他",
}

#: Substrings of a finding's family → the reason code the console preselects (first match wins).
_FAMILY_REASON: tuple[tuple[str, str], ...] = (
    ("absolute", "absolute_claim"),
    ("image", "copied_image"),
    ("medical", "medical_claim"),
    ("health", "medical_claim"),
    ("drug", "medical_claim"),
    ("cosmetic", "medical_claim"),
    ("invest", "guaranteed_return"),
    ("financ", "guaranteed_return"),
    ("price", "fake_price"),
    ("sales", "fake_price"),
    ("review", "fake_price"),
    ("endorse", "endorsement"),
    ("licen", "missing_license"),
    ("patent", "missing_license"),
)


def reason_for_family(family: str) -> str:
    """The reason code a finding of ``family`` most likely leads to; ``false_claim`` otherwise."""
    for needle, code in _FAMILY_REASON:
        if needle in family:
            return code
    return "false_claim"


SEVERITY_WEIGHT = {"low": 10, "medium": 20, "high": 30, "critical": 40}
SEVERITY_ORDER = SEVERITIES

#: Hours before an open item breaches its SLA, by the check verdict that queued it.
SLA_HOURS = {"block": 4, "review": 24}


def sla(verdict: str | None) -> timedelta:
    """How long an item queued with ``verdict`` may wait for a decision (24 hours for anything else)."""
    return timedelta(hours=SLA_HOURS.get(verdict or "", 24))


def priority_for(verdict: str | None, risk: float, max_severity: str | None) -> int:
    """Higher is reviewed first: severity, then calibrated risk, then a bump for block verdicts."""
    return SEVERITY_WEIGHT.get(max_severity or "", 0) + round(risk * 50) + (10 if verdict == "block" else 0)


def replay(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Fold an item's events (in ``seq`` order) into the state the item row must show."""
    s: dict[str, Any] = {
        "status": None,
        "outcome": None,
        "claimed_by": None,
        "escalated": False,
        "attempt": 1,
        "priority": None,
        "listing_revision": None,
    }
    for e in events:
        t, d, actor = e["type"], e["data"] or {}, e["actor"]
        if t == "created":
            s.update(status=PENDING, priority=d["priority"], listing_revision=d["listing_revision"])
        elif t in ("signal_attached", "priority_changed"):
            s["priority"] = d["priority"]
        elif t == "claimed":
            s.update(status=CLAIMED, claimed_by=actor)
        elif t == "assigned":
            s.update(status=CLAIMED, claimed_by=d["user"])
        elif t in ("released", "skipped"):
            s.update(status=ESCALATED if s["escalated"] else PENDING, claimed_by=None)
        elif t == "escalated":
            s.update(status=ESCALATED, escalated=True, claimed_by=None)
        elif t == "decided":
            s.update(status=DECIDED, outcome=d["outcome"], claimed_by=None)
        elif t in ("undone", "reverted"):
            reopened = CLAIMED if d.get("reclaimed") else (ESCALATED if s["escalated"] else PENDING)
            s.update(
                status=reopened,
                outcome=None,
                attempt=d["attempt"],
                claimed_by=actor if d.get("reclaimed") else None,
            )
        elif t == "superseded":
            s.update(status=SUPERSEDED, claimed_by=None)
    return s


def projection(item: Mapping[str, Any]) -> dict[str, Any]:
    """The replayable part of an item row."""
    return {
        "status": item["status"],
        "outcome": item["outcome"],
        "claimed_by": item["claimed_by"] if item["status"] == CLAIMED else None,
        "escalated": bool(item["escalated"]),
        "attempt": item["attempt"],
        "priority": item["priority"],
        "listing_revision": item["listing_revision"],
    }
